//! Passwords: the rules they must follow and argon2id hashing on a bounded pool.
//!
//! Hashing is deliberately expensive, so it runs on a fixed set of dedicated worker
//! threads: at most `workers` hashes run at once, at most `workers × QUEUE_PER_WORKER`
//! wait, and anything beyond that is refused as [`IdentityError::Busy`] instead of
//! piling up. Dedicated threads (rather than tokio's blocking pool, which grows to
//! hundreds of threads under a burst) also bound *retained* memory: the allocator keeps
//! a freed argon2 buffer per thread arena, so peak memory stays near
//! `workers × argon2_memory_kib` however many sign-ins arrive at once.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Params, Version};

use super::IdentityError;
use crate::config::PasswordConfig;
use crate::secret::SecretString;

/// How many callers may wait per worker before new ones are turned away.
const QUEUE_PER_WORKER: usize = 64;

/// Whether `stored` is a bcrypt hash (imported; re-hashed at the next sign-in).
pub fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Highest bcrypt cost accepted on import: each step doubles the work, and a cost of
/// 31 would pin a hashing worker for days at the first sign-in.
pub const MAX_BCRYPT_COST: u32 = 14;

/// Checks an imported bcrypt hash's shape: `$2a$`/`$2b$`/`$2y$`, a two-digit cost
/// 4–[`MAX_BCRYPT_COST`], 53 characters of bcrypt base64 (salt and hash): 60 in all.
pub fn check_bcrypt_import(hash: &str) -> Result<(), IdentityError> {
    let bad =
        || IdentityError::WeakPassword("not a bcrypt hash ($2b$<cost>$<53 characters>)".into());
    if hash.len() != 60 || !is_bcrypt(hash) || hash.as_bytes().get(6) != Some(&b'$') {
        return Err(bad());
    }
    let cost: u32 = hash[4..6].parse().map_err(|_| bad())?;
    let body_ok = hash[7..]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if !(4..=31).contains(&cost) || !body_ok {
        return Err(bad());
    }
    if cost > MAX_BCRYPT_COST {
        return Err(IdentityError::WeakPassword(
            format!("bcrypt cost {cost} is above the {MAX_BCRYPT_COST} this server accepts").into(),
        ));
    }
    Ok(())
}

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Shortest password accepted, in characters (NIST SP 800-63B asks for at least 8;
/// we ask more of accounts that guard regulated records).
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in characters: long passphrases are welcome, unbounded
/// input to a memory-hard function is not.
pub const MAX_CHARS: usize = 256;

/// Checks a new password against the rules (NIST SP 800-63B §3.1.1.2): length, and
/// not a common, repetitive, sequential or context-derived password ([`super::blocklist`]);
/// no composition rules. `context`: the account's address, the tenant's name.
pub fn check_policy(password: &SecretString, context: &[&str]) -> Result<(), IdentityError> {
    let n = password.char_count();
    if n < MIN_CHARS {
        return Err(IdentityError::WeakPassword(
            "shorter than 12 characters".into(),
        ));
    }
    if n > MAX_CHARS {
        return Err(IdentityError::WeakPassword(
            "longer than 256 characters".into(),
        ));
    }
    if let Some(why) = super::blocklist::refuse(password.expose(), context) {
        return Err(IdentityError::WeakPassword(why.into()));
    }
    guessable(password, context)
}

/// The field's estimator, zxcvbn (its dictionaries of common and breached passwords,
/// names and words, keyboard walks, dates, l33t substitutions, and the account's own
/// context as user inputs): anything it expects to fall within 10^10 guesses (score
/// below 3) is refused, with its warning as the reason. It reads the first 100
/// characters.
fn guessable(password: &SecretString, context: &[&str]) -> Result<(), IdentityError> {
    let mut inputs: Vec<&str> = vec!["strongroom"];
    for c in context {
        inputs.push(c);
        inputs.extend(c.split(['@', '.', '-', '_', '+']).filter(|p| p.len() >= 3));
    }
    let estimate = zxcvbn::zxcvbn(password.expose(), &inputs);
    if estimate.score() >= zxcvbn::Score::Three {
        return Ok(());
    }
    let why = estimate
        .feedback()
        .and_then(|f| f.warning())
        .map_or_else(|| "easy to guess".to_owned(), |w| w.to_string());
    Err(IdentityError::WeakPassword(
        format!("too easy to guess: {why}").into(),
    ))
}

/// Argon2id hashing and verification on a bounded worker pool.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    queue: SyncSender<Job>,
    /// A hash of a random password, verified when an account does not exist so that
    /// "no such account" takes as long as "wrong password".
    dummy_hash: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Builds the pool from configuration; `workers = 0` means one per CPU.
    pub fn new(config: &PasswordConfig) -> Result<Self, IdentityError> {
        let params = Params::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.argon2_parallelism,
            None,
        )
        .map_err(|e| IdentityError::Internal(format!("argon2 parameters: {e}")))?;
        let workers = match config.hashing_workers {
            0 => std::thread::available_parallelism().map_or(2, usize::from),
            n => n,
        };
        let dummy = dummy_hash(config);
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(workers * QUEUE_PER_WORKER);
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..workers {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("strongroom-argon2-{i}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while taking a job, not while running it.
                        let next = jobs.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(job) => job(),
                            Err(_) => break, // every hasher dropped: the pool ends
                        }
                    }
                })
                .map_err(|e| IdentityError::Internal(format!("hashing thread: {e}")))?;
        }
        Ok(Self {
            params,
            queue,
            dummy_hash: Arc::new(dummy),
        })
    }

    /// Hashes a password to a PHC string (`$argon2id$v=19$m=…`).
    pub async fn hash(&self, password: &SecretString) -> Result<String, IdentityError> {
        let password = password.clone();
        let params = self.params.clone();
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt)
            .map_err(|_| IdentityError::Internal("system RNG failed".into()))?;
        self.run(move || {
            let mut out = [0u8; OUTPUT_LEN];
            compute(&params, password.expose().as_bytes(), &salt, &mut out)?;
            Ok(phc(&params, &salt, &out))
        })
        .await
    }

    /// Checks `password` against a stored hash: our argon2id PHC strings, or a bcrypt
    /// hash imported with a user (`$2a$`/`$2b$`/`$2y$`). `Ok(false)` for a wrong password.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: &str,
    ) -> Result<bool, IdentityError> {
        let password = password.clone();
        let stored = stored.to_owned();
        if is_bcrypt(&stored) {
            // Stored before the import cap existed (or written around it): refused
            // rather than pinning a hashing worker for hours.
            let cost: u32 = stored.get(4..6).and_then(|c| c.parse().ok()).unwrap_or(99);
            if cost > MAX_BCRYPT_COST {
                tracing::warn!(
                    cost,
                    "a stored bcrypt hash is too costly to verify; the user must reset their password"
                );
                return Ok(false);
            }
            return self
                .run(move || {
                    bcrypt::verify(password.expose().as_bytes(), &stored).map_err(|_| {
                        IdentityError::Internal("stored bcrypt hash unreadable".into())
                    })
                })
                .await;
        }
        let (params, salt, expected) = parse_phc(&stored)?;
        self.run(move || {
            let mut out = vec![0u8; expected.len()];
            compute(&params, password.expose().as_bytes(), &salt, &mut out)?;
            Ok(bool::from(subtle::ConstantTimeEq::ct_eq(
                out.as_slice(),
                expected.as_slice(),
            )))
        })
        .await
    }

    /// Spends the same effort as a real verification and fails: used when the account
    /// does not exist, so response time does not reveal which accounts exist.
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<bool, IdentityError> {
        let stored = self.dummy_hash.clone();
        self.verify(password, &stored).await.map(|_| false)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic in hashing fails this one request, not the worker thread.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(
                outcome.unwrap_or_else(|_| Err(IdentityError::Internal("hashing panicked".into()))),
            );
        });
        self.queue.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => IdentityError::Busy,
            TrySendError::Disconnected(_) => IdentityError::Internal("hashing pool closed".into()),
        })?;
        result
            .await
            .map_err(|_| IdentityError::Internal("hashing task failed".into()))?
    }
}

