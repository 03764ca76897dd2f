//! The command line: `serve` and the administrative commands.
//!
//! Administrative commands open the same data directory as `serve` (without taking the
//! serve lock) and call the same [`Platform`] methods the API calls, so they work
//! whether or not a server is running and apply exactly the same rules.

mod admin;
mod audit;
mod banner;
mod records;
mod sso;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use strongroom_core::access::{DataDirProof, Principal};
use strongroom_core::config::{Config, ConfigError};
use strongroom_core::platform::Platform;

pub use banner::banner;

/// Exit code for configuration errors (sysexits EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

/// Strongroom: a vault for regulated records.
#[derive(Debug, Parser)]
#[command(name = "strongroom", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Settings can also come from STRONGROOM_* variables.
    #[arg(long, global = true, env = "STRONGROOM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (default ./strongroom-data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTPS server (initialising the data directory on first run).
    Serve {
        /// Address to listen on (default 127.0.0.1:8443).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Initialise a data directory (databases, root key, certificate) without serving.
    /// Only `serve` and `init` create one: every other command refuses a directory that
    /// is not already initialised.
    Init,
    /// Manage platform operators.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage a tenant's users (bootstrap the first admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect and rotate tenants' encryption keys; crypto-shred a tenant.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// A tenant's or the platform's audit trail: verifier key, checkpoint, export,
    /// offline verification.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A tenant's record types and records; verify hashes, signatures and their audit
    /// bindings.
    #[command(subcommand)]
    Records(RecordsCommand),
    /// A tenant's single sign-on: OpenID Connect providers and whether SSO is required.
    #[command(subcommand)]
    Sso(SsoCommand),
    /// The database schema (PostgreSQL): `db migrate` before the first `serve` and
    /// after every upgrade, as the owner role; `serve` refuses a schema that is behind.
    #[command(subcommand)]
    Db(DbCommand),
    /// Print the version.
    Version,
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Apply this binary's migrations to the control and every region database as
    /// `database.owner`, and grant the application role (the user of
    /// `database.control_url`) what the server needs, and nothing more.
    Migrate,
}

