//! Audit entries: what happened, who did it, to what, and why — serialised canonically
//! so that the leaf hash (RFC 9162, over these exact bytes) can be recomputed by anyone.
//!
//! The serialisation is RFC 8785 (JSON Canonicalization Scheme) restricted to strings,
//! integers below 2^53, `null` and objects: keys sorted, no whitespace, minimal escapes.
//! Personal data (IP address, user agent) never appears in clear: it is sealed under a
//! per-subject key and only the sealed form is hashed, so erasing the subject's key
//! later breaks no proof. `docs/formats/audit.md` is the normative description.

use serde::Serialize;
use time::OffsetDateTime;

use super::merkle::Hash;
use crate::tenant::TenantId;

/// Format version written in every entry (`"v"`).
pub const ENTRY_VERSION: u32 = 1;
/// Longest reason accepted, in characters.
pub const MAX_REASON: usize = 2000;

/// The catalogue of audited actions. Names are stable: auditors filter on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A tenant was created (its first entry).
    TenantCreate,
    /// A tenant secret was stored or replaced.
    TenantSecretSet,
    /// A data key was rotated.
    KeyRotate,
    /// A sealed object (value or blob) was re-encrypted under the current data key.
    KeyReencrypt,
    /// An encrypted blob was stored.
    BlobPut,
    /// An imported (bcrypt) password hash was replaced with argon2id at sign-in.
    UserPasswordRehash,
    /// The key-encryption key was rotated (optionally to another provider).
    KeyKekRotate,
    /// The tenant's keys were destroyed.
    KeyShred,
    /// The audit trail was queried.
    AuditQuery,
    /// The audit trail was exported.
    AuditExport,
    /// A subject's personal-data key was destroyed (erasure).
    SubjectErase,
    /// A tenant user was created.
    UserCreate,
    /// A tenant user's status or roles changed.
    UserUpdate,
    /// A user signed in.
    SessionLogin,
    /// A sign-in failed (unknown e-mail, wrong password, disabled user).
    SessionLoginFailed,
    /// A user signed out.
    SessionLogout,
    /// A used refresh token was presented again; the session was revoked.
    SessionRefreshReuse,
    /// A user started TOTP enrolment (a new secret).
    UserMfaEnrol,
    /// A user confirmed TOTP enrolment (recovery codes issued).
    UserMfaConfirm,
    /// A second factor was accepted at sign-in (TOTP code or a recovery code).
    SessionMfa,
    /// An administrator removed a user's second factor (lost authenticator).
    UserMfaReset,
    /// A user registered a passkey.
    UserPasskeyAdd,
    /// A tenant user was deleted (with their sessions, grants and second factor).
    UserDelete,
    /// A tenant policy (e.g. which roles need a second factor) was set.
    TenantPolicySet,
    /// Someone was invited to become a tenant user (one-time, expiring token).
    UserInvite,
    /// An invitation was accepted: the user exists from now on.
    UserInviteAccept,
    /// An application was registered.
    ApplicationCreate,
    /// An application was enabled or disabled.
    ApplicationUpdate,
    /// An application obtained an access token.
    ApplicationToken,
    /// A tenant administrator granted a platform operator support access.
    SupportGrant,
    /// A support grant was revoked before it expired.
    SupportRevoke,
    /// An operator used a support grant (one entry per request).
    SupportUse,
    /// A support grant reached its expiry.
    SupportExpire,
    /// A platform operator was created (platform trail).
    OperatorCreate,
    /// A platform operator was disabled (platform trail).
    OperatorDisable,
    /// A platform operator signed in (platform trail).
    OperatorLogin,
    /// An operator sign-in failed (platform trail; actor `anonymous`).
    OperatorLoginFailed,
    /// An operator enrolled or confirmed a TOTP second factor (platform trail).
    OperatorMfa,
    /// A new token-signing key became active (platform trail).
    SigningKeyRotate,
    /// A token-signing key was revoked: its tokens stop verifying (platform trail).
    SigningKeyRevoke,
    /// A record type was defined, or changed (a new type version).
    RecordTypeDefine,
    /// A record was created (version 1, revision 1, a draft).
    RecordCreate,
    /// A draft was saved: a new revision of the version's content.
    RecordUpdate,
    /// An attachment was added to a draft (a new revision).
    RecordAttach,
    /// A draft was submitted for review: its content is frozen.
    RecordSubmit,
    /// A version in review was sent back to draft (reason required).
    RecordReject,
    /// An electronic signature was applied to a version (`after`: the signature's hash).
    RecordSign,
    /// A version became approved: its signature policy was complete.
    RecordApprove,
    /// An approved version was revised: version n+1 starts as a draft (reason required).
    RecordRevise,
    /// A record was retired (reason required).
    RecordRetire,
    /// A signature attempt failed re-authentication (counts toward the sign-in lockout).
    SignatureFailed,
    /// A user's printed name changed (`before`/`after`: hashes of the old and new name).
    UserNameSet,
    /// The tenant's blind-index key was created.
    IndexKeyCreate,
    /// The tenant's single sign-on settings changed (a provider added, replaced or
    /// removed; SSO required or not; break-glass users).
    SsoConfigure,
    /// An identity provider's subject was linked to a user at their first sign-in.
    SsoLink,
}

