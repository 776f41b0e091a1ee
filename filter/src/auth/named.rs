//! Credentials looked up by a public name (basic-auth username, hmac-auth key id); the secret
//! is then compared in constant time by the caller.

use secret_ref::SecretValue;
use std::collections::HashMap;

/// Enabled credentials by name: `(credential index, secret)`.
#[derive(Default)]
pub struct NamedIndex {
    map: HashMap<String, (usize, SecretValue)>,
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
        }
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
