//! Issue #7, item 16: Envoy 1.40 re-matches a request's route after the Wasm filter edits its
//! request headers. The filter picks its plugin set by route name (`xds.route_name`, read before
//! it edits any header; the property still names the first route afterwards, so the filter
//! cannot see the re-match), then writes request headers: it removes client copies of
//! `X-Consumer-Username`, `X-Credential-Identifier` and `X-Consumer-Custom-Id` (on every route),
//! sets its own after authentication, and removes the key with `hide_credentials`. The router
//! then sends the request by the route the *edited* headers match.
//!
//! The attack (scenario 1): a route without auth plugins matched on a client-sent
//! `x-consumer-username`; the filter runs no plugin and removes the header; Envoy re-matches and
//! sends the now unauthenticated request to the key-auth route's upstream. It is closed in Envoy's
//! configuration: every shipped config removes client copies of the identity headers in the HTTP
//! connection manager's `early_header_mutation_extensions`, before the route is first matched, so
//! clients cannot steer routing with them and the filter's own removal changes nothing.
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
//! The checked Envoy is lib.rs's config (the shipped shape: the early header mutation, the Wasm
//! filter, the router) with these routes. Its cases:
//!
//! * Scenario 1, a client-sent identity header and no key: refused (401) or kept on the open
//!   route; never forwarded to `upstream_b`, and no upstream sees the client's header.
//! * Scenario 3, `/k/x` with a valid key: matches `ip` (the key is present), whose
//!   `hide_credentials` removes it, and Envoy re-matches `keyless`. The safe property is asserted:
//!   wherever the request goes it is authenticated (the upstream sees the filter's
//!   `X-Consumer-Username: alice` and no key); a keyless request reaches `keyless` anyway, and a
//!   wrong key is refused, so hiding a credential never yields an unauthenticated request.
//! * Scenario 2, kept as a regression guard of Envoy's behaviour that docs/SECURITY.md relies
//!   on: a valid key on `/ip` is authenticated by `ip`'s key-auth, then the filter's own
//!   `X-Consumer-Username` makes Envoy re-match `open-username`. Routes matched on the identity
//!   headers the filter writes are forbidden for this reason (such a route receives requests
//!   authenticated by the plugins of the route first matched); the case asserts the re-route so
//!   that a change in Envoy is noticed and the documentation revisited.
//!
//! A control Envoy has the same config *without* the early header mutation: scenario 1 must reach
//! `upstream_b` there (the attack), which shows that Envoy re-matches and that the checks above
//! would detect it. Evidence on failure: the router's debug lines ("cluster '...' match for URL")
//! from `envoy.log` and the access log (final route and cluster), in `.run/e2e/route_cache/`
//! (the control's in its `control/` subdirectory).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use e2e::{
    client, clusters_mut, early_identity_header_removal, get, test_dir, Envoy, EnvoyConfig,
    EnvoySpec, Moto, Paths, Reply, Sidecar, SidecarCache, Upstream, IDENTITY_HEADERS,
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
        "sidecar": e2e::filter_sidecar_section(),
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

