//! Storage adapters for Strongroom.
//!
//! [`sqlite::SqliteStore`] is the embedded default: one control database for the
//! platform directory and one database per residency region for tenant data.
//! [`postgres::PgStore`] is the same on PostgreSQL servers, with row-level security
//! and a per-tenant write lock in the database, for several stateless server nodes.
//! SQL lives only here, written out plainly per backend. Encrypted streams live in
//! files ([`blobs::FsBlobStore`]) or S3-compatible buckets ([`s3::S3BlobStore`]).

pub mod blobs;
pub mod postgres;
pub mod s3;
pub mod sqlite;

#[cfg(test)]
mod conformance;

mod codec;
mod error;
mod time_codec;
