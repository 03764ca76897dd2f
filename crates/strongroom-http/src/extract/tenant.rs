//! The tenant a request addresses, and the client it comes from.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;
use strongroom_core::tenant::Slug;
use utoipa::IntoParams;

use crate::problem::{self, Problem};

/// The `{tenant}` path parameter every tenant-scoped route shares (`/v1/t/{tenant}/…`
/// and the operators' `/v1/tenants/{tenant}/…`). Extract it with `ApiPath`: a slug
/// that cannot exist answers 404 like one that does not.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's slug.
    pub tenant: Slug,
}

/// The client's network address (the TCP peer), for the routes whose rules depend on
/// it (sign-in throttling). A request without one — served by something other than the
/// real listener — is refused rather than let through unthrottled.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| ClientAddr(c.0.ip()))
            .ok_or_else(|| {
                Problem::new(
                    &problem::FORBIDDEN,
                    "The client's network address is unknown; sign-in is refused.",
                )
            })
    }
}
