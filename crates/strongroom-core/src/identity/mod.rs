//! Identity: who someone is and how they prove it.
//!
//! Platform operators and tenant [`user`]s share the same parts:
//! validated [`Email`]s, argon2id [`password`] hashing on a bounded pool, and
//! EdDSA-signed access [`token`]s.

pub mod application;
pub mod blocklist;
mod email;
pub mod operator;
pub mod password;
pub mod saml;
pub mod sso;
pub mod throttle;
pub mod token;
pub mod totp;
pub mod user;

pub use email::Email;

/// Why an identity value or credential was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The e-mail address is not acceptable.
    #[error("invalid e-mail address: {0}")]
    InvalidEmail(&'static str),
    /// The password breaks the password rules.
    #[error("password rejected: {0}")]
    WeakPassword(std::borrow::Cow<'static, str>),
    /// Email/password (or token) did not match. Deliberately says nothing more.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many hashes queued; the caller should retry later.
    #[error("too many sign-ins in progress; retry shortly")]
    Busy,
    /// Hashing or signing failed for a reason that is ours, not the caller's.
    #[error("credential processing failed: {0}")]
    Internal(String),
}
