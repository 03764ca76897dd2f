//! The transport to identity providers: the core's [`IdpTransport`] port over reqwest
//! (rustls on aws-lc-rs, the system's roots). It follows no redirects (a redirect from
//! a token endpoint is an SSRF vector), bounds every request's time, reads at most
//! [`MAX_IDP_RESPONSE`] bytes of any answer, speaks only `https` (plain `http` only when
//! loopback test IdPs are allowed), and connects only to public addresses: names are
//! resolved here and every internal address dropped, so neither a tenant's issuer nor
//! DNS (rebinding included: the check is at connect time) can reach the server's own
//! network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use strongroom_core::identity::sso::{
    IdpTransport, IdpTransportError, MAX_IDP_RESPONSE, address_allowed,
};

/// Resolves names with the system resolver, keeping only addresses the server may reach.
struct PublicOnly {
    allow_loopback: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| address_allowed(a.ip(), allow_loopback))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no address this server may reach").into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// reqwest, configured for talking to identity providers.
#[derive(Debug, Clone)]
pub(crate) struct ReqwestIdp(reqwest::Client);

impl ReqwestIdp {
    /// A client with no redirects, a 5 s connect and a 10 s overall timeout, `https`
    /// and public addresses only (plus loopback, over `http` too, with `allow_loopback`:
    /// `sso.allow_http_loopback`).
    pub(crate) fn new(allow_loopback: bool) -> anyhow::Result<Self> {
        Ok(Self(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .https_only(!allow_loopback)
                // A proxy would resolve the target itself, past the filter below.
                .no_proxy()
                .dns_resolver(Arc::new(PublicOnly { allow_loopback }))
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .user_agent(concat!("strongroom/", env!("CARGO_PKG_VERSION")))
                .build()?,
        ))
    }
}

fn failed(e: impl std::fmt::Display) -> IdpTransportError {
    IdpTransportError(e.to_string())
}

#[async_trait::async_trait]
impl IdpTransport for ReqwestIdp {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, IdpTransportError> {
        let request = reqwest::Request::try_from(request).map_err(failed)?;
        let mut response = self.0.execute(request).await.map_err(failed)?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_IDP_RESPONSE as u64)
        {
            return Err(failed("the identity provider's answer is too large"));
        }
        let mut out = http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_IDP_RESPONSE {
                return Err(failed("the identity provider's answer is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        out.body(body).map_err(failed)
    }
}
