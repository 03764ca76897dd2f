//! Record types: a JSON Schema (draft 2020-12) for the content, the signature policy,
//! the searchable fields and the retention period.
//!
//! A definition is hostile input too: the schema is bounded in size and depth, checked
//! against the draft 2020-12 meta-schema, and compiled with no resolver able to fetch
//! anything (the `jsonschema` crate is built without its HTTP and file resolvers, so a
//! `$ref` to a remote URL fails to compile instead of being fetched) and with the
//! linear-time `regex` engine for `pattern` (a backtracking engine would let a schema
//! author stall the server with one pattern).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::access::rbac::Permission;

/// Largest schema accepted, in bytes of JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Most steps in a signature policy.
pub const MAX_STEPS: usize = 8;
/// Most searchable fields per type.
pub const MAX_SEARCHABLE: usize = 16;

/// A type's name: 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(transparent)]
pub struct TypeName(String);

impl TypeName {
    /// A valid name, or why not.
    pub fn parse(s: &str) -> Result<Self, DefinitionError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(DefinitionError::new(
                "name",
                "type names are 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter",
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TypeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// One required signature: its meaning and the permission a signer needs for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The signature's meaning as shown in its manifestation (e.g. `authored`,
    /// `reviewed`, `approved`): 1-32 characters of a-z, 0-9, '-', '_' and space.
    pub meaning: String,
    /// The permission the signer must hold: `records:write`, `records:review` or
    /// `records:approve`.
    pub permission: String,
}

/// Which signatures a version needs, in order, and who may give them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignaturePolicy {
    /// Required signatures in order; the last one approves the version. The approver
    /// always differs from every earlier signer and every editor of the version.
    pub steps: Vec<Step>,
    /// Whether someone who edited or authored the version may also give one of the
    /// middle (reviewing) signatures. Default false: the author may not review.
    #[serde(default)]
    pub author_may_review: bool,
}

impl SignaturePolicy {
    /// The permission step `i` requires.
    pub fn permission(&self, i: usize) -> Option<Permission> {
        self.steps
            .get(i)
            .and_then(|s| Permission::parse(&s.permission))
    }
}

/// A record type's definition as submitted and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// JSON Schema (draft 2020-12) every version's content must satisfy.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// The signatures a version needs before it is approved.
    pub signature_policy: SignaturePolicy,
    /// Top-level content properties that get a blind index (exact-match search).
    #[serde(default)]
    pub searchable: Vec<String>,
    /// Minimum retention in days (enforced by the lifecycle work; stored now).
    #[serde(default)]
    pub retention_days: Option<u32>,
}

/// A definition was refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DefinitionError {
    /// JSON Pointer of the offending field in the definition.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl DefinitionError {
    fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            pointer: format!("/{field}"),
            message: message.into(),
        }
    }
}

/// A compiled schema ready to validate content.
pub struct Compiled(jsonschema::Validator);

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled(..)")
    }
}

/// One way content breaks its type's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON Pointer into the content.
    pub pointer: String,
    /// What is wrong, from the validator.
    pub message: String,
}

/// Longest violation message, in characters.
const MAX_MESSAGE: usize = 300;
/// Most violations reported for one document.
const MAX_VIOLATIONS: usize = 20;

impl Compiled {
    /// Every violation of the schema by `content` (at most twenty).
    pub fn violations(&self, content: &Value) -> Vec<Violation> {
        self.0
            .iter_errors(content)
            .take(MAX_VIOLATIONS)
            .map(|e| {
                // A validator message can quote the whole offending value: keep it short.
                let mut message = e.to_string();
                if message.chars().count() > MAX_MESSAGE {
                    message = message.chars().take(MAX_MESSAGE).collect::<String>() + "…";
                }
                Violation {
                    pointer: e.instance_path().to_string(),
                    message,
                }
            })
            .collect()
    }
}

