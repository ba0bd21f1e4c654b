//! REST routes of the user domain: `/v1/auth/*` and the caller's sessions and devices.

use crate::api::body::JsonBody;
use std::sync::Arc;

use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use time::OffsetDateTime;

use crate::api::{ApiTags, BearerAuth, NoContent, client_meta};
use crate::app::Ctx;
use crate::core::auth::Access;
use crate::core::clock::to_datetime;
use crate::core::error::AppResult;

use super::AuthTokens;
use super::model::{
    DEVICE_ID_CHARS_MAX, PUSH_TOKEN_CHARS_MAX, Platform, PushDevice, PushProvider, SessionRecord,
    SignInMethod, parse_token_like,
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
            Some(v) => Some(crate::domains::settings::model::AppVersion::parse(&v)?.to_string()),
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
