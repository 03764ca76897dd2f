//! Strongroom's integration tests: one binary, real server, real TLS, real SQLite.

// Tests state their expectations with unwrap/expect/panic; a failure is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Table-driven cases are long lists, and wire-format builders cast small known lengths.
#![allow(clippy::too_many_lines, clippy::cast_possible_truncation)]

mod architecture;
mod audit;
mod audit_review;
mod bad_input;
mod cli;
mod durability;
mod encryption;
mod headers;
mod identity;
mod in_process;
mod isolation;
mod lifecycle;
mod openapi;
mod operators;
mod records;
mod saml;
mod scale_out;
mod security;
mod sso;
mod support;
mod tls;
