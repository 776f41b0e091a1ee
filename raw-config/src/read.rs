//! The configuration read with `json-read`, field by field, into the raw types: what serde's
//! derives did (and [`crate::parse_with_serde`] still does, as the tests' oracle), with serde's
//! messages and serde_path_to_error's paths, in a fraction of the `.wasm` (issue #9).
//!
//! Every object is strict: an unknown name is `unknown field` at its own path, a name given twice
//! is `duplicate field` at the object's path, a missing required one `missing field` there. Type
//! errors name the kind of the value found, never the value.

use crate::credential::{self, CredentialType, Field, Fields};
use crate::{
    ParseError, RawBasicAuth, RawConfig, RawConsumer, RawCredential, RawHmacAuth, RawJwtAuth,
    RawKeyAuth, RawLimitCount, RawPluginSet, RawSecret, RawSidecar,
};
use json_read::{Error, Reader};
use std::collections::BTreeMap;

/// One step of a path: a field or map key, or a list index.
enum Step {
    Name(String),
    Index(usize),
}

/// An error on its way up: the message and the path below the current value, innermost first.
pub(crate) struct Failure {
    message: String,
    path: Vec<Step>,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            message: e.to_string(),
            path: Vec::new(),
        }
    }
}

impl Failure {
    fn under(mut self, step: Step) -> Self {
        self.path.push(step);
        self
    }

    /// As serde_path_to_error writes it: `consumers[0].credentials[1].key`, `.` for the top.
    pub(crate) fn into_parse_error(self) -> ParseError {
        let mut path = String::new();
        for step in self.path.iter().rev() {
            match step {
                Step::Name(n) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(n);
                }
                Step::Index(i) => {
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                }
            }
        }
        if self.path.is_empty() {
            path.push('.');
        }
        ParseError {
            path,
            message: self.message,
        }
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// The whole document.
pub(crate) fn config(r: &mut Reader<'_>) -> Result<RawConfig> {
    let c = top(r)?;
    r.end()?;
    Ok(c)
}

/// serde's "expected" list: `` `a` ``, `` `a` or `b` ``, `` one of `a`, `b`, `c` ``.
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_string(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        all => format!("one of {}", all.join(", ")),
    }
}

