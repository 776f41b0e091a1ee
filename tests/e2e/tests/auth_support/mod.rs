//! Support for `auth_types.rs`: the tutorial's consumers and routes, a stack whose Envoy has one
//! named route per auth type, credentials made by Python (PyJWT, `cryptography`, `hmac`), and
//! checks that return errors instead of panicking, so that one shared stack can run many cases
//! and report every failure. Also used by `attacks.rs`.

// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use e2e::{
    client, free_port, render_envoy_config, test_dir, workspace_root, Envoy, EnvoyConfig,
    EnvoySpec, Moto, Paths, Reply, Sidecar, SidecarCache, Upstream, SIDECAR_CLUSTER,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// The tutorial's secret, holding every credential of alice.
pub const ALICE_SECRET: &str = "alice-credentials";
pub const RSA_SECRET: &str = "rsa-user-jwt";
pub const EC_SECRET: &str = "ec-user-jwt";
pub const ALICE_CUSTOM_ID: &str = "alice-001";

pub fn alice_secret() -> Value {
    json!({
        "alice-key-auth": "alice-key",
        "alice-basic-auth": "alice-password",
        "alice-jwt-auth": "alice-secret",
        "alice-hmac-auth": "alice-secret-key"
    })
}

/// `$secret://aws/my-secrets-manager/<secret>/<field>`.
pub fn secret_ref(secret: &str, field: &str) -> String {
    format!("$secret://aws/{}/{secret}/{field}", e2e::PROVIDER_ID)
}

/// alice with one credential of each type, every sensitive field a reference into
/// `alice-credentials`.
pub fn alice() -> Value {
    let r = |field: &str| secret_ref(ALICE_SECRET, field);
    json!({
        "username": "alice",
        "labels": {"custom_id": ALICE_CUSTOM_ID},
        "credentials": [
            {"id": "alice-key-auth", "type": "key-auth", "key": r("alice-key-auth")},
            {"id": "alice-basic-auth", "type": "basic-auth", "username": "alice",
             "password": r("alice-basic-auth")},
            {"id": "alice-jwt-auth", "type": "jwt-auth", "key": "alice-key", "algorithm": "HS256",
             "secret": r("alice-jwt-auth")},
            {"id": "alice-hmac-auth", "type": "hmac-auth", "key_id": "alice-keyid",
             "secret_key": r("alice-hmac-auth")}
        ]
    })
}

/// A consumer with one asymmetric jwt-auth credential whose public key is `public_key` in `secret`.
pub fn jwt_user(username: &str, algorithm: &str, secret: &str) -> Value {
    json!({
        "username": username,
        "credentials": [{
            "id": format!("{username}-jwt-auth"), "type": "jwt-auth",
            "key": format!("{username}-key"), "algorithm": algorithm,
            "public_key": secret_ref(secret, "public_key")
        }]
    })
}

/// What [`Crypto`] needs to sign a request of alice's (hmac-auth, hmac-sha256) to `method path`,
/// signing `@request-target` and `date`.
pub fn alice_hmac(method: &str, path: &str) -> Value {
    json!({"key_id": "alice-keyid", "secret": "alice-secret-key", "method": method,
           "path": path, "signed": ["@request-target", "date"]})
}

/// `base` with `field` set to `value`.
pub fn with(mut base: Value, field: &str, value: Value) -> Value {
    base[field] = value;
    base
}

/// Envoy routes (name, path prefix) besides the catch-all `/` route, which is named `ip`.
pub const ROUTES: &[(&str, &str)] = &[
    ("basic", "/basic"),
    ("jwt", "/jwt"),
    ("hmac", "/hmac"),
    ("open", "/open"),
    ("multi", "/multi"),
];
/// A route for `POST /hmac...` only, put ahead of `hmac`.
pub const HMAC_POST_ROUTE: &str = "hmac-post";

