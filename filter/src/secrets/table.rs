//! The last known value of every `$secret://` reference, and what changed with each answer.

use super::batch::Answer;
use crate::config::Config;
use secret_ref::SecretValue;
use sidecar_api::ErrorCode;

#[derive(Debug, Default)]
struct Entry {
    value: Option<SecretValue>,
    stale: bool,
    /// When a fresh (not stale) answer last confirmed a value; `None` before the first value.
    confirmed_ms: Option<u64>,
    /// The last error reported for this reference (to log each change once).
    error: Option<String>,
    /// The value before the last rotation, and when (ms) it was replaced: the sidecar's word
    /// when it was asked for previous versions, else when this table saw the change. Dropped
    /// with the value (a revoked secret has no grace).
    previous: Option<(SecretValue, u64)>,
    /// The last answer without a value was definitive (the reference is wrong, the secret is
    /// deleted, refused, empty): nobody can be judged with it, and nobody waits for it.
    refused: bool,
}

/// A log line the caller should emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Info(String),
    Warn(String),
    Error(String),
}

/// Values by [`crate::config::RefId`].
#[derive(Debug)]
pub struct SecretTable {
    entries: Vec<Entry>,
    /// The credentials that use each reference (for log lines), as indexes into
    /// `Config::credentials`: those of reference `id` are `users[user_start[id]..user_start[id + 1]]`
    /// (one list for all, not a list of names per reference: a VM keeps its peak memory).
    users: Vec<u32>,
    user_start: Vec<u32>,
    /// `max_stale_s`: how long a value stays in force without a fresh answer.
    max_stale_ms: u64,
}

