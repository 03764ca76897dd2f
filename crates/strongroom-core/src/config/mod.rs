//! Configuration: one typed struct, layered, strict.
//!
//! Layers, later ones winning: built-in defaults → TOML file → `STRONGROOM_*`
//! environment variables → command-line flags. Unknown settings are errors, and every
//! error names the setting (and the environment variable, when one set it), so a typo
//! fails at start instead of being silently ignored. The result is passed by value
//! into the server; there is no global configuration.

mod layers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::tenant::RegionName;

pub use layers::{ConfigError, ENV_PREFIX, Source};

/// The whole configuration of one Strongroom process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, the root key file, certificates and blobs live.
    pub data_dir: PathBuf,
    /// Address the HTTPS listener binds to.
    pub listen: SocketAddr,
    /// TLS certificate settings.
    pub tls: TlsConfig,
    /// Logging settings.
    pub log: LogConfig,
    /// Size, count and time bounds on what clients may send.
    pub limits: LimitsConfig,
    /// Residency regions; each maps to its own storage location.
    pub regions: BTreeMap<RegionName, RegionConfig>,
    /// Access-token settings.
    pub tokens: TokensConfig,
    /// Password-hashing settings.
    pub passwords: PasswordConfig,
    /// Key providers, caching and rotation.
    pub keys: KeysConfig,
    /// Audit-trail integration and query bounds.
    pub audit: AuditConfig,
    /// The WebAuthn relying party (passkeys as a second factor).
    pub webauthn: WebauthnConfig,
    /// Platform operators.
    pub operators: OperatorsConfig,
    /// Which database engine holds the control and region databases.
    pub database: DatabaseConfig,
    /// Single sign-on: where identity providers may be, and how strictly they are timed.
    pub sso: SsoConfig,
}

/// Single sign-on, server-wide. Each tenant configures its own identity providers; these
/// settings bound what a tenant may configure and how answers are judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsoConfig {
    /// The public base URL browsers reach this server at (scheme, host, port), from
    /// which the callback URLs registered at identity providers are formed. Empty:
    /// `webauthn.origin`.
    pub public_url: String,
    /// Accept `http://` issuers on a loopback address (a local test IdP). Off: issuers
    /// must be `https` and public.
    pub allow_http_loopback: bool,
    /// When not empty, the only hosts an issuer may name.
    pub allowed_hosts: Vec<String>,
    /// Clock difference tolerated between this server and an identity provider, in
    /// seconds, when judging `iat` and `auth_time` (at most 60).
    pub clock_skew_secs: u64,
    /// How long a browser has to come back from the identity provider, in seconds
    /// (60 to 1800).
    pub flow_ttl_secs: u64,
    /// SSO requests (sign-in starts and callbacks) accepted per client address (IPv6:
    /// per /64) per minute; more get 429. Bounds what one address can do to the table
    /// of sign-ins in progress and to the audit trail.
    pub per_address_per_minute: u32,
}

impl Default for SsoConfig {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            allow_http_loopback: false,
            allowed_hosts: Vec::new(),
            clock_skew_secs: 5,
            flow_ttl_secs: 600,
            per_address_per_minute: 120,
        }
    }
}

/// The database engine: embedded SQLite files in the data directory (the default), or
/// PostgreSQL servers (one database for the control plane, one per region) for
/// several stateless server nodes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseBackend {
    /// `<data_dir>/control.db` and `<region dir>/strongroom.db`.
    #[default]
    Sqlite,
    /// `database.control_url` and `regions.<name>.database_url`.
    Postgres,
}

