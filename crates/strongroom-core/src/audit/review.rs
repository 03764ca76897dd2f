//! Reading the audit trail for a review: stored entries decoded, personal data opened
//! (or marked erased), and rendered as JSON or CSV for an auditor's spreadsheet.
//!
//! The canonical bytes stay the evidence: each reviewed entry carries its `leaf_hash`,
//! so a row in an export can be matched to the signed tree with an inclusion proof.

use serde::{Deserialize, Serialize};

use super::entry::SealedPersonal;
use crate::store::StoredEntry;

/// Most characters of an actor or target filter (`<kind>:<id>`).
pub const MAX_FILTER: usize = 300;

/// Who acted, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewActor {
    /// `operator`, `local-admin`, `system` (later `user`, `application`).
    pub kind: String,
    /// The actor's id, when it has one.
    pub id: Option<String>,
}

/// What was acted on, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewTarget {
    /// Object kind.
    pub kind: String,
    /// Object id.
    pub id: String,
    /// Object version after the action.
    pub version: Option<u64>,
}

/// The personal data of an entry, opened for the reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReviewPersonal {
    /// Client IP address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// True when the subject's key was destroyed: the data is gone for good.
    pub erased: bool,
    /// True when the reader may not see it (an operator whose support grant does not
    /// include personal data): it stays sealed to them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
}

/// One entry of the trail, decoded for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReviewEntry {
    /// Position in the log.
    pub seq: u64,
    /// UTC time, RFC 3339 with microseconds.
    pub time: String,
    /// Action name.
    pub action: String,
    /// Who acted.
    pub actor: ReviewActor,
    /// What was acted on.
    pub target: ReviewTarget,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    /// Session id of the actor.
    pub session: Option<String>,
    /// SHA-256 (hex) of the object before.
    pub before: Option<String>,
    /// SHA-256 (hex) of the object after.
    pub after: Option<String>,
    /// Personal data, opened (or marked erased).
    pub personal: Option<ReviewPersonal>,
    /// RFC 9162 leaf hash (hex) of the canonical entry: what the tree commits to.
    pub leaf_hash: String,
}

/// The stored fields of an entry, for decoding.
#[derive(Debug, Deserialize)]
struct Stored {
    action: String,
    actor: ReviewActor,
    after: Option<String>,
    before: Option<String>,
    personal: Option<StoredPersonal>,
    reason: Option<String>,
    seq: u64,
    session: Option<String>,
    target: ReviewTarget,
    time: String,
}

#[derive(Debug, Deserialize)]
struct StoredPersonal {
    sealed: String,
    subject: String,
}

/// Decodes a stored entry; its sealed personal data is returned beside it for opening.
pub fn decode(
    stored: &StoredEntry,
) -> Result<(ReviewEntry, Option<SealedPersonal>), serde_json::Error> {
    let s: Stored = serde_json::from_slice(&stored.entry)?;
    Ok((
        ReviewEntry {
            seq: s.seq,
            time: s.time,
            action: s.action,
            actor: s.actor,
            target: s.target,
            reason: s.reason,
            session: s.session,
            before: s.before,
            after: s.after,
            personal: None,
            leaf_hash: hex::encode(stored.leaf_hash),
        },
        s.personal.map(|p| SealedPersonal {
            sealed: p.sealed,
            subject: p.subject,
        }),
    ))
}

/// CSV column names, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "seq",
    "time",
    "action",
    "actor_kind",
    "actor_id",
    "target_kind",
    "target_id",
    "target_version",
    "reason",
    "session",
    "before",
    "after",
    "ip",
    "user_agent",
    "personal_erased",
    "leaf_hash",
];

/// One CSV field per RFC 4180: quoted when it holds a comma, quote or line break, with
/// quotes doubled. A field a spreadsheet would run as a formula (starting with `=`,
/// `+`, `-`, `@`, tab or carriage return) is prefixed with `'` (OWASP CSV injection);
/// no value Strongroom writes starts that way except free text such as reasons.
fn field(out: &mut String, value: &str) {
    let guarded = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = guarded || value.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if guarded {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quote {
        out.push('"');
    }
}

/// Renders entries as CSV (header row, CRLF line ends, UTF-8).
pub fn to_csv(entries: &[ReviewEntry]) -> String {
    let mut out = csv_header();
    csv_rows(&mut out, entries);
    out
}

/// The CSV header row (with its CRLF).
pub fn csv_header() -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    out
}

/// Appends one CSV row (CRLF-terminated) per entry to `out`: what a streamed export
/// sends page by page after [`csv_header`].
pub fn csv_rows(out: &mut String, entries: &[ReviewEntry]) {
    for e in entries {
        let p = e.personal.as_ref();
        let cells: [String; 16] = [
            e.seq.to_string(),
            e.time.clone(),
            e.action.clone(),
            e.actor.kind.clone(),
            e.actor.id.clone().unwrap_or_default(),
            e.target.kind.clone(),
            e.target.id.clone(),
            e.target.version.map(|v| v.to_string()).unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            e.session.clone().unwrap_or_default(),
            e.before.clone().unwrap_or_default(),
            e.after.clone().unwrap_or_default(),
            p.and_then(|p| p.ip.clone()).unwrap_or_default(),
            p.and_then(|p| p.user_agent.clone()).unwrap_or_default(),
            p.map(|p| {
                if p.withheld {
                    "withheld".to_owned()
                } else {
                    p.erased.to_string()
                }
            })
            .unwrap_or_default(),
            e.leaf_hash.clone(),
        ];
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(out, c);
        }
        out.push_str("\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let mut s = String::new();
        field(&mut s, "plain");
        s.push('|');
        field(&mut s, "a,b \"q\"\nline");
        s.push('|');
        field(&mut s, "=HYPERLINK(\"x\")");
        s.push('|');
        field(&mut s, "-1");
        assert_eq!(
            s,
            "plain|\"a,b \"\"q\"\"\nline\"|\"'=HYPERLINK(\"\"x\"\")\"|\"'-1\""
        );
    }
}
