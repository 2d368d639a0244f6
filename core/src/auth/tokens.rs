//! Access tokens (HS256 JWT) and the opaque refresh and reset tokens.
//!
//! Access tokens carry `sub`, `exp`, `iat`, `jti`, `ver` (the user's token
//! version, bumped on a password change so older tokens die at once), `sid`
//! (the refresh-token family they belong to, so logout can revoke it) and
//! `roles` (informational: used only to pick a rate-limit tier; permissions
//! are always read from the authentication cache, which follows the database). Only HS256 is accepted: `alg: none`
//! and every other algorithm fail to decode.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// User id.
    pub sub: String,
    /// Expiry, unix seconds.
    pub exp: i64,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Unique token id, for revocation.
    pub jti: String,
    /// User token version at issue time.
    pub ver: i64,
    /// Session (refresh family) id.
    pub sid: String,
    /// Role names at issue time.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl AccessClaims {
    /// The user id, if `sub` is one.
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok()
    }
}

/// Signs and checks access tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl_secs: u64,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("access_ttl_secs", &self.access_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// Builds the service from the shared secret.
    pub fn new(secret: &str, access_ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // All tokens are minted by this host (or a sibling with the same
        // clock source), so no skew allowance: expired means expired.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            access_ttl_secs,
        }
    }

    /// Access token lifetime, for `expires_in`.
    pub fn access_ttl_secs(&self) -> u64 {
        self.access_ttl_secs
    }

    /// Mints an access token.
    pub fn issue(
        &self,
        user_id: i64,
        token_version: i64,
        session: &str,
        roles: Vec<String>,
    ) -> anyhow::Result<(String, AccessClaims)> {
        self.issue_until(user_id, token_version, session, roles, i64::MAX)
    }

    /// Mints an access token that expires at `not_after` (unix seconds) if
    /// that comes before the usual lifetime: a token renewed by a token
    /// never outlives its session.
    pub fn issue_until(
        &self,
        user_id: i64,
        token_version: i64,
        session: &str,
        roles: Vec<String>,
        not_after: i64,
    ) -> anyhow::Result<(String, AccessClaims)> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user_id.to_string(),
            exp: (now + i64::try_from(self.access_ttl_secs)?).min(not_after),
            iat: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            ver: token_version,
            sid: session.to_string(),
            roles,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// Checks signature, algorithm and expiry. Revocation and the user's
    /// state are checked by the caller against the database.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::unauthenticated("token expired")
                }
                _ => ApiError::unauthenticated("invalid token"),
            })
    }
}

/// A fresh 256-bit random token, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How opaque tokens are stored: a leaked table does not leak usable tokens.
/// A fast hash is right here because the input is 256 random bits.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_tamper() {
        let service = TokenService::new(SECRET, 60);
        let (token, claims) = service
            .issue(7, 3, "fam", vec!["user".into()])
            .expect("issue");
        assert_eq!(service.verify(&token).expect("valid"), claims);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(service.verify(&tampered).is_err());
        assert!(TokenService::new("another-secret-another-secret-xx", 60)
            .verify(&token)
            .is_err());
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let service = TokenService::new(SECRET, 60);
        let (token, _) = service.issue(1, 0, "f", vec![]).expect("issue");
        let payload = token.split('.').nth(1).expect("payload");
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(service
            .verify(&format!("{none_header}.{payload}."))
            .is_err());
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &service.verify(&token).expect("valid"),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert!(service.verify(&hs512).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let service = TokenService::new(SECRET, 60);
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: "1".into(),
            exp: now - 1,
            iat: now - 61,
            jti: "j".into(),
            ver: 0,
            sid: "f".into(),
            roles: vec![],
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("encode");
        assert_eq!(
            service.verify(&token).unwrap_err().message(),
            "token expired"
        );
    }

    #[test]
    fn opaque_tokens_are_random_and_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
