//! The fixtures themselves, independent of the filter: if these fail, so will every e2e test.

use anyhow::Result;
use e2e::{get, render_envoy_config, test_dir, EnvoySpec, Moto, Paths, Upstream};
use serde_json::json;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_stores_and_rotates_secrets() -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir("fixture_moto")?;
    let moto = Moto::start(&paths, &dir).await?;
    moto.create_secret("s", &json!({"k": "v1"})).await?;
    assert_eq!(moto.get_secret_string("s").await?, r#"{"k":"v1"}"#);
    moto.put_secret_value("s", &json!({"k": "v2"})).await?;
    assert_eq!(moto.get_secret_string("s").await?, r#"{"k":"v2"}"#);
    assert!(moto.get_secret_string("missing").await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_echoes_path_origin_and_headers() -> Result<()> {
    let upstream = Upstream::start().await?;
    let url = format!("http://127.0.0.1:{}/ip?x=1", upstream.port());
    let reply = get(&url, &[("X-One", "1"), ("apikey", "k")]).await?;
    assert_eq!(reply.status, 200);
    let body = reply.json()?;
    assert_eq!(body["path"], "/ip");
    assert_eq!(body["query"], "x=1");
    assert_eq!(body["origin"], "127.0.0.1");
    assert_eq!(body["headers"]["x-one"], "1");
    assert_eq!(body["headers"]["apikey"], "k");
    Ok(())
}

#[test]
fn envoy_config_embeds_the_filter_json_as_a_string() {
    let filter = json!({"consumers": [{"username": "alice"}]});
    let spec = EnvoySpec::new(filter.clone(), 1001, 1002, "t");
    let config = render_envoy_config(&spec, Path::new("/x.wasm"), 1003, 1004);
    let hcm = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0];
    let wasm = &hcm["typed_config"]["http_filters"][0]["typed_config"]["config"];
    let value = wasm["configuration"]["value"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(value).unwrap(),
        filter
    );
    assert_eq!(wasm["vm_config"]["code"]["local"]["filename"], "/x.wasm");
    assert_eq!(
        config["static_resources"]["clusters"][1]["name"],
        e2e::SIDECAR_CLUSTER
    );
}
