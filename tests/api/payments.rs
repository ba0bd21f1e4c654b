//! Store purchases against locally built App Store certificate chains and a local fake of
//! Google's token endpoint and Play Developer API that records what it received.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair};
use reqwest::Method;
use serde_json::{Value, json};

use crate::coins::{credit, post_idem};
use crate::support::*;

const LEAF_OID: &[u64] = &[1, 2, 840, 113635, 100, 6, 11, 1];
const INTERMEDIATE_OID: &[u64] = &[1, 2, 840, 113635, 100, 6, 2, 1];
const BUNDLE: &str = "com.duet.app";

/// A test root, intermediate and leaf shaped like Apple's (P-384 CA, P-256 leaf, the policy
/// marker extensions).
pub struct Chain {
    root_pem: String,
    x5c: Vec<String>,
    leaf_key_pem: String,
}

pub fn chain(with_oids: bool) -> Chain {
    let ca = |name: &str| {
        let mut p = CertificateParams::new(vec![]).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p
    };
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let root_params = ca("Test Apple Root CA - G3");
    let root = root_params.self_signed(&root_key).unwrap();
    let inter_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut inter_params = ca("Test Apple Worldwide Developer Relations CA - G6");
    if with_oids {
        inter_params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                INTERMEDIATE_OID,
                vec![0x05, 0x00],
            ));
    }
    let inter = inter_params
        .signed_by(&inter_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap();
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params = CertificateParams::new(vec![]).unwrap();
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        "Test Prod ECC Mac App Store and iTunes Store Receipt Signing",
    );
    if with_oids {
        leaf_params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                LEAF_OID,
                vec![0x05, 0x00],
            ));
    }
    let leaf = leaf_params
        .signed_by(&leaf_key, &Issuer::from_params(&inter_params, &inter_key))
        .unwrap();
    Chain {
        root_pem: root.pem(),
        x5c: [leaf.der(), inter.der(), root.der()]
            .iter()
            .map(|d| STANDARD.encode(d.as_ref()))
            .collect(),
        leaf_key_pem: leaf_key.serialize_pem(),
    }
}

