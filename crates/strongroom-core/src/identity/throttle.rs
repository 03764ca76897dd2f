//! Sign-in throttling: temporary, growing lockouts that slow guessing without letting
//! an attacker lock a user out.
//!
//! Failures are counted per (account, client address) pair and per client address. A
//! pair that fails `lockout_after` times is locked for `lockout_base_secs`, doubling
//! with each further failure up to 15 minutes; an address that fails
//! `10 × lockout_after` times against any accounts (password spraying) is locked for
//! 15 minutes. IPv6 addresses count by their /64 (one customer line), IPv4-mapped IPv6
//! as the IPv4 address. The account as such is never locked by password failures: its
//! owner, signing in from their own address, is not affected by someone else's
//! failures. A success clears the pair.
//!
//! Every attempt is **reserved before any password is checked**: [`SignInThrottle::begin`]
//! counts it as in flight, under the same lock that decides whether it may proceed, so
//! a burst of concurrent attempts can check at most as many passwords as failures
//! remain before the lockout. An [`Attempt`] that is dropped without a verdict (a
//! cancelled request) counts as a failure.
//!
//! Second factors are counted per account, whatever the address: whoever reaches that
//! step knows the password, and a wrong TOTP code is a guess at a six-digit secret.
//! After `lockout_after` wrong second factors the account's second-factor step is
//! locked for `lockout_base_secs`, doubling up to 15 minutes.
//!
//! Failures are remembered for a day after the last one, so lockouts keep growing
//! for a persistent guesser. State is in memory (one process; a restart forgets it)
//! and bounded in size (100,000 records; idle ones are dropped first).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::clock::SharedClock;
use crate::config::PasswordConfig;

/// Longest lockout.
const MAX_LOCK: Duration = Duration::minutes(15);
/// Failures are forgotten this long after the last one. Longer than the longest lock,
/// so that after a lockout ends the next failure locks again (for longer) instead of
/// starting a fresh allowance: a guesser gets a few tries a day per account and
/// address, not a few per lockout.
const WINDOW: Duration = Duration::hours(24);
/// Most records kept (a hard bound): beyond it, records that lock nothing and have
/// nothing in flight go first, oldest first, then the oldest locked ones.
const CAPACITY: usize = 100_000;
/// What a refused attempt is told to wait when the refusal is only because earlier
/// attempts are still being checked.
const IN_FLIGHT_WAIT_SECS: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Ip(IpAddr),
    Factor(String),
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    in_flight: u32,
    last: OffsetDateTime,
    locked_until: Option<OffsetDateTime>,
}

impl Record {
    fn new(now: OffsetDateTime) -> Self {
        Self {
            failures: 0,
            in_flight: 0,
            last: now,
            locked_until: None,
        }
    }

    fn idle(&self, now: OffsetDateTime) -> bool {
        self.in_flight == 0 && self.locked_until.is_none_or(|u| u <= now)
    }
}

/// The address that throttling counts: IPv6 by its /64, IPv4-mapped IPv6 as IPv4.
pub fn throttle_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
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

/// A sign-in attempt the throttle let through, counted as in flight until it ends.
/// [`Attempt::succeeded`] clears the pair; anything else — [`Attempt::failed`] or
/// dropping it — counts a failure.
#[must_use = "an attempt counts as failed unless marked succeeded"]
pub struct Attempt<'a> {
    throttle: &'a SignInThrottle,
    keys: Vec<(Key, u32)>,
    done: bool,
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt").finish_non_exhaustive()
    }
}

impl Attempt<'_> {
    /// The credentials were right: the pair's failures are forgotten.
    pub fn succeeded(mut self) {
        self.done = true;
        self.throttle.finish(&self.keys, true);
    }

    /// The credentials were wrong.
    pub fn failed(mut self) {
        self.done = true;
        self.throttle.finish(&self.keys, false);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle.finish(&self.keys, false);
        }
    }
}

impl SignInThrottle {
    /// A throttle with the configured thresholds.
    pub fn new(config: &PasswordConfig, clock: SharedClock) -> Self {
        Self {
            clock,
            after: config.lockout_after.max(1),
            base: Duration::seconds(i64::try_from(config.lockout_base_secs).unwrap_or(30)),
            records: Mutex::new(HashMap::new()),
        }
    }

