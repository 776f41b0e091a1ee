//! The `POST /v1/limit` body: strict raw (serde) types, validated once into [`LimitRequest`].
//! Every refusal names the field (`ops[2].window_s: must be at least 1, got 0`).

use std::fmt;
use std::time::Duration;

use secret_ref::{ParseError, Reference, SecretValue};

/// Most ops accepted in one request.
pub const MAX_OPS: usize = 1000;
/// `backend.port` when absent (policy `redis`).
pub const DEFAULT_PORT: u16 = 6379;
/// `backend.timeout_ms` when absent (APISIX's `redis_timeout` default).
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// Largest `backend.timeout_ms`: a limit check must not hold a request longer than this.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// Largest `ops[].window_s` (about 68 years; Redis' `EX` takes it in any case).
pub const MAX_WINDOW_S: u64 = i32::MAX as u64;

/// Which kind of Redis deployment holds the counters.
pub use sidecar_api::LimitPolicy as Policy;

// The body as sent (sidecar-api, shared with the filter). Its numbers are signed so that a
// negative value gets our message ("must be at least 1"), not serde's "invalid value: integer
// `-1`, expected u64".
use sidecar_api::{LimitBackend as RawBackend, LimitOp as RawOp, LimitRequest as RawRequest};

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRequest {
    pub backend: Backend,
    pub ops: Vec<Op>,
}

/// Where the counters live and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub target: Target,
    /// TLS (`rediss://`), server certificates checked against the system's roots.
    pub ssl: bool,
    /// Bounds connecting and, separately, each round trip of commands.
    pub timeout: Duration,
    pub username: Option<Credential>,
    pub password: Option<Credential>,
}

/// The Redis server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Single {
        host: String,
        port: u16,
        database: u32,
    },
    Cluster {
        nodes: Vec<(String, u16)>,
    },
}

impl Target {
    pub fn policy(&self) -> Policy {
        match self {
            Target::Single { .. } => Policy::Redis,
            Target::Cluster { .. } => Policy::RedisCluster,
        }
    }
}

/// A username or password as sent: a plain value, or a `$secret://` reference that the
/// resolver turns into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Plain(SecretValue),
    Reference(String),
}

/// One fixed-window counter update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: String,
    pub limit: i64,
    pub window_s: u64,
    pub cost: i64,
}

impl fmt::Display for Backend {
    /// `redis 127.0.0.1:6379 db 0`, `rediss 10.0.0.1:6380 db 2`,
    /// `redis-cluster 127.0.0.1:7000,127.0.0.1:7001`. No credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = if self.ssl { " (tls)" } else { "" };
        match &self.target {
            Target::Single {
                host,
                port,
                database,
            } => write!(f, "redis {host}:{port} db {database}{tls}"),
            Target::Cluster { nodes } => {
                let nodes: Vec<String> = nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                write!(f, "redis-cluster {}{tls}", nodes.join(","))
            }
        }
    }
}

/// Why a request body was refused (answered `400 {"error": "<Display>"}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("invalid request body: not a JSON object")]
    NotAnObject,
    #[error("invalid request body: {}{message}", path_prefix(.path))]
    Json {
        path: Option<String>,
        message: String,
    },
    #[error("{field}: {problem}")]
    Field { field: String, problem: Problem },
}

fn path_prefix(path: &Option<String>) -> String {
    path.as_deref()
        .map(|p| format!("{p}: "))
        .unwrap_or_default()
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("missing (required with policy \"{0}\")")]
    MissingFor(&'static str),
    #[error("must not be empty")]
    Empty,
    #[error("too many: {got} (at most {max} per request)")]
    TooMany { got: usize, max: usize },
    #[error("must be at least {min}, got {got}")]
    TooSmall { min: i64, got: i64 },
    #[error("must be at most {max}, got {got}")]
    TooLarge { max: u64, got: i64 },
    #[error("not used with policy \"{policy}\"; {hint}")]
    NotUsedWith {
        policy: &'static str,
        hint: &'static str,
    },
    #[error("must be 0: Redis Cluster has only database 0")]
    ClusterDatabase,
    #[error("{0:?} is not \"host:port\"")]
    NotHostPort(String),
    #[error("$env:// references are resolved by the filter from its own environment; send the value or a $secret:// reference")]
    EnvReference,
    #[error("invalid reference: {0}")]
    InvalidReference(ParseError),
    #[error("cost {cost} exceeds limit {limit} by more than the counter can hold")]
    Overflow { limit: i64, cost: i64 },
}

