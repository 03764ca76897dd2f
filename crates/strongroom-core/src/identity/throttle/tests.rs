use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;

fn throttle(after: u32, base: u64) -> (SignInThrottle, ManualClock) {
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
    let config = PasswordConfig {
        lockout_after: after,
        lockout_base_secs: base,
        ..PasswordConfig::default()
    };
    (SignInThrottle::new(&config, Arc::new(clock.clone())), clock)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fail(t: &SignInThrottle, account: &str, from: IpAddr) {
    t.begin(account, from).unwrap().failed();
}

#[test]
fn lockouts_grow_expire_and_stay_with_the_address() {
    let (t, clock) = throttle(3, 10);
    let (me, attacker) = (ip("192.0.2.1"), ip("198.51.100.9"));
    for _ in 0..3 {
        t.begin("Ann@x", attacker).unwrap().failed();
    }
    assert_eq!(t.begin("ann@x", attacker).err(), Some(10));
    // The owner, elsewhere, is not locked out.
    assert!(t.begin("ann@x", me).is_ok());
    clock.advance(Duration::seconds(11));
    fail(&t, "ann@x", attacker);
    assert_eq!(t.begin("ann@x", attacker).err(), Some(20), "doubles");
    // Spraying many accounts from one address locks the address.
    let sprayer = ip("203.0.113.5");
    for i in 0..30 {
        fail(&t, &format!("user{i}@x"), sprayer);
    }
    assert!(t.begin("someone-new@x", sprayer).is_err());
    // A success clears the pair.
    fail(&t, "bob@x", me);
    fail(&t, "bob@x", me);
    t.begin("bob@x", me).unwrap().succeeded();
    fail(&t, "bob@x", me);
    assert!(t.begin("bob@x", me).is_ok());
}

#[test]
fn the_lock_is_capped_at_fifteen_minutes() {
    let (t, clock) = throttle(1, 10);
    let a = ip("192.0.2.7");
    let mut waits = Vec::new();
    for _ in 0..8 {
        fail(&t, "c@x", a);
        let wait = t.begin("c@x", a).err().unwrap();
        waits.push(wait);
        clock.advance(Duration::seconds(i64::try_from(wait).unwrap() + 1));
    }
    assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 900]);
}

#[test]
fn attempts_in_flight_count_before_any_password_is_checked() {
    // The concurrency bypass: a burst checked in full because failures were counted
    // only after hashing. Reservations make the (lockout_after + 1)-th attempt wait.
    let (t, _) = throttle(5, 30);
    let a = ip("192.0.2.9");
    let held: Vec<_> = (0..5).map(|_| t.begin("d@x", a).unwrap()).collect();
    assert_eq!(t.begin("d@x", a).err(), Some(IN_FLIGHT_WAIT_SECS));
    for attempt in held {
        attempt.failed();
    }
    assert_eq!(t.begin("d@x", a).err(), Some(30), "all five failed: locked");
}

#[test]
fn a_dropped_attempt_counts_as_a_failure() {
    let (t, _) = throttle(2, 30);
    let a = ip("192.0.2.10");
    drop(t.begin("e@x", a).unwrap());
    drop(t.begin("e@x", a).unwrap());
    assert_eq!(t.begin("e@x", a).err(), Some(30));
}

#[test]
fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
    let (t, _) = throttle(2, 30);
    fail(&t, "f@x", ip("2001:db8:1:2::1"));
    fail(&t, "f@x", ip("2001:db8:1:2:ffff::9"));
    assert!(
        t.begin("f@x", ip("2001:db8:1:2::abcd")).is_err(),
        "same /64"
    );
    assert!(t.begin("f@x", ip("2001:db8:1:3::1")).is_ok(), "another /64");
    fail(&t, "g@x", ip("::ffff:192.0.2.44"));
    fail(&t, "g@x", ip("192.0.2.44"));
    assert!(t.begin("g@x", ip("192.0.2.44")).is_err());
}

#[test]
fn second_factor_failures_lock_the_account_from_every_address() {
    let (t, clock) = throttle(3, 10);
    for _ in 0..3 {
        t.begin_second_factor("H@x").unwrap().failed();
    }
    assert_eq!(t.begin_second_factor("h@x").err(), Some(10));
    clock.advance(Duration::seconds(11));
    t.begin_second_factor("h@x").unwrap().failed();
    assert_eq!(t.begin_second_factor("h@x").err(), Some(20), "doubles");
    clock.advance(Duration::seconds(21));
    t.begin_second_factor("h@x").unwrap().succeeded();
    assert!(t.begin_second_factor("h@x").is_ok());
}

#[test]
fn records_stay_bounded_under_a_flood_of_addresses() {
    let (t, _clock) = throttle(1000, 30);
    // A failure from each of 120,000 addresses (fresh records, none expired).
    for i in 0..120_000u32 {
        let from = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        fail(&t, "acme/ann@acme.example", from);
    }
    let n = t.records.lock().unwrap().len();
    assert!(n <= super::CAPACITY, "{n} records");
}