/// A PHC string with the configured parameters and random salt and output. Verifying a
/// password against it costs exactly what a real verification costs (argon2 must be run
/// to compare), without spending a hash at start-up to make it.
fn dummy_hash(config: &PasswordConfig) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let random = uuid::Uuid::new_v4();
    let output = [
        random.as_bytes().as_slice(),
        uuid::Uuid::new_v4().as_bytes(),
    ]
    .concat();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        config.argon2_memory_kib,
        config.argon2_iterations,
        config.argon2_parallelism,
        STANDARD_NO_PAD.encode(random.as_bytes()),
        STANDARD_NO_PAD.encode(output)
    )
}

/// Length of the hash output we write, in bytes.
const OUTPUT_LEN: usize = 32;

thread_local! {
    /// The argon2 memory of this hashing worker, reused for every hash it computes (and
    /// wiped after each): no per-hash allocation, so the allocator cannot accumulate
    /// freed buffers, and memory stays at `workers × argon2_memory_kib`.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Argon2id over `password` and `salt` into `out`, in this thread's reusable memory.
fn compute(
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), IdentityError> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = params.block_count();
        if blocks.len() != needed {
            blocks.clear();
            blocks.resize(needed, argon2::Block::default());
        }
        let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into_with_memory(password, salt, out, blocks.as_mut_slice())
            .map_err(|e| IdentityError::Internal(format!("argon2: {e}")));
        // The blocks are derived from the password: wipe them before the next job.
        blocks.iter_mut().for_each(zeroize::Zeroize::zeroize);
        result
    })
}

