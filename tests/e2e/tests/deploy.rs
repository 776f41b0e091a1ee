//! The Kubernetes examples in `deploy/k8s/` (there is no cluster here: their files are checked).
//! Istio's WasmPlugin and EnvoyFilter against Istio's published schema (the CRD models of the
//! PyPI package `cloudcoil-models-istio`, installed by scripts/deps.sh); Envoy Gateway's resources
//! (no published schema package) for the fields this project needs. In both: the filter
//! configuration compiles with the filter's own parser, the sidecar configuration passes the
//! sidecar's own check, the filter's sidecar cluster is the sidecar's loopback address, and the
//! bearer token reaches the sidecar and Envoy from one Kubernetes Secret.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use e2e::{test_dir, workspace_root, Paths, IDENTITY_HEADERS, SIDECAR_CLUSTER};
use serde_json::{json, Value};

const ISTIO: &str = "deploy/k8s/istio/wasmplugin.yaml";
const ENVOY_GATEWAY: &str = "deploy/k8s/envoy-gateway/extension-policy.yaml";
const TOKEN_ENV: &str = "SECRET_SIDECAR_TOKEN";
/// The Kubernetes Secret holding the token, and its key (deploy/k8s/README.md creates it).
const TOKEN_SECRET: (&str, &str) = ("secret-sidecar-token", "token");

/// Runs `script` with the venv's Python, `args` after it; its stdout is JSON.
fn python_json(script: &str, args: &[&str]) -> Result<Value> {
    let python = workspace_root().join(".venv/bin/python");
    let out = Command::new(&python)
        .args(["-c", script])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}: run scripts/deps.sh", python.display()))?;
    ensure!(
        out.status.success(),
        "python failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).context("python's output")
}

/// Every document of a multi-document YAML file.
fn documents(relative: &str) -> Result<Vec<Value>> {
    let path = workspace_root().join(relative);
    let docs = python_json(
        "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)",
        &[path.to_str().context("path")?],
    )?;
    docs.as_array().cloned().context("not a list")
}

/// The one document of `kind`.
fn one<'a>(docs: &'a [Value], kind: &str) -> Result<&'a Value> {
    let found: Vec<&Value> = docs.iter().filter(|d| d["kind"] == kind).collect();
    match found[..] {
        [doc] => Ok(doc),
        _ => bail!("expected one {kind}, found {}", found.len()),
    }
}

/// Compiles a filter configuration with the filter's own parser (the token variable set), and
/// fails on warnings too (a disabled credential).
fn compiles_in_the_filter(config: &Value) -> Result<()> {
    let env = |name: &str| (name == TOKEN_ENV).then(|| "t".to_owned());
    let compiled = envoy_secret_auth_filter::config::compile(config.to_string().as_bytes(), &env)
        .map_err(|e| anyhow::anyhow!("the filter refuses the configuration: {e}"))?;
    ensure!(
        compiled.warnings.is_empty(),
        "the filter warns: {:?}",
        compiled.warnings
    );
    ensure!(
        config["sidecar"]["token"] == format!("$env://{TOKEN_ENV}"),
        "the filter must read the token from {TOKEN_ENV}: {}",
        config["sidecar"]
    );
    Ok(())
}

/// `env` (a container's) takes `name` from the token Secret.
fn env_from_token_secret(env: &Value, name: &str) -> bool {
    env.as_array().into_iter().flatten().any(|e| {
        let r = &e["valueFrom"]["secretKeyRef"];
        e["name"] == name && r["name"] == TOKEN_SECRET.0 && r["key"] == TOKEN_SECRET.1
    })
}

/// The `sidecar.toml` of the ConfigMap named `name`, parsed.
fn sidecar_toml(docs: &[Value], name: &str) -> Result<(String, Value)> {
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .with_context(|| format!("no ConfigMap {name}"))?;
    let text = map["data"]["sidecar.toml"]
        .as_str()
        .context("no sidecar.toml in the ConfigMap")?
        .to_owned();
    let parsed = python_json(
        "import json, sys, tomllib; json.dump(tomllib.loads(sys.argv[1]), sys.stdout)",
        &[&text],
    )?;
    Ok((text, parsed))
}

