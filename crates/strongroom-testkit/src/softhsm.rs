//! A real SoftHSM2 token in a temporary directory, for PKCS#11 tests.
//!
//! SoftHSM finds its tokens through the `SOFTHSM2_CONF` file; the harness writes one
//! pointing at a private token directory and passes it to child processes only (the
//! test process's own environment is never changed).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Where Debian installs the module (the first that exists is used).
const MODULES: [&str; 2] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
];

/// User PIN of every test token.
pub const USER_PIN: &str = "4711-test-pin";

/// One initialised token.
#[derive(Debug)]
pub struct SoftHsm {
    dir: TempDir,
    /// The token's label.
    pub label: String,
}

impl SoftHsm {
    /// Initialises a token labelled `label` in a fresh directory.
    pub fn new(label: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tokens")).expect("token dir");
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        std::fs::write(dir.path().join("pin"), format!("{USER_PIN}\n")).expect("pin file");
        let hsm = Self {
            dir,
            label: label.to_owned(),
        };
        let out = Command::new("softhsm2-util")
            .envs(hsm.env())
            .args(["--init-token", "--free", "--label", label])
            .args(["--so-pin", "so-pin-1234", "--pin", USER_PIN])
            .output()
            .expect("softhsm2-util (Debian package softhsm2) must be installed");
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        hsm
    }

    /// The PKCS#11 module path.
    pub fn module() -> &'static str {
        MODULES
            .iter()
            .find(|m| Path::new(m).exists())
            .expect("libsofthsm2.so not found (install softhsm2)")
    }

    /// Environment a process needs to see this token.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "SOFTHSM2_CONF".into(),
            self.dir.path().join("softhsm2.conf").display().to_string(),
        )]
    }

    /// The file holding the user PIN.
    pub fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    /// A `[keys.pkcs11.<name>]` configuration section for this token.
    pub fn config_section(&self, name: &str, key_label: &str) -> String {
        format!(
            "[keys.pkcs11.{name}]\nmodule = \"{}\"\ntoken_label = \"{}\"\npin_file = \"{}\"\nkey_label = \"{key_label}\"\n",
            Self::module(),
            self.label,
            self.pin_file().display()
        )
    }

    /// Pulls the token out from under running processes (as if the HSM went away):
    /// its directory disappears.
    pub fn remove_token(&self) {
        std::fs::rename(
            self.dir.path().join("tokens"),
            self.dir.path().join("tokens.removed"),
        )
        .expect("move token dir");
        std::fs::create_dir(self.dir.path().join("tokens")).expect("empty token dir");
    }

    /// Runs `pkcs11-tool` (OpenSC) against the token, logged in; returns stdout+stderr.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let out = Command::new("pkcs11-tool")
            .envs(self.env())
            .args(["--module", Self::module(), "--token-label", &self.label])
            .args(["--login", "--pin", USER_PIN])
            .args(args)
            .output()
            .expect("pkcs11-tool (Debian package opensc) must be installed");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}