/// The PHC string of a hash: `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`
/// (base64 without padding), as every argon2 implementation reads it.
fn phc(params: &Params, salt: &[u8], out: &[u8]) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// Reads a stored argon2id PHC string (the only kind we write).
fn parse_phc(stored: &str) -> Result<(Params, Vec<u8>, Vec<u8>), IdentityError> {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    let bad = || IdentityError::Internal("stored hash unreadable".into());
    let parts: Vec<&str> = stored.split('$').collect();
    let ["", "argon2id", "v=19", costs, salt, hash] = parts.as_slice() else {
        return Err(bad());
    };
    let mut cost = [0u32; 3];
    for (slot, key) in cost.iter_mut().zip(["m", "t", "p"]) {
        *slot = costs
            .split(',')
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
    }
    let salt = STANDARD_NO_PAD.decode(salt).map_err(|_| bad())?;
    let hash = STANDARD_NO_PAD.decode(hash).map_err(|_| bad())?;
    let params = Params::new(cost[0], cost[1], cost[2], Some(hash.len())).map_err(|_| bad())?;
    Ok((params, salt, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(&PasswordConfig::default()).unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hasher();
        let pw = SecretString::new("correct horse battery staple".into());
        let hash = h.hash(&pw).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(h.verify(&pw, &hash).await.unwrap());
        assert!(
            !h.verify(&SecretString::new("wrong".into()), &hash)
                .await
                .unwrap()
        );
        assert!(!h.verify_dummy(&pw).await.unwrap());
    }

    #[tokio::test]
    async fn our_phc_strings_interoperate_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = hasher();
        let pw = SecretString::new("correct horse battery staple".into());
        // Ours, checked by the crate's own PHC verifier.
        let ours = h.hash(&pw).await.unwrap();
        let parsed = argon2::password_hash::phc::PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok()
        );
        // The crate's (as stored before this change), checked by ours.
        let params = Params::new(19_456, 2, 1, None).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse battery staple")
            .unwrap()
            .to_string();
        assert!(h.verify(&pw, &theirs).await.unwrap());
        assert!(
            !h.verify(&SecretString::new("nope".into()), &theirs)
                .await
                .unwrap()
        );
        // Anything else is refused as unreadable, not accepted.
        for junk in [
            "",
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$v=19$m=x$a$b",
        ] {
            assert!(h.verify(&pw, junk).await.is_err(), "{junk}");
        }
    }

    #[tokio::test]
    async fn imported_bcrypt_hashes_verify() {
        let h = hasher();
        let pw = SecretString::new("correct horse battery staple".into());
        let imported = bcrypt::hash_with_salt("correct horse battery staple", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        assert!(check_bcrypt_import(&imported).is_ok());
        assert!(h.verify(&pw, &imported).await.unwrap());
        assert!(
            !h.verify(&SecretString::new("nope".into()), &imported)
                .await
                .unwrap()
        );
        for bad in [
            "",
            "$2b$03$",
            &imported.replace("$2b$04$", "$2b$99$"),
            &imported[..59],
            "$argon2id$v=19$m=1,t=1,p=1$AAAA$AAAA",
        ] {
            assert!(check_bcrypt_import(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_is_length_and_guessability_without_composition_rules() {
        let ok = |p: &str, ctx: &[&str]| check_policy(&SecretString::new(p.into()), ctx);
        assert!(ok("short", &[]).is_err());
        assert!(
            ok("all lowercase words", &[]).is_ok(),
            "no composition rules"
        );
        assert!(ok(&"x".repeat(257), &[]).is_err());
        assert!(ok("Password2024!", &[]).is_err());
        // What a new user tried and the curated list let through: a football club, a
        // keyboard walk, a starship registry — all in zxcvbn's dictionaries or patterns.
        for weak in [
            "manchesterunited",
            "qazwsxedcrfv",
            "ncc1701enterprise",
            "1qaz2wsx3edc4rfv",
        ] {
            let e = ok(weak, &[]).unwrap_err();
            assert!(e.to_string().contains("password rejected"), "{weak}: {e}");
        }
        // The account's own context counts: its address, its tenant.
        assert!(
            ok(
                "annabelle.smith2024",
                &["annabelle.smith@example.com", "acme"]
            )
            .is_err()
        );
        assert!(ok("acmecorporation!", &["x@y.example", "acmecorporation"]).is_err());
        for strong in [
            "correct horse battery staple 42",
            "violet tugboat minus eleven",
        ] {
            assert!(ok(strong, &["ann@example.com", "acme"]).is_ok(), "{strong}");
        }
    }

    #[test]
    fn bcrypt_imports_above_the_cost_cap_are_refused_with_the_reason() {
        let hash = |cost: u32| format!("$2b${cost:02}${}", "a".repeat(53));
        assert!(check_bcrypt_import(&hash(MAX_BCRYPT_COST)).is_ok());
        let e = check_bcrypt_import(&hash(MAX_BCRYPT_COST + 1)).unwrap_err();
        assert!(e.to_string().contains("cost 15"), "{e}");
        assert!(check_bcrypt_import(&hash(31)).is_err());
    }
}
