//! Table-driven API scenarios: each [`Case`] states the request, the status, the
//! problem `type`, what the body must contain, what it must **not** contain (hashes,
//! secrets, another tenant's names), and which audit actions the request must have
//! appended to the tenant's trail.

use reqwest::Method;
use serde_json::Value;

use crate::Api;

/// Who sends a case's request.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// No credentials.
    Nobody,
    /// A bearer token.
    Token(&'a str),
}

/// One row of a scenario table.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    /// What the row checks, for failure messages.
    pub name: &'a str,
    /// The request.
    pub method: Method,
    /// Its path.
    pub path: String,
    /// Its sender.
    pub who: Who<'a>,
    /// Its JSON body.
    pub body: Option<Value>,
    /// The status it must get.
    pub status: u16,
    /// The problem slug it must get (errors only).
    pub problem: Option<&'a str>,
    /// Text the body must contain.
    pub contains: &'a [&'a str],
    /// Text the body must not contain.
    pub absent: &'a [&'a str],
    /// Audit actions the request must have appended (in the audited tenant's trail).
    pub audited: &'a [&'a str],
}

impl Default for Case<'_> {
    fn default() -> Self {
        Self {
            name: "",
            method: Method::GET,
            path: String::new(),
            who: Who::Nobody,
            body: None,
            status: 200,
            problem: None,
            contains: &[],
            absent: &[],
            audited: &[],
        }
    }
}

/// Runs `cases` in order against `api`. The trail of `tenant` is read with `auditor`
/// (a token with `audit:read`) before and after each case, so each case's own audit
/// entries can be checked; reading the trail appends only `audit.query` entries.
pub async fn run_cases(api: &Api, auditor: &str, tenant: &str, cases: &[Case<'_>]) {
    for case in cases {
        let before = api.audit_entries(auditor, tenant).await.len();
        let token = match case.who {
            Who::Nobody => None,
            Who::Token(t) => Some(t),
        };
        let reply = api
            .send(case.method.clone(), &case.path, token, case.body.as_ref())
            .await;
        let name = case.name;
        assert_eq!(reply.status, case.status, "{name}: {}", reply.text);
        if let Some(slug) = case.problem {
            reply.problem(case.status, slug);
        }
        for c in case.contains {
            assert!(
                reply.text.contains(c),
                "{name}: {c:?} missing from {}",
                reply.text
            );
        }
        for a in case.absent {
            assert!(
                !reply.text.contains(a),
                "{name}: {a:?} leaked into {}",
                reply.text
            );
        }
        let after = api.audit_entries(auditor, tenant).await;
        let appended: Vec<&str> = after[before..]
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for want in case.audited {
            assert!(
                appended.contains(want),
                "{name}: {want} not in {appended:?}"
            );
        }
        if case.audited.is_empty() && case.status >= 400 {
            let refused: Vec<_> = appended.iter().filter(|a| **a != "audit.query").collect();
            assert!(
                refused.is_empty(),
                "{name}: a refused request wrote {refused:?}"
            );
        }
    }
}