fn field(field: impl Into<String>, problem: Problem) -> RequestError {
    RequestError::Field {
        field: field.into(),
        problem,
    }
}

/// Parses and validates a `/v1/limit` body.
pub fn parse(body: &[u8]) -> Result<LimitRequest, RequestError> {
    // serde would also take a JSON array for a struct; the API is an object.
    if body.trim_ascii_start().first() != Some(&b'{') && !body.trim_ascii().is_empty() {
        return Err(RequestError::NotAnObject);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let raw: RawRequest = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        RequestError::Json {
            path: (path != ".").then_some(path),
            message: e.into_inner().to_string(),
        }
    })?;
    validate(raw)
}

fn validate(raw: RawRequest) -> Result<LimitRequest, RequestError> {
    let backend = validate_backend(raw.backend)?;
    if raw.ops.is_empty() {
        return Err(field("ops", Problem::Empty));
    }
    if raw.ops.len() > MAX_OPS {
        return Err(field(
            "ops",
            Problem::TooMany {
                got: raw.ops.len(),
                max: MAX_OPS,
            },
        ));
    }
    let ops = raw
        .ops
        .into_iter()
        .enumerate()
        .map(|(i, op)| validate_op(i, op))
        .collect::<Result<_, _>>()?;
    Ok(LimitRequest { backend, ops })
}

fn validate_backend(raw: RawBackend) -> Result<Backend, RequestError> {
    let policy = raw.policy.as_str();
    let target = match raw.policy {
        Policy::Redis => {
            if raw.cluster_nodes.as_ref().is_some_and(|n| !n.is_empty()) {
                return Err(field(
                    "backend.cluster_nodes",
                    Problem::NotUsedWith {
                        policy,
                        hint: "give host and port, or use policy \"redis-cluster\"",
                    },
                ));
            }
            let host = match raw.host {
                None => return Err(field("backend.host", Problem::MissingFor(policy))),
                Some(h) if h.trim().is_empty() => {
                    return Err(field("backend.host", Problem::Empty))
                }
                Some(h) => h,
            };
            let port = match raw.port {
                None => DEFAULT_PORT,
                Some(p) => port_in_range("backend.port", p)?,
            };
            let database = match raw.database {
                None => 0,
                Some(d) => in_range("backend.database", d, 0, u64::from(u32::MAX))?,
            };
            Target::Single {
                host,
                port,
                database: u32::try_from(database).unwrap_or(u32::MAX),
            }
        }
        Policy::RedisCluster => {
            let hint = "list the cluster's nodes in cluster_nodes";
            if raw.host.is_some() {
                return Err(field("backend.host", Problem::NotUsedWith { policy, hint }));
            }
            if raw.port.is_some() {
                return Err(field("backend.port", Problem::NotUsedWith { policy, hint }));
            }
            if raw.database.is_some_and(|d| d != 0) {
                return Err(field("backend.database", Problem::ClusterDatabase));
            }
            let nodes = match raw.cluster_nodes {
                None => return Err(field("backend.cluster_nodes", Problem::MissingFor(policy))),
                Some(n) if n.is_empty() => {
                    return Err(field("backend.cluster_nodes", Problem::Empty))
                }
                Some(n) => n,
            };
            let nodes = nodes
                .iter()
                .enumerate()
                .map(|(i, node)| host_port(&format!("backend.cluster_nodes[{i}]"), node))
                .collect::<Result<_, _>>()?;
            Target::Cluster { nodes }
        }
    };
    let timeout_ms = match raw.timeout_ms {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => in_range("backend.timeout_ms", t, 1, MAX_TIMEOUT_MS)?,
    };
    Ok(Backend {
        target,
        ssl: raw.ssl.unwrap_or(false),
        timeout: Duration::from_millis(timeout_ms),
        username: credential("backend.username", raw.username)?,
        password: credential("backend.password", raw.password)?,
    })
}

fn in_range(name: &str, value: i64, min: i64, max: u64) -> Result<u64, RequestError> {
    if value < min {
        return Err(field(name, Problem::TooSmall { min, got: value }));
    }
    match u64::try_from(value) {
        Ok(v) if v <= max => Ok(v),
        _ => Err(field(name, Problem::TooLarge { max, got: value })),
    }
}

fn port_in_range(name: &str, value: i64) -> Result<u16, RequestError> {
    let port = in_range(name, value, 1, u64::from(u16::MAX))?;
    Ok(u16::try_from(port).unwrap_or(u16::MAX))
}

