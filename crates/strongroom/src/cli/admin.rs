//! Administrative commands: thin wrappers over the platform's methods.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use strongroom_core::identity::Email;
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug, Tenant};

use super::{KeysCommand, OperatorCommand, Output, TenantCommand, UserCommand};

pub(super) async fn operator(admin: &super::Admin, cmd: OperatorCommand) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        OperatorCommand::Create {
            email,
            password_stdin,
        } => {
            let email = Email::parse(&email)?;
            let password = read_password(password_stdin)?;
            let op = platform.create_operator(me, email, &password).await?;
            println_out(&format!("created operator {} ({})", op.email, op.id))
        }
        OperatorCommand::List { output } => {
            let all = platform.operators(me).await?;
            if output.json {
                return println_out(&serde_json::to_string_pretty(&all)?);
            }
            let mut text = format!("{:<40} {:<37} STATUS\n", "EMAIL", "ID");
            for op in &all {
                let status = op
                    .disabled_at
                    .map_or_else(|| "enabled".to_owned(), |at| format!("disabled {at}"));
                text.push_str(&format!("{:<40} {:<37} {status}\n", op.email, op.id));
            }
            println_out(text.trim_end())
        }
        OperatorCommand::Disable { email, reason } => {
            let op = platform
                .disable_operator(me, &Email::parse(&email)?, reason)
                .await?;
            println_out(&format!(
                "disabled operator {} ({}): their tokens stop working at their next request",
                op.email, op.id
            ))
        }
        OperatorCommand::EnrolTotp {
            email,
            reset: _,
            reason,
        } => {
            let uri = platform
                .operator_enrol_totp(me, &Email::parse(&email)?, reason)
                .await?;
            println_out(&uri)
        }
        OperatorCommand::ConfirmTotp { email, code } => {
            let code = strongroom_core::identity::totp::OneTimeCode::parse(&code)?;
            platform
                .operator_confirm_totp(me, &Email::parse(&email)?, &code)
                .await?;
            println_out(&format!("confirmed: {email} now signs in with a TOTP code"))
        }
    }
}

pub(super) async fn user(admin: &super::Admin, cmd: UserCommand) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        UserCommand::Create {
            tenant,
            email,
            full_name,
            roles,
            password_stdin,
        } => {
            let roles = roles
                .iter()
                .map(|r| {
                    strongroom_core::access::rbac::Role::parse(r).with_context(|| {
                        format!(
                            "unknown role {r:?}: use admin, preparer, reviewer, viewer or auditor"
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let email = Email::parse(&email)?;
            let password = read_password(password_stdin)?;
            let user = platform
                .create_user(
                    me,
                    &Slug::parse(&tenant)?,
                    email,
                    full_name.as_deref(),
                    strongroom_core::platform::Credential::Password(password),
                    roles,
                )
                .await?;
            println_out(&format!(
                "created user {} ({}) in {tenant}",
                user.email, user.id
            ))
        }
    }
}

pub(super) async fn tenant(admin: &super::Admin, cmd: TenantCommand) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        TenantCommand::Create {
            slug,
            display_name,
            region,
            key_provider,
            output,
        } => {
            let new = NewTenant {
                slug: Slug::parse(&slug)?,
                display_name: DisplayName::parse(&display_name)?,
                region: RegionName::parse(&region)?,
                key_provider,
            };
            let t = platform.create_tenant(me, new).await?;
            show(&t, output)
        }
        TenantCommand::SetSecret { tenant, name } => {
            let value = read_secret_value()?;
            let info = platform
                .set_tenant_secret(
                    me,
                    &Slug::parse(&tenant)?,
                    &strongroom_core::objects::SecretName::parse(&name)?,
                    &value,
                )
                .await?;
            println_out(&format!(
                "stored secret {} of tenant {tenant} (version {}, sealed under data key {})",
                info.name, info.version, info.key_version
            ))
        }
        TenantCommand::Show { slug, output } => {
            let t = platform.tenant(me, &Slug::parse(&slug)?).await?;
            if !platform.tenant_storage_ok(me, &t).await? {
                bail!(
                    "tenant {} is in the directory but its data is missing from region {}",
                    t.slug,
                    t.region
                );
            }
            show(&t, output)
        }
        TenantCommand::List { output } => tenant_list(admin, output).await,
    }
}

async fn tenant_list(admin: &super::Admin, output: Output) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    let mut after = None;
    let mut all = Vec::new();
    loop {
        let page = platform
            .tenants(me, after, strongroom_core::platform::MAX_PAGE)
            .await?;
        let done = page.len() < strongroom_core::platform::MAX_PAGE as usize;
        after = page.last().map(|t| t.slug.clone());
        all.extend(page);
        if done {
            break;
        }
    }
    if output.json {
        return println_out(&serde_json::to_string_pretty(&all)?);
    }
    let mut text = format!(
        "{:<32} {:<12} {:<15} DISPLAY NAME\n",
        "SLUG", "REGION", "STATUS"
    );
    for t in &all {
        text.push_str(&format!(
            "{:<32} {:<12} {:<15} {}\n",
            t.slug,
            t.region,
            t.status.as_str(),
            t.display_name
        ));
    }
    println_out(text.trim_end())
}

