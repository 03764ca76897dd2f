//! The transport to identity providers: the core's [`IdpTransport`] port over reqwest
//! (rustls on aws-lc-rs, the system's roots). It follows no redirects (a redirect from
//! a token endpoint is an SSRF vector), bounds every request's time, and reads at most
//! [`MAX_IDP_RESPONSE`] bytes of any answer.

use std::time::Duration;

use strongroom_core::identity::sso::{IdpTransport, IdpTransportError, MAX_IDP_RESPONSE};

/// reqwest, configured for talking to identity providers.
#[derive(Debug, Clone)]
pub(crate) struct ReqwestIdp(reqwest::Client);

impl ReqwestIdp {
    /// A client with no redirects, a 5 s connect and a 10 s overall timeout.
    pub(crate) fn new() -> anyhow::Result<Self> {
        Ok(Self(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
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
