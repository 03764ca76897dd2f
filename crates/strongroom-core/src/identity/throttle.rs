//! Sign-in throttling: temporary, growing lockouts that slow guessing without letting
//! an attacker lock a user out.
//!
//! Failures are counted per (account, client IP) pair and per client IP. A pair that
//! fails `lockout_after` times is locked for `lockout_base_secs`, doubling with each
//! further failure up to 15 minutes; an IP that fails `10 × lockout_after` times
//! against any accounts (password spraying) is locked for 15 minutes. The account as
//! such is never locked: its owner, signing in from their own address, is not affected
//! by someone else's failures. A success clears the pair. State is in memory (one
//! process; a restart forgets it) and bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::clock::SharedClock;
use crate::config::PasswordConfig;

/// Longest lockout.
const MAX_LOCK: Duration = Duration::minutes(15);
/// Failures are forgotten this long after the last one.
const WINDOW: Duration = Duration::minutes(15);
/// Most records kept; beyond it, records that lock nothing are dropped first.
const CAPACITY: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
}

/// Counts failed sign-ins and answers whether an attempt may proceed.
pub struct SignInThrottle {
    clock: SharedClock,
    after: u32,
    base: Duration,
    records: Mutex<HashMap<Key, Record>>,
}

impl std::fmt::Debug for SignInThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInThrottle")
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl SignInThrottle {
    /// A throttle with the configured thresholds.
    pub fn new(config: &PasswordConfig, clock: SharedClock) -> Self {
        Self {
            clock,
            after: config.lockout_after,
            base: Duration::seconds(i64::try_from(config.lockout_base_secs).unwrap_or(30)),
            records: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, ip: IpAddr) -> [Key; 2] {
        [Key::Pair(account.to_lowercase(), ip), Key::Ip(ip)]
    }

    /// `Err(seconds)` while `account` may not be tried from `ip`.
    pub fn check(&self, account: &str, ip: IpAddr) -> Result<(), u64> {
        let now = self.clock.now();
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let wait = Self::keys(account, ip)
            .iter()
            .filter_map(|k| records.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| (until - now).whole_seconds().max(1))
            .max();
        match wait {
            Some(s) => Err(u64::try_from(s).unwrap_or(1)),
            None => Ok(()),
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, account: &str, ip: IpAddr) {
        let now = self.clock.now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= CAPACITY {
            records.retain(|_, r| r.locked_until.is_some_and(|u| u > now));
        }
        for (key, threshold) in Self::keys(account, ip)
            .into_iter()
            .zip([self.after, self.after.saturating_mul(10)])
        {
            let r = records.entry(key.clone()).or_insert(Record {
                failures: 0,
                last: now,
                locked_until: None,
            });
            if now - r.last > WINDOW {
                r.failures = 0;
            }
            r.failures = r.failures.saturating_add(1);
            r.last = now;
            if r.failures >= threshold {
                let lock = match key {
                    Key::Pair(..) => {
                        let doublings = (r.failures - threshold).min(16);
                        (self.base * 2i32.saturating_pow(doublings)).min(MAX_LOCK)
                    }
                    Key::Ip(_) => MAX_LOCK,
                };
                r.locked_until = Some(now + lock);
            }
        }
    }

    /// [`SignInThrottle::failed`] when the attempt came from a network address.
    pub fn failed_from(&self, account: &str, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.failed(account, ip);
        }
    }

    /// Records a success: the pair's failures are forgotten.
    pub fn succeeded(&self, account: &str, ip: IpAddr) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.remove(&Key::Pair(account.to_lowercase(), ip));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn lockouts_grow_expire_and_stay_with_the_address() {
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let config = PasswordConfig {
            lockout_after: 3,
            lockout_base_secs: 10,
            ..PasswordConfig::default()
        };
        let t = SignInThrottle::new(&config, Arc::new(clock.clone()));
        let (me, attacker): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "198.51.100.9".parse().unwrap(),
        );
        for _ in 0..3 {
            assert!(t.check("Ann@x", attacker).is_ok());
            t.failed("ann@x", attacker);
        }
        assert_eq!(t.check("ann@x", attacker), Err(10));
        // The owner, elsewhere, is not locked out.
        assert!(t.check("ann@x", me).is_ok());
        clock.advance(Duration::seconds(11));
        assert!(t.check("ann@x", attacker).is_ok());
        t.failed("ann@x", attacker);
        assert_eq!(t.check("ann@x", attacker), Err(20), "doubles");
        for _ in 0..20 {
            t.failed("ann@x", attacker);
        }
        assert_eq!(t.check("ann@x", attacker), Err(900), "capped at 15 minutes");
        // Spraying many accounts from one address locks the address.
        let sprayer: IpAddr = "203.0.113.5".parse().unwrap();
        for i in 0..30 {
            t.failed(&format!("user{i}@x"), sprayer);
        }
        assert!(t.check("someone-new@x", sprayer).is_err());
        // A success clears the pair.
        t.failed("bob@x", me);
        t.failed("bob@x", me);
        t.succeeded("bob@x", me);
        t.failed("bob@x", me);
        assert!(t.check("bob@x", me).is_ok());
    }
}
