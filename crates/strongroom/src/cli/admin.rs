//! Administrative commands: thin wrappers over the platform's methods.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use strongroom_core::access::Principal;
use strongroom_core::identity::Email;
use strongroom_core::platform::Platform;
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::{DisplayName, NewTenant, RegionName, Slug, Tenant};

use super::{OperatorCommand, Output, TenantCommand};

pub(super) async fn operator(platform: &Platform, cmd: OperatorCommand) -> anyhow::Result<()> {
    match cmd {
        OperatorCommand::Create {
            email,
            password_stdin,
        } => {
            let email = Email::parse(&email)?;
            let password = read_password(password_stdin)?;
            let op = platform
                .create_operator(&Principal::LocalAdmin, email, &password)
                .await?;
            println_out(&format!("created operator {} ({})", op.email, op.id))
        }
    }
}

pub(super) async fn tenant(platform: &Platform, cmd: TenantCommand) -> anyhow::Result<()> {
    let me = Principal::LocalAdmin;
    match cmd {
        TenantCommand::Create {
            slug,
            display_name,
            region,
            output,
        } => {
            let new = NewTenant {
                slug: Slug::parse(&slug)?,
                display_name: DisplayName::parse(&display_name)?,
                region: RegionName::parse(&region)?,
            };
            let t = platform.create_tenant(&me, new).await?;
            show(&t, output)
        }
        TenantCommand::Show { slug, output } => {
            let t = platform.tenant(&me, &Slug::parse(&slug)?).await?;
            if !platform.tenant_storage_ok(&me, &t).await? {
                bail!(
                    "tenant {} is in the directory but its data is missing from region {}",
                    t.slug,
                    t.region
                );
            }
            show(&t, output)
        }
        TenantCommand::List { output } => {
            let mut after = None;
            let mut all = Vec::new();
            loop {
                let page = platform
                    .tenants(&me, after, strongroom_core::platform::MAX_PAGE)
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
    }
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

fn println_out(text: &str) -> anyhow::Result<()> {
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
