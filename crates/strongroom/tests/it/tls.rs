//! TLS: only 1.2 and 1.3, modern suites, ALPN; old protocols and plain HTTP refused.

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
