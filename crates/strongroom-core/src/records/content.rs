//! Record content as it arrives and as it is hashed.
//!
//! Content comes from outside and is hostile until parsed here: one JSON object, no
//! duplicate keys (a parser that keeps the last value and one that keeps the first
//! would read two different records from the same bytes), bounded in size, depth and
//! number of values. What a version's content hash covers is the RFC 8785 canonical
//! form of a small envelope naming the record, version and type (so content copied to
//! another record hashes differently) with the content and its attachments' hashes
//! (docs/formats/records.md §3).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::audit::merkle::{Hash, sha256};

/// Largest content accepted, in bytes of JSON.
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;
/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 32;
/// Most JSON values (objects, arrays, scalars) in one content document.
pub const MAX_VALUES: usize = 20_000;
/// Prefix of the bytes a content hash covers (domain separation).
pub const CONTENT_HASH_DOMAIN: &[u8] = b"strongroom-record-content-v1\n";

/// Why content was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Larger than [`MAX_CONTENT_BYTES`].
    #[error("content is larger than {MAX_CONTENT_BYTES} bytes")]
    TooLarge,
    /// Not valid JSON (or not UTF-8).
    #[error("content is not valid JSON: {0}")]
    Malformed(String),
    /// Valid JSON that breaks one of our bounds or rules.
    #[error("{0}")]
    Refused(String),
}

/// Parses content: a JSON object within the bounds above, with no duplicate keys.
pub fn parse(bytes: &[u8]) -> Result<Map<String, Value>, ContentError> {
    if bytes.len() > MAX_CONTENT_BYTES {
        return Err(ContentError::TooLarge);
    }
    let mut budget = Budget { values: 0 };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth: 0,
        budget: &mut budget,
    }
    .deserialize(&mut de)
    .map_err(classify)?;
    de.end().map_err(classify)?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ContentError::Refused(
            "content must be a JSON object".into(),
        )),
    }
}

/// Checks an already-parsed value against the same bounds (content read back from
/// storage, or given inside a larger request body).
pub fn check(value: &Value) -> Result<(), ContentError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ContentError::Malformed(e.to_string()))?;
    parse(&bytes).map(|_| ())
}

fn classify(e: serde_json::Error) -> ContentError {
    let text = e.to_string();
    if e.is_data() || text.contains("duplicate key") || text.contains("more than") {
        ContentError::Refused(text)
    } else {
        ContentError::Malformed(text)
    }
}

/// Largest integer magnitude accepted: RFC 8785 writes numbers as IEEE 754 doubles, so
/// two larger integers could canonicalise (and hash) the same.
pub const MAX_EXACT_INTEGER: u64 = 1 << 53;

fn exact<E: de::Error>(magnitude: u64) -> Result<(), E> {
    if magnitude > MAX_EXACT_INTEGER {
        return Err(E::custom(
            "integers beyond ±2^53 cannot be represented exactly; send it as a string",
        ));
    }
    Ok(())
}

struct Budget {
    values: usize,
}

struct StrictValue<'a> {
    depth: usize,
    budget: &'a mut Budget,
}

