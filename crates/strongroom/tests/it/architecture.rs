//! The crate dependency rules of docs/ARCHITECTURE.md, checked from the manifests.

use std::path::Path;

fn workspace_deps(krate: &str, section: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(krate)
        .join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    manifest
        .get(section)
        .and_then(|d| d.as_table())
        .map(|t| {
            t.keys()
                .filter(|k| k.starts_with("strongroom"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn crate_dependencies_follow_the_layering() {
    assert!(
        workspace_deps("strongroom-core", "dependencies").is_empty(),
        "core depends on no workspace crate"
    );
    assert_eq!(
        workspace_deps("strongroom-store", "dependencies"),
        ["strongroom-core"]
    );
    assert_eq!(
        workspace_deps("strongroom-http", "dependencies"),
        ["strongroom-core"]
    );
    assert!(workspace_deps("strongroom-testkit", "dependencies").is_empty());
    for krate in [
        "strongroom-core",
        "strongroom-store",
        "strongroom-http",
        "strongroom",
    ] {
        assert!(
            !workspace_deps(krate, "dependencies").contains(&"strongroom-testkit".to_owned()),
            "{krate}: testkit is only ever a dev-dependency"
        );
        assert!(
            !workspace_deps(krate, "dependencies").contains(&"strongroom-load".to_owned()),
            "{krate}: the load generator is a tool, not a library"
        );
    }
    assert_eq!(
        workspace_deps("strongroom-load", "dependencies"),
        ["strongroom-testkit"]
    );
}

/// The `crate::…` paths each Rust file under `dir` (of strongroom-core's src) uses.
fn uses_in(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../strongroom-core/src");
    let mut stack = vec![root.join(dir)];
    if root.join(format!("{dir}.rs")).exists() {
        stack.push(root.join(format!("{dir}.rs")));
    }
    let mut out = Vec::new();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let path: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push((p.display().to_string(), path));
        }
    }
    out
}

/// The module layering inside core (docs/ARCHITECTURE.md): the audit formats use no
/// service; storage's ports use only the audit formats; `keys` never uses `audit`; so
/// no import cycle `keys ↔ audit ↔ store` can come back.
#[test]
fn core_modules_follow_the_layering() {
    let formats = ["entry", "merkle", "note", "tiles", "tree", "verify"];
    for f in formats {
        for (file, path) in uses_in(&format!("audit/{f}")) {
            for service in [
                "store",
                "keys",
                "platform",
                "objects",
                "audit::recorder",
                "audit::log",
                "audit::personal",
            ] {
                assert!(
                    !path.starts_with(service),
                    "{file}: format module uses crate::{path}"
                );
            }
        }
    }
    let store = uses_in("store");
    assert!(!store.is_empty());
    for (file, path) in store {
        if let Some(rest) = path.strip_prefix("audit::") {
            assert!(
                rest.starts_with("entry") || rest.starts_with("merkle"),
                "{file}: the storage port uses crate::{path}"
            );
        }
        for upper in ["keys", "platform", "objects"] {
            assert!(
                !path.starts_with(upper),
                "{file}: the storage port uses crate::{path}"
            );
        }
    }
    let keys = uses_in("keys");
    assert!(!keys.is_empty());
    for (file, path) in keys {
        for upper in ["audit", "platform", "objects"] {
            assert!(!path.starts_with(upper), "{file}: keys uses crate::{path}");
        }
    }
}

/// 21 CFR 11.10(e): an approved record version is never changed. Every statement of
/// the storage code (the adapters' source) that writes the records tables is checked,
/// and the migration's trigger is required: revisions, signatures, events and type versions are only ever inserted, and
/// the one UPDATE of a version row excludes approved ones (the schema's trigger refuses
/// it anyway; `records verify` would name it if someone bypassed both).
#[test]
fn no_storage_statement_changes_an_approved_version_or_an_append_only_row() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../strongroom-store/src");
    let mut sources = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && !p.to_string_lossy().contains("conformance")
            {
                sources.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    let mut version_updates = 0;
    for (path, text) in &sources {
        // Whitespace collapsed and upper-cased keywords compared, so a statement split
        // over lines or spaced oddly is still seen.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for table in [
            "record_revisions",
            "signatures",
            "record_events",
            "record_types",
        ] {
            for verb in [
                "UPDATE",
                "DELETE FROM",
                "REPLACE INTO",
                "INSERT OR REPLACE INTO",
            ] {
                assert!(
                    !flat.contains(&format!("{verb} {table}")),
                    "{path}: `{verb} {table}` — {table} is append-only"
                );
            }
        }
        assert!(
            !flat.contains("DELETE FROM record_versions"),
            "{path} deletes record versions"
        );
        for (i, _) in flat.match_indices("UPDATE record_versions") {
            let stmt = &flat[i..flat[i..].find('"').map_or(flat.len(), |e| i + e)];
            assert!(
                stmt.contains("state <> 'approved'"),
                "{path}: a version update that does not exclude approved versions: {stmt}"
            );
            version_updates += 1;
        }
    }
    assert_eq!(
        version_updates, 2,
        "exactly one statement per adapter (SQLite, PostgreSQL) updates a version row"
    );
    let schema = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../strongroom-store/migrations/sqlite/region/0013_records.sql"),
    )
    .unwrap();
    assert!(
        schema.contains("WHEN OLD.state = 'approved'"),
        "the trigger guards approved versions"
    );
    let schema = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../strongroom-store/migrations/postgres/region/0013_records.sql"),
    )
    .unwrap();
    assert!(
        schema.contains("WHEN (OLD.state = 'approved')"),
        "the PostgreSQL trigger guards approved versions"
    );
}