/// Database settings. With `backend = "postgres"`, the URLs name the application role
/// (`postgres://strongroom_app@host:5432/db?sslmode=verify-full`) and never carry a
/// password: it comes from `password`, `password_file` or
/// `STRONGROOM_DATABASE__PASSWORD`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// The engine.
    pub backend: DatabaseBackend,
    /// The control database (operators, the tenant directory, the platform trail).
    pub control_url: Option<String>,
    /// The application role's password. Prefer `password_file` or the environment.
    pub password: Option<crate::secret::SecretString>,
    /// File whose first line is the application role's password.
    pub password_file: Option<PathBuf>,
    /// The role that owns the schema, used only by `strongroom db migrate`.
    pub owner: String,
    /// The owner role's password (or `owner_password_file`, or
    /// `STRONGROOM_DATABASE__OWNER_PASSWORD`); read only by `strongroom db migrate`.
    pub owner_password: Option<crate::secret::SecretString>,
    /// File whose first line is the owner role's password.
    pub owner_password_file: Option<PathBuf>,
    /// CA certificates (PEM) for `sslmode=verify-ca`/`verify-full`; given alone, it
    /// turns `sslmode=prefer` into `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// Connections per database, per server node.
    pub max_connections: u32,
    /// No statement runs longer (PostgreSQL `statement_timeout`).
    pub statement_timeout_ms: u64,
    /// No lock, including a tenant's write lock, is waited on longer (`lock_timeout`).
    pub lock_timeout_ms: u64,
    /// How long a request waits for a pooled connection before a 503.
    pub acquire_timeout_ms: u64,
    /// SQLite: what an acknowledged write survives (see `docs/durability.md`).
    pub synchronous: Synchronous,
    /// SQLite: the most concurrent writes that share one transaction and one flush
    /// (1 turns group commit off).
    pub group_commit_max_batch: u32,
    /// SQLite: a batch open this long takes no new write and commits (0: no
    /// batching).
    pub group_commit_max_wait_ms: u64,
}

/// How durable an acknowledged SQLite write is.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is flushed to the disk before it is acknowledged: an acknowledged
    /// write survives a power loss or an operating-system crash.
    #[default]
    Full,
    /// Commits reach the operating system, not the disk: an acknowledged write
    /// survives the process being killed, but a power loss or kernel crash may lose
    /// the last commits (never corrupting the database or splitting a write from its
    /// audit entry).
    Normal,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            backend: DatabaseBackend::Sqlite,
            control_url: None,
            password: None,
            password_file: None,
            owner: "strongroom_owner".into(),
            owner_password: None,
            owner_password_file: None,
            ca_file: None,
            max_connections: 16,
            statement_timeout_ms: 30_000,
            lock_timeout_ms: 10_000,
            acquire_timeout_ms: 5_000,
            synchronous: Synchronous::Full,
            group_commit_max_batch: 128,
            group_commit_max_wait_ms: 10,
        }
    }
}

/// Platform operators.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    /// Operators must sign in with a TOTP code as well as their password (enrol with
    /// `strongroom operator enrol-totp`); those without one are refused.
    pub require_totp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./strongroom-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            tls: TlsConfig::default(),
            log: LogConfig::default(),
            limits: LimitsConfig::default(),
            regions: BTreeMap::new(),
            tokens: TokensConfig::default(),
            passwords: PasswordConfig::default(),
            keys: KeysConfig::default(),
            audit: AuditConfig::default(),
            webauthn: WebauthnConfig::default(),
            operators: OperatorsConfig::default(),
            database: DatabaseConfig::default(),
            sso: SsoConfig::default(),
        }
    }
}

/// TLS: a self-signed certificate in the data directory unless files are given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`, replaces the self-signed certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`.
    pub key_file: Option<PathBuf>,
    /// `Strict-Transport-Security` max-age, in seconds.
    pub hsts_max_age_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            hsts_max_age_secs: 63_072_000,
        }
    }
}

/// How log lines look and how many there are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,strongroom_http=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Bounds on client input. Every size, count and time the server accepts is here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted by JSON endpoints, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take from headers read to response produced.
    pub request_timeout_secs: u64,
    /// Longest a client may take to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// Longest a client may take to complete the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Concurrent connections; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Concurrent connections from one client address (IPv6 by its /64); further ones
    /// are closed at once, so one client cannot take every slot.
    pub max_connections_per_address: usize,
    /// A connection with no request in flight for this long is closed (HTTP/1.1
    /// keep-alive and HTTP/2 alike; an HTTP/2 request whose headers never complete
    /// counts as none), and so is one where a response's body has not moved for this
    /// long (a client that stopped reading, an HTTP/2 window never opened).
    pub idle_timeout_secs: u64,
    /// On SIGTERM, how long in-flight requests get to finish.
    pub shutdown_grace_secs: u64,
    /// Largest record attachment accepted, in bytes (streamed, never buffered).
    pub max_attachment_bytes: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_attachment_bytes: 4 * 1024 * 1024 * 1024,
            request_timeout_secs: 30,
            header_read_timeout_secs: 10,
            tls_handshake_timeout_secs: 10,
            max_connections: 1024,
            max_connections_per_address: 64,
            idle_timeout_secs: 60,
            shutdown_grace_secs: 30,
        }
    }
}

