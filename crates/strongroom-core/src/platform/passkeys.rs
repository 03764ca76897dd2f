//! Passkeys (WebAuthn) as a second factor, with webauthn-rs.
//!
//! Registration and sign-in are two-step ceremonies: the server issues a challenge and
//! keeps the ceremony state in memory (bounded in count, five minutes each), the
//! authenticator answers, the server finishes. A user's passkeys are one sealed value
//! (kind `user-passkeys`) under the tenant's data key; adding one and every use (its
//! signature counter moves) are sealed writes with their audit entries.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use super::{Platform, PlatformError};
use crate::access::{Principal, TenantScope, WritableScope};
use crate::audit::entry::Action;
use crate::config::WebauthnConfig;
use crate::identity::user::UserId;
use crate::objects::Kind;
use crate::tenant::Slug;

/// Kind of the sealed passkey list.
const KIND: Kind = Kind::UserPasskeys;
/// How long a ceremony may take.
const CEREMONY: Duration = Duration::from_secs(300);
/// Most ceremonies in flight (beyond: the oldest are dropped, one at a time).
const MAX_PENDING: usize = 10_000;
/// Most ceremonies in flight per user (beyond: that user's oldest is dropped), so one
/// account cannot push everyone else's ceremonies out.
const MAX_PENDING_PER_USER: usize = 4;
/// Most ceremonies in flight per tenant (beyond: that tenant's oldest is dropped), so
/// one tenant's many users cannot push other tenants' ceremonies out.
const MAX_PENDING_PER_TENANT: usize = 1_000;
/// Most passkeys per user.
const MAX_PASSKEYS: usize = 10;

/// A ceremony in progress.
enum Ceremony {
    Register(TenantUserKey, PasskeyRegistration),
    SignIn(TenantUserKey, PasskeyAuthentication),
    /// An electronic signature's re-authentication: good only for this session's
    /// signature on this record version (never for a sign-in, and a sign-in
    /// challenge is never good for a signature).
    Sign(TenantUserKey, Purpose, PasskeyAuthentication),
}

impl Ceremony {
    fn whose(&self) -> TenantUserKey {
        match self {
            Self::Register(k, _) | Self::SignIn(k, _) | Self::Sign(k, _, _) => *k,
        }
    }
}

/// What a passkey assertion is for: a sign-in, or one signature (session, record,
/// version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Purpose {
    /// Signing in.
    SignIn,
    /// Signing version `version` of `record` in `session`.
    Sign {
        /// The signer's session.
        session: String,
        /// The record.
        record: String,
        /// The version.
        version: u64,
    },
}

/// Whose ceremony (tenant id, user id).
type TenantUserKey = (crate::tenant::TenantId, UserId);

/// Ceremonies in flight, by challenge id.
#[derive(Default)]
pub(super) struct Ceremonies(std::sync::Mutex<HashMap<String, (Instant, Ceremony)>>);

impl Ceremonies {
    fn put(&self, c: Ceremony) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (at, _)| at.elapsed() < CEREMONY);
        let who = c.whose();
        let mine = map.iter().filter(|(_, (_, x))| x.whose() == who).count();
        if mine >= MAX_PENDING_PER_USER {
            Self::drop_oldest(&mut map, |x| x.whose() == who);
        }
        let ours = map.values().filter(|(_, x)| x.whose().0 == who.0).count();
        if ours >= MAX_PENDING_PER_TENANT {
            Self::drop_oldest(&mut map, |x| x.whose().0 == who.0);
        }
        if map.len() >= MAX_PENDING {
            Self::drop_oldest(&mut map, |_| true);
        }
        map.insert(id.clone(), (Instant::now(), c));
        id
    }

    /// Removes the oldest ceremony that `which` selects.
    fn drop_oldest(
        map: &mut HashMap<String, (Instant, Ceremony)>,
        which: impl Fn(&Ceremony) -> bool,
    ) {
        let oldest = map
            .iter()
            .filter(|(_, (_, c))| which(c))
            .min_by_key(|(_, (at, _))| *at)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            map.remove(&id);
        }
    }

    fn take(&self, id: &str) -> Option<Ceremony> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(id)
            .filter(|(at, _)| at.elapsed() < CEREMONY)
            .map(|(_, c)| c)
    }
}

/// The relying party from configuration.
pub(super) fn relying_party(config: &WebauthnConfig) -> Result<Webauthn, PlatformError> {
    let bad = |e: &dyn std::fmt::Display| PlatformError::Invalid {
        field: Some("webauthn"),
        message: format!("webauthn.rp_id / webauthn.origin: {e}"),
    };
    let origin = Url::parse(&config.origin).map_err(|e| bad(&e))?;
    WebauthnBuilder::new(&config.rp_id, &origin)
        .map_err(|e| bad(&e))?
        .rp_name("Strongroom")
        .build()
        .map_err(|e| bad(&e))
}

