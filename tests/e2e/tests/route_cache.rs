//! Issue #7, item 16: the filter picks its plugin set by route name (`xds.route_name`, read before
//! it edits any header), then writes request headers (sets or removes `X-Consumer-Username`,
//! `X-Credential-Identifier`, `X-Consumer-Custom-Id`; removes the key with `hide_credentials`).
//! If those writes cleared Envoy's route cache, the router would re-match the edited request and
//! could send it to a route whose plugins never ran. This test asserts, through a real Envoy 1.40,
//! that every request reaches the upstream of the route whose plugins the filter applied.
//!
//! Routes, in match order (every route names itself to the upstream in `x-e2e-route`):
//!
//! | route             | matches                                  | plugins          | cluster      |
//! |-------------------|------------------------------------------|------------------|--------------|
//! | `keyless`         | prefix `/k`, no `apikey` header          | none             | `upstream_a` |
//! | `open-username`   | `x-consumer-username` present            | none             | `upstream_a` |
//! | `open-credential` | `x-credential-identifier` present        | none             | `upstream_a` |
//! | `open-custom-id`  | `x-consumer-custom-id` present           | none             | `upstream_a` |
//! | `ip`              | prefix `/`                               | key-auth, hidden | `upstream_b` |
//!
//! The checked Envoy has exactly the shipped filter chain (the Wasm filter, then the router). A
//! second Envoy adds a Lua filter between them that clears the route cache when a request carries
//! `x-e2e-clear-route-cache`: its control cases show that a cleared cache *does* move these
//! requests, so the checks detect a re-match. Evidence on failure: the router's debug lines
//! ("cluster '...' match for URL") from `envoy.log` and the access log (final route and cluster),
//! both in `.run/e2e/route_cache/`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e::{
    client, free_port, get, render_envoy_config, test_dir, Envoy, EnvoyConfig, EnvoySpec, Moto,
    Paths, Reply, Sidecar, SidecarCache, Upstream, SIDECAR_CLUSTER,
};
use serde_json::{json, Value};

const ALICE_REF: &str = "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth";
const ALICE_KEY: &str = "alice-key";
const ALICE_CUSTOM_ID: &str = "alice-001";
/// The route-marker header every route adds to the request it forwards (the router adds the
/// headers of the route it finally uses).
const ROUTE_MARKER: &str = "x-e2e-route";
/// A request header naming the case, for the access log.
const CASE: &str = "x-e2e-case";
/// Makes the Lua control filter clear the route cache after the Wasm filter.
const CLEAR: &str = "x-e2e-clear-route-cache";
/// Each open route and the identity header it is matched on.
const OPEN_ROUTES: [(&str, &str); 3] = [
    ("open-username", "x-consumer-username"),
    ("open-credential", "x-credential-identifier"),
    ("open-custom-id", "x-consumer-custom-id"),
];
/// Bounds one request (the whole test stays well under 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

fn filter_config() -> Value {
    let mut routes = serde_json::Map::new();
    routes.insert("keyless".into(), json!({}));
    for (name, _) in OPEN_ROUTES {
        routes.insert(name.into(), json!({}));
    }
    json!({
        "sidecar": {
            "cluster": SIDECAR_CLUSTER,
            "authority": "secret-sidecar",
            "timeout_ms": 2000,
            "token": "$env://SECRET_SIDECAR_TOKEN"
        },
        "refresh_interval_s": 30,
        "startup_wait_ms": 5000,
        "consumers": [{
            "username": "alice",
            "labels": {"custom_id": ALICE_CUSTOM_ID},
            "credentials": [{"id": "alice-key-auth", "type": "key-auth", "key": ALICE_REF}]
        }],
        "plugins": {"key-auth": {"header": "apikey", "query": "apikey", "hide_credentials": true}},
        "routes": routes
    })
}

/// One route that adds [`ROUTE_MARKER`] naming itself.
fn route(name: &str, matcher: Value, cluster: &str) -> Value {
    json!({
        "name": name,
        "match": matcher,
        "route": {"cluster": cluster},
        "request_headers_to_add": [{
            "header": {"key": ROUTE_MARKER, "value": name},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"
        }]
    })
}

