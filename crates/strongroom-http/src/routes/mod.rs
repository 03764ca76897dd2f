//! Handlers, one file per resource. Handlers are thin: extract, call the platform,
//! shape the response.

pub(crate) mod applications;
pub(crate) mod audit;
pub(crate) mod health;
pub(crate) mod invitations;
pub(crate) mod meta;
pub(crate) mod mfa;
pub(crate) mod operator;
pub(crate) mod passkeys;
pub(crate) mod platform;
pub(crate) mod records;
pub(crate) mod sessions;
pub(crate) mod sso;
pub(crate) mod support;
pub(crate) mod tenants;
pub(crate) mod users;
