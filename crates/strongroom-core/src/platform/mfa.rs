//! Second factor: TOTP enrolment and confirmation by the user, checked at sign-in,
//! with single-use recovery codes.
//!
//! A user's factor is one sealed value (kind `user-mfa`, id = user id) under the
//! tenant's data key: the TOTP secret, whether enrolment was confirmed, the last step
//! accepted (replay protection) and the SHA-256 of each unused recovery code. Every
//! change is a sealed write with its audit entry in the same transaction.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Platform, PlatformError};
use crate::access::rbac::{Permission, Role};
use crate::access::{Principal, TenantScope, WritableScope};
use crate::audit::entry::Action;
use crate::audit::merkle::sha256;
use crate::identity::totp;
use crate::identity::user::UserId;
use crate::objects::Kind;
use crate::secret::SecretBytes;
use crate::tenant::Slug;

/// Kind of the sealed second-factor value.
const KIND: Kind = Kind::UserMfa;

/// The stored second factor (sealed as JSON).
#[derive(Serialize, Deserialize)]
pub(super) struct Factor {
    /// TOTP secret, base64.
    secret: String,
    /// Enrolment confirmed with a valid code: sign-in now requires the factor.
    confirmed: bool,
    /// Last TOTP step accepted.
    last_step: i64,
    /// SHA-256 (hex) of each unused recovery code.
    recovery: Vec<String>,
}

/// The password again, from where the request came: re-authentication before a
/// security-sensitive change to one's own account.
#[derive(Debug, Clone)]
pub struct Reauth {
    /// The account's password.
    pub password: crate::secret::SecretString,
    /// The client's address (re-authentication is throttled like a sign-in).
    pub client: std::net::IpAddr,
}

/// What enrolment returns: the secret for the authenticator app.
#[derive(Clone, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// `otpauth://totp/…` URI, to show as a QR code.
    pub otpauth_uri: String,
    /// The same secret in base32, for manual entry.
    pub secret: String,
}

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment").finish_non_exhaustive()
    }
}

/// What confirmation returns: recovery codes, shown once.
#[derive(Clone, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Single-use codes for when the authenticator is lost. Only their hashes are kept.
    pub recovery_codes: Vec<String>,
}

/// Carries a secret shown to its owner once: `Debug` names the type, never the secret.
impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodes").finish_non_exhaustive()
    }
}

/// A second factor offered at sign-in.
#[derive(Debug, Clone, Default)]
pub struct SecondFactor {
    /// A current TOTP code.
    pub totp: Option<totp::OneTimeCode>,
    /// One of the recovery codes.
    pub recovery_code: Option<totp::OneTimeCode>,
    /// A passkey assertion: the challenge id from the sign-in challenge and the
    /// authenticator's `PublicKeyCredential` (JSON).
    pub passkey: Option<(String, serde_json::Value)>,
}

/// The stored form of a recovery code: SHA-256 of the code upper-cased, without
/// separators or surrounding space (normalised in a zeroised buffer).
fn recovery_hash(code: &str) -> String {
    let normalised = crate::secret::SecretString::new(
        code.trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect(),
    );
    hex::encode(sha256(&[normalised.expose().as_bytes()]))
}

fn invalid(message: &str) -> PlatformError {
    PlatformError::Invalid {
        field: Some("code"),
        message: message.into(),
    }
}