fn routes() -> Vec<Value> {
    let mut routes = vec![route(
        "keyless",
        json!({"prefix": "/k", "headers": [{"name": "apikey", "present_match": false}]}),
        "upstream_a",
    )];
    for (name, header) in OPEN_ROUTES {
        routes.push(route(
            name,
            json!({"prefix": "/", "headers": [{"name": header, "present_match": true}]}),
            "upstream_a",
        ));
    }
    routes.push(route("ip", json!({"prefix": "/"}), "upstream_b"));
    routes
}

/// lib.rs's Envoy config with this test's routes, two upstream clusters, an access log and the
/// Lua control filter.
fn envoy_config(
    spec: &EnvoySpec,
    paths: &Paths,
    upstream_a: u16,
    upstream_b: u16,
    access_log: &str,
    lua_control: bool,
) -> Result<EnvoyConfig> {
    let listener_port = free_port()?;
    let admin_port = free_port()?;
    let mut config = render_envoy_config(spec, &paths.wasm, listener_port, admin_port);

    let clusters = config["static_resources"]["clusters"]
        .as_array_mut()
        .context("clusters")?;
    let template = clusters
        .iter()
        .find(|c| c["name"] == "upstream")
        .cloned()
        .context("cluster `upstream`")?;
    clusters.retain(|c| c["name"] != "upstream");
    for (name, port) in [("upstream_a", upstream_a), ("upstream_b", upstream_b)] {
        let mut cluster = template.clone();
        cluster["name"] = json!(name);
        cluster["load_assignment"]["cluster_name"] = json!(name);
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"] = json!(port);
        clusters.push(cluster);
    }

    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    let vhosts = hcm["route_config"]["virtual_hosts"]
        .as_array_mut()
        .context("virtual_hosts")?;
    ensure!(vhosts.len() == 1, "expected one virtual host");
    vhosts[0]["routes"] = Value::Array(routes());
    hcm["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": access_log,
            "log_format": {"text_format_source": {"inline_string":
                "case=%REQ(X-E2E-CASE)% route=%ROUTE_NAME% cluster=%UPSTREAM_CLUSTER% status=%RESPONSE_CODE%\n"
            }}
        }
    }]);
    let filters = hcm["http_filters"].as_array_mut().context("http_filters")?;
    ensure!(
        filters.len() == 2 && filters[1]["name"] == "envoy.filters.http.router",
        "expected the Wasm filter then the router: {filters:?}"
    );
    if lua_control {
        insert_lua_control(filters);
    }

    Ok(EnvoyConfig {
        text: serde_json::to_string_pretty(&config)?,
        file_name: "envoy.json",
        listener_port,
        admin_port,
        token: spec.token.clone(),
        concurrency: spec.concurrency,
    })
}

/// A Lua filter between the Wasm filter and the router that clears the route cache when the
/// request carries [`CLEAR`].
fn insert_lua_control(filters: &mut Vec<Value>) {
    let lua = format!(
        "function envoy_on_request(h)\n  if h:headers():get(\"{CLEAR}\") ~= nil then\n    \
         h:clearRouteCache()\n  end\nend\n"
    );
    filters.insert(
        1,
        json!({
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": lua}
            }
        }),
    );
}

/// Requests forwarded to each upstream cluster so far (Envoy's counters).
async fn upstream_counts(envoy: &Envoy) -> Result<(u64, u64)> {
    let a = envoy.stat("cluster.upstream_a.upstream_rq_total").await?;
    let b = envoy.stat("cluster.upstream_b.upstream_rq_total").await?;
    Ok((a.unwrap_or(0), b.unwrap_or(0)))
}

/// Where one request ended up.
struct Outcome {
    reply: Reply,
    /// The route the router used (its marker, as the upstream received it), `None` for a local
    /// reply.
    route: Option<String>,
    /// Requests this one added to `upstream_a` and `upstream_b`.
    to_a: u64,
    to_b: u64,
}