    /// Reserves a password attempt at `account` from `ip`, or `Err(seconds to wait)`
    /// while the pair or the address is locked — or would be, if the attempts already
    /// in flight all fail.
    pub fn begin(&self, account: &str, ip: IpAddr) -> Result<Attempt<'_>, u64> {
        let ip = throttle_address(ip);
        let keys = vec![
            (Key::Pair(account.to_lowercase(), ip), self.after),
            (Key::Ip(ip), self.after.saturating_mul(10)),
        ];
        self.reserve(keys)
    }

    /// Reserves a second-factor attempt at `account` (any address), or `Err(seconds)`
    /// while its second-factor step is locked.
    pub fn begin_second_factor(&self, account: &str) -> Result<Attempt<'_>, u64> {
        self.reserve(vec![(Key::Factor(account.to_lowercase()), self.after)])
    }

    fn reserve(&self, keys: Vec<(Key, u32)>) -> Result<Attempt<'_>, u64> {
        let now = self.clock.now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= CAPACITY {
            evict(&mut records, now);
        }
        let mut wait = None;
        for (key, threshold) in &keys {
            let Some(r) = records.get_mut(key) else {
                continue;
            };
            if now - r.last > WINDOW && r.in_flight == 0 {
                *r = Record::new(now);
            }
            let refuse = match r.locked_until {
                Some(until) if until > now => Some(secs(until - now)),
                // A lockout just ended: one attempt at a time (a failure locks again,
                // for twice as long).
                _ if r.failures >= *threshold => (r.in_flight > 0).then_some(IN_FLIGHT_WAIT_SECS),
                // Attempts in flight that would reach the threshold if they all fail.
                _ if r.failures.saturating_add(r.in_flight) >= *threshold => {
                    Some(IN_FLIGHT_WAIT_SECS)
                }
                _ => None,
            };
            wait = wait.max(refuse);
        }
        if let Some(s) = wait {
            return Err(s);
        }
        for (key, _) in &keys {
            let r = records
                .entry(key.clone())
                .or_insert_with(|| Record::new(now));
            r.in_flight = r.in_flight.saturating_add(1);
        }
        Ok(Attempt {
            throttle: self,
            keys,
            done: false,
        })
    }

    fn finish(&self, keys: &[(Key, u32)], success: bool) {
        let now = self.clock.now();
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        for (key, threshold) in keys {
            let r = records
                .entry(key.clone())
                .or_insert_with(|| Record::new(now));
            r.in_flight = r.in_flight.saturating_sub(1);
            if success {
                if !matches!(key, Key::Ip(_)) {
                    r.failures = 0;
                    r.locked_until = None;
                }
                continue;
            }
            r.failures = r.failures.saturating_add(1);
            r.last = now;
            if r.failures >= *threshold {
                let lock = match key {
                    Key::Ip(_) => MAX_LOCK,
                    Key::Pair(..) | Key::Factor(_) => {
                        let doublings = (r.failures - threshold).min(16);
                        (self.base * 2i32.saturating_pow(doublings)).min(MAX_LOCK)
                    }
                };
                r.locked_until = Some(now + lock);
            }
        }
    }
}

/// Brings the records down to 90% of [`CAPACITY`]: expired ones first, then idle ones
/// (oldest failure first), then — under a flood of distinct addresses — the oldest of
/// the rest that have nothing in flight. Runs only at capacity, so its sort is paid
/// once per tenth of the capacity.
fn evict(records: &mut HashMap<Key, Record>, now: OffsetDateTime) {
    records.retain(|_, r| !r.idle(now) || now - r.last <= WINDOW);
    let target = CAPACITY / 10 * 9;
    if records.len() <= target {
        return;
    }
    let mut order: Vec<(bool, OffsetDateTime, Key)> = records
        .iter()
        .filter(|(_, r)| r.in_flight == 0)
        .map(|(k, r)| (!r.idle(now), r.last, k.clone()))
        .collect();
    order.sort_unstable_by_key(|o| (o.0, o.1));
    let excess = records.len() - target;
    for (_, _, key) in order.into_iter().take(excess) {
        records.remove(&key);
    }
}

fn secs(d: Duration) -> u64 {
    u64::try_from(d.whole_seconds().max(1)).unwrap_or(1)
}

#[cfg(test)]
mod tests;