impl Platform {
    pub(super) async fn factor(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> Result<Option<(Factor, SecretBytes)>, PlatformError> {
        Ok(self
            .factor_at(scope, user)
            .await?
            .map(|(_, factor, secret)| (factor, secret)))
    }

    /// The factor with the stored version it was read at.
    async fn factor_at(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> Result<Option<(u64, Factor, SecretBytes)>, PlatformError> {
        let Some((version, bytes)) = self.objects.value(scope, KIND, &user.to_string()).await?
        else {
            return Ok(None);
        };
        let factor: Factor = serde_json::from_slice(bytes.expose())
            .map_err(|e| PlatformError::internal(format!("second factor unreadable: {e}")))?;
        let secret = STANDARD
            .decode(&factor.secret)
            .map_err(|_| PlatformError::internal("second factor secret unreadable"))?;
        Ok(Some((version, factor, SecretBytes::new(secret))))
    }

    /// Stores an enrolment change (a data write: refused in a read-only tenant).
    async fn store_factor(
        &self,
        scope: &WritableScope,
        user: UserId,
        factor: &Factor,
        action: Action,
    ) -> Result<(), PlatformError> {
        let json = serde_json::to_vec(factor).map_err(PlatformError::internal_from)?;
        self.objects
            .put_value(scope, KIND, &user.to_string(), &json, action)
            .await?;
        Ok(())
    }

    /// Stores a factor spent at sign-in (its last step, a used recovery code), only
    /// if it is still the version read at `read`: false if a racing sign-in (on this
    /// or another server node) spent it first, so one code signs in once.
    async fn record_factor_use(
        &self,
        scope: &TenantScope,
        user: UserId,
        factor: &Factor,
        read: u64,
    ) -> Result<bool, PlatformError> {
        let json = serde_json::to_vec(factor).map_err(PlatformError::internal_from)?;
        Ok(self
            .objects
            .put_state_if(
                scope,
                KIND,
                &user.to_string(),
                &json,
                Action::SessionMfa,
                read,
            )
            .await?)
    }

    fn own_user(principal: &Principal) -> Result<UserId, PlatformError> {
        match principal {
            Principal::User(u) => Ok(u.user()),
            _ => Err(PlatformError::Forbidden(
                "only a signed-in user enrols a second factor".into(),
            )),
        }
    }

    /// Whether the user has a second factor already (a confirmed TOTP or a passkey).
    pub(super) async fn has_factor(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> Result<bool, PlatformError> {
        let totp = self
            .factor(scope, user)
            .await?
            .is_some_and(|(f, _)| f.confirmed);
        Ok(totp || !self.passkeys(scope, user).await?.is_empty())
    }

    /// Proves the signed-in user again with their password (throttled and audited like
    /// a sign-in): what adding a factor next to an existing one requires, so a stolen
    /// session cannot quietly plant the thief's authenticator.
    pub(super) async fn reauthenticate(
        &self,
        scope: &TenantScope,
        tenant: &crate::tenant::Tenant,
        user: UserId,
        reauth: Option<&Reauth>,
    ) -> Result<(), PlatformError> {
        let Some(r) = reauth else {
            return Err(PlatformError::Forbidden(
                "a second factor exists: confirm with your `password` to add another".into(),
            ));
        };
        let email = self
            .store
            .user(scope, user)
            .await?
            .ok_or(PlatformError::NotFound("user"))?
            .email;
        let (_, proven, _, attempt) = self
            .check_password(&tenant.slug, &email, &r.password, r.client)
            .await?;
        if proven.id != user {
            return Err(PlatformError::Unauthenticated);
        }
        attempt.succeeded();
        Ok(())
    }

    /// Starts (or restarts, until confirmed) TOTP enrolment for the caller. A user who
    /// already has a passkey confirms with their password (`reauth`).
    pub async fn totp_enrol(
        &self,
        principal: &Principal,
        slug: &Slug,
        reauth: Option<&Reauth>,
    ) -> Result<TotpEnrolment, PlatformError> {
        let user = Self::own_user(principal)?;
        let (tenant, scope) = self.own_scope(principal, slug).await?;
        let scope = scope.writable()?;
        if let Some((f, _)) = self.factor(&scope, user).await?
            && f.confirmed
        {
            return Err(PlatformError::Conflict(
                "a second factor is already enrolled".into(),
            ));
        }
        if self.has_factor(&scope, user).await? {
            self.reauthenticate(&scope, &tenant, user, reauth).await?;
        }
        let _guard = self
            .mfa_lock
            .lock(format!("{}/{user}", scope.tenant()))
            .await;
        let mut secret = vec![0u8; 20];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| PlatformError::internal("system RNG failed"))?;
        let account = self
            .store
            .user(&scope, user)
            .await?
            .ok_or(PlatformError::NotFound("user"))?
            .email;
        let factor = Factor {
            secret: STANDARD.encode(&secret),
            confirmed: false,
            last_step: 0,
            recovery: vec![],
        };
        self.store_factor(&scope, user, &factor, Action::UserMfaEnrol)
            .await?;
        Ok(TotpEnrolment {
            otpauth_uri: totp::otpauth_uri(
                &format!("Strongroom {}", tenant.slug),
                account.as_str(),
                &secret,
            ),
            secret: totp::base32(&secret),
        })
    }

    /// Confirms enrolment with a current code; returns recovery codes (shown once).
    pub async fn totp_confirm(
        &self,
        principal: &Principal,
        slug: &Slug,
        code: &totp::OneTimeCode,
    ) -> Result<RecoveryCodes, PlatformError> {
        let user = Self::own_user(principal)?;
        let (_, scope) = self.own_scope(principal, slug).await?;
        let scope = scope.writable()?;
        let _guard = self
            .mfa_lock
            .lock(format!("{}/{user}", scope.tenant()))
            .await;
        let Some((mut factor, secret)) = self.factor(&scope, user).await? else {
            return Err(PlatformError::Conflict("start enrolment first".into()));
        };
        if factor.confirmed {
            return Err(PlatformError::Conflict(
                "a second factor is already enrolled".into(),
            ));
        }
        let now = self.clock.now().unix_timestamp();
        let step = totp::verify(&secret, code.expose(), now, factor.last_step)
            .ok_or_else(|| invalid("the code is not valid now"))?;
        let mut codes = Vec::with_capacity(totp::RECOVERY_CODES);
        for _ in 0..totp::RECOVERY_CODES {
            let mut raw = [0u8; 10];
            aws_lc_rs::rand::fill(&mut raw)
                .map_err(|_| PlatformError::internal("system RNG failed"))?;
            let text = totp::base32(&raw);
            codes.push(format!("{}-{}", &text[..8], &text[8..]));
        }
        factor.confirmed = true;
        factor.last_step = step;
        factor.recovery = codes.iter().map(|c| recovery_hash(c)).collect();
        self.store_factor(&scope, user, &factor, Action::UserMfaConfirm)
            .await?;
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// Removes a user's second factors — TOTP and passkeys — (`users:manage`, reason
    /// required): for a lost authenticator with no recovery codes left. The user signs
    /// in with the password alone until they enrol again.
    pub async fn totp_reset(
        &self,
        principal: &Principal,
        slug: &Slug,
        user: UserId,
        reason: String,
    ) -> Result<(), PlatformError> {
        crate::audit::entry::validate_reason(Action::UserMfaReset, Some(&reason))?;
        // Not one's own: removing your own factor goes through your account, where
        // adding a new one needs your password again.
        if matches!(principal, Principal::User(u) if u.user() == user) {
            return Err(PlatformError::Forbidden(
                "an administrator cannot reset their own second factor; another administrator can"
                    .into(),
            ));
        }
        let (_, scope) = self
            .tenant_access(
                principal,
                slug,
                crate::access::rbac::Permission::UsersManage,
                None,
            )
            .await?;
        let scope = scope.writable()?;
        let _guard = self
            .mfa_lock
            .lock(format!("{}/{user}", scope.tenant()))
            .await;
        if self.store.user(&scope, user).await?.is_none() {
            return Err(PlatformError::NotFound("user"));
        }
        let totp = self.factor(&scope, user).await?;
        let has_passkeys = !self.passkeys(&scope, user).await?.is_empty();
        if totp.is_none() && !has_passkeys {
            return Err(PlatformError::NotFound("second factor"));
        }
        if let Some((factor, _)) = totp {
            let mut secret = vec![0u8; 20];
            aws_lc_rs::rand::fill(&mut secret)
                .map_err(|_| PlatformError::internal("system RNG failed"))?;
            let cleared = Factor {
                secret: STANDARD.encode(&secret),
                confirmed: false,
                last_step: factor.last_step,
                recovery: vec![],
            };
            let json = serde_json::to_vec(&cleared).map_err(PlatformError::internal_from)?;
            self.objects
                .put_value_because(
                    &scope,
                    KIND,
                    &user.to_string(),
                    &json,
                    Action::UserMfaReset,
                    Some(reason.clone()),
                )
                .await?;
        }
        if has_passkeys {
            self.clear_passkeys(&scope, user, reason).await?;
        }
        Ok(())
    }

    /// At sign-in, after the password: whether the user has a confirmed factor and,
    /// if so, whether `offered` satisfies it (the code's step, or the recovery code, is
    /// then spent).
    pub(super) async fn check_second_factor(
        &self,
        scope: &TenantScope,
        user: UserId,
        offered: &SecondFactor,
        purpose: &super::passkeys::Purpose,
    ) -> Result<FactorCheck, PlatformError> {
        let _guard = self
            .mfa_lock
            .lock(format!("{}/{user}", scope.tenant()))
            .await;
        let has_passkey = !self.passkeys(scope, user).await?.is_empty();
        if let Some((challenge, assertion)) = &offered.passkey {
            return Ok(
                if has_passkey
                    && self
                        .check_passkey(scope, user, challenge, assertion, purpose)
                        .await?
                {
                    FactorCheck::Verified
                } else {
                    FactorCheck::Failed
                },
            );
        }
        let totp = self
            .factor_at(scope, user)
            .await?
            .filter(|(_, f, _)| f.confirmed);
        let Some((read, mut factor, secret)) = totp else {
            return Ok(if has_passkey {
                FactorCheck::Failed
            } else {
                FactorCheck::NotEnrolled
            });
        };
        let now = self.clock.now().unix_timestamp();
        if let Some(code) = &offered.totp
            && let Some(step) = totp::verify(&secret, code.expose(), now, factor.last_step)
        {
            factor.last_step = step;
        } else if let Some(code) = &offered.recovery_code
            && let Some(i) = factor
                .recovery
                .iter()
                .position(|h| *h == recovery_hash(code.expose()))
        {
            factor.recovery.remove(i);
        } else {
            return Ok(FactorCheck::Failed);
        }
        Ok(
            if self.record_factor_use(scope, user, &factor, read).await? {
                FactorCheck::Verified
            } else {
                FactorCheck::Failed
            },
        )
    }

    /// Whether the tenant's policy requires a second factor of a user with `roles`.
    pub(super) async fn mfa_required(
        &self,
        scope: &TenantScope,
        roles: &[Role],
    ) -> Result<bool, PlatformError> {
        let policy = self.read_mfa_policy(scope).await?;
        Ok(policy.all || roles.iter().any(|r| policy.roles.contains(r)))
    }

    /// [`Platform::mfa_required`] on the server's own authority, with the policy read at
    /// most every few seconds per tenant (it is consulted on every request of a
    /// session opened without a factor; setting it here takes effect at once).
    pub(super) async fn mfa_required_now(
        &self,
        tenant: &crate::tenant::Tenant,
        roles: &[Role],
    ) -> Result<bool, PlatformError> {
        let cached = self
            .mfa_policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant.id)
            .filter(|(at, _)| at.elapsed() < POLICY_TTL)
            .map(|(_, p)| p.clone());
        let policy = match cached {
            Some(p) => p,
            None => {
                let scope =
                    crate::access::provisioning_scope(&crate::access::system_scope(), tenant);
                let p = self.read_mfa_policy(&scope).await?;
                self.mfa_policies
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tenant.id, (std::time::Instant::now(), p.clone()));
                p
            }
        };
        Ok(policy.all || roles.iter().any(|r| policy.roles.contains(r)))
    }

    async fn read_mfa_policy(&self, scope: &TenantScope) -> Result<MfaPolicy, PlatformError> {
        let Some((_, bytes)) = self.objects.value(scope, POLICY_KIND, POLICY_ID).await? else {
            return Ok(MfaPolicy::default());
        };
        let names: Vec<String> = serde_json::from_slice(bytes.expose())
            .map_err(|e| PlatformError::internal(format!("MFA policy unreadable: {e}")))?;
        MfaPolicy::from_names(&names)
            .map_err(|n| PlatformError::internal(format!("MFA policy names {n:?}")))
    }

    /// The tenant's MFA policy: which roles must have a second factor (`*` = everyone).
    pub async fn mfa_policy(
        &self,
        principal: &Principal,
        slug: &Slug,
    ) -> Result<Vec<String>, PlatformError> {
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        Ok(self.read_mfa_policy(&scope).await?.names())
    }

    /// Sets which roles must have a second factor (`users:manage`); `["*"]` means
    /// everyone, `[]` nobody. Users it newly covers who have no factor get sessions
    /// that can only enrol one; sessions already open without a factor are restricted at
    /// their next request.
    pub async fn set_mfa_policy(
        &self,
        principal: &Principal,
        slug: &Slug,
        names: &[String],
    ) -> Result<Vec<String>, PlatformError> {
        if names.len() > Role::ALL.len() + 1 {
            return Err(PlatformError::Invalid {
                field: Some("required_for"),
                message: format!("at most {} entries: the roles, or *", Role::ALL.len() + 1),
            });
        }
        let policy = MfaPolicy::from_names(names).map_err(|n| PlatformError::Invalid {
            field: Some("required_for"),
            message: format!(
                "unknown role {n:?}: use admin, preparer, reviewer, viewer, auditor or *"
            ),
        })?;
        let (_, scope) = self
            .tenant_access(principal, slug, Permission::UsersManage, None)
            .await?;
        let scope = scope.writable()?;
        let json = serde_json::to_vec(&policy.names()).map_err(PlatformError::internal_from)?;
        self.objects
            .put_value(
                &scope,
                POLICY_KIND,
                POLICY_ID,
                &json,
                Action::TenantPolicySet,
            )
            .await?;
        self.mfa_policies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&scope.tenant());
        Ok(policy.names())
    }
}

/// Kind and id of the sealed MFA policy value.
const POLICY_KIND: Kind = Kind::TenantPolicy;
const POLICY_ID: &str = "mfa";

/// How long a tenant's MFA policy is reused when checking sessions.
const POLICY_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Which users must have a second factor.
#[derive(Debug, Default, Clone)]
pub(super) struct MfaPolicy {
    all: bool,
    roles: Vec<Role>,
}

impl MfaPolicy {
    fn from_names(names: &[String]) -> Result<Self, String> {
        let mut p = Self::default();
        for n in names.iter().take(Role::ALL.len() + 1) {
            if n == "*" {
                p.all = true;
            } else {
                let r = Role::parse(n).ok_or_else(|| n.clone())?;
                if !p.roles.contains(&r) {
                    p.roles.push(r);
                }
            }
        }
        Ok(p)
    }

    fn names(&self) -> Vec<String> {
        if self.all {
            return vec!["*".into()];
        }
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

/// The outcome of the second-factor step of a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FactorCheck {
    /// The user has no confirmed factor.
    NotEnrolled,
    /// The offered factor was right (and is now spent).
    Verified,
    /// The user has a factor and what was offered does not satisfy it.
    Failed,
}