#[derive(Debug, Subcommand)]
enum RecordsCommand {
    /// List the tenant's record types (latest version of each).
    Types {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        output: Output,
    },
    /// List the tenant's records.
    List {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Only records of this type.
        #[arg(long = "type", value_name = "TYPE")]
        record_type: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Show one record with its current version, content and signatures (JSON).
    Show {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The record's id.
        #[arg(long)]
        record: String,
    },
    /// Recompute every content hash, check every signature against its version, its
    /// own hash and its audit entry's inclusion in the signed checkpoint, and re-hash
    /// approved attachments. Exits non-zero naming each failure.
    Verify {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Only this record.
        #[arg(long)]
        record: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum SsoCommand {
    /// Print the tenant's SSO settings (JSON; secrets are never shown).
    Show {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
    },
    /// Add or replace an OpenID Connect provider (its discovery document is checked
    /// first).
    SetOidc(SetOidc),
    /// Add or replace a SAML 2.0 provider from its metadata (prints what to register
    /// at the IdP: our entity id, ACS URL and metadata URL).
    SetSaml(SetSaml),
    /// Remove a provider.
    Remove {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The provider's name.
        #[arg(long)]
        name: String,
    },
    /// Require SSO (passwords refused except for the break-glass users) or not.
    Policy {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Refuse local passwords.
        #[arg(long)]
        require_sso: bool,
        /// A user id that may still use a password (repeatable; at least one
        /// administrator when requiring SSO).
        #[arg(long = "break-glass", value_name = "USER_ID")]
        break_glass: Vec<String>,
    },
}

/// What every provider has, whatever its protocol.
#[derive(Debug, Args)]
struct ProviderCommon {
    /// The tenant's slug.
    #[arg(long)]
    tenant: String,
    /// The provider's name in the tenant (a-z, 0-9, '-').
    #[arg(long)]
    name: String,
    /// What the sign-in button says.
    #[arg(long, value_name = "TEXT")]
    display_name: String,
    /// GROUP=ROLE (repeatable): sign-ins then set roles from the provider's groups.
    #[arg(long = "group-role", value_name = "GROUP=ROLE")]
    group_roles: Vec<String>,
    /// Create unknown users at their first sign-in.
    #[arg(long)]
    jit: bool,
    /// Do not link first sign-ins to existing users by e-mail (the OIDC default links
    /// by verified e-mail).
    #[arg(long, conflicts_with = "link_by_email")]
    no_link_by_email: bool,
    /// Link first sign-ins to existing users by e-mail (off by default for SAML, whose
    /// assertions do not say whether an address is verified).
    #[arg(long)]
    link_by_email: bool,
    /// Store the provider disabled.
    #[arg(long)]
    disabled: bool,
}

/// `sso set-oidc`'s settings.
#[derive(Debug, Args)]
struct SetOidc {
    #[command(flatten)]
    common: ProviderCommon,
    /// The issuer URL.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Our client id at the provider.
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// Read the client secret from the first line of standard input (required for a
    /// new provider; without it a replacement keeps the stored secret).
    #[arg(long)]
    client_secret_stdin: bool,
    /// A scope besides openid (repeatable; default email, profile).
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
}

/// `sso set-saml`'s settings.
#[derive(Debug, Args)]
struct SetSaml {
    #[command(flatten)]
    common: ProviderCommon,
    /// The IdP's metadata XML, from a file.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with = "metadata_url",
        required_unless_present = "metadata_url"
    )]
    metadata_file: Option<std::path::PathBuf>,
    /// Fetch the IdP's metadata from this URL (its host must be in sso.allowed_hosts).
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// The NameID format to ask for.
    #[arg(long, value_name = "URN")]
    name_id_format: Option<String>,
    /// The attribute holding the e-mail (default email; "" for the NameID).
    #[arg(long, value_name = "NAME")]
    email_attribute: Option<String>,
    /// The attribute holding the full name (default displayName).
    #[arg(long, value_name = "NAME")]
    name_attribute: Option<String>,
    /// The attribute holding the groups (default groups).
    #[arg(long, value_name = "NAME")]
    groups_attribute: Option<String>,
    /// Refuse assertions that are not encrypted to our certificate.
    #[arg(long)]
    require_encrypted: bool,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a tenant user.
    Create {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The user's e-mail address (their login name in the tenant).
        #[arg(long)]
        email: String,
        /// The user's printed name (shown in their signatures' manifestations).
        #[arg(long, value_name = "NAME")]
        full_name: Option<String>,
        /// A role to grant (repeatable): admin, preparer, reviewer, viewer, auditor.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Create a platform operator.
    Create {
        /// The operator's e-mail address (their login name).
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List operators (enabled and disabled).
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Disable an operator: their tokens stop working at their next request and they
    /// cannot sign in. The account is kept, because the trails name it.
    Disable {
        /// The operator's e-mail address.
        #[arg(long)]
        email: String,
        /// Why (recorded in the platform trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Start TOTP enrolment for an operator: prints the otpauth:// URI to load into
    /// their authenticator. Confirm with `confirm-totp`.
    EnrolTotp {
        /// The operator's e-mail address.
        #[arg(long)]
        email: String,
        /// Replace a confirmed factor (a lost authenticator); needs --reason.
        #[arg(long, requires = "reason")]
        reset: bool,
        /// Why the factor is replaced (recorded in the platform trail).
        #[arg(long, value_name = "TEXT", requires = "reset")]
        reason: Option<String>,
    },
    /// Confirm an operator's TOTP enrolment with a current code; from then on their
    /// sign-in requires a code.
    ConfirmTotp {
        /// The operator's e-mail address.
        #[arg(long)]
        email: String,
        /// A current 6-digit code from the authenticator.
        #[arg(long)]
        code: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        /// URL name: 3-63 characters of a-z, 0-9 and '-'.
        #[arg(long)]
        slug: String,
        /// Human name.
        #[arg(long)]
        display_name: String,
        /// Residency region (declared in the configuration).
        #[arg(long)]
        region: String,
        /// Key provider for the tenant's key-encryption key (default: the root
        /// provider), e.g. a customer-owned HSM declared under [keys.pkcs11.<name>].
        #[arg(long, value_name = "NAME")]
        key_provider: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Store a tenant secret (e.g. an SSO client secret), sealed under the tenant's
    /// keys. The value is read from standard input and cannot be read back.
    SetSecret {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The secret's name (a-z, 0-9, '-', '_', '.').
        #[arg(long)]
        name: String,
    },
    /// Show one tenant.
    Show {
        /// The tenant's slug.
        slug: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Show every tenant's key provider and key versions (never key material).
    Status {
        #[command(flatten)]
        output: Output,
    },
    /// Make a new access-token signing key the active one; earlier keys keep verifying
    /// (a running server picks it up within `tokens.reload_secs`).
    RotateSigningKey,
    /// Revoke an access-token signing key: tokens it signed stop verifying within
    /// `tokens.reload_secs` in every process and it leaves the JWKS.
    RevokeSigningKey {
        /// The key id (`kid`), as listed in /.well-known/jwks.json. Key ids are
        /// base64url and may start with '-': accepted as the value, not as a flag.
        #[arg(long, allow_hyphen_values = true)]
        kid: String,
        /// Why (recorded in the platform trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Make a new data key current (default), or replace the key-encryption key.
    Rotate {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Rotate the key-encryption key instead: data keys are re-wrapped, data is
        /// untouched.
        #[arg(long)]
        kek: bool,
        /// With --kek: move the key-encryption key to this provider.
        #[arg(long, requires = "kek", value_name = "NAME")]
        provider: Option<String>,
        /// Why (recorded in the tenant's audit trail; required with --kek).
        #[arg(long, required_if_eq("kek", "true"), value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Re-encrypt the tenant's data still under older data keys, now, rate-limited
    /// (the server also does this in the background).
    Reencrypt {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
    },
    /// Destroy all of a tenant's keys. Irreversible: its data becomes unreadable.
    Shred {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// Repeat the slug to confirm.
        #[arg(long, value_name = "SLUG")]
        confirm: String,
        /// Why (recorded in the tenant's audit trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Print the trail's verifier key (C2SP vkey).
    Vkey {
        #[command(flatten)]
        trail: Trail,
    },
    /// Integrate new entries and print the latest signed checkpoint.
    Checkpoint {
        #[command(flatten)]
        trail: Trail,
    },
    /// Write the checkpoint, tiles and entry bundles into DIR (tlog-tiles layout).
    Export {
        #[command(flatten)]
        trail: Trail,
        /// Output directory (created; must be empty or absent).
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Verify a log — an exported directory, or a server's over HTTPS; prints one
    /// line, exits 1 if anything is wrong.
    Verify {
        /// An exported directory (tlog-tiles layout).
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "url",
            conflicts_with = "url"
        )]
        dir: Option<PathBuf>,
        /// A server's base URL, e.g. https://vault.example.com:8443 (with --tenant or
        /// --platform).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// The tenant whose log to fetch from --url.
        #[arg(long, requires = "url", conflicts_with = "platform")]
        tenant: Option<String>,
        /// Fetch the platform's own trail from --url (an operator token).
        #[arg(long, requires = "url")]
        platform: bool,
        /// The log's verifier key, obtained separately and pinned (e.g. `audit vkey`):
        /// never taken from the server being verified.
        #[arg(long)]
        vkey: String,
        /// File keeping the last verified size and root, to detect a rolled-back or
        /// rewritten log next time (created if absent).
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// PEM certificate(s) to trust for --url instead of the system's roots (e.g.
        /// the server's self-signed certificate).
        #[arg(long, value_name = "FILE")]
        ca_cert: Option<PathBuf>,
        /// File holding the bearer token for --url (or set STRONGROOM_TOKEN).
        #[arg(long, value_name = "FILE", env = "STRONGROOM_TOKEN_FILE")]
        token_file: Option<PathBuf>,
    },
    /// Erase a subject's personal data (IP addresses, user agents) from a tenant's
    /// trail by destroying its key; entries and proofs are unchanged.
    EraseSubject {
        /// The tenant's slug.
        #[arg(long)]
        tenant: String,
        /// The subject, as `<kind>:<id>` (e.g. operator:<uuid>).
        #[arg(long)]
        subject: String,
        /// Why (recorded in the tenant's audit trail).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// Which trail an audit command reads: a tenant's, or the platform's own.
#[derive(Debug, Args, Clone)]
#[group(required = true, multiple = false)]
struct Trail {
    /// The tenant's slug.
    #[arg(long)]
    tenant: Option<String>,
    /// The platform's own trail (operators, tenants, signing keys, support access).
    #[arg(long)]
    platform: bool,
}

#[derive(Debug, Args, Clone, Copy)]
struct Output {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Version) {
        return admin::print(&format!("strongroom {}", env!("CARGO_PKG_VERSION")));
    }
    let config = match load_config(&cli) {
        Ok(c) => c,
        Err(e) => return fail(&format!("configuration error: {e}"), EXIT_CONFIG),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), 1),
    };
    let is_serve = matches!(cli.command, Command::Serve { .. });
    let mut log = config.log.clone();
    if !is_serve && log.level == "info" {
        log.level = "warn".into(); // administrative commands: quiet unless asked
    }
    crate::logging::init(&log);
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("error: {e:#}"), 1),
    }
}

fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let mut flags = Vec::new();
    if let Some(dir) = &cli.data_dir {
        flags.push(("data_dir", toml::Value::String(dir.display().to_string())));
    }
    if let Command::Serve { listen: Some(addr) } = &cli.command {
        flags.push(("listen", toml::Value::String(addr.to_string())));
    }
    Config::load(
        cli.config.as_deref(),
        strongroom_core::config::process_env(),
        flags,
    )
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => crate::serve(config, &mut std::io::stdout()).await,
        Command::Init => init(&config).await,
        Command::Operator(cmd) => admin::operator(&open(&config).await?, cmd).await,
        Command::User(cmd) => admin::user(&open(&config).await?, cmd).await,
        Command::Tenant(cmd) => admin::tenant(&open(&config).await?, cmd).await,
        Command::Keys(cmd) => admin::keys(&open(&config).await?, cmd, &config).await,
        Command::Audit(AuditCommand::Verify {
            dir,
            url,
            tenant,
            platform,
            vkey,
            state,
            ca_cert,
            token_file,
        }) => match (dir, url, tenant, platform) {
            (Some(dir), None, None, false) => audit::verify_dir(&dir, &vkey, state.as_deref()),
            (None, Some(url), tenant, platform) if tenant.is_some() != platform => {
                let remote = audit::Remote {
                    url,
                    tenant,
                    ca_cert,
                    token_file,
                };
                audit::verify_url(remote, vkey, state).await
            }
            _ => anyhow::bail!("give either --dir, or --url with --tenant or --platform"),
        },
        Command::Audit(cmd) => audit::run(&open(&config).await?, cmd).await,
        Command::Records(cmd) => records::run(&open(&config).await?, cmd).await,
        Command::Sso(cmd) => sso::run(&open(&config).await?, cmd).await,
        Command::Db(DbCommand::Migrate) => {
            admin::println_out(&crate::database::migrate(&config).await?)
        }
        Command::Version => Ok(()),
    }
}

/// An opened data directory and the local administrator its proof entitles: what
/// every administrative command runs with.
pub(crate) struct Admin {
    platform: Platform,
    me: Principal,
}

/// Opens an initialised data directory for an administrative command (no serve lock).
/// A path that is not an initialised data directory is an error naming it: a typo must
/// not create a new instance with a new root key.
async fn open(config: &Config) -> anyhow::Result<Admin> {
    let proof = DataDirProof::check(&config.data_dir)?;
    let dir = crate::datadir::DataDir::existing(&config.data_dir)?;
    let opened = dir.open(config).await?;
    let clock = std::sync::Arc::new(strongroom_core::clock::SystemClock);
    let mut platform =
        Platform::open(opened.store, opened.blobs, opened.providers, clock, config).await?;
    platform.set_idp_transport(std::sync::Arc::new(crate::idp::ReqwestIdp::new(
        config.sso.allow_http_loopback,
    )?));
    platform.set_saml_engine(std::sync::Arc::new(crate::saml::XmlSecEngine));
    Ok(Admin {
        platform,
        me: proof.local_admin(),
    })
}

/// `strongroom init`: creates and initialises the data directory, then says what is
/// there.
async fn init(config: &Config) -> anyhow::Result<()> {
    let dir = crate::datadir::DataDir::new(&config.data_dir)?;
    let opened = dir.open(config).await?;
    let clock = std::sync::Arc::new(strongroom_core::clock::SystemClock);
    Platform::open(opened.store, opened.blobs, opened.providers, clock, config).await?;
    crate::tls::server_config(config, &dir)?;
    let what = if opened.report.created_dir || opened.report.created_root_key {
        "initialised"
    } else {
        "already initialised"
    };
    admin::println_out(&format!("{what}: {}", config.data_dir.display()))
}

fn fail(message: &str, code: u8) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "strongroom: {message}");
    ExitCode::from(code)
}
