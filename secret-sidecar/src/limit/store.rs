//! Redis connections kept per backend, and the fixed-window counter script run on them.
//!
//! One multiplexed connection (a `ConnectionManager`, or a cluster connection that routes each
//! key to its slot) per backend and login. A slot is keyed by where the counters live
//! (policy, address(es), database, TLS, timeout) and the username; the password is kept beside
//! the connection and a different password replaces it, so a rotated password opens a new
//! connection and the old one is dropped.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, ServerErrorKind, Value,
};
use secret_ref::SecretValue;
use tokio::sync::OnceCell;

use super::request::{Backend, Op, Target};

/// APISIX's limit-count-redis fixed window, one key per call. `ARGV`: `limit - cost` (computed
/// by the sidecar, so Lua does no arithmetic), `window_s`, `cost`. Answers
/// `{remaining, reset_s}`.
const SCRIPT: &str = r"local ttl = redis.call('ttl', KEYS[1])
if ttl < 0 then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return {ARGV[1], ARGV[2]}
end
return {redis.call('decrby', KEYS[1], ARGV[3]), ttl}
";

/// What one op left: the counter after it, and the seconds until its window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub remaining: i64,
    pub reset_s: i64,
}

/// The resolved login for a backend.
#[derive(Clone, Default)]
pub struct Login {
    pub username: Option<SecretValue>,
    pub password: Option<SecretValue>,
}

/// Why the counters could not be updated. Details come from Redis or the network, never
/// from the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Connection refused or dropped, no answer in time, cluster down.
    Unavailable(String),
    /// Redis refused the login (WRONGPASS, NOAUTH).
    AuthFailed(String),
    /// Anything else Redis answered.
    Redis(String),
}

/// Redis connections by backend.
pub struct Store {
    slots: Mutex<HashMap<SlotKey, Slot>>,
    /// SHA1 of [`SCRIPT`], for `EVALSHA`.
    script_sha: String,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            slots: Mutex::default(),
            script_sha: redis::Script::new(SCRIPT).get_hash().to_string(),
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    target: Target,
    ssl: bool,
    timeout: Duration,
    username: Option<Username>,
}

/// A username in a map key: hashed and compared by content, never printed.
#[derive(Clone, PartialEq, Eq)]
struct Username(SecretValue);

impl Hash for Username {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.expose().hash(state);
    }
}

struct Slot {
    password: Option<SecretValue>,
    conn: Arc<OnceCell<Conn>>,
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Store {
    pub fn new() -> Self {
        Store::default()
    }

    /// Runs `ops` against `backend`, logged in as `login`; one counter per op, in order.
    pub async fn run(
        &self,
        backend: &Backend,
        login: Login,
        ops: &[Op],
    ) -> Result<Vec<Counter>, StoreError> {
        let key = SlotKey {
            target: backend.target.clone(),
            ssl: backend.ssl,
            timeout: backend.timeout,
            username: login.username.clone().map(Username),
        };
        let cell = self.slot(&key, login.password.as_ref());
        let result = self.run_on(&cell, backend, &login, ops).await;
        if let Err(StoreError::Unavailable(_) | StoreError::AuthFailed(_)) = &result {
            // Start afresh next time (a cluster whose nodes all went away, credentials that
            // Redis stopped accepting); the connection manager alone would keep failing.
            self.evict(&key, &cell);
        }
        result
    }

    async fn run_on(
        &self,
        cell: &OnceCell<Conn>,
        backend: &Backend,
        login: &Login,
        ops: &[Op],
    ) -> Result<Vec<Counter>, StoreError> {
        let timeout = backend.timeout;
        let conn = within(
            timeout,
            "connecting",
            cell.get_or_try_init(|| connect(backend, login)),
        )
        .await?
        .clone();
        match conn {
            Conn::Single(mut c) => self.run_pipelined(&mut c, timeout, ops).await,
            Conn::Cluster(c) => {
                let all = join_all(ops.iter().map(|op| self.run_one(c.clone(), op)));
                match tokio::time::timeout(timeout, all).await {
                    Ok(counters) => counters.into_iter().collect(),
                    Err(_) => Err(deadline(timeout, "waiting for the cluster")),
                }
            }
        }
    }

    /// The connection cell for `key`, replaced if the password changed.
    fn slot(&self, key: &SlotKey, password: Option<&SecretValue>) -> Arc<OnceCell<Conn>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.get(key) {
            Some(slot) if slot.password.as_ref() == password => slot.conn.clone(),
            _ => {
                let conn = Arc::new(OnceCell::new());
                slots.insert(
                    key.clone(),
                    Slot {
                        password: password.cloned(),
                        conn: conn.clone(),
                    },
                );
                conn
            }
        }
    }

