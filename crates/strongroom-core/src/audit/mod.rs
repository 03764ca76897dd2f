//! The audit trail: one append-only, tamper-evident log per tenant, in the formats of
//! the transparency-log ecosystem so that auditors can verify it with tools that are not
//! ours.
//!
//! * [`entry`] — the entry, its action catalogue and canonical serialisation.
//! * [`log`] — integrating appended entries into tiles and signing checkpoints.
//! * [`merkle`] — RFC 9162 tree hashing, inclusion and consistency proofs.
//! * [`note`] — C2SP signed notes with Ed25519 keys, verifier keys (vkey) and
//!   tlog-checkpoint bodies.
//! * [`origin`] — the request's IP address and user agent, carried to the entries it
//!   causes.
//! * [`personal`] — personal data sealed under per-subject keys (erasable without
//!   breaking proofs).
//! * [`recorder`] — the one maker of audit events (time, actor, sealed origin).
//! * [`review`] — decoded entries for a review, as JSON or CSV.
//! * [`verify`] — checking an exported log offline, with a one-line verdict.
//! * [`tiles`] — C2SP tlog-tiles paths and entry bundles.
//!
//! Layering: the formats (`entry`, `merkle`, `note`, `tiles`, `tree`, `verify`) use
//! nothing of the crate's services; storage's ports use the formats; `keys` uses
//! storage and never this module; the services here (`recorder`, `personal`, `log`,
//! `review`) use keys and storage. A test checks the imports, so no cycle creeps back.

#[cfg(test)]
mod differential;
pub mod entry;
pub mod log;
pub mod merkle;
pub mod note;
pub mod origin;
pub mod personal;
pub mod recorder;
pub mod review;
pub mod tiles;
pub mod tree;
pub mod verify;