/// The sidecar's own `check --config` accepts `toml` (the token in its environment).
fn passes_the_sidecars_check(toml: &str, label: &str) -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir(&format!("deploy_{label}"))?;
    let file = dir.join("sidecar.toml");
    std::fs::write(&file, toml)?;
    let out = Command::new(&paths.sidecar)
        .args(["check", "--config"])
        .arg(&file)
        .env(TOKEN_ENV, "t")
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        out.status.success(),
        "secret-sidecar check refuses the {label} sidecar.toml: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The user the sidecar image runs as (`USER uid:gid` of envoy/docker/sidecar.Dockerfile).
fn image_uid() -> Result<u64> {
    let dockerfile =
        std::fs::read_to_string(workspace_root().join("envoy/docker/sidecar.Dockerfile"))?;
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .context("no USER in the sidecar Dockerfile")?;
    Ok(user.split(':').next().unwrap_or("").trim().parse()?)
}

/// A secret-sidecar container: the image's non-root user, read-only, the token from the Secret,
/// its config from the ConfigMap (returned: the ConfigMap's name) mounted where `--config` reads.
fn check_sidecar_container(container: &Value, volumes: &Value) -> Result<String> {
    let security = &container["securityContext"];
    ensure!(
        security["runAsNonRoot"] == true
            && security["runAsUser"] == json!(image_uid()?)
            && security["readOnlyRootFilesystem"] == true
            && security["allowPrivilegeEscalation"] == false,
        "the sidecar container's securityContext: {security}"
    );
    ensure!(
        env_from_token_secret(&container["env"], TOKEN_ENV),
        "the sidecar container does not take {TOKEN_ENV} from the Secret {TOKEN_SECRET:?}"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .context("no args")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let config = match args[..] {
        ["--config", path] => Path::new(path),
        _ => bail!("the sidecar's args: {args:?}"),
    };
    let mount = container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| Some(Path::new(m["mountPath"].as_str().unwrap_or(""))) == config.parent())
        .context("--config is not in a mounted volume")?;
    ensure!(
        config.file_name().is_some_and(|f| f == "sidecar.toml"),
        "{config:?}"
    );
    let volume = volumes
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .context("the mount's volume is missing")?;
    volume["configMap"]["name"]
        .as_str()
        .map(str::to_owned)
        .context("the sidecar's config volume is not a ConfigMap")
}

/// The cluster the filter calls is the sidecar's listen address, on loopback.
fn check_sidecar_cluster(cluster: &Value, sidecar: &Value, filter: &Value) -> Result<()> {
    ensure!(
        cluster["name"] == SIDECAR_CLUSTER && filter["sidecar"]["cluster"] == SIDECAR_CLUSTER,
        "cluster {} / the filter's {}",
        cluster["name"],
        filter["sidecar"]["cluster"]
    );
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"];
    let listen = format!(
        "{}:{}",
        address["address"].as_str().unwrap_or(""),
        address["port_value"]
    );
    ensure!(
        sidecar["listen"] == listen && listen.starts_with("127.0.0.1:"),
        "the cluster points at {listen}, the sidecar listens on {}",
        sidecar["listen"]
    );
    ensure!(
        sidecar["token_env"] == TOKEN_ENV,
        "the sidecar reads its token from {}",
        sidecar["token_env"]
    );
    let idle = &cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["common_http_protocol_options"]
        ["idle_timeout"];
    ensure!(
        idle == "60s",
        "the sidecar cluster's idle_timeout is {idle}"
    );
    Ok(())
}

/// deploy/k8s/README.md creates the token Secret in `namespace`.
fn readme_creates_the_token_secret(namespace: &str) -> Result<()> {
    let readme = std::fs::read_to_string(workspace_root().join("deploy/k8s/README.md"))?;
    let create = format!(
        "kubectl -n {namespace} create secret generic {} --from-literal={}=",
        TOKEN_SECRET.0, TOKEN_SECRET.1
    );
    ensure!(
        readme.contains(&create),
        "deploy/k8s/README.md does not run {create}"
    );
    Ok(())
}

