//! Signed URLs: `/media/{id}/{variant}?exp={unix secs}&sig={HMAC}`. Whoever holds one may
//! fetch that variant until `exp`, with no bearer token, so a CDN can cache it; the key is a
//! secret file in the data directory (`media-url.key`), so URLs survive restarts and nobody
//! outside can make one. Visibility is checked when a URL is issued, never at download: a URL
//! is only ever issued to someone allowed to see the item.
//!
//! Expiry is rounded up to a quarter of the lifetime, so every URL for one variant issued in
//! the same quarter is the same string and a CDN stores the file once, not once per viewer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key's file name in the data directory.
pub const KEY_FILE: &str = "media-url.key";

pub struct UrlSigner {
    key: Vec<u8>,
    ttl_secs: i64,
}

impl UrlSigner {
    pub fn new(key: Vec<u8>, ttl_secs: u64) -> UrlSigner {
        UrlSigner {
            key,
            ttl_secs: ttl_secs.max(4) as i64,
        }
    }

    fn mac(&self, id: &str, variant: &str, exp: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{id}/{variant}/{exp}").as_bytes());
        mac
    }

    /// When a URL issued at `now_secs` expires: at least `ttl` later, rounded up to a quarter.
    pub fn expiry(&self, now_secs: i64) -> i64 {
        let quarter = self.ttl_secs / 4;
        let end = now_secs + self.ttl_secs;
        (end + quarter - 1) / quarter * quarter
    }

    /// The path and query of a URL for `variant` of item `id`, and its expiry (unix secs).
    pub fn url(&self, id: &str, variant: &str, now_secs: i64) -> (String, i64) {
        let exp = self.expiry(now_secs);
        let sig = URL_SAFE_NO_PAD.encode(self.mac(id, variant, exp).finalize().into_bytes());
        (format!("/media/{id}/{variant}?exp={exp}&sig={sig}"), exp)
    }

    /// Whether `sig` is this server's signature of (`id`, `variant`, `exp`); constant time.
    pub fn verify(&self, id: &str, variant: &str, exp: i64, sig: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        self.mac(id, variant, exp).verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_for_what_it_signed() {
        let s = UrlSigner::new(vec![7; 32], 3600);
        let (url, exp) = s.url("m-1", "display", 1_000_000);
        assert!(exp >= 1_000_000 + 3600 && exp % 900 == 0);
        let sig = url.split("sig=").nth(1).unwrap();
        assert!(s.verify("m-1", "display", exp, sig));
        assert!(!s.verify("m-2", "display", exp, sig));
        assert!(!s.verify("m-1", "original", exp, sig));
        assert!(!s.verify("m-1", "display", exp + 1, sig));
        assert!(!s.verify("m-1", "display", exp, "not-base64!"));
        let other = UrlSigner::new(vec![8; 32], 3600);
        assert!(!other.verify("m-1", "display", exp, sig));
    }

    #[test]
    fn urls_issued_in_one_quarter_are_the_same() {
        let s = UrlSigner::new(vec![7; 32], 3600);
        assert_eq!(
            s.url("m-1", "thumb", 900 * 1000 + 1),
            s.url("m-1", "thumb", 900 * 1001)
        );
    }
}
