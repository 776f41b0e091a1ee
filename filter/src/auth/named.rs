//! Credentials looked up by a public name (basic-auth username, hmac-auth key id); the secret
//! is then compared in constant time by the caller.

use secret_ref::SecretValue;
use std::collections::{HashMap, HashSet};

/// Enabled credentials by name: `(credential index, secret)`.
#[derive(Default)]
pub struct NamedIndex {
    map: HashMap<String, (usize, SecretValue)>,
    /// Names whose secret is unknown (never resolved, or expired while the store fails).
    unknown: HashSet<String>,
    /// Previous secrets still in their rotation grace, by name.
    previous: HashMap<String, SecretValue>,
}

impl NamedIndex {
    /// Builds the index; an empty secret is never indexed (it would accept an empty password or
    /// sign with an empty key): that credential matches nobody.
    pub fn build(entries: impl IntoIterator<Item = (usize, String, SecretValue)>) -> Self {
        NamedIndex {
            map: entries
                .into_iter()
                .filter(|(_, _, secret)| !secret.expose().is_empty())
                .map(|(credential, name, secret)| (name, (credential, secret)))
                .collect(),
            unknown: HashSet::new(),
            previous: HashMap::new(),
        }
    }

    /// Adds previous secrets (rotation grace) of names that have a current one.
    pub fn with_previous(
        mut self,
        entries: impl IntoIterator<Item = (String, SecretValue)>,
    ) -> Self {
        self.previous = entries
            .into_iter()
            .filter(|(name, secret)| !secret.expose().is_empty() && self.map.contains_key(name))
            .collect();
        self
    }

    /// The previous secret of `name`, while in its rotation grace.
    pub fn previous(&self, name: &str) -> Option<&SecretValue> {
        self.previous.get(name)
    }

    /// Marks `names` as names whose secret is unknown: a request under such a name (and no
    /// known one) cannot be judged yet.
    pub fn with_unknown(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.unknown = names
            .into_iter()
            .filter(|n| !self.map.contains_key(n))
            .collect();
        self
    }

    /// Whether `name` is only known with a secret that is unknown.
    pub fn is_unknown(&self, name: &str) -> bool {
        self.unknown.contains(name)
    }

    pub fn get(&self, name: &str) -> Option<&(usize, SecretValue)> {
        self.map.get(name)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
