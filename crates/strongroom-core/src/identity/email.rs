//! E-mail addresses as login names.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::IdentityError;

/// An e-mail address used as a login name: at most 254 bytes, one `@`, no spaces or
/// control characters, a domain with a dot. The domain is lower-cased, the local part
/// kept as given (RFC 5321 says it may be case-sensitive) but compared
/// case-insensitively by the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, format = Email, max_length = 254, example = "qa.lead@acme.example")]
pub struct Email(String);

impl Email {
    /// Parses and normalises an address.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let s = s.trim();
        if s.is_empty() || s.len() > 254 {
            return Err(IdentityError::InvalidEmail("must be 1 to 254 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(IdentityError::InvalidEmail(
                "must not contain spaces or control characters",
            ));
        }
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or(IdentityError::InvalidEmail("missing '@'"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(IdentityError::InvalidEmail(
                "the part before '@' must be 1 to 64 characters",
            ));
        }
        if !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(IdentityError::InvalidEmail(
                "the domain is not a valid host name",
            ));
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_normalises_the_domain() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "Ann@example.com"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "", "a", "a@b", "@b.c", "a@@b.c", "a b@c.d", "a@.c", "a@c.", "a@b..c", "a\n@b.c",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@b.c", "a".repeat(65))).is_err());
    }
}