/// Validates the Istio resources with the models `cloudcoil-models-istio` generates from Istio's
/// CRD schemas: types and enums are checked, and a field the schema does not know is dropped by
/// the model, so the round trip must give back every field.
const ISTIO_SCHEMA_PY: &str = r#"
import json, sys, yaml
from cloudcoil.models.istio.extensions.v1alpha1 import WasmPlugin
from cloudcoil.models.istio.networking.v1alpha3 import EnvoyFilter

models = {"WasmPlugin": WasmPlugin, "EnvoyFilter": EnvoyFilter}
problems, checked = [], []

def lost(given, kept, path):
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(kept, dict) or key not in kept:
                problems.append(f"{path}.{key}: not in the schema")
            else:
                lost(value, kept[key], f"{path}.{key}")
    elif isinstance(given, list):
        for i, (a, b) in enumerate(zip(given, kept if isinstance(kept, list) else [])):
            lost(a, b, f"{path}[{i}]")

for doc in yaml.safe_load_all(open(sys.argv[1])):
    if not doc or doc["kind"] not in models:
        continue
    try:
        model = models[doc["kind"]].model_validate(doc)
    except Exception as e:
        problems.append(f"{doc['kind']}: {e}")
        continue
    lost(doc, model.model_dump(mode="json", by_alias=True, exclude_none=True), doc["kind"])
    checked.append(doc["kind"])
json.dump({"problems": problems, "checked": sorted(checked)}, sys.stdout)
"#;

#[test]
fn istio_example_matches_istios_published_schema() -> Result<()> {
    let path = workspace_root().join(ISTIO);
    let result = python_json(ISTIO_SCHEMA_PY, &[path.to_str().context("path")?])?;
    ensure!(
        result["checked"] == json!(["EnvoyFilter", "WasmPlugin"]),
        "checked {}",
        result["checked"]
    );
    ensure!(
        result["problems"] == json!([]),
        "{ISTIO} does not match Istio's schema: {}",
        result["problems"]
    );
    Ok(())
}

