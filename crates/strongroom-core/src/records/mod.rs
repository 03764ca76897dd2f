//! Regulated records: typed, versioned content, immutable once approved, with 21 CFR
//! Part 11 electronic signatures (docs/formats/records.md is the normative
//! description of every hash and state here).
//!
//! - A record has versions; a version has revisions (every save of a draft) and
//!   signatures. Version states: `draft` → `in_review` (content frozen) → `approved`;
//!   a rejection sends `in_review` back to `draft`. Revising an approved version makes
//!   version n+1 a draft; n is *superseded* once n+1 is approved (derived, never
//!   stored, so an approved row is never written again).
//! - A version's content hash binds record id, version, type and type version, the
//!   content and its attachments' hashes ([`content`]).
//! - A signature's hash binds everything its manifestation shows plus the content
//!   hash it signed; the `record.sign` audit entry commits to it, and the Merkle log
//!   commits to the entry ([`signature_hash`]).
//! - Searchable fields are stored as blind-index tokens ([`index_token`]).
//!
//! The rules (who may do what, in which state) are applied by the platform facade;
//! the storage port makes the write and its audit entries one transaction.

pub mod content;
pub mod definition;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::audit::merkle::{Hash, sha256};

/// Prefix of the bytes a signature hash covers.
pub const SIGNATURE_HASH_DOMAIN: &[u8] = b"strongroom-signature-v1\n";
/// Prefix of the message a blind-index token is the HMAC of.
pub const INDEX_DOMAIN: &[u8] = b"strongroom-blind-index-v1\0";

/// A record's stable id (UUID v7).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct RecordId(uuid::Uuid);

impl RecordId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses an id.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s).ok().map(Self)
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a record is in its life (the state of its current version, or retired).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// The current version is a draft.
    Draft,
    /// The current version is in review: its content is frozen.
    InReview,
    /// The current version is approved.
    Approved,
    /// Retired: read-only for good.
    Retired,
}

impl RecordStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InReview => "in_review",
            Self::Approved => "approved",
            Self::Retired => "retired",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::InReview, Self::Approved, Self::Retired]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// The stored state of a version (superseded is derived: approved, with a later
/// approved version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Editable; each save is a new revision.
    Draft,
    /// Frozen, collecting signatures.
    InReview,
    /// Approved: never changes again.
    Approved,
}

impl VersionState {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InReview => "in_review",
            Self::Approved => "approved",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Draft, Self::InReview, Self::Approved]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// Everything a signature's hash covers: what its manifestation shows, what it
/// signed, and how the signer was re-authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFields<'a> {
    /// Signature id.
    pub id: &'a str,
    /// Record id.
    pub record: &'a str,
    /// Version signed.
    pub version: u64,
    /// Signer's user id.
    pub signer: &'a str,
    /// Printed name at signing time.
    pub printed_name: &'a str,
    /// Meaning.
    pub meaning: &'a str,
    /// Optional comment.
    pub comment: Option<&'a str>,
    /// When (UTC).
    pub signed_at: OffsetDateTime,
    /// The version's content hash that was signed.
    pub content_hash: &'a Hash,
    /// The session the signature was given in.
    pub session: &'a str,
    /// How re-authentication was done (`password`, `password+totp`, ...).
    pub reauth: &'a str,
}

/// SHA-256 over the domain prefix and the RFC 8785 canonical JSON of the signature's
/// fields (docs/formats/records.md §5).
pub fn signature_hash(s: &SignatureFields<'_>) -> Hash {
    let doc = serde_json::json!({
        "comment": s.comment,
        "content_hash": hex::encode(s.content_hash),
        "id": s.id,
        "meaning": s.meaning,
        "printed_name": s.printed_name,
        "reauth": s.reauth,
        "record": s.record,
        "session": s.session,
        "signed_at": crate::audit::entry::format_time(s.signed_at),
        "signer": s.signer,
        "version": s.version,
    });
    let bytes = serde_json_canonicalizer::to_vec(&doc).unwrap_or_default();
    sha256(&[SIGNATURE_HASH_DOMAIN, &bytes])
}

