//! The audit recorder: the one way an audited write gets its audit event.
//!
//! Every event is made here: stamped with the server clock, and carrying the request's
//! origin sealed under the acting subject's key ([`super::personal`]). Nothing else in
//! the crate builds an [`AuditEvent`], so no audited write can leave the origin out or
//! bring its own clock. The store then appends the event in the same transaction as the
//! write it describes; [`Recorder::record`] appends an event that describes no other
//! write (a query, a sign-in attempt).

use std::sync::Arc;

use super::entry::NewEntry;
use super::personal::Personal;
use crate::access::TenantScope;
use crate::clock::SharedClock;
use crate::keys::{KeyProvider, KeyringError};
use crate::store::{AuditEvent, AuditStore};

/// Makes and appends audit events.
pub struct Recorder {
    store: Arc<dyn AuditStore>,
    personal: Personal,
    clock: SharedClock,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder over `store`, sealing personal data under subject keys wrapped by
    /// `root`.
    pub fn new(store: Arc<dyn AuditStore>, root: Arc<dyn KeyProvider>, clock: SharedClock) -> Self {
        Self {
            personal: Personal::new(store.clone(), root, clock.clone()),
            store,
            clock,
        }
    }

    /// The event for `entry` by `scope`'s actor, now, from the current request's origin
    /// (sealed), for the store to append with the write it describes.
    pub async fn event(
        &self,
        scope: &TenantScope,
        mut entry: NewEntry,
    ) -> Result<AuditEvent, KeyringError> {
        entry.personal = self.personal.seal_current(scope).await?;
        Ok(AuditEvent {
            entry,
            at: self.clock.now(),
        })
    }

    /// Appends `entry` on its own (it describes no other write). Returns its sequence
    /// number.
    pub async fn record(&self, scope: &TenantScope, entry: NewEntry) -> Result<u64, KeyringError> {
        let event = self.event(scope, entry).await?;
        Ok(self.store.append_audit(scope, &event).await?)
    }

    /// Opens the personal data of stored entries (for reviews).
    pub fn personal(&self) -> &Personal {
        &self.personal
    }
}
