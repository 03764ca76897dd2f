//! The command line outside a running server: configuration errors and operators.

use crate::support::*;

async fn cli(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    strongroom_testkit::run_cli(bin(), &dir.join("data"), None, &env, args, stdin).await
}

#[tokio::test]
async fn invalid_configuration_fails_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 4] = [
        (
            "STRONGROOM_LIMITS__MAX_BODY_BYTES",
            "lots",
            "limits.max_body_bytes",
        ),
        ("STRONGROOM_LISTEN", "nowhere", "listen"),
        ("STRONGROOM_LIMTS__MAX_BODY_BYTES", "1", "limts"),
        (
            "STRONGROOM_PASSWORDS__ARGON2_MEMORY_KIB",
            "8",
            "passwords.argon2_memory_kib",
        ),
    ];
    for (var, value, setting) in cases {
        // No --listen flag: it would override STRONGROOM_LISTEN (flags win).
        let out = cli(dir.path(), &[(var, value)], &["serve"], None).await;
        assert_eq!(out.status.code(), Some(78), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(setting), "{var}: {stderr}");
        assert!(
            stderr.contains(var),
            "names the variable that set it: {stderr}"
        );
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing initialised on a bad config"
    );
}

#[tokio::test]
async fn a_bad_config_file_names_the_file_or_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    for (text, expect) in [
        (
            "[limits]\nmax_body_bytes = \"big\"\n",
            "limits.max_body_bytes",
        ),
        ("listen = \n", "bad.toml"),
        ("[regions.Bad]\n", "regions"),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = cli(
            dir.path(),
            &[],
            &["--config", file.to_str().unwrap(), "serve"],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(78));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{text:?}: {stderr}");
    }
}

#[tokio::test]
async fn admin_commands_refuse_a_directory_that_is_not_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        &["tenant", "list"][..],
        &["keys", "status"],
        &["audit", "vkey", "--tenant", "acme"],
    ] {
        let out = cli(dir.path(), &[], args, None).await;
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&*data.display().to_string()) && stderr.contains("not an initialised"),
            "{args:?}: {stderr}"
        );
        assert!(!data.exists(), "{args:?} created {}", data.display());
    }
    // An existing directory without a Strongroom instance in it: refused, left empty.
    std::fs::create_dir(&data).unwrap();
    let out = cli(dir.path(), &[], &["tenant", "list"], None).await;
    assert!(!out.status.success());
    assert_eq!(
        std::fs::read_dir(&data).unwrap().count(),
        0,
        "nothing created"
    );
    // `init` creates one; then the same command works.
    let init = cli(dir.path(), &[], &["init"], None).await;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    assert!(data.join("control.db").exists() && data.join("root.key").exists());
    let out = cli(dir.path(), &[], &["tenant", "list"], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A lost root key is not silently replaced by a new one.
    std::fs::remove_file(data.join("root.key")).unwrap();
    let out = cli(dir.path(), &[], &["tenant", "list"], None).await;
    assert!(!out.status.success());
    assert!(!data.join("root.key").exists());
}

#[tokio::test]
async fn operators_need_a_valid_email_and_a_long_enough_password() {
    let dir = tempfile::tempdir().unwrap();
    let init = cli(dir.path(), &[], &["init"], None).await;
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let short = cli(
        dir.path(),
        &[],
        &[
            "operator",
            "create",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        Some("short"),
    )
    .await;
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("12 characters"));
    let bad = cli(
        dir.path(),
        &[],
        &[
            "operator",
            "create",
            "--email",
            "not-an-email",
            "--password-stdin",
        ],
        Some("long enough password"),
    )
    .await;
    assert!(!bad.status.success());
    let ok = cli(
        dir.path(),
        &[],
        &[
            "operator",
            "create",
            "--email",
            "a@example.com",
            "--password-stdin",
        ],
        Some("long enough password"),
    )
    .await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let again = cli(
        dir.path(),
        &[],
        &[
            "operator",
            "create",
            "--email",
            "A@EXAMPLE.com",
            "--password-stdin",
        ],
        Some("long enough password"),
    )
    .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[tokio::test]
async fn version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(dir.path(), &[], &["version"], None).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