pub fn sign(chain: &Chain, payload: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(chain.x5c.clone());
    jsonwebtoken::encode(
        &header,
        payload,
        &EncodingKey::from_ec_pem(chain.leaf_key_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub fn transaction(id: &str, product: &str) -> Value {
    json!({
        "transactionId": id,
        "originalTransactionId": id,
        "bundleId": BUNDLE,
        "productId": product,
        "environment": "Sandbox",
        "purchaseDate": T0_MS,
        "type": "Consumable",
    })
}

pub async fn apple_app(chain: &Chain) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("apple-root.pem");
    std::fs::write(&root, &chain.root_pem).unwrap();
    let t = TestApp::spawn_with(|c| {
        c.payments.apple.enabled = true;
        c.payments.apple.bundle_id = BUNDLE.into();
        c.payments.apple.environment = "Sandbox".into();
        c.payments.apple.root_certificate_file = root.to_string_lossy().into();
    })
    .await;
    (t, dir)
}

pub async fn product(t: &TestApp, admin: &Tokens) -> String {
    let r = t
        .post(
            "/v1/admin/products",
            Some(&admin.access),
            json!({"name": "100 coins", "storeProductIds": {"ios": "coins_100", "android": "coins_100_android"},
                   "coins": 100, "bonusCoins": 20, "priceMinor": 199, "currency": "usd"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["currency"], "USD");
    r.body["id"].as_str().unwrap().to_owned()
}

pub async fn intent(t: &TestApp, who: &Tokens, product: &str, platform: &str) -> String {
    let r = t
        .post(
            "/v1/payments/intents",
            Some(&who.access),
            json!({"productId": product, "platform": platform}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "created");
    r.body["id"].as_str().unwrap().to_owned()
}

async fn wallet(t: &TestApp, who: &Tokens) -> Value {
    t.get("/v1/me/balance", &who.access).await.body
}

#[tokio::test]
async fn app_store_purchases_are_verified_and_credited_once() {
    let c = chain(true);
    let (t, _dir) = apple_app(&c).await;
    let admin = t.admin().await;
    let u = t.user().await;
    let p = product(&t, &admin).await;
    assert_eq!(
        t.get("/v1/products?platform=ios", &u.access).await.body["items"][0]["storeProductIds"]["ios"],
        "coins_100"
    );
    assert_eq!(
        t.get("/v1/products?platform=web", &u.access).await.body["items"],
        json!([])
    );
    let i = intent(&t, &u, &p, "ios").await;
    let jws = sign(&c, &transaction("2000000001", "coins_100"));

    let r = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": i, "signedTransaction": jws}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "completed");
    assert_eq!(
        wallet(&t, &u).await,
        json!({"coins": 120, "held": 0, "inDebt": false})
    );
    let again = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": i, "signedTransaction": jws}),
        )
        .await;
    assert_eq!(again.body["state"], "completed");
    assert_eq!(
        wallet(&t, &u).await["coins"],
        120,
        "the same transaction is credited once"
    );
    let i2 = intent(&t, &u, &p, "ios").await;
    let reuse = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": i2, "signedTransaction": jws}),
        )
        .await;
    assert_eq!(reuse.code(), "conflict");
    assert_eq!(wallet(&t, &u).await["coins"], 120);
    let log = t
        .get("/v1/admin/events?type=purchase_completed", &admin.access)
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        log.body["items"][0]["data"]["store"]["transactionId"],
        "2000000001"
    );
}

#[tokio::test]
async fn app_store_data_that_does_not_verify_is_refused_and_credits_nothing() {
    let c = chain(true);
    let (t, _dir) = apple_app(&c).await;
    let admin = t.admin().await;
    let u = t.user().await;
    let other = t.user().await;
    let p = product(&t, &admin).await;
    let rogue = chain(true);
    let no_oids = chain(false);
    let mut wrong_bundle = transaction("t-2", "coins_100");
    wrong_bundle["bundleId"] = json!("com.other.app");
    let mut wrong_env = transaction("t-3", "coins_100");
    wrong_env["environment"] = json!("Production");
    let good = sign(&c, &transaction("t-9", "coins_100"));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(transaction("t-9", "coins_1000").to_string());
    let tampered = parts.join(".");
    let mut swapped_root = rogue.x5c.clone();
    swapped_root[2] = c.x5c[2].clone();
    let swapped = {
        let mut h = Header::new(Algorithm::ES256);
        h.x5c = Some(swapped_root);
        jsonwebtoken::encode(
            &h,
            &transaction("t-10", "coins_100"),
            &EncodingKey::from_ec_pem(rogue.leaf_key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let cases = [
        (
            "a chain from another root",
            sign(&rogue, &transaction("t-1", "coins_100")),
        ),
        ("another chain claiming our root", swapped),
        (
            "no Apple policy OIDs",
            sign(&no_oids, &transaction("t-4", "coins_100")),
        ),
        ("another app", sign(&c, &wrong_bundle)),
        ("another environment", sign(&c, &wrong_env)),
        (
            "another product",
            sign(&c, &transaction("t-5", "coins_1000")),
        ),
        ("a payload changed after signing", tampered),
        ("not a JWS", "abc".to_owned()),
    ];
    for (what, jws) in cases {
        let i = intent(&t, &u, &p, "ios").await;
        let r = t
            .post(
                "/v1/payments/apple",
                Some(&u.access),
                json!({"intentId": i, "signedTransaction": jws}),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "invalid_receipt"),
            "{what}: {:?}",
            r.body
        );
        let state = t.get(&format!("/v1/payments/intents/{i}"), &u.access).await;
        assert_eq!(state.body["state"], "failed", "{what}");
    }
    assert_eq!(wallet(&t, &u).await["coins"], 0);
    // Someone else's intent is not found; an Android intent is not for the App Store.
    let i = intent(&t, &u, &p, "ios").await;
    let theirs = t
        .post(
            "/v1/payments/apple",
            Some(&other.access),
            json!({"intentId": i, "signedTransaction": good}),
        )
        .await;
    assert_eq!(theirs.code(), "not_found");
    let android = intent(&t, &u, &p, "android").await;
    let wrong = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": android, "signedTransaction": good}),
        )
        .await;
    assert_eq!(wrong.code(), "validation_failed");
    assert_eq!(wallet(&t, &u).await["coins"], 0);
}

fn notification(c: &Chain, kind: &str, uuid: &str, tx: &Value) -> String {
    let inner = sign(c, tx);
    sign(
        c,
        &json!({
            "notificationType": kind,
            "notificationUUID": uuid,
            "data": {"bundleId": BUNDLE, "environment": "Sandbox", "signedTransactionInfo": inner},
        }),
    )
}

#[tokio::test]
async fn a_refund_after_spending_leaves_a_debt_the_next_purchase_pays_first() {
    let c = chain(true);
    let (t, _dir) = apple_app(&c).await;
    let admin = t.admin().await;
    let u = t.user().await;
    let s = t.with_role(&admin, "streamer").await;
    let p = product(&t, &admin).await;
    let i = intent(&t, &u, &p, "ios").await;
    t.post(
        "/v1/payments/apple",
        Some(&u.access),
        json!({"intentId": i, "signedTransaction": sign(&c, &transaction("t-1", "coins_100"))}),
    )
    .await;
    let gift = t
        .post(
            "/v1/admin/gifts",
            Some(&admin.access),
            json!({"name": "Ring", "price": 100, "streamerSharePercent": 50, "platforms": ["ios"]}),
        )
        .await;
    let sent = post_idem(
        &t,
        "/v1/gifts/send",
        &u.access,
        Some("spend"),
        json!({"giftId": gift.body["id"], "toUserId": s.user_id}),
    )
    .await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(wallet(&t, &u).await["coins"], 20);

    let refund = notification(&c, "REFUND", "n-1", &transaction("t-1", "coins_100"));
    let r = t
        .post("/v1/webhooks/apple", None, json!({"signedPayload": refund}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let again = t
        .post("/v1/webhooks/apple", None, json!({"signedPayload": refund}))
        .await;
    assert_eq!(again.status, 204, "a redelivery is acknowledged");
    assert_eq!(
        wallet(&t, &u).await,
        json!({"coins": -100, "held": 0, "inDebt": true}),
        "taken back once"
    );
    assert_eq!(
        t.get(&format!("/v1/payments/intents/{i}"), &u.access)
            .await
            .body["state"],
        "refunded"
    );
    // In debt, nothing can be spent.
    let g = post_idem(
        &t,
        "/v1/gifts/send",
        &u.access,
        Some("spend-2"),
        json!({"giftId": gift.body["id"], "toUserId": s.user_id}),
    )
    .await;
    assert_eq!(g.code(), "insufficient_balance");
    let i2 = intent(&t, &u, &p, "ios").await;
    t.post(
        "/v1/payments/apple",
        Some(&u.access),
        json!({"intentId": i2, "signedTransaction": sign(&c, &transaction("t-2", "coins_100"))}),
    )
    .await;
    assert_eq!(
        wallet(&t, &u).await,
        json!({"coins": 20, "held": 0, "inDebt": false}),
        "the purchase paid the debt first"
    );
    let other = notification(
        &c,
        "DID_CHANGE_RENEWAL_STATUS",
        "n-2",
        &transaction("t-2", "coins_100"),
    );
    assert_eq!(
        t.post("/v1/webhooks/apple", None, json!({"signedPayload": other}))
            .await
            .status,
        204
    );
    let forged = notification(
        &chain(true),
        "REFUND",
        "n-3",
        &transaction("t-2", "coins_100"),
    );
    assert_eq!(
        t.post("/v1/webhooks/apple", None, json!({"signedPayload": forged}))
            .await
            .code(),
        "invalid_receipt"
    );
    assert_eq!(wallet(&t, &u).await["coins"], 20);
    let log = t
        .get("/v1/admin/events?type=purchase_refunded", &admin.access)
        .await;
    assert_eq!(log.body["items"].as_array().unwrap().len(), 1);
    let store = t.app().ctx.store.clone();
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.wallets_in_debt, 0);
}

// --- Google Play -----------------------------------------------------------------------------

#[derive(Default)]
struct FakeGoogle {
    requests: Mutex<Vec<(String, String, String)>>,
}

async fn fake_google() -> (Arc<FakeGoogle>, String) {
    use poem::{EndpointExt, Response, Route, handler, web::Data, web::Path};
    let state = Arc::new(FakeGoogle::default());

    #[handler]
    async fn token_endpoint(
        req: &poem::Request,
        body: String,
        state: Data<&Arc<FakeGoogle>>,
    ) -> Response {
        state
            .requests
            .lock()
            .push(("POST".into(), req.uri().path().to_owned(), body));
        Response::builder().content_type("application/json").body(
            json!({"access_token": "play-token-1", "expires_in": 3600, "token_type": "Bearer"})
                .to_string(),
        )
    }

    #[handler]
    async fn purchase(
        req: &poem::Request,
        Path((_pkg, product, token)): Path<(String, String, String)>,
        state: Data<&Arc<FakeGoogle>>,
    ) -> Response {
        let auth = req.header("authorization").unwrap_or_default().to_owned();
        state.requests.lock().push((
            req.method().to_string(),
            format!("{product}/{token}"),
            auth.clone(),
        ));
        if auth != "Bearer play-token-1" {
            return Response::builder()
                .status(poem::http::StatusCode::UNAUTHORIZED)
                .finish();
        }
        if req.method() == poem::http::Method::POST {
            return Response::builder()
                .status(poem::http::StatusCode::NO_CONTENT)
                .finish();
        }
        let body = match token.as_str() {
            "good-token" => {
                json!({"kind": "androidpublisher#productPurchase", "purchaseState": 0, "consumptionState": 0, "orderId": "GPA.1111-2222", "acknowledgementState": 0})
            }
            "pending-token" => {
                json!({"kind": "androidpublisher#productPurchase", "purchaseState": 2, "consumptionState": 0, "orderId": "GPA.3333"})
            }
            "test-token" => {
                json!({"purchaseState": 0, "consumptionState": 0, "orderId": "GPA.4444", "purchaseType": 0})
            }
            "double-token" => {
                json!({"purchaseState": 0, "consumptionState": 1, "orderId": "GPA.5555", "quantity": 2})
            }
            "stolen-token" => {
                json!({"purchaseState": 0, "consumptionState": 1, "orderId": "GPA.6666", "obfuscatedExternalAccountId": "another-intent"})
            }
            "no-state-token" => json!({"consumptionState": 0, "orderId": "GPA.7777"}),
            _ => {
                return Response::builder()
                    .status(poem::http::StatusCode::NOT_FOUND)
                    .body(json!({"error": {"code": 404}}).to_string());
            }
        };
        Response::builder()
            .content_type("application/json")
            .body(body.to_string())
    }

    let app = Route::new()
        .at("/token", poem::post(token_endpoint))
        .at(
            "/androidpublisher/v3/applications/:pkg/purchases/products/:product/tokens/:token",
            poem::get(purchase).post(purchase),
        )
        .data(state.clone());
    let addr = serve_fake(app).await;
    (state, format!("http://{addr}"))
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

const PUSH_AUDIENCE: &str = "https://duet.example.com/v1/webhooks/google";
const PUSH_ACCOUNT: &str = "rtdn-push@duet-test.iam.gserviceaccount.com";

async fn google_app() -> (TestApp, Arc<FakeGoogle>, tempfile::TempDir) {
    let (fake, base) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("service-account.json");
    let key = std::fs::read_to_string(fixture("idp-private.pem")).unwrap();
    std::fs::write(&sa, json!({"type": "service_account", "client_email": "duet-play@duet-test.iam.gserviceaccount.com", "private_key": key}).to_string()).unwrap();
    let t = TestApp::spawn_with(|c| {
        let g = &mut c.payments.google;
        g.enabled = true;
        g.package_name = "com.duet.app".into();
        g.service_account_file = sa.to_string_lossy().into();
        g.token_url = format!("{base}/token");
        g.api_base_url = base.clone();
        g.pubsub_audience = PUSH_AUDIENCE.into();
        g.pubsub_service_account = PUSH_ACCOUNT.into();
        g.pubsub_jwks_file = fixture("idp-jwks.json");
    })
    .await;
    (t, fake, dir)
}

fn push_token(now_s: i64, email: &str) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("test-key-1".into());
    let key = EncodingKey::from_rsa_pem(
        std::fs::read_to_string(fixture("idp-private.pem"))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    jsonwebtoken::encode(
        &h,
        &json!({"iss": "https://accounts.google.com", "aud": PUSH_AUDIENCE, "email": email, "email_verified": true, "iat": now_s, "exp": now_s + 3600}),
        &key,
    )
    .unwrap()
}

fn push_body(message_id: &str, order_id: &str) -> Value {
    let n = json!({"version": "1.0", "packageName": "com.duet.app", "eventTimeMillis": "1",
                   "voidedPurchaseNotification": {"purchaseToken": "good-token", "orderId": order_id, "productType": 2, "refundType": 1}});
    json!({"message": {"data": STANDARD.encode(n.to_string()), "messageId": message_id, "publishTime": "2026-03-01T12:00:00Z"},
           "subscription": "projects/duet/subscriptions/rtdn"})
}

#[tokio::test]
async fn google_play_purchases_are_verified_consumed_and_credited_once() {
    let (t, fake, _dir) = google_app().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let p = product(&t, &admin).await;
    let i = intent(&t, &u, &p, "android").await;
    let body =
        json!({"intentId": i, "productId": "coins_100_android", "purchaseToken": "good-token"});
    let r = t
        .post("/v1/payments/google", Some(&u.access), body.clone())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "completed");
    assert_eq!(wallet(&t, &u).await["coins"], 120);
    let again = t.post("/v1/payments/google", Some(&u.access), body).await;
    assert_eq!(again.body["state"], "completed");
    assert_eq!(
        wallet(&t, &u).await["coins"],
        120,
        "credited once per order id"
    );

    let requests = fake.requests.lock().clone();
    let (_, _, form) = requests
        .iter()
        .find(|r| r.1 == "/token")
        .expect("a token exchange");
    assert!(
        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{form}"
    );
    let assertion = form.split("assertion=").nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(assertion.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "duet-play@duet-test.iam.gserviceaccount.com");
    assert_eq!(
        claims["scope"],
        "https://www.googleapis.com/auth/androidpublisher"
    );
    assert!(requests.iter().any(|r| r.0 == "GET"
        && r.1 == "coins_100_android/good-token"
        && r.2 == "Bearer play-token-1"));
    assert!(
        requests
            .iter()
            .any(|r| r.0 == "POST" && r.1 == "coins_100_android/good-token:consume"),
        "{requests:?}"
    );
    assert_eq!(
        requests.iter().filter(|r| r.1 == "/token").count(),
        1,
        "the access token is cached"
    );

    let i2 = intent(&t, &u, &p, "android").await;
    let pending = t.post("/v1/payments/google", Some(&u.access), json!({"intentId": i2, "productId": "coins_100_android", "purchaseToken": "pending-token"})).await;
    assert_eq!(
        (pending.status.as_u16(), pending.code()),
        (400, "invalid_receipt")
    );
    assert_eq!(
        t.get(&format!("/v1/payments/intents/{i2}"), &u.access)
            .await
            .body["state"],
        "failed"
    );
    let unknown = t
        .post(
            "/v1/payments/google",
            Some(&u.access),
            json!({"intentId": i2, "productId": "coins_100_android", "purchaseToken": "nope"}),
        )
        .await;
    assert_eq!(unknown.code(), "invalid_receipt");
    let wrong_product = t
        .post(
            "/v1/payments/google",
            Some(&u.access),
            json!({"intentId": i2, "productId": "coins_1000", "purchaseToken": "good-token"}),
        )
        .await;
    assert_eq!(wrong_product.code(), "invalid_receipt");
    assert_eq!(wallet(&t, &u).await["coins"], 120);

    // A voided purchase comes back through Pub/Sub.
    let now = t.now_ms() / 1000;
    let push = |token: String, body: Value| {
        let (http, base) = (t.http.clone(), t.base.clone());
        async move {
            let r = http
                .post(format!("{base}/v1/webhooks/google"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            if status >= 500 {
                panic!("{}", r.text().await.unwrap());
            }
            status
        }
    };
    assert_eq!(
        push(
            push_token(now, "someone@evil.example"),
            push_body("m-1", "GPA.1111-2222")
        )
        .await,
        401
    );
    assert_eq!(
        push("garbage".into(), push_body("m-1", "GPA.1111-2222")).await,
        401
    );
    let no_auth = t
        .call(
            Method::POST,
            "/v1/webhooks/google",
            None,
            Some(push_body("m-1", "GPA.1111-2222")),
        )
        .await;
    assert_eq!(no_auth.code(), "unauthorized");
    assert_eq!(wallet(&t, &u).await["coins"], 120);
    assert_eq!(
        push(
            push_token(now, PUSH_ACCOUNT),
            push_body("m-1", "GPA.1111-2222")
        )
        .await,
        204
    );
    assert_eq!(
        push(
            push_token(now, PUSH_ACCOUNT),
            push_body("m-1", "GPA.1111-2222")
        )
        .await,
        204,
        "redelivered"
    );
    assert_eq!(
        push(
            push_token(now, PUSH_ACCOUNT),
            push_body("m-2", "GPA.1111-2222")
        )
        .await,
        204,
        "another message, same order"
    );
    assert_eq!(wallet(&t, &u).await["coins"], 0, "taken back once");
    assert_eq!(
        t.get(&format!("/v1/payments/intents/{i}"), &u.access)
            .await
            .body["state"],
        "refunded"
    );
}

#[tokio::test]
async fn payments_are_refused_when_the_store_is_not_configured() {
    let t = TestApp::spawn().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let p = product(&t, &admin).await;
    let i = intent(&t, &u, &p, "ios").await;
    let r = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": i, "signedTransaction": "x"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "unavailable"));
    let bad = t
        .post(
            "/v1/payments/intents",
            Some(&u.access),
            json!({"productId": p, "platform": "web"}),
        )
        .await;
    assert_eq!(bad.code(), "validation_failed");
    let bad = t.post("/v1/admin/products", Some(&admin.access), json!({"name": "x", "storeProductIds": {}, "coins": 0, "priceMinor": 1, "currency": "USD"})).await;
    assert_eq!(bad.code(), "validation_failed");
    let bad = t.post("/v1/admin/products", Some(&admin.access), json!({"name": "x", "storeProductIds": {}, "coins": 5, "priceMinor": 1, "currency": "dollars"})).await;
    assert_eq!(bad.code(), "validation_failed");
    let _ = credit;
}

#[tokio::test]
async fn google_play_edge_cases_are_refused_or_counted_right() {
    let (t, _fake, _dir) = google_app().await;
    let admin = t.admin().await;
    let u = t.user().await;
    let p = product(&t, &admin).await;
    for (token, code) in [
        ("test-token", "invalid_receipt"),
        ("stolen-token", "invalid_receipt"),
        // An answer without purchaseState is not a purchase Duet can trust.
        ("no-state-token", "provider_failed"),
    ] {
        let i = intent(&t, &u, &p, "android").await;
        let r = t
            .post(
                "/v1/payments/google",
                Some(&u.access),
                json!({"intentId": i, "productId": "coins_100_android", "purchaseToken": token}),
            )
            .await;
        assert_eq!(r.code(), code, "{token}: {:?}", r.body);
    }
    assert_eq!(wallet(&t, &u).await["coins"], 0);
    let i = intent(&t, &u, &p, "android").await;
    let r = t.post("/v1/payments/google", Some(&u.access), json!({"intentId": i, "productId": "coins_100_android", "purchaseToken": "double-token"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        wallet(&t, &u).await["coins"],
        240,
        "two packs bought, two credited"
    );
}

#[tokio::test]
async fn app_store_edge_cases_refund_first_reversal_account_token_and_edited_products() {
    let c = chain(true);
    let (t, _dir) = apple_app(&c).await;
    let admin = t.admin().await;
    let u = t.user().await;
    let p = product(&t, &admin).await;

    // Refunded before the app ever posted it: it is never credited.
    let early = notification(
        &c,
        "REFUND",
        "n-early",
        &transaction("t-early", "coins_100"),
    );
    assert_eq!(
        t.post("/v1/webhooks/apple", None, json!({"signedPayload": early}))
            .await
            .status,
        204
    );
    let i = intent(&t, &u, &p, "ios").await;
    let late = t.post("/v1/payments/apple", Some(&u.access), json!({"intentId": i, "signedTransaction": sign(&c, &transaction("t-early", "coins_100"))})).await;
    assert_eq!(late.code(), "invalid_receipt");
    assert_eq!(wallet(&t, &u).await["coins"], 0);

    // appAccountToken ties a transaction to its intent.
    let i = intent(&t, &u, &p, "ios").await;
    let mut other = transaction("t-token", "coins_100");
    other["appAccountToken"] = json!("00000000-0000-4000-8000-000000000000");
    let r = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": i, "signedTransaction": sign(&c, &other)}),
        )
        .await;
    assert_eq!(r.code(), "invalid_receipt");
    let i = intent(&t, &u, &p, "ios").await;
    let mut mine = transaction("t-mine", "coins_100");
    mine["appAccountToken"] = json!(i.to_uppercase());
    mine["quantity"] = json!(2);
    // The product changes after the user paid: the intent keeps what it was bought as.
    let edited = t
        .call(
            Method::PUT,
            &format!("/v1/admin/products/{p}"),
            Some(&admin.access),
            Some(json!({"name": "renamed", "storeProductIds": {"ios": "coins_100_v2"}, "coins": 500, "priceMinor": 199, "currency": "USD"})),
        )
        .await;
    assert_eq!(edited.status, 200);
    let r = t
        .post(
            "/v1/payments/apple",
            Some(&u.access),
            json!({"intentId": i, "signedTransaction": sign(&c, &mine)}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        wallet(&t, &u).await["coins"],
        240,
        "two packs of 100 + 20, as bought"
    );

    // A refund, then Apple reverses it.
    let refund = notification(&c, "REFUND", "n-r", &transaction("t-mine", "coins_100"));
    t.post("/v1/webhooks/apple", None, json!({"signedPayload": refund}))
        .await;
    assert_eq!(wallet(&t, &u).await["coins"], 0);
    let reversed = notification(
        &c,
        "REFUND_REVERSED",
        "n-rr",
        &transaction("t-mine", "coins_100"),
    );
    assert_eq!(
        t.post(
            "/v1/webhooks/apple",
            None,
            json!({"signedPayload": reversed})
        )
        .await
        .status,
        204
    );
    assert_eq!(wallet(&t, &u).await["coins"], 240);
    assert_eq!(
        t.get(&format!("/v1/payments/intents/{i}"), &u.access)
            .await
            .body["state"],
        "completed"
    );
    let store = t.app().ctx.store.clone();
    let report = store
        .read(|rtx| duet::domains::balance::verify::verify(rtx, |_, _| {}))
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}