    /// Drops the slot for `key` if it still holds `cell`.
    fn evict(&self, key: &SlotKey, cell: &Arc<OnceCell<Conn>>) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(&s.conn, cell)) {
            slots.remove(key);
        }
    }

    /// Number of (backend, username) pairs with a connection slot.
    pub fn backends(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Plain Redis: all ops in one pipeline of `EVALSHA`s; those that met `NOSCRIPT` (an empty
    /// script cache: restart, `SCRIPT FLUSH`) are sent again as `EVAL`, which caches the script.
    async fn run_pipelined(
        &self,
        conn: &mut ConnectionManager,
        timeout: Duration,
        ops: &[Op],
    ) -> Result<Vec<Counter>, StoreError> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for op in ops {
            pipe.add_command(self.evalsha(op));
        }
        let mut answers = query(conn, &pipe, timeout).await?;
        let missing: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| is_noscript(a))
            .map(|(i, _)| i)
            .collect();
        if !missing.is_empty() {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &missing {
                if let Some(op) = ops.get(i) {
                    pipe.add_command(eval(op));
                }
            }
            let again = query(conn, &pipe, timeout).await?;
            for (i, answer) in missing.into_iter().zip(again) {
                if let Some(slot) = answers.get_mut(i) {
                    *slot = answer;
                }
            }
        }
        answers.into_iter().map(counter).collect()
    }

    /// Cluster: one op, routed by its key to its slot's node.
    async fn run_one(&self, mut conn: ClusterConnection, op: &Op) -> Result<Counter, StoreError> {
        let answer = server_error_as_err(self.evalsha(op).query_async(&mut conn).await);
        let answer = if is_noscript(&answer) {
            server_error_as_err(eval(op).query_async(&mut conn).await)
        } else {
            answer
        };
        counter(answer)
    }

    fn evalsha(&self, op: &Op) -> redis::Cmd {
        script_cmd("EVALSHA", &self.script_sha, op)
    }
}

fn eval(op: &Op) -> redis::Cmd {
    script_cmd("EVAL", SCRIPT, op)
}

fn script_cmd(verb: &str, script: &str, op: &Op) -> redis::Cmd {
    let mut cmd = redis::cmd(verb);
    cmd.arg(script)
        .arg(1)
        .arg(&op.key)
        // validated: limit >= 1, cost >= 0, so this cannot overflow
        .arg(op.limit.saturating_sub(op.cost))
        .arg(op.window_s)
        .arg(op.cost);
    cmd
}

async fn query(
    conn: &mut ConnectionManager,
    pipe: &Pipeline,
    timeout: Duration,
) -> Result<Vec<redis::RedisResult<Value>>, StoreError> {
    let answers: Vec<redis::RedisResult<Value>> =
        within(timeout, "waiting for Redis", pipe.query_async(conn)).await?;
    Ok(answers.into_iter().map(server_error_as_err).collect())
}

/// A server error as an `Err`, however the connection delivered it.
fn server_error_as_err(answer: redis::RedisResult<Value>) -> redis::RedisResult<Value> {
    match answer {
        Ok(Value::ServerError(e)) => Err(e.into()),
        other => other,
    }
}

