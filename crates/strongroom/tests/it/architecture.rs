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
    }
}