/// One residency region.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegionConfig {
    /// Directory holding the region's database and blobs; default
    /// `<data_dir>/regions/<name>`. Relative paths are relative to `data_dir`.
    pub path: Option<PathBuf>,
    /// With `database.backend = "postgres"`: the region's own database.
    pub database_url: Option<String>,
    /// Keep the region's encrypted streams (attachments) in an S3-compatible bucket
    /// instead of `<region dir>/blobs`.
    pub s3: Option<S3Config>,
}

/// An S3-compatible bucket for one region's encrypted streams. The secret comes from
/// `secret_access_key`, `secret_access_key_file` or
/// `STRONGROOM_REGIONS__<REGION>__S3__SECRET_ACCESS_KEY`, and is never printed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://s3.eu-central-1.amazonaws.com`, or any S3-compatible endpoint.
    pub endpoint: String,
    /// The bucket (one per region).
    pub bucket: String,
    /// The signing region.
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key. Prefer `secret_access_key_file` or the environment.
    pub secret_access_key: Option<crate::secret::SecretString>,
    /// File whose first line is the secret access key.
    pub secret_access_key_file: Option<PathBuf>,
    /// Path-style requests (`endpoint/bucket/key`), which most S3-compatible servers
    /// need; virtual-hosted style (`bucket.endpoint/key`) otherwise.
    #[serde(default)]
    pub path_style: bool,
    /// Allow a plain `http://` endpoint. Only for a server on loopback in tests: the
    /// objects are ciphertext, but the request signatures and metadata are not.
    #[serde(default)]
    pub allow_http: bool,
    /// CA certificates (PEM) for the endpoint's certificate, beside the system roots.
    pub ca_file: Option<PathBuf>,
    /// Key prefix inside the bucket, e.g. `strongroom/`.
    #[serde(default)]
    pub prefix: String,
    /// Bound on one request to the bucket, body included, in seconds.
    #[serde(default = "default_s3_timeout")]
    pub timeout_secs: u64,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

fn default_s3_timeout() -> u64 {
    300
}

/// Access tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// `iss` claim of every token this deployment signs.
    pub issuer: String,
    /// Lifetime of an operator access token, in seconds.
    pub operator_ttl_secs: u64,
    /// Lifetime of a tenant user's access token, in seconds (minutes, not hours: the
    /// refresh token renews it).
    pub user_ttl_secs: u64,
    /// How long a sign-in session can be refreshed before signing in again, in seconds.
    pub session_ttl_secs: u64,
    /// How often the server re-reads its signing keys, in seconds, so that a rotation
    /// done with `strongroom keys rotate-signing-key` takes effect without a restart.
    pub reload_secs: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            issuer: "strongroom".into(),
            operator_ttl_secs: 900,
            user_ttl_secs: 300,
            session_ttl_secs: 43_200,
            reload_secs: 30,
        }
    }
}

/// Argon2id cost and the size of the hashing pool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Memory per hash in KiB (OWASP minimum: 19456 with 2 iterations).
    pub argon2_memory_kib: u32,
    /// Passes over memory.
    pub argon2_iterations: u32,
    /// Lanes per hash.
    pub argon2_parallelism: u32,
    /// Hashes computed at once; 0 means one per CPU. Bounds memory under a login flood.
    pub hashing_workers: usize,
    /// Failed sign-ins for one account from one IP address before it is locked out
    /// from that address (other addresses are unaffected, so an attacker cannot lock a
    /// user out).
    pub lockout_after: u32,
    /// First lockout, in seconds; each further failure doubles it, up to 900.
    pub lockout_base_secs: u64,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hashing_workers: 0,
            lockout_after: 5,
            lockout_base_secs: 30,
        }
    }
}

