//! HashiCorp Vault / OpenBao, KV secrets engine version 1 or 2, over Vault's HTTP API (hyper
//! with rustls and the system's roots; `http://` for a dev server).
//!
//! * A secret is the JSON object stored at `<mount>/<path>` (KV v2: `<mount>/data/<path>`); the
//!   resolver takes a field of it like of an AWS JSON secret. KV v2 also gives the version number
//!   and when it was created, and the previous version (`?version=<n-1>`).
//! * Authentication: a token (from an environment variable or a file) or AppRole (role id and a
//!   secret id read from a file at each login). A background task renews the token at two
//!   thirds of its TTL (`renew-self`, when renewable); an AppRole token that cannot be renewed
//!   any more (not renewable, or its max TTL is near) is replaced by logging in again. A token
//!   Vault no longer accepts is dropped and obtained again at the next call (AppRole login, or
//!   reading the token file again).
//! * Answers: 404 is "not found", or "deleted" for a KV v2 secret whose current version is
//!   deleted or destroyed. 403 is definitive (the sidecar's token is valid but its policy denies
//!   the path: checked with `lookup-self`, so an expired token is not mistaken for a denial and
//!   is transient `AccessDenied` instead). 5xx, 429, a sealed Vault, timeouts and connection
//!   errors are transient.
//!
//! Tokens, secret ids and values never appear in logs or errors: only Vault's `errors` texts.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secret_ref::SecretValue;
use serde::Deserialize;
use tokio::time::Instant;

use super::{BoxFuture, PreviousSecret, Provider, ProviderError, Secret, SecretNames};
use crate::config::{read_credential_file, KvVersion, VaultAuth, VaultProviderConfig};

/// Limit on establishing a connection to Vault.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Limit on one HTTP exchange with Vault (the body included).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from Vault.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// Stop listing after this many secret names or this many LIST calls; the list is then
/// incomplete.
const MAX_LISTED_NAMES: usize = 10_000;
const MAX_LIST_CALLS: usize = 200;
/// After a failed renewal or login, try again this soon, doubling while it keeps failing up to
/// [`MAX_RETRY_AFTER`].
const RETRY_AFTER: Duration = Duration::from_secs(5);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// A token without expiry is looked at again this often (in case it is replaced).
const IDLE_CHECK: Duration = Duration::from_secs(3600);
/// Never wake the renewal task more often than this.
const MIN_WAIT: Duration = Duration::from_millis(500);
/// Longest error text taken from Vault's answer.
const MAX_DETAIL_CHARS: usize = 300;

const TOKEN_HEADER: &str = "x-vault-token";
const NAMESPACE_HEADER: &str = "x-vault-namespace";
const REQUEST_HEADER: &str = "x-vault-request";

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why the provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VaultSetupError {
    #[error("address {address:?}: no root certificates for https (install the system's CA certificates or set SSL_CERT_FILE): {reason}")]
    NoRootCertificates { address: String, reason: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("namespace {0:?} cannot be sent as a header (printable ASCII only)")]
    BadNamespace(String),
    #[error("{0}")]
    Credential(#[from] crate::config::ConfigError),
}

/// A provider reading one KV mount of one Vault.
pub struct VaultProvider {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    /// The provider id, for log lines.
    id: String,
    address: String,
    mount: String,
    kv: KvVersion,
    namespace: Option<HeaderValue>,
    auth: VaultAuth,
    /// The current token; `None` until obtained, or after Vault refused it. The lock is held
    /// while a token is obtained, so concurrent calls make one login.
    token: tokio::sync::Mutex<Option<Token>>,
}

#[derive(Clone)]
struct Token {
    value: SecretValue,
    renewable: bool,
    /// Zero: it does not expire.
    ttl: Duration,
    /// The TTL it was issued with (renewals that give much less mean its max TTL is near).
    issued_ttl: Duration,
    obtained: Instant,
}

impl Token {
    fn expired(&self, now: Instant) -> bool {
        !self.ttl.is_zero() && now >= self.obtained + self.ttl
    }
}

/// When to renew (or replace) a token with `ttl` obtained `elapsed` ago: at two thirds of its
/// TTL, not sooner than [`MIN_WAIT`]; a token without expiry is looked at every [`IDLE_CHECK`].
pub fn renew_in(ttl: Duration, elapsed: Duration) -> Duration {
    if ttl.is_zero() {
        return IDLE_CHECK;
    }
    (ttl * 2 / 3).saturating_sub(elapsed).max(MIN_WAIT)
}

/// What the renewal task does next.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Look again after this long.
    After(Duration),
    /// Obtaining a token failed: try again after a back-off.
    Retry,
}

