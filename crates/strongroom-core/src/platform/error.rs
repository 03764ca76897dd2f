//! The platform's error, grouped by whose fault it is. The HTTP edge maps each group to
//! a status and a problem type; the CLI prints the message.

use crate::access::AccessError;
use crate::identity::IdentityError;
use crate::identity::token::TokenError;
use crate::keys::{KeyError, KeyringError};
use crate::objects::ObjectError;
use crate::store::StoreError;
use crate::tenant::TenantError;

/// A failed platform operation.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The caller sent a value that breaks a rule (→ 422).
    #[error("{message}")]
    Invalid {
        /// The request field at fault, when there is one (e.g. `region`).
        field: Option<&'static str>,
        /// What is wrong.
        message: String,
    },
    /// The caller sent a value that breaks a rule, located by a JSON Pointer into the
    /// request (→ 422).
    #[error("{message}")]
    InvalidAt {
        /// Where, e.g. `/definition/schema/properties`.
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// Credentials missing or wrong (→ 401).
    #[error("authentication required or failed")]
    Unauthenticated,
    /// Authenticated, but not allowed (→ 403).
    #[error("{0}")]
    Forbidden(String),
    /// No such object, or not visible to the caller (→ 404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Conflicts with existing state (→ 409).
    #[error("{0}")]
    Conflict(String),
    /// The password was right but the account has a second factor and none valid was
    /// offered (→ 401, saying so: the caller has already proven the password).
    #[error("a valid second factor is required")]
    SecondFactorRequired,
    /// Too many failed sign-ins from this address for this account (→ 429).
    #[error("too many failed sign-ins; retry in {retry_after_secs} s")]
    TooManyRequests {
        /// Seconds until an attempt is accepted again.
        retry_after_secs: u64,
    },
    /// As many of these (e.g. audit exports) are running as are allowed at once (→ 429
    /// with `Retry-After`; not a failed attempt, nothing is counted against anyone).
    #[error("too many {what} at once; retry in {retry_after_secs} s")]
    AtCapacity {
        /// What is at its limit, in the plural ("audit exports").
        what: &'static str,
        /// Seconds after which trying again is reasonable.
        retry_after_secs: u64,
    },
    /// The request's body is larger than allowed (→ 413), e.g. an attachment over
    /// `limits.max_attachment_bytes`, found while streaming it.
    #[error("{0}")]
    TooLarge(String),
    /// A write carried an `If-Match` that is no longer the object's ETag: someone else
    /// changed it since it was read (→ 412). Never a silent merge.
    #[error("the object changed since it was read; read it again")]
    PreconditionFailed,
    /// A write that must say which state it saw (`If-Match`) did not (→ 428).
    #[error("this write needs an If-Match header with the ETag it was based on")]
    PreconditionRequired,
    /// A signature the policy's separation of duties forbids (→ 403).
    #[error("{0}")]
    SeparationOfDuties(String),
    /// The record's state does not allow this (→ 409), e.g. editing a version in review.
    #[error("{0}")]
    RecordState(String),
    /// A signature's re-authentication failed (→ 403): nothing was stored, the failure
    /// is audited (`signature.failed`) and counts toward the sign-in lockout.
    #[error("re-authentication failed")]
    ReauthenticationFailed,
    /// This kind of principal can never sign (an application, a delegated token, an
    /// operator) (→ 403).
    #[error("{0}")]
    SigningNotPermitted(String),
    /// Content that breaks its record type's schema (→ 422, one error per violation).
    #[error("the content does not satisfy the record type's schema")]
    SchemaViolation(Vec<crate::records::definition::Violation>),
    /// An identity provider's answer was refused (→ 401): a sign-in or a signature's
    /// re-authentication by SSO failed, for the reason given (safe to show; audited).
    #[error("single sign-on failed: {0}")]
    SsoRefused(String),
    /// The tenant requires single sign-on and this needs a password (→ 403): use the
    /// identity provider (a signature: its SSO re-authentication).
    #[error("{0}")]
    SsoRequired(String),
    /// An identity provider could not be reached or answered nonsense (→ 502).
    #[error("identity provider unavailable: {0}")]
    IdpUnavailable(String),
    /// Temporarily unable to serve; retry later (→ 503). The cause is for the log.
    #[error("temporarily unavailable")]
    Unavailable(#[source] Cause),
    /// Our fault (→ 500). The cause is for the log, never for the client.
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The underlying error of a server-side failure, kept whole (with its own causes) so
/// the log shows the full chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl PlatformError {
    /// Our fault, described in words (no underlying error).
    pub fn internal(what: impl Into<String>) -> Self {
        Self::Internal(what.into().into())
    }

    /// Our fault, caused by `e`.
    pub fn internal_from(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// Temporarily unavailable, described in words.
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable(what.into().into())
    }
}

impl From<StoreError> for PlatformError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what } => Self::Conflict(format!("{what} already exists")),
            StoreError::Unavailable { .. } => Self::Unavailable(Box::new(e)),
            StoreError::Corrupt(_) | StoreError::Backend { .. } => Self::Internal(Box::new(e)),
        }
    }
}

impl From<KeyError> for PlatformError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Unavailable(_) => Self::Unavailable(Box::new(e)),
            _ => Self::Internal(Box::new(e)),
        }
    }
}