/// Reads an object whose names are `names`: `each(reader, index)` reads the value of
/// `names[index]`. Unknown and repeated names are refused.
fn object(
    r: &mut Reader<'_>,
    names: &[&str],
    mut each: impl FnMut(&mut Reader<'_>, usize) -> Result<()>,
) -> Result<()> {
    r.begin_object("an object")?;
    let mut seen: u64 = 0;
    while let Some(key) = r.next_key()? {
        let Some(i) = names.iter().position(|n| *n == key) else {
            let message = format!("unknown field `{key}`, expected {}", one_of(names));
            let step = Step::Name(key.to_owned());
            return Err(Failure::from(r.error(message)).under(step));
        };
        let bit = 1u64 << (i % 64);
        if seen & bit != 0 {
            let message = format!("duplicate field `{key}`");
            return Err(r.error(message).into());
        }
        seen |= bit;
        each(r, i).map_err(|f| f.under(Step::Name(names[i].to_owned())))?;
    }
    Ok(())
}

fn missing(r: &Reader<'_>, name: &str) -> Failure {
    r.error(format!("missing field `{name}`")).into()
}

fn required<T>(r: &Reader<'_>, v: Option<T>, name: &str) -> Result<T> {
    v.ok_or_else(|| missing(r, name))
}

fn string(r: &mut Reader<'_>) -> Result<String> {
    Ok(r.string()?)
}

fn secret(r: &mut Reader<'_>) -> Result<RawSecret> {
    Ok(RawSecret(r.string()?))
}

fn u64(r: &mut Reader<'_>) -> Result<u64> {
    Ok(r.unsigned(u64::MAX, "u64")?)
}

fn u16(r: &mut Reader<'_>) -> Result<u16> {
    let v = r.unsigned(u64::from(u16::MAX), "u16")?;
    Ok(u16::try_from(v).unwrap_or(u16::MAX))
}

fn u32(r: &mut Reader<'_>) -> Result<u32> {
    let v = r.unsigned(u64::from(u32::MAX), "u32")?;
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

fn usize(r: &mut Reader<'_>) -> Result<usize> {
    let max = u64::try_from(usize::MAX).unwrap_or(u64::MAX);
    let v = r.unsigned(max, "usize")?;
    Ok(usize::try_from(v).unwrap_or(usize::MAX))
}

fn bool(r: &mut Reader<'_>) -> Result<bool> {
    Ok(r.bool()?)
}

/// `null` is `None`.
fn option<T>(
    r: &mut Reader<'_>,
    read: impl FnOnce(&mut Reader<'_>) -> Result<T>,
) -> Result<Option<T>> {
    if r.null()? {
        return Ok(None);
    }
    read(r).map(Some)
}

fn list<T>(
    r: &mut Reader<'_>,
    mut read: impl FnMut(&mut Reader<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    r.begin_array("a sequence")?;
    let mut out = Vec::new();
    while r.next_element()? {
        let item = read(r).map_err(|f| f.under(Step::Index(out.len())))?;
        out.push(item);
    }
    Ok(out)
}

fn strings(r: &mut Reader<'_>) -> Result<Vec<String>> {
    list(r, string)
}

/// A map by name; of a name given twice the last value counts (as serde's `BTreeMap`).
fn map<T>(
    r: &mut Reader<'_>,
    mut read: impl FnMut(&mut Reader<'_>) -> Result<T>,
) -> Result<BTreeMap<String, T>> {
    r.begin_object("a map")?;
    let mut out = BTreeMap::new();
    while let Some(key) = r.next_key()? {
        let key = key.to_owned();
        match read(r) {
            Ok(v) => {
                out.insert(key, v);
            }
            Err(f) => return Err(f.under(Step::Name(key))),
        }
    }
    Ok(out)
}

fn top(r: &mut Reader<'_>) -> Result<RawConfig> {
    let mut c = RawConfig {
        sidecar: None,
        refresh_interval_s: crate::default_refresh_interval_s(),
        startup_wait_ms: crate::default_startup_wait_ms(),
        max_stale_s: crate::default_max_stale_s(),
        strip_identity_headers: true,
        rotation_grace_s: 0,
        miss_refresh_min_interval_s: crate::default_miss_refresh_min_interval_s(),
        consumers: Vec::new(),
        plugins: RawPluginSet::default(),
        routes: BTreeMap::new(),
    };
    const NAMES: &[&str] = &[
        "sidecar",
        "refresh_interval_s",
        "startup_wait_ms",
        "max_stale_s",
        "strip_identity_headers",
        "rotation_grace_s",
        "miss_refresh_min_interval_s",
        "consumers",
        "plugins",
        "routes",
    ];
    object(r, NAMES, |r, i| {
        match i {
            0 => c.sidecar = option(r, sidecar)?,
            1 => c.refresh_interval_s = u64(r)?,
            2 => c.startup_wait_ms = u64(r)?,
            3 => c.max_stale_s = u64(r)?,
            4 => c.strip_identity_headers = bool(r)?,
            5 => c.rotation_grace_s = u64(r)?,
            6 => c.miss_refresh_min_interval_s = u64(r)?,
            7 => c.consumers = list(r, consumer)?,
            8 => c.plugins = plugin_set(r)?,
            _ => c.routes = map(r, plugin_set)?,
        }
        Ok(())
    })?;
    Ok(c)
}

fn sidecar(r: &mut Reader<'_>) -> Result<RawSidecar> {
    let (mut cluster, mut token) = (None, None);
    let mut s = RawSidecar {
        cluster: String::new(),
        authority: crate::default_authority(),
        timeout_ms: crate::default_timeout_ms(),
        token: RawSecret::default(),
        path: crate::default_resolve_path(),
    };
    const NAMES: &[&str] = &["cluster", "authority", "timeout_ms", "token", "path"];
    object(r, NAMES, |r, i| {
        match i {
            0 => cluster = Some(string(r)?),
            1 => s.authority = string(r)?,
            2 => s.timeout_ms = u64(r)?,
            3 => token = Some(secret(r)?),
            _ => s.path = string(r)?,
        }
        Ok(())
    })?;
    s.cluster = required(r, cluster, "cluster")?;
    s.token = required(r, token, "token")?;
    Ok(s)
}

fn consumer(r: &mut Reader<'_>) -> Result<RawConsumer> {
    let mut username = None;
    let mut labels = BTreeMap::new();
    let mut credentials = Vec::new();
    object(r, &["username", "labels", "credentials"], |r, i| {
        match i {
            0 => username = Some(string(r)?),
            1 => labels = map(r, string)?,
            _ => {
                credentials = list(r, credential)?;
                // No spare capacity (see `shrunk`).
                credentials.shrink_to_fit();
            }
        }
        Ok(())
    })?;
    Ok(RawConsumer {
        username: required(r, username, "username")?,
        labels,
        credentials,
    })
}

/// One credential: each field read once into its slot, checked against `type` at the end (see
/// `credential`).
fn credential(r: &mut Reader<'_>) -> Result<RawCredential> {
    r.begin_object("a credential (an object with \"type\")")?;
    let mut f = Fields::default();
    while let Some(key) = r.next_key()? {
        let Some(i) = credential::NAMES.iter().position(|n| *n == key) else {
            if f.unknown.is_none() {
                f.unknown = Some(key.to_owned());
            }
            r.skip()?;
            continue;
        };
        let field = credential::FIELDS[i];
        let bit = 1u32 << (field as u32);
        if f.seen & bit != 0 {
            let message = format!("duplicate field `{key}`");
            return Err(r.error(message).into());
        }
        f.seen |= bit;
        let name = credential::NAMES[i];
        read_credential_field(r, &mut f, field).map_err(|e| e.under(Step::Name(name.into())))?;
    }
    f.into_credential()
        .map_err(|message| Failure::from(r.error(message)))
}

fn read_credential_field(r: &mut Reader<'_>, f: &mut Fields, field: Field) -> Result<()> {
    // Optional fields may be `null` (absent).
    match field {
        Field::Type => f.ty = Some(credential_type(r)?),
        Field::Id => f.id = Some(string(r)?),
        Field::ExpiresAt => f.expires_at = option(r, string)?,
        Field::RotationGraceS => f.rotation_grace_s = option(r, u64)?,
        Field::Key => f.key = option(r, string)?,
        Field::KeySha256 => f.key_sha256 = option(r, string)?,
        Field::Username => f.username = Some(string(r)?),
        Field::Password => f.password = Some(string(r)?),
        Field::Secret => f.secret = option(r, string)?,
        Field::PublicKey => f.public_key = option(r, string)?,
        Field::Algorithm => f.algorithm = Some(string(r)?),
        Field::Base64Secret => f.base64_secret = Some(bool(r)?),
        Field::Exp => f.exp = option(r, u64)?,
        Field::LifetimeGracePeriod => f.lifetime_grace_period = Some(u64(r)?),
        Field::KeyId => f.key_id = Some(string(r)?),
        Field::SecretKey => f.secret_key = Some(string(r)?),
    }
    Ok(())
}

fn credential_type(r: &mut Reader<'_>) -> Result<CredentialType> {
    let name = r.str()?;
    match CredentialType::from_name(name) {
        Some(t) => Ok(t),
        None => {
            let message = format!(
                "unknown variant `{name}`, expected {}",
                one_of(&CredentialType::NAMES)
            );
            Err(r.error(message).into())
        }
    }
}

fn plugin_set(r: &mut Reader<'_>) -> Result<RawPluginSet> {
    let mut p = RawPluginSet::default();
    const NAMES: &[&str] = &[
        "key-auth",
        "basic-auth",
        "jwt-auth",
        "hmac-auth",
        "limit-count",
    ];
    object(r, NAMES, |r, i| {
        match i {
            0 => p.key_auth = option(r, key_auth)?,
            1 => p.basic_auth = option(r, basic_auth)?,
            2 => p.jwt_auth = option(r, jwt_auth)?,
            3 => p.hmac_auth = option(r, hmac_auth)?,
            _ => p.limit_count = option(r, limit_count)?,
        }
        Ok(())
    })?;
    Ok(p)
}

fn key_auth(r: &mut Reader<'_>) -> Result<RawKeyAuth> {
    let mut k = RawKeyAuth {
        header: crate::default_apikey(),
        query: crate::default_apikey(),
        hide_credentials: false,
        anonymous_consumer: None,
    };
    const NAMES: &[&str] = &["header", "query", "hide_credentials", "anonymous_consumer"];
    object(r, NAMES, |r, i| {
        match i {
            0 => k.header = string(r)?,
            1 => k.query = string(r)?,
            2 => k.hide_credentials = bool(r)?,
            _ => k.anonymous_consumer = option(r, string)?,
        }
        Ok(())
    })?;
    Ok(k)
}

fn basic_auth(r: &mut Reader<'_>) -> Result<RawBasicAuth> {
    let mut b = RawBasicAuth {
        hide_credentials: false,
        anonymous_consumer: None,
    };
    object(r, &["hide_credentials", "anonymous_consumer"], |r, i| {
        match i {
            0 => b.hide_credentials = bool(r)?,
            _ => b.anonymous_consumer = option(r, string)?,
        }
        Ok(())
    })?;
    Ok(b)
}

fn jwt_auth(r: &mut Reader<'_>) -> Result<RawJwtAuth> {
    let mut j = RawJwtAuth {
        header: crate::default_jwt_header(),
        query: crate::default_jwt(),
        cookie: crate::default_jwt(),
        hide_credentials: false,
        key_claim_name: crate::default_key_claim_name(),
        claims_to_verify: None,
        anonymous_consumer: None,
    };
    const NAMES: &[&str] = &[
        "header",
        "query",
        "cookie",
        "hide_credentials",
        "key_claim_name",
        "claims_to_verify",
        "anonymous_consumer",
    ];
    object(r, NAMES, |r, i| {
        match i {
            0 => j.header = string(r)?,
            1 => j.query = string(r)?,
            2 => j.cookie = string(r)?,
            3 => j.hide_credentials = bool(r)?,
            4 => j.key_claim_name = string(r)?,
            5 => j.claims_to_verify = option(r, strings)?,
            _ => j.anonymous_consumer = option(r, string)?,
        }
        Ok(())
    })?;
    Ok(j)
}

fn hmac_auth(r: &mut Reader<'_>) -> Result<RawHmacAuth> {
    let mut h = RawHmacAuth {
        allowed_algorithms: None,
        clock_skew: crate::default_clock_skew(),
        signed_headers: None,
        validate_request_body: false,
        max_req_body_size: crate::default_max_req_body_size(),
        hide_credentials: false,
        anonymous_consumer: None,
    };
    const NAMES: &[&str] = &[
        "allowed_algorithms",
        "clock_skew",
        "signed_headers",
        "validate_request_body",
        "max_req_body_size",
        "hide_credentials",
        "anonymous_consumer",
    ];
    object(r, NAMES, |r, i| {
        match i {
            0 => h.allowed_algorithms = option(r, strings)?,
            1 => h.clock_skew = u64(r)?,
            2 => h.signed_headers = option(r, strings)?,
            3 => h.validate_request_body = bool(r)?,
            4 => h.max_req_body_size = usize(r)?,
            5 => h.hide_credentials = bool(r)?,
            _ => h.anonymous_consumer = option(r, string)?,
        }
        Ok(())
    })?;
    Ok(h)
}

fn limit_count(r: &mut Reader<'_>) -> Result<RawLimitCount> {
    let (mut count, mut time_window) = (None, None);
    let mut l = RawLimitCount {
        count: 0,
        time_window: 0,
        key_type: crate::default_key_type(),
        key: crate::default_limit_key(),
        rejected_code: crate::default_rejected_code(),
        rejected_msg: None,
        policy: crate::default_policy(),
        show_limit_quota_header: true,
        group: None,
        allow_degradation: false,
        redis_host: None,
        redis_port: crate::default_redis_port(),
        redis_username: None,
        redis_password: None,
        redis_database: 0,
        redis_timeout: crate::default_redis_timeout(),
        redis_ssl: false,
        redis_cluster_nodes: None,
        redis_cluster_name: None,
        sync_interval: None,
    };
    const NAMES: &[&str] = &[
        "count",
        "time_window",
        "key_type",
        "key",
        "rejected_code",
        "rejected_msg",
        "policy",
        "show_limit_quota_header",
        "group",
        "allow_degradation",
        "redis_host",
        "redis_port",
        "redis_username",
        "redis_password",
        "redis_database",
        "redis_timeout",
        "redis_ssl",
        "redis_cluster_nodes",
        "redis_cluster_name",
        "sync_interval",
    ];
    object(r, NAMES, |r, i| {
        match i {
            0 => count = Some(u64(r)?),
            1 => time_window = Some(u64(r)?),
            2 => l.key_type = string(r)?,
            3 => l.key = string(r)?,
            4 => l.rejected_code = u16(r)?,
            5 => l.rejected_msg = option(r, string)?,
            6 => l.policy = string(r)?,
            7 => l.show_limit_quota_header = bool(r)?,
            8 => l.group = option(r, string)?,
            9 => l.allow_degradation = bool(r)?,
            10 => l.redis_host = option(r, string)?,
            11 => l.redis_port = u16(r)?,
            12 => l.redis_username = option(r, secret)?,
            13 => l.redis_password = option(r, secret)?,
            14 => l.redis_database = u32(r)?,
            15 => l.redis_timeout = u64(r)?,
            16 => l.redis_ssl = bool(r)?,
            17 => l.redis_cluster_nodes = option(r, strings)?,
            18 => l.redis_cluster_name = option(r, string)?,
            _ => l.sync_interval = option(r, |r| Ok(r.f64()?))?,
        }
        Ok(())
    })?;
    l.count = required(r, count, "count")?;
    l.time_window = required(r, time_window, "time_window")?;
    Ok(l)
}