/// An answer from Vault: status and body.
struct Reply {
    status: StatusCode,
    body: Bytes,
}

/// What an authenticated call got.
enum Authed {
    Reply(Reply),
    /// 403 while the token is valid: the token's policy denies this path.
    Denied(String),
}

#[derive(Deserialize)]
struct AuthAnswer {
    auth: Option<AuthBody>,
}

#[derive(Deserialize)]
struct AuthBody {
    client_token: Option<String>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct LookupAnswer {
    data: Option<LookupData>,
}

#[derive(Deserialize)]
struct LookupData {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    creation_ttl: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct DataAnswer {
    data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct KvV2Data {
    data: Option<serde_json::Map<String, serde_json::Value>>,
    metadata: Option<KvV2Metadata>,
}

#[derive(Deserialize, Default)]
struct KvV2Metadata {
    #[serde(default)]
    created_time: String,
    #[serde(default)]
    deletion_time: String,
    #[serde(default)]
    destroyed: bool,
    #[serde(default)]
    version: u64,
}

#[derive(Deserialize)]
struct ListAnswer {
    data: Option<ListData>,
}

#[derive(Deserialize)]
struct ListData {
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorsAnswer {
    #[serde(default)]
    errors: Vec<String>,
}

impl VaultProvider {
    /// Builds the HTTP client and starts the token renewal task (on the current Tokio runtime),
    /// which obtains the first token in the background: a Vault that is down at start-up makes
    /// references fail transiently until it is back.
    pub fn new(id: &str, config: &VaultProviderConfig) -> Result<Self, VaultSetupError> {
        let namespace = match &config.namespace {
            None => None,
            Some(ns) => Some(
                HeaderValue::from_str(ns).map_err(|_| VaultSetupError::BadNamespace(ns.clone()))?,
            ),
        };
        if let VaultAuth::TokenFile(path) = &config.auth {
            // fail at start-up on a missing or empty file, naming it
            read_credential_file("token_file", path)?;
        }
        let inner = Arc::new(Inner {
            http: http_client(&config.address)?,
            id: id.to_string(),
            address: config.address.clone(),
            mount: config.mount.clone(),
            kv: config.kv_version,
            namespace,
            auth: config.auth.clone(),
            token: tokio::sync::Mutex::new(None),
        });
        tokio::spawn(renewal_loop(Arc::downgrade(&inner)));
        Ok(VaultProvider { inner })
    }
}

fn http_client(address: &str) -> Result<HttpClient, VaultSetupError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) if address.starts_with("https://") => {
            return Err(VaultSetupError::NoRootCertificates {
                address: address.to_string(),
                reason: e.to_string(),
            })
        }
        // plain http: no certificate is ever checked
        Err(_) => {
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| VaultSetupError::Tls(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls)
        }
    };
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// Renews or replaces the token ahead of its expiry, for as long as the provider exists.
async fn renewal_loop(inner: Weak<Inner>) {
    let mut wait = Duration::ZERO;
    let mut retry = RETRY_AFTER;
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        wait = match inner.refresh_token().await {
            Next::After(wait) => {
                retry = RETRY_AFTER;
                wait
            }
            Next::Retry => {
                let wait = retry;
                retry = (retry * 2).min(MAX_RETRY_AFTER);
                wait
            }
        };
    }
}

/// Percent-encodes a path inside Vault, segment by segment (`/` kept).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Vault's `errors` texts from an error answer, on one line and shortened (never a body that is
/// not an error answer).
fn vault_errors(body: &[u8]) -> String {
    let text = serde_json::from_slice::<ErrorsAnswer>(body)
        .map(|a| a.errors.join("; "))
        .unwrap_or_default();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() > MAX_DETAIL_CHARS {
        let cut: String = text.chars().take(MAX_DETAIL_CHARS).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn status_detail(status: StatusCode, body: &[u8]) -> String {
    let errors = vault_errors(body);
    if errors.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {errors}", status.as_u16())
    }
}

/// A failed call that is not about a secret (transient unless Vault refused the request as
/// such).
fn unexpected(status: StatusCode, body: &[u8]) -> ProviderError {
    let detail = status_detail(status, body);
    match status {
        StatusCode::BAD_REQUEST => ProviderError::Rejected(detail),
        _ => ProviderError::Other(detail),
    }
}

/// The error and its sources as one line, leaving out parts that repeat the previous one.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.last().is_some_and(|prev| prev.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// `2026-12-03T16:14:20.80322082Z` (as Vault writes it) as unix seconds.
pub fn parse_rfc3339_utc(text: &str) -> Option<u64> {
    sidecar_api::time::parse_rfc3339_ms(text).map(|ms| ms / 1000)
}

impl Inner {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// One HTTP exchange, bounded by [`OPERATION_TIMEOUT`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretValue>,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, ProviderError> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(path))
            .header(REQUEST_HEADER, "true");
        if let Some(ns) = &self.namespace {
            request = request.header(NAMESPACE_HEADER, ns.clone());
        }
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
                ProviderError::AccessDenied(
                    "the Vault token contains characters not allowed in a header".into(),
                )
            })?;
            value.set_sensitive(true);
            request = request.header(TOKEN_HEADER, value);
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ProviderError::Rejected(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| ProviderError::Unreachable(error_chain(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| ProviderError::Other(format!("reading Vault's answer: {e}")))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ProviderError::Unreachable(format!(
                "no answer within {}s",
                OPERATION_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The current token, obtained first if there is none or it expired.
    async fn token(&self) -> Result<SecretValue, ProviderError> {
        let mut current = self.token.lock().await;
        if let Some(token) = current.as_ref() {
            if !token.expired(Instant::now()) {
                return Ok(token.value.clone());
            }
        }
        let token = self.authenticate().await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    /// Forgets `rejected` (if it is still the current token), so the next call obtains a new
    /// one.
    async fn drop_token(&self, rejected: &SecretValue) {
        let mut current = self.token.lock().await;
        if current
            .as_ref()
            .is_some_and(|t| t.value.ct_eq_bytes(rejected.expose().as_bytes()))
        {
            *current = None;
        }
    }

    /// Obtains a token as the config says: the configured token (looked up for its TTL), the
    /// token file, or an AppRole login.
    async fn authenticate(&self) -> Result<Token, ProviderError> {
        match &self.auth {
            VaultAuth::TokenEnv { var, token } => {
                self.look_up(token.clone(), &format!("the token from ${var}"))
                    .await
            }
            VaultAuth::TokenFile(path) => {
                let token = read_credential_file("token_file", path)
                    .map_err(|e| ProviderError::AccessDenied(e.to_string()))?;
                self.look_up(token, &format!("the token in {}", path.display()))
                    .await
            }
            VaultAuth::AppRole {
                role_id,
                secret_id_file,
                mount,
            } => {
                let secret_id = read_credential_file("secret_id_file", secret_id_file)
                    .map_err(|e| ProviderError::AccessDenied(e.to_string()))?;
                let body = serde_json::json!({
                    "role_id": role_id.expose(),
                    "secret_id": secret_id.expose(),
                });
                let reply = self
                    .send(
                        Method::POST,
                        &format!("/v1/auth/{}/login", encode_path(mount)),
                        None,
                        Some(body.to_string().into_bytes()),
                    )
                    .await?;
                if !reply.status.is_success() {
                    return Err(login_error(reply.status, &reply.body, "AppRole login"));
                }
                let token = auth_token(&reply.body, "AppRole login")?;
                tracing::info!(
                    provider = %self.id,
                    ttl_s = token.ttl.as_secs(),
                    renewable = token.renewable,
                    "logged in to Vault with AppRole"
                );
                Ok(token)
            }
        }
    }

    /// `lookup-self`: whether Vault accepts `token`, and its TTL.
    async fn look_up(&self, token: SecretValue, what: &str) -> Result<Token, ProviderError> {
        let reply = self
            .send(
                Method::GET,
                "/v1/auth/token/lookup-self",
                Some(&token),
                None,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(login_error(
                reply.status,
                &reply.body,
                &format!("looking up {what}"),
            ));
        }
        let data = serde_json::from_slice::<LookupAnswer>(&reply.body)
            .ok()
            .and_then(|a| a.data)
            .ok_or_else(|| ProviderError::Other("lookup-self: unexpected answer".into()))?;
        Ok(Token {
            value: token,
            renewable: data.renewable,
            ttl: Duration::from_secs(data.ttl),
            issued_ttl: Duration::from_secs(data.creation_ttl.max(data.ttl)),
            obtained: Instant::now(),
        })
    }

    /// Renews or replaces the token if it is due; says when to look again.
    async fn refresh_token(&self) -> Next {
        let snapshot = self.token.lock().await.clone();
        let Some(token) = snapshot else {
            // none yet (start-up, or Vault refused it): obtain one now
            return match self.token().await {
                Ok(_) => Next::After(MIN_WAIT),
                Err(e) => {
                    tracing::warn!(provider = %self.id, error = %e, "cannot obtain a Vault token; retrying");
                    Next::Retry
                }
            };
        };
        let elapsed = token.obtained.elapsed();
        let due = renew_in(token.ttl, elapsed);
        if token.ttl.is_zero() || due > MIN_WAIT {
            return Next::After(due);
        }
        let approle = matches!(self.auth, VaultAuth::AppRole { .. });
        if token.renewable {
            match self.renew(&token).await {
                Ok(renewed) => {
                    // an AppRole token near its max TTL is replaced rather than renewed for ever
                    // shorter times
                    let near_max = renewed.ttl < token.issued_ttl / 2;
                    tracing::debug!(provider = %self.id, ttl_s = renewed.ttl.as_secs(), "renewed the Vault token");
                    self.replace_token(&token, renewed).await;
                    if !(approle && near_max) {
                        return Next::After(MIN_WAIT);
                    }
                }
                Err(e) => {
                    tracing::warn!(provider = %self.id, error = %e, "renewing the Vault token failed");
                    if !approle {
                        // again soon, while the token lasts
                        return if token.expired(Instant::now()) {
                            Next::Retry
                        } else {
                            Next::After(RETRY_AFTER.min(token.ttl / 10).max(MIN_WAIT))
                        };
                    }
                }
            }
        } else if !approle {
            if token.expired(Instant::now()) {
                tracing::warn!(provider = %self.id, "the Vault token expired and is not renewable: give the sidecar a new one");
                self.drop_token(&token.value).await;
                return Next::Retry;
            }
            return Next::After(
                (token.obtained + token.ttl)
                    .saturating_duration_since(Instant::now())
                    .max(MIN_WAIT),
            );
        }
        // AppRole: log in again
        match self.authenticate().await {
            Ok(fresh) => {
                self.replace_token(&token, fresh).await;
                Next::After(MIN_WAIT)
            }
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "logging in to Vault again failed; retrying");
                Next::Retry
            }
        }
    }

    /// Sets `fresh` as the token unless another one replaced `old` meanwhile.
    async fn replace_token(&self, old: &Token, fresh: Token) {
        let mut current = self.token.lock().await;
        let unchanged = match current.as_ref() {
            None => true,
            Some(t) => t.value.ct_eq_bytes(old.value.expose().as_bytes()),
        };
        if unchanged {
            *current = Some(fresh);
        }
    }

    /// `renew-self`.
    async fn renew(&self, token: &Token) -> Result<Token, ProviderError> {
        let reply = self
            .send(
                Method::POST,
                "/v1/auth/token/renew-self",
                Some(&token.value),
                Some(b"{}".to_vec()),
            )
            .await?;
        if !reply.status.is_success() {
            return Err(login_error(reply.status, &reply.body, "renew-self"));
        }
        let mut renewed = auth_token(&reply.body, "renew-self")?;
        // Vault answers with the same token
        renewed.value = token.value.clone();
        renewed.issued_ttl = token.issued_ttl;
        Ok(renewed)
    }

    /// An authenticated call. A 403 is checked with `lookup-self`: if Vault no longer accepts
    /// the token, a new one is obtained and the call made once more; if it accepts it, the
    /// token's policy denies the path ([`Authed::Denied`]).
    async fn call(&self, method: Method, path: &str) -> Result<Authed, ProviderError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let reply = self.send(method.clone(), path, Some(&token), None).await?;
            if reply.status != StatusCode::FORBIDDEN {
                return Ok(Authed::Reply(reply));
            }
            let check = self
                .send(
                    Method::GET,
                    "/v1/auth/token/lookup-self",
                    Some(&token),
                    None,
                )
                .await?;
            if check.status.is_success() {
                return Ok(Authed::Denied(status_detail(reply.status, &reply.body)));
            }
            if check.status != StatusCode::FORBIDDEN {
                // Vault failing: nothing is known about the token
                return Err(unexpected(check.status, &check.body));
            }
            self.drop_token(&token).await;
            if retried {
                return Err(login_error(
                    check.status,
                    &check.body,
                    "Vault does not accept the sidecar's token (expired or revoked?)",
                ));
            }
            retried = true;
        }
    }

    /// Reads the secret at `path` (`version`: a KV v2 version; `None`: the current one).
    async fn read(&self, path: &str, version: Option<u64>) -> Result<Secret, ProviderError> {
        let url = match self.kv {
            KvVersion::V1 => format!("/v1/{}/{}", encode_path(&self.mount), encode_path(path)),
            KvVersion::V2 => {
                let mut url = format!(
                    "/v1/{}/data/{}",
                    encode_path(&self.mount),
                    encode_path(path)
                );
                if let Some(v) = version {
                    url.push_str(&format!("?version={v}"));
                }
                url
            }
        };
        let reply = match self.call(Method::GET, &url).await? {
            Authed::Reply(reply) => reply,
            Authed::Denied(detail) => {
                return Err(ProviderError::Rejected(format!(
                    "{detail} (the sidecar's token is valid: its policy does not allow reading this path)"
                )))
            }
        };
        match (reply.status, self.kv) {
            (StatusCode::OK, KvVersion::V1) => {
                let data = serde_json::from_slice::<DataAnswer>(&reply.body)
                    .ok()
                    .and_then(|a| a.data)
                    .ok_or_else(|| ProviderError::Other("unexpected answer (no data)".into()))?;
                Ok(Secret {
                    value: SecretValue::new(data.to_string()),
                    version: None,
                    created_at: None,
                })
            }
            (StatusCode::OK | StatusCode::NOT_FOUND, KvVersion::V2) => {
                let kv = serde_json::from_slice::<DataAnswer>(&reply.body)
                    .ok()
                    .and_then(|a| a.data)
                    .and_then(|d| serde_json::from_value::<KvV2Data>(d).ok());
                let Some(kv) = kv else {
                    return match reply.status {
                        StatusCode::NOT_FOUND => Err(ProviderError::NotFound),
                        _ => Err(ProviderError::Other("unexpected answer (no data)".into())),
                    };
                };
                let meta = kv.metadata.unwrap_or_default();
                if meta.destroyed {
                    return Err(ProviderError::Deleted(format!(
                        "version {} is destroyed",
                        meta.version
                    )));
                }
                if !meta.deletion_time.is_empty() {
                    return Err(ProviderError::Deleted(format!(
                        "version {} was deleted at {}",
                        meta.version, meta.deletion_time
                    )));
                }
                match kv.data {
                    Some(data) if reply.status == StatusCode::OK => Ok(Secret {
                        value: SecretValue::new(serde_json::Value::Object(data).to_string()),
                        version: Some(meta.version.to_string()),
                        created_at: parse_rfc3339_utc(&meta.created_time),
                    }),
                    _ => Err(ProviderError::NotFound),
                }
            }
            (StatusCode::NOT_FOUND, KvVersion::V1) => Err(ProviderError::NotFound),
            (status, _) => Err(unexpected(status, &reply.body)),
        }
    }

    /// KV v2: the version before `current`, if it exists and is neither deleted nor destroyed.
    async fn previous(
        &self,
        path: &str,
        current: &Secret,
    ) -> Result<Option<PreviousSecret>, ProviderError> {
        if self.kv == KvVersion::V1 {
            return Ok(None);
        }
        let (Some(version), Some(replaced_at)) = (
            current
                .version
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok()),
            current.created_at,
        ) else {
            return Ok(None);
        };
        if version < 2 {
            return Ok(None);
        }
        match self.read(path, Some(version - 1)).await {
            Ok(previous) => Ok(Some(PreviousSecret {
                value: previous.value,
                replaced_at,
            })),
            Err(ProviderError::NotFound | ProviderError::Deleted(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every secret name under the mount (LIST, folder by folder), up to the caps. A folder the
    /// token may not list makes the list incomplete, not an error.
    async fn list(&self) -> Result<SecretNames, ProviderError> {
        let base = match self.kv {
            KvVersion::V1 => format!("/v1/{}/", encode_path(&self.mount)),
            KvVersion::V2 => format!("/v1/{}/metadata/", encode_path(&self.mount)),
        };
        let mut names = Vec::new();
        let mut complete = true;
        let mut folders = vec![String::new()];
        let mut calls = 0;
        while let Some(folder) = folders.pop() {
            if calls >= MAX_LIST_CALLS || names.len() >= MAX_LISTED_NAMES {
                complete = false;
                break;
            }
            calls += 1;
            let url = format!("{base}{}?list=true", encode_path(&folder));
            let reply = match self.call(Method::GET, &url).await? {
                Authed::Reply(reply) => reply,
                Authed::Denied(_) => {
                    complete = false;
                    continue;
                }
            };
            match reply.status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => continue,
                status => return Err(unexpected(status, &reply.body)),
            }
            let keys = serde_json::from_slice::<ListAnswer>(&reply.body)
                .ok()
                .and_then(|a| a.data)
                .map(|d| d.keys)
                .unwrap_or_default();
            for key in keys {
                match key.strip_suffix('/') {
                    Some(sub) => folders.push(format!("{folder}{sub}/")),
                    None => names.push(format!("{folder}{key}")),
                }
            }
        }
        Ok(SecretNames { names, complete })
    }
}

/// A login / lookup / renewal that failed: the sidecar's own credentials (403, 400: transient
/// `AccessDenied`, so a mistake on the sidecar's side does not disable every credential at
/// once), or Vault failing.
fn login_error(status: StatusCode, body: &[u8], what: &str) -> ProviderError {
    let detail = format!("{what}: {}", status_detail(status, body));
    match status {
        StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
            ProviderError::AccessDenied(detail)
        }
        _ => ProviderError::Other(detail),
    }
}

/// The token of a login or renewal answer.
fn auth_token(body: &[u8], what: &str) -> Result<Token, ProviderError> {
    let auth = serde_json::from_slice::<AuthAnswer>(body)
        .ok()
        .and_then(|a| a.auth)
        .ok_or_else(|| ProviderError::Other(format!("{what}: unexpected answer (no auth)")))?;
    let value = auth
        .client_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ProviderError::Other(format!("{what}: unexpected answer (no token)")))?;
    let ttl = Duration::from_secs(auth.lease_duration);
    Ok(Token {
        value: SecretValue::new(value),
        renewable: auth.renewable,
        ttl,
        issued_ttl: ttl,
        obtained: Instant::now(),
    })
}

impl Provider for VaultProvider {
    fn get_secret<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Secret, ProviderError>> {
        Box::pin(self.inner.read(name, None))
    }