async fn send(envoy: &Envoy, case: &str, path: &str, headers: &[(&str, &str)]) -> Result<Outcome> {
    let before = upstream_counts(envoy).await?;
    let mut all = vec![(CASE, case)];
    all.extend_from_slice(headers);
    let reply = tokio::time::timeout(REQUEST_TIMEOUT, get(&envoy.url(path), &all))
        .await
        .with_context(|| format!("{case}: no answer within {REQUEST_TIMEOUT:?}"))??;
    let after = upstream_counts(envoy).await?;
    let route = if reply.status == 200 {
        let echoed = reply.json()?;
        echoed["headers"][ROUTE_MARKER].as_str().map(str::to_owned)
    } else {
        None
    };
    Ok(Outcome {
        reply,
        route,
        to_a: after.0 - before.0,
        to_b: after.1 - before.1,
    })
}

fn echoed_header(reply: &Reply, name: &str) -> Option<String> {
    let echoed = reply.json().ok()?;
    echoed["headers"][name].as_str().map(str::to_owned)
}

/// Collects failed checks so that every case is reported.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn check(&mut self, ok: bool, what: String) {
        if !ok {
            self.0.push(what);
        }
    }

    /// The request was forwarded once, by route `route`, to upstream `a` or `b`.
    fn forwarded(&mut self, case: &str, out: &Outcome, route: &str, upstream: char) {
        let expected = if upstream == 'a' { (1, 0) } else { (0, 1) };
        self.check(
            out.reply.status == 200
                && out.route.as_deref() == Some(route)
                && (out.to_a, out.to_b) == expected,
            format!(
                "{case}: expected 200 via route {route:?} to upstream_{upstream}; got {} via route \
                 {:?}, upstream_a +{}, upstream_b +{}; body {}",
                out.reply.status, out.route, out.to_a, out.to_b, out.reply.body
            ),
        );
    }
}

/// Starts Envoy from [`envoy_config`] in `dir` and turns on the router's debug log (which names
/// the cluster each request is matched to) through the admin API.
async fn start_envoy(
    paths: &Paths,
    dir: &Path,
    spec: &EnvoySpec,
    upstreams: (u16, u16),
    lua_control: bool,
) -> Result<Envoy> {
    let access_log = dir.join("access.log").display().to_string();
    let config = envoy_config(
        spec,
        paths,
        upstreams.0,
        upstreams.1,
        &access_log,
        lua_control,
    )?;
    let envoy = Envoy::start_with_config(paths, dir, &config).await?;
    let resp = client()?
        .post(envoy.admin_url("/logging?router=debug"))
        .send()
        .await
        .context("POST /logging")?;
    ensure!(
        resp.status().is_success(),
        "POST /logging answered {}",
        resp.status()
    );
    Ok(envoy)
}