#[test]
fn istio_example_wires_the_filter_the_sidecar_and_the_token() -> Result<()> {
    let docs = documents(ISTIO)?;
    let plugin = &one(&docs, "WasmPlugin")?["spec"];
    let filter = &plugin["pluginConfig"];
    compiles_in_the_filter(filter)?;
    ensure!(
        plugin["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("oci://"))
            && plugin["phase"] == "AUTHN"
            && plugin["type"] == "HTTP"
            && plugin["failStrategy"] == "FAIL_CLOSE",
        "WasmPlugin: {plugin}"
    );
    ensure!(
        plugin["vmConfig"]["env"] == json!([{"name": TOKEN_ENV, "valueFrom": "HOST"}]),
        "the VM must get {TOKEN_ENV} from the proxy's environment: {}",
        plugin["vmConfig"]
    );

    // The pod the plugin selects runs the sidecar, and Envoy (istio-proxy) has the token.
    let deployment = one(&docs, "Deployment")?;
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    ensure!(
        plugin["selector"]["matchLabels"] == *labels,
        "the WasmPlugin selects {}, the pods are {labels}",
        plugin["selector"]
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let container = |name: &str| -> Result<&Value> {
        pod["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .with_context(|| format!("no container {name}"))
    };
    let config_map = check_sidecar_container(container("secret-sidecar")?, &pod["volumes"])?;
    ensure!(
        env_from_token_secret(&container("istio-proxy")?["env"], TOKEN_ENV),
        "istio-proxy does not take {TOKEN_ENV} from the Secret"
    );
    let (toml, sidecar) = sidecar_toml(&docs, &config_map)?;
    passes_the_sidecars_check(&toml, "istio")?;

    // The EnvoyFilter adds the sidecar's cluster and the security settings, for those pods.
    let envoy_filter = &one(&docs, "EnvoyFilter")?["spec"];
    ensure!(
        envoy_filter["workloadSelector"]["labels"] == *labels,
        "the EnvoyFilter selects {}",
        envoy_filter["workloadSelector"]
    );
    let patches = envoy_filter["configPatches"]
        .as_array()
        .context("no patches")?;
    let cluster = patches
        .iter()
        .find(|p| p["applyTo"] == "CLUSTER" && p["patch"]["operation"] == "ADD")
        .map(|p| &p["patch"]["value"])
        .context("no cluster added")?;
    check_sidecar_cluster(cluster, &sidecar, filter)?;
    let hcm = patches
        .iter()
        .find(|p| p["applyTo"] == "NETWORK_FILTER" && p["match"]["context"] == "SIDECAR_INBOUND")
        .map(|p| &p["patch"]["value"]["typed_config"])
        .context("no HTTP connection manager patch")?;
    ensure!(
        hcm["common_http_protocol_options"]["headers_with_underscores_action"] == "DROP_HEADER",
        "headers with underscores are not dropped: {hcm}"
    );
    let removed: Vec<&str> = hcm["early_header_mutation_extensions"][0]["typed_config"]
        ["mutations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["remove"].as_str())
        .collect();
    ensure!(
        IDENTITY_HEADERS.iter().all(|h| removed.contains(h)),
        "identity headers removed before routing: {removed:?}"
    );
    let namespace = plugin_namespace(&docs, "WasmPlugin")?;
    readme_creates_the_token_secret(&namespace)
}

fn plugin_namespace(docs: &[Value], kind: &str) -> Result<String> {
    one(docs, kind)?["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .context("no namespace")
}

#[test]
fn envoy_gateway_example_wires_the_filter_the_sidecar_and_the_token() -> Result<()> {
    let docs = documents(ENVOY_GATEWAY)?;
    let policy = &one(&docs, "EnvoyExtensionPolicy")?["spec"];
    let wasm = match policy["wasm"].as_array().map(Vec::as_slice) {
        Some([wasm]) => wasm,
        _ => bail!("expected one Wasm extension: {policy}"),
    };
    let filter = &wasm["config"];
    compiles_in_the_filter(filter)?;
    ensure!(
        wasm["code"]["type"] == "Image"
            && wasm["code"]["image"]["url"]
                .as_str()
                .is_some_and(|u| !u.is_empty())
            && wasm["failOpen"] == false
            && wasm["rootID"] == "envoy-secret-auth",
        "the Wasm extension: {wasm}"
    );
    ensure!(
        wasm["env"]["hostKeys"] == json!([TOKEN_ENV]),
        "the VM must get {TOKEN_ENV} from Envoy's environment: {}",
        wasm["env"]
    );
    // The policy targets the HTTPRoute of the Gateway whose class runs the EnvoyProxy below.
    let route = one(&docs, "HTTPRoute")?;
    ensure!(
        policy["targetRefs"]
            == json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                       "name": route["metadata"]["name"]}]),
        "targetRefs: {}",
        policy["targetRefs"]
    );
    let gateway = one(&docs, "Gateway")?;
    ensure!(
        route["spec"]["parentRefs"][0]["name"] == gateway["metadata"]["name"],
        "the route's parent is not the Gateway"
    );
    let class = one(&docs, "GatewayClass")?;
    ensure!(
        gateway["spec"]["gatewayClassName"] == class["metadata"]["name"],
        "the Gateway's class"
    );
    let proxy = one(&docs, "EnvoyProxy")?;
    let reference = &class["spec"]["parametersRef"];
    ensure!(
        reference["kind"] == "EnvoyProxy"
            && reference["name"] == proxy["metadata"]["name"]
            && reference["namespace"] == proxy["metadata"]["namespace"],
        "the GatewayClass does not use the EnvoyProxy: {reference}"
    );

    // Envoy has the token; the proxy pods run the sidecar.
    let deployment = &proxy["spec"]["provider"]["kubernetes"]["envoyDeployment"];
    ensure!(
        env_from_token_secret(&deployment["container"]["env"], TOKEN_ENV),
        "Envoy's container does not take {TOKEN_ENV} from the Secret"
    );
    ensure!(
        deployment["patch"]["type"] == "StrategicMerge",
        "{}",
        deployment["patch"]
    );
    let pod = &deployment["patch"]["value"]["spec"]["template"]["spec"];
    let sidecar_container = pod["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "secret-sidecar"))
        .context("the patch adds no secret-sidecar container")?;
    let config_map = check_sidecar_container(sidecar_container, &pod["volumes"])?;
    let (toml, sidecar) = sidecar_toml(&docs, &config_map)?;
    passes_the_sidecars_check(&toml, "envoy_gateway")?;
    let namespace = proxy["metadata"]["namespace"]
        .as_str()
        .context("namespace")?;
    let map_namespace = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .map(|d| &d["metadata"]["namespace"]);
    ensure!(
        map_namespace == Some(&json!(namespace)),
        "the ConfigMap must be in the proxy pods' namespace {namespace}"
    );

    // The sidecar's cluster, and the security settings, on that Gateway.
    let patch = &one(&docs, "EnvoyPatchPolicy")?["spec"];
    let on_gateway = json!({"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "name": gateway["metadata"]["name"]});
    ensure!(patch["targetRef"] == on_gateway, "{}", patch["targetRef"]);
    let added = patch["jsonPatches"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
                && p["operation"]["op"] == "add"
        })
        .context("no cluster added")?;
    ensure!(added["name"] == SIDECAR_CLUSTER, "{added}");
    check_sidecar_cluster(&added["operation"]["value"], &sidecar, filter)?;
    let client = &one(&docs, "ClientTrafficPolicy")?["spec"];
    ensure!(
        client["targetRefs"] == json!([on_gateway]),
        "{}",
        client["targetRefs"]
    );
    ensure!(
        client["headers"]["withUnderscoresAction"] == "DropHeader"
            && client["headers"]["earlyRequestHeaders"]["remove"] == json!(IDENTITY_HEADERS),
        "headers: {}",
        client["headers"]
    );
    readme_creates_the_token_secret(namespace)
}

/// The filter image packs the .wasm scripts/build.sh builds; the sidecar image is a release
/// build that runs as a non-root user on a slim base, with nothing but the binary from the build.
#[test]
fn the_images_are_built_from_the_release_artifacts() -> Result<()> {
    let root = workspace_root();
    let filter = std::fs::read_to_string(root.join("deploy/k8s/filter.Dockerfile"))?;
    let wasm = "target/wasm32-wasip1/wasm-release/envoy_secret_auth_filter.wasm";
    ensure!(
        filter.contains("FROM scratch") && filter.contains(&format!("COPY {wasm} ./plugin.wasm")),
        "deploy/k8s/filter.Dockerfile must put {wasm} in a scratch image as plugin.wasm"
    );
    let build = std::fs::read_to_string(root.join("scripts/build.sh"))?;
    ensure!(
        build.contains("--profile wasm-release --target wasm32-wasip1"),
        "scripts/build.sh no longer builds {wasm}"
    );
    let sidecar = std::fs::read_to_string(root.join("envoy/docker/sidecar.Dockerfile"))?;
    let stages: Vec<&str> = sidecar.split("\nFROM ").collect();
    let last = stages.last().context("no stage")?;
    ensure!(
        sidecar.contains("cargo build --release --locked -p secret-sidecar"),
        "the sidecar image is not a release build"
    );
    ensure!(
        last.starts_with("debian:bookworm-slim")
            && last.contains("COPY --from=build /src/target/release/secret-sidecar ")
            && !last.contains("cargo"),
        "the sidecar image's last stage: {last}"
    );
    ensure!(image_uid()? != 0, "the sidecar image runs as root");
    Ok(())
}
