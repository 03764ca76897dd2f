//! Applications on the platform facade: registration and status by a tenant's user
//! administrators, the OAuth 2.0 client-credentials grant, and authenticating the
//! application tokens it issues.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

use super::{MAX_PAGE, Platform, PlatformError};
use crate::access::rbac::Permission;
use crate::access::{self, Principal, TenantUser};
use crate::audit::entry::{Action, NewEntry, Target};
use crate::audit::merkle::sha256;
use crate::identity::application::{AppId, Application, StoredApplication};
use crate::identity::token::TenantClaims;
use crate::secret::SecretString;
use crate::tenant::Slug;

/// Longest application name, in characters.
const MAX_NAME: usize = 100;
/// Prefix of client secrets (lets secret scanners recognise a leaked one).
const SECRET_PREFIX: &str = "src_";

/// A newly registered application with its secret, shown this once.
#[derive(Clone, Serialize, ToSchema)]
pub struct RegisteredApplication {
    /// The application.
    #[serde(flatten)]
    pub application: Application,
    /// The OAuth 2.0 `client_secret`. Only its hash is kept: it cannot be shown again.
    pub client_secret: String,
}

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for RegisteredApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredApplication")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

/// An access token from the token endpoint (RFC 6749 §5.1).
#[derive(Clone, Serialize, ToSchema)]
pub struct OAuthToken {
    /// The EdDSA-signed JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The permissions granted, space-separated.
    pub scope: String,
}

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthToken")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why the token endpoint refused (RFC 6749 §5.2 error codes), or failed.
#[derive(Debug)]
pub enum OAuthError {
    /// Unknown client, wrong secret, or a disabled application.
    InvalidClient,
    /// A `scope` naming permissions the application does not have.
    InvalidScope,
    /// The subject token of an exchange is not a live token of a user of the
    /// application's tenant.
    InvalidGrant,
    /// The server could not complete the grant (storage, key provider or audit
    /// failure): the client may retry.
    Unavailable(PlatformError),
}

fn app_target(id: AppId) -> Target {
    Target::of("application", id.to_string())
}

impl Platform {
    /// Registers an application with `permissions` (`users:manage`). Returns the
    /// client secret once.
    pub async fn create_application(
        &self,
        principal: &Principal,
        slug: &Slug,
        name: &str,
        permissions: Vec<Permission>,
    ) -> Result<RegisteredApplication, PlatformError> {
        if name.trim().is_empty()
            || name.chars().count() > MAX_NAME
            || name.chars().any(char::is_control)
        {
            return Err(PlatformError::Invalid {
                field: Some("name"),
                message: format!("1-{MAX_NAME} characters without control characters"),
            });
        }
        let (tenant, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw)
            .map_err(|_| PlatformError::internal("system RNG failed"))?;
        let secret = format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
        let id = AppId::generate();
        let stored = StoredApplication {
            app: Application {
                id,
                client_id: format!("{}.{id}", tenant.slug),
                name: name.trim().to_owned(),
                permissions,
                active: true,
                created_at: self.clock.now(),
            },
            secret_hash: sha256(&[secret.as_bytes()]),
        };
        let entry = NewEntry::by(&scope, Action::ApplicationCreate, app_target(id), None);
        let event = self.recorder.event(&scope, entry).await?;
        self.store
            .insert_application(&scope, &stored, &principal.label(), &event)
            .await?;
        Ok(RegisteredApplication {
            application: stored.app,
            client_secret: secret,
        })
    }

    /// The tenant's applications (`users:manage`).
    pub async fn applications(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<Vec<Application>, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        Ok(self
            .store
            .applications(&scope, MAX_PAGE)
            .await?
            .into_iter()
            .map(|a| a.app)
            .collect())
    }

