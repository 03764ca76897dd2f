use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn defaults_are_valid_and_declare_one_region() {
    let c = Config::load(None, vec![], vec![]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(c.regions.len(), 1);
    assert!(
        c.regions
            .contains_key(&RegionName::parse(DEFAULT_REGION).unwrap())
    );
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1000\"\n[limits]\nmax_body_bytes = 4096\n",
    )
    .unwrap();
    let e = env(&[
        ("STRONGROOM_LISTEN", "127.0.0.1:2000"),
        ("STRONGROOM_LIMITS__MAX_BODY_BYTES", "8192"),
    ]);
    let c = Config::load(Some(&file), e.clone(), vec![]).unwrap();
    assert_eq!(c.listen.port(), 2000);
    assert_eq!(c.limits.max_body_bytes, 8192);
    let c = Config::load(
        Some(&file),
        e,
        vec![("listen", toml::Value::String("127.0.0.1:3000".into()))],
    )
    .unwrap();
    assert_eq!(c.listen.port(), 3000);
}

#[test]
fn errors_name_the_setting_and_its_origin() {
    let e = Config::load(
        None,
        env(&[("STRONGROOM_LIMITS__MAX_BODY_BYTES", "lots")]),
        vec![],
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("limits.max_body_bytes"), "{msg}");
    assert!(msg.contains("STRONGROOM_LIMITS__MAX_BODY_BYTES"), "{msg}");

    let e = Config::load(
        None,
        env(&[("STRONGROOM_LISTEN", "not-an-address")]),
        vec![],
    )
    .unwrap_err();
    assert!(e.to_string().contains("`listen`"), "{e}");
}

#[test]
fn unknown_settings_are_rejected() {
    let e = Config::load(None, env(&[("STRONGROOM_LIMITS__MAX_BODY", "1")]), vec![]).unwrap_err();
    assert!(e.to_string().contains("max_body"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[tls]\ncert = \"x\"\n").unwrap();
    let e = Config::load(Some(&file), vec![], vec![]).unwrap_err();
    assert!(e.to_string().contains("tls"), "{e}");
}

#[test]
fn out_of_range_values_are_rejected() {
    let e = Config::load(
        None,
        env(&[("STRONGROOM_LIMITS__MAX_BODY_BYTES", "1")]),
        vec![],
    )
    .unwrap_err();
    assert!(e.to_string().contains("limits.max_body_bytes"), "{e}");
    let e = Config::load(
        None,
        env(&[("STRONGROOM_PASSWORDS__ARGON2_MEMORY_KIB", "1024")]),
        vec![],
    )
    .unwrap_err();
    assert!(e.to_string().contains("argon2_memory_kib"), "{e}");
}

#[test]
fn bad_region_names_are_rejected_with_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[regions.EU]\n").unwrap();
    let e = Config::load(Some(&file), vec![], vec![]).unwrap_err();
    assert!(e.to_string().contains("regions"), "{e}");
}

#[test]
fn syntax_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "listen = \n").unwrap();
    let e = Config::load(Some(&file), vec![], vec![]).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
}

#[test]
fn the_example_config_parses_and_matches_the_defaults_it_documents() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/strongroom.example.toml");
    let c = Config::load(Some(&file), vec![], vec![]).unwrap();
    let d = Config::default();
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.limits.max_body_bytes, d.limits.max_body_bytes);
    assert_eq!(c.tokens.operator_ttl_secs, d.tokens.operator_ttl_secs);
    assert_eq!(c.passwords.argon2_memory_kib, d.passwords.argon2_memory_kib);
    assert!(
        c.regions.len() >= 2,
        "the example shows more than one region"
    );
    assert_eq!(c.database.backend, d.database.backend);
    assert_eq!(c.database.owner, d.database.owner);
    assert_eq!(c.database.max_connections, d.database.max_connections);
    assert_eq!(c.database.lock_timeout_ms, d.database.lock_timeout_ms);
}

