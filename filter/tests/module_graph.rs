//! The filter's modules depend on each other in one direction only, as drawn in docs/DESIGN.md
//! ("Module graph"): leaves first, the glue on top. A new `use crate::...` that points the other
//! way fails here, with the edge named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module and the modules its (non-test) code may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("json", &[]),
    ("http", &["json"]),
    ("throttle", &[]),
    ("metrics", &[]),
    ("auth", &["http"]),
    ("limit", &["http", "json"]),
    ("config", &["auth", "http", "limit"]),
    ("secrets", &["config", "http", "json"]),
    (
        "worker",
        &["auth", "config", "http", "limit", "metrics", "secrets"],
    ),
    ("request", &["auth", "config", "http", "limit", "worker"]),
    (
        "glue",
        &[
            "auth", "config", "http", "limit", "metrics", "request", "worker", "secrets",
            "throttle",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The `.rs` files of a module (a file, or a directory), without test-only files.
fn files(module: &str) -> Vec<PathBuf> {
    let dir = src().join(module);
    if !dir.is_dir() {
        return vec![src().join(format!("{module}.rs"))];
    }
    let mut out = Vec::new();
    let mut todo = vec![dir];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(path);
            }
        }
    }
    out
}

/// The `crate::<module>` names used by a file's code (comments and `#[cfg(test)]` code skipped).
fn uses(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn modules_depend_on_each_other_in_one_direction() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // every module of lib.rs is listed
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    for line in lib.lines() {
        if let Some(name) = line
            .trim()
            .strip_prefix("pub mod ")
            .or_else(|| line.trim().strip_prefix("mod "))
        {
            let name = name.trim_end_matches(';');
            assert!(
                allowed.contains_key(name),
                "module {name} is not in the graph"
            );
        }
    }
    let mut wrong = Vec::new();
    for (module, may_use) in ALLOWED {
        for file in files(module) {
            for used in uses(&file) {
                if used != *module && !may_use.contains(&used.as_str()) {
                    wrong.push(format!("{} uses crate::{used}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "edges not in the graph:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_graph_has_no_cycle_and_matches_the_design() {
    // Each module may only use modules listed before it.
    for (i, (module, may_use)) in ALLOWED.iter().enumerate() {
        for used in *may_use {
            let j = ALLOWED.iter().position(|(m, _)| m == used).unwrap();
            assert!(j < i, "{module} -> {used} points up");
        }
    }
    let design =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/DESIGN.md"))
            .unwrap();
    let section = design
        .split("### Module graph")
        .nth(1)
        .expect("docs/DESIGN.md has a \"### Module graph\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    for (module, may_use) in ALLOWED {
        let line = format!("{module} -> ");
        let listed = section
            .lines()
            .find(|l| l.trim_start().starts_with(&line))
            .unwrap_or_else(|| panic!("DESIGN.md's module graph has no line for {module}"));
        let deps: BTreeSet<&str> = listed
            .trim_start()
            .trim_start_matches(&line)
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty() && *s != "(nothing)")
            .collect();
        let want: BTreeSet<&str> = may_use.iter().copied().collect();
        assert_eq!(deps, want, "DESIGN.md line for {module}");
    }
}
