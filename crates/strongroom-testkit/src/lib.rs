//! Test harness for Strongroom: the real binary, real TLS, a temporary data directory.
//!
//! [`TestServer`] starts `strongroom serve` on an ephemeral loopback port, waits for
//! its `listening on` line, and hands out an HTTPS client that trusts the server's
//! self-signed certificate and nothing else. Every later feature's integration tests
//! reuse it.

// Test support: a failed setup step should fail the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod api;
pub mod backend;
pub mod idp;
pub mod openapi;
mod scenario;
mod softhsm;

pub use api::{Api, Reply, Tokens, USER_PASSWORD};
pub use scenario::{Case, Who, run_cases};
pub use softhsm::{SoftHsm, USER_PIN};

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Prefix of the line `serve` prints once it accepts connections.
const LISTENING: &str = "strongroom: listening on ";
/// How long a server gets to start (a cold debug build on a busy CI machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// Password used by [`TestServer::operator_token`].
pub const OPERATOR_PASSWORD: &str = "test operator passphrase";
/// E-mail used by [`TestServer::operator_token`].
pub const OPERATOR_EMAIL: &str = "operator@strongroom.test";

/// How to start a server.
#[derive(Debug, Default)]
pub struct Options {
    /// Contents of a config file passed with `--config`.
    pub config: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Reuse this data directory (e.g. to test a restart).
    pub dir: Option<TempDir>,
    /// Run on PostgreSQL (and S3, when configured) even without
    /// `SR_TEST_BACKEND=postgres` (benchmarks that compare both in one run).
    pub postgres: bool,
}

/// A running `strongroom serve`.
#[derive(Debug)]
pub struct TestServer {
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    /// The data directory.
    pub dir: TempDir,
    /// Lines the server printed on stdout.
    pub stdout: Arc<Mutex<Vec<String>>>,
    bin: PathBuf,
    child: Child,
    config_file: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl TestServer {
    /// Starts a server with default settings in a fresh data directory.
    pub async fn start(bin: &Path) -> Self {
        Self::start_with(bin, Options::default()).await
    }

    /// Starts a server with `options`.
    pub async fn start_with(bin: &Path, options: Options) -> Self {
        match Self::try_start(bin, options).await {
            Ok(s) => s,
            Err((message, _)) => panic!("{message}"),
        }
    }

    /// Starts a server, or returns why it did not start (its stderr) and the data dir.
    pub async fn try_start(bin: &Path, mut options: Options) -> Result<Self, (String, TempDir)> {
        let dir = options
            .dir
            .take()
            .unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
        let data = dir.path().join("data");
        let env = backend::env(bin, dir.path(), &options).await;
        let config_file = options.config.map(|text| {
            let path = dir.path().join("strongroom.toml");
            std::fs::write(&path, text).expect("write config");
            path
        });
        let mut cmd = base_command(bin, &data, config_file.as_deref(), &env);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(dir.path().join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn strongroom");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
        let lines = stdout.clone();
        let out = child.stdout.take().expect("stdout");
        tokio::spawn(async move {
            let mut reader = BufReader::new(out).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line).await;
            }
        });
        let base = tokio::time::timeout(START_TIMEOUT, async {
            while let Some(line) = rx.recv().await {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(base) = base else {
            let _ = child.kill().await;
            let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
            return Err((format!("server did not start; its log:\n{log}"), dir));
        };
        Ok(Self {
            base,
            dir,
            stdout,
            bin: bin.to_owned(),
            child,
            config_file,
            env,
        })
    }

    /// Waits (up to 30 s) until the server has printed a line containing `needle`;
    /// returns everything printed so far.
    pub async fn wait_for_stdout(&self, needle: &str) -> String {
        for _ in 0..300 {
            let text = self.stdout.lock().unwrap().join("\n");
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server never printed {needle:?}");
    }

    /// The data directory the server uses.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// The self-signed certificate the server presents.
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.data_dir().join("tls/cert.pem")).expect("cert.pem")
    }

    /// An HTTPS client trusting only this server's certificate.
    pub fn client(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_pem(&self.cert_pem()).expect("cert");
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .https_only(true)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    }

    /// Starts another node of this server's deployment (PostgreSQL backend): a data
    /// directory of its own (TLS certificate, serve lock) holding the same root key,
    /// on the same databases and bucket, with `config`.
    pub async fn another_node(&self, config: Option<String>) -> TestServer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::copy(
            self.dir.path().join("pg-prefix"),
            dir.path().join("pg-prefix"),
        )
        .expect("a PostgreSQL test server");
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
            .expect("data dir mode");
        std::fs::copy(self.data_dir().join("root.key"), data.join("root.key")).expect("root key");
        Self::start_with(
            &self.bin,
            Options {
                config,
                dir: Some(dir),
                postgres: true,
                ..Options::default()
            },
        )
        .await
    }

    /// The environment the server (and its CLI calls) runs with: the backend's
    /// settings and the test's own.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs an administrative command on the same data directory and config, feeding
    /// `stdin`.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        run_cli(
            &self.bin,
            &self.data_dir(),
            self.config_file.as_deref(),
            &self.env,
            args,
            stdin,
        )
        .await
    }

    /// A typed client of this server's API.
    pub fn api(&self) -> Api {
        Api::new(self)
    }

    /// Creates the standard test operator (once) and signs in; returns the token.
    pub async fn operator_token(&self) -> String {
        let out = self
            .cli(
                &[
                    "operator",
                    "create",
                    "--email",
                    OPERATOR_EMAIL,
                    "--password-stdin",
                ],
                Some(OPERATOR_PASSWORD),
            )
            .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() || stderr.contains("already exists"),
            "operator create: {stderr}"
        );
        let resp = self
            .client()
            .post(self.url("/v1/operator/sessions"))
            .json(&serde_json::json!({"email": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD}))
            .send()
            .await
            .expect("sign in");
        assert_eq!(resp.status().as_u16(), 201, "operator sign-in");
        let body: serde_json::Value = resp.json().await.expect("token json");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Sends SIGTERM and waits for the process to exit; returns its status and the data
    /// directory (for a restart).
    pub async fn stop(mut self) -> (ExitStatus, TempDir) {
        signal(self.pid(), "-TERM").await;
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("server did not stop within 60 s of SIGTERM")
            .expect("wait");
        (status, self.dir)
    }

    /// Kills the process with SIGKILL (a crash) and returns the data directory.
    pub async fn kill9(mut self) -> TempDir {
        self.child.kill().await.expect("kill");
        self.dir
    }
}

/// Runs `strongroom <args>` against a data directory, outside any server.
pub async fn run_cli(
    bin: &Path,
    data: &Path,
    config: Option<&Path>,
    env: &[(String, String)],
    args: &[&str],
    stdin: Option<&str>,
) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut cmd = base_command(bin, data, config, env);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn strongroom cli");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input
            .write_all(format!("{text}\n").as_bytes())
            .await
            .expect("write stdin");
    }
    drop(input);
    tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("cli timed out")
        .expect("cli output")
}

fn base_command(
    bin: &Path,
    data: &Path,
    config: Option<&Path>,
    env: &[(String, String)],
) -> Command {
    let mut cmd = Command::new(bin);
    // Only what the test says: no STRONGROOM_* leaking in from the developer's shell.
    #[allow(clippy::disallowed_methods)]
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STRONGROOM_")) {
        cmd.env_remove(k);
    }
    cmd.env("STRONGROOM_LOG__FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("--data-dir").arg(data);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

async fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .await
        .expect("kill(1)");
    assert!(status.success(), "kill {sig} {pid}");
}