fn meaning_ok(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 32
        && m.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_ ".contains(&b))
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl Definition {
    /// Checks every rule and compiles the schema.
    #[allow(clippy::too_many_lines)] // one rule after another, each with its pointer
    pub fn validate(&self) -> Result<Compiled, DefinitionError> {
        let size = serde_json::to_vec(&self.schema).map_or(usize::MAX, |b| b.len());
        if size > MAX_SCHEMA_BYTES {
            return Err(DefinitionError::new(
                "schema",
                format!("the schema is larger than {MAX_SCHEMA_BYTES} bytes"),
            ));
        }
        if depth(&self.schema) > super::content::MAX_DEPTH {
            return Err(DefinitionError::new(
                "schema",
                format!(
                    "the schema is nested more than {} levels deep",
                    super::content::MAX_DEPTH
                ),
            ));
        }
        if !self.schema.is_object() {
            return Err(DefinitionError::new(
                "schema",
                "the schema must be an object",
            ));
        }
        if let Some(d) = self.schema.get("$schema").and_then(Value::as_str)
            && d != "https://json-schema.org/draft/2020-12/schema"
        {
            return Err(DefinitionError::new(
                "schema/$schema",
                "only JSON Schema draft 2020-12 is supported",
            ));
        }
        if let Err(e) = jsonschema::draft202012::meta::validate(&self.schema) {
            return Err(DefinitionError {
                pointer: format!("/schema{}", e.instance_path()),
                message: format!("not a valid draft 2020-12 schema: {e}"),
            });
        }
        let compiled = jsonschema::draft202012::options()
            .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(1 << 20))
            .should_validate_formats(true)
            .build(&self.schema)
            .map_err(|e| DefinitionError {
                pointer: "/schema".into(),
                message: format!("the schema cannot be used: {e}"),
            })?;
        let steps = &self.signature_policy.steps;
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return Err(DefinitionError::new(
                "signature_policy/steps",
                format!("a policy has 1-{MAX_STEPS} steps"),
            ));
        }
        for (i, s) in steps.iter().enumerate() {
            if !meaning_ok(&s.meaning) {
                return Err(DefinitionError::new(
                    &format!("signature_policy/steps/{i}/meaning"),
                    "meanings are 1-32 characters of a-z, 0-9, '-', '_' and space",
                ));
            }
            if steps[..i].iter().any(|o| o.meaning == s.meaning) {
                return Err(DefinitionError::new(
                    &format!("signature_policy/steps/{i}/meaning"),
                    "each meaning appears once",
                ));
            }
            let allowed = [
                Permission::RecordsWrite,
                Permission::RecordsReview,
                Permission::RecordsApprove,
            ];
            if !Permission::parse(&s.permission).is_some_and(|p| allowed.contains(&p)) {
                return Err(DefinitionError::new(
                    &format!("signature_policy/steps/{i}/permission"),
                    "one of records:write, records:review, records:approve",
                ));
            }
        }
        if self.searchable.len() > MAX_SEARCHABLE {
            return Err(DefinitionError::new(
                "searchable",
                format!("at most {MAX_SEARCHABLE} searchable fields"),
            ));
        }
        for (i, f) in self.searchable.iter().enumerate() {
            let ok = !f.is_empty()
                && f.len() <= 64
                && f.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok || self.searchable[..i].contains(f) {
                return Err(DefinitionError::new(
                    &format!("searchable/{i}"),
                    "searchable fields are distinct top-level property names of 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
                ));
            }
        }
        if self.retention_days.is_some_and(|d| d > 365 * 100) {
            return Err(DefinitionError::new("retention_days", "at most 36500 days"));
        }
        Ok(Compiled(compiled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(schema: Value) -> Definition {
        Definition {
            schema,
            signature_policy: SignaturePolicy {
                steps: vec![Step {
                    meaning: "approved".into(),
                    permission: "records:approve".into(),
                }],
                author_may_review: false,
            },
            searchable: vec![],
            retention_days: None,
        }
    }

    #[test]
    fn remote_references_are_not_fetched_and_bad_schemas_are_refused() {
        let remote = def(json!({"$ref": "https://127.0.0.1:1/schema.json"}));
        let e = remote.validate().unwrap_err();
        assert_eq!(e.pointer, "/schema", "{e:?}");
        assert!(def(json!({"type": "nonsense"})).validate().is_err());
        assert!(def(json!(["not", "an", "object"])).validate().is_err());
        let ok = def(
            json!({"type": "object", "properties": {"n": {"type": "integer", "pattern": "^(a+)+$"}}}),
        );
        let compiled = ok.validate().unwrap();
        assert!(compiled.violations(&json!({"n": 1})).is_empty());
        let v = compiled.violations(&json!({"n": "x"}));
        assert_eq!(v[0].pointer, "/n");
    }
}