    fn get_previous<'a>(
        &'a self,
        name: &'a str,
        current: &'a Secret,
    ) -> BoxFuture<'a, Result<Option<PreviousSecret>, ProviderError>> {
        Box::pin(self.inner.previous(name, current))
    }

    fn list_secret_names(&self) -> BoxFuture<'_, Result<SecretNames, ProviderError>> {
        Box::pin(self.inner.list())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_ttl() {
        let s = Duration::from_secs;
        assert_eq!(renew_in(s(30), s(0)), s(20));
        assert_eq!(renew_in(s(30), s(15)), s(5));
        assert_eq!(renew_in(s(30), s(25)), MIN_WAIT);
        assert_eq!(renew_in(s(0), s(100)), IDLE_CHECK);
        assert_eq!(renew_in(s(1), s(0)), s(2) / 3);
        assert_eq!(renew_in(s(3), s(3)), MIN_WAIT);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc("2026-12-03T16:14:20.80322082Z"),
            Some(1_796_314_460)
        );
        assert_eq!(
            parse_rfc3339_utc("2000-02-29T12:00:00+00:00"),
            Some(951_825_600)
        );
        assert_eq!(
            parse_rfc3339_utc("2000-02-29T14:00:00+02:00"),
            Some(951_825_600)
        );
        for bad in [
            "",
            "2026-12-03",
            "2026-13-03T00:00:00Z",
            "2026-12-03T16:14:20 02:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(encode_path("app/db"), "app/db");
        assert_eq!(encode_path("a b/c?d#e%"), "a%20b/c%3Fd%23e%25");
        assert_eq!(encode_path("é"), "%C3%A9");
    }

    #[test]
    fn error_details_come_from_vaults_errors_only() {
        assert_eq!(
            status_detail(
                StatusCode::FORBIDDEN,
                br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#
            ),
            "HTTP 403: 1 error occurred: * permission denied"
        );
        assert_eq!(
            status_detail(StatusCode::BAD_GATEWAY, b"<html>secret</html>"),
            "HTTP 502"
        );
        assert!(matches!(
            unexpected(StatusCode::SERVICE_UNAVAILABLE, b"{\"errors\":[\"Vault is sealed\"]}"),
            ProviderError::Other(d) if d == "HTTP 503: Vault is sealed"
        ));
        assert!(matches!(
            login_error(StatusCode::BAD_REQUEST, b"{\"errors\":[\"invalid secret id\"]}", "AppRole login"),
            ProviderError::AccessDenied(d) if d == "AppRole login: HTTP 400: invalid secret id"
        ));
    }
}
