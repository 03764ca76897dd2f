//! Extractors: where outside bytes become typed values, and every rejection becomes a
//! problem+json response instead of axum's plain-text default.

mod auth;
mod form;
mod json;
mod params;
mod tenant;

pub use auth::{Auth, OperatorAuth};
pub use form::ApiForm;
pub use json::{ApiJson, OptionalJson};
pub use params::{ApiPath, ApiQuery};
pub use tenant::{ClientAddr, TenantPath};
