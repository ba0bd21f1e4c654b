//! The HTTP surface: one OpenAPI service over every domain's routes, the WebSocket, metrics,
//! health, and the middleware every request passes (request id, access log, metrics, body
//! limit, problem+json errors).

pub mod body;
pub mod problem;
pub mod server;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use poem_openapi::auth::Bearer;
use poem_openapi::{ApiResponse, OpenApiService, SecurityScheme, Tags};
use tracing::Instrument;

use crate::app::Ctx;
use crate::core::auth::{Access, Principal};
use crate::core::error::AppResult;
use crate::core::metrics::{RequestLabels, RouteLabels};
use crate::domains;
use crate::domains::user::ClientMeta;

/// Bearer access token issued by `/v1/auth/*`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
pub struct BearerAuth(pub Bearer);

impl BearerAuth {
    /// Authenticates the caller and checks `access`; every route calls this first.
    pub async fn require(&self, ctx: &Ctx, access: Access) -> AppResult<Principal> {
        domains::user::authenticate(ctx, &self.0.token, access).await
    }
}

/// A service credential's token (`duet_svc_…`, from `POST /v1/admin/service-credentials`):
/// what an external moderation pipeline calls the classifier routes with.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "duet_svc")]
pub struct ServiceAuth(pub Bearer);

/// A success with no body.
#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// Accepted: the rest happens after the answer (an email goes out, a deletion is scheduled).
#[derive(ApiResponse)]
pub enum Accepted {
    /// Accepted.
    #[oai(status = 202)]
    Queued,
}

#[derive(Tags)]
pub enum ApiTags {
    /// Sign-in, tokens and sign-out.
    Auth,
    /// The caller's own account: sessions, devices.
    Account,
    /// Profiles, private and public.
    Profile,
    /// App settings and feature flags.
    Settings,
    /// Coins: balances, transactions, adjustments.
    Balance,
    /// The gift catalog and sending gifts.
    Gifts,
    /// Streamer payouts.
    Payouts,
    /// Coin packs, payment intents, store purchases and store webhooks.
    Payments,
    /// Call tariffs.
    Billing,
    /// Direct calls.
    Calls,
    /// Chat, favorites, blocks, interactions and notifications.
    Social,
    /// Uploads of photos, videos and KYC documents, and their signed URLs.
    Media,
    /// Admin and moderator tools.
    Admin,
}

/// Every domain's routes, as one OpenAPI service.
pub fn service() -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    OpenApiService::new(
        (
            domains::user::api::AuthApi,
            domains::user::api::AccountApi,
            domains::profile::api::ProfileApi,
            domains::settings::api::SettingsApi,
            domains::balance::api::BalanceApi,
            domains::gift::api::GiftApi,
            domains::payment::api::PaymentApi,
            domains::billing::api::BillingApi,
            domains::video::api::CallApi,
            (
                domains::blocklist::api::BlocklistApi,
                domains::chat::api::ChatApi,
                domains::favorites::api::FavoriteApi,
                domains::gallery::api::GalleryApi,
                domains::interaction::api::InteractionApi,
                domains::notification::api::NotificationApi,
            ),
            domains::panel::api::PanelApi,
            domains::media::api::MediaApi,
            domains::event_log::api::EventLogApi,
            (
                domains::mission_control::api::AdminApi,
                domains::mission_control::api::PayoutApi,
                domains::mission_control::api::ReportApi,
                domains::mission_control::api::KycApi,
                domains::agency::api::AgencyApi,
                domains::mission_control::api::TableApi,
                domains::portal::api::PortalApi,
                domains::mission_control::api::ClassifierApi,
            ),
            domains::privacy::api::PrivacyApi,
        ),
        "Duet",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "The Duet backend. Authorize with a bearer access token from `/v1/auth/*`. Errors are \
         `application/problem+json` with a stable `code`. The realtime API is the MessagePack \
         WebSocket at `/v1/ws` (see `schema/ws-protocol.md`).",
    )
    .server("/")
}

/// The OpenAPI document, as served at `/openapi.json` and committed in `schema/openapi.json`.
pub fn spec_json() -> String {
    service().spec()
}

pub fn routes(ctx: Arc<Ctx>) -> impl Endpoint {
    let api = service();
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let body_max = ctx.config.server.body_bytes_max;
    // Uploads are bounded by their own, larger limits (per kind, in `media::upload`).
    let upload_max = ctx.config.media.upload_bytes_max();
    Route::new()
        .nest("/", api)
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .at("/v1/ws", get(ws::upgrade))
        .at("/metrics", get(metrics))
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at(
            "/media/:id/:variant",
            get(domains::media::api::download).head(domains::media::api::download),
        )
        .around(move |next, req| limit_body(next, req, body_max, upload_max))
        .around(limit_writes)
        .catch_all_error(|e| async move { problem::render_poem_error(e) })
        .around(observe)
        .data(ctx)
}