    /// Enables or disables an application (`users:manage`); a disabled application's
    /// tokens stop working at the next request.
    pub async fn set_application_active(
        &self,
        principal: &Principal,
        slug: &Slug,
        id: AppId,
        active: bool,
    ) -> Result<Application, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        let reason = Some(format!("active={active}"));
        let entry = NewEntry::by(&scope, Action::ApplicationUpdate, app_target(id), reason);
        let event = self.recorder.event(&scope, entry).await?;
        if !self
            .store
            .set_application_active(&scope, id, active, &event)
            .await?
        {
            return Err(PlatformError::NotFound("application"));
        }
        self.store
            .application(&scope, id)
            .await?
            .map(|a| a.app)
            .ok_or(PlatformError::NotFound("application"))
    }

    /// The client-credentials grant: a token for the application, with the requested
    /// `scope` (space-separated permissions; default: all of the application's).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        scope: Option<&str>,
    ) -> Result<OAuthToken, OAuthError> {
        let (tenant, stored) = self.authenticate_client(client_id, client_secret).await?;
        let granted = narrow(scope, &stored.app.permissions)?;
        self.grant(&tenant, stored.app.id, granted, None).await
    }

    /// The tenant and application of valid, active client credentials.
    async fn authenticate_client(
        &self,
        client_id: &str,
        client_secret: &SecretString,
    ) -> Result<(crate::tenant::Tenant, StoredApplication), OAuthError> {
        let found = self.find_client(client_id).await?;
        // Compare against something either way, so timing does not tell ids apart.
        let expected = found.as_ref().map_or([0u8; 32], |(_, a)| a.secret_hash);
        let given = sha256(&[client_secret.expose().as_bytes()]);
        let matches = bool::from(subtle::ConstantTimeEq::ct_eq(&given[..], &expected[..]));
        found
            .filter(|(_, a)| matches && a.app.active)
            .ok_or(OAuthError::InvalidClient)
    }

    /// Token exchange (RFC 8693): the application, authenticated by its credentials,
    /// presents a user's access token and gets a token for that user acting through
    /// it, with the permissions both hold (narrowed further by `scope`, if given).
    pub async fn token_exchange(
        &self,
        client_id: &str,
        client_secret: &SecretString,
        subject_token: &str,
        scope: Option<&str>,
    ) -> Result<OAuthToken, OAuthError> {
        let (tenant, stored) = self.authenticate_client(client_id, client_secret).await?;
        let Ok(Principal::User(user)) = self.authenticate(subject_token).await else {
            return Err(OAuthError::InvalidGrant);
        };
        // Only a user of the application's own tenant, and no chains of delegation.
        if user.tenant().id != tenant.id || user.via().is_some() {
            return Err(OAuthError::InvalidGrant);
        }
        let both: Vec<Permission> = user
            .permissions()
            .iter()
            .copied()
            .filter(|p| stored.app.permissions.contains(p))
            .collect();
        let granted = narrow(scope, &both)?;
        self.grant(&tenant, stored.app.id, granted, Some(&user))
            .await
    }

    /// Audits (`application.token`, by the application) and issues a token for the
    /// application itself, or for `user` acting through it.
    async fn grant(
        &self,
        tenant: &crate::tenant::Tenant,
        app: AppId,
        granted: Vec<Permission>,
        user: Option<&TenantUser>,
    ) -> Result<OAuthToken, OAuthError> {
        let actor = access::application(tenant.clone(), app, granted.iter().copied().collect());
        let home = access::own_account(&actor).map_err(|e| OAuthError::Unavailable(e.into()))?;
        let target = match user {
            None => app_target(app),
            Some(u) => Target::of("user", u.user().to_string()),
        };
        let mut entry = NewEntry::by(&home, Action::ApplicationToken, target, None);
        entry.session = user.map(|u| u.session().to_owned());
        // A token that cannot be audited is not issued.
        self.recorder
            .record(&home, entry)
            .await
            .map_err(|e| OAuthError::Unavailable(e.into()))?;
        let names: Vec<String> = granted.iter().map(|p| p.as_str().to_owned()).collect();
        let (subject, sid, via) = match user {
            None => (format!("app:{app}"), String::new(), None),
            Some(u) => (
                format!("user:{}", u.user()),
                u.session().to_owned(),
                Some(app.to_string()),
            ),
        };
        let issued = self.tokens().issue_for_tenant(
            &subject,
            self.user_ttl_secs,
            TenantClaims {
                tid: tenant.id.as_uuid().to_string(),
                tenant: tenant.slug.to_string(),
                sid,
                perms: names.clone(),
                app: via,
            },
        );
        Ok(OAuthToken {
            access_token: issued.access_token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: names.join(" "),
        })
    }

    /// The tenant and application a `client_id` names, if any. Storage failures are
    /// the server's (503), not an unknown client.
    async fn find_client(
        &self,
        client_id: &str,
    ) -> Result<Option<(crate::tenant::Tenant, StoredApplication)>, OAuthError> {
        let Some((slug, id)) = client_id.split_once('.') else {
            return Ok(None);
        };
        let (Ok(slug), Ok(id)) = (Slug::parse(slug), uuid::Uuid::parse_str(id)) else {
            return Ok(None);
        };
        let Some(tenant) = self
            .tenant_by_slug(&slug)
            .await
            .map_err(OAuthError::Unavailable)?
        else {
            return Ok(None);
        };
        let probe = self.sign_in_scope(&tenant);
        let app = self
            .store
            .application(&probe, AppId::from_uuid(id))
            .await
            .map_err(|e| OAuthError::Unavailable(e.into()))?;
        Ok(app.map(|a| (tenant, a)))
    }

    /// The principal of a verified application token: the application must still be
    /// active, and keeps only the permissions it still has.
    pub(super) async fn authenticate_application(
        &self,
        tenant: &crate::tenant::Tenant,
        app: AppId,
        claimed: &[String],
    ) -> Result<Principal, PlatformError> {
        let probe = self.sign_in_scope(tenant);
        let stored = self
            .store
            .application(&probe, app)
            .await?
            .filter(|a| a.app.active)
            .ok_or(PlatformError::Unauthenticated)?;
        let permissions = claimed
            .iter()
            .filter_map(|c| Permission::parse(c))
            .filter(|p| stored.app.permissions.contains(p))
            .collect();
        Ok(access::application(tenant.clone(), app, permissions))
    }
}

/// The permissions named by `scope` (space-separated), all of which must be in
/// `allowed`; no scope means all of `allowed`.
fn narrow(scope: Option<&str>, allowed: &[Permission]) -> Result<Vec<Permission>, OAuthError> {
    let Some(s) = scope else {
        return Ok(allowed.to_vec());
    };
    let wanted: Option<Vec<Permission>> = s.split_whitespace().map(Permission::parse).collect();
    match wanted {
        Some(w) if !w.is_empty() && w.iter().all(|p| allowed.contains(p)) => Ok(w),
        _ => Err(OAuthError::InvalidScope),
    }
}