impl Action {
    /// Every action, for documentation and filters.
    pub const ALL: [Action; 55] = [
        Self::TenantCreate,
        Self::TenantSecretSet,
        Self::KeyRotate,
        Self::KeyReencrypt,
        Self::BlobPut,
        Self::UserPasswordRehash,
        Self::KeyKekRotate,
        Self::KeyShred,
        Self::AuditQuery,
        Self::AuditExport,
        Self::SubjectErase,
        Self::UserCreate,
        Self::UserUpdate,
        Self::SessionLogin,
        Self::SessionLoginFailed,
        Self::SessionLogout,
        Self::SessionRefreshReuse,
        Self::UserMfaEnrol,
        Self::UserMfaConfirm,
        Self::SessionMfa,
        Self::UserMfaReset,
        Self::UserPasskeyAdd,
        Self::UserDelete,
        Self::TenantPolicySet,
        Self::UserInvite,
        Self::UserInviteAccept,
        Self::ApplicationCreate,
        Self::ApplicationUpdate,
        Self::ApplicationToken,
        Self::SupportGrant,
        Self::SupportRevoke,
        Self::SupportUse,
        Self::SupportExpire,
        Self::OperatorCreate,
        Self::OperatorDisable,
        Self::OperatorLogin,
        Self::OperatorLoginFailed,
        Self::OperatorMfa,
        Self::SigningKeyRotate,
        Self::SigningKeyRevoke,
        Self::RecordTypeDefine,
        Self::RecordCreate,
        Self::RecordUpdate,
        Self::RecordAttach,
        Self::RecordSubmit,
        Self::RecordReject,
        Self::RecordSign,
        Self::RecordApprove,
        Self::RecordRevise,
        Self::RecordRetire,
        Self::SignatureFailed,
        Self::UserNameSet,
        Self::IndexKeyCreate,
        Self::SsoConfigure,
        Self::SsoLink,
    ];

    /// The stable name, e.g. `key.rotate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenantCreate => "tenant.create",
            Self::TenantSecretSet => "tenant.secret.set",
            Self::KeyRotate => "key.rotate",
            Self::KeyKekRotate => "key.kek_rotate",
            Self::KeyShred => "key.shred",
            Self::AuditQuery => "audit.query",
            Self::AuditExport => "audit.export",
            Self::SubjectErase => "audit.subject_erase",
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::SessionLogin => "session.login",
            Self::SessionLoginFailed => "session.login_failed",
            Self::SessionLogout => "session.logout",
            Self::SessionRefreshReuse => "session.refresh_reuse",
            Self::UserMfaEnrol => "user.mfa_enrol",
            Self::UserMfaConfirm => "user.mfa_confirm",
            Self::SessionMfa => "session.mfa",
            Self::UserMfaReset => "user.mfa_reset",
            Self::UserPasskeyAdd => "user.passkey_add",
            Self::UserDelete => "user.delete",
            Self::TenantPolicySet => "tenant.policy_set",
            Self::UserInvite => "user.invite",
            Self::UserInviteAccept => "user.invite_accept",
            Self::ApplicationCreate => "application.create",
            Self::ApplicationUpdate => "application.update",
            Self::ApplicationToken => "application.token",
            Self::SupportGrant => "support.grant",
            Self::SupportRevoke => "support.revoke",
            Self::SupportUse => "support.use",
            Self::SupportExpire => "support.expire",
            Self::OperatorCreate => "operator.create",
            Self::OperatorDisable => "operator.disable",
            Self::OperatorLogin => "operator.login",
            Self::OperatorLoginFailed => "operator.login_failed",
            Self::OperatorMfa => "operator.mfa",
            Self::SigningKeyRotate => "key.signing_rotate",
            Self::SigningKeyRevoke => "key.signing_revoke",
            Self::KeyReencrypt => "key.reencrypt",
            Self::BlobPut => "blob.put",
            Self::UserPasswordRehash => "user.password_rehash",
            Self::RecordTypeDefine => "record_type.define",
            Self::RecordCreate => "record.create",
            Self::RecordUpdate => "record.update",
            Self::RecordAttach => "record.attach",
            Self::RecordSubmit => "record.submit",
            Self::RecordReject => "record.reject",
            Self::RecordSign => "record.sign",
            Self::RecordApprove => "record.approve",
            Self::RecordRevise => "record.revise",
            Self::RecordRetire => "record.retire",
            Self::SignatureFailed => "signature.failed",
            Self::UserNameSet => "user.name_set",
            Self::IndexKeyCreate => "key.index_create",
            Self::SsoConfigure => "sso.configure",
            Self::SsoLink => "sso.link",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the actor must give a reason (irreversible or key-changing actions).
    pub fn requires_reason(self) -> bool {
        matches!(
            self,
            Self::KeyShred
                | Self::KeyKekRotate
                | Self::SubjectErase
                | Self::UserMfaReset
                | Self::UserDelete
                | Self::SupportGrant
                | Self::SupportRevoke
                | Self::OperatorDisable
                | Self::SigningKeyRevoke
                | Self::RecordReject
                | Self::RecordRevise
                | Self::RecordRetire
        )
    }
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `id` of the user, application or operator; `null` for the system.
    pub id: Option<String>,
    /// `user`, `application`, `operator`, `local-admin` or `system`.
    pub kind: &'static str,
}

