//! `strongroom sso`: a tenant's single sign-on settings from the server's own machine —
//! the same operations as `/v1/t/{tenant}/sso…`, as the local administrator, each
//! audited in the tenant's trail.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Context;
use strongroom_core::identity::sso::ProviderName;
use strongroom_core::identity::user::UserId;
use strongroom_core::platform::{OidcInput, ProviderInput};
use strongroom_core::secret::SecretString;
use strongroom_core::tenant::Slug;

use super::SsoCommand;
use super::admin::println_out;

pub(super) async fn run(admin: &super::Admin, cmd: SsoCommand) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    match cmd {
        SsoCommand::Show { tenant } => {
            let view = platform.sso_settings(me, &Slug::parse(&tenant)?).await?;
            println_out(&serde_json::to_string_pretty(&view)?)
        }
        SsoCommand::SetOidc(args) => set_oidc(admin, args).await,
        SsoCommand::Remove { tenant, name } => {
            platform
                .delete_sso_provider(me, &Slug::parse(&tenant)?, &ProviderName::parse(&name)?)
                .await?;
            println_out(&format!("removed provider {name}"))
        }
        SsoCommand::Policy {
            tenant,
            require_sso,
            break_glass,
        } => {
            let ids = break_glass
                .iter()
                .map(|s| {
                    serde_json::from_value::<UserId>(serde_json::Value::String(s.clone()))
                        .with_context(|| format!("--break-glass takes a user id, not {s:?}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let view = platform
                .set_sso_policy(me, &Slug::parse(&tenant)?, require_sso, ids)
                .await?;
            println_out(&format!(
                "require_sso={} break_glass={}",
                view.require_sso,
                view.break_glass.join(",")
            ))
        }
    }
}

async fn set_oidc(admin: &super::Admin, args: super::SetOidc) -> anyhow::Result<()> {
    let (platform, me) = (&admin.platform, &admin.me);
    let super::SetOidc {
        tenant,
        name,
        client_secret_stdin,
        group_roles,
        ..
    } = &args;
    let client_secret = client_secret_stdin.then(read_line).transpose()?;
    let mut mapping: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in group_roles {
        let (group, role) = pair
            .split_once('=')
            .context("--group-role takes GROUP=ROLE")?;
        mapping
            .entry(group.to_owned())
            .or_default()
            .push(role.to_owned());
    }
    let input = ProviderInput {
        display_name: args.display_name.clone(),
        enabled: !args.disabled,
        jit: args.jit,
        link_by_email: !args.no_link_by_email,
        group_roles: mapping,
        oidc: OidcInput {
            issuer: args.issuer.clone(),
            client_id: args.client_id.clone(),
            client_secret,
            scopes: (!args.scopes.is_empty()).then(|| args.scopes.clone()),
            email_claim: None,
            name_claim: None,
            groups_claim: None,
            algorithms: None,
        },
    };
    let view = platform
        .put_sso_provider(
            me,
            &Slug::parse(tenant)?,
            &ProviderName::parse(name)?,
            input,
        )
        .await?;
    println_out(&format!(
        "stored provider {} (register this callback at the provider: {})",
        view.name, view.redirect_uri
    ))
}

/// One line of standard input, without its line end.
fn read_line() -> anyhow::Result<SecretString> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the client secret from stdin")?;
    Ok(SecretString::new(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}
