//! API keys for machines (integrations, webhooks, scripts): `X-API-Key:
//! xk_<prefix>_<secret>`.
//!
//! - The secret is 256 random bits, shown once at creation and stored as
//!   its SHA-256: with that much entropy a slow password hash buys nothing,
//!   and a keyed request stays as cheap as a JWT one (see BENCHMARKS.md).
//!   The prefix (64 random bits, hex) is public: it finds the key without
//!   scanning, and tells keys apart in the owner's list.
//! - A keyed request is decided from memory like a token one: the key's
//!   entry (owner, scopes, expiry, revoked) sits in the authentication
//!   cache beside its owner's, and creation and revocation go through the
//!   change log (`Change::ApiKey`), so revocation takes effect at once here
//!   and within one poll interval on other instances.
//! - A key holds the permissions it was given that its owner still holds:
//!   the owner losing a permission, or being deactivated or deleted, cuts
//!   the key at the next request.
//! - A key is a second entrance wherever a Bearer access token is accepted
//!   (host routes through `AuthUser`, plugin routes through the
//!   dispatcher), except for what manages credentials: refresh, logout,
//!   password change, and the `/auth/api-keys` routes themselves want a
//!   session token, so a leaked key cannot mint, list or revoke keys, nor
//!   take over the account. The WebSocket, whose token may travel in the
//!   query string, takes tokens only. Sending a key and a Bearer token
//!   together is refused (400) rather than picking one.
//!
//! Creation, revocation and use each happen in one named function
//! ([`routes::create_key`], [`routes::revoke_key`], [`verify`]), where an
//! audit record belongs.

pub mod routes;
pub mod store;
pub mod usage;

use std::{collections::BTreeSet, sync::Arc};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use sha2::{Digest, Sha256};
use xcore_plugin_sdk::Caller;

use super::{cache::CachedUser, extract::Gate};
use crate::error::ApiError;

/// The header a key travels in.
pub const HEADER: &str = "x-api-key";

/// What every key starts with, so scanners (and people) recognise one.
pub const KEY_START: &str = "xk_";

/// Hex digits of the lookup prefix.
const PREFIX_LEN: usize = 16;

/// A new key: the whole key (shown once), and what is stored of it.
pub struct Minted {
    /// `xk_<prefix>_<secret>`, for the creator's eyes only.
    pub key: String,
    /// The lookup part.
    pub prefix: String,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
}

/// Draws a new key.
pub fn mint() -> Minted {
    let mut prefix = [0u8; PREFIX_LEN / 2];
    rand::rngs::OsRng.fill_bytes(&mut prefix);
    let prefix: String = prefix.iter().map(|byte| format!("{byte:02x}")).collect();
    let secret = super::tokens::random_token();
    Minted {
        key: format!("{KEY_START}{prefix}_{secret}"),
        secret_hash: super::tokens::token_hash(&secret),
        prefix,
    }
}

/// Splits a presented key into its prefix and the SHA-256 of its secret;
/// `None` unless it has the exact shape of a key (so a truncated key fails
/// here, before any lookup).
pub fn parse(presented: &str) -> Option<(&str, [u8; 32])> {
    let rest = presented.strip_prefix(KEY_START)?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if prefix.len() != PREFIX_LEN || !prefix.bytes().all(hex) {
        return None;
    }
    match URL_SAFE_NO_PAD.decode(secret) {
        Ok(bytes) if bytes.len() == 32 => {}
        _ => return None,
    }
    Some((prefix, Sha256::digest(secret.as_bytes()).into()))
}

/// Compares two digests in time independent of where they differ.
fn same_digest(left: &[u8; 32], right: &[u8; 32]) -> bool {
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// A caller authenticated by a key.
#[derive(Debug)]
pub struct Keyed {
    /// The key's row id.
    pub key_id: i64,
    /// The key's expiry, unix seconds.
    pub expires_at: Option<i64>,
    /// The owner, as cached.
    pub owner: Arc<CachedUser>,
    /// The key's scopes the owner still holds.
    pub permissions: BTreeSet<String>,
}

impl Keyed {
    /// The caller as plugins see it: the owner with the key's permissions.
    pub fn caller(&self) -> Arc<Caller> {
        Arc::new(Caller {
            user_id: self.owner.caller.user_id,
            email: self.owner.email.clone(),
            permissions: self.permissions.iter().cloned().collect(),
        })
    }
}

/// Authenticates a presented key from the cache, and notes its use. One
/// message for a malformed key, an unknown prefix and a wrong secret, so
/// the answer does not tell which part was right.
pub async fn verify(gate: &Gate, presented: &str) -> Result<Keyed, ApiError> {
    let invalid = || ApiError::unauthenticated("invalid API key");
    let (prefix, digest) = parse(presented).ok_or_else(invalid)?;
    let cache = &gate.auth;
    cache.ensure_fresh().await?;
    let key = cache.api_key(prefix).await?.ok_or_else(invalid)?;
    if !same_digest(&key.digest, &digest) {
        return Err(invalid());
    }
    if key.revoked {
        return Err(ApiError::unauthenticated("API key revoked"));
    }
    if key
        .expires_at
        .is_some_and(|at| at <= chrono::Utc::now().timestamp())
    {
        return Err(ApiError::unauthenticated("API key expired"));
    }
    let owner = cache
        .user(key.owner)
        .await?
        .filter(|owner| owner.is_active)
        .ok_or_else(|| ApiError::unauthenticated("account is deactivated"))?;
    let permissions = key
        .scopes
        .intersection(&owner.permissions)
        .cloned()
        .collect();
    record_use(gate, key.id, &owner);
    Ok(Keyed {
        key_id: key.id,
        expires_at: key.expires_at,
        owner,
        permissions,
    })
}

/// A key authenticated a request: `last_used_at` (written in batches, see
/// [`usage`]).
fn record_use(gate: &Gate, key_id: i64, owner: &CachedUser) {
    gate.key_usage
        .record(key_id, owner.caller.user_id, &owner.email);
}

/// The key's id if `presented` is a key this instance already holds in
/// memory and its secret matches; no database work, for the rate limiter
/// (which runs before the key is fully checked).
pub fn peek(gate: &Gate, presented: &str) -> Option<i64> {
    let (prefix, digest) = parse(presented)?;
    let key = gate.auth.cached_api_key(prefix)?;
    same_digest(&key.digest, &digest).then_some(key.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_key_parses_to_its_stored_hash() {
        let minted = mint();
        let (prefix, digest) = parse(&minted.key).expect("parses");
        assert_eq!(prefix, minted.prefix);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, minted.secret_hash);
    }

    #[test]
    fn anything_but_a_whole_key_is_refused() {
        let key = mint().key;
        assert!(parse(&key[..key.len() - 1]).is_none());
        assert!(parse(&key[3..]).is_none());
        assert!(parse(&format!("{key}A")).is_none());
        assert!(parse(&key.to_uppercase()).is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn digests_compare_by_value() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(same_digest(&a, &b));
        b[31] ^= 1;
        assert!(!same_digest(&a, &b));
    }
}