impl SecretTable {
    pub fn new(config: &Config) -> Self {
        let n = config.refs.len();
        let mut count = vec![0u32; n.saturating_add(1)];
        for c in &config.credentials {
            for id in c.kind.ref_ids() {
                if let Some(k) = count.get_mut(id.saturating_add(1)) {
                    *k = k.saturating_add(1);
                }
            }
        }
        let mut user_start = count;
        for i in 1..user_start.len() {
            user_start[i] = user_start[i].saturating_add(user_start[i - 1]);
        }
        let total = user_start.last().copied().unwrap_or(0);
        let mut users = vec![0u32; total as usize];
        let mut next = user_start.clone();
        for (ci, c) in config.credentials.iter().enumerate() {
            for id in c.kind.ref_ids() {
                if let (Some(at), Ok(ci)) = (next.get_mut(id), u32::try_from(ci)) {
                    if let Some(slot) = users.get_mut(*at as usize) {
                        *slot = ci;
                        *at = at.saturating_add(1);
                    }
                }
            }
        }
        SecretTable {
            entries: (0..n).map(|_| Entry::default()).collect(),
            users,
            user_start,
            max_stale_ms: u64::try_from(config.max_stale.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The ids of the credentials that use reference `id`, for a log line: `a, b`.
    fn users(users: &[u32], user_start: &[u32], config: &Config, id: usize) -> String {
        let (Some(&from), Some(&to)) = (user_start.get(id), user_start.get(id + 1)) else {
            return String::new();
        };
        let mut out = String::new();
        for ci in users.get(from as usize..to as usize).unwrap_or_default() {
            if let Some(c) = config.credentials.get(*ci as usize) {
                if !out.is_empty() {
                    out.push_str(", ");
                }
                out.push_str(&c.id);
            }
        }
        out
    }

    /// The usable value of reference `id`, if any.
    pub fn value(&self, id: usize) -> Option<&SecretValue> {
        self.entries.get(id).and_then(|e| e.value.as_ref())
    }

    /// The value reference `id` had before its last rotation, while `grace_ms` after the
    /// rotation has not passed at `now_ms`; with the time (ms) the grace ends.
    pub fn previous(&self, id: usize, now_ms: u64, grace_ms: u64) -> Option<(&SecretValue, u64)> {
        let (value, replaced_at) = self.entries.get(id)?.previous.as_ref()?;
        let until = replaced_at.saturating_add(grace_ms);
        (now_ms < until).then_some((value, until))
    }

    /// Whether reference `id` has no usable value and no definitive answer either: never
    /// resolved (no answer yet, or only transient failures), or its last value expired after
    /// `max_stale_s` without a fresh answer. A request only this value could judge gets 503.
    pub fn unknown(&self, id: usize) -> bool {
        self.entries
            .get(id)
            .is_some_and(|e| e.value.is_none() && !e.refused)
    }

    /// Applies one answer per reference (in [`Config::refs`] order), received at `now_ms`.
    /// Returns whether any usable value changed, and the log lines to emit. Log lines name
    /// references, never values. An empty value is an error (`empty_value`): it would let an
    /// empty key or password in.
    pub fn apply(
        &mut self,
        config: &Config,
        answers: Vec<Answer>,
        now_ms: u64,
    ) -> (bool, Vec<Note>) {
        let mut changed = false;
        let mut notes = Vec::new();
        for (id, answer) in answers.into_iter().enumerate() {
            let answer = match answer {
                // the sidecar's code for it too
                Answer::Value { value, .. } if value.expose().is_empty() => Answer::Error {
                    code: ErrorCode::EmptyValue,
                    message: "the reference resolves to an empty value".into(),
                },
                other => other,
            };
            let (Some(entry), Some(reference)) = (self.entries.get_mut(id), config.refs.get(id))
            else {
                continue;
            };
            // Only for log lines: built when one is written.
            let users = || Self::users(&self.users, &self.user_start, config, id);
            match answer {
                Answer::Value {
                    value,
                    stale,
                    previous,
                } => {
                    // A stale first value is vouched for by the sidecar's own max_stale_s; a
                    // stale value after that never extends the filter's bound (it would bring
                    // back a value `expire` dropped).
                    match entry.confirmed_ms {
                        Some(at) if stale => {
                            if now_ms.saturating_sub(at) > self.max_stale_ms {
                                continue;
                            }
                        }
                        _ => entry.confirmed_ms = Some(now_ms),
                    }
                    if entry.value.as_ref() != Some(&value) {
                        changed = true;
                        if let Some(old) = entry.value.take() {
                            notes.push(Note::Info(format!(
                                "{reference}: new value (rotated) for credential(s) {}",
                                users()
                            )));
                            entry.previous = Some((old, now_ms));
                        }
                        entry.value = Some(value);
                    }
                    // The sidecar knows the previous version and when it was replaced, also
                    // across restarts of Envoy.
                    if let Some((old, at)) = previous {
                        // A replacement time in the future (a skewed clock) must not stretch
                        // the grace.
                        let at = at.min(now_ms);
                        let known = entry.previous.as_ref().map(|(v, a)| (v, *a));
                        if Some(&old) != entry.value.as_ref() && known != Some((&old, at)) {
                            entry.previous = Some((old, at));
                            changed = true;
                        }
                    }
                    entry.refused = false;
                    if entry.error.take().is_some() {
                        notes.push(Note::Info(format!(
                            "{reference}: resolved again; credential(s) {} enabled",
                            users()
                        )));
                    }
                    if stale && !entry.stale {
                        notes.push(Note::Warn(format!(
                            "{reference}: the sidecar serves a stale value (its provider is failing)"
                        )));
                    }
                    entry.stale = stale;
                }
                failure => {
                    // Transient codes say the provider is having trouble, not that the
                    // reference is wrong: a value we already have is kept for these.
                    // `refuses`: the reference itself is wrong or gone. `stale_expired` is not:
                    // the store has been failing for too long (the value is unknown again).
                    let (text, transient, refuses) = match failure {
                        Answer::Error { code, message } => (
                            format!("{message} ({code})"),
                            code.is_transient(),
                            !code.is_transient() && code != ErrorCode::StaleExpired,
                        ),
                        _ => (
                            "the sidecar's answer has no result for this reference \
                             (missing_result)"
                                .to_string(),
                            true,
                            false,
                        ),
                    };
                    let is_new = entry.error.as_deref() != Some(text.as_str());
                    // A failure to answer says nothing new about a reference that was refused.
                    // Refused or not decides 401 or 503 for requests: a change rebuilds.
                    let was_refused = entry.refused;
                    if refuses {
                        entry.refused = true;
                    } else if !transient {
                        entry.refused = false;
                    }
                    changed |= was_refused != entry.refused;
                    if entry.value.is_some() && transient {
                        if is_new {
                            notes.push(Note::Warn(format!(
                                "{reference}: {text}; keeping the last good value for \
                                 credential(s) {}",
                                users()
                            )));
                        }
                    } else {
                        if entry.value.take().is_some() {
                            changed = true;
                        }
                        entry.previous = None;
                        if is_new {
                            notes.push(Note::Error(format!(
                                "{reference}: {text}; credential(s) {} disabled",
                                users()
                            )));
                        }
                    }
                    entry.error = Some(text);
                }
            }
        }
        (changed, notes)
    }

    /// Disables values that no fresh answer confirmed for longer than `max_stale_ms` (the
    /// sidecar or its provider has been failing): a revoked secret stops working within that
    /// bound even when nobody can tell us it was revoked. Returns whether any value changed.
    pub fn expire(&mut self, config: &Config, now_ms: u64) -> (bool, Vec<Note>) {
        let max_stale_ms = self.max_stale_ms;
        let mut changed = false;
        let mut notes = Vec::new();
        for (id, entry) in self.entries.iter_mut().enumerate() {
            let age = now_ms.saturating_sub(entry.confirmed_ms.unwrap_or(now_ms));
            if entry.value.is_some() && age > max_stale_ms {
                entry.value = None;
                entry.previous = None;
                changed = true;
                let users = Self::users(&self.users, &self.user_start, config, id);
                let reference = config.refs.get(id).map_or("?".into(), ToString::to_string);
                let text = format!(
                    "no fresh value from the sidecar for {}s, longer than max_stale_s \
                     ({})",
                    age / 1000,
                    ErrorCode::StaleExpired
                );
                notes.push(Note::Error(format!(
                    "{reference}: {text}; credential(s) {users} disabled"
                )));
                entry.error = Some(text);
            }
        }
        (changed, notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile;

    fn config() -> Config {
        let json = serde_json::json!({
            "sidecar": {"cluster": "c", "token": "$env://SIDECAR_TOKEN"},
            "max_stale_s": 60,
            "consumers": [{"username": "alice", "credentials": [
                {"id": "alice-key-auth", "type": "key-auth", "key": "$secret://aws/sm/alice-credentials/k"}
            ]}]
        });
        compile(json.to_string().as_bytes(), &|_| Some("t".into()))
            .unwrap()
            .config
    }

    fn value(v: &str) -> Answer {
        Answer::Value {
            value: SecretValue::new(v),
            stale: false,
            previous: None,
        }
    }
    fn error(code: &str) -> Answer {
        Answer::Error {
            code: ErrorCode::parse(code),
            message: "boom".into(),
        }
    }

    #[test]
    fn value_then_rotation_then_errors() {
        let cfg = config();
        let mut t = SecretTable::new(&cfg);
        assert!(t.value(0).is_none());

        let (changed, notes) = t.apply(&cfg, vec![value("v1")], 0);
        assert!(changed);
        assert!(notes.is_empty());
        assert_eq!(t.value(0).unwrap().expose(), "v1");

        let (changed, _) = t.apply(&cfg, vec![value("v1")], 0);
        assert!(!changed, "same value is no change");

        let (changed, notes) = t.apply(&cfg, vec![value("v2")], 0);
        assert!(changed);
        assert!(matches!(&notes[0], Note::Info(m) if m.contains("rotated")));

        // a transient failure keeps the value, and is logged once
        let (changed, notes) = t.apply(&cfg, vec![error("provider_unreachable")], 0);
        assert!(!changed);
        assert_eq!(t.value(0).unwrap().expose(), "v2");
        assert!(matches!(&notes[0], Note::Warn(m) if m.contains("keeping the last good value")));
        let (_, notes) = t.apply(&cfg, vec![error("provider_unreachable")], 0);
        assert!(notes.is_empty(), "same error is not logged again");

        // a definitive one disables the credential
        let (changed, notes) = t.apply(&cfg, vec![error("secret_not_found")], 0);
        assert!(changed);
        assert!(t.value(0).is_none());
        match &notes[0] {
            Note::Error(m) => {
                assert!(
                    m.starts_with("$secret://aws/sm/alice-credentials/k: boom (secret_not_found)")
                );
                assert!(m.contains("alice-key-auth disabled"));
            }
            other => panic!("{other:?}"),
        }

        let (changed, notes) = t.apply(&cfg, vec![value("v3")], 0);
        assert!(changed);
        assert!(notes
            .iter()
            .any(|n| matches!(n, Note::Info(m) if m.contains("enabled"))));
    }

    #[test]
    fn first_answer_error_disables_even_if_transient() {
        let cfg = config();
        let mut t = SecretTable::new(&cfg);
        let (_, notes) = t.apply(&cfg, vec![error("provider_unreachable")], 0);
        assert!(t.value(0).is_none());
        assert!(matches!(&notes[0], Note::Error(_)));
    }

    #[test]
    fn notes_never_carry_values() {
        let cfg = config();
        let mut t = SecretTable::new(&cfg);
        let mut all = Vec::new();
        for a in [
            value("s3cr3t-1"),
            value("s3cr3t-2"),
            error("provider_error"),
            Answer::Value {
                value: SecretValue::new("s3cr3t-3"),
                stale: true,
                previous: None,
            },
        ] {
            all.extend(t.apply(&cfg, vec![a], 0).1);
        }
        assert!(all.len() >= 3);
        assert!(all.iter().all(|n| !format!("{n:?}").contains("s3cr3t")));
    }

    #[test]
    fn an_empty_value_disables_like_an_error() {
        let cfg = config();
        let mut t = SecretTable::new(&cfg);
        assert!(t.unknown(0));
        let (changed, notes) = t.apply(&cfg, vec![value("")], 0);
        assert!(
            changed,
            "unknown -> refused: its requests get 401, no longer 503"
        );
        assert!(t.value(0).is_none() && !t.unknown(0));
        assert!(
            matches!(&notes[0], Note::Error(m) if m.contains("(empty_value)")
            && m.contains("$secret://aws/sm/alice-credentials/k")
            && m.contains("alice-key-auth disabled"))
        );
        t.apply(&cfg, vec![value("v1")], 0);
        let (changed, _) = t.apply(&cfg, vec![value("")], 0);
        assert!(changed, "rotated to empty: the old value is dropped too");
        assert!(t.value(0).is_none());
        // a stale empty value is no better
        t.apply(&cfg, vec![value("v1")], 0);
        let stale_empty = Answer::Value {
            value: SecretValue::new(""),
            stale: true,
            previous: None,
        };
        t.apply(&cfg, vec![stale_empty], 0);
        assert!(t.value(0).is_none());
    }

    #[test]
    fn values_no_fresh_answer_confirms_expire_after_max_stale() {
        let cfg = config();
        let mut t = SecretTable::new(&cfg);
        t.apply(&cfg, vec![value("v1")], 1_000);
        assert_eq!(t.expire(&cfg, 61_000), (false, vec![]));
        // stale answers and transient errors keep the value but confirm nothing
        let stale = Answer::Value {
            value: SecretValue::new("v1"),
            stale: true,
            previous: None,
        };
        t.apply(&cfg, vec![stale], 30_000);
        t.apply(&cfg, vec![error("provider_unreachable")], 50_000);
        assert!(t.value(0).is_some());
        let (changed, notes) = t.expire(&cfg, 61_001);
        assert!(changed);
        assert!(t.value(0).is_none());
        assert!(
            matches!(&notes[0], Note::Error(m) if m.contains("stale_expired")
            && m.contains("alice-key-auth disabled"))
        );
        assert_eq!(t.expire(&cfg, 70_000), (false, vec![]), "logged once");
        // a stale answer does not bring it back: only a fresh one does
        let stale = Answer::Value {
            value: SecretValue::new("v1"),
            stale: true,
            previous: None,
        };
        assert!(!t.apply(&cfg, vec![stale], 75_000).0);
        assert!(t.value(0).is_none());
        // a fresh answer brings it back
        let (changed, _) = t.apply(&cfg, vec![value("v1")], 80_000);
        assert!(changed);
        assert!(t.value(0).is_some());
    }

    #[test]
    fn a_previous_version_replaced_in_the_future_gets_no_longer_grace() {
        let cfg = config();
        let mut t = SecretTable::new(&cfg);
        let answer = Answer::Value {
            value: SecretValue::new("new"),
            stale: false,
            previous: Some((SecretValue::new("old"), 10_000_000)),
        };
        t.apply(&cfg, vec![answer], 1_000);
        assert_eq!(t.previous(0, 1_000, 60_000).map(|(_, u)| u), Some(61_000));
        assert!(t.previous(0, 61_000, 60_000).is_none());
    }
}