fn invalid(field: &'static str, message: &str) -> PlatformError {
    PlatformError::Invalid {
        field: Some(field),
        message: message.into(),
    }
}

impl Platform {
    pub(super) async fn passkeys(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> Result<Vec<Passkey>, PlatformError> {
        let Some((_, bytes)) = self.objects.value(scope, KIND, &user.to_string()).await? else {
            return Ok(vec![]);
        };
        serde_json::from_slice(bytes.expose())
            .map_err(|e| PlatformError::internal(format!("passkeys unreadable: {e}")))
    }

    /// Stores a registration (a data write: refused in a read-only tenant).
    async fn store_passkeys(
        &self,
        scope: &WritableScope,
        user: UserId,
        keys: &[Passkey],
    ) -> Result<(), PlatformError> {
        let json = serde_json::to_vec(keys).map_err(PlatformError::internal_from)?;
        self.objects
            .put_value(
                scope,
                KIND,
                &user.to_string(),
                &json,
                Action::UserPasskeyAdd,
            )
            .await?;
        Ok(())
    }

    /// Removes all of a user's passkeys (an administrator's reset), audited with the
    /// reason.
    pub(super) async fn clear_passkeys(
        &self,
        scope: &WritableScope,
        user: UserId,
        reason: String,
    ) -> Result<(), PlatformError> {
        self.objects
            .put_value_because(
                scope,
                KIND,
                &user.to_string(),
                b"[]",
                Action::UserMfaReset,
                Some(reason),
            )
            .await?;
        Ok(())
    }

    /// Starts registering a passkey for the caller: returns the challenge id and the
    /// `PublicKeyCredentialCreationOptions` for `navigator.credentials.create`.
    pub async fn passkey_register_start(
        &self,
        principal: &Principal,
        slug: &Slug,
        reauth: Option<&super::mfa::Reauth>,
    ) -> Result<(String, serde_json::Value), PlatformError> {
        let Principal::User(u) = principal else {
            return Err(PlatformError::Forbidden(
                "only a signed-in user registers a passkey".into(),
            ));
        };
        let me = u.user();
        let (tenant, scope) = self.own_scope(principal, slug).await?;
        if self.has_factor(&scope, me).await? {
            self.reauthenticate(&scope, &tenant, me, reauth).await?;
        }
        let existing = self.passkeys(&scope, me).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(PlatformError::Conflict(format!(
                "at most {MAX_PASSKEYS} passkeys"
            )));
        }
        let email = self
            .store
            .user(&scope, me)
            .await?
            .ok_or(PlatformError::NotFound("user"))?
            .email;
        let exclude = existing.iter().map(|k| k.cred_id().clone()).collect();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(me.as_uuid(), email.as_str(), email.as_str(), Some(exclude))
            .map_err(|e| PlatformError::internal(format!("webauthn: {e}")))?;
        let id = self
            .ceremonies
            .put(Ceremony::Register((tenant.id, me), state));
        let options = serde_json::to_value(options).map_err(PlatformError::internal_from)?;
        Ok((id, options))
    }

