//! The HTTP API (docs/DESIGN.md, sections 2 and 4): bearer-token check, `GET /healthz`,
//! `POST /v1/resolve`, `POST /v1/limit`; and without the token `GET /metrics` and `GET /readyz`
//! (they carry no secret, no secret name and no reference). The bodies are the `sidecar-api` crate's types (shared
//! with the filter); errors are mapped to the wire here and nowhere else (their codes by
//! `ResolveError::code` and `LimitError::code`).

use std::sync::{Arc, PoisonError, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secret_ref::SecretValue;
use sidecar_api::{
    BadRequest, LimitCounter, LimitErrorBody, LimitFailure, LimitResponse, PreviousValue,
    ResolveErrorBody, ResolveRequest, ResolveResponse, ResolveResult,
};

use crate::config::{CacheConfig, LimitConfig};
use crate::limit::{self, Counter, LimitError, Store};
use crate::metrics::Metrics;
use crate::providers::Provider;
use crate::resolve::{Resolution, Resolver};
use secret_ref::Manager;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most references accepted in one request.
pub const MAX_REFS: usize = 100_000;
/// The paths served without the bearer token.
pub const OPEN_PATHS: [&str; 2] = ["/metrics", "/readyz"];

/// What the handlers share: the expected token, the resolver (with its cache) and the Redis
/// connections of `/v1/limit`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The token and the Redis backends are replaced on a configuration reload.
    token: RwLock<SecretValue>,
    resolver: Resolver,
    store: Store,
    /// The Redis backends `/v1/limit` may connect to.
    limit: RwLock<Arc<LimitConfig>>,
    metrics: Arc<Metrics>,
}

impl AppState {
    /// `limit`: the Redis backends `/v1/limit` may use (the config's `[limit]`; empty: none).
    pub fn new(token: SecretValue, resolver: Resolver, limit: LimitConfig) -> Self {
        let metrics = resolver.metrics();
        AppState {
            inner: Arc::new(Inner {
                token: RwLock::new(token),
                resolver,
                store: Store::new(),
                limit: RwLock::new(Arc::new(limit)),
                metrics,
            }),
        }
    }

    /// Applies a reloaded configuration: the token, the providers, the cache's TTLs and the
    /// Redis backends. The cache's entries, Redis connections and metrics are kept.
    pub fn reconfigure(
        &self,
        token: SecretValue,
        providers: Vec<(String, Manager, Arc<dyn Provider>)>,
        cache: CacheConfig,
        limit: LimitConfig,
    ) {
        let inner = &self.inner;
        inner.resolver.replace_providers(providers);
        inner.resolver.cache().set_config(cache);
        *inner.limit.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(limit);
        *inner.token.write().unwrap_or_else(PoisonError::into_inner) = token;
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// The configured provider ids.
    pub fn provider_ids(&self) -> Vec<String> {
        self.inner.resolver.provider_ids()
    }

    /// Asks the providers that have not answered yet for their secret names (for readiness),
    /// again every `every` until each has answered.
    pub async fn probe_until_ready(&self, every: std::time::Duration) {
        loop {
            self.inner.resolver.probe_providers().await;
            if self.providers_not_reached().is_empty() {
                return;
            }
            tokio::time::sleep(every).await;
        }
    }

    /// The configured providers that have not answered yet.
    pub fn providers_not_reached(&self) -> Vec<String> {
        self.inner.metrics.providers_not_reached()
    }
}

/// The router, every route behind the token check.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/resolve", post(resolve))
        .route("/v1/limit", post(limit))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .with_state(state)
}

/// Counts each request by endpoint (a fixed set of paths, else `other`) and status.
async fn count_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = crate::metrics::endpoint_label(req.uri().path());
    let response = next.run(req).await;
    state
        .inner
        .metrics
        .request(path, response.status().as_u16());
    response
}

/// The token from `Authorization: Bearer <token>`, if the header has that form.
fn bearer_token(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Missing token: 401; wrong token: 403; both with an empty body, and the connection is closed
/// (a client without the token does not get to keep a connection). Constant-time comparison.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let accepted = bearer_token(req.headers()).map(|token| {
        state
            .inner
            .token
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ct_eq_bytes(token)
    });
    match accepted {
        None => (
            StatusCode::UNAUTHORIZED,
            [
                (header::WWW_AUTHENTICATE, "Bearer"),
                (header::CONNECTION, "close"),
            ],
        )
            .into_response(),
        Some(true) => next.run(req).await,
        Some(false) => (StatusCode::FORBIDDEN, [(header::CONNECTION, "close")]).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// `200 {"ready": true}` once every configured provider has answered; else
/// `503 {"ready": false, "not_reached": [provider ids]}`.
async fn readyz(State(state): State<AppState>) -> Response {
    let not_reached = state.providers_not_reached();
    if not_reached.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"ready": true}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "not_reached": not_reached})),
        )
            .into_response()
    }
}

