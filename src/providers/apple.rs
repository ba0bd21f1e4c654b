//! App Store signed data: transactions (`signedTransaction`) and App Store Server Notifications
//! V2 (`signedPayload`) are JWS (ES256) whose header carries the certificate chain in `x5c`:
//! leaf, intermediate, root. Duet checks the chain against the configured Apple root
//! certificate (nothing is downloaded), Apple's certificate policy OIDs on the leaf and the
//! intermediate, every certificate's validity, the signature, and the bundle id and environment.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier;
use serde::Deserialize;
use x509_parser::prelude::*;

use crate::config::AppleConfig;
use crate::core::error::{AppError, AppResult, Code};

/// Apple's marker extension on App Store receipt-signing leaf certificates.
const LEAF_OID: &[u64] = &[1, 2, 840, 113635, 100, 6, 11, 1];
/// Apple's marker extension on the Worldwide Developer Relations intermediate.
const INTERMEDIATE_OID: &[u64] = &[1, 2, 840, 113635, 100, 6, 2, 1];
/// Longest JWS accepted.
pub const JWS_BYTES_MAX: usize = 64 * 1024;

fn invalid(why: impl std::fmt::Display) -> AppError {
    AppError::new(
        Code::InvalidReceipt,
        format!("the App Store data does not verify: {why}"),
    )
}