    /// Finishes registering a passkey with the authenticator's answer.
    pub async fn passkey_register_finish(
        &self,
        principal: &Principal,
        slug: &Slug,
        challenge_id: &str,
        credential: serde_json::Value,
    ) -> Result<(), PlatformError> {
        let Principal::User(u) = principal else {
            return Err(PlatformError::Forbidden(
                "only a signed-in user registers a passkey".into(),
            ));
        };
        let me = u.user();
        let (tenant, scope) = self.own_scope(principal, slug).await?;
        let scope = scope.writable()?;
        let credential: RegisterPublicKeyCredential = serde_json::from_value(credential)
            .map_err(|_| invalid("credential", "not a WebAuthn registration response"))?;
        let Some(Ceremony::Register(who, state)) = self.ceremonies.take(challenge_id) else {
            return Err(invalid("challenge_id", "unknown or expired challenge"));
        };
        if who != (tenant.id, me) {
            return Err(invalid("challenge_id", "unknown or expired challenge"));
        }
        let passkey = self
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|_| invalid("credential", "the registration did not verify"))?;
        let _guard = self.mfa_lock.lock(format!("{}/{me}", scope.tenant())).await;
        let mut keys = self.passkeys(&scope, me).await?;
        keys.push(passkey);
        self.store_passkeys(&scope, me, &keys).await
    }

    /// Sign-in step one with a passkey: the password is checked (throttled and audited
    /// like any sign-in), then a challenge for the user's passkeys is returned.
    pub async fn passkey_sign_in_challenge(
        &self,
        slug: &Slug,
        email: &crate::identity::Email,
        password: &crate::secret::SecretString,
        client: std::net::IpAddr,
    ) -> Result<(String, serde_json::Value), PlatformError> {
        let (tenant, user, _, attempt) = self.check_password(slug, email, password, client).await?;
        attempt.succeeded();
        // The password is proven: the user (with no session and no rights yet) reads
        // their own passkeys.
        let proven =
            crate::access::signed_in_user(tenant, user.id, String::new(), None, Default::default());
        let scope = crate::access::own_account(&proven)?;
        self.passkey_challenge_for(&scope, user.id, Purpose::SignIn)
            .await?
            .ok_or_else(|| PlatformError::Conflict("no passkey is registered".into()))
    }

    /// After the password is proven (sign-in step one), a WebAuthn challenge for the
    /// user's passkeys: the challenge id and `PublicKeyCredentialRequestOptions`.
    pub(super) async fn passkey_challenge_for(
        &self,
        scope: &TenantScope,
        user: UserId,
        purpose: Purpose,
    ) -> Result<Option<(String, serde_json::Value)>, PlatformError> {
        let keys = self.passkeys(scope, user).await?;
        if keys.is_empty() {
            return Ok(None);
        }
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| PlatformError::internal(format!("webauthn: {e}")))?;
        let who = (scope.tenant(), user);
        let id = self.ceremonies.put(match purpose {
            Purpose::SignIn => Ceremony::SignIn(who, state),
            sign @ Purpose::Sign { .. } => Ceremony::Sign(who, sign, state),
        });
        let options = serde_json::to_value(options).map_err(PlatformError::internal_from)?;
        Ok(Some((id, options)))
    }

    /// Checks a passkey assertion offered at sign-in; on success the credential's
    /// counter is stored (a cloned authenticator shows up as a counter going back).
    pub(super) async fn check_passkey(
        &self,
        scope: &TenantScope,
        user: UserId,
        challenge_id: &str,
        assertion: &serde_json::Value,
        purpose: &Purpose,
    ) -> Result<bool, PlatformError> {
        let Ok(assertion) = serde_json::from_value::<PublicKeyCredential>(assertion.clone()) else {
            return Ok(false);
        };
        // The challenge is spent whatever happens next; it must be one issued for
        // this purpose.
        let (who, state) = match (self.ceremonies.take(challenge_id), purpose) {
            (Some(Ceremony::SignIn(who, state)), Purpose::SignIn) => (who, state),
            (Some(Ceremony::Sign(who, issued, state)), wanted @ Purpose::Sign { .. })
                if issued == *wanted =>
            {
                (who, state)
            }
            _ => return Ok(false),
        };
        if who != (scope.tenant(), user) {
            return Ok(false);
        }
        let Ok(result) = self
            .webauthn
            .finish_passkey_authentication(&assertion, &state)
        else {
            return Ok(false);
        };
        let mut keys = self.passkeys(scope, user).await?;
        for k in &mut keys {
            k.update_credential(&result);
        }
        let json = serde_json::to_vec(&keys).map_err(PlatformError::internal_from)?;
        self.objects
            .put_state(scope, KIND, &user.to_string(), &json, Action::SessionMfa)
            .await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(rp: &Webauthn) -> PasskeyRegistration {
        let (_, state) = rp
            .start_passkey_registration(uuid::Uuid::new_v4(), "u", "u", None)
            .unwrap();
        state
    }

    /// One user starting ceremonies without end keeps at most four; everyone else's
    /// survive (before the cap, 10,000 starts from one user evicted every tenant's).
    #[test]
    fn one_user_cannot_evict_other_users_ceremonies() {
        let rp = relying_party(&WebauthnConfig::default()).unwrap();
        let c = Ceremonies::default();
        let tenant = crate::tenant::TenantId::generate();
        let (victim, attacker) = (UserId::generate(), UserId::generate());
        let kept = c.put(Ceremony::Register((tenant, victim), registration(&rp)));
        let mut mine = Vec::new();
        for _ in 0..50 {
            mine.push(c.put(Ceremony::Register((tenant, attacker), registration(&rp))));
        }
        let held = c.0.lock().unwrap().len();
        assert_eq!(held, 1 + MAX_PENDING_PER_USER);
        // The attacker's newest four are the ones kept, oldest evicted first.
        for id in &mine[..mine.len() - MAX_PENDING_PER_USER] {
            assert!(c.take(id).is_none());
        }
        for id in &mine[mine.len() - MAX_PENDING_PER_USER..] {
            assert!(c.take(id).is_some());
        }
        assert!(
            c.take(&kept).is_some(),
            "the other user's ceremony survived"
        );
        assert!(c.take(&kept).is_none(), "a ceremony is used once");
    }
}
