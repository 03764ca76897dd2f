//! TLS and connections: only TLS 1.2 and 1.3, modern suites, ALPN; old protocols and
//! plain HTTP refused; connections capped per address, idle ones closed; client
//! addresses kept out of the log.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("https://").to_owned()
}

fn client_config(
    s: &TestServer,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&s.cert_pem()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut c = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c
}

async fn handshake(
    s: &TestServer,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(s, versions)));
    let tcp = TcpStream::connect(addr(s)).await.unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_served_with_aead_suites() {
    let s = start().await;
    for (version, expected) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut tls = handshake(&s, &[version]).await;
        let (_, conn) = tls.get_ref();
        assert_eq!(conn.protocol_version(), Some(expected));
        let suite = format!("{:?}", conn.negotiated_cipher_suite().unwrap().suite());
        assert!(
            suite.contains("GCM") || suite.contains("CHACHA20_POLY1305"),
            "{suite}"
        );
        if expected == rustls::ProtocolVersion::TLSv1_2 {
            assert!(
                suite.contains("ECDHE"),
                "TLS 1.2 suites must be forward-secret: {suite}"
            );
        }
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.ok();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn() {
    let s = start().await;
    let resp = crate::support::send(&s, reqwest::Method::GET, "/healthz").await;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

/// A ClientHello a TLS 1.2 server would accept (ECDHE-ECDSA/RSA with AES-GCM, the
/// extensions rustls needs), with `version` in its version fields. Sent as 1.2 it is
/// answered with a ServerHello; sent as 1.0 or 1.1 — the same bytes otherwise — it must
/// be refused, so the version is provably the reason.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    fn ext(id: u16, data: &[u8]) -> Vec<u8> {
        let mut e = id.to_be_bytes().to_vec();
        e.extend_from_slice(&(data.len() as u16).to_be_bytes());
        e.extend_from_slice(data);
        e
    }
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // no session id
    let suites: [u8; 4] = [0xc0, 0x2b, 0xc0, 0x2f]; // ECDHE_ECDSA/RSA_WITH_AES_128_GCM_SHA256
    body.extend_from_slice(&(suites.len() as u16).to_be_bytes());
    body.extend_from_slice(&suites);
    body.extend_from_slice(&[1, 0]); // compression: null
    let extensions = [
        ext(0x000a, &[0, 4, 0x00, 0x1d, 0x00, 0x17]), // supported_groups: x25519, P-256
        ext(0x000b, &[1, 0]),                         // ec_point_formats: uncompressed
        ext(0x000d, &[0, 6, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]), // signature_algorithms
        ext(0x0017, &[]),                             // extended_master_secret
        ext(0xff01, &[0]),                            // renegotiation_info
    ]
    .concat();
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

async fn exchange(s: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr(s)).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tcp.read_to_end(&mut reply),
    )
    .await;
    reply
}

#[tokio::test]
async fn tls_1_0_and_1_1_are_refused_with_a_protocol_version_alert() {
    let s = start().await;
    let control = exchange(&s, &client_hello([0x03, 0x03])).await;
    assert_eq!(
        control.first(),
        Some(&0x16),
        "the TLS 1.2 control hello must get a ServerHello: {control:?}"
    );
    assert_eq!(control.get(5), Some(&0x02), "ServerHello");
    for version in [[0x03, 0x01], [0x03, 0x02]] {
        let reply = exchange(&s, &client_hello(version)).await;
        assert!(reply.len() >= 7, "expected an alert record, got {reply:?}");
        assert_eq!(reply[0], 0x15, "not an alert record: {reply:?}");
        assert_eq!(reply[5], 2, "alert level must be fatal");
        // rustls answers handshake_failure(40); protocol_version(70) would be fine too.
        assert!([40, 70].contains(&reply[6]), "unexpected alert {reply:?}");
    }
    // The server is unharmed.
    assert_eq!(
        crate::support::send(&s, reqwest::Method::GET, "/healthz")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn plain_http_gets_no_http_answer() {
    let s = start().await;
    let reply = exchange(&s, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(
        !reply.starts_with(b"HTTP/"),
        "plain HTTP was answered: {:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(!String::from_utf8_lossy(&reply).contains("\"ok\""));
    assert_eq!(
        crate::support::send(&s, reqwest::Method::GET, "/healthz")
            .await
            .status(),
        200
    );
}

/// A TCP connection to the server from `ip` (a loopback address).
async fn connect_from(s: &TestServer, ip: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr(s).parse().unwrap()).await.unwrap()
}

/// A TLS connection from `ip`, or the handshake's error.
async fn tls_from(
    s: &TestServer,
    ip: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = client_config(s, &[&rustls::version::TLS13]);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect_from(s, ip).await;
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Reads until the server closes the connection; `true` if it did within `secs`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, secs: u64) -> bool {
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let s = start_configured("[limits]\nmax_connections_per_address = 2\n").await;
    let first = tls_from(&s, "127.0.0.3").await.unwrap();
    let _second = tls_from(&s, "127.0.0.3").await.unwrap();
    // The third from the same address is closed before the handshake completes.
    assert!(tls_from(&s, "127.0.0.3").await.is_err());
    // Another address is served.
    let mut other = tls_from(&s, "127.0.0.4").await.unwrap();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    other.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    // Closing one frees its place.
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        if tls_from(&s, "127.0.0.3").await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "a closed connection's place was never freed");
}

