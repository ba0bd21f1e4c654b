//! REST routes of the user domain: `/v1/auth/*` and the caller's sessions and devices.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{Accepted, ApiTags, BearerAuth, NoContent, client_meta};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::AppResult;

use super::AuthTokens;
use super::identities::{IdentityInfo, Proof};
use super::model::{
    DEVICE_ID_CHARS_MAX, IdentityKind, PUSH_TOKEN_CHARS_MAX, Platform, PushDevice, PushProvider,
    SessionRecord, SignInMethod, parse_token_like,
};

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceSignIn {
    /// A stable id the app generates once per install.
    pub device_id: String,
    /// A random secret (16–256 characters) the app generates with the id and keeps in the
    /// platform's secure storage.
    pub device_secret: String,
    pub platform: Platform,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct Credentials {
    pub email: String,
    /// 8–256 characters.
    pub password: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ExternalSignIn {
    /// A Firebase-compatible ID token (RS256 JWT).
    pub id_token: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct AppleSignIn {
    /// The identity token from `ASAuthorizationAppleIDCredential.identityToken`.
    pub id_token: String,
    /// The raw nonce the app generated; Apple signed its SHA-256 (hex) into the token.
    /// 1–256 characters.
    pub nonce: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct FacebookSignIn {
    /// A user access token from Facebook Login (checked through the Graph API). Give this or
    /// `idToken`.
    pub access_token: Option<String>,
    /// An iOS Limited Login token (OIDC, checked against Facebook's keys).
    pub id_token: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct GoogleSignIn {
    /// The ID token from Google Sign-In (any of the configured client ids).
    pub id_token: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PhoneStart {
    /// E.164: `+`, the country code and the number (8–15 digits); spaces and dashes are
    /// ignored.
    pub phone: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PhoneCodeSent {
    /// Seconds the code stays good.
    pub expires_in: u64,
    /// Seconds before another code can be sent to the number.
    pub resend_in: u64,
}

#[derive(poem_openapi::ApiResponse)]
pub enum PhoneStartResponse {
    /// The code is on its way.
    #[oai(status = 202)]
    Sent(Json<PhoneCodeSent>),
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct PhoneVerify {
    pub phone: String,
    /// The 4–10 digit code from the SMS.
    pub code: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct LinkTokenBody {
    /// The token from the link in the email.
    pub token: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ForgotPassword {
    pub email: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct ResetPassword {
    /// The token from the link in the email.
    pub token: String,
    /// The new password, 8–256 characters.
    pub password: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct TokenResponse {
    /// Bearer token for REST and the WebSocket.
    pub access_token: String,
    /// Opaque; exchange it at `/v1/auth/refresh` for a new pair. Single use.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user_id: String,
}

impl From<AuthTokens> for TokenResponse {
    fn from(t: AuthTokens) -> Self {
        TokenResponse {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            expires_in: t.expires_in,
            user_id: t.user_id,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SessionView {
    pub id: String,
    pub method: SignInMethod,
    pub platform: Option<Platform>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// The session of the token making this request.
    pub current: bool,
}

impl SessionView {
    fn new(s: SessionRecord, current: &str) -> Self {
        SessionView {
            current: s.id == current,
            id: s.id,
            method: s.method,
            platform: s.platform,
            client_address: s.client_address,
            user_agent: s.user_agent,
            created_at: to_datetime(s.created_at_ms),
            last_used_at: to_datetime(s.last_used_at_ms),
            expires_at: to_datetime(s.expires_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct SessionList {
    pub items: Vec<SessionView>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct RevokedCount {
    pub revoked: u32,
}

/// What proves the caller holds the identity to link; the fields depend on the provider:
/// `device`: deviceId + deviceSecret; `email`: email + password (the email is verified by a
/// link before it signs in); `phone`: phone + code (from `POST /v1/auth/phone/start`);
/// `apple`: idToken + nonce; `google`, `firebase`: idToken; `facebook`: accessToken or idToken
/// (Limited Login).
#[derive(Object, Default)]
#[oai(rename_all = "camelCase")]
pub struct IdentityProof {
    pub device_id: Option<String>,
    pub device_secret: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub phone: Option<String>,
    pub code: Option<String>,
    pub id_token: Option<String>,
    pub nonce: Option<String>,
    pub access_token: Option<String>,
}

impl IdentityProof {
    fn into_proof(self, kind: IdentityKind) -> AppResult<Proof> {
        let need = |v: Option<String>, field: &str| {
            v.ok_or_else(|| {
                crate::core::error::AppError::validation(format!(
                    "linking {} needs `{field}`",
                    kind.as_str()
                ))
            })
        };
        let id_token = |provider, token, nonce| Proof::IdToken {
            provider,
            id_token: token,
            nonce,
        };
        use super::IdProvider;
        Ok(match kind {
            IdentityKind::Device => Proof::Device {
                device_id: need(self.device_id, "deviceId")?,
                device_secret: need(self.device_secret, "deviceSecret")?,
            },
            IdentityKind::Email => Proof::Email {
                email: need(self.email, "email")?,
                password: need(self.password, "password")?,
            },
            IdentityKind::Phone => Proof::Phone {
                phone: need(self.phone, "phone")?,
                code: need(self.code, "code")?,
            },
            IdentityKind::Apple => id_token(
                IdProvider::Apple,
                need(self.id_token, "idToken")?,
                Some(need(self.nonce, "nonce")?),
            ),
            IdentityKind::Google => {
                id_token(IdProvider::Google, need(self.id_token, "idToken")?, None)
            }
            IdentityKind::Firebase => {
                id_token(IdProvider::Firebase, need(self.id_token, "idToken")?, None)
            }
            IdentityKind::Facebook => match (self.access_token, self.id_token) {
                (Some(token), None) => Proof::FacebookAccessToken(token),
                (None, Some(token)) => id_token(IdProvider::Facebook, token, None),
                _ => {
                    return Err(crate::core::error::AppError::validation(
                        "give exactly one of accessToken and idToken",
                    ));
                }
            },
        })
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct IdentityView {
    /// Opaque; what `DELETE /v1/me/identities/{provider}/{identityId}` takes.
    pub id: String,
    pub provider: IdentityKind,
    /// The device id, email address, phone number or the provider's user id.
    pub subject: String,
    /// When it was linked; absent for identities linked before this was recorded, and for an
    /// email not verified yet.
    pub linked_at: Option<OffsetDateTime>,
    /// `false` only for an email added and not verified yet: it cannot sign in until its link
    /// is opened.
    pub verified: bool,
}

impl From<IdentityInfo> for IdentityView {
    fn from(i: IdentityInfo) -> Self {
        IdentityView {
            id: i.id,
            provider: i.kind,
            subject: i.subject,
            linked_at: (i.linked_at_ms > 0).then(|| to_datetime(i.linked_at_ms)),
            verified: i.verified,
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct IdentityList {
    pub items: Vec<IdentityView>,
}

impl IdentityList {
    pub fn of(items: Vec<IdentityInfo>) -> IdentityList {
        IdentityList {
            items: items.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceRequest {
    pub platform: Platform,
    pub provider: PushProvider,
    /// The registration token the push provider gave the app.
    pub token: String,
    pub app_version: Option<String>,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceView {
    pub device_id: String,
    pub platform: Platform,
    pub provider: PushProvider,
    pub token: String,
    pub app_version: Option<String>,
    pub updated_at: OffsetDateTime,
}

#[derive(Object)]
#[oai(rename_all = "camelCase")]
pub struct DeviceList {
    pub items: Vec<DeviceView>,
}

pub struct AuthApi;

#[OpenApi(prefix_path = "/v1/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign in by device (anonymous); the first use creates the account. Public.
    #[oai(path = "/device", method = "post", operation_id = "auth_device")]
    async fn device(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<DeviceSignIn>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let b = body.0;
        let t =
            super::sign_in_device(&ctx, &b.device_id, &b.device_secret, b.platform, meta).await?;
        Ok(Json(t.into()))
    }

    /// Create an account with email and password. Public.
    #[oai(path = "/register", method = "post", operation_id = "auth_register")]
    async fn register(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<Credentials>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let t = super::register(&ctx, &body.email, &body.password, None, meta).await?;
        Ok(Json(t.into()))
    }

    /// Sign in with email and password. Public; throttled per account and per address.
    #[oai(path = "/login", method = "post", operation_id = "auth_login")]
    async fn login(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<Credentials>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let t = super::login(&ctx, &body.email, &body.password, meta).await?;
        Ok(Json(t.into()))
    }

    /// Sign in with an external provider's ID token (Firebase-compatible). Public.
    #[oai(path = "/external", method = "post", operation_id = "auth_external")]
    async fn external(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<ExternalSignIn>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let t = super::sign_in_external(&ctx, &body.id_token, meta).await?;
        Ok(Json(t.into()))
    }

    /// Sign in with Apple: the identity token is checked against Apple's keys, issuer,
    /// audience (a configured bundle or service id), expiry and the nonce. The first use
    /// creates the account. Public; throttled per address. `unavailable` when not configured.
    #[oai(path = "/apple", method = "post", operation_id = "auth_apple")]
    async fn apple(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<AppleSignIn>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let provider = super::IdProvider::Apple;
        let t =
            super::sign_in_with_id_token(&ctx, provider, &body.id_token, Some(&body.nonce), meta)
                .await?;
        Ok(Json(t.into()))
    }

    /// Sign in with Google: the ID token is checked against Google's keys, issuer, audience
    /// (a configured client id) and expiry. The first use creates the account. Public;
    /// throttled per address. `unavailable` when not configured.
    #[oai(path = "/google", method = "post", operation_id = "auth_google")]
    async fn google(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<GoogleSignIn>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let provider = super::IdProvider::Google;
        let t = super::sign_in_with_id_token(&ctx, provider, &body.id_token, None, meta).await?;
        Ok(Json(t.into()))
    }

    /// Facebook Login: a user access token checked through the Graph API (`debug_token` with
    /// the app's token: valid, a user token, this app; then `me`), or an iOS Limited Login
    /// token checked against Facebook's keys (audience the app id). Exactly one of the two.
    /// The first use creates the account. Public; throttled per address.
    #[oai(path = "/facebook", method = "post", operation_id = "auth_facebook")]
    async fn facebook(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<FacebookSignIn>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let t = match (&body.access_token, &body.id_token) {
            (Some(access), None) => super::sign_in_facebook(&ctx, access, meta).await?,
            (None, Some(id)) => {
                let provider = super::IdProvider::Facebook;
                super::sign_in_with_id_token(&ctx, provider, id, None, meta).await?
            }
            _ => {
                return Err(crate::core::error::AppError::validation(
                    "give exactly one of accessToken and idToken",
                ));
            }
        };
        Ok(Json(t.into()))
    }

    /// Send a one-time code by SMS to sign in with a phone number (E.164). The answer is the
    /// same whether the number has an account. Public; limited per number, per address and
    /// overall (`rate_limited` with `Retry-After`); `unavailable` when not configured.
    #[oai(
        path = "/phone/start",
        method = "post",
        operation_id = "auth_phone_start"
    )]
    async fn phone_start(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<PhoneStart>,
    ) -> AppResult<PhoneStartResponse> {
        let meta = client_meta(&ctx, req);
        let sent = super::phone::start(&ctx, &body.phone, meta).await?;
        Ok(PhoneStartResponse::Sent(Json(PhoneCodeSent {
            expires_in: sent.expires_in_secs,
            resend_in: sent.resend_in_secs,
        })))
    }

    /// Sign in with the code sent to the phone; the first use of a number creates the account.
    /// A wrong code is `invalid_code`; too many wrong tries `code_attempts_exhausted` (ask for a
    /// new code). Public; throttled like password sign-in.
    #[oai(
        path = "/phone/verify",
        method = "post",
        operation_id = "auth_phone_verify"
    )]
    async fn phone_verify(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<PhoneVerify>,
    ) -> AppResult<Json<TokenResponse>> {
        let meta = client_meta(&ctx, req);
        let t = super::sign_in_phone(&ctx, &body.phone, &body.code, meta).await?;
        Ok(Json(t.into()))
    }

    /// Open an email verification link: the account that added the email owns it from now on
    /// and can sign in with it. `invalid_token` when the link is unknown, used or expired.
    /// Public.
    #[oai(
        path = "/email/verify",
        method = "post",
        operation_id = "auth_email_verify"
    )]
    async fn email_verify(
        &self,
        ctx: Data<&Arc<Ctx>>,
        body: JsonBody<LinkTokenBody>,
    ) -> AppResult<NoContent> {
        super::email::verify(&ctx, &body.token).await?;
        Ok(NoContent::Done)
    }

    /// Ask for a password reset link. The answer is `202` whether or not the email belongs to
    /// an account; only a verified email gets a link. Public; throttled per address.
    #[oai(
        path = "/password/forgot",
        method = "post",
        operation_id = "auth_password_forgot"
    )]
    async fn password_forgot(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        body: JsonBody<ForgotPassword>,
    ) -> AppResult<Accepted> {
        let meta = client_meta(&ctx, req);
        super::email::forgot(&ctx, &body.email, meta).await?;
        Ok(Accepted::Queued)
    }

    /// Set a new password with a reset link; every session of the account is revoked. Public.
    #[oai(
        path = "/password/reset",
        method = "post",
        operation_id = "auth_password_reset"
    )]
    async fn password_reset(
        &self,
        ctx: Data<&Arc<Ctx>>,
        body: JsonBody<ResetPassword>,
    ) -> AppResult<NoContent> {
        super::email::reset(&ctx, &body.token, &body.password).await?;
        Ok(NoContent::Done)
    }

    /// Exchange a refresh token for a new pair. The old refresh token stops working; using it
    /// again revokes the whole session (`refresh_token_reused`). Public.
    #[oai(path = "/refresh", method = "post", operation_id = "auth_refresh")]
    async fn refresh(
        &self,
        ctx: Data<&Arc<Ctx>>,
        body: JsonBody<RefreshRequest>,
    ) -> AppResult<Json<TokenResponse>> {
        Ok(Json(
            super::refresh(&ctx, &body.refresh_token).await?.into(),
        ))
    }

    /// End the current session. Any role.
    #[oai(path = "/logout", method = "post", operation_id = "auth_logout")]
    async fn logout(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::logout(&ctx, &who).await?;
        Ok(NoContent::Done)
    }
}

pub struct AccountApi;

#[OpenApi(prefix_path = "/v1/me", tag = "ApiTags::Account")]
impl AccountApi {
    /// Add email and password to the caller's account (e.g. an anonymous device account), so it
    /// can sign in elsewhere. Any role.
    #[oai(
        path = "/credentials",
        method = "post",
        operation_id = "me_link_credentials"
    )]
    async fn link_credentials(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        auth: BearerAuth,
        body: JsonBody<Credentials>,
    ) -> AppResult<Json<TokenResponse>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let meta = client_meta(&ctx, req);
        let t = super::register(&ctx, &body.email, &body.password, Some(who), meta).await?;
        Ok(Json(t.into()))
    }

    /// Send a new verification link for the email the caller added. Any role; at most
    /// `auth.email.resends_per_hour_max` an hour.
    #[oai(
        path = "/email/verification",
        method = "post",
        operation_id = "me_email_resend"
    )]
    async fn email_resend(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Accepted> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::email::resend_verification(&ctx, &who.user_id).await?;
        Ok(Accepted::Queued)
    }

    /// The caller's ways of signing in (and an email added but not verified yet). Any role.
    #[oai(path = "/identities", method = "get", operation_id = "me_identities")]
    async fn identities(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<IdentityList>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let items = super::identities::list(&ctx, &who.user_id).await?;
        Ok(Json(IdentityList::of(items)))
    }

    /// Link another way of signing in, with that provider's proof (see `IdentityProof`). An
    /// email is added unverified and a link goes to it. One that belongs to another account is
    /// `identity_in_use`. Answers the caller's identities. Any role.
    #[oai(
        path = "/identities/:provider",
        method = "post",
        operation_id = "me_identity_link"
    )]
    async fn link_identity(
        &self,
        ctx: Data<&Arc<Ctx>>,
        req: &Request,
        auth: BearerAuth,
        provider: Path<IdentityKind>,
        body: JsonBody<IdentityProof>,
    ) -> AppResult<Json<IdentityList>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let meta = client_meta(&ctx, req);
        let proof = body.0.into_proof(provider.0)?;
        super::identities::link(&ctx, &who, proof, meta).await?;
        let items = super::identities::list(&ctx, &who.user_id).await?;
        Ok(Json(IdentityList::of(items)))
    }

    /// Remove one of the caller's ways of signing in (`id` from the list; `provider` is its
    /// provider); the last one cannot be removed (`last_identity`). Any role.
    #[oai(
        path = "/identities/:provider/:identity_id",
        method = "delete",
        operation_id = "me_identity_unlink"
    )]
    async fn unlink_identity(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        provider: Path<IdentityKind>,
        identity_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::identities::unlink(&ctx, &who, provider.0, &identity_id).await?;
        Ok(NoContent::Done)
    }

    /// The caller's live sessions, most recently used first. Any role.
    #[oai(path = "/sessions", method = "get", operation_id = "me_sessions")]
    async fn sessions(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<SessionList>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let items = super::list_sessions(&ctx, &who.user_id).await?;
        Ok(Json(SessionList {
            items: items
                .into_iter()
                .map(|s| SessionView::new(s, &who.session_id))
                .collect(),
        }))
    }

    /// Revoke one of the caller's sessions. Any role.
    #[oai(
        path = "/sessions/:session_id",
        method = "delete",
        operation_id = "me_revoke_session"
    )]
    async fn revoke_session(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        session_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::revoke_session(&ctx, &who.user_id, &session_id, "revoked_by_user").await?;
        Ok(NoContent::Done)
    }

    /// Revoke every session of the caller except the current one. Any role.
    #[oai(
        path = "/sessions",
        method = "delete",
        operation_id = "me_revoke_other_sessions"
    )]
    async fn revoke_others(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
    ) -> AppResult<Json<RevokedCount>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let revoked = super::revoke_other_sessions(&ctx, &who.user_id, &who.session_id).await?;
        Ok(Json(RevokedCount { revoked }))
    }

    /// Register or update a push registration token for one of the caller's devices. Any role.
    #[oai(
        path = "/devices/:device_id",
        method = "put",
        operation_id = "me_put_device"
    )]
    async fn put_device(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        device_id: Path<String>,
        body: JsonBody<DeviceRequest>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        let device_id = parse_token_like("deviceId", &device_id, 1, DEVICE_ID_CHARS_MAX)?;
        let b = body.0;
        let token = parse_token_like("token", &b.token, 1, PUSH_TOKEN_CHARS_MAX)?;
        let app_version = match b.app_version {
            Some(v) => Some(crate::core::platform::AppVersion::parse(&v)?.to_string()),
            None => None,
        };
        let device = PushDevice {
            device_id,
            platform: b.platform,
            provider: b.provider,
            token,
            app_version,
            updated_at_ms: 0,
        };
        super::put_device(&ctx, &who.user_id, device).await?;
        Ok(NoContent::Done)
    }

    /// Remove a device's push registration. Any role.
    #[oai(
        path = "/devices/:device_id",
        method = "delete",
        operation_id = "me_delete_device"
    )]
    async fn delete_device(
        &self,
        ctx: Data<&Arc<Ctx>>,
        auth: BearerAuth,
        device_id: Path<String>,
    ) -> AppResult<NoContent> {
        let who = auth.require(&ctx, Access::Any).await?;
        super::delete_device(&ctx, &who.user_id, &device_id).await?;
        Ok(NoContent::Done)
    }

    /// The caller's registered push devices. Any role.
    #[oai(path = "/devices", method = "get", operation_id = "me_devices")]
    async fn devices(&self, ctx: Data<&Arc<Ctx>>, auth: BearerAuth) -> AppResult<Json<DeviceList>> {
        let who = auth.require(&ctx, Access::Any).await?;
        let items = super::list_devices(&ctx, &who.user_id).await?;
        Ok(Json(DeviceList {
            items: items
                .into_iter()
                .map(|d| DeviceView {
                    device_id: d.device_id,
                    platform: d.platform,
                    provider: d.provider,
                    token: d.token,
                    app_version: d.app_version,
                    updated_at: to_datetime(d.updated_at_ms),
                })
                .collect(),
        }))
    }
}