fn is_noscript(answer: &redis::RedisResult<Value>) -> bool {
    matches!(answer, Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
}

/// `{remaining, reset_s}` from the script's answer.
fn counter(answer: redis::RedisResult<Value>) -> Result<Counter, StoreError> {
    let value = server_error_as_err(answer).map_err(|e| classify(&e))?;
    let unexpected = || StoreError::Redis(format!("unexpected answer from the script: {value:?}"));
    match &value {
        Value::Array(items) => match items.as_slice() {
            [remaining, reset_s] => match (integer(remaining), integer(reset_s)) {
                (Some(remaining), Some(reset_s)) => Ok(Counter { remaining, reset_s }),
                _ => Err(unexpected()),
            },
            _ => Err(unexpected()),
        },
        _ => Err(unexpected()),
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

/// Runs `f` for at most `timeout`, mapping Redis errors and the deadline to [`StoreError`].
async fn within<T>(
    timeout: Duration,
    doing: &str,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(&e)),
        Err(_) => Err(deadline(timeout, doing)),
    }
}

fn deadline(timeout: Duration, doing: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "no answer within {} ms ({doing})",
        timeout.as_millis()
    ))
}

async fn connect(backend: &Backend, login: &Login) -> redis::RedisResult<Conn> {
    let settings = redis_settings(backend, login);
    match &backend.target {
        Target::Single { host, port, .. } => {
            let info = address(host, *port, backend.ssl)
                .into_connection_info()?
                .set_redis_settings(settings);
            let client = Client::open(info)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(backend.timeout))
                .set_response_timeout(Some(backend.timeout))
                // one attempt per request; the request's deadline bounds it anyway
                .set_number_of_retries(0);
            let manager = ConnectionManager::new_with_config(client, config).await?;
            Ok(Conn::Single(manager))
        }
        Target::Cluster { nodes } => {
            let nodes: Vec<ConnectionInfo> = nodes
                .iter()
                .map(|(host, port)| {
                    address(host, *port, backend.ssl)
                        .into_connection_info()
                        .map(|i| i.set_redis_settings(settings.clone()))
                })
                .collect::<Result<_, _>>()?;
            let client = ClusterClientBuilder::new(nodes)
                .connection_timeout(backend.timeout)
                .response_timeout(backend.timeout)
                .retries(1)
                .build()?;
            Ok(Conn::Cluster(client.get_async_connection().await?))
        }
    }
}

fn address(host: &str, port: u16, ssl: bool) -> ConnectionAddr {
    if ssl {
        ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_string(), port)
    }
}

fn redis_settings(backend: &Backend, login: &Login) -> RedisConnectionInfo {
    let mut settings = RedisConnectionInfo::default();
    if let Target::Single { database, .. } = backend.target {
        settings = settings.set_db(i64::from(database));
    }
    if let Some(u) = &login.username {
        settings = settings.set_username(u.expose());
    }
    if let Some(p) = &login.password {
        settings = settings.set_password(p.expose());
    }
    settings
}