#[tokio::test]
async fn idle_connections_and_never_finished_http2_headers_are_closed() {
    // Idle 2 s; header_read_timeout stays 10 s, so a close within 6 s is the idle rule.
    let s = start_configured("[limits]\nidle_timeout_secs = 2\n").await;
    // A handshake and then nothing.
    let mut silent = tls_from(&s, "127.0.0.5").await.unwrap();
    assert!(
        closed_within(&mut silent, 6).await,
        "silent connection kept"
    );
    // HTTP/1.1 keep-alive: one request answered, then idle.
    let mut keep = tls_from(&s, "127.0.0.5").await.unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = keep.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    assert!(closed_within(&mut keep, 6).await, "idle keep-alive kept");
    // HTTP/2: the preface, SETTINGS, then a HEADERS frame without END_HEADERS whose
    // CONTINUATION never comes: the request never starts, the connection is idle.
    let mut config = client_config(&s, &[&rustls::version::TLS13]);
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect_from(&s, "127.0.0.5").await;
    let mut h2 = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    frames.extend_from_slice(&[0, 0, 1, 1, 0, 0, 0, 0, 1, 0x82]); // HEADERS, :method GET
    h2.write_all(&frames).await.unwrap();
    assert!(
        closed_within(&mut h2, 6).await,
        "half-sent HTTP/2 headers kept the connection"
    );
    // HTTP/2 with a flow-control window of 0, never opened: a complete request whose
    // response can never be sent must not keep the connection busy forever.
    let tcp = connect_from(&s, "127.0.0.5").await;
    let mut config = client_config(&s, &[&rustls::version::TLS13]);
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut h2 = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS: INITIAL_WINDOW_SIZE (0x4) = 0.
    frames.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    // HEADERS, END_STREAM | END_HEADERS, stream 1: GET https://localhost/healthz.
    let mut block = vec![0x82, 0x87, 0x44, 8];
    block.extend_from_slice(b"/healthz");
    block.extend_from_slice(&[0x41, 9]);
    block.extend_from_slice(b"localhost");
    frames.extend_from_slice(&[0, 0, block.len() as u8, 1, 5, 0, 0, 0, 1]);
    frames.extend_from_slice(&block);
    h2.write_all(&frames).await.unwrap();
    assert!(
        closed_within(&mut h2, 6).await,
        "a response blocked by a closed window kept the connection"
    );
}

#[tokio::test]
async fn client_addresses_never_reach_the_server_log() {
    let s = start_configured("[log]\nlevel = \"debug\"\n").await;
    // A failed handshake (logged at debug), and a served request.
    let mut tcp = connect_from(&s, "127.0.0.6").await;
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut sink = Vec::new();
    let _ = tcp.read_to_end(&mut sink).await;
    let mut tls = tls_from(&s, "127.0.0.6").await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let _ = tls.read_to_end(&mut sink).await;
    let mut log = String::new();
    for _ in 0..50 {
        log = s.log();
        if log.contains("TLS handshake failed") && log.contains("/healthz") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(log.contains("TLS handshake failed"), "no debug log: {log}");
    assert!(!log.contains("127.0.0.6"), "a client address was logged");
}