/// The router's "cluster ... match for URL" lines and the access log, for failure messages.
fn evidence(envoy: &Envoy, dir: &Path) -> String {
    let routed: Vec<String> = envoy
        .logs()
        .lines()
        .filter(|l| l.contains("match for URL"))
        .map(str::to_owned)
        .collect();
    let access = std::fs::read_to_string(dir.join("access.log")).unwrap_or_default();
    format!(
        "Envoy router log ({}):\n{}\nEnvoy access log (flushed lazily):\n{access}",
        dir.join("envoy.log").display(),
        routed.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_is_not_recomputed_after_the_filters_header_edits() -> Result<()> {
    let paths = Paths::locate()?;
    let dir = test_dir("route_cache")?;
    let moto = Moto::start(&paths, &dir).await?;
    moto.create_secret("alice-credentials", &json!({"alice-key-auth": ALICE_KEY}))
        .await?;
    let sidecar = Sidecar::start(&paths, &dir, &moto, SidecarCache::default()).await?;
    let upstream_a = Upstream::start().await?;
    let upstream_b = Upstream::start().await?;
    let upstreams = (upstream_a.port(), upstream_b.port());
    let spec = EnvoySpec::new(
        filter_config(),
        upstream_b.port(),
        sidecar.port(),
        sidecar.token(),
    );
    // Exactly the shipped shape (the Wasm filter, then the router), with this test's routes.
    let envoy = start_envoy(&paths, &dir, &spec, upstreams, false).await?;
    let mut failures = Failures::default();

    // Baseline: the default route wants a key (the first request may wait for the first
    // resolution).
    let out = send(&envoy, "baseline-no-key", "/ip", &[]).await?;
    failures.check(
        out.reply.status == 401 && (out.to_a, out.to_b) == (0, 0),
        format!(
            "baseline-no-key: expected a local 401; got {} (upstream_a +{}, upstream_b +{})",
            out.reply.status, out.to_a, out.to_b
        ),
    );

    // Scenario 1: a forged identity header selects an open route; the filter runs no plugins and
    // removes the header. The request must stay on the open route (upstream_a): were the route
    // re-matched, it would reach the key-auth route's upstream without a key.
    for (route, header) in OPEN_ROUTES {
        let case = format!("s1-{route}");
        let out = send(&envoy, &case, "/ip", &[(header, "alice")]).await?;
        failures.check(
            out.to_b == 0,
            format!(
                "{case}: an unauthenticated request reached the key-auth route's upstream \
                 (upstream_b) via route {:?}",
                out.route
            ),
        );
        failures.forwarded(&case, &out, route, 'a');
        if out.reply.status == 200 {
            failures.check(
                echoed_header(&out.reply, header).is_none(),
                format!("{case}: the client's {header} reached the upstream"),
            );
        }
    }

    // Scenario 2: a valid key on the default route; the filter sets the identity headers (which
    // the open routes match on) and removes the key (hide_credentials). The request must stay on
    // route `ip` (upstream_b).
    let out = send(&envoy, "s2-valid-key", "/ip", &[("apikey", ALICE_KEY)]).await?;
    failures.forwarded("s2-valid-key", &out, "ip", 'b');
    if out.reply.status == 200 {
        for (name, value) in [
            ("x-consumer-username", "alice"),
            ("x-credential-identifier", "alice-key-auth"),
            ("x-consumer-custom-id", ALICE_CUSTOM_ID),
        ] {
            let got = echoed_header(&out.reply, name);
            failures.check(
                got.as_deref() == Some(value),
                format!("s2-valid-key: upstream saw {name}: {got:?}, expected {value:?}"),
            );
        }
        failures.check(
            echoed_header(&out.reply, "apikey").is_none(),
            "s2-valid-key: the key reached the upstream despite hide_credentials".into(),
        );
    }

    // Scenario 3: under `/k` a request without `apikey` matches `keyless`; with a valid key it
    // matches `ip`, whose hide_credentials removes the key. It must stay on `ip`.
    let out = send(&envoy, "s3-hidden-key", "/k/x", &[("apikey", ALICE_KEY)]).await?;
    failures.forwarded("s3-hidden-key", &out, "ip", 'b');

    // Controls, on a second Envoy with a Lua filter after the Wasm filter: with the route cache
    // cleared on purpose, the same requests do move, so the cases above detect a re-match. (No
    // header edit by the Lua filter: only the clear.)
    let control_dir = dir.join("control");
    std::fs::create_dir_all(&control_dir)?;
    let control = start_envoy(&paths, &control_dir, &spec, upstreams, true).await?;
    let mut control_failures = Failures::default();
    let out = send(
        &control,
        "control-s1",
        "/ip",
        &[("x-consumer-username", "alice"), (CLEAR, "1")],
    )
    .await?;
    control_failures.forwarded("control-s1 (cache cleared)", &out, "ip", 'b');
    let out = send(
        &control,
        "control-s2",
        "/ip",
        &[("apikey", ALICE_KEY), (CLEAR, "1")],
    )
    .await?;
    control_failures.forwarded("control-s2 (cache cleared)", &out, "open-username", 'a');

    let mut report = String::new();
    if !failures.0.is_empty() {
        report += &format!(
            "{} failed check(s) with the shipped filter chain:\n{}\n{}\n",
            failures.0.len(),
            failures.0.join("\n"),
            evidence(&envoy, &dir)
        );
    }
    if !control_failures.0.is_empty() {
        report += &format!(
            "the controls did not re-route (the test may not detect a re-match):\n{}\n{}\n",
            control_failures.0.join("\n"),
            evidence(&control, &control_dir)
        );
    }
    drop(control);
    drop(envoy);
    drop(sidecar);
    if !report.is_empty() {
        bail!("{report}");
    }
    Ok(())
}