/// `host:port`, `[v6::addr]:port`.
fn host_port(name: &str, text: &str) -> Result<(String, u16), RequestError> {
    let bad = || field(name, Problem::NotHostPort(text.to_string()));
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Absent or empty: no credential (as APISIX treats an empty `redis_password`).
fn credential(name: &str, value: Option<SecretValue>) -> Result<Option<Credential>, RequestError> {
    let Some(value) = value.filter(|v| !v.expose().is_empty()) else {
        return Ok(None);
    };
    match secret_ref::parse(value.expose()) {
        Ok(None) => Ok(Some(Credential::Plain(value))),
        Ok(Some(Reference::Secret(_))) => {
            Ok(Some(Credential::Reference(value.expose().to_string())))
        }
        Ok(Some(Reference::Env(_))) => Err(field(name, Problem::EnvReference)),
        Err(e) => Err(field(name, Problem::InvalidReference(e))),
    }
}

fn validate_op(i: usize, raw: RawOp) -> Result<Op, RequestError> {
    let name = |f: &str| format!("ops[{i}].{f}");
    if raw.key.is_empty() {
        return Err(field(name("key"), Problem::Empty));
    }
    if raw.limit < 1 {
        return Err(field(
            name("limit"),
            Problem::TooSmall {
                min: 1,
                got: raw.limit,
            },
        ));
    }
    let window_s = in_range(&name("window_s"), raw.window_s, 1, MAX_WINDOW_S)?;
    let cost = raw.cost.unwrap_or(1);
    if cost < 0 {
        return Err(field(name("cost"), Problem::TooSmall { min: 0, got: cost }));
    }
    // limit >= 1 and cost >= 0, so this only fails for absurd costs; keep it exact anyway.
    if raw.limit.checked_sub(cost).is_none() {
        return Err(field(
            name("cost"),
            Problem::Overflow {
                limit: raw.limit,
                cost,
            },
        ));
    }
    Ok(Op {
        key: raw.key,
        limit: raw.limit,
        window_s,
        cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn debug_never_shows_a_plain_password_or_username() {
        let body = json!({
            "backend": {"policy": "redis", "host": "127.0.0.1", "port": 6379,
                        "username": "plain-user-x", "password": "plain-password-x"},
            "ops": [{"key": "k", "limit": 1, "window_s": 1}]});
        let request = parse(body.to_string().as_bytes()).unwrap();
        for dbg in [format!("{request:?}"), format!("{:#?}", request.backend)] {
            assert!(!dbg.contains("plain-password-x"), "{dbg}");
            assert!(!dbg.contains("plain-user-x"), "{dbg}");
            assert!(dbg.contains("[redacted]"), "{dbg}");
        }
    }

    fn backend() -> Value {
        json!({"policy": "redis", "host": "127.0.0.1", "port": 6379, "database": 0,
               "timeout_ms": 1000, "ssl": false, "cluster_nodes": []})
    }

    fn op() -> Value {
        json!({"key": "k", "limit": 3, "window_s": 60, "cost": 1})
    }

    fn body(backend: Value, ops: Value) -> Vec<u8> {
        json!({"backend": backend, "ops": ops})
            .to_string()
            .into_bytes()
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        v.as_object_mut().unwrap().remove(key);
        v
    }

    /// The error message, without serde's " at line L column C" (that depends on the layout).
    fn error(body: &[u8]) -> String {
        match parse(body) {
            Ok(r) => panic!("accepted {}: {r:?}", String::from_utf8_lossy(body)),
            Err(e) => {
                let text = e.to_string();
                match text.split_once(" at line ") {
                    Some((message, _)) => message.to_string(),
                    None => text,
                }
            }
        }
    }

    #[test]
    fn the_design_example_parses() {
        let body = br#"{"backend": {"policy": "redis", "host": "127.0.0.1", "port": 6379, "database": 0,
             "username": "$secret://aws/my-secrets-manager/redis/user",
             "password": "$secret://aws/my-secrets-manager/redis/password",
             "timeout_ms": 1000, "ssl": false, "cluster_nodes": []},
             "ops": [{"key": "limit-count:route1:remote_addr:127.0.0.1", "limit": 3, "window_s": 60, "cost": 1}]}"#;
        let r = parse(body).unwrap();
        assert_eq!(
            r,
            LimitRequest {
                backend: Backend {
                    target: Target::Single {
                        host: "127.0.0.1".into(),
                        port: 6379,
                        database: 0
                    },
                    ssl: false,
                    timeout: Duration::from_millis(1000),
                    username: Some(Credential::Reference(
                        "$secret://aws/my-secrets-manager/redis/user".into()
                    )),
                    password: Some(Credential::Reference(
                        "$secret://aws/my-secrets-manager/redis/password".into()
                    )),
                },
                ops: vec![Op {
                    key: "limit-count:route1:remote_addr:127.0.0.1".into(),
                    limit: 3,
                    window_s: 60,
                    cost: 1
                }],
            }
        );
        assert_eq!(r.backend.to_string(), "redis 127.0.0.1:6379 db 0");
    }

    #[test]
    fn defaults_and_plain_credentials() {
        let b = json!({"policy": "redis", "host": "redis.local", "password": "pw", "username": ""});
        let ops = json!([{"key": "k", "limit": 1, "window_s": 1}]);
        let r = parse(&body(b, ops)).unwrap();
        assert_eq!(
            r.backend.target,
            Target::Single {
                host: "redis.local".into(),
                port: DEFAULT_PORT,
                database: 0
            }
        );
        assert_eq!(r.backend.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert!(!r.backend.ssl);
        assert_eq!(r.backend.username, None, "an empty username is none");
        assert_eq!(
            r.backend.password,
            Some(Credential::Plain(SecretValue::new("pw")))
        );
        assert_eq!(r.ops[0].cost, 1, "cost defaults to 1");
        // the password never shows in Debug
        assert!(!format!("{r:?}").contains("\"pw\""));
    }

    #[test]
    fn cluster_backend() {
        let b = json!({"policy": "redis-cluster", "ssl": true, "database": 0,
                       "cluster_nodes": ["127.0.0.1:7000", "[::1]:7001", "redis-2:7002"]});
        let r = parse(&body(b, json!([op()]))).unwrap();
        assert_eq!(
            r.backend.target,
            Target::Cluster {
                nodes: vec![
                    ("127.0.0.1".into(), 7000),
                    ("::1".into(), 7001),
                    ("redis-2".into(), 7002)
                ]
            }
        );
        assert_eq!(
            r.backend.to_string(),
            "redis-cluster 127.0.0.1:7000,::1:7001,redis-2:7002 (tls)"
        );
    }

    #[test]
    fn cost_zero_and_large_costs_are_accepted() {
        let ops = json!([
            {"key": "a", "limit": 3, "window_s": 60, "cost": 0},
            {"key": "b", "limit": 3, "window_s": 60, "cost": 5},
            {"key": "c", "limit": 1, "window_s": MAX_WINDOW_S, "cost": i64::MAX},
        ]);
        let r = parse(&body(backend(), ops)).unwrap();
        let costs: Vec<i64> = r.ops.iter().map(|o| o.cost).collect();
        assert_eq!(costs, [0, 5, i64::MAX]);
    }

    #[test]
    fn ops_count_bounds() {
        assert_eq!(error(&body(backend(), json!([]))), "ops: must not be empty");
        let too_many = Value::Array(vec![op(); MAX_OPS + 1]);
        assert_eq!(
            error(&body(backend(), too_many)),
            "ops: too many: 1001 (at most 1000 per request)"
        );
        let at_max = Value::Array(vec![op(); MAX_OPS]);
        assert_eq!(parse(&body(backend(), at_max)).unwrap().ops.len(), MAX_OPS);
    }

    #[test]
    fn op_fields_are_checked_and_named() {
        let cases = [
            (with(op(), "limit", json!(0)), "ops[1].limit: must be at least 1, got 0"),
            (with(op(), "limit", json!(-5)), "ops[1].limit: must be at least 1, got -5"),
            (with(op(), "window_s", json!(0)), "ops[1].window_s: must be at least 1, got 0"),
            (
                with(op(), "window_s", json!(MAX_WINDOW_S + 1)),
                "ops[1].window_s: must be at most 2147483647, got 2147483648",
            ),
            (with(op(), "cost", json!(-1)), "ops[1].cost: must be at least 0, got -1"),
            (with(op(), "key", json!("")), "ops[1].key: must not be empty"),
            (
                without(op(), "limit"),
                "invalid request body: ops[1]: missing field `limit`",
            ),
            (
                with(op(), "limit", json!("3")),
                "invalid request body: ops[1].limit: invalid type: string \"3\", expected i64",
            ),
            (
                with(op(), "limit", json!(1.5)),
                "invalid request body: ops[1].limit: invalid type: floating point `1.5`, expected i64",
            ),
            (
                with(op(), "burst", json!(1)),
                "invalid request body: ops[1].burst: unknown field `burst`, expected one of `key`, `limit`, `window_s`, `cost`",
            ),
        ];
        for (bad, want) in cases {
            let got = error(&body(backend(), json!([op(), bad])));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn backend_fields_are_checked_against_the_policy() {
        let cluster = json!({"policy": "redis-cluster", "cluster_nodes": ["127.0.0.1:7000"]});
        let cases = [
            (with(backend(), "policy", json!("local")),
             "invalid request body: backend.policy: unknown variant `local`, expected `redis` or `redis-cluster`"),
            (without(backend(), "policy"), "invalid request body: backend: missing field `policy`"),
            (without(backend(), "host"), "backend.host: missing (required with policy \"redis\")"),
            (with(backend(), "host", json!(" ")), "backend.host: must not be empty"),
            (with(backend(), "port", json!(0)), "backend.port: must be at least 1, got 0"),
            (with(backend(), "port", json!(65536)), "backend.port: must be at most 65535, got 65536"),
            (with(backend(), "database", json!(-1)), "backend.database: must be at least 0, got -1"),
            (with(backend(), "timeout_ms", json!(0)), "backend.timeout_ms: must be at least 1, got 0"),
            (with(backend(), "timeout_ms", json!(60_001)), "backend.timeout_ms: must be at most 60000, got 60001"),
            (with(backend(), "cluster_nodes", json!(["127.0.0.1:7000"])),
             "backend.cluster_nodes: not used with policy \"redis\"; give host and port, or use policy \"redis-cluster\""),
            (with(backend(), "password", json!("$env://REDIS_PASSWORD")),
             "backend.password: $env:// references are resolved by the filter from its own environment; send the value or a $secret:// reference"),
            (with(backend(), "username", json!("$secret://aws/p")),
             "backend.username: invalid reference: no secret name: expected $secret://<manager>/<provider-id>/<secret-name>/<key>"),
            (with(backend(), "sentinel", json!(true)),
             "invalid request body: backend.sentinel: unknown field `sentinel`, expected one of `policy`, `host`, `port`, `database`, `username`, `password`, `timeout_ms`, `ssl`, `cluster_nodes`"),
            (without(cluster.clone(), "cluster_nodes"),
             "backend.cluster_nodes: missing (required with policy \"redis-cluster\")"),
            (with(cluster.clone(), "cluster_nodes", json!([])), "backend.cluster_nodes: must not be empty"),
            (with(cluster.clone(), "cluster_nodes", json!(["127.0.0.1:7000", "127.0.0.1"])),
             "backend.cluster_nodes[1]: \"127.0.0.1\" is not \"host:port\""),
            (with(cluster.clone(), "cluster_nodes", json!([":7000"])),
             "backend.cluster_nodes[0]: \":7000\" is not \"host:port\""),
            (with(cluster.clone(), "cluster_nodes", json!(["h:0"])),
             "backend.cluster_nodes[0]: \"h:0\" is not \"host:port\""),
            (with(cluster.clone(), "cluster_nodes", json!(["h:x"])),
             "backend.cluster_nodes[0]: \"h:x\" is not \"host:port\""),
            (with(cluster.clone(), "host", json!("127.0.0.1")),
             "backend.host: not used with policy \"redis-cluster\"; list the cluster's nodes in cluster_nodes"),
            (with(cluster.clone(), "port", json!(6379)),
             "backend.port: not used with policy \"redis-cluster\"; list the cluster's nodes in cluster_nodes"),
            (with(cluster.clone(), "database", json!(1)),
             "backend.database: must be 0: Redis Cluster has only database 0"),
        ];
        for (bad, want) in cases {
            let got = error(&body(bad.clone(), json!([op()])));
            assert_eq!(got, want, "{bad}");
        }
    }

    #[test]
    fn malformed_bodies() {
        assert_eq!(
            error(b""),
            "invalid request body: EOF while parsing a value"
        );
        assert_eq!(error(b"[]"), "invalid request body: not a JSON object");
        assert_eq!(error(b"null"), "invalid request body: not a JSON object");
        assert_eq!(
            error(b"{}"),
            "invalid request body: missing field `backend`"
        );
        assert_eq!(
            error(br#"{"backend": {"policy": "redis", "host": "h"}}"#),
            "invalid request body: missing field `ops`"
        );
    }
}
