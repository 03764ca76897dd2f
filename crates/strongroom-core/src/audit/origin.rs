//! Where a request came from (client IP address, user agent), for audit entries.
//!
//! The HTTP edge runs every request inside [`scope`], so whatever that request causes
//! to be audited — however deep in the platform — is attributed to its origin without
//! any handler having to pass it along (and so without any handler being able to forget
//! it). Work that has no request (the CLI, background tasks) has no origin.
//!
//! An origin is personal data: it is only ever stored sealed under the acting subject's
//! key ([`super::personal`]), never in clear, never in logs.

use std::future::Future;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Longest user agent kept, in bytes (longer ones are cut at a character boundary).
pub const MAX_USER_AGENT: usize = 512;

/// The network origin of a request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The client's IP address as seen by the server (the TCP peer).
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, bounded to [`MAX_USER_AGENT`] bytes.
    pub user_agent: Option<String>,
}

/// Personal data: never printed in full.
impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin").finish_non_exhaustive()
    }
}

impl Origin {
    /// An origin with the user agent bounded and stripped of control characters.
    pub fn new(ip: Option<IpAddr>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent.map(|ua| {
            let mut out = String::new();
            for c in ua.chars().filter(|c| !c.is_control()) {
                if out.len() + c.len_utf8() > MAX_USER_AGENT {
                    break;
                }
                out.push(c);
            }
            out
        });
        Self { ip, user_agent }
    }
}

tokio::task_local! {
    static CURRENT: Origin;
}

/// Runs `f` with `origin` as the origin of everything it audits.
pub async fn scope<F: Future>(origin: Origin, f: F) -> F::Output {
    CURRENT.scope(origin, f).await
}

/// The origin of the request being served, if any.
pub fn current() -> Option<Origin> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_bounded_and_cleaned() {
        let long = "é".repeat(400);
        let o = Origin::new(None, Some(&long));
        let ua = o.user_agent.unwrap_or_default();
        assert!(ua.len() <= MAX_USER_AGENT && ua.len() >= MAX_USER_AGENT - 1);
        let o = Origin::new(None, Some("curl/8\r\nX-Evil: 1"));
        assert_eq!(o.user_agent.as_deref(), Some("curl/8X-Evil: 1"));
    }

    #[tokio::test]
    async fn the_origin_is_visible_inside_its_scope_only() {
        assert!(current().is_none());
        let o = Origin::new("192.0.2.7".parse().ok(), Some("t"));
        let seen = scope(o.clone(), async { current() }).await;
        assert_eq!(seen, Some(o));
        assert!(current().is_none());
        assert!(!format!("{:?}", seen).contains("192.0.2.7"));
    }
}