impl From<IdentityError> for PlatformError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::InvalidEmail(_) => Self::Invalid {
                field: Some("email"),
                message: e.to_string(),
            },
            IdentityError::WeakPassword(_) => Self::Invalid {
                field: Some("password"),
                message: e.to_string(),
            },
            IdentityError::InvalidCredentials => Self::Unauthenticated,
            IdentityError::Busy => Self::Unavailable(Box::new(e)),
            IdentityError::Internal(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<TenantError> for PlatformError {
    fn from(e: TenantError) -> Self {
        let field = match e {
            TenantError::InvalidSlug(_) => "slug",
            TenantError::InvalidDisplayName(_) => "display_name",
            TenantError::InvalidRegionName(_) | TenantError::UnknownRegion(_) => "region",
        };
        Self::Invalid {
            field: Some(field),
            message: e.to_string(),
        }
    }
}

impl From<AccessError> for PlatformError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Forbidden(_) => Self::Forbidden(e.to_string()),
            AccessError::TenantReadOnly => Self::Conflict(e.to_string()),
            AccessError::NotVisible => Self::NotFound("tenant"),
        }
    }
}

impl From<TokenError> for PlatformError {
    fn from(_: TokenError) -> Self {
        Self::Unauthenticated
    }
}

impl From<KeyringError> for PlatformError {
    fn from(e: KeyringError) -> Self {
        match e {
            KeyringError::Key(k) => k.into(),
            KeyringError::Store(s) => s.into(),
            KeyringError::Destroyed => Self::Conflict(e.to_string()),
            KeyringError::UnknownProvider(_) => Self::Invalid {
                field: Some("key_provider"),
                message: e.to_string(),
            },
            KeyringError::UnknownVersion(_) => Self::Internal(Box::new(e)),
            // Objects rotate on this; reaching the edge means rotation kept failing.
            KeyringError::BudgetSpent(_) => Self::Unavailable(Box::new(e)),
        }
    }
}

impl From<ObjectError> for PlatformError {
    fn from(e: ObjectError) -> Self {
        match e {
            ObjectError::Keyring(k) => k.into(),
            ObjectError::Stream(crate::keys::stream::StreamError::Key(k)) => k.into(),
            ObjectError::Stream(crate::keys::stream::StreamError::Io(io)) => {
                Self::Unavailable(Box::new(io))
            }
            ObjectError::Invalid(m) => Self::Invalid {
                field: Some("value"),
                message: m,
            },
            ObjectError::NotFound(what) => Self::NotFound(what),
            ObjectError::Contended => Self::Unavailable(Box::new(e)),
        }
    }
}

impl From<crate::audit::log::AuditError> for PlatformError {
    fn from(e: crate::audit::log::AuditError) -> Self {
        use crate::audit::log::AuditError;
        match e {
            AuditError::Store(s) => s.into(),
            AuditError::Key(k) => k.into(),
            AuditError::NoSuchTile => Self::NotFound("tile"),
            AuditError::Busy => Self::Unavailable(Box::new(e)),
            AuditError::OutOfRange { field, message } => Self::Invalid {
                field: Some(field),
                message: message.into(),
            },
            AuditError::Note(_) | AuditError::Tree(_) | AuditError::Tampered { .. } => {
                Self::Internal(Box::new(e))
            }
        }
    }
}

impl From<crate::records::content::ContentError> for PlatformError {
    fn from(e: crate::records::content::ContentError) -> Self {
        Self::Invalid {
            field: Some("content"),
            message: e.to_string(),
        }
    }
}

impl From<crate::records::definition::DefinitionError> for PlatformError {
    fn from(e: crate::records::definition::DefinitionError) -> Self {
        Self::InvalidAt {
            pointer: e.pointer,
            message: e.message,
        }
    }
}

impl From<crate::audit::entry::EntryError> for PlatformError {
    fn from(e: crate::audit::entry::EntryError) -> Self {
        Self::Invalid {
            field: Some("reason"),
            message: e.to_string(),
        }
    }
}

/// `e` and every cause under it, `: `-separated: what a log line needs (an error's own
/// `Display` is often only "internal error", the cause being its `source`).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[cfg(test)]
mod redaction_tests {
    //! Every type that carries a token, secret, code or hash keeps it out of `Debug`.

    use crate::identity::token::IssuedToken;
    use crate::platform::{Credential, RecoveryCodes, TotpEnrolment, UserTokens};
    use crate::secret::SecretString;

    #[test]
    fn secrets_never_reach_debug_output() {
        let marker = "SECRET-MARKER-7f3a";
        let shown = [
            format!(
                "{:?}",
                IssuedToken {
                    access_token: marker.into(),
                    token_type: "Bearer",
                    expires_in: 1
                }
            ),
            format!(
                "{:?}",
                UserTokens {
                    access_token: marker.into(),
                    token_type: "Bearer",
                    expires_in: 1,
                    refresh_token: marker.into()
                }
            ),
            format!(
                "{:?}",
                TotpEnrolment {
                    otpauth_uri: marker.into(),
                    secret: marker.into()
                }
            ),
            format!(
                "{:?}",
                RecoveryCodes {
                    recovery_codes: vec![marker.into()]
                }
            ),
            format!(
                "{:?}",
                Credential::Password(SecretString::new(marker.into()))
            ),
            format!("{:?}", Credential::BcryptHash(marker.into())),
            format!(
                "{:?}",
                crate::identity::totp::OneTimeCode::parse(marker).unwrap()
            ),
        ];
        for s in shown {
            assert!(!s.contains(marker), "{s}");
        }
    }
}
