//! Twilio Video access tokens: an HS256 JWT signed with an API key secret, header
//! `cty: twilio-fpa;v=1`, claims `jti` (`<keySid>-<iat>`), `iss` (API key SID), `sub` (account
//! SID), `iat`, `exp`, and `grants {identity, video {room}}`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::{ProviderToken, VideoProvider};

pub struct Twilio {
    account_sid: String,
    api_key_sid: String,
    api_key_secret: String,
}

impl Twilio {
    pub fn new(account_sid: &str, api_key_sid: &str, api_key_secret: &str) -> Twilio {
        Twilio {
            account_sid: account_sid.to_owned(),
            api_key_sid: api_key_sid.to_owned(),
            api_key_secret: api_key_secret.to_owned(),
        }
    }
}

impl VideoProvider for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn token(
        &self,
        channel: &str,
        uid: u32,
        identity: &str,
        now_s: i64,
        ttl_s: u32,
    ) -> ProviderToken {
        let mut header = Header::new(Algorithm::HS256);
        header.cty = Some("twilio-fpa;v=1".into());
        let exp = now_s + i64::from(ttl_s);
        let claims = json!({
            "jti": format!("{}-{now_s}", self.api_key_sid),
            "iss": self.api_key_sid,
            "sub": self.account_sid,
            "iat": now_s,
            "exp": exp,
            "grants": {"identity": identity, "video": {"room": channel}},
        });
        // HS256 with a byte key cannot fail.
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(self.api_key_secret.as_bytes()),
        )
        .unwrap_or_default();
        ProviderToken {
            provider: "twilio",
            channel: channel.to_owned(),
            uid: uid.to_string(),
            token,
            expires_at: exp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn twilio_tokens_carry_the_video_grant_and_verify_with_the_secret() {
        let t = Twilio::new("ACxxxxxxxx", "SKyyyyyyyy", "secret-secret");
        let tok = t.token("call-123", 7, "user-1", 1_700_000_000, 3600);
        let header = jsonwebtoken::decode_header(&tok.token).unwrap();
        assert_eq!(header.cty.as_deref(), Some("twilio-fpa;v=1"));
        assert_eq!(header.alg, Algorithm::HS256);
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &tok.token,
            &DecodingKey::from_secret(b"secret-secret"),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["iss"], "SKyyyyyyyy");
        assert_eq!(claims["sub"], "ACxxxxxxxx");
        assert_eq!(claims["jti"], "SKyyyyyyyy-1700000000");
        assert_eq!(claims["grants"]["identity"], "user-1");
        assert_eq!(claims["grants"]["video"]["room"], "call-123");
        assert_eq!(claims["exp"], 1_700_003_600);
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(
                &tok.token,
                &DecodingKey::from_secret(b"wrong"),
                &v
            )
            .is_err()
        );
    }
}
