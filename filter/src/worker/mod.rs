//! One worker's state: the compiled config, the last good secret values, the credential indexes
//! built from them, and the refresh schedule. Driven by the glue through a small [`Host`] trait,
//! so all of it is tested on the host with a fake.

use crate::auth::basic::BasicIndex;
use crate::auth::hmac::HmacIndex;
use crate::auth::jwt::{JwtCredential, JwtIndex, VerifyKey};
use crate::auth::key::{KeyEntry, KeyIndex, KeyProblem};
use crate::auth::Credentials;
use crate::config::{Compiled, Config, CredentialKind, PluginSet, Sidecar, Source};
use crate::http::callout::DispatchError;
use crate::limit::local::{HashKey, Hit};
use crate::limit::remote::{self, Op, SyncCounters};
use crate::limit::{LimitOptions, Policy};
use crate::metrics::Metrics;
use crate::secrets::{parse_answer, request_body, BatchError, Note, Refresh, SecretTable};
use secret_ref::SecretValue;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

/// The sidecar's rate-limit endpoint (docs/DESIGN.md §4).
pub const LIMIT_PATH: &str = "/v1/limit";

/// Tick period while requests may be waiting for the first answer.
pub const FAST_TICK: Duration = Duration::from_millis(50);
/// Tick period once settled: enough for refresh and retry timing.
pub const SLOW_TICK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// What the runtime needs from the proxy.
pub trait Host {
    fn now_ms(&self) -> u64;
    fn log(&self, level: Level, message: &str);
    /// Sends a POST with a JSON body to the sidecar at `path`; returns the callout's token.
    fn dispatch(
        &mut self,
        sidecar: &Sidecar,
        path: &str,
        body: Vec<u8>,
    ) -> Result<u32, DispatchError>;
}

pub struct Worker {
    config: Config,
    table: SecretTable,
    credentials: Credentials,
    refresh: Option<Refresh>,
    startup_deadline_ms: u64,
    gate_open: bool,
    last_batch_error: Option<String>,
    /// `sync_interval` counters by scope, with the backend and interval to push them with.
    sync: RefCell<HashMap<String, SyncCounters>>,
    sync_scopes: Vec<(String, crate::limit::LimitBackend, u64)>,
    next_sync_ms: HashMap<String, u64>,
    sync_calls: HashMap<u32, (String, Vec<Op>)>,
    last_sync_error: Option<String>,
    /// The key of the local counters' slot hash (set by the glue from shared data).
    limit_hash_key: Option<HashKey>,
    /// When a credential's validity next changes by the clock alone (an `expires_at`, the end
    /// of a rotation grace): the indexes are rebuilt on the first tick from then on.
    next_rebuild_ms: Option<u64>,
    /// Why each credential is disabled, as last logged (each reason is logged once).
    disabled: HashMap<usize, String>,
    /// Refresh outcomes and credential states, for Envoy's stats.
    metrics: Metrics,
    /// Early refreshes after credentials that matched nobody.
    miss: MissRefresh,
    started_ms: u64,
    last_refresh_ok_ms: Option<u64>,
}