impl Actor {
    /// The actor of an authorized principal.
    pub fn of(principal: &crate::access::Principal) -> Self {
        use crate::access::Principal;
        match principal {
            Principal::Operator(o) => Self {
                id: Some(o.id().to_string()),
                kind: "operator",
            },
            Principal::LocalAdmin(_) => Self {
                id: None,
                kind: "local-admin",
            },
            Principal::System(_) => Self {
                id: None,
                kind: "system",
            },
            Principal::User(u) => Self {
                id: Some(u.user().to_string()),
                kind: "user",
            },
            Principal::Anonymous => Self {
                id: None,
                kind: "anonymous",
            },
            Principal::Application(a) => Self {
                id: Some(a.app().to_string()),
                kind: "application",
            },
        }
    }
}

/// What was acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Object id.
    pub id: String,
    /// Object kind, e.g. `tenant-secret`.
    pub kind: String,
    /// Object version after the action, when the object is versioned.
    pub version: Option<u64>,
}

impl Target {
    /// The unversioned object `id` of `kind`.
    pub fn of(kind: &str, id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: kind.to_owned(),
            version: None,
        }
    }

    /// The same object at `version`.
    pub fn at_version(self, version: u64) -> Self {
        Self {
            version: Some(version),
            ..self
        }
    }
}

/// Personal data of the entry, sealed under the subject's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealedPersonal {
    /// Sealed JSON `{"ip":…,"user_agent":…}` (docs/formats/encryption.md §3),
    /// base64 (standard, padded).
    pub sealed: String,
    /// The subject key's id; destroying that key erases the data.
    pub subject: String,
}

/// One audit entry. Field order is the canonical (sorted) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Action name from the catalogue.
    pub action: &'static str,
    /// Who acted.
    pub actor: Actor,
    /// SHA-256 (hex) of the object after the action, if any.
    pub after: Option<String>,
    /// SHA-256 (hex) of the object before the action, if any.
    pub before: Option<String>,
    /// Personal data, sealed.
    pub personal: Option<SealedPersonal>,
    /// Why, in the actor's words (required by some actions).
    pub reason: Option<String>,
    /// Position in the tenant's log, from 0.
    pub seq: u64,
    /// Session id of the actor, if any.
    pub session: Option<String>,
    /// What was acted on.
    pub target: Target,
    /// The tenant whose log this is.
    pub tenant: String,
    /// UTC time, RFC 3339 with microseconds, monotonic per log.
    pub time: String,
    /// Format version.
    pub v: u32,
}

/// An entry was refused before it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The action requires a reason and none was given.
    #[error("action {0} requires a reason")]
    ReasonRequired(&'static str),
    /// The reason is too long or has control characters.
    #[error("reason must be at most {MAX_REASON} characters without control characters")]
    BadReason,
}

/// The parts of an entry the caller supplies (the log assigns `seq` and `time`).
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// What happened.
    pub action: Action,
    /// Who did it.
    pub actor: Actor,
    /// To what.
    pub target: Target,
    /// Why.
    pub reason: Option<String>,
    /// Session id.
    pub session: Option<String>,
    /// Hash of the object before.
    pub before: Option<Hash>,
    /// Hash of the object after.
    pub after: Option<Hash>,
    /// Sealed personal data.
    pub personal: Option<SealedPersonal>,
}