/// Keys: which provider holds the root key, the PKCS#11 providers, and the bounds on
/// cached and used keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Provider that wraps the platform's and (by default) every tenant's keys:
    /// `local` (the `root.key` file) or the name of a `[keys.pkcs11.<name>]` entry.
    pub root: String,
    /// PKCS#11 providers by name; a tenant may be created with its own.
    pub pkcs11: BTreeMap<String, Pkcs11Config>,
    /// How long unwrapped keys stay in memory.
    pub cache_ttl_secs: u64,
    /// Most unwrapped keys kept in memory.
    pub cache_capacity: usize,
    /// Values one data key may seal before it is rotated automatically (random 96-bit
    /// GCM nonces: NIST SP 800-38D caps a key at 2^32 uses; we stay far below).
    pub data_key_max_seals: u64,
    /// Re-encryption speed after a rotation, in objects per second per tenant.
    pub reencrypt_per_sec: u32,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            root: LOCAL_PROVIDER.into(),
            pkcs11: BTreeMap::new(),
            cache_ttl_secs: 300,
            cache_capacity: 10_000,
            data_key_max_seals: 1 << 30,
            reencrypt_per_sec: 200,
        }
    }
}

/// The audit trail: how often new entries are folded into a signed checkpoint, and how
/// much one query may return.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often the server integrates new entries and signs a checkpoint, in
    /// milliseconds. This bounds how stale a published checkpoint can be; a reader of
    /// `/audit/checkpoint` always gets one that includes every committed entry.
    pub checkpoint_interval_ms: u64,
    /// Most entries one query page returns.
    pub max_page: u32,
    /// Most entries one export (CSV or JSON) returns. Exports are streamed a page
    /// (`max_page` entries) at a time, so this bounds time, not memory.
    pub max_export: u32,
    /// Exports running at once across all tenants, one per tenant at most (each reads
    /// the trail page by page and unseals its personal data for as long as the client
    /// keeps reading); one more is answered 429 with `Retry-After`.
    pub max_concurrent_exports: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_interval_ms: 1000,
            max_page: 500,
            max_export: 100_000,
            max_concurrent_exports: 4,
        }
    }
}

/// The WebAuthn relying party: the domain passkeys are bound to and the origin the
/// console is served from. Browsers refuse a mismatch, so set these to the public name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnConfig {
    /// Relying-party id: the registrable domain, e.g. `vault.example.com`.
    pub rp_id: String,
    /// The origin clients run on, e.g. `https://vault.example.com` (scheme, host, port).
    pub origin: String,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        Self {
            rp_id: "localhost".into(),
            origin: "https://localhost:8443".into(),
        }
    }
}

/// Name of the built-in provider backed by `<data_dir>/root.key`.
pub const LOCAL_PROVIDER: &str = "local";

/// A key held on a PKCS#11 token (an HSM, or SoftHSM2 for testing).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token holding the key.
    pub token_label: String,
    /// User PIN. Prefer `pin_file`.
    pub pin: Option<crate::secret::SecretString>,
    /// File whose first line is the user PIN.
    pub pin_file: Option<PathBuf>,
    /// Label of the AES-256 key object; created (non-extractable) when missing.
    pub key_label: String,
}

/// The region used when the configuration declares none.
pub const DEFAULT_REGION: &str = "local";

impl Config {
    /// Loads the configuration from its layers and checks it.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Vec<(&'static str, toml::Value)>,
    ) -> Result<Self, ConfigError> {
        let (mut config, origins): (Config, _) = layers::merge(file, env, flags)?;
        if config.regions.is_empty() {
            let local = RegionName::parse(DEFAULT_REGION).map_err(|e| invalid("regions", e))?;
            config.regions.insert(local, RegionConfig::default());
        }
        config.validate().map_err(|e| e.with_origin(&origins))?;
        Ok(config)
    }

    /// The directory of a region's data: its own database and blob store.
    pub fn region_dir(&self, region: &RegionName) -> Option<PathBuf> {
        let rc = self.regions.get(region)?;
        Some(match &rc.path {
            Some(p) => self.data_dir.join(p),
            None => self.data_dir.join("regions").join(region.as_str()),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_limits_and_tokens()?;
        self.validate_database()?;
        self.validate_sso()?;
        let p = &self.passwords;
        check(
            p.argon2_memory_kib,
            19_456,
            4 * 1024 * 1024,
            "passwords.argon2_memory_kib",
        )?;
        check(p.argon2_iterations, 1, 100, "passwords.argon2_iterations")?;
        check(p.argon2_parallelism, 1, 64, "passwords.argon2_parallelism")?;
        check(p.hashing_workers, 0, 1024, "passwords.hashing_workers")?;
        check(p.lockout_after, 1, 1000, "passwords.lockout_after")?;
        check(p.lockout_base_secs, 1, 900, "passwords.lockout_base_secs")?;
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(invalid(
                "tls",
                "cert_file and key_file must be set together",
            ));
        }
        self.validate_keys()?;
        self.validate_regions()?;
        if self.log.format == LogFormat::Auto && self.log.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty"));
        }
        Ok(())
    }
}

