//! TLS: rustls with TLS 1.3 and 1.2 only, ECDHE + AEAD suites only, ALPN h2 and
//! http/1.1. The certificate comes from configuration, or is self-signed on first run.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use strongroom_core::config::Config;
use tokio_rustls::TlsAcceptor;

use crate::datadir::DataDir;

/// The acceptor and a description of the certificate for the banner.
pub struct Tls {
    /// Accepts TLS connections.
    pub acceptor: TlsAcceptor,
    /// What certificate is in use.
    pub info: CertInfo,
}

/// Which certificate the server presents.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The certificate file.
    pub cert_file: PathBuf,
    /// It was generated and self-signed by Strongroom.
    pub self_signed: bool,
    /// It was generated during this start.
    pub created: bool,
    /// SHA-256 of the leaf certificate, hex.
    pub sha256: String,
}

/// Builds the TLS server configuration, creating a self-signed certificate in the data
/// directory when none is configured.
pub fn server_config(config: &Config, dir: &DataDir) -> anyhow::Result<Tls> {
    let (cert_file, key_file, self_signed, created) =
        match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), false, false),
            _ => {
                let (c, k) = (dir.join("tls/cert.pem"), dir.join("tls/key.pem"));
                let created = ensure_self_signed(&c, &k, config)?;
                (c, k, true, created)
            }
        };
    let certs = read_certs(&cert_file)?;
    let key = read_key(&key_file)?;
    let sha256 = certs
        .first()
        .map(|c| hex_digest(c.as_ref()))
        .unwrap_or_default();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "certificate {} does not match key {}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        info: CertInfo {
            cert_file,
            self_signed,
            created,
            sha256,
        },
    })
}

/// Creates `tls/cert.pem` and `tls/key.pem` unless both exist. Returns whether it did.
fn ensure_self_signed(cert: &Path, key: &Path, config: &Config) -> anyhow::Result<bool> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let ip = config.listen.ip();
    if !ip.is_unspecified() && !ip.is_loopback() {
        names.push(ip.to_string());
    }
    let generated = rcgen::generate_simple_self_signed(names)
        .context("generating a self-signed certificate")?;
    if let Some(parent) = cert.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let key_pem = zeroize::Zeroizing::new(generated.signing_key.serialize_pem());
    write_private(key, key_pem.as_bytes())?;
    std::fs::write(cert, generated.cert.pem())?;
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read TLS certificate {}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", path.display()))?;
    if certs.is_empty() {
        bail!("{} contains no certificate", path.display());
    }
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = zeroize::Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read TLS key {}", path.display()))?,
    );
    PrivateKeyDer::from_pem_slice(&pem)
        .with_context(|| format!("{} holds no usable PEM private key", path.display()))
}

fn hex_digest(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}
