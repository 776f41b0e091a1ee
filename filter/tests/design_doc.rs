//! docs/DESIGN.md stays honest: every field the filter's JSON and the sidecar's TOML accept is
//! documented there, and every filter option the design names is one the configuration accepts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::path::Path;

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).unwrap()
}

/// Field names of the `Raw*` serde types in a source file (renames applied): the names an
/// operator writes.
fn raw_fields(source: &str) -> BTreeSet<String> {
    let mut fields = BTreeSet::new();
    let mut depth = 0usize;
    let mut in_raw = false;
    let mut rename: Option<String> = None;
    for line in source.lines() {
        let t = line.trim();
        if depth == 0 && (t.contains("struct Raw") || t.contains("enum Raw")) && t.ends_with('{') {
            in_raw = true;
        }
        if in_raw && depth > 0 {
            if let Some(r) = t.strip_prefix("#[serde(rename = \"") {
                rename = r.split('"').next().map(str::to_string);
            } else if let Some((name, _)) = t.trim_start_matches("pub ").split_once(':') {
                let name = name.trim();
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                {
                    fields.insert(rename.take().unwrap_or_else(|| name.to_string()));
                }
            }
        }
        depth += t.matches('{').count();
        depth = depth.saturating_sub(t.matches('}').count());
        if depth == 0 {
            in_raw = false;
        }
    }
    fields
}

fn documented(design: &str, field: &str) -> bool {
    [
        format!("`{field}`"),
        format!("\"{field}\""),
        format!("{field} ="),
        format!("`{field} ="),
        format!("[{field}]"),
        format!("[[{field}]]"),
    ]
    .iter()
    .any(|form| design.contains(form.as_str()))
}

#[test]
fn every_config_field_is_documented() {
    let design = read("../docs/DESIGN.md");
    let mut missing = Vec::new();
    for (file, section) in [
        ("../raw-config/src/lib.rs", "## 3."),
        ("../secret-sidecar/src/config.rs", "## 2."),
    ] {
        let fields = raw_fields(&read(file));
        assert!(fields.len() > 10, "{file}: found only {fields:?}");
        let text = design
            .split(section)
            .nth(1)
            .unwrap_or_else(|| panic!("DESIGN.md has no section {section}"));
        let text = text.split("\n## ").next().unwrap_or(text);
        for field in fields {
            if !documented(text, &field) {
                missing.push(format!("{file}: `{field}` (section {section})"));
            }
        }
    }
    assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
}

#[test]
fn every_documented_filter_option_exists() {
    let design = read("../docs/DESIGN.md");
    let section = design.split("## 3.").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let fields = raw_fields(&read("../raw-config/src/lib.rs"));
    // Options are written as `name` (lowercase, underscores) in the bullet lists of section 3.
    let mut unknown = Vec::new();
    let bullets: Vec<&str> = section
        .lines()
        .filter(|l| l.trim_start().starts_with("* `"))
        .collect();
    // Nothing to check would pass silently: the section must still list its options.
    assert!(
        bullets.len() >= 5,
        "DESIGN.md section 3 lists only {} options",
        bullets.len()
    );
    for bullet in bullets {
        let Some(name) = bullet.trim_start().strip_prefix("* `") else {
            continue;
        };
        let name: String = name.chars().take_while(|c| *c != '`').collect();
        let is_option = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-');
        if is_option && !fields.contains(&name) {
            unknown.push(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "documented but not accepted: {unknown:?}"
    );
}