impl Config {
    fn validate_sso(&self) -> Result<(), ConfigError> {
        let s = &self.sso;
        check(s.clock_skew_secs, 0, 60, "sso.clock_skew_secs")?;
        check(s.flow_ttl_secs, 60, 1800, "sso.flow_ttl_secs")?;
        check(
            s.per_address_per_minute,
            2,
            100_000,
            "sso.per_address_per_minute",
        )?;
        let origin_only = s
            .public_url
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', '@']));
        if !s.public_url.is_empty() && !origin_only {
            return Err(invalid(
                "sso.public_url",
                "an https:// origin (scheme, host, port; no path, no trailing slash)",
            ));
        }
        Ok(())
    }

    fn validate_limits_and_tokens(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        check(l.max_body_bytes, 1024, 1 << 30, "limits.max_body_bytes")?;
        check(
            l.max_attachment_bytes,
            0,
            1 << 40,
            "limits.max_attachment_bytes",
        )?;
        check(
            l.request_timeout_secs,
            1,
            3600,
            "limits.request_timeout_secs",
        )?;
        check(
            l.header_read_timeout_secs,
            1,
            300,
            "limits.header_read_timeout_secs",
        )?;
        check(
            l.tls_handshake_timeout_secs,
            1,
            300,
            "limits.tls_handshake_timeout_secs",
        )?;
        check(l.max_connections, 1, 1_000_000, "limits.max_connections")?;
        check(
            l.max_connections_per_address,
            1,
            1_000_000,
            "limits.max_connections_per_address",
        )?;
        check(l.idle_timeout_secs, 1, 3600, "limits.idle_timeout_secs")?;
        check(l.shutdown_grace_secs, 0, 3600, "limits.shutdown_grace_secs")?;
        check(
            self.tokens.operator_ttl_secs,
            60,
            3600,
            "tokens.operator_ttl_secs",
        )?;
        check(self.tokens.user_ttl_secs, 30, 3600, "tokens.user_ttl_secs")?;
        check(self.tokens.reload_secs, 1, 3600, "tokens.reload_secs")?;
        check(
            self.tokens.session_ttl_secs,
            300,
            2_592_000,
            "tokens.session_ttl_secs",
        )?;
        if self.tokens.issuer.is_empty() || self.tokens.issuer.len() > 255 {
            return Err(invalid("tokens.issuer", "must be 1 to 255 characters"));
        }
        Ok(())
    }

    /// Two regions on one directory would mix residencies in one database.
    fn validate_regions(&self) -> Result<(), ConfigError> {
        let mut seen: BTreeMap<PathBuf, &RegionName> = BTreeMap::new();
        for name in self.regions.keys() {
            let Some(dir) = self.region_dir(name) else {
                continue;
            };
            let key = std::path::absolute(&dir).unwrap_or(dir);
            if let Some(other) = seen.insert(key, name) {
                return Err(invalid(
                    &format!("regions.{name}.path"),
                    format!("is the same directory as region {other}'s; each region needs its own"),
                ));
            }
        }
        Ok(())
    }

