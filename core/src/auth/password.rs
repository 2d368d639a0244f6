//! Password hashing (argon2id) and the password policy.
//!
//! Hashing is deliberately slow, so it always runs on the blocking pool,
//! never on an async worker thread.

use argon2::{
    password_hash::{
        rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString,
    },
    Algorithm, Argon2, Params, Version,
};

use crate::{config::Argon2Config, error::FieldError};

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
}

impl PasswordHasher {
    /// Builds the hasher; fails on parameters argon2 refuses.
    pub fn new(config: &Argon2Config, min_length: usize) -> anyhow::Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|error| anyhow::anyhow!("invalid argon2 parameters: {error}"))?;
        let mut hasher = Self {
            params,
            min_length,
            decoy_hash: String::new(),
        };
        hasher.decoy_hash = hasher.hash_blocking(&uuid::Uuid::new_v4().to_string())?;
        Ok(hasher)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The parameters, for reporting.
    pub fn params(&self) -> &Params {
        &self.params
    }

    fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| anyhow::anyhow!("hashing failed: {error}"))
    }

    /// Hashes on the blocking pool.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let hasher = self.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hasher.hash_blocking(&password)).await?
    }

    /// Verifies on the blocking pool. `None` for `stored` verifies against
    /// the decoy and always fails, taking the same time as a real check.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<Verified> {
        let hasher = self.clone();
        let password = password.to_string();
        let (stored, real) = match stored {
            Some(hash) => (hash.to_string(), true),
            None => (self.decoy_hash.clone(), false),
        };
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|error| anyhow::anyhow!("stored hash unreadable: {error}"))?;
            let matches = hasher
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            let wanted = &hasher.params;
            let outdated = Params::try_from(&parsed).map_or(true, |p| {
                (p.m_cost(), p.t_cost(), p.p_cost())
                    != (wanted.m_cost(), wanted.t_cost(), wanted.p_cost())
            }) || parsed.algorithm.as_str() != "argon2id";
            Ok(match (real && matches, outdated) {
                (false, _) => Verified::No,
                (true, false) => Verified::Yes,
                (true, true) => Verified::YesButRehash,
            })
        })
        .await?
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

    fn cheap() -> PasswordHasher {
        let config = Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&config, 8).expect("hasher")
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let hasher = cheap();
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
    async fn hashes_with_old_parameters_ask_for_a_rehash() {
        let old = cheap();
        let hash = old.hash("Password 1").await.expect("hash");
        let config = Argon2Config {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        };
        let new = PasswordHasher::new(&config, 8).expect("hasher");
        assert_eq!(
            new.verify("Password 1", Some(&hash)).await.expect("verify"),
            Verified::YesButRehash
        );
    }

    #[test]
    fn policy_rejects_weak_passwords() {
        let hasher = cheap();
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