/// The Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.inner.metrics.render(state.inner.resolver.cache());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn request_error(status: StatusCode, error: String) -> Response {
    (status, Json(BadRequest { error })).into_response()
}

fn invalid_body(why: &str) -> String {
    format!("invalid request body: {why}; expected {{\"refs\": [\"$secret://...\", ...]}}")
}

/// The answer for a body that could not be read.
fn body_error(rejection: BytesRejection) -> Response {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {} MiB", MAX_BODY_BYTES >> 20),
        )
    } else {
        request_error(
            rejection.status(),
            format!("cannot read request body: {}", rejection.body_text()),
        )
    }
}

async fn resolve(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_error(rejection),
    };
    // serde would also take a JSON array for a struct; the API is an object.
    if body.trim_ascii_start().first().is_some_and(|b| *b != b'{') {
        return request_error(StatusCode::BAD_REQUEST, invalid_body("not a JSON object"));
    }
    let request: ResolveRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return request_error(StatusCode::BAD_REQUEST, invalid_body(&e.to_string())),
    };
    if request.refs.len() > MAX_REFS {
        return request_error(
            StatusCode::BAD_REQUEST,
            format!(
                "too many refs: {} (at most {MAX_REFS} per request)",
                request.refs.len()
            ),
        );
    }
    if request.refetch.len() > MAX_REFS {
        return request_error(
            StatusCode::BAD_REQUEST,
            format!(
                "too many refetch refs: {} (at most {MAX_REFS} per request)",
                request.refetch.len()
            ),
        );
    }

    let resolutions = state
        .inner
        .resolver
        .resolve_request(&request.refs, request.previous, &request.refetch)
        .await;
    let results = request
        .refs
        .into_iter()
        .zip(resolutions)
        .map(|(reference, resolution)| match resolution {
            Resolution::Value {
                value,
                stale,
                previous,
            } => ResolveResult::Value {
                reference,
                value,
                stale,
                previous: previous.map(|p| PreviousValue {
                    value: p.value,
                    replaced_at: p.replaced_at,
                }),
            },
            Resolution::Error(e) => ResolveResult::Error {
                reference,
                error: ResolveErrorBody {
                    code: e.code(),
                    message: e.to_string(),
                    did_you_mean: e.did_you_mean().map(<[String]>::to_vec),
                },
            },
        })
        .collect();
    Json(ResolveResponse { results }).into_response()
}

async fn limit(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return body_error(rejection),
    };
    let request = match limit::parse(&body) {
        Ok(r) => r,
        Err(e) => return request_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let inner = &state.inner;
    let allowed = inner
        .limit
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match limit::run(&inner.store, &inner.resolver, &allowed, &request).await {
        Ok(counters) => {
            inner.metrics.redis_ops(counters.len());
            Json(LimitResponse {
                results: counters
                    .into_iter()
                    .map(|Counter { remaining, reset_s }| LimitCounter { remaining, reset_s })
                    .collect(),
            })
            .into_response()
        }
        Err(e) => {
            inner.metrics.redis_error(e.code().as_str());
            limit_failure(&e)
        }
    }
}

