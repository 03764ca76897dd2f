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

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};

use super::IdentityError;
use crate::config::PasswordConfig;
use crate::secret::SecretString;

/// How many callers may wait per worker before new ones are turned away.
const QUEUE_PER_WORKER: usize = 64;

/// Work for a hashing thread.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Shortest password accepted, in characters (NIST SP 800-63B asks for at least 8;
/// we ask more of accounts that guard regulated records).
pub const MIN_CHARS: usize = 12;
/// Longest password accepted, in characters: long passphrases are welcome, unbounded
/// input to a memory-hard function is not.
pub const MAX_CHARS: usize = 256;

/// Checks a new password against the rules: length only, no composition rules
/// (NIST SP 800-63B §3.1.1.2).
pub fn check_policy(password: &SecretString) -> Result<(), IdentityError> {
    let n = password.char_count();
    if n < MIN_CHARS {
        return Err(IdentityError::WeakPassword("shorter than 12 characters"));
    }
    if n > MAX_CHARS {
        return Err(IdentityError::WeakPassword("longer than 256 characters"));
    }
    Ok(())
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
        self.run(move || {
            argon2(&params)
                .hash_password(password.expose().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| IdentityError::Internal(format!("argon2: {e}")))
        })
        .await
    }

    /// Checks `password` against a stored PHC hash. `Ok(false)` for a wrong password.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: &str,
    ) -> Result<bool, IdentityError> {
        let password = password.clone();
        let stored = stored.to_owned();
        self.run(move || {
            let hash = argon2::password_hash::phc::PasswordHash::new(&stored)
                .map_err(|e| IdentityError::Internal(format!("stored hash unreadable: {e}")))?;
            Ok(Argon2::default()
                .verify_password(password.expose().as_bytes(), &hash)
                .is_ok())
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

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
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

    #[test]
    fn policy_is_length_only() {
        assert!(check_policy(&SecretString::new("short".into())).is_err());
        assert!(check_policy(&SecretString::new("all lowercase words".into())).is_ok());
        assert!(check_policy(&SecretString::new("x".repeat(257))).is_err());
    }
}
