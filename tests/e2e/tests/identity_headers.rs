//! `strip_identity_headers: false` (issue #9): the filter leaves client copies of the identity
//! headers to Envoy's early header mutation (the shipped shape) and writes only the values it
//! knows. Nothing a client sends as `X-Consumer-Username`, `X-Credential-Identifier` or
//! `X-Consumer-Custom-Id` may reach the upstream: not on a route without plugins, not next to the
//! filter's own values. A control Envoy without the mutation shows that the same requests would
//! carry the client's values there, so the checks can fail.

use anyhow::{ensure, Context, Result};
use e2e::{
    get, test_dir, Envoy, EnvoyConfig, EnvoySpec, Moto, Paths, Sidecar, SidecarCache, Upstream,
    IDENTITY_HEADERS,
};
use serde_json::{json, Value};

const BOB_REF: &str = "$secret://aws/my-secrets-manager/bob-credentials/key";

fn filter_config() -> Value {
    json!({
        "sidecar": e2e::filter_sidecar_section(),
        "strip_identity_headers": false,
        "consumers": [{
            "username": "bob",
            "credentials": [{"id": "bob-key-auth", "type": "key-auth", "key": BOB_REF}]
        }],
        "plugins": {"key-auth": {}},
        "routes": {"open": {}}
    })
}

/// Every identity header, as a client would forge it.
fn forged() -> Vec<(&'static str, &'static str)> {
    IDENTITY_HEADERS.iter().map(|h| (*h, "mallory")).collect()
}

/// The identity headers the upstream saw (the echo upstream's JSON).
fn seen(reply: &e2e::Reply) -> Result<Vec<(String, Value)>> {
    let echoed = reply.json()?;
    Ok(IDENTITY_HEADERS
        .iter()
        .filter_map(|h| {
            let v = &echoed["headers"][*h];
            (!v.is_null()).then(|| ((*h).to_owned(), v.clone()))
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_removes_client_identity_headers_when_the_filter_does_not() -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir("identity_headers")?;
    let moto = Moto::start(&paths, &dir).await?;
    moto.create_secret("bob-credentials", &json!({"key": "bob-key"}))
        .await?;
    let sidecar = Sidecar::start(&paths, &dir, &moto, SidecarCache::default()).await?;
    let upstream = Upstream::start().await?;
    let mut spec = EnvoySpec::new(
        filter_config(),
        upstream.port(),
        sidecar.port(),
        sidecar.token(),
    );
    spec.extra_routes = vec![("open".into(), "/open".into())];
    let envoy = Envoy::start(&paths, &dir, &spec).await?;

    let mut headers = forged();
    headers.push(("apikey", "bob-key"));
    // The first request may wait for the first resolution.
    let reply = get(&envoy.url("/ip"), &headers).await?;
    ensure!(
        reply.status == 200,
        "bob's key: {} {}",
        reply.status,
        reply.body
    );
    let want = vec![
        ("x-consumer-username".to_owned(), json!("bob")),
        ("x-credential-identifier".to_owned(), json!("bob-key-auth")),
    ];
    ensure!(
        seen(&reply)? == want,
        "authenticated: the upstream saw {:?}, expected only the filter's {want:?}",
        seen(&reply)?
    );

    let reply = get(&envoy.url("/open"), &forged()).await?;
    ensure!(
        reply.status == 200,
        "open route: {} {}",
        reply.status,
        reply.body
    );
    ensure!(
        seen(&reply)?.is_empty(),
        "open route: the upstream saw client identity headers {:?}",
        seen(&reply)?
    );

    let reply = get(&envoy.url("/ip"), &forged()).await?;
    ensure!(
        reply.status == 401,
        "no key: {} {}",
        reply.status,
        reply.body
    );

    // Control: the same filter config without the early header mutation forwards the forgery.
    let control_dir = dir.join("control");
    std::fs::create_dir_all(&control_dir)?;
    let config = EnvoyConfig::rendered(&spec, &paths.wasm, |config| {
        config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            ["typed_config"]
            .as_object_mut()
            .context("the HTTP connection manager")?
            .remove("early_header_mutation_extensions")
            .context("the rendered config has no early header mutation")?;
        Ok(())
    })?;
    let control = Envoy::start_with_config(&paths, &control_dir, &config).await?;
    let reply = get(&control.url("/open"), &forged()).await?;
    ensure!(
        reply.status == 200 && seen(&reply)?.len() == IDENTITY_HEADERS.len(),
        "control: expected the forged headers at the upstream, got {} {:?}",
        reply.status,
        seen(&reply)
    );
    Ok(())
}