/// Checks a reason for `action`: present (not blank) where the catalogue requires one,
/// at most [`MAX_REASON`] characters, no control characters. Callers check it before
/// doing any work, so a bad reason is the client's error, not a failed write.
pub fn validate_reason(action: Action, reason: Option<&str>) -> Result<(), EntryError> {
    match reason {
        None if action.requires_reason() => Err(EntryError::ReasonRequired(action.as_str())),
        Some(r) if r.trim().is_empty() && action.requires_reason() => {
            Err(EntryError::ReasonRequired(action.as_str()))
        }
        Some(r) if r.chars().count() > MAX_REASON || r.chars().any(char::is_control) => {
            Err(EntryError::BadReason)
        }
        _ => Ok(()),
    }
}

/// Formats a time as RFC 3339 UTC with exactly six fractional digits.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

impl NewEntry {
    /// An entry by the scope's actor, with no hashes, session or personal data.
    pub fn by(
        scope: &crate::access::TenantScope,
        action: Action,
        target: Target,
        reason: Option<String>,
    ) -> Self {
        let session = match scope.actor() {
            crate::access::Principal::User(u) => Some(u.session().to_owned()),
            _ => None,
        };
        Self {
            action,
            actor: Actor::of(scope.actor()),
            target,
            reason,
            session,
            before: None,
            after: None,
            personal: None,
        }
    }

    /// Checks the caller's part of the entry.
    pub fn validate(&self) -> Result<(), EntryError> {
        validate_reason(self.action, self.reason.as_deref())
    }

    /// The complete entry at position `seq` and time `time` of `tenant`'s log.
    pub fn at(self, tenant: TenantId, seq: u64, time: OffsetDateTime) -> Entry {
        Entry {
            action: self.action.as_str(),
            actor: self.actor,
            after: self.after.map(hex::encode),
            before: self.before.map(hex::encode),
            personal: self.personal,
            reason: self.reason,
            seq,
            session: self.session,
            target: self.target,
            tenant: tenant.as_uuid().to_string(),
            time: format_time(time),
            v: ENTRY_VERSION,
        }
    }
}

impl Entry {
    /// The canonical bytes (RFC 8785 for this schema): what the leaf hash covers and
    /// what entry bundles carry.
    pub fn canonical(&self) -> Vec<u8> {
        // Struct fields are declared in sorted key order and serde_json escapes exactly
        // as RFC 8785 asks for strings (short escapes for \b \f \n \r \t, \u00xx for
        // other controls, no escaping of '/' or non-ASCII); integers stay below 2^53.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        NewEntry {
            action: Action::KeyShred,
            actor: Actor {
                id: Some("0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61".into()),
                kind: "operator",
            },
            target: Target {
                id: "acme".into(),
                kind: "tenant".into(),
                version: None,
            },
            reason: Some("contract ended \"early\" / ünïcode\ttab".into()),
            session: None,
            before: Some([0xab; 32]),
            after: None,
            personal: None,
        }
        .at(
            TenantId::generate(),
            41,
            OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).unwrap(),
        )
    }

    #[test]
    fn canonical_form_is_sorted_compact_and_escaped_per_rfc_8785() {
        let e = entry();
        let bytes = e.canonical();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"action":"key.shred","actor":{"id":"0193f0c4-8a4e-7c1d-9a55-3c2f1e0b7a61","kind":"operator"},"after":null,"before":"abab"#), "{text}");
        assert!(
            text.contains(
                r#""reason":"contract ended \"early\" / ünïcode\ttab","seq":41,"session":null"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#""time":"2027-01-15T08:00:00.123456Z","v":1}"#),
            "{text}"
        );
        // Re-serialising the parsed value with sorted keys gives the same bytes.
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(serde_json::to_vec(&v).unwrap(), bytes);
    }

    #[test]
    fn reasons_are_required_where_the_catalogue_says() {
        let mut n = NewEntry {
            action: Action::KeyShred,
            actor: Actor {
                id: None,
                kind: "system",
            },
            target: Target {
                id: "t".into(),
                kind: "tenant".into(),
                version: None,
            },
            reason: None,
            session: None,
            before: None,
            after: None,
            personal: None,
        };
        assert_eq!(n.validate(), Err(EntryError::ReasonRequired("key.shred")));
        n.reason = Some("  ".into());
        assert!(n.validate().is_err());
        n.reason = Some("line\nbreak".into());
        assert_eq!(n.validate(), Err(EntryError::BadReason));
        n.reason = Some("x".repeat(MAX_REASON + 1));
        assert_eq!(n.validate(), Err(EntryError::BadReason));
        n.reason = Some("customer asked for deletion, ticket 4711".into());
        assert_eq!(n.validate(), Ok(()));
        n.action = Action::KeyRotate;
        n.reason = None;
        assert_eq!(n.validate(), Ok(()));
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
    }
}