/// `502 {"error": {"code", "message"}}` (`403` for a backend the config does not allow),
/// logged once (the message never holds a credential).
fn limit_failure(e: &LimitError) -> Response {
    tracing::warn!(code = %e.code(), error = %e, "limit request failed");
    let status = match e {
        LimitError::BackendNotAllowed { .. } => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_GATEWAY,
    };
    (
        status,
        Json(LimitFailure {
            error: LimitErrorBody {
                code: e.code(),
                message: e.to_string(),
            },
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::clock::ManualClock;
    use crate::config::CacheConfig;
    use crate::providers::fake::FakeProvider;
    use crate::providers::ProviderError;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use secret_ref::Manager;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    const TOKEN: &str = "test-token";

    fn app_with(provider: Arc<FakeProvider>) -> Router {
        let cache = Cache::new(CacheConfig::default(), Arc::new(ManualClock::new()));
        let mut resolver = Resolver::new(cache);
        resolver.add_provider("my-secrets-manager", Manager::Aws, provider);
        router(AppState::new(
            SecretValue::new(TOKEN),
            resolver,
            loopback_redis(),
        ))
    }

    fn app() -> Router {
        app_with(Arc::new(
            FakeProvider::new().with("alice-credentials", r#"{"alice-key-auth":"alice-key"}"#),
        ))
    }

    fn post_resolve(auth: Option<&str>, body: impl Into<Body>) -> Request {
        let mut b = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/resolve")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(body.into()).unwrap()
    }

    async fn send(app: Router, req: Request) -> (StatusCode, Vec<u8>) {
        let res = app.oneshot(req).await.unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, body)
    }

    async fn send_json(app: Router, req: Request) -> (StatusCode, Value) {
        let (status, body) = send(app, req).await;
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        (status, v)
    }

    fn bearer() -> String {
        format!("Bearer {TOKEN}")
    }

    #[tokio::test]
    async fn token_check() {
        let body = r#"{"refs":[]}"#;
        let cases = [
            (None, StatusCode::UNAUTHORIZED),
            (Some("Basic dXNlcjpwYXNz"), StatusCode::UNAUTHORIZED),
            (Some("Bearer"), StatusCode::UNAUTHORIZED),
            (Some("Bearer "), StatusCode::UNAUTHORIZED),
            (Some("Bearer wrong"), StatusCode::FORBIDDEN),
            (Some("Bearer test-toke"), StatusCode::FORBIDDEN),
            (Some("Bearer test-token-and-more"), StatusCode::FORBIDDEN),
            (Some("bearer test-token"), StatusCode::OK),
            (Some("Bearer test-token"), StatusCode::OK),
        ];
        for (auth, want) in cases {
            let (status, body) = send(app(), post_resolve(auth, body)).await;
            assert_eq!(status, want, "{auth:?}");
            if want != StatusCode::OK {
                assert!(body.is_empty(), "{auth:?}: body {body:?}");
            }
        }
    }

    #[tokio::test]
    async fn healthz_needs_the_token_too() {
        let get = |auth: Option<&str>| {
            let mut b = axum::http::Request::builder().uri("/healthz");
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a);
            }
            b.body(Body::empty()).unwrap()
        };
        assert_eq!(send(app(), get(None)).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            send(app(), get(Some("Bearer x"))).await.0,
            StatusCode::FORBIDDEN
        );
        let (status, body) = send(app(), get(Some(&bearer()))).await;
        assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    }

    fn get(uri: &str) -> Request {
        axum::http::Request::builder()
            .uri(uri)
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn readyz_and_metrics_need_no_token_and_follow_the_traffic() {
        let p = Arc::new(FakeProvider::new().with("s", r#"{"k":"hunter2-value"}"#));
        let app = app_with(p.clone());
        let (status, v) = send_json(app.clone(), get("/readyz")).await;
        assert_eq!(
            (status, v),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"ready": false, "not_reached": ["my-secrets-manager"]})
            )
        );
        // a transient failure is not an answer
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        let body = r#"{"refs":["$secret://aws/my-secrets-manager/s/k"]}"#;
        send(app.clone(), post_resolve(Some(&bearer()), body)).await;
        assert_eq!(
            send(app.clone(), get("/readyz")).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        p.fail_with(None);
        let (_, v) = send_json(app.clone(), post_resolve(Some(&bearer()), body)).await;
        assert_eq!(v["results"][0]["value"], "hunter2-value");
        send(app.clone(), post_resolve(Some(&bearer()), body)).await;
        send(app.clone(), post_resolve(None, body)).await;
        let (status, v) = send_json(app.clone(), get("/readyz")).await;
        assert_eq!((status, v), (StatusCode::OK, json!({"ready": true})));

        let res = app.clone().oneshot(get("/metrics")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
            .unwrap();
        for want in [
            r#"secret_sidecar_requests_total{endpoint="/v1/resolve",status="200"} 3"#,
            r#"secret_sidecar_requests_total{endpoint="/v1/resolve",status="401"} 1"#,
            r#"secret_sidecar_requests_total{endpoint="/readyz",status="503"} 2"#,
            r#"secret_sidecar_requests_total{endpoint="/readyz",status="200"} 1"#,
            r#"secret_sidecar_provider_calls_total{provider="my-secrets-manager",call="get",outcome="unreachable"} 1"#,
            r#"secret_sidecar_provider_calls_total{provider="my-secrets-manager",call="get",outcome="ok"} 1"#,
            r#"secret_sidecar_provider_reached{provider="my-secrets-manager"} 1"#,
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        for secret in ["hunter2", "\"s\"", "$secret", TOKEN] {
            assert!(!text.contains(secret), "{secret} in\n{text}");
        }
        // /healthz still needs the token
        assert_eq!(send(app, get("/healthz")).await.0, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn resolve_answers_in_order_with_values_and_errors() {
        let body = json!({"refs": [
            "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth",
            "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth",
            "$env://TOKEN",
        ]});
        let (status, v) = send_json(app(), post_resolve(Some(&bearer()), body.to_string())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            json!({"results": [
                {"ref": "$secret://aws/my-secrets-manager/alice-credentials/alice-key-auth",
                 "value": "alice-key", "stale": false},
                {"ref": "$secret://aws/my-secrets-manager/alice-credentias/alice-key-auth",
                 "error": {"code": "secret_not_found",
                           "message": "secret \"alice-credentias\" not found in provider \"my-secrets-manager\"; did you mean \"alice-credentials\"?",
                           "did_you_mean": ["alice-credentials"]}},
                {"ref": "$env://TOKEN",
                 "error": {"code": "invalid_reference",
                           "message": "$env:// references are resolved by the filter from its own environment, not by the sidecar"}},
            ]})
        );
    }

    #[tokio::test]
    async fn stale_values_are_marked() {
        let p = Arc::new(FakeProvider::new().with("s", "v"));
        let clock = Arc::new(ManualClock::new());
        let mut resolver = Resolver::new(Cache::new(CacheConfig::default(), clock.clone()));
        resolver.add_provider("my-secrets-manager", Manager::Aws, p.clone());
        let app = router(AppState::new(
            SecretValue::new(TOKEN),
            resolver,
            LimitConfig::default(),
        ));
        let body = r#"{"refs":["$secret://aws/my-secrets-manager/s"]}"#;
        let (_, v) = send_json(app.clone(), post_resolve(Some(&bearer()), body)).await;
        assert_eq!(v["results"][0]["stale"], json!(false));
        clock.advance(std::time::Duration::from_secs(3600));
        p.fail_with(Some(ProviderError::Unreachable("down".into())));
        let (_, v) = send_json(app, post_resolve(Some(&bearer()), body)).await;
        assert_eq!(
            v["results"][0],
            json!({"ref": "$secret://aws/my-secrets-manager/s", "value": "v", "stale": true})
        );
    }

    #[tokio::test]
    async fn malformed_bodies_are_400_with_an_error() {
        let cases = [
            ("", "invalid request body: EOF while parsing a value at line 1 column 0"),
            ("{", "invalid request body: EOF while parsing an object at line 1 column 1"),
            (" [[\"$secret://aws/p/s\"]]", "invalid request body: not a JSON object"),
            ("null", "invalid request body: not a JSON object"),
            ("{}", "invalid request body: missing field `refs` at line 1 column 2"),
            (r#"{"refs":"x"}"#, "invalid request body: invalid type: string \"x\", expected a sequence at line 1 column 11"),
            (r#"{"refs":[1]}"#, "invalid request body: invalid type: integer `1`, expected a string at line 1 column 10"),
            (r#"{"refs":[],"x":1}"#, "invalid request body: unknown field `x`, expected one of `refs`, `previous`, `refetch` at line 1 column 14"),
        ];
        for (body, message) in cases {
            let (status, v) = send_json(app(), post_resolve(Some(&bearer()), body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let want = format!("{message}; expected {{\"refs\": [\"$secret://...\", ...]}}");
            assert_eq!(v, json!({"error": want}), "{body}");
        }
    }

    #[tokio::test]
    async fn limits() {
        let too_many = json!({"refs": vec!["x"; MAX_REFS + 1]}).to_string();
        let (status, v) = send_json(app(), post_resolve(Some(&bearer()), too_many)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            v,
            json!({"error": "too many refs: 100001 (at most 100000 per request)"})
        );

        let at_limit = json!({"refs": vec!["x"; MAX_REFS]}).to_string();
        let (status, v) = send_json(app(), post_resolve(Some(&bearer()), at_limit)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["results"].as_array().unwrap().len(), MAX_REFS);

        let huge = format!(r#"{{"refs":["{}"]}}"#, "a".repeat(MAX_BODY_BYTES));
        let (status, v) = send_json(app(), post_resolve(Some(&bearer()), huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(v, json!({"error": "request body larger than 32 MiB"}));
    }

    #[tokio::test]
    async fn unknown_routes_are_404_after_the_token_check() {
        let req = |auth: Option<String>| {
            let mut b = axum::http::Request::builder().uri("/nope");
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a);
            }
            b.body(Body::empty()).unwrap()
        };
        assert_eq!(send(app(), req(None)).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            send(app(), req(Some(bearer()))).await.0,
            StatusCode::NOT_FOUND
        );
        let get_resolve = axum::http::Request::builder()
            .uri("/v1/resolve")
            .header(header::AUTHORIZATION, bearer())
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(app(), get_resolve).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    /// Any Redis on 127.0.0.1 may be used.
    fn loopback_redis() -> LimitConfig {
        LimitConfig {
            redis: vec![crate::config::AllowedAddr::parse("127.0.0.1:*").unwrap()],
            redis_clusters: Vec::new(),
        }
    }

    #[tokio::test]
    async fn limit_refuses_unlisted_backends_with_403() {
        let body = json!({
            "backend": {"policy": "redis", "host": "198.51.100.7", "port": 6379,
                        "password": "hunter2-plain"},
            "ops": [{"key": "k", "limit": 3, "window_s": 60}]});
        let (status, raw) = send(app(), post_limit(body.to_string())).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            v,
            json!({"error": {"code": "backend_not_allowed",
                             "message": "redis 198.51.100.7:6379 is not allowed: list it in the sidecar's [limit] redis setting to use it"}})
        );
        assert!(!String::from_utf8_lossy(&raw).contains("hunter2"));
    }

    #[tokio::test]
    async fn a_refused_token_closes_the_connection() {
        let mut req = post_limit("{}");
        req.headers_mut().remove(header::AUTHORIZATION);
        let res = app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(res.headers()[header::CONNECTION], "close");
        let mut req = post_limit("{}");
        req.headers_mut()
            .insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        let res = app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()[header::CONNECTION], "close");
    }

    fn post_limit(body: impl Into<Body>) -> Request {
        axum::http::Request::builder()
            .method("POST")
            .uri("/v1/limit")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer())
            .body(body.into())
            .unwrap()
    }

    #[tokio::test]
    async fn limit_needs_the_token() {
        let body = r#"{"backend":{"policy":"redis","host":"127.0.0.1"},"ops":[]}"#;
        let mut req = post_limit(body);
        req.headers_mut().remove(header::AUTHORIZATION);
        assert_eq!(send(app(), req).await.0, StatusCode::UNAUTHORIZED);
        let mut req = post_limit(body);
        req.headers_mut()
            .insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        let (status, body) = send(app(), req).await;
        assert_eq!((status, body.len()), (StatusCode::FORBIDDEN, 0));
    }

    #[tokio::test]
    async fn limit_refuses_malformed_requests_with_400() {
        let cases = [
            ("[]", "invalid request body: not a JSON object"),
            (
                r#"{"backend":{"policy":"redis","host":"127.0.0.1"},"ops":[]}"#,
                "ops: must not be empty",
            ),
            (
                r#"{"backend":{"policy":"redis","host":"127.0.0.1"},"ops":[{"key":"k","limit":0,"window_s":1}]}"#,
                "ops[0].limit: must be at least 1, got 0",
            ),
        ];
        for (body, want) in cases {
            let (status, v) = send_json(app(), post_limit(body)).await;
            assert_eq!(
                (status, v),
                (StatusCode::BAD_REQUEST, json!({"error": want}))
            );
        }
    }

    #[tokio::test]
    async fn limit_failures_are_502_with_a_code() {
        // a password reference that does not resolve: no Redis is contacted
        let body = json!({
            "backend": {"policy": "redis", "host": "127.0.0.1", "port": 1,
                        "password": "$secret://aws/my-secrets-manager/redis-credentials/password"},
            "ops": [{"key": "k", "limit": 3, "window_s": 60}]});
        let (status, v) = send_json(app(), post_limit(body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(
            v,
            json!({"error": {"code": "secret_unresolved",
                             "message": "backend.password: reference \"$secret://aws/my-secrets-manager/redis-credentials/password\" did not resolve: secret_not_found: secret \"redis-credentials\" not found in provider \"my-secrets-manager\""}})
        );

        // nothing listens on the port: unavailable, the plain password nowhere in the answer
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let body = json!({
            "backend": {"policy": "redis", "host": "127.0.0.1", "port": port,
                        "password": "hunter2-plain", "timeout_ms": 500},
            "ops": [{"key": "k", "limit": 3, "window_s": 60}]});
        let (status, raw) = send(app(), post_limit(body.to_string())).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["error"]["code"], "redis_unavailable", "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("redis 127.0.0.1:{port} db 0 unavailable: ")),
            "{message}"
        );
        assert!(!String::from_utf8_lossy(&raw).contains("hunter2"));
    }
}
