# The filter as an OCI image for Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy
# (the "Docker" Wasm image format: one layer holding plugin.wasm). From the repository root:
#   ./scripts/build.sh
#   docker build -f deploy/k8s/filter.Dockerfile -t registry.example.com/envoy-secret-auth/filter:0.1.0 .
FROM scratch
COPY target/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm ./plugin.wasm
