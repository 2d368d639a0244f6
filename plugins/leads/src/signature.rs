//! HMAC-SHA256 signatures of raw bodies, `X-Signature: sha256=<hex>`:
//! checked on incoming webhooks, added to outgoing deliveries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header value signing `body` with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether `header` is `sha256=<hex>` of `body` under `secret`, compared
/// in constant time.
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 || !hex.is_ascii() {
        return false;
    }
    let bytes: Option<Vec<u8>> = (0..32)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).ok())
        .collect();
    let Some(bytes) = bytes else { return false };
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_body_and_key() {
        let header = sign("a-secret-of-16-chars", b"{\"a\":1}");
        assert!(verify("a-secret-of-16-chars", b"{\"a\":1}", &header));
        assert!(!verify("a-secret-of-16-chars", b"{\"a\":2}", &header));
        assert!(!verify("another-secret-16-ch", b"{\"a\":1}", &header));
        assert!(!verify("a-secret-of-16-chars", b"{\"a\":1}", "sha256=zz"));
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