impl Worker {
    pub fn new(compiled: Compiled, host: &mut dyn Host) -> Self {
        let Compiled { config, warnings } = compiled;
        for w in &warnings {
            host.log(Level::Warn, w);
        }
        let now = host.now_ms();
        let refresh = config.sidecar.as_ref().and_then(|s| {
            (!config.refs.is_empty()).then(|| Refresh::new(now, config.refresh_interval, s.timeout))
        });
        let startup_deadline_ms = now.saturating_add(millis(config.startup_wait));
        let mut sync_scopes: Vec<(String, crate::limit::LimitBackend, u64)> = Vec::new();
        for set in std::iter::once(&config.default_plugins).chain(config.routes.values()) {
            if let Some(LimitOptions {
                scope,
                policy:
                    Policy::Redis {
                        backend,
                        sync_interval: Some(every),
                        ..
                    },
                ..
            }) = &set.limit_count
            {
                if !sync_scopes.iter().any(|(s, _, _)| s == scope) {
                    sync_scopes.push((scope.clone(), backend.clone(), millis(*every).max(1)));
                }
            }
        }
        let mut rt = Worker {
            table: SecretTable::new(&config),
            config,
            credentials: Credentials::default(),
            gate_open: refresh.is_none(),
            refresh,
            startup_deadline_ms,
            last_batch_error: None,
            sync: RefCell::new(HashMap::new()),
            next_sync_ms: HashMap::new(),
            sync_scopes,
            sync_calls: HashMap::new(),
            last_sync_error: None,
            limit_hash_key: None,
            next_rebuild_ms: None,
            disabled: HashMap::new(),
            metrics: Metrics::default(),
            miss: MissRefresh::default(),
            started_ms: now,
            last_refresh_ok_ms: None,
        };
        rt.metrics.count("vm.configured");
        rt.rebuild(host);
        host.log(
            Level::Info,
            &format!(
                "configured: {} consumers, {} credentials, {} secret references",
                rt.config.consumers.len(),
                rt.config.credentials.len(),
                rt.config.refs.len()
            ),
        );
        rt
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether any route counts with the `local` policy (then the glue sets the hash key).
    pub fn uses_local_limits(&self) -> bool {
        std::iter::once(&self.config.default_plugins)
            .chain(self.config.routes.values())
            .any(|set| {
                set.limit_count
                    .as_ref()
                    .is_some_and(|l| l.policy == Policy::Local)
            })
    }

    pub fn set_limit_hash_key(&mut self, key: HashKey) {
        self.limit_hash_key = Some(key);
    }

    pub fn limit_hash_key(&self) -> Option<&HashKey> {
        self.limit_hash_key.as_ref()
    }

    /// False while requests should wait for the first answer from the sidecar.
    pub fn gate_open(&self) -> bool {
        self.gate_open
    }

    /// The metrics tallied since the last call, with consumer names resolved.
    pub fn drain_metrics(&mut self) -> Vec<crate::metrics::Update> {
        let consumers = &self.config.consumers;
        self.metrics
            .drain(|i| consumers.get(i).map(|c| c.username.as_str()))
    }

    /// The name of consumer `index`.
    pub fn consumer_name(&self, index: usize) -> Option<&str> {
        self.config
            .consumers
            .get(index)
            .map(|c| c.username.as_str())
    }

    /// How often the glue should call [`Worker::on_tick`].
    pub fn tick_period(&self) -> Duration {
        let base = if self.gate_open { SLOW_TICK } else { FAST_TICK };
        self.sync_scopes
            .iter()
            .map(|(_, _, every)| Duration::from_millis(*every))
            .fold(base, Duration::min)
    }

    /// Counts a hit under `sync_interval`: decided locally, pushed to Redis on the next tick.
    /// `None` when the worker already tracks as many counters as it may (see
    /// [`remote::MAX_SYNC_COUNTERS`]): the request is then judged as on a counter store failure.
    pub fn sync_hit(&self, opts: &LimitOptions, key: &str, now_ms: u64) -> Option<Hit> {
        self.sync
            .borrow_mut()
            .entry(opts.scope.clone())
            .or_default()
            .hit(key, opts.count, opts.window_s, now_ms)
    }

    /// Pushes the hits counted under `sync_interval`, one call per scope that is due.
    fn push_syncs(&mut self, host: &mut dyn Host, now: u64) {
        let Some(sidecar) = self.config.sidecar.as_ref() else {
            return;
        };
        let mut errors = Vec::new();
        for (scope, backend, every) in &self.sync_scopes {
            let due = self.next_sync_ms.get(scope).copied().unwrap_or(0);
            if now < due || self.sync_calls.values().any(|(s, _)| s == scope) {
                continue;
            }
            self.next_sync_ms
                .insert(scope.clone(), now.saturating_add(*every));
            let ops = match self.sync.borrow_mut().get_mut(scope) {
                Some(c) => c.take_ops(now),
                None => continue,
            };
            // The sidecar takes at most MAX_OPS_PER_CALL ops a call: one call per chunk.
            for chunk in ops.chunks(remote::MAX_OPS_PER_CALL) {
                match host.dispatch(sidecar, LIMIT_PATH, remote::request_body(backend, chunk)) {
                    Ok(token) => {
                        self.sync_calls
                            .insert(token, (scope.clone(), chunk.to_vec()));
                    }
                    Err(e) => {
                        if let Some(c) = self.sync.borrow_mut().get_mut(scope) {
                            c.failed(chunk);
                        }
                        errors.push(format!("could not call the sidecar: {e}"));
                    }
                }
            }
        }
        for e in errors {
            self.sync_failed(host, &e);
        }
    }

    /// The answer to a `sync_interval` push; `false` if `token` is not one.
    /// Whether `token` is a `sync_interval` counter call (answered by [`Worker::on_sync_answer`]).
    pub fn expects_sync_answer(&self, token: u32) -> bool {
        self.sync_calls.contains_key(&token)
    }

    pub fn on_sync_answer(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        status: Option<&str>,
        body: &[u8],
    ) -> bool {
        let Some((scope, ops)) = self.sync_calls.remove(&token) else {
            return false;
        };
        let now = host.now_ms();
        let mut sync = self.sync.borrow_mut();
        let Some(counters) = sync.get_mut(&scope) else {
            return true;
        };
        match remote::parse_answer(status, body, ops.len()) {
            Ok(answers) => {
                counters.answered(&ops, &answers, now);
                drop(sync);
                if self.last_sync_error.take().is_some() {
                    host.log(
                        Level::Info,
                        "limit-count: pushing counters to Redis works again",
                    );
                }
            }
            Err(e) => {
                counters.failed(&ops);
                drop(sync);
                self.sync_failed(host, &e.to_string());
            }
        }
        true
    }

    fn sync_failed(&mut self, host: &mut dyn Host, error: &str) {
        if self.last_sync_error.as_deref() != Some(error) {
            host.log(
                Level::Warn,
                &format!("limit-count: pushing counters to Redis failed: {error}; will retry"),
            );
            self.last_sync_error = Some(error.to_string());
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Whether the plugin set depends on the route name (so the glue must read it).
    pub fn routes_configured(&self) -> bool {
        !self.config.routes.is_empty()
    }

    pub fn plugins_for(&self, route: Option<&str>) -> &PluginSet {
        route
            .and_then(|r| self.config.routes.get(r))
            .unwrap_or(&self.config.default_plugins)
    }

    /// `(username, credential id)` of credential `index`.
    pub fn identity(&self, index: usize) -> Option<(&str, &str)> {
        let c = self.config.credentials.get(index)?;
        let consumer = self.config.consumers.get(c.consumer)?;
        Some((consumer.username.as_str(), c.id.as_str()))
    }

    /// The consumer of an accepted request: `(username, credential id, custom_id label)`.
    pub fn who(
        &self,
        credential: Option<usize>,
        consumer: Option<usize>,
    ) -> Option<(&str, Option<&str>, Option<&str>)> {
        let cred = credential.and_then(|i| self.config.credentials.get(i));
        let consumer = self
            .config
            .consumers
            .get(cred.map(|c| c.consumer).or(consumer)?)?;
        Some((
            consumer.username.as_str(),
            cred.map(|c| c.id.as_str()),
            consumer.labels.get("custom_id").map(String::as_str),
        ))
    }

    pub fn on_tick(&mut self, host: &mut dyn Host) {
        let now = host.now_ms();
        if !self.sync_scopes.is_empty() {
            self.push_syncs(host, now);
        }
        let (changed, notes) = self.table.expire(&self.config, now);
        self.applied(host, changed, notes);
        if !changed && self.next_rebuild_ms.is_some_and(|at| now >= at) {
            self.rebuild(host);
        }
        if self.refresh.is_some() {
            let since = self.last_refresh_ok_ms.unwrap_or(self.started_ms);
            self.metrics.gauge(
                "refresh.seconds_since_success",
                now.saturating_sub(since) / 1000,
            );
        }
        if !self.gate_open && now >= self.startup_deadline_ms {
            self.gate_open = true;
            host.log(
                Level::Warn,
                "no answer from the sidecar within startup_wait_ms: serving requests with the \
                 credentials known so far (unresolved references match nobody)",
            );
        }
        let (Some(refresh), Some(_)) = (self.refresh.as_mut(), self.config.sidecar.as_ref()) else {
            return;
        };
        let scheduled = match self.miss.scheduled.take() {
            Some(refetch) if !refresh.in_flight(now) => Some(refetch),
            _ => None,
        };
        match scheduled {
            Some(refetch) => self.fetch(host, now, &refetch),
            None if refresh.due(now) => self.fetch(host, now, &[]),
            None => {}
        }
    }

    /// Starts a `/v1/resolve` call for every reference; the sidecar fetches those in `refetch`
    /// from the provider again.
    fn fetch(&mut self, host: &mut dyn Host, now: u64, refetch: &[usize]) {
        let (Some(refresh), Some(sidecar)) = (self.refresh.as_mut(), self.config.sidecar.as_ref())
        else {
            return;
        };
        let previous = self.config.rotation_grace_used;
        match host.dispatch(
            sidecar,
            &sidecar.path,
            request_body(&self.config.refs, previous, refetch),
        ) {
            Ok(token) => refresh.started(token, now),
            Err(e) => {
                refresh.failed(now);
                let err = BatchError::Dispatch {
                    cluster: sidecar.cluster.clone(),
                    error: e,
                };
                self.batch_failed(host, &err);
            }
        }
    }

    /// Whether a `/v1/resolve` call is outstanding.
    pub fn refresh_in_flight(&self, now_ms: u64) -> bool {
        self.refresh.as_ref().is_some_and(|r| r.in_flight(now_ms))
    }

    /// A client presented a credential that matched nobody: perhaps its secret just rotated
    /// and this worker has not refreshed yet. Refreshes on the next tick (at most 0.5 s)
    /// instead of after `refresh_interval_s`, asking the sidecar to fetch
    /// that credential type's secrets from the provider again, at most once per
    /// `miss_refresh_min_interval_s` per worker, and not again for a credential that already
    /// missed after such a refresh (for ten intervals): random guesses cost at most one call
    /// per interval, a client repeating a wrong key one per ten.
    pub fn on_miss(&mut self, host: &mut dyn Host, miss: crate::http::Miss) {
        let interval = millis(self.config.miss_refresh_min_interval);
        if interval == 0 || self.refresh.is_none() {
            return;
        }
        let now = host.now_ms();
        self.miss.known.retain(|_, until| *until > now);
        if self.miss.known.contains_key(&miss.digest) {
            self.metrics.count("refresh.miss_known");
            return;
        }
        let throttled = self
            .miss
            .last_ms
            .is_some_and(|last| now < last.saturating_add(interval));
        let busy = self.miss.scheduled.is_some()
            || self.refresh.as_ref().is_some_and(|r| r.in_flight(now));
        if throttled || busy {
            self.metrics.count("refresh.miss_throttled");
            return;
        }
        self.miss.last_ms = Some(now);
        self.miss.checking.push(miss.digest);
        let refetch: Vec<usize> = self
            .config
            .credentials
            .iter()
            .filter(|c| c.kind.type_name() == miss.kind)
            .flat_map(|c| c.kind.ref_ids())
            .collect();
        self.metrics.count("refresh.on_miss");
        // Started on the next tick, by the root context: a call made here would belong to the
        // request's context, whose answer Envoy drops when the request ends first.
        self.miss.scheduled = Some(refetch);
    }

    /// The sidecar's answer to a `/v1/resolve` call (`status` is `None` when the callout
    /// failed). The body is read as it is parsed.
    pub fn on_answer(
        &mut self,
        host: &mut dyn Host,
        token: u32,
        status: Option<&str>,
        body: impl std::io::Read,
    ) {
        let now = host.now_ms();
        let Some(refresh) = self.refresh.as_mut() else {
            return;
        };
        if !refresh.is_current(token) {
            return;
        }
        match parse_answer(status, body, &self.config.refs) {
            Ok(answers) => {
                refresh.succeeded(now);
                self.metrics.count("refresh.success");
                self.last_refresh_ok_ms = Some(now);
                // Credentials that missed are now judged with fresh values: if they still
                // miss, they are wrong, not new.
                // For ten miss intervals (within the refresh interval): long enough to spare the
                // provider a client repeating a wrong key, short enough that a key whose
                // rotation the sidecar had not seen yet (its own refetch bound) gets another go.
                let remember = millis(self.config.miss_refresh_min_interval)
                    .saturating_mul(10)
                    .min(millis(self.config.refresh_interval));
                let until = now.saturating_add(remember);
                for digest in std::mem::take(&mut self.miss.checking) {
                    if self.miss.known.len() < MISS_KNOWN_MAX {
                        self.miss.known.insert(digest, until);
                    }
                }
                self.gate_open = true;
                if self.last_batch_error.take().is_some() {
                    host.log(Level::Info, "the sidecar answers again");
                }
                let (changed, notes) = self.table.apply(&self.config, answers, now);
                self.applied(host, changed, notes);
            }
            Err(e) => {
                refresh.failed(now);
                self.batch_failed(host, &e);
            }
        }
    }

    /// Logs what a table update says and rebuilds the indexes if a value changed.
    fn applied(&mut self, host: &mut dyn Host, changed: bool, notes: Vec<Note>) {
        for note in notes {
            match note {
                Note::Info(m) => host.log(Level::Info, &m),
                Note::Warn(m) => host.log(Level::Warn, &m),
                Note::Error(m) => host.log(Level::Error, &m),
            }
        }
        if changed {
            self.rebuild(host);
        }
    }

    fn batch_failed(&mut self, host: &mut dyn Host, e: &BatchError) {
        self.metrics.count("refresh.failure");
        let message = e.to_string();
        if self.last_batch_error.as_deref() != Some(message.as_str()) {
            host.log(
                Level::Warn,
                &format!(
                    "resolving secrets failed: {message}; keeping the last good values, retrying"
                ),
            );
            self.last_batch_error = Some(message);
        }
    }

    /// Rebuilds the credential indexes from plain values and the last good secret values (and
    /// previous values in their rotation grace), leaving out expired credentials. A validity
    /// boundary (an `expires_at`, the end of a grace) within the next slow tick counts as
    /// passed: a credential stops matching up to one tick early, never late.
    fn rebuild(&mut self, host: &mut dyn Host) {
        // The old indexes go first: a VM keeps its peak memory, and old and new side by side
        // would double it (nothing reads them meanwhile: one thread).
        self.credentials = Credentials::default();
        let now = host.now_ms();
        let horizon = now.saturating_add(millis(SLOW_TICK));
        let mut next_rebuild: Option<u64> = None;
        let mut boundary = |at: u64| {
            let at = at.saturating_sub(millis(SLOW_TICK));
            next_rebuild = Some(next_rebuild.map_or(at, |n| n.min(at)));
        };
        let table = &self.table;
        fn value<'a>(table: &'a SecretTable, source: &'a Source) -> Option<&'a SecretValue> {
            match source {
                Source::Value(v) => Some(v),
                Source::Ref(id) => table.value(*id),
                Source::Unavailable(_) => None,
            }
        }
        let mut keys = Vec::new();
        let mut basic = Vec::new();
        let mut basic_previous = Vec::new();
        let mut jwt = Vec::new();
        let mut jwt_previous = Vec::new();
        let mut hmac = Vec::new();
        let mut hmac_previous = Vec::new();
        // Credentials whose secret is unknown (not refused): requests they alone could judge
        // get 503, not 401.
        let mut unknown_keys = false;
        let mut unknown_names: (Vec<String>, Vec<String>, Vec<String>) = Default::default();
        let mut disabled: Vec<(usize, String)> = Vec::new();
        for (i, c) in self.config.credentials.iter().enumerate() {
            if let Some(expires_at) = c.expires_at_ms {
                if expires_at <= horizon {
                    disabled.push((i, "expired (expires_at)".into()));
                    continue;
                }
                boundary(expires_at);
            }
            // Unknown or empty: the credential matches nobody (fail closed).
            let Some(secret) = value(table, c.kind.secret()).filter(|s| !s.expose().is_empty())
            else {
                if matches!(c.kind.secret(), Source::Ref(id) if table.unknown(*id)) {
                    match &c.kind {
                        CredentialKind::KeyAuth { .. } => unknown_keys = true,
                        CredentialKind::BasicAuth { username, .. } => {
                            unknown_names.0.push(username.clone())
                        }
                        CredentialKind::JwtAuth { key, .. } => unknown_names.1.push(key.clone()),
                        CredentialKind::HmacAuth { key_id, .. } => {
                            unknown_names.2.push(key_id.clone())
                        }
                    }
                }
                continue;
            };
            // The previous value, while in its rotation grace (references only: a literal
            // value has no versions).
            let previous = match c.kind.secret() {
                Source::Ref(id) if c.rotation_grace_ms > 0 => table
                    .previous(*id, now, c.rotation_grace_ms)
                    .filter(|(v, until)| *until > horizon && !v.expose().is_empty())
                    .map(|(v, until)| {
                        boundary(until);
                        v
                    }),
                _ => None,
            };
            match &c.kind {
                CredentialKind::KeyAuth { sha256, .. } => {
                    keys.push(KeyEntry {
                        credential: i,
                        secret,
                        sha256: *sha256,
                        previous: false,
                    });
                    keys.extend(previous.map(|p| KeyEntry {
                        credential: i,
                        secret: p,
                        sha256: *sha256,
                        previous: true,
                    }));
                }
                CredentialKind::BasicAuth { username, .. } => {
                    basic.push((i, username.clone(), secret.clone()));
                    basic_previous.extend(previous.map(|p| (username.clone(), p.clone())));
                }
                CredentialKind::HmacAuth { key_id, .. } => {
                    hmac.push((i, key_id.clone(), secret.clone()));
                    hmac_previous.extend(previous.map(|p| (key_id.clone(), p.clone())));
                }
                CredentialKind::JwtAuth {
                    key,
                    algorithm,
                    base64_secret,
                    grace_period_s,
                    ..
                } => {
                    let credential = |material: &SecretValue| {
                        VerifyKey::new(*algorithm, material.expose(), *base64_secret).map(
                            |verify| JwtCredential {
                                credential: i,
                                algorithm: *algorithm,
                                key: verify,
                                grace_period_s: *grace_period_s,
                            },
                        )
                    };
                    match credential(secret) {
                        Ok(current) => {
                            jwt.push((key.clone(), current));
                            // A previous key that no longer parses is simply not used.
                            if let Some(Ok(p)) = previous.map(credential) {
                                jwt_previous.push((key.clone(), p));
                            }
                        }
                        Err(e) => disabled.push((i, e.to_string())),
                    }
                }
            }
        }
        let (keys, problems) = KeyIndex::build_entries(keys);
        for problem in problems {
            match problem {
                KeyProblem::Shared(group) => {
                    let ids: Vec<String> = group
                        .iter()
                        .filter_map(|i| self.config.credentials.get(*i))
                        .map(|c| format!("\"{}\"", c.id))
                        .collect();
                    for i in group {
                        disabled.push((
                            i,
                            format!("credentials {} have the same key", ids.join(", ")),
                        ));
                    }
                }
                KeyProblem::NotSha256Hex(i) => disabled.push((
                    i,
                    "key_sha256 is not a SHA-256 digest (64 hex digits)".into(),
                )),
            }
        }
        let mut by_reason: HashMap<&'static str, u64> = HashMap::new();
        for class in [
            "expired",
            "shared_key",
            "not_sha256",
            "bad_key",
            "unresolved",
            "unknown",
        ] {
            by_reason.insert(class, 0);
        }
        for (_, reason) in &disabled {
            let class = if reason.starts_with("expired") {
                "expired"
            } else if reason.contains("same key") {
                "shared_key"
            } else if reason.starts_with("key_sha256") {
                "not_sha256"
            } else {
                "bad_key"
            };
            *by_reason.entry(class).or_default() += 1;
        }
        for c in &self.config.credentials {
            if let Source::Ref(id) = c.kind.secret() {
                if self.table.value(*id).is_none() {
                    let class = if self.table.unknown(*id) {
                        "unknown"
                    } else {
                        "unresolved"
                    };
                    *by_reason.entry(class).or_default() += 1;
                }
            }
        }
        for (class, n) in by_reason {
            self.metrics
                .gauge(format!("credentials.disabled.{class}"), n);
        }
        self.note_disabled(host, disabled);
        self.next_rebuild_ms = next_rebuild;
        self.credentials = Credentials {
            keys: keys.with_unknown(unknown_keys),
            basic: BasicIndex::build(basic)
                .with_unknown(unknown_names.0)
                .with_previous(basic_previous),
            jwt: JwtIndex::build(jwt)
                .with_unknown(unknown_names.1)
                .with_previous(jwt_previous),
            hmac: HmacIndex::build(hmac)
                .with_unknown(unknown_names.2)
                .with_previous(hmac_previous),
        };
    }

    /// Logs each credential disabled by its own fault (expired, a key that does not parse, a
    /// key shared with another) once per reason, and when it works again.
    fn note_disabled(&mut self, host: &mut dyn Host, now: Vec<(usize, String)>) {
        let mut still: HashMap<usize, String> = HashMap::with_capacity(now.len());
        for (i, reason) in now {
            if self.disabled.get(&i) != Some(&reason) {
                if let Some(c) = self.config.credentials.get(i) {
                    host.log(
                        Level::Error,
                        &format!("{}: {reason}; credential \"{}\" disabled", c.path(), c.id),
                    );
                }
            }
            still.insert(i, reason);
        }
        for i in self.disabled.keys() {
            if !still.contains_key(i) {
                if let Some(c) = self.config.credentials.get(*i) {
                    host.log(
                        Level::Info,
                        &format!("{}: credential \"{}\" enabled again", c.path(), c.id),
                    );
                }
            }
        }
        self.disabled = still;
    }
}

/// At most this many credentials remembered as wrong after a refresh (a bounded set: random
/// guesses never repeat, so they only fill it; when full, nothing more is remembered).
const MISS_KNOWN_MAX: usize = 4096;

#[derive(Debug, Default)]
struct MissRefresh {
    last_ms: Option<u64>,
    /// Digests of credentials whose miss started the refresh in flight.
    checking: Vec<[u8; 32]>,
    /// A refresh a miss asked for: the references to refetch, started on the next tick.
    scheduled: Option<Vec<usize>>,
    /// Digests of credentials that missed again after a refresh, until when.
    known: HashMap<[u8; 32], u64>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
