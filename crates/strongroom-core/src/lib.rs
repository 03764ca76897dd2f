//! Strongroom's domain and policy.
//!
//! This crate knows what a tenant, a key, an operator and an authorization are, and
//! what rules they obey. It knows nothing of HTTP, SQL or sockets: the storage
//! adapters implement [`store::Store`], the HTTP edge calls [`platform::Platform`].
//! Keeping the rules here lets the compiler enforce that the CLI and the API apply
//! exactly the same ones.

pub mod access;
pub mod audit;
pub mod clock;
pub mod config;
pub mod identity;
pub mod keys;
pub mod objects;
pub mod platform;
pub mod records;
pub mod secret;
pub mod store;
pub mod tenant;