/// The fields of a signed transaction Duet uses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppleTransaction {
    pub transaction_id: String,
    #[serde(default)]
    pub original_transaction_id: Option<String>,
    pub bundle_id: String,
    pub product_id: String,
    pub environment: String,
    #[serde(default)]
    pub purchase_date: Option<i64>,
    #[serde(default)]
    pub revocation_date: Option<i64>,
    /// Units bought (StoreKit allows a quantity for consumables).
    #[serde(default)]
    pub quantity: Option<u32>,
    /// The UUID the app set when it started the purchase: the payment intent's id.
    #[serde(default)]
    pub app_account_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationPayload {
    notification_type: String,
    #[serde(default)]
    subtype: Option<String>,
    #[serde(rename = "notificationUUID")]
    notification_uuid: String,
    data: NotificationData,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationData {
    bundle_id: String,
    environment: String,
    #[serde(default)]
    signed_transaction_info: Option<String>,
}

/// A verified App Store Server Notification V2.
#[derive(Debug, Clone)]
pub struct AppleNotification {
    pub notification_type: String,
    pub subtype: Option<String>,
    pub uuid: String,
    pub transaction: Option<AppleTransaction>,
}

#[derive(Deserialize)]
struct JwsHeader {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

pub struct AppleVerifier {
    root_der: Vec<u8>,
    bundle_id: String,
    environment: String,
}

impl AppleVerifier {
    pub fn new(cfg: &AppleConfig) -> anyhow::Result<AppleVerifier> {
        let raw = std::fs::read(&cfg.root_certificate_file)
            .map_err(|e| anyhow::anyhow!("payments.apple.root_certificate_file: {e}"))?;
        let root_der = match ::pem::parse(&raw) {
            Ok(p) => p.contents().to_vec(),
            Err(_) => raw,
        };
        parse_x509_certificate(&root_der).map_err(|e| {
            anyhow::anyhow!("payments.apple.root_certificate_file: not a certificate: {e}")
        })?;
        Ok(AppleVerifier {
            root_der,
            bundle_id: cfg.bundle_id.clone(),
            environment: cfg.environment.clone(),
        })
    }

    /// A verified signed transaction for this app and environment.
    pub fn transaction(&self, jws: &str, now_ms: i64) -> AppResult<AppleTransaction> {
        let payload = self.verify_jws(jws, now_ms)?;
        let t: AppleTransaction = serde_json::from_slice(&payload)
            .map_err(|e| invalid(format!("the transaction is malformed: {e}")))?;
        self.check_app(&t.bundle_id, &t.environment)?;
        Ok(t)
    }

    /// A verified notification; its transaction, if any, is verified too.
    pub fn notification(&self, jws: &str, now_ms: i64) -> AppResult<AppleNotification> {
        let payload = self.verify_jws(jws, now_ms)?;
        let n: NotificationPayload = serde_json::from_slice(&payload)
            .map_err(|e| invalid(format!("the notification is malformed: {e}")))?;
        self.check_app(&n.data.bundle_id, &n.data.environment)?;
        let transaction = match &n.data.signed_transaction_info {
            Some(t) => Some(self.transaction(t, now_ms)?),
            None => None,
        };
        Ok(AppleNotification {
            notification_type: n.notification_type,
            subtype: n.subtype,
            uuid: n.notification_uuid,
            transaction,
        })
    }

    fn check_app(&self, bundle_id: &str, environment: &str) -> AppResult<()> {
        if bundle_id != self.bundle_id {
            return Err(invalid(format!("bundleId {bundle_id} is not this app's")));
        }
        if environment != self.environment {
            return Err(invalid(format!(
                "environment {environment} is not {}",
                self.environment
            )));
        }
        Ok(())
    }

    /// Checks the chain and the signature; returns the payload bytes.
    pub fn verify_jws(&self, jws: &str, now_ms: i64) -> AppResult<Vec<u8>> {
        if jws.len() > JWS_BYTES_MAX {
            return Err(invalid("too large"));
        }
        let mut parts = jws.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a compact JWS"));
        };
        let header: JwsHeader = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| invalid("malformed header"))?;
        if header.alg != "ES256" {
            return Err(invalid("alg must be ES256"));
        }
        if header.x5c.len() < 2 || header.x5c.len() > 3 {
            return Err(invalid(
                "x5c must hold the leaf, intermediate and root certificates",
            ));
        }
        let ders: Vec<Vec<u8>> = header
            .x5c
            .iter()
            .map(|c| STANDARD.decode(c).map_err(|_| invalid("x5c is not base64")))
            .collect::<AppResult<_>>()?;
        if let Some(root) = ders.get(2)
            && *root != self.root_der
        {
            return Err(invalid(
                "the chain does not end at the configured Apple root",
            ));
        }
        let leaf = parse(&ders[0])?;
        let intermediate = parse(&ders[1])?;
        let root = parse(&self.root_der)?;

        // Certificates are checked at the time Apple signed the data (never later than now), so
        // a receipt posted late is not refused because Apple rotated its certificate since.
        let payload_bytes = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| invalid("the payload is not base64url"))?;
        let signed_ms = serde_json::from_slice::<serde_json::Value>(&payload_bytes)
            .ok()
            .and_then(|v| v["signedDate"].as_i64())
            .map_or(now_ms, |d| d.min(now_ms));
        let at = ASN1Time::from_timestamp(signed_ms / 1000).map_err(|_| invalid("bad time"))?;
        for (name, cert) in [
            ("leaf", &leaf),
            ("intermediate", &intermediate),
            ("root", &root),
        ] {
            if !cert.validity().is_valid_at(at) {
                return Err(invalid(format!("the {name} certificate is not valid now")));
            }
        }
        intermediate
            .verify_signature(Some(root.public_key()))
            .map_err(|_| invalid("the intermediate is not signed by the Apple root"))?;
        leaf.verify_signature(Some(intermediate.public_key()))
            .map_err(|_| invalid("the leaf is not signed by the intermediate"))?;
        if !intermediate.is_ca() {
            return Err(invalid("the intermediate is not a CA"));
        }
        has_extension(&leaf, LEAF_OID)
            .then_some(())
            .ok_or_else(|| invalid("the leaf lacks Apple's policy OID"))?;
        has_extension(&intermediate, INTERMEDIATE_OID)
            .then_some(())
            .ok_or_else(|| invalid("the intermediate lacks Apple's policy OID"))?;

        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&leaf.public_key().subject_public_key.data)
                .map_err(|_| invalid("the leaf key is not P-256"))?;
        let sig_bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| invalid("the signature is not base64url"))?;
        let sig = p256::ecdsa::Signature::from_slice(&sig_bytes)
            .map_err(|_| invalid("malformed signature"))?;
        key.verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| invalid("bad signature"))?;
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| invalid("the payload is not base64url"))
    }
}

fn parse(der: &[u8]) -> AppResult<X509Certificate<'_>> {
    parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|_| invalid("a certificate does not parse"))
}

fn has_extension(cert: &X509Certificate<'_>, oid: &[u64]) -> bool {
    let Ok(wanted) = x509_parser::der_parser::oid::Oid::from(oid) else {
        return false;
    };
    cert.extensions().iter().any(|e| e.oid == wanted)
}