/// The filter configuration: one plugin set per named route. The default set (for routes not
/// listed) is basic-auth, so a filter that ignored `routes` would answer differently on every
/// route but `/basic`.
pub fn filter_config(consumers: Value, refresh_interval_s: u64) -> Value {
    json!({
        "sidecar": {
            "cluster": SIDECAR_CLUSTER,
            "authority": "secret-sidecar",
            "timeout_ms": 10000,
            "token": "$env://SECRET_SIDECAR_TOKEN"
        },
        "refresh_interval_s": refresh_interval_s,
        "startup_wait_ms": 10000,
        "consumers": consumers,
        "plugins": {"basic-auth": {}},
        "routes": {
            "ip": {"key-auth": {}},
            "basic": {"basic-auth": {}},
            "jwt": {"jwt-auth": {}},
            "hmac": {"hmac-auth": {}},
            HMAC_POST_ROUTE: {"hmac-auth": {"validate_request_body": true}},
            "open": {},
            "multi": {"key-auth": {}, "basic-auth": {}}
        }
    })
}

/// moto + sidecar + upstream + Envoy with [`ROUTES`] and [`HMAC_POST_ROUTE`]; dropped Envoy first.
#[derive(Debug)]
pub struct AuthStack {
    pub envoy: Envoy,
    /// Held so that it runs as long as the stack.
    _upstream: Upstream,
    pub sidecar: Sidecar,
    pub moto: Moto,
    pub dir: PathBuf,
}

/// What a test may change in an [`AuthStack`]'s Envoy.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Routes `(name, path prefix)` put before [`ROUTES`].
    pub routes: Vec<(&'static str, &'static str)>,
    /// Envoy's `--concurrency`.
    pub concurrency: u32,
    /// HTTP filters put before the filter under test.
    pub filters_before: Vec<Value>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            routes: Vec::new(),
            concurrency: 2,
            filters_before: Vec::new(),
        }
    }
}

impl AuthStack {
    pub async fn start(
        test_name: &str,
        secrets: &[(&str, Value)],
        cache: SidecarCache,
        filter: Value,
    ) -> Result<AuthStack> {
        let options = StackOptions::default();
        AuthStack::start_with(test_name, secrets, cache, filter, &options).await
    }