/// The client's address and agent, for sessions and throttling.
pub fn client_meta(ctx: &Ctx, req: &Request) -> ClientMeta {
    let header = &ctx.config.server.client_ip_header;
    let from_header = (!header.is_empty())
        .then(|| req.header(header.as_str()))
        .flatten()
        // The rightmost entry is the one our proxy appended; entries to its left are whatever
        // the client sent and cannot be trusted.
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    let address = from_header.or_else(|| {
        req.remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string())
    });
    ClientMeta {
        address,
        user_agent: req
            .header("user-agent")
            .map(|s| s.chars().take(256).collect()),
        platform: None,
    }
}

/// Counts every write (POST, PUT, PATCH, DELETE) against the caller's limit before anything
/// else runs: `rate_limits.user_writes` for a valid bearer token's user, `address_writes` per
/// client address otherwise. An invalid token counts against the address, so it can neither
/// spend someone else's allowance nor escape one.
async fn limit_writes<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let is_write = matches!(
        *req.method(),
        poem::http::Method::POST
            | poem::http::Method::PUT
            | poem::http::Method::PATCH
            | poem::http::Method::DELETE
    );
    if let (true, Some(ctx)) = (is_write, req.data::<Arc<Ctx>>()) {
        let now = ctx.store.now_ms();
        let user = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|token| ctx.tokens.verify(token, now).ok())
            .map(|claims| claims.sub);
        match user {
            Some(user_id) => count_user_write(ctx, &user_id)?,
            None => {
                let address = crate::core::rate_limit::address_key(
                    &client_meta(ctx, &req).address.unwrap_or_default(),
                );
                let limit = ctx
                    .config
                    .rate_limits
                    .address_writes
                    .limit("address_writes");
                ctx.limits.check(&limit, &address, now)?;
            }
        }
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Counts one write by `user_id` against `rate_limits.user_writes`: every write route, and the
/// WebSocket frames that write (`ack`).
pub fn count_user_write(ctx: &Ctx, user_id: &str) -> crate::core::error::AppResult<()> {
    let limit = ctx.config.rate_limits.user_writes.limit("user_writes");
    ctx.limits.check(&limit, user_id, ctx.store.now_ms())
}

/// Refuses bodies over the limit with `payload_too_large`: by `Content-Length` before reading,
/// and by counting for bodies without one (chunked, or HTTP/2).
async fn limit_body<E: Endpoint>(
    next: Arc<E>,
    mut req: Request,
    body_max: usize,
    upload_max: u64,
) -> poem::Result<Response> {
    // An upload is streamed to a file and counted against its kind's limit as it arrives.
    let is_upload = req.uri().path() == "/v1/media" && *req.method() == poem::http::Method::POST;
    let max = if is_upload {
        usize::try_from(upload_max).unwrap_or(usize::MAX)
    } else {
        body_max
    };
    let too_large = || {
        crate::core::error::AppError::new(
            crate::core::error::Code::PayloadTooLarge,
            format!("request bodies are at most {max} bytes"),
        )
    };
    let declared = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => return Err(too_large().into()),
        Some(_) => {}
        // No declared length (chunked, or HTTP/2, which needs none): counted as it is read.
        None if !is_upload
            && !matches!(
                *req.method(),
                poem::http::Method::GET | poem::http::Method::HEAD
            ) =>
        {
            let body = req
                .take_body()
                .into_bytes_limit(max)
                .await
                .map_err(|_| too_large())?;
            req.set_body(body);
        }
        None => {}
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Longest request id accepted from a client; longer ones are replaced.
const REQUEST_ID_CHARS_MAX: usize = 64;

async fn observe<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = req
        .header("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= REQUEST_ID_CHARS_MAX && v.is_ascii())
        .map(str::to_owned)
        .unwrap_or_else(crate::core::ids::new_id);
    // Known methods only: any other token would mint a new metric series.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let path = req.uri().path().to_owned();
    let ctx = req.data::<Arc<Ctx>>().cloned();
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path);
    let result = next.call(req).instrument(span.clone()).await;
    let mut resp = match result {
        Ok(r) => r.into_response(),
        Err(e) => problem::render_poem_error(e),
    };
    let route = resp
        .data::<poem_openapi::OperationId>()
        .map(|id| id.0.to_owned())
        .unwrap_or_else(|| match path.as_str() {
            "/v1/ws" | "/metrics" | "/healthz" | "/readyz" | "/openapi.json" => path.clone(),
            p if p.starts_with("/docs") => "/docs".to_owned(),
            _ => "unmatched".to_owned(),
        });
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    if let Some(ctx) = ctx {
        ctx.metrics
            .http_requests
            .get_or_create(&RequestLabels {
                method: method.clone(),
                route: route.clone(),
                status,
            })
            .inc();
        ctx.metrics
            .http_latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            route,
            micros = elapsed.as_micros() as u64,
            "request"
        );
    });
    Ok(resp)
}

#[handler]
fn metrics(ctx: Data<&Arc<Ctx>>) -> Response {
    Response::builder()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(ctx.metrics.render())
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
fn readyz(ctx: Data<&Arc<Ctx>>) -> Response {
    if ctx.is_shutting_down() {
        Response::builder()
            .status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
            .body("shutting down")
    } else {
        Response::builder().body(format!("ready\nml: {}\n", ctx.ml.status))
    }
}
