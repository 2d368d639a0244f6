//! Password hashing (argon2id) and the password policy.
//!
//! Hashing is deliberately slow and memory-hard (19 MiB per hash by
//! default), so it runs on a few dedicated threads, one per core, never on
//! an async worker. Dedicated threads rather than tokio's blocking pool:
//! glibc keeps each thread's freed 19 MiB in that thread's arena, so hashing
//! on whichever of dozens of blocking threads happened to be free made RSS
//! climb by 19 MiB per thread ever used (measured: 28 -> 105 MiB after 60
//! sequential logins). So each hashing thread owns one argon2 block buffer
//! and hashes into it, and a login flood queues for those threads instead
//! of taking over the blocking pool. A thread keeps its buffer while jobs
//! are queued and frees it when it runs out of work; large allocations are
//! mapped on their own (`crate::allocator`), so the
//! freed buffer leaves the process and an idle server holds none.

use std::{
    cell::RefCell,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use argon2::{
    password_hash::{
        rand_core::{OsRng, RngCore},
        Output, ParamsString, PasswordHash, SaltString,
    },
    Algorithm, Argon2, Block, Params, Version,
};

use tokio::sync::{mpsc, oneshot};

use crate::{config::Argon2Config, error::FieldError};

/// Hashing jobs waiting for a thread; callers wait (asynchronously) when full.
const HASHING_QUEUE: usize = 256;

/// A job does its work and returns how to hand the result over, which
/// the thread does after deciding whether to keep its working memory: the
/// caller's next request then finds that decision made.
type Job = Box<dyn FnOnce() -> Delivery + Send>;

/// Hands a job's result to its caller.
type Delivery = Box<dyn FnOnce() + Send>;

/// One job counted as queued from before it is sent until a thread takes
/// it; a send that fails or is cancelled (the queue full and the caller
/// gone) takes its count back.
struct Pending<'a> {
    queued: &'a AtomicUsize,
    sent: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.sent {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A fixed set of threads that run hashing jobs.
#[derive(Clone, Debug)]
struct HashingThreads {
    jobs: mpsc::Sender<Job>,
    /// Jobs sent and not yet taken by a thread.
    queued: Arc<AtomicUsize>,
}

impl HashingThreads {
    fn start(threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>(HASHING_QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        let queued = Arc::new(AtomicUsize::new(0));
        for index in 0..threads.max(1) {
            let (queue, queued) = (queue.clone(), queued.clone());
            std::thread::Builder::new()
                .name(format!("xcore-argon2-{index}"))
                .spawn(move || loop {
                    // Holding the lock while waiting is fine: whoever holds
                    // it takes the next job, the others queue on the lock.
                    let job = match queue.lock() {
                        Ok(mut queue) => queue.blocking_recv(),
                        Err(_) => None,
                    };
                    let Some(job) = job else { return };
                    queued.fetch_sub(1, Ordering::AcqRel);
                    let deliver = job();
                    // Nothing more queued: give the working memory back
                    // while idle (checked before waiting, because a thread
                    // waits for the lock while another waits for work). A
                    // burst of logins keeps it: the next job is queued.
                    if queued.load(Ordering::Acquire) == 0 {
                        release_blocks();
                    }
                    deliver();
                })?;
        }
        Ok(Self { jobs, queued })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let output = work();
            Box::new(move || {
                let _ = reply.send(output);
            })
        });
        self.queued.fetch_add(1, Ordering::AcqRel);
        let mut pending = Pending {
            queued: &self.queued,
            sent: false,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| anyhow::anyhow!("password hashing threads stopped"))?;
        pending.sent = true;
        result
            .await
            .map_err(|_| anyhow::anyhow!("password hashing job panicked"))
    }
}

/// Longest password accepted: argon2 copes with more, but an unbounded input
/// is a cheap way to make the server hash megabytes.
const MAX_PASSWORD_LEN: usize = 128;

/// argon2id with the configured cost.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    params: Params,
    min_length: usize,
    /// A hash of a random password, verified against when the account does
    /// not exist, so a login for an unknown email costs the same time as
    /// one for a known email (no account enumeration by timing).
    decoy_hash: String,
    threads: HashingThreads,
    /// argon2 runs so far (hashes and verifications, decoys included).
    runs: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

thread_local! {
    /// The argon2 working memory of a hashing thread, kept between hashes.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's argon2 working memory (19 MiB by default). With
/// [`crate::allocator::return_large_allocations_to_the_system`] in effect the pages go back
/// to the system at once, so an idle server does not hold one buffer per
/// core (38 MiB of a 62 MiB idle process on 2 cores, measured).
fn release_blocks() {
    BLOCKS.with(|cell| *cell.borrow_mut() = Vec::new());
}

/// Runs argon2 into `out` using this thread's reusable block buffer.
fn hash_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let needed = argon2.params().block_count();
    BLOCKS.with(|cell| {
        let mut blocks = cell.borrow_mut();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
    })
}

impl PasswordHasher {
    /// Builds the hasher and its threads (one per core); fails on
    /// parameters argon2 refuses.
    pub async fn new(config: &Argon2Config, min_length: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|error| anyhow::anyhow!("invalid argon2 parameters: {error}"))?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            decoy_hash: Self::decoy(&params)?,
            params,
            min_length,
            threads: HashingThreads::start(cores)?,
            runs: Default::default(),
        })
    }

    /// A PHC string with the current parameters, a random salt and a random
    /// output, which no password can match (a 2^-256 chance): verifying
    /// against it costs exactly what a real check costs, and building it
    /// costs no hash (hashing a random password for it took about a third
    /// of the server's start-up).
    fn decoy(params: &Params) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        OsRng.fill_bytes(&mut output);
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(params).map_err(anyhow::Error::msg)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&output).map_err(anyhow::Error::msg)?),
        };
        Ok(phc.to_string())
    }

    /// Hashes into a PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    fn hash_on_this_thread(params: &Params, password: &str) -> anyhow::Result<String> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_buffer = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_buffer)
            .map_err(anyhow::Error::msg)?;
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            hash_into(&argon2, password.as_bytes(), salt_bytes, out).map_err(Into::into)
        })
        .map_err(anyhow::Error::msg)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(params).map_err(anyhow::Error::msg)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Checks `password` against a PHC string with the parameters recorded
    /// in it; `Ok(None)` means no match. Also says whether those parameters
    /// differ from `current`.
    fn verify_on_this_thread(
        current: &Params,
        password: &str,
        stored: &str,
    ) -> anyhow::Result<(bool, bool)> {
        let parsed = PasswordHash::new(stored)
            .map_err(|error| anyhow::anyhow!("stored hash unreadable: {error}"))?;
        let params = Params::try_from(&parsed).map_err(anyhow::Error::msg)?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(anyhow::Error::msg)?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(anyhow::Error::msg)?
            .unwrap_or_default();
        let salt = parsed
            .salt
            .ok_or_else(|| anyhow::anyhow!("stored hash has no salt"))?;
        let expected = parsed
            .hash
            .ok_or_else(|| anyhow::anyhow!("stored hash has no output"))?;
        let mut salt_buffer = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_buffer)
            .map_err(anyhow::Error::msg)?;
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        hash_into(&argon2, password.as_bytes(), salt_bytes, &mut out)
            .map_err(anyhow::Error::msg)?;
        // Output's equality is constant-time.
        let matches = Output::new(&out).map_err(anyhow::Error::msg)? == expected;
        let outdated = algorithm != Algorithm::Argon2id
            || (params.m_cost(), params.t_cost(), params.p_cost())
                != (current.m_cost(), current.t_cost(), current.p_cost());
        Ok((matches, outdated))
    }

    /// How many argon2 runs this hasher has started: what start-up and
    /// login costs are made of, counted for tests and diagnostics.
    pub fn runs(&self) -> u64 {
        self.runs.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_run(&self) {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hashes on a hashing thread.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        self.count_run();
        let params = self.params.clone();
        let password = password.to_string();
        self.threads
            .run(move || Self::hash_on_this_thread(&params, &password))
            .await?
    }

    /// Verifies on a hashing thread. `None` for `stored` verifies against
    /// the decoy and always fails, taking the same time as a real check.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<Verified> {
        self.count_run();
        let params = self.params.clone();
        let password = password.to_string();
        let (stored, real) = match stored {
            Some(hash) => (hash.to_string(), true),
            None => (self.decoy_hash.clone(), false),
        };
        let (matches, outdated) = self
            .threads
            .run(move || Self::verify_on_this_thread(&params, &password, &stored))
            .await??;
        Ok(match (real && matches, outdated) {
            (false, _) => Verified::No,
            (true, false) => Verified::Yes,
            (true, true) => Verified::YesButRehash,
        })
    }

    /// The policy: length bounds, a letter and a digit, not the email.
    pub fn check_policy(
        &self,
        field: &str,
        password: &str,
        email: Option<&str>,
    ) -> Option<FieldError> {
        let length = password.chars().count();
        let reason = if length < self.min_length {
            format!("must be at least {} characters", self.min_length)
        } else if length > MAX_PASSWORD_LEN {
            format!("must be at most {MAX_PASSWORD_LEN} characters")
        } else if !password.chars().any(char::is_alphabetic)
            || !password.chars().any(|c| c.is_ascii_digit())
        {
            "must contain at least one letter and one digit".to_string()
        } else if email.is_some_and(|email| password.eq_ignore_ascii_case(email)) {
            "must not be the email address".to_string()
        } else {
            return None;
        };
        Some(FieldError::new(field, reason))
    }
}

