//! `strongroom sso`: a tenant's single sign-on settings from the server's own machine —
//! the same operations as `/v1/t/{tenant}/sso…`, as the local administrator, each
//! audited in the tenant's trail.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::Context;
use strongroom_core::identity::sso::ProviderName;
use strongroom_core::identity::user::UserId;
use strongroom_core::platform::{OidcInput, ProviderInput, SamlInput};
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
        SsoCommand::SetSaml(args) => set_saml(admin, args).await,
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

/// The protocol-independent half of a provider's input.
fn common_input(c: &super::ProviderCommon) -> anyhow::Result<ProviderInput> {
    let mut mapping: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in &c.group_roles {
        let (group, role) = pair
            .split_once('=')
            .context("--group-role takes GROUP=ROLE")?;
        mapping
            .entry(group.to_owned())
            .or_default()
            .push(role.to_owned());
    }
    Ok(ProviderInput {
        display_name: c.display_name.clone(),
        enabled: !c.disabled,
        jit: c.jit,
        link_by_email: (c.link_by_email || c.no_link_by_email).then_some(c.link_by_email),
        group_roles: mapping,
        oidc: None,
        saml: None,
    })
}

async fn store(
    admin: &super::Admin,
    c: &super::ProviderCommon,
    input: ProviderInput,
) -> anyhow::Result<strongroom_core::platform::ProviderView> {
    Ok(admin
        .platform
        .put_sso_provider(
            &admin.me,
            &Slug::parse(&c.tenant)?,
            &ProviderName::parse(&c.name)?,
            input,
        )
        .await?)
}

async fn set_oidc(admin: &super::Admin, args: super::SetOidc) -> anyhow::Result<()> {
    let client_secret = args.client_secret_stdin.then(read_line).transpose()?;
    let input = ProviderInput {
        oidc: Some(OidcInput {
            issuer: args.issuer.clone(),
            client_id: args.client_id.clone(),
            client_secret,
            scopes: (!args.scopes.is_empty()).then(|| args.scopes.clone()),
            email_claim: None,
            name_claim: None,
            groups_claim: None,
            algorithms: None,
        }),
        ..common_input(&args.common)?
    };
    let view = store(admin, &args.common, input).await?;
    println_out(&format!(
        "stored provider {} (register this callback at the provider: {})",
        view.name, view.redirect_uri
    ))
}

async fn set_saml(admin: &super::Admin, args: super::SetSaml) -> anyhow::Result<()> {
    let idp_metadata = match &args.metadata_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the metadata {}", path.display()))?,
        ),
        None => None,
    };
    let input = ProviderInput {
        saml: Some(SamlInput {
            idp_metadata,
            metadata_url: args.metadata_url.clone(),
            name_id_format: args.name_id_format.clone(),
            email_attribute: args.email_attribute.clone(),
            name_attribute: args.name_attribute.clone(),
            groups_attribute: args.groups_attribute.clone(),
            require_encrypted: args.require_encrypted,
        }),
        ..common_input(&args.common)?
    };
    let view = store(admin, &args.common, input).await?;
    let saml = view
        .saml
        .as_ref()
        .context("the stored provider is not SAML")?;
    println_out(&format!(
        "stored provider {} (IdP {}); register at the IdP: entity id {}, ACS (HTTP-POST) {}, metadata {}",
        view.name, saml.idp_entity_id, saml.sp_entity_id, saml.acs_url, saml.sp_metadata_url
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