fn load_text(toml: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, toml).unwrap();
    Config::load(Some(&file), Vec::<(String, String)>::new(), Vec::new())
}

#[test]
fn postgres_needs_every_database_url_and_s3_needs_exactly_one_secret() {
    let pg = "[database]\nbackend = \"postgres\"\ncontrol_url = \"postgres://app@db/c\"\n";
    let err = load_text(&format!("{pg}[regions.eu]\n")).unwrap_err();
    assert!(err.to_string().contains("regions.eu.database_url"), "{err}");
    assert!(
        load_text(&format!(
            "{pg}[regions.eu]\ndatabase_url = \"postgres://app@db/eu\"\n"
        ))
        .is_ok()
    );
    let err = load_text("[database]\nbackend = \"postgres\"\n").unwrap_err();
    assert!(err.to_string().contains("database.control_url"), "{err}");
    let err = load_text("[regions.eu]\ndatabase_url = \"postgres://app@db/eu\"\n").unwrap_err();
    assert!(err.to_string().contains("regions.eu.database_url"), "{err}");
    let err = load_text("[database]\nowner_password = \"a\"\nowner_password_file = \"/x\"\n")
        .unwrap_err();
    assert!(err.to_string().contains("database.owner_password"), "{err}");
    let s3 = "[regions.eu.s3]\nendpoint = \"https://s3.example\"\nbucket = \"b\"\naccess_key_id = \"k\"\n";
    let err = load_text(s3).unwrap_err();
    assert!(err.to_string().contains("regions.eu.s3"), "{err}");
    assert!(load_text(&format!("{s3}secret_access_key = \"s\"\n")).is_ok());
    let err = load_text(&format!(
        "{}secret_access_key = \"s\"\n",
        s3.replace("https://", "http://")
    ))
    .unwrap_err();
    assert!(err.to_string().contains("allow_http"), "{err}");
    let err = load_text(&format!("{s3}secret_access_key = \"s\"\nprefix = \"p\"\n")).unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
}

#[test]
fn two_regions_on_one_directory_are_refused() {
    let toml = "[regions.eu]\npath = \"/srv/shared\"\n[regions.us]\npath = \"/srv/shared/\"\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, toml).unwrap();
    let err = Config::load(Some(&file), Vec::<(String, String)>::new(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("regions.us.path"), "{err}");
    std::fs::write(
        &file,
        "[regions.eu]\npath = \"/srv/eu\"\n[regions.us]\npath = \"/srv/us\"\n",
    )
    .unwrap();
    assert!(Config::load(Some(&file), Vec::<(String, String)>::new(), Vec::new()).is_ok());
}

#[test]
fn durability_settings_parse_and_group_commit_bounds_are_enforced() {
    let c = Config::load(
        None,
        env(&[
            ("STRONGROOM_DATABASE__SYNCHRONOUS", "normal"),
            ("STRONGROOM_DATABASE__GROUP_COMMIT_MAX_BATCH", "1"),
        ]),
        vec![],
    )
    .unwrap();
    assert_eq!(c.database.synchronous, Synchronous::Normal);
    assert_eq!(c.database.group_commit_max_batch, 1);
    assert_eq!(
        Config::load(None, vec![], vec![])
            .unwrap()
            .database
            .synchronous,
        Synchronous::Full
    );
    for (var, value) in [
        ("STRONGROOM_DATABASE__SYNCHRONOUS", "off"),
        ("STRONGROOM_DATABASE__GROUP_COMMIT_MAX_BATCH", "0"),
        ("STRONGROOM_DATABASE__GROUP_COMMIT_MAX_BATCH", "10001"),
        ("STRONGROOM_DATABASE__GROUP_COMMIT_MAX_WAIT_MS", "1001"),
    ] {
        let e = Config::load(None, env(&[(var, value)]), vec![]).unwrap_err();
        assert!(
            e.to_string().contains(var) || e.to_string().contains("database."),
            "{var}={value}: {e}"
        );
    }
}
