//! A bounded, expiring cache of unwrapped keys.
//!
//! Unwrapping through an HSM costs a round trip; caching makes that a rare event. The
//! cache is bounded (oldest entries evicted first), entries expire after a TTL so keys
//! destroyed by another process stop working here too, and evicted keys are wiped.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::secret::SecretBytes;
use crate::tenant::TenantId;

/// Which key of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    /// Key-encryption key of a version.
    Kek(u32),
    /// Data key of a version.
    Dek(u32),
}

type Id = (TenantId, Slot);

/// The cache. Cheap to share behind an `Arc`.
pub(crate) struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Id, (Instant, SecretBytes)>,
    order: VecDeque<Id>,
}

impl KeyCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub(crate) fn get(&self, tenant: TenantId, slot: Slot) -> Option<SecretBytes> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match e.map.get(&(tenant, slot)) {
            Some((at, key)) if at.elapsed() < self.ttl => Some(key.clone()),
            Some(_) => {
                e.map.remove(&(tenant, slot));
                None
            }
            None => None,
        }
    }

    /// Caches `key`. A capacity of 0 disables caching (benchmarks measure the uncached
    /// path that way; configuration requires at least 16).
    pub(crate) fn put(&self, tenant: TenantId, slot: Slot, key: SecretBytes) {
        if self.capacity == 0 {
            return;
        }
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.map
            .insert((tenant, slot), (Instant::now(), key))
            .is_none()
        {
            e.order.push_back((tenant, slot));
        }
        while e.map.len() > self.capacity {
            let Some(oldest) = e.order.pop_front() else {
                break;
            };
            e.map.remove(&oldest);
        }
        // Keep the order queue from growing with ids already removed.
        if e.order.len() > self.capacity * 2 {
            let Entries { map, order } = &mut *e;
            order.retain(|id| map.contains_key(id));
        }
    }

    /// Drops (and so wipes) every entry past its TTL, read or not: an expired key does
    /// not linger in memory until someone asks for it. The server calls this on a
    /// timer. Returns how many were dropped.
    pub(crate) fn purge_expired(&self) -> usize {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let before = e.map.len();
        let ttl = self.ttl;
        let Entries { map, order } = &mut *e;
        map.retain(|_, (at, _)| at.elapsed() < ttl);
        order.retain(|id| map.contains_key(id));
        before - map.len()
    }

    /// Forgets every key of a tenant (after rotation or destruction).
    pub(crate) fn forget_tenant(&self, tenant: TenantId) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        e.map.retain(|(t, _), _| *t != tenant);
        e.order.retain(|(t, _)| *t != tenant);
    }

    /// Number of cached keys.
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_expiring_and_forgetful() {
        let c = KeyCache::new(Duration::from_secs(60), 2);
        let (a, b) = (TenantId::generate(), TenantId::generate());
        c.put(a, Slot::Dek(1), SecretBytes::new(vec![1]));
        c.put(a, Slot::Dek(2), SecretBytes::new(vec![2]));
        c.put(b, Slot::Dek(1), SecretBytes::new(vec![3]));
        assert_eq!(c.len(), 2);
        assert!(c.get(a, Slot::Dek(1)).is_none(), "oldest evicted");
        assert_eq!(c.get(b, Slot::Dek(1)).unwrap().expose(), &[3]);
        c.forget_tenant(b);
        assert!(c.get(b, Slot::Dek(1)).is_none());
        let short = KeyCache::new(Duration::ZERO, 4);
        short.put(a, Slot::Kek(1), SecretBytes::new(vec![1]));
        assert!(short.get(a, Slot::Kek(1)).is_none(), "expired");
    }

    #[test]
    fn expired_keys_are_dropped_without_being_read() {
        let c = KeyCache::new(Duration::from_millis(50), 8);
        let a = TenantId::generate();
        c.put(a, Slot::Dek(1), SecretBytes::new(vec![1]));
        c.put(a, Slot::Kek(1), SecretBytes::new(vec![2]));
        assert_eq!(c.purge_expired(), 0, "still fresh");
        std::thread::sleep(Duration::from_millis(60));
        c.put(a, Slot::Dek(2), SecretBytes::new(vec![3]));
        assert_eq!(c.purge_expired(), 2);
        assert_eq!(c.len(), 1, "only the fresh one is left");
    }
}