/// Which of our three failure kinds a Redis error is.
pub(crate) fn classify(e: &RedisError) -> StoreError {
    let code = e.code().unwrap_or_default();
    let detail = e.detail().unwrap_or_default();
    let auth_code = |s: &str| s.starts_with("NOAUTH") || s.starts_with("WRONGPASS");
    if e.kind() == ErrorKind::AuthenticationFailed || auth_code(code) || auth_code(detail) {
        return StoreError::AuthFailed(e.to_string());
    }
    let unavailable = e.is_io_error()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                )
        );
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Redis(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evalsha_sends_the_sha1_of_the_script() {
        let op = Op {
            key: "k".into(),
            limit: 3,
            window_s: 60,
            cost: 1,
        };
        let packed = String::from_utf8(Store::new().evalsha(&op).get_packed_command()).unwrap();
        let sha = redis::Script::new(SCRIPT).get_hash().to_string();
        assert_eq!(sha.len(), 40);
        assert!(
            packed.starts_with(&format!("*7\r\n$7\r\nEVALSHA\r\n$40\r\n{sha}\r\n")),
            "{packed}"
        );
    }

    fn key(username: Option<&str>) -> SlotKey {
        SlotKey {
            target: Target::Single {
                host: "127.0.0.1".into(),
                port: 6379,
                database: 0,
            },
            ssl: false,
            timeout: Duration::from_secs(1),
            username: username.map(|u| Username(SecretValue::new(u))),
        }
    }

    #[test]
    fn a_slot_per_backend_and_user_replaced_when_the_password_changes() {
        let store = Store::new();
        let pw = |p: &str| SecretValue::new(p);
        let first = store.slot(&key(Some("api7")), Some(&pw("one")));
        let again = store.slot(&key(Some("api7")), Some(&pw("one")));
        assert!(Arc::ptr_eq(&first, &again), "same login: same connection");

        let rotated = store.slot(&key(Some("api7")), Some(&pw("two")));
        assert!(
            !Arc::ptr_eq(&first, &rotated),
            "a new password: a new connection"
        );
        assert_eq!(store.backends(), 1, "the old one is dropped");

        let other_user = store.slot(&key(Some("other")), Some(&pw("two")));
        let no_user = store.slot(&key(None), None);
        assert!(!Arc::ptr_eq(&rotated, &other_user) && !Arc::ptr_eq(&rotated, &no_user));
        assert_eq!(store.backends(), 3);

        // eviction only drops the slot it was asked about, if still there
        store.evict(&key(Some("api7")), &first);
        assert_eq!(store.backends(), 3, "`first` was already replaced");
        store.evict(&key(Some("api7")), &rotated);
        assert_eq!(store.backends(), 2);
        let fresh = store.slot(&key(Some("api7")), Some(&pw("two")));
        assert!(!Arc::ptr_eq(&rotated, &fresh));
    }

    #[test]
    fn script_arguments() {
        let op = Op {
            key: "k".into(),
            limit: 3,
            window_s: 60,
            cost: 5,
        };
        let packed = eval(&op).get_packed_command();
        let text = String::from_utf8(packed).unwrap();
        let args: Vec<&str> = text
            .split("\r\n")
            .filter(|l| !l.starts_with(['$', '*']))
            .collect();
        assert_eq!(args[0], "EVAL");
        assert_eq!(&args[2..], ["1", "k", "-2", "60", "5", ""]);
    }

    #[test]
    fn answers_become_counters() {
        let ok = |a: Value| counter(Ok(a));
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(
            ok(Value::Array(vec![bulk("2"), bulk("60")])),
            Ok(Counter {
                remaining: 2,
                reset_s: 60
            })
        );
        assert_eq!(
            ok(Value::Array(vec![Value::Int(-1), Value::Int(17)])),
            Ok(Counter {
                remaining: -1,
                reset_s: 17
            })
        );
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![bulk("x"), Value::Int(1)]),
        ] {
            assert!(
                matches!(ok(bad.clone()), Err(StoreError::Redis(ref m)) if m.starts_with("unexpected answer from the script")),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_are_classified() {
        let io = |kind| RedisError::from(std::io::Error::new(kind, "x"));
        assert!(matches!(
            classify(&io(std::io::ErrorKind::ConnectionRefused)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify(&io(std::io::ErrorKind::TimedOut)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify(&io(std::io::ErrorKind::BrokenPipe)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            classify(&RedisError::from((
                ErrorKind::AuthenticationFailed,
                "Password authentication failed"
            ))),
            StoreError::AuthFailed(_)
        ));
        // server errors as the parser builds them
        let server = |line: &str| -> RedisError {
            let v = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
            match v {
                Value::ServerError(e) => e.into(),
                other => panic!("{other:?}"),
            }
        };
        assert!(matches!(
            classify(&server("NOAUTH Authentication required.")),
            StoreError::AuthFailed(_)
        ));
        assert!(matches!(
            classify(&server(
                "WRONGPASS invalid username-password pair or user is disabled."
            )),
            StoreError::AuthFailed(_)
        ));
        assert!(matches!(
            classify(&server("CLUSTERDOWN The cluster is down")),
            StoreError::Unavailable(_)
        ));
        match classify(&server("ERR value is not an integer or out of range")) {
            StoreError::Redis(m) => assert!(m.contains("value is not an integer"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(&server(
                "NOPERM this user has no permissions to run the 'evalsha' command"
            )),
            StoreError::Redis(_)
        ));
    }
}
