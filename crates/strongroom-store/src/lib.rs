//! Storage adapters for Strongroom.
//!
//! [`sqlite::SqliteStore`] is the embedded default: one control database for the
//! platform directory and one database per residency region for tenant data. SQL lives
//! only here, written out plainly per backend.

pub mod blobs;
pub mod sqlite;

#[cfg(test)]
mod conformance;

mod error;
mod time_codec;
