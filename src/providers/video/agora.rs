//! Agora RTC AccessToken2 (version `007`): the content is the HMAC-SHA256 signature followed by
//! the signed data (app id, issue time, expiry, salt, services), packed little-endian with
//! length-prefixed strings, zlib-compressed and base64-encoded behind the version prefix.
//! The signing key is derived from the app certificate through the issue time and the salt.

use std::io::Write;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{ProviderToken, VideoProvider};

const VERSION: &str = "007";
const SERVICE_RTC: u16 = 1;
pub const PRIVILEGE_JOIN_CHANNEL: u16 = 1;
pub const PRIVILEGE_PUBLISH_AUDIO: u16 = 2;
pub const PRIVILEGE_PUBLISH_VIDEO: u16 = 3;
pub const PRIVILEGE_PUBLISH_DATA: u16 = 4;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn pack_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn pack_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn pack_bytes(out: &mut Vec<u8>, b: &[u8]) {
    pack_u16(out, b.len() as u16);
    out.extend_from_slice(b);
}

/// The parts of a token, for building and for tests against Agora's vectors.
#[derive(Debug, Clone)]
pub struct AccessToken2 {
    pub app_id: String,
    pub app_certificate: String,
    pub issue_ts: u32,
    pub expire: u32,
    pub salt: u32,
    pub channel: String,
    /// The RTC uid as Agora packs it: decimal, empty for uid 0.
    pub uid: String,
    /// (privilege, expire seconds), in ascending privilege order.
    pub privileges: Vec<(u16, u32)>,
}

impl AccessToken2 {
    /// The signed data.
    pub fn data(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(128);
        pack_bytes(&mut d, self.app_id.as_bytes());
        pack_u32(&mut d, self.issue_ts);
        pack_u32(&mut d, self.expire);
        pack_u32(&mut d, self.salt);
        pack_u16(&mut d, 1); // one service: RTC
        pack_u16(&mut d, SERVICE_RTC);
        pack_u16(&mut d, self.privileges.len() as u16);
        for (k, v) in &self.privileges {
            pack_u16(&mut d, *k);
            pack_u32(&mut d, *v);
        }
        pack_bytes(&mut d, self.channel.as_bytes());
        pack_bytes(&mut d, self.uid.as_bytes());
        d
    }

    pub fn signature(&self, data: &[u8]) -> [u8; 32] {
        let issued = hmac(
            &self.issue_ts.to_le_bytes(),
            self.app_certificate.as_bytes(),
        );
        let signing = hmac(&self.salt.to_le_bytes(), &issued);
        hmac(&signing, data)
    }

    /// The uncompressed content: packed signature, then the data.
    pub fn content(&self) -> Vec<u8> {
        let data = self.data();
        let mut c = Vec::with_capacity(data.len() + 34);
        pack_bytes(&mut c, &self.signature(&data));
        c.extend_from_slice(&data);
        c
    }

    pub fn build(&self) -> String {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = z.write_all(&self.content());
        let compressed = z.finish().unwrap_or_default();
        format!(
            "{VERSION}{}",
            base64::engine::general_purpose::STANDARD.encode(compressed)
        )
    }
}

pub struct Agora {
    app_id: String,
    app_certificate: String,
}

impl Agora {
    pub fn new(app_id: &str, app_certificate: &str) -> Agora {
        Agora {
            app_id: app_id.to_owned(),
            app_certificate: app_certificate.to_owned(),
        }
    }
}

impl VideoProvider for Agora {
    fn name(&self) -> &'static str {
        "agora"
    }

    fn token(
        &self,
        channel: &str,
        uid: u32,
        _identity: &str,
        now_s: i64,
        ttl_s: u32,
    ) -> ProviderToken {
        let t = AccessToken2 {
            app_id: self.app_id.clone(),
            app_certificate: self.app_certificate.clone(),
            issue_ts: now_s as u32,
            expire: ttl_s,
            salt: rand::random::<u32>().max(1),
            channel: channel.to_owned(),
            uid: if uid == 0 {
                String::new()
            } else {
                uid.to_string()
            },
            privileges: vec![
                (PRIVILEGE_JOIN_CHANNEL, ttl_s),
                (PRIVILEGE_PUBLISH_AUDIO, ttl_s),
                (PRIVILEGE_PUBLISH_VIDEO, ttl_s),
                (PRIVILEGE_PUBLISH_DATA, ttl_s),
            ],
        };
        ProviderToken {
            provider: "agora",
            channel: channel.to_owned(),
            uid: uid.to_string(),
            token: t.build(),
            expires_at: now_s + i64::from(ttl_s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Agora's own AccessToken2 test vector.
    fn vector() -> AccessToken2 {
        AccessToken2 {
            app_id: "970CA35de60c44645bbae8a215061b33".into(),
            app_certificate: "5CFd2fd1755d40ecb72977518be15d3b".into(),
            issue_ts: 1_111_111,
            expire: 600,
            salt: 1,
            channel: "7d72365eb983485397e3e3f9d460bdda".into(),
            uid: "2882341273".into(),
            privileges: vec![(PRIVILEGE_JOIN_CHANNEL, 600)],
        }
    }

    #[test]
    fn agoras_test_vector_signs_and_packs_as_expected() {
        let t = vector();
        let data = t.data();
        let sig: String = t
            .signature(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            sig,
            "16a0b84c5a5e82cbf74fb813d09f59c54bdac9c06120580539ac97578e958b1a"
        );
        let token = t.build();
        assert!(token.starts_with("007"));
        let compressed = base64::engine::general_purpose::STANDARD
            .decode(&token[3..])
            .unwrap();
        let mut content = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..])
            .read_to_end(&mut content)
            .unwrap();
        assert_eq!(content.len(), 138);
        assert_eq!(content, t.content());
        assert_eq!(&content[2..34], &t.signature(&data));
    }
}
