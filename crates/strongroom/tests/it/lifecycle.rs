//! Start, restart, shutdown and the data-directory lock, on the real binary.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn first_start_initialises_the_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let s = start().await;
    let data = s.data_dir();
    let mode = |p: &str| {
        std::fs::metadata(data.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700, "data directory");
    assert_eq!(mode("root.key"), 0o600, "root key");
    assert_eq!(mode("tls/key.pem"), 0o600, "TLS key");
    assert!(data.join("control.db").exists());
    assert!(
        data.join("regions/eu/strongroom.db").exists()
            && data.join("regions/us/strongroom.db").exists()
    );
    let banner = s.wait_for_stdout("API reference").await;
    assert!(banner.contains("initialised data directory"), "{banner}");
    assert!(banner.contains("Next steps"), "{banner}");
    let ready = crate::support::send(&s, reqwest::Method::GET, "/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap()["checks"],
        json!({"database": "ok", "keys": "ok", "customer_keys": "ok"})
    );
}

#[tokio::test]
async fn restart_keeps_tenants_operators_and_token_keys() {
    let s = start().await;
    let token = s.operator_token().await;
    for (slug, region) in [("acme", "eu"), ("globex", "us")] {
        let r = create_tenant(
            &s,
            &token,
            json!({"slug": slug, "display_name": slug, "region": region}),
        )
        .await;
        assert_eq!(r.status(), 201);
    }
    let (status, dir) = s.stop().await;
    assert!(status.success(), "clean shutdown: {status:?}");

    let s = crate::support::restart(dir).await;
    // A token issued before the restart still verifies: the signing key persisted.
    assert_eq!(tenant_slugs(&s, &token).await, ["acme", "globex"]);
    let banner = s.wait_for_stdout("API reference").await;
    assert!(!banner.contains("initialised data directory"), "{banner}");
    let t: serde_json::Value =
        crate::support::call(&s, reqwest::Method::GET, "/v1/tenants/globex", &token)
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(t["region"], "us");
    let out = s.cli(&["tenant", "show", "globex", "--json"], None).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_refuses_to_start() {
    let s = start().await;
    let token = s.operator_token().await;
    assert_eq!(
        create_tenant(
            &s,
            &token,
            json!({"slug": "acme", "display_name": "Acme", "region": "eu"})
        )
        .await
        .status(),
        201
    );
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        s.cli(&["serve", "--listen", "127.0.0.1:0"], None),
    )
    .await
    .expect("the second serve must exit, not run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("in use by another `strongroom serve`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&s.pid().to_string()),
        "names the holder's pid: {stderr}"
    );
    // The first server and its data are untouched.
    assert_eq!(tenant_slugs(&s, &token).await, ["acme"]);
}

#[tokio::test]
async fn administrative_commands_work_while_the_server_runs() {
    let s = start().await;
    let token = s.operator_token().await;
    let out = s
        .cli(
            &[
                "tenant",
                "create",
                "--slug",
                "from-cli",
                "--display-name",
                "From CLI",
                "--region",
                "us",
            ],
            None,
        )
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tenant_slugs(&s, &token).await, ["from-cli"]);
    let bad = s
        .cli(
            &[
                "tenant",
                "create",
                "--slug",
                "Bad Slug",
                "--display-name",
                "X",
                "--region",
                "us",
            ],
            None,
        )
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid slug"));
    let list = s.cli(&["tenant", "list"], None).await;
    assert!(String::from_utf8_lossy(&list.stdout).contains("from-cli"));
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let s = start().await;
    let token = s.operator_token().await;
    let body = json!({"slug": "inflight", "display_name": "In flight", "region": "eu"}).to_string();
    let (first, rest) = body.as_bytes().split_at(10);

    let mut tls = connect_http1(&s).await;
    let head = format!(
        "POST /v1/tenants HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(first).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = s.pid();
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;

    tls.write_all(rest).await.unwrap();
    tls.flush().await.unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.ok();
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "in-flight request was not finished: {response}"
    );

    let (status, dir) = s.stop().await;
    assert!(status.success(), "{status:?}");
    // The write that was acknowledged during shutdown is there after a restart.
    let s = crate::support::restart(dir).await;
    assert_eq!(tenant_slugs(&s, &token).await, ["inflight"]);
}

async fn connect_http1(s: &TestServer) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&s.cert_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(s.base.trim_start_matches("https://"))
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let s = start().await;
    let token = s.operator_token().await;
    let c = s.client();
    // A failed sign-in with a recognisable password.
    let _ = c
        .post(s.url("/v1/operator/sessions"))
        .json(&json!({"email": strongroom_testkit::OPERATOR_EMAIL, "password": "canary-password-do-not-log"}))
        .send()
        .await
        .unwrap();
    let _ = c
        .get(s.url("/v1/tenants?after=canary-query-value"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let root_key = std::fs::read_to_string(s.data_dir().join("root.key")).unwrap();
    let root_key = root_key
        .lines()
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let (_, dir) = s.stop().await;
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(
        log.contains("\"message\":\"response\""),
        "the log has request lines"
    );
    for secret in [
        strongroom_testkit::OPERATOR_PASSWORD,
        "canary-password-do-not-log",
        token.as_str(),
        root_key.as_str(),
        "canary-query-value",
    ] {
        assert!(
            !log.contains(secret),
            "secret {secret:.12}… found in the log"
        );
    }
}

#[tokio::test]
async fn readiness_fails_while_the_root_key_file_is_missing() {
    let s = start().await;
    let c = s.client();
    let key = s.data_dir().join("root.key");
    let moved = s.data_dir().join("root.key.away");
    std::fs::rename(&key, &moved).unwrap();
    let resp = c.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["checks"]["keys"], "failing");
    assert_eq!(body["checks"]["database"], "ok");
    assert!(
        !body.to_string().contains("root.key"),
        "no paths leak to an unauthenticated page"
    );
    // Liveness is unaffected: the process is fine, a dependency is not.
    assert_eq!(c.get(s.url("/healthz")).send().await.unwrap().status(), 200);
    std::fs::rename(&moved, &key).unwrap();
    // Results are reused for two seconds, so probes are not a key check each.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(c.get(s.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let s = TestServer::start_with(
        bin(),
        Options {
            env: vec![(
                "STRONGROOM_LIMITS__HEADER_READ_TIMEOUT_SECS".into(),
                "1".into(),
            )],
            ..Options::default()
        },
    )
    .await;
    let mut tls = connect_http1(&s).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the server kept a half-sent request open");
    let text = String::from_utf8_lossy(&reply);
    assert!(
        !text.contains("\"ok\""),
        "a half-sent request was served: {text}"
    );
    assert_eq!(
        crate::support::send(&s, reqwest::Method::GET, "/healthz")
            .await
            .status(),
        200
    );
}
