//! `application/problem+json` (RFC 9457) for every REST error, with the stable `code` from the
//! shared table. Errors raised by poem or poem-openapi before a handler runs (malformed JSON,
//! wrong types, missing auth, oversized bodies, unknown routes) are rewritten into the same
//! shape by [`render_poem_error`], so no client ever sees another error format.

use poem::Response;
use poem::http::{HeaderValue, StatusCode, header};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};

use crate::core::error::{AppError, Code};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Deserialize)]
#[oai(rename_all = "camelCase")]
pub struct Problem {
    /// A URI naming the problem type: `urn:duet:error:<code>`.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The stable machine-readable code; clients branch on this.
    pub code: String,
}

impl Problem {
    pub fn from_error(e: &AppError) -> Problem {
        Problem {
            problem_type: format!("urn:duet:error:{}", e.code.as_str()),
            title: e.code.title().to_owned(),
            status: e.code.status().as_u16(),
            detail: e.detail.clone(),
            code: e.code.as_str().to_owned(),
        }
    }
}

pub fn problem_response(e: &AppError) -> Response {
    let body = Problem::from_error(e).to_json_value();
    let mut resp = Response::builder()
        .status(e.code.status())
        .content_type(PROBLEM_CONTENT_TYPE)
        .body(body.to_string());
    if let Some(secs) = e.retry_after_secs
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

impl Problem {
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::json!({
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        })
    }
}

impl poem::error::ResponseError for AppError {
    fn status(&self) -> StatusCode {
        self.code.status()
    }
    fn as_response(&self) -> Response {
        problem_response(self)
    }
}

impl ApiResponse for AppError {
    fn meta() -> MetaResponses {
        let doc = |status: u16, description: &'static str| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: PROBLEM_CONTENT_TYPE,
                schema: Problem::schema_ref(),
            }],
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                doc(400, "Bad input: `validation_failed` or `malformed_json`"),
                doc(
                    401,
                    "`unauthorized`, `invalid_credentials` or `refresh_token_reused`",
                ),
                doc(
                    403,
                    "`forbidden` (wrong role), `account_banned`, `reauthentication_required`, \
                     `kyc_required` (payouts) or `invalid_signature` (media URLs)",
                ),
                doc(404, "`not_found`"),
                doc(409, "`conflict` or `email_taken`"),
                doc(413, "`payload_too_large`"),
                doc(429, "`rate_limited`; see `Retry-After`"),
                doc(500, "`internal`"),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Maps any error that escaped a handler (or never reached one) onto a problem response.
pub fn render_poem_error(err: poem::Error) -> Response {
    let mut resp = match err.downcast_ref::<AppError>() {
        Some(app) => problem_response(app),
        None => {
            let code = classify(&err, err.status());
            let detail = match code {
                Code::Unauthorized => "a bearer access token is required".to_owned(),
                _ => err.to_string(),
            };
            problem_response(&AppError::new(code, detail))
        }
    };
    // Keep the route name for metrics and logs.
    if let Some(op) = err.data::<poem_openapi::OperationId>() {
        resp.set_data(poem_openapi::OperationId(op.0));
    }
    resp
}

fn classify(err: &poem::Error, status: StatusCode) -> Code {
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };
    if err.is::<ParseRequestPayloadError>() {
        return Code::MalformedJson;
    }
    if err.is::<ParseParamError>() || err.is::<ParsePathError>() || err.is::<ParseMultipartError>()
    {
        return Code::ValidationFailed;
    }
    if err.is::<AuthorizationError>() {
        return Code::Unauthorized;
    }
    if err.is::<ContentTypeError>() {
        return Code::UnsupportedMediaType;
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
        StatusCode::UNAUTHORIZED => Code::Unauthorized,
        StatusCode::FORBIDDEN => Code::Forbidden,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => Code::RateLimited,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        s if s.is_client_error() => Code::ValidationFailed,
        _ => Code::Internal,
    }
}