    fn validate_database(&self) -> Result<(), ConfigError> {
        let d = &self.database;
        check(d.max_connections, 1, 1000, "database.max_connections")?;
        check(
            d.statement_timeout_ms,
            100,
            3_600_000,
            "database.statement_timeout_ms",
        )?;
        check(d.lock_timeout_ms, 10, 3_600_000, "database.lock_timeout_ms")?;
        check(
            d.acquire_timeout_ms,
            10,
            600_000,
            "database.acquire_timeout_ms",
        )?;
        check(
            d.group_commit_max_batch,
            1,
            10_000,
            "database.group_commit_max_batch",
        )?;
        check(
            d.group_commit_max_wait_ms,
            0,
            1_000,
            "database.group_commit_max_wait_ms",
        )?;
        if d.password.is_some() && d.password_file.is_some() {
            return Err(invalid(
                "database.password",
                "set at most one of `password` and `password_file`",
            ));
        }
        if d.owner_password.is_some() && d.owner_password_file.is_some() {
            return Err(invalid(
                "database.owner_password",
                "set at most one of `owner_password` and `owner_password_file`",
            ));
        }
        let postgres = d.backend == DatabaseBackend::Postgres;
        if postgres != d.control_url.is_some() {
            return Err(invalid(
                "database.control_url",
                "is required with backend = \"postgres\" and allowed only then",
            ));
        }
        for (name, r) in &self.regions {
            if let Some(s3) = &r.s3 {
                validate_s3(name, s3)?;
            }
            if postgres != r.database_url.is_some() {
                return Err(invalid(
                    &format!("regions.{name}.database_url"),
                    "is required for every region with database.backend = \"postgres\" \
                     and allowed only then",
                ));
            }
        }
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), ConfigError> {
        let k = &self.keys;
        if k.root != LOCAL_PROVIDER && !k.pkcs11.contains_key(&k.root) {
            return Err(invalid(
                "keys.root",
                format!(
                    "no provider named `{}` (declare [keys.pkcs11.{}] or use `local`)",
                    k.root, k.root
                ),
            ));
        }
        for (name, p) in &k.pkcs11 {
            let setting = format!("keys.pkcs11.{name}");
            if name == LOCAL_PROVIDER || RegionName::parse(name).is_err() {
                return Err(invalid(
                    &setting,
                    "provider names are 1-32 characters of a-z, 0-9, '-' and not `local`",
                ));
            }
            if p.pin.is_some() == p.pin_file.is_some() {
                return Err(invalid(&setting, "set exactly one of `pin` and `pin_file`"));
            }
            if p.token_label.is_empty() || p.key_label.is_empty() {
                return Err(invalid(
                    &setting,
                    "token_label and key_label must not be empty",
                ));
            }
        }
        check(k.cache_ttl_secs, 1, 86_400, "keys.cache_ttl_secs")?;
        check(k.cache_capacity, 16, 10_000_000, "keys.cache_capacity")?;
        check(k.data_key_max_seals, 16, 1 << 31, "keys.data_key_max_seals")?;
        check(k.reencrypt_per_sec, 1, 1_000_000, "keys.reencrypt_per_sec")?;
        let a = &self.audit;
        check(
            a.checkpoint_interval_ms,
            10,
            3_600_000,
            "audit.checkpoint_interval_ms",
        )?;
        check(a.max_page, 1, 10_000, "audit.max_page")?;
        check(a.max_export, 1, 10_000_000, "audit.max_export")?;
        check(
            a.max_concurrent_exports,
            1,
            64,
            "audit.max_concurrent_exports",
        )?;
        Ok(())
    }
}

fn validate_s3(name: &RegionName, s3: &S3Config) -> Result<(), ConfigError> {
    let setting = format!("regions.{name}.s3");
    if s3.secret_access_key.is_some() == s3.secret_access_key_file.is_some() {
        return Err(invalid(
            &setting,
            "set exactly one of `secret_access_key` and `secret_access_key_file`",
        ));
    }
    if !(s3.prefix.is_empty() || s3.prefix.ends_with('/')) {
        return Err(invalid(&setting, "prefix must be empty or end in '/'"));
    }
    if s3.endpoint.starts_with("http://") && !s3.allow_http {
        return Err(invalid(
            &setting,
            "an http:// endpoint needs allow_http = true (loopback tests only)",
        ));
    }
    check(
        s3.timeout_secs,
        1,
        86_400,
        &format!("{setting}.timeout_secs"),
    )?;
    Ok(())
}

fn check<T: PartialOrd + std::fmt::Display>(
    v: T,
    min: T,
    max: T,
    setting: &str,
) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(invalid(
            setting,
            format!("{v} is out of range {min}..={max}"),
        ));
    }
    Ok(())
}

fn invalid(setting: &str, message: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_owned(),
        origin: String::new(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// The process's `STRONGROOM_*` environment variables: the one place configuration
/// reads the environment.
#[allow(clippy::disallowed_methods)]
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect()
}
