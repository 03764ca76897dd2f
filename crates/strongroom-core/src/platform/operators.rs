//! Platform operators on the facade: creating, listing and disabling them, their
//! sign-in (password, then a TOTP code once enrolled — required by
//! `operators.require_totp`), the per-request check of their tokens, token-signing
//! key rotation and revocation, and the platform's own audit trail, in which every one
//! of these is recorded.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{MAX_PAGE, Platform, PlatformError, signing_key_context};
use crate::access::{self, PlatformAction, PlatformScope, Principal};
use crate::audit::entry::{Action, NewEntry, Target, validate_reason};
use crate::identity::operator::{Operator, OperatorId};
use crate::identity::token::{IssuedToken, OPERATOR_AUDIENCE, SigningKey};
use crate::identity::totp::{self, OneTimeCode};
use crate::identity::{Email, IdentityError, password};
use crate::secret::{SecretBytes, SecretString};
use crate::store::{AuditEvent, StoredSigningKey};

/// An operator's TOTP factor as stored (JSON, wrapped by the root provider).
#[derive(Serialize, Deserialize)]
struct OperatorFactor {
    /// The TOTP secret, base64.
    secret: String,
    /// Confirmed with a valid code: sign-in now requires it.
    confirmed: bool,
    /// Last step accepted (replay protection).
    last_step: i64,
}

/// Context an operator's factor is wrapped under.
fn factor_context(id: OperatorId) -> Vec<u8> {
    format!("operator-mfa:{id}").into_bytes()
}

fn operator_target(id: OperatorId) -> Target {
    Target::of("operator", id.to_string())
}

impl Platform {
    /// The platform-trail event of `action` on `target` by the scope's actor.
    pub(super) async fn platform_event(
        &self,
        scope: &PlatformScope,
        action: Action,
        target: Target,
        reason: Option<String>,
    ) -> Result<AuditEvent, PlatformError> {
        let log = access::platform_log(scope);
        let entry = NewEntry::by(&log, action, target, reason);
        Ok(self.recorder.event(&log, entry).await?)
    }

