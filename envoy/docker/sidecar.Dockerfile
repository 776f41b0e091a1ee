# The secret-sidecar as a container. Build context: the repository root
#   docker build -f envoy/docker/sidecar.Dockerfile -t secret-sidecar .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Only what the workspace needs to resolve (no target/, no .venv).
COPY Cargo.toml Cargo.lock rust-toolchain.toml clippy.toml ./
COPY json-read json-read
COPY secret-ref secret-ref
COPY sidecar-api sidecar-api
COPY raw-config raw-config
COPY secret-sidecar secret-sidecar
COPY filter filter
COPY tests tests
RUN cargo build --release --locked -p secret-sidecar

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/secret-sidecar /usr/local/bin/secret-sidecar
USER 65532:65532
# No EXPOSE: the sidecar listens on the loopback of the namespace it shares with Envoy.
ENTRYPOINT ["/usr/local/bin/secret-sidecar"]
CMD ["--config", "/etc/secret-sidecar/sidecar.toml"]