pub(super) async fn keys(
    admin: &super::Admin,
    cmd: KeysCommand,
    config: &strongroom_core::config::Config,
) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        KeysCommand::Status { output } => key_status(admin, output).await,
        KeysCommand::RotateSigningKey => {
            let kid = platform.rotate_signing_key(me).await?;
            println_out(&format!(
                "new token signing key {kid} is active; earlier keys still verify"
            ))
        }
        KeysCommand::RevokeSigningKey { kid, reason } => {
            platform.revoke_signing_key(me, &kid, reason).await?;
            println_out(&format!(
                "revoked token signing key {kid}: tokens it signed stop verifying within tokens.reload_secs"
            ))
        }
        KeysCommand::Rotate {
            tenant,
            kek,
            provider,
            reason,
        } => {
            let slug = Slug::parse(&tenant)?;
            if kek {
                let v = platform
                    .rotate_kek(me, &slug, provider.as_deref(), reason)
                    .await?;
                println_out(&format!(
                    "tenant {slug}: key-encryption key v{v} is current; data keys re-wrapped"
                ))
            } else {
                let v = platform.rotate_data_key(me, &slug, reason).await?;
                println_out(&format!(
                    "tenant {slug}: data key v{v} is current; older data is re-encrypted in the \
                     background (or now: strongroom keys reencrypt --tenant {slug})"
                ))
            }
        }
        KeysCommand::Reencrypt { tenant } => {
            reencrypt(admin, &Slug::parse(&tenant)?, config.keys.reencrypt_per_sec).await
        }
        KeysCommand::Shred {
            tenant,
            confirm,
            reason,
        } => {
            let slug = Slug::parse(&tenant)?;
            if confirm != tenant {
                bail!("--confirm must repeat the tenant's slug ({tenant}) exactly");
            }
            platform.shred_tenant_keys(me, &slug, reason).await?;
            println_out(&format!(
                "tenant {slug}: all keys destroyed; its data can no longer be decrypted"
            ))
        }
    }
}

/// Re-encrypts `slug`'s data at `per_sec` objects a second until nothing is left
/// under an older data key.
async fn reencrypt(admin: &super::Admin, slug: &Slug, per_sec: u32) -> anyhow::Result<()> {
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let p = admin.platform.reencrypt(&admin.me, slug, per_sec).await?;
        total += p.values + p.blobs;
        if p.remaining == 0 {
            return println_out(&format!(
                "tenant {slug}: {total} object(s) re-encrypted; everything is under data key v{}",
                p.current_key
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1).saturating_sub(started.elapsed()))
            .await;
    }
}

async fn key_status(admin: &super::Admin, output: Output) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    let status = platform.key_status(me).await?;
    if output.json {
        return println_out(&serde_json::to_string_pretty(&status)?);
    }
    let mut text = String::from("PROVIDERS\n");
    for (name, what) in platform.key_providers() {
        text.push_str(&format!("  {name:<16} {what}\n"));
    }
    text.push_str(&format!(
        "\n{:<32} {:<12} {:<16} {:<4} {:<8} STATE\n",
        "TENANT", "REGION", "PROVIDER", "KEK", "DATA KEY"
    ));
    for t in &status {
        let state = match t.destroyed_at {
            Some(at) => format!("shredded {at}"),
            None => format!(
                "{} data key(s), oldest v{}",
                t.data_keys.len(),
                t.data_keys.first().map_or(0, |d| d.version)
            ),
        };
        text.push_str(&format!(
            "{:<32} {:<12} {:<16} {:<4} {:<8} {state}\n",
            t.slug.as_str(),
            t.region,
            t.provider.as_deref().unwrap_or("-"),
            t.kek_version.map_or("-".into(), |v| format!("v{v}")),
            t.data_keys
                .last()
                .map_or("-".into(), |d| format!("v{}", d.version)),
        ));
    }
    println_out(text.trim_end())
}

/// Reads a secret value: all of standard input (one trailing newline removed).
fn read_secret_value() -> anyhow::Result<strongroom_core::secret::SecretBytes> {
    use std::io::Read;
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(strongroom_core::objects::MAX_VALUE_BYTES as u64 + 2)
        .read_to_end(&mut buf)
        .context("reading the secret from stdin")?;
    let mut end = buf.len();
    if buf[..end].ends_with(b"\n") {
        end -= 1;
    }
    if buf[..end].ends_with(b"\r") {
        end -= 1;
    }
    Ok(strongroom_core::secret::SecretBytes::new(
        buf[..end].to_vec(),
    ))
}

fn show(t: &Tenant, output: Output) -> anyhow::Result<()> {
    if output.json {
        return println_out(&serde_json::to_string_pretty(t)?);
    }
    println_out(&format!(
        "slug:         {}\ndisplay name: {}\nregion:       {}\nstatus:       {}\nid:           {}\ncreated:      {}",
        t.slug,
        t.display_name,
        t.region,
        t.status.as_str(),
        t.id,
        t.created_at
    ))
}

/// Reads a password from stdin (one line) or, on a terminal, from a hidden prompt.
fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(SecretString::new(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    let first = SecretString::new(rpassword::prompt_password("Password: ")?);
    let again = SecretString::new(rpassword::prompt_password("Repeat password: ")?);
    if !first.ct_eq(again.expose()) {
        bail!("the passwords do not match");
    }
    Ok(first)
}

pub(super) fn println_out(text: &str) -> anyhow::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// Prints a line and exits successfully (for `version`).
pub(super) fn print(text: &str) -> ExitCode {
    match println_out(text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