/// The normalised text of a searchable value, or `None` for values that are not
/// indexed (objects, null): strings trimmed and lower-cased (Unicode simple case
/// mapping, no other normalisation), numbers in their RFC 8785 form, booleans as
/// `true`/`false`.
pub fn normalise(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => Some(s.trim().to_lowercase()),
        Value::Number(_) | Value::Bool(_) => serde_json_canonicalizer::to_string(value).ok(),
        _ => None,
    }
}

/// The blind-index token of `normalised` in `field` of `type_name`:
/// HMAC-SHA-256(index key, domain ‖ type ‖ 0 ‖ field ‖ 0 ‖ value).
pub fn index_token(key: &[u8], type_name: &str, field: &str, normalised: &str) -> Hash {
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&k);
    ctx.update(INDEX_DOMAIN);
    ctx.update(type_name.as_bytes());
    ctx.update(&[0]);
    ctx.update(field.as_bytes());
    ctx.update(&[0]);
    ctx.update(normalised.as_bytes());
    let tag = ctx.sign();
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Most elements of one array field that get index tokens.
pub const MAX_INDEXED_ELEMENTS: usize = 256;

/// The tokens of every searchable field of `content` (each element of an array
/// separately, the first [`MAX_INDEXED_ELEMENTS`]), deduplicated.
pub fn index_tokens(
    key: &[u8],
    type_name: &str,
    searchable: &[String],
    content: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(String, Hash)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for field in searchable {
        let values: Vec<&serde_json::Value> = match content.get(field) {
            // At most the first MAX_INDEXED_ELEMENTS elements of an array are indexed.
            Some(serde_json::Value::Array(items)) => {
                items.iter().take(MAX_INDEXED_ELEMENTS).collect()
            }
            Some(v) => vec![v],
            None => vec![],
        };
        for v in values {
            if let Some(n) = normalise(v) {
                let t = (field.clone(), index_token(key, type_name, field, &n));
                if seen.insert(t.clone()) {
                    out.push(t);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_tokens_are_keyed_normalised_and_field_bound() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let t = index_token(&k1, "batch", "batch_no", "b-1042");
        assert_ne!(t, index_token(&k2, "batch", "batch_no", "b-1042"));
        assert_ne!(t, index_token(&k1, "batch", "lot", "b-1042"));
        assert_ne!(t, index_token(&k1, "other", "batch_no", "b-1042"));
        assert_eq!(
            normalise(&serde_json::json!("  B-1042 ")).unwrap(),
            "b-1042"
        );
        assert_eq!(normalise(&serde_json::json!(1.0)).unwrap(), "1");
        assert_eq!(normalise(&serde_json::json!({"a": 1})), None);
    }

    #[test]
    fn signature_hash_covers_every_field() {
        let h = [7u8; 32];
        let base = SignatureFields {
            id: "s",
            record: "r",
            version: 1,
            signer: "u",
            printed_name: "Ada Lovelace",
            meaning: "approved",
            comment: None,
            signed_at: OffsetDateTime::UNIX_EPOCH,
            content_hash: &h,
            session: "sess",
            reauth: "password",
        };
        let x = signature_hash(&base);
        let other = [8u8; 32];
        for changed in [
            SignatureFields {
                record: "r2",
                ..base.clone()
            },
            SignatureFields {
                meaning: "reviewed",
                ..base.clone()
            },
            SignatureFields {
                signed_at: OffsetDateTime::UNIX_EPOCH + time::Duration::SECOND,
                ..base.clone()
            },
            SignatureFields {
                content_hash: &other,
                ..base.clone()
            },
            SignatureFields {
                comment: Some(""),
                ..base.clone()
            },
            SignatureFields {
                printed_name: "Ada",
                ..base.clone()
            },
        ] {
            assert_ne!(x, signature_hash(&changed));
        }
    }
}