/// lib.rs's Envoy config with this test's routes, two upstream clusters and an access log;
/// `early_removal: false` takes the early header mutation out (the control).
fn envoy_config(
    spec: &EnvoySpec,
    paths: &Paths,
    upstream_a: u16,
    upstream_b: u16,
    access_log: &str,
    early_removal: bool,
) -> Result<EnvoyConfig> {
    EnvoyConfig::rendered(spec, &paths.wasm, |config| {
        let clusters = clusters_mut(config)?;
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
        ensure!(
            hcm["early_header_mutation_extensions"] == early_identity_header_removal(),
            "lib.rs's config must carry the shipped early header mutation: {hcm}"
        );
        if !early_removal {
            hcm.as_object_mut()
                .context("the HTTP connection manager")?
                .remove("early_header_mutation_extensions");
        }
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
        let filters = hcm["http_filters"].as_array().context("http_filters")?;
        ensure!(
            filters.len() == 2
                && filters[0]["name"] == "envoy.filters.http.wasm"
                && filters[1]["name"] == "envoy.filters.http.router",
            "expected the Wasm filter then the router: {filters:?}"
        );
        Ok(())
    })
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

impl Outcome {
    /// A request header as the upstream received it (the echo upstream's JSON).
    fn upstream_saw(&self, name: &str) -> Option<String> {
        let echoed = self.reply.json().ok()?;
        echoed["headers"][name].as_str().map(str::to_owned)
    }

    fn summary(&self) -> String {
        format!(
            "{} via route {:?}, upstream_a +{}, upstream_b +{}; body {}",
            self.reply.status, self.route, self.to_a, self.to_b, self.reply.body
        )
    }
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
                "{case}: expected 200 via route {route:?} to upstream_{upstream}; got {}",
                out.summary()
            ),
        );
    }

    /// The request was answered locally with 401 and reached no upstream.
    fn refused(&mut self, case: &str, out: &Outcome) {
        self.check(
            out.reply.status == 401 && (out.to_a, out.to_b) == (0, 0),
            format!(
                "{case}: expected a local 401 and no upstream; got {}",
                out.summary()
            ),
        );
    }

    /// The upstream saw alice as the filter set her, and not the key (hide_credentials).
    fn authenticated_as_alice(&mut self, case: &str, out: &Outcome) {
        for (name, value) in [
            ("x-consumer-username", "alice"),
            ("x-credential-identifier", "alice-key-auth"),
            ("x-consumer-custom-id", ALICE_CUSTOM_ID),
        ] {
            let got = out.upstream_saw(name);
            self.check(
                got.as_deref() == Some(value),
                format!("{case}: the upstream saw {name}: {got:?}, expected {value:?}"),
            );
        }
        self.check(
            out.upstream_saw("apikey").is_none(),
            format!("{case}: the key reached the upstream despite hide_credentials"),
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
    early_removal: bool,
) -> Result<Envoy> {
    let access_log = dir.join("access.log").display().to_string();
    let config = envoy_config(
        spec,
        paths,
        upstreams.0,
        upstreams.1,
        &access_log,
        early_removal,
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
async fn route_rematching_after_the_filters_edits_never_forwards_an_unauthenticated_request(
) -> Result<()> {
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
    // The shipped shape (early header mutation, the Wasm filter, the router), this test's routes.
    let envoy = start_envoy(&paths, &dir, &spec, upstreams, true).await?;
    let mut failures = Failures::default();

    // Baseline: the default route wants a key (the first request may wait for the first
    // resolution).
    let out = send(&envoy, "baseline-no-key", "/ip", &[]).await?;
    failures.refused("baseline-no-key", &out);

    // Scenario 1: a client-sent identity header (no key) that would select an open route. The
    // early header mutation removes it before routing, so the request is matched by `ip` and
    // refused; staying on the open route would be safe too. It must never reach `ip`'s upstream
    // unauthenticated, and no upstream may see the client's header.
    for (route, header) in OPEN_ROUTES {
        let case = format!("s1-{route}");
        let out = send(&envoy, &case, "/ip", &[(header, "alice")]).await?;
        failures.check(
            out.to_b == 0,
            format!(
                "{case}: an unauthenticated request reached the key-auth route's upstream \
                 (upstream_b): {}",
                out.summary()
            ),
        );
        let refused = out.reply.status == 401 && (out.to_a, out.to_b) == (0, 0);
        let stayed =
            out.reply.status == 200 && out.route.as_deref() == Some(route) && out.to_a == 1;
        failures.check(
            refused || stayed,
            format!(
                "{case}: expected a local 401 or the open route {route:?}; got {}",
                out.summary()
            ),
        );
        if out.reply.status == 200 {
            for name in IDENTITY_HEADERS {
                failures.check(
                    out.upstream_saw(name).is_none(),
                    format!("{case}: the upstream saw a client-sent {name}"),
                );
            }
        }
    }

    // Scenario 3: under `/k`, a request without `apikey` matches `keyless` (no plugins); with a
    // key it matches `ip`, whose hide_credentials removes the key, and Envoy re-matches
    // `keyless`. Wherever it goes, the request is authenticated.
    let out = send(&envoy, "s3-no-key", "/k/x", &[]).await?;
    failures.forwarded("s3-no-key", &out, "keyless", 'a');
    for name in IDENTITY_HEADERS {
        failures.check(
            out.upstream_saw(name).is_none(),
            format!("s3-no-key: the upstream saw {name} on a request nobody authenticated"),
        );
    }
    let out = send(&envoy, "s3-wrong-key", "/k/x", &[("apikey", "wrong")]).await?;
    failures.refused("s3-wrong-key", &out);
    let out = send(&envoy, "s3-hidden-key", "/k/x", &[("apikey", ALICE_KEY)]).await?;
    failures.check(
        out.reply.status == 200
            && out.to_a + out.to_b == 1
            && matches!(out.route.as_deref(), Some("ip" | "keyless")),
        format!(
            "s3-hidden-key: expected 200 via route \"ip\" or \"keyless\"; got {}",
            out.summary()
        ),
    );
    if out.reply.status == 200 {
        failures.authenticated_as_alice("s3-hidden-key", &out);
    }

    // Scenario 2 (a forbidden configuration, kept as a guard of Envoy's behaviour): a valid key
    // on `/ip` is authenticated by `ip`'s key-auth; the filter's own X-Consumer-Username makes
    // Envoy re-match `open-username`, which receives the request authenticated.
    let out = send(&envoy, "s2-valid-key", "/ip", &[("apikey", ALICE_KEY)]).await?;
    failures.forwarded("s2-valid-key", &out, "open-username", 'a');
    if out.reply.status == 200 {
        failures.authenticated_as_alice("s2-valid-key", &out);
    }

    // Control: without the early header mutation, scenario 1 is the attack. Envoy re-matches the
    // request after the filter removed the client's header and forwards it to `ip`'s upstream
    // without a key: the checks above detect a re-match, and the mutation is what stops it.
    let control_dir = dir.join("control");
    std::fs::create_dir_all(&control_dir)?;
    let control = start_envoy(&paths, &control_dir, &spec, upstreams, false).await?;
    let mut control_failures = Failures::default();
    for (route, header) in OPEN_ROUTES {
        let case = format!("control-s1-{route}");
        let out = send(&control, &case, "/ip", &[(header, "alice")]).await?;
        control_failures.forwarded(&case, &out, "ip", 'b');
    }

    let mut report = String::new();
    if !failures.0.is_empty() {
        report += &format!(
            "{} failed check(s) with the shipped configuration:\n{}\n{}\n",
            failures.0.len(),
            failures.0.join("\n"),
            evidence(&envoy, &dir)
        );
    }
    if !control_failures.0.is_empty() {
        report += &format!(
            "without the early header mutation, Envoy no longer re-routes scenario 1 (the test \
             may not detect a re-match; revisit docs/SECURITY.md \"Route re-matching\"):\n{}\n{}\n",
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
