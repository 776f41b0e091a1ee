//! `secret-sidecar check --config F [REF...]`: resolve references once and say how each went.
//! Values are never printed: only `ok`, `stale` or the error.

use std::io::Write;

use crate::resolve::{Resolution, Resolver};

/// Resolves `refs` and writes one line per reference to `out`. Returns whether all resolved.
pub async fn check(
    resolver: &Resolver,
    refs: &[String],
    out: &mut dyn Write,
) -> std::io::Result<bool> {
    let results = resolver.resolve_batch(refs).await;
    let mut all_ok = true;
    for (reference, result) in refs.iter().zip(&results) {
        match result {
            Resolution::Value { stale: false, .. } => writeln!(out, "{reference}: ok")?,
            Resolution::Value { stale: true, .. } => writeln!(out, "{reference}: stale")?,
            Resolution::Error(e) => {
                all_ok = false;
                writeln!(out, "{reference}: {}: {e}", e.code())?;
            }
        }
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Cache;
    use crate::clock::ManualClock;
    use crate::config::CacheConfig;
    use crate::providers::fake::FakeProvider;
    use secret_ref::Manager;
    use std::sync::Arc;

    fn resolver() -> Resolver {
        let p = FakeProvider::new().with("alice-credentials", r#"{"alice-key-auth":"alice-key"}"#);
        let mut r = Resolver::new(Cache::new(
            CacheConfig::default(),
            Arc::new(ManualClock::new()),
        ));
        r.add_provider("sm", Manager::Aws, Arc::new(p));
        r
    }

    #[tokio::test]
    async fn one_line_per_reference_without_values() {
        let refs = vec![
            "$secret://aws/sm/alice-credentials/alice-key-auth".to_string(),
            "$secret://aws/sm/alice-credentials/nope".to_string(),
        ];
        let mut out = Vec::new();
        let ok = check(&resolver(), &refs, &mut out).await.unwrap();
        assert!(!ok);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "$secret://aws/sm/alice-credentials/alice-key-auth: ok\n\
             $secret://aws/sm/alice-credentials/nope: key_not_found: key \"nope\" not found in secret \"alice-credentials\" (provider \"sm\")\n"
        );
        assert!(!text.contains("alice-key\""), "the value is never printed");
    }

    #[tokio::test]
    async fn all_ok_and_no_refs_succeed() {
        let refs = vec!["$secret://aws/sm/alice-credentials/alice-key-auth".to_string()];
        let mut out = Vec::new();
        assert!(check(&resolver(), &refs, &mut out).await.unwrap());
        let mut out = Vec::new();
        assert!(check(&resolver(), &[], &mut out).await.unwrap());
        assert!(out.is_empty());
    }
}