    /// Creates a platform operator (audited in the platform trail).
    pub async fn create_operator(
        &self,
        principal: &Principal,
        email: Email,
        password: &SecretString,
    ) -> Result<Operator, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageOperators)?;
        password::check_policy(password, &[email.as_str()])?;
        let hash = self.passwords.hash(password).await?;
        let operator = Operator {
            id: OperatorId::generate(),
            email,
            created_at: self.clock.now(),
            disabled_at: None,
        };
        let event = self
            .platform_event(
                &scope,
                Action::OperatorCreate,
                operator_target(operator.id),
                None,
            )
            .await?;
        self.store
            .insert_operator(&scope, &operator, &hash, &event)
            .await?;
        tracing::info!(operator = %operator.id, actor = %principal.label(), "operator created");
        Ok(operator)
    }

    /// Every operator, in e-mail order.
    pub async fn operators(&self, principal: &Principal) -> Result<Vec<Operator>, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageOperators)?;
        Ok(self.store.operators(&scope, MAX_PAGE * 10).await?)
    }

    /// Disables an operator (reason required): their tokens stop working at their
    /// next request, and they cannot sign in. The account is kept: the trails name it.
    pub async fn disable_operator(
        &self,
        principal: &Principal,
        email: &Email,
        reason: String,
    ) -> Result<Operator, PlatformError> {
        validate_reason(Action::OperatorDisable, Some(&reason))?;
        let scope = access::authorize_platform(principal, PlatformAction::ManageOperators)?;
        let op = self
            .store
            .operator_credentials(email)
            .await?
            .ok_or(PlatformError::NotFound("operator"))?
            .operator;
        let event = self
            .platform_event(
                &scope,
                Action::OperatorDisable,
                operator_target(op.id),
                Some(reason),
            )
            .await?;
        if !self.store.disable_operator(&scope, op.id, &event).await? {
            return Err(PlatformError::Conflict(
                "the operator is already disabled".into(),
            ));
        }
        tracing::warn!(operator = %op.id, actor = %principal.label(), "operator disabled");
        Ok(Operator {
            disabled_at: Some(event.at),
            ..op
        })
    }

    /// Checks an operator's e-mail, password and (once enrolled) TOTP code, from
    /// `client`, and issues an access token. Throttled like tenant users' sign-ins —
    /// the attempt reserved before the password is checked, second factors counted per
    /// account — and recorded in the platform trail, failures included.
    pub async fn operator_login(
        &self,
        email: &Email,
        password: &SecretString,
        totp_code: Option<&OneTimeCode>,
        client: IpAddr,
    ) -> Result<IssuedToken, PlatformError> {
        // `@` cannot occur in a tenant slug: no tenant user's counters are an operator's.
        let account = format!("@operator/{}", email.as_str());
        let attempt = self
            .throttle
            .begin(&account, client)
            .map_err(super::users::too_many)?;
        let creds = self.store.operator_credentials(email).await?;
        let verified = match &creds {
            Some(c) => self.passwords.verify(password, &c.password_hash).await?,
            None => {
                self.passwords.verify_dummy(password).await?;
                false
            }
        };
        let known = creds.as_ref().map(|c| c.operator.id);
        let Some(c) = creds.filter(|c| verified && c.operator.disabled_at.is_none()) else {
            attempt.failed();
            self.operator_login_failed(known).await?;
            return Err(IdentityError::InvalidCredentials.into());
        };
        if let Err(e) = self
            .operator_second_factor(&c.operator, email, totp_code, &account)
            .await
        {
            attempt.failed();
            self.operator_login_failed(Some(c.operator.id)).await?;
            return Err(e);
        }
        attempt.succeeded();
        let scope = access::authorize_platform(
            &access::operator(c.operator.id),
            PlatformAction::ReadTenants,
        )?;
        let event = self
            .platform_event(
                &scope,
                Action::OperatorLogin,
                operator_target(c.operator.id),
                None,
            )
            .await?;
        self.store
            .append_audit(&access::platform_log(&scope), &event)
            .await?;
        tracing::info!(operator = %c.operator.id, "operator signed in");
        let subject = format!("operator:{}", c.operator.id);
        Ok(self
            .tokens()
            .issue(OPERATOR_AUDIENCE, &subject, self.operator_ttl_secs))
    }

    /// Records a failed operator sign-in in the platform trail (actor `anonymous`).
    async fn operator_login_failed(&self, who: Option<OperatorId>) -> Result<(), PlatformError> {
        let log = access::platform_log_anonymous(&access::system_scope());
        let target = who.map_or_else(|| Target::of("operator", "unknown"), operator_target);
        let entry = NewEntry::by(&log, Action::OperatorLoginFailed, target, None);
        self.recorder.record(&log, entry).await?;
        Ok(())
    }

    /// The TOTP step of an operator's sign-in: required once enrolled, and for every
    /// operator when `operators.require_totp` is set. The factor is read, checked and
    /// its last step stored under the platform's second-factor lock, so two racing
    /// sign-ins cannot both spend one code.
    async fn operator_second_factor(
        &self,
        op: &Operator,
        email: &Email,
        code: Option<&OneTimeCode>,
        account: &str,
    ) -> Result<(), PlatformError> {
        let _guard = self
            .mfa_lock
            .lock(format!("@operator/{}", email.as_str().to_lowercase()))
            .await;
        let wrapped = self
            .store
            .operator_credentials(email)
            .await?
            .and_then(|c| c.mfa);
        let factor = match wrapped.as_deref() {
            Some(w) => Some(self.open_operator_factor(op.id, w).await?),
            None => None,
        };
        let Some((mut factor, secret)) = factor.filter(|(f, _)| f.confirmed) else {
            if self.require_operator_totp {
                return Err(PlatformError::Forbidden(
                    "operators need a second factor here: enrol with `strongroom operator enrol-totp`".into(),
                ));
            }
            return Ok(());
        };
        let attempt = self
            .throttle
            .begin_second_factor(account)
            .map_err(super::users::too_many)?;
        let now = self.clock.now().unix_timestamp();
        let step = code.and_then(|c| totp::verify(&secret, c.expose(), now, factor.last_step));
        let Some(step) = step else {
            attempt.failed();
            return Err(PlatformError::SecondFactorRequired);
        };
        attempt.succeeded();
        factor.last_step = step;
        let old = wrapped.as_deref().unwrap_or_default();
        let new = self.wrap_operator_factor(op.id, &factor).await?;
        let scope = access::system_scope();
        // Spent only if nobody spent it meanwhile: the lock above covers this node,
        // the compare-and-swap every node.
        if self
            .store
            .replace_operator_mfa(&scope, op.id, old, &new)
            .await?
        {
            Ok(())
        } else {
            Err(PlatformError::SecondFactorRequired)
        }
    }

    async fn open_operator_factor(
        &self,
        id: OperatorId,
        wrapped: &[u8],
    ) -> Result<(OperatorFactor, SecretBytes), PlatformError> {
        let json = self
            .providers
            .root()
            .unwrap(wrapped, &factor_context(id))
            .await?;
        let factor: OperatorFactor =
            serde_json::from_slice(json.expose()).map_err(PlatformError::internal_from)?;
        let secret = STANDARD
            .decode(&factor.secret)
            .map_err(|_| PlatformError::internal("operator factor unreadable"))?;
        Ok((factor, SecretBytes::new(secret)))
    }

    async fn wrap_operator_factor(
        &self,
        id: OperatorId,
        factor: &OperatorFactor,
    ) -> Result<Vec<u8>, PlatformError> {
        let json =
            SecretBytes::new(serde_json::to_vec(factor).map_err(PlatformError::internal_from)?);
        Ok(self
            .providers
            .root()
            .wrap(&json, &factor_context(id))
            .await?)
    }

    async fn store_operator_factor(
        &self,
        id: OperatorId,
        factor: &OperatorFactor,
        audit: Option<&AuditEvent>,
    ) -> Result<(), PlatformError> {
        let wrapped = self.wrap_operator_factor(id, factor).await?;
        let scope = access::system_scope();
        self.store
            .set_operator_mfa(&scope, id, Some(&wrapped), audit)
            .await?;
        Ok(())
    }

    /// Starts TOTP enrolment for an operator (the local administrator, at the server):
    /// returns the `otpauth://` URI. Confirm with [`Platform::operator_confirm_totp`].
    /// A confirmed factor is replaced only with `reset` (why: a lost authenticator),
    /// recorded in the platform trail; until the new one is confirmed the operator
    /// signs in with the password alone (unless `operators.require_totp`).
    pub async fn operator_enrol_totp(
        &self,
        principal: &Principal,
        email: &Email,
        reset: Option<String>,
    ) -> Result<String, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageOperators)?;
        if let Some(why) = &reset {
            validate_reason(Action::OperatorDisable, Some(why))?;
        }
        let _guard = self
            .mfa_lock
            .lock(format!("@operator/{}", email.as_str().to_lowercase()))
            .await;
        let creds = self
            .store
            .operator_credentials(email)
            .await?
            .ok_or(PlatformError::NotFound("operator"))?;
        let confirmed = match creds.mfa.as_deref() {
            Some(w) => {
                self.open_operator_factor(creds.operator.id, w)
                    .await?
                    .0
                    .confirmed
            }
            None => false,
        };
        if confirmed && reset.is_none() {
            return Err(PlatformError::Conflict(
                "the operator already has a confirmed TOTP factor; replace it with --reset --reason".into(),
            ));
        }
        let op = creds.operator;
        let mut secret = vec![0u8; 20];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| PlatformError::internal("system RNG failed"))?;
        let factor = OperatorFactor {
            secret: STANDARD.encode(&secret),
            confirmed: false,
            last_step: 0,
        };
        let event = self
            .platform_event(
                &scope,
                Action::OperatorMfa,
                operator_target(op.id),
                Some(reset.map_or_else(|| "enrol".to_owned(), |why| format!("reset: {why}"))),
            )
            .await?;
        self.store_operator_factor(op.id, &factor, Some(&event))
            .await?;
        Ok(totp::otpauth_uri(
            "Strongroom operators",
            op.email.as_str(),
            &secret,
        ))
    }

    /// Confirms an operator's TOTP enrolment with a current code.
    pub async fn operator_confirm_totp(
        &self,
        principal: &Principal,
        email: &Email,
        code: &OneTimeCode,
    ) -> Result<(), PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageOperators)?;
        let _guard = self
            .mfa_lock
            .lock(format!("@operator/{}", email.as_str().to_lowercase()))
            .await;
        let creds = self
            .store
            .operator_credentials(email)
            .await?
            .ok_or(PlatformError::NotFound("operator"))?;
        let wrapped = creds
            .mfa
            .ok_or_else(|| PlatformError::Conflict("start enrolment first".into()))?;
        let (mut factor, secret) = self
            .open_operator_factor(creds.operator.id, &wrapped)
            .await?;
        let now = self.clock.now().unix_timestamp();
        let step = totp::verify(&secret, code.expose(), now, factor.last_step).ok_or(
            PlatformError::Invalid {
                field: Some("code"),
                message: "the code is not valid now".into(),
            },
        )?;
        factor.confirmed = true;
        factor.last_step = step;
        let event = self
            .platform_event(
                &scope,
                Action::OperatorMfa,
                operator_target(creds.operator.id),
                Some("confirm".into()),
            )
            .await?;
        self.store_operator_factor(creds.operator.id, &factor, Some(&event))
            .await
    }

    /// Turns a bearer token into an operator principal: a valid operator token whose
    /// operator still exists and is not disabled (checked on every request, so
    /// disabling takes effect at once).
    pub async fn authenticate_operator(&self, bearer: &str) -> Result<Principal, PlatformError> {
        let claims = self.tokens().verify(bearer, OPERATOR_AUDIENCE)?;
        self.operator_principal(&claims).await
    }

    /// The operator of verified operator-token claims, if they still exist and are not
    /// disabled.
    pub(super) async fn operator_principal(
        &self,
        claims: &crate::identity::token::Claims,
    ) -> Result<Principal, PlatformError> {
        let principal = super::operator_from_claims(claims)?;
        let Principal::Operator(op) = &principal else {
            return Err(PlatformError::Unauthenticated);
        };
        match self.store.operator(op.id()).await? {
            Some(o) if o.disabled_at.is_none() => Ok(principal),
            _ => Err(PlatformError::Unauthenticated),
        }
    }

    /// Makes a new signing key the active one (audited in the platform trail). Earlier
    /// keys keep verifying the tokens they signed (overlap), and stay listed in the
    /// JWKS. Returns the new key id.
    pub async fn rotate_signing_key(&self, principal: &Principal) -> Result<String, PlatformError> {
        let scope = access::authorize_platform(principal, PlatformAction::ManageKeys)?;
        let root = self.providers.root();
        let (key, pkcs8) = SigningKey::generate().map_err(PlatformError::internal_from)?;
        let record = StoredSigningKey {
            kid: key.kid().to_owned(),
            public_key: key.public_key(),
            wrapped_private_key: root.wrap(&pkcs8, &signing_key_context(key.kid())).await?,
            created_at: self.clock.now(),
            revoked_at: None,
        };
        let target = Target::of("signing-key", record.kid.clone());
        let event = self
            .platform_event(&scope, Action::SigningKeyRotate, target, None)
            .await?;
        self.store
            .insert_signing_key(&scope, &record, Some(&event))
            .await?;
        self.prune_signing_keys().await?;
        self.reload_signing_keys().await?;
        tracing::warn!(kid = %record.kid, actor = %principal.label(), "token signing key rotated");
        Ok(record.kid)
    }

    /// Revokes a signing key (reason required): tokens it signed stop verifying at the
    /// next reload of every process (`tokens.reload_secs`), and it leaves the JWKS. If
    /// it was the active key, the newest remaining one signs. The last live key cannot
    /// be revoked: rotate first, so that its successor is made (and audited) by you.
    pub async fn revoke_signing_key(
        &self,
        principal: &Principal,
        kid: &str,
        reason: String,
    ) -> Result<(), PlatformError> {
        validate_reason(Action::SigningKeyRevoke, Some(&reason))?;
        let scope = access::authorize_platform(principal, PlatformAction::ManageKeys)?;
        if kid.len() > 128 {
            return Err(PlatformError::NotFound("signing key"));
        }
        let live: Vec<String> = self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| k.kid)
            .collect();
        if live.len() == 1 && live[0] == kid {
            return Err(PlatformError::Conflict(
                "this is the only live signing key: rotate first (keys rotate-signing-key), then revoke it".into(),
            ));
        }
        let target = Target::of("signing-key", kid);
        let event = self
            .platform_event(&scope, Action::SigningKeyRevoke, target, Some(reason))
            .await?;
        if !self.store.revoke_signing_key(&scope, kid, &event).await? {
            return Err(PlatformError::NotFound("signing key"));
        }
        self.reload_signing_keys().await?;
        tracing::warn!(kid, actor = %principal.label(), "token signing key revoked");
        Ok(())
    }
}