    /// [`AuthStack::start`] with more routes or another worker count.
    pub async fn start_with(
        test_name: &str,
        secrets: &[(&str, Value)],
        cache: SidecarCache,
        filter: Value,
        options: &StackOptions,
    ) -> Result<AuthStack> {
        let paths = Paths::locate()?;
        let dir = test_dir(test_name)?;
        let moto = Moto::start(&paths, &dir).await?;
        for (name, value) in secrets {
            moto.create_secret(name, value).await?;
        }
        let sidecar = Sidecar::start(&paths, &dir, &moto, cache).await?;
        let upstream = Upstream::start().await?;
        let mut spec = EnvoySpec::new(filter, upstream.port(), sidecar.port(), sidecar.token());
        spec.extra_routes = options
            .routes
            .iter()
            .chain(ROUTES)
            .map(|(n, p)| ((*n).to_owned(), (*p).to_owned()))
            .collect();
        spec.concurrency = options.concurrency;
        let listener_port = free_port()?;
        let admin_port = free_port()?;
        let mut config = render_envoy_config(&spec, &paths.wasm, listener_port, admin_port);
        add_hmac_post_route(&mut config)?;
        let filters = config
            .pointer_mut(
                "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
            )
            .and_then(Value::as_array_mut)
            .context("no http_filters in the rendered Envoy config")?;
        for (i, filter) in options.filters_before.iter().enumerate() {
            filters.insert(i, filter.clone());
        }
        let config = EnvoyConfig {
            text: serde_json::to_string_pretty(&config)?,
            file_name: "envoy.json",
            listener_port,
            admin_port,
            token: sidecar.token().to_owned(),
            concurrency: options.concurrency,
        };
        let envoy = Envoy::start_with_config(&paths, &dir, &config).await?;
        Ok(AuthStack {
            envoy,
            _upstream: upstream,
            sidecar,
            moto,
            dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }
}

/// Inserts the `POST /hmac` route (matched on `:method`) just before the `hmac` route.
fn add_hmac_post_route(config: &mut Value) -> Result<()> {
    let routes = config
        .pointer_mut(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes",
        )
        .and_then(Value::as_array_mut)
        .context("no routes in the rendered Envoy config")?;
    let at = routes
        .iter()
        .position(|r| r["name"] == "hmac")
        .context("no hmac route in the rendered Envoy config")?;
    routes.insert(
        at,
        json!({
            "name": HMAC_POST_ROUTE,
            "match": {
                "prefix": "/hmac",
                "headers": [{"name": ":method", "string_match": {"exact": "POST"}}]
            },
            "route": {"cluster": "upstream"}
        }),
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Requests and checks

/// How long a request may take: everything is local, so a request without an answer by then
/// hangs (and fails its case rather than holding the run for [`e2e::client`]'s 15 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One request on a new connection, bounded by [`REQUEST_TIMEOUT`].
pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Reply> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut request = client()?
        .request(method.clone(), url)
        .timeout(REQUEST_TIMEOUT);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let resp = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Result<Reply> {
    send("GET", url, headers, None).await
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

/// Standard base64 with padding.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The request reached the upstream as `consumer` with `credential`; `custom_id` is the
/// `X-Consumer-Custom-Id` it must see (`None`: no such header). Returns what the upstream echoed.
pub fn expect_consumer(
    reply: &Reply,
    consumer: &str,
    credential: &str,
    custom_id: Option<&str>,
) -> Result<Value> {
    ensure!(
        reply.status == 200,
        "expected 200, got {}: {}",
        reply.status,
        reply.body
    );
    let echoed = reply.json()?;
    let headers = &echoed["headers"];
    // A string, not an array: a client copy kept beside ours would show up as an array.
    ensure!(
        headers["x-consumer-username"] == consumer,
        "x-consumer-username should be {consumer:?}: {headers}"
    );
    ensure!(
        headers["x-credential-identifier"] == credential,
        "x-credential-identifier should be {credential:?}: {headers}"
    );
    let seen = headers.get("x-consumer-custom-id");
    match custom_id {
        Some(id) => ensure!(
            seen == Some(&json!(id)),
            "x-consumer-custom-id should be {id:?}: {headers}"
        ),
        None => ensure!(
            seen.is_none(),
            "x-consumer-custom-id should be absent: {headers}"
        ),
    }
    Ok(echoed)
}

/// A local reply `status` with body `{"message":"<message>"}` (byte for byte, bar a trailing
/// newline) and the given `WWW-Authenticate`.
pub fn expect_reject(
    reply: &Reply,
    status: u16,
    message: &str,
    www_authenticate: Option<&str>,
) -> Result<()> {
    let want = json!({ "message": message }).to_string();
    ensure!(
        reply.status == status && reply.body.trim_end() == want,
        "expected {status} {want}, got {} {:?}",
        reply.status,
        reply.body
    );
    if let Some(www) = www_authenticate {
        let got = reply.header("www-authenticate");
        ensure!(
            got.as_deref() == Some(www),
            "expected WWW-Authenticate {www:?}, got {got:?}"
        );
    }
    // A local reply, not an upstream answer: the echo server's JSON has a "headers" field.
    ensure!(
        reply.json()?.get("headers").is_none(),
        "the upstream answered"
    );
    Ok(())
}

/// Runs named checks one after the other and collects every failure, so that a shared stack
/// reports all broken behaviours at once.
#[derive(Default)]
pub struct Cases {
    passed: Vec<String>,
    failed: Vec<String>,
}

impl Cases {
    pub async fn run<F: Future<Output = Result<()>>>(&mut self, name: &str, case: F) {
        match case.await {
            Ok(()) => self.passed.push(name.to_owned()),
            Err(e) => self.failed.push(format!("{name}: {e:#}")),
        }
    }

    pub fn finish(self) -> Result<()> {
        eprintln!(
            "{} cases passed: {}",
            self.passed.len(),
            self.passed.join(", ")
        );
        if self.failed.is_empty() {
            return Ok(());
        }
        bail!(
            "{} of {} cases failed:\n{}",
            self.failed.len(),
            self.failed.len() + self.passed.len(),
            self.failed.join("\n")
        )
    }
}

// ------------------------------------------------------------------------------------------------
// Credentials made by Python

/// Generates RSA and EC key pairs, JWTs (PyJWT, plus hand-made HS256 tokens keyed with an RSA
/// public key PEM or an empty secret, which PyJWT refuses to make) and hmac-auth signatures, all
/// with the project's one signer, `scripts/sign.py` (`omit` leaves listed headers out of the
/// request and the signing string, `x_date` adds a fresh `X-Date`).
/// Input: `{"tokens": {name: spec}, "hmac": {name: spec}}` on stdin; output on stdout:
/// `{"public_keys": {"rsa": pem, "ec": pem}, "tokens": {name: jwt}, "hmac": {name: headers}}`.
const CRYPTO_PY: &str = r#"
import json, sys, time
import sign  # scripts/sign.py, on PYTHONPATH

spec = json.load(sys.stdin)
now = int(time.time())
keys = {name: sign.new_key(name.split("-")[0]) for name in ("rsa", "rsa-other", "ec", "ec-other")}

def token(t):
    payload = dict(t["payload"])
    if "exp_in" in t:
        payload["exp"] = now + t["exp_in"]
    if "hs256_with_public_key_of" in t:
        return sign.hs256_by_hand(payload, sign.public_pem(keys[t["hs256_with_public_key_of"]]))
    if "hs256_by_hand" in t:
        return sign.hs256_by_hand(payload, t["hs256_by_hand"])
    key = keys[t["private_key"]] if "private_key" in t else t.get("secret")
    return sign.jwt_token(payload, key, t["alg"])

def signature(h):
    return sign.hmac_headers(
        h["key_id"], h["secret"], h["method"], h["path"], signed=h["signed"],
        algorithm=h.get("algorithm", "hmac-sha256"), body=h.get("digest_of"), now=now,
        date_offset_s=h.get("date_offset_s", 0), omit=h.get("omit", []),
        x_date=h.get("x_date", False))

json.dump({
    "public_keys": {"rsa": sign.public_pem(keys["rsa"]), "ec": sign.public_pem(keys["ec"])},
    "tokens": {name: token(t) for name, t in spec["tokens"].items()},
    "hmac": {name: signature(h) for name, h in spec["hmac"].items()},
}, sys.stdout)
"#;

/// What [`CRYPTO_PY`] made.
#[derive(Debug)]
pub struct Crypto {
    pub output: Value,
}

impl Crypto {
    /// Runs the script with `spec` (bounded to 60 s); fails when the venv's Python is missing.
    pub async fn make(spec: &Value) -> Result<Crypto> {
        let python = workspace_root().join(".venv/bin/python");
        ensure!(
            python.is_file(),
            "{} not found: run scripts/deps.sh",
            python.display()
        );
        let mut child = tokio::process::Command::new(&python)
            .args(["-c", CRYPTO_PY])
            .env("PYTHONPATH", workspace_root().join("scripts"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", python.display()))?;
        let mut stdin = child.stdin.take().context("python's stdin")?;
        stdin.write_all(spec.to_string().as_bytes()).await?;
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .context("python did not finish within 60 s")??;
        ensure!(
            out.status.success(),
            "python failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let output = serde_json::from_slice(&out.stdout).context("python's output")?;
        Ok(Crypto { output })
    }

    pub fn public_key(&self, kind: &str) -> Result<&str> {
        self.output["public_keys"][kind]
            .as_str()
            .ok_or_else(|| anyhow!("no {kind} public key in {}", self.output))
    }

    pub fn token(&self, name: &str) -> Result<&str> {
        self.output["tokens"][name]
            .as_str()
            .ok_or_else(|| anyhow!("no token {name:?}"))
    }

    /// The headers (`date`, `authorization`, maybe `digest`) of a signed request.
    pub fn hmac(&self, name: &str) -> Result<Vec<(&str, &str)>> {
        let map = self.output["hmac"][name]
            .as_object()
            .ok_or_else(|| anyhow!("no hmac request {name:?}"))?;
        Ok(map
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
            .collect())
    }
}