/// Outcome of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or no such account).
    No,
    /// Right password.
    Yes,
    /// Right password, hashed with other parameters than today's: re-hash.
    YesButRehash,
}

impl Verified {
    /// Whether the password matched.
    pub fn matched(self) -> bool {
        self != Self::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn cheap() -> PasswordHasher {
        let config = Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&config, 8).await.expect("hasher")
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = cheap().await;
        let hash = hasher.hash("Correct horse 1").await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert_eq!(
            hasher
                .verify("Correct horse 1", Some(&hash))
                .await
                .expect("verify"),
            Verified::Yes
        );
        assert_eq!(
            hasher.verify("wrong 1", Some(&hash)).await.expect("verify"),
            Verified::No
        );
        assert_eq!(
            hasher
                .verify("Correct horse 1", None)
                .await
                .expect("verify"),
            Verified::No
        );
    }

    #[tokio::test]
    async fn the_decoy_costs_what_a_real_hash_costs_and_matches_nothing() {
        let hasher = cheap().await;
        let decoy = PasswordHash::new(&hasher.decoy_hash).expect("a PHC string");
        let real = hasher.hash("Anything 1").await.expect("hash");
        let real = PasswordHash::new(&real).expect("a PHC string");
        assert_eq!(decoy.algorithm, real.algorithm);
        assert_eq!(decoy.version, real.version);
        let cost = |phc: &PasswordHash<'_>| {
            let params = Params::try_from(phc).expect("params");
            (params.m_cost(), params.t_cost(), params.p_cost())
        };
        assert_eq!(cost(&decoy), cost(&real), "the same work per check");
        assert_eq!(
            decoy.hash.map(|h| h.len()),
            real.hash.map(|h| h.len()),
            "the same output length"
        );
        // Checked to the end (no early error) and never a match.
        for guess in ["", "Anything 1", &uuid::Uuid::new_v4().to_string()] {
            assert_eq!(
                hasher
                    .verify(guess, Some(&hasher.decoy_hash))
                    .await
                    .expect("verify"),
                Verified::No
            );
        }
        assert_ne!(
            cheap().await.decoy_hash,
            hasher.decoy_hash,
            "each start draws its own"
        );
    }

    #[tokio::test]
    async fn a_hashing_thread_keeps_its_memory_while_busy_and_frees_it_when_idle() {
        let threads = HashingThreads::start(1).expect("threads");
        let params = Params::new(64, 1, 1, None).expect("params");
        let held = threads
            .run(move || {
                PasswordHasher::hash_on_this_thread(&params, "Password 1").expect("hash");
                BLOCKS.with(|blocks| blocks.borrow().len())
            })
            .await
            .expect("run");
        assert_eq!(held, 64, "one block per KiB while hashing");
        // Nothing was queued when the hash ended: the thread freed its
        // memory before the result came back.
        let after = threads
            .run(|| BLOCKS.with(|blocks| blocks.borrow().capacity()))
            .await
            .expect("run");
        assert_eq!(after, 0, "still held when idle");
    }

    #[tokio::test]
    async fn hashes_with_old_parameters_ask_for_a_rehash() {
        let old = cheap().await;
        let hash = old.hash("Password 1").await.expect("hash");
        let config = Argon2Config {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        };
        let new = PasswordHasher::new(&config, 8).await.expect("hasher");
        assert_eq!(
            new.verify("Password 1", Some(&hash)).await.expect("verify"),
            Verified::YesButRehash
        );
    }

    #[tokio::test]
    async fn hashes_from_the_standard_encoder_still_verify() {
        use argon2::PasswordHasher as _;
        let hasher = cheap().await;
        let salt = SaltString::generate(&mut OsRng);
        let standard = Argon2::new(Algorithm::Argon2id, Version::V0x13, hasher.params.clone())
            .hash_password(b"Interop 1 pass", &salt)
            .expect("hash")
            .to_string();
        assert_eq!(
            hasher
                .verify("Interop 1 pass", Some(&standard))
                .await
                .expect("verify"),
            Verified::Yes
        );
        let ours = hasher.hash("Interop 1 pass").await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(argon2::PasswordVerifier::verify_password(
            &Argon2::default(),
            b"Interop 1 pass",
            &parsed
        )
        .is_ok());
    }

    #[tokio::test]
    async fn policy_rejects_weak_passwords() {
        let hasher = cheap().await;
        assert!(hasher.check_policy("password", "short1", None).is_some());
        assert!(hasher
            .check_policy("password", "onlyletters", None)
            .is_some());
        assert!(hasher.check_policy("password", "12345678", None).is_some());
        assert!(hasher
            .check_policy("password", "a@b.co12", Some("A@B.CO12"))
            .is_some());
        assert!(hasher
            .check_policy("password", "SecurePassword123!", None)
            .is_none());
    }
}
