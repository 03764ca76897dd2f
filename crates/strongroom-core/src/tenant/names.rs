//! Validated names and ids for tenants: parse, don't validate.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::TenantError;

/// A tenant's URL name: 3–63 characters of `a-z`, `0-9` and `-`, starting with a
/// letter, not ending with `-`, no `--`. DNS-label rules, so a slug is safe in a
/// path, a file name, a hostname and a log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, min_length = 3, max_length = 63, pattern = "^[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]$", example = "acme-pharma")]
pub struct Slug(String);

impl Slug {
    /// Longest slug accepted.
    pub const MAX_LEN: usize = 63;

    /// Parses and validates a slug.
    pub fn parse(s: &str) -> Result<Self, TenantError> {
        check_label(s, 3, Self::MAX_LEN, "must be 3 to 63 characters long")
            .map_err(TenantError::InvalidSlug)?;
        Ok(Self(s.to_owned()))
    }

    /// The slug's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A residency region's name as declared in configuration: 1–32 characters, the same
/// alphabet as a slug. The name is also a directory name, hence the strict rules.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, min_length = 1, max_length = 32, example = "eu")]
pub struct RegionName(String);

impl RegionName {
    /// The name under which the platform's own audit trail is stored (in the control
    /// database). It cannot be parsed, so no configured region can take it.
    pub const PLATFORM_NAME: &'static str = "_platform";

    /// The platform log's pseudo-region (crate-private: only `access` builds scopes on
    /// it).
    pub(crate) fn platform() -> Self {
        Self(Self::PLATFORM_NAME.to_owned())
    }

    /// Whether this is the platform log's pseudo-region.
    pub fn is_platform(&self) -> bool {
        self.0 == Self::PLATFORM_NAME
    }

    /// Parses and validates a region name.
    pub fn parse(s: &str) -> Result<Self, TenantError> {
        check_label(s, 1, 32, "must be 1 to 32 characters long")
            .map_err(TenantError::InvalidRegionName)?;
        Ok(Self(s.to_owned()))
    }

    /// The region's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name people see: 1–200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, min_length = 1, max_length = 200, example = "Acme Pharma GmbH")]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest display name accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a display name, trimming surrounding whitespace.
    pub fn parse(s: &str) -> Result<Self, TenantError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(TenantError::InvalidDisplayName("must not be empty"));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(TenantError::InvalidDisplayName(
                "longer than 200 characters",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(TenantError::InvalidDisplayName(
                "contains control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's internal id (a UUIDv7, so ids sort by creation time).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct TenantId(Uuid);

impl TenantId {
    /// The platform log's pseudo-tenant (the nil UUID, which no tenant is given).
    pub const PLATFORM: Self = Self(Uuid::nil());

    /// A fresh id.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// Wraps an id read back from storage.
    pub fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// DNS-label rules shared by slugs and region names.
fn check_label(
    s: &str,
    min: usize,
    max: usize,
    length_rule: &'static str,
) -> Result<(), &'static str> {
    if s.len() < min || s.len() > max {
        return Err(length_rule);
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters a-z, digits 0-9 and '-' are allowed");
    }
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err("must start with a letter");
    }
    if s.ends_with('-') || s.contains("--") {
        return Err("must not end with '-' or contain '--'");
    }
    Ok(())
}

macro_rules! string_newtype_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = TenantError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    )*};
}
string_newtype_conversions!(Slug, RegionName, DisplayName);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_dns_label_rules() {
        for ok in ["abc", "acme-pharma", "a1b", &"a".repeat(63)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "Acme",
            "1abc",
            "abc-",
            "a--b",
            "ab c",
            "ab_c",
            "äbc",
            &"a".repeat(64),
            "../x",
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
        assert!(DisplayName::parse(&"x".repeat(201)).is_err());
        assert!(DisplayName::parse(&"é".repeat(200)).is_ok());
    }

    #[test]
    fn region_names_are_labels() {
        assert!(RegionName::parse("eu").is_ok());
        assert!(RegionName::parse("").is_err());
        assert!(RegionName::parse("EU").is_err());
        assert!(RegionName::parse(&"a".repeat(33)).is_err());
    }

    #[test]
    fn slugs_deserialize_through_validation() {
        let ok: Result<Slug, _> = serde_json::from_str("\"acme\"");
        assert!(ok.is_ok());
        let bad: Result<Slug, _> = serde_json::from_str("\"ACME\"");
        assert!(bad.is_err());
    }
}