impl StrictValue<'_> {
    fn count<E: de::Error>(&mut self) -> Result<(), E> {
        self.budget.values += 1;
        if self.budget.values > MAX_VALUES {
            return Err(E::custom(format!(
                "content has more than {MAX_VALUES} values"
            )));
        }
        Ok(())
    }

    fn deeper<E: de::Error>(&mut self) -> Result<StrictValue<'_>, E> {
        if self.depth + 1 > MAX_DEPTH {
            return Err(E::custom(format!(
                "content is nested more than {MAX_DEPTH} levels deep"
            )));
        }
        Ok(StrictValue {
            depth: self.depth + 1,
            budget: self.budget,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.count()?;
        exact(v.unsigned_abs())?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.count()?;
        exact(v)?;
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.count()?;
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.count()?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.count()?;
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.count()?;
        let mut out = Vec::new();
        loop {
            let inner = self.deeper()?;
            match seq.next_element_seed(inner)? {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.count()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let inner = self.deeper()?;
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// One attachment as a version's content hash covers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct AttachmentRef {
    /// File name, unique within the version.
    pub name: String,
    /// SHA-256 of the plaintext, lower-case hex.
    pub sha256: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Media type as given at upload.
    pub media_type: String,
    /// The blob holding the encrypted stream (not covered by the hash: re-encryption
    /// may move it).
    #[serde(default)]
    pub blob: String,
}

/// What a version's content hash binds together.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    /// The record's id.
    pub record: &'a str,
    /// The version number.
    pub version: u64,
    /// The record type's name.
    pub type_name: &'a str,
    /// The type version the content was written under.
    pub type_version: u64,
    /// The content.
    pub content: &'a Map<String, Value>,
    /// The attachments, in any order (sorted by name here).
    pub attachments: &'a [AttachmentRef],
}

/// The exact bytes a content hash covers (docs/formats/records.md §3): the domain
/// prefix, then the RFC 8785 canonical JSON of the envelope.
pub fn hashed_bytes(input: &HashInput<'_>) -> Vec<u8> {
    let mut attachments: Vec<Value> = input
        .attachments
        .iter()
        .map(|a| {
            serde_json::json!({
                "media_type": a.media_type,
                "name": a.name,
                "sha256": a.sha256,
                "size": a.size,
            })
        })
        .collect();
    attachments.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let envelope = serde_json::json!({
        "attachments": attachments,
        "content": input.content,
        "record": input.record,
        "type": input.type_name,
        "type_version": input.type_version,
        "version": input.version,
    });
    let mut out = CONTENT_HASH_DOMAIN.to_vec();
    // Canonicalisation of a value we built cannot fail (no non-finite numbers).
    out.extend(serde_json_canonicalizer::to_vec(&envelope).unwrap_or_default());
    out
}

/// SHA-256 of [`hashed_bytes`].
pub fn content_hash(input: &HashInput<'_>) -> Hash {
    sha256(&[&hashed_bytes(input)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_documents_are_refused() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let deep_obj = format!("{{\"a\":{}}}", deep);
        assert!(matches!(
            parse(deep_obj.as_bytes()),
            Err(ContentError::Refused(_))
        ));
        let wide = format!("{{\"a\":[{}0]}}", "0,".repeat(100_000));
        assert!(matches!(
            parse(wide.as_bytes()),
            Err(ContentError::Refused(_))
        ));
        assert!(matches!(
            parse(br#"{"a":1,"a":2}"#),
            Err(ContentError::Refused(m)) if m.contains("duplicate")
        ));
        assert!(matches!(
            parse(b"{\"a\":\"\xff\xfe\"}"),
            Err(ContentError::Malformed(_))
        ));
        assert!(matches!(parse(b"[1]"), Err(ContentError::Refused(_))));
        assert!(matches!(parse(b"{} {}"), Err(ContentError::Malformed(_))));
        assert!(parse(br#"{"a":{"b":[1,2.5,"x",null,true]}}"#).is_ok());
        assert!(matches!(
            parse(br#"{"a":9007199254740993}"#),
            Err(ContentError::Refused(_))
        ));
        assert!(parse(br#"{"a":-9007199254740992}"#).is_ok());
    }

    #[test]
    fn the_hash_binds_record_version_and_attachments() {
        let content = parse(br#"{"b":1,"a":"x"}"#).unwrap();
        let base = HashInput {
            record: "r1",
            version: 1,
            type_name: "batch",
            type_version: 1,
            content: &content,
            attachments: &[],
        };
        let bytes = hashed_bytes(&base);
        assert!(bytes.ends_with(
            br#"{"attachments":[],"content":{"a":"x","b":1},"record":"r1","type":"batch","type_version":1,"version":1}"#
        ));
        let h = content_hash(&base);
        assert_ne!(
            h,
            content_hash(&HashInput {
                record: "r2",
                ..base
            })
        );
        assert_ne!(h, content_hash(&HashInput { version: 2, ..base }));
        let att = [AttachmentRef {
            name: "a.pdf".into(),
            sha256: "00".repeat(32),
            size: 1,
            media_type: "application/pdf".into(),
            blob: "x".into(),
        }];
        let with = content_hash(&HashInput {
            attachments: &att,
            ..base
        });
        assert_ne!(h, with);
        // The blob id (where the stream lives) is not covered.
        let moved = [AttachmentRef {
            blob: "y".into(),
            ..att[0].clone()
        }];
        assert_eq!(
            with,
            content_hash(&HashInput {
                attachments: &moved,
                ..base
            })
        );
    }
}
