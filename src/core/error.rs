//! The one table of error codes shared by REST (problem+json) and the WebSocket (`error` frames).
//!
//! Clients branch on `code`, never on the human text, so a code once published never changes
//! meaning. Adding a code is fine; renaming one is a breaking change.

use std::fmt;

use poem::http::StatusCode;

/// A stable, machine-readable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// No valid credentials were presented.
    Unauthorized,
    /// The caller is authenticated but its role does not allow this.
    Forbidden,
    /// The account is banned; nothing but reading this error is allowed.
    AccountBanned,
    /// The thing asked for does not exist (or is not visible to the caller).
    NotFound,
    /// The request was well-formed but a value broke a rule.
    ValidationFailed,
    /// The body was not valid JSON or did not match the expected shape.
    MalformedJson,
    /// The body exceeded the configured limit.
    PayloadTooLarge,
    /// Too many requests; `Retry-After` says when to come back.
    RateLimited,
    /// Email and password (or device secret) did not match.
    InvalidCredentials,
    /// The email is already registered to another account. Registration no longer answers
    /// it (answers never reveal whether an email is registered); kept so the code keeps its
    /// meaning.
    EmailTaken,
    /// A refresh token was presented twice: the session family is revoked.
    RefreshTokenReused,
    /// The state of the resource does not allow the operation.
    Conflict,
    /// The content type of the request is not accepted.
    UnsupportedMediaType,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// A money-moving request came without an `Idempotency-Key`.
    IdempotencyKeyRequired,
    /// The `Idempotency-Key` was already used for a different request.
    IdempotencyConflict,
    /// The wallet (or earnings) cannot cover the amount.
    InsufficientBalance,
    /// A store receipt or notification failed verification.
    InvalidReceipt,
    /// An outside provider (store, push, video) failed or is unreachable; retry later.
    ProviderFailed,
    /// The person is in another call.
    Busy,
    /// One of the two blocked the other.
    Blocked,
    /// The server cannot take the request now (shutting down, overloaded).
    Unavailable,
    /// A bug or a storage failure; details are in the server log only.
    Internal,
    /// A one-time code (SMS) is wrong, expired, or was never sent.
    InvalidCode,
    /// The one-time code was tried too often; ask for a new one.
    CodeAttemptsExhausted,
    /// A link's token (email verification, password reset) is unknown, used or expired.
    InvalidToken,
    /// The provider vouches for an email that belongs to an existing account: sign in to that
    /// account and link this provider (`POST /v1/me/identities/{provider}`) instead.
    LinkRequired,
    /// This way of signing in already belongs to another account.
    IdentityInUse,
    /// The account's last way of signing in cannot be removed.
    LastIdentity,
    /// The operation needs a fresh sign-in (a session opened moments ago).
    ReauthenticationRequired,
    /// The operation needs a verified KYC case (payouts).
    KycRequired,
    /// A paging cursor outlived the list it pinned; start again from the first page.
    CursorExpired,
    /// The account holds as many media bytes or items as it may; delete some first.
    QuotaExceeded,
    /// The upload could not be read as the type it is (corrupt, truncated, not a video).
    MediaUnreadable,
    /// A photo has more pixels than accepted (a decompression bomb is refused by its header).
    ImageTooLarge,
    /// A media URL's signature does not hold, or it has expired: ask for a new one.
    InvalidSignature,
}

impl Code {
    /// Every code, for documentation and tests.
    pub const ALL: [Code; 36] = [
        Code::Unauthorized,
        Code::Forbidden,
        Code::AccountBanned,
        Code::NotFound,
        Code::ValidationFailed,
        Code::MalformedJson,
        Code::PayloadTooLarge,
        Code::RateLimited,
        Code::InvalidCredentials,
        Code::EmailTaken,
        Code::RefreshTokenReused,
        Code::Conflict,
        Code::UnsupportedMediaType,
        Code::MethodNotAllowed,
        Code::IdempotencyKeyRequired,
        Code::IdempotencyConflict,
        Code::InsufficientBalance,
        Code::InvalidReceipt,
        Code::ProviderFailed,
        Code::Busy,
        Code::Blocked,
        Code::Unavailable,
        Code::Internal,
        Code::InvalidCode,
        Code::CodeAttemptsExhausted,
        Code::InvalidToken,
        Code::LinkRequired,
        Code::IdentityInUse,
        Code::LastIdentity,
        Code::ReauthenticationRequired,
        Code::KycRequired,
        Code::CursorExpired,
        Code::QuotaExceeded,
        Code::MediaUnreadable,
        Code::ImageTooLarge,
        Code::InvalidSignature,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthorized => "unauthorized",
            Code::Forbidden => "forbidden",
            Code::AccountBanned => "account_banned",
            Code::NotFound => "not_found",
            Code::ValidationFailed => "validation_failed",
            Code::MalformedJson => "malformed_json",
            Code::PayloadTooLarge => "payload_too_large",
            Code::RateLimited => "rate_limited",
            Code::InvalidCredentials => "invalid_credentials",
            Code::EmailTaken => "email_taken",
            Code::RefreshTokenReused => "refresh_token_reused",
            Code::Conflict => "conflict",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::IdempotencyKeyRequired => "idempotency_key_required",
            Code::IdempotencyConflict => "idempotency_conflict",
            Code::InsufficientBalance => "insufficient_balance",
            Code::InvalidReceipt => "invalid_receipt",
            Code::ProviderFailed => "provider_failed",
            Code::Busy => "busy",
            Code::Blocked => "blocked",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
            Code::InvalidCode => "invalid_code",
            Code::CodeAttemptsExhausted => "code_attempts_exhausted",
            Code::InvalidToken => "invalid_token",
            Code::LinkRequired => "link_required",
            Code::IdentityInUse => "identity_in_use",
            Code::LastIdentity => "last_identity",
            Code::ReauthenticationRequired => "reauthentication_required",
            Code::KycRequired => "kyc_required",
            Code::CursorExpired => "cursor_expired",
            Code::QuotaExceeded => "quota_exceeded",
            Code::MediaUnreadable => "media_unreadable",
            Code::ImageTooLarge => "image_too_large",
            Code::InvalidSignature => "invalid_signature",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::Unauthorized
            | Code::InvalidCredentials
            | Code::RefreshTokenReused
            | Code::InvalidCode
            | Code::CodeAttemptsExhausted => StatusCode::UNAUTHORIZED,
            // Not 401: clients read that as "refresh the token", which cannot help here.
            Code::ReauthenticationRequired | Code::KycRequired => StatusCode::FORBIDDEN,
            Code::CursorExpired => StatusCode::GONE,
            Code::QuotaExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            Code::MediaUnreadable | Code::ImageTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            Code::InvalidSignature => StatusCode::FORBIDDEN,
            Code::InvalidToken => StatusCode::BAD_REQUEST,
            Code::LinkRequired | Code::IdentityInUse | Code::LastIdentity => StatusCode::CONFLICT,
            Code::Forbidden | Code::AccountBanned => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::ValidationFailed
            | Code::MalformedJson
            | Code::IdempotencyKeyRequired
            | Code::InvalidReceipt => StatusCode::BAD_REQUEST,
            Code::InsufficientBalance => StatusCode::PAYMENT_REQUIRED,
            Code::IdempotencyConflict => StatusCode::CONFLICT,
            Code::ProviderFailed => StatusCode::BAD_GATEWAY,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::EmailTaken | Code::Conflict | Code::Busy => StatusCode::CONFLICT,
            Code::Blocked => StatusCode::FORBIDDEN,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short human title, the same for every occurrence of the code.
    pub fn title(self) -> &'static str {
        match self {
            Code::Unauthorized => "Authentication required",
            Code::Forbidden => "Not allowed for this role",
            Code::AccountBanned => "Account banned",
            Code::NotFound => "Not found",
            Code::ValidationFailed => "Validation failed",
            Code::MalformedJson => "Malformed request body",
            Code::PayloadTooLarge => "Request body too large",
            Code::RateLimited => "Too many requests",
            Code::InvalidCredentials => "Invalid credentials",
            Code::EmailTaken => "Email already registered",
            Code::RefreshTokenReused => "Refresh token reused",
            Code::Conflict => "Conflict",
            Code::UnsupportedMediaType => "Unsupported media type",
            Code::MethodNotAllowed => "Method not allowed",
            Code::IdempotencyKeyRequired => "Idempotency-Key required",
            Code::IdempotencyConflict => "Idempotency-Key reused",
            Code::InsufficientBalance => "Insufficient balance",
            Code::InvalidReceipt => "Invalid receipt",
            Code::ProviderFailed => "Provider failed",
            Code::Busy => "Busy",
            Code::Blocked => "Blocked",
            Code::Unavailable => "Service unavailable",
            Code::Internal => "Internal error",
            Code::InvalidCode => "Invalid code",
            Code::CodeAttemptsExhausted => "Code attempts exhausted",
            Code::InvalidToken => "Invalid or expired link",
            Code::LinkRequired => "Linking required",
            Code::IdentityInUse => "Identity in use",
            Code::LastIdentity => "Last way to sign in",
            Code::ReauthenticationRequired => "Sign in again",
            Code::KycRequired => "Identity verification required",
            Code::CursorExpired => "Cursor expired",
            Code::QuotaExceeded => "Media quota exceeded",
            Code::MediaUnreadable => "Media unreadable",
            Code::ImageTooLarge => "Image too large",
            Code::InvalidSignature => "Invalid or expired URL",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error every domain function returns. It carries its code, so the edges (REST, WebSocket,
/// CLI) render it without knowing which domain raised it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct AppError {
    pub code: Code,
    pub detail: String,
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    pub retry_after_secs: Option<u64>,
}

impl AppError {
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        AppError {
            code,
            detail: detail.into(),
            retry_after_secs: None,
        }
    }
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(Code::ValidationFailed, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(Code::NotFound, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(Code::Conflict, detail)
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        AppError {
            code: Code::RateLimited,
            detail: format!("too many attempts; retry after {retry_after_secs} s"),
            retry_after_secs: Some(retry_after_secs.max(1)),
        }
    }
    /// An internal failure: the cause goes to the log, the client sees only the code.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Code::Internal, "internal error; see the server log")
    }
}

pub type AppResult<T> = Result<T, AppError>;

macro_rules! storage_error_into_internal {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for AppError {
            fn from(e: $t) -> Self {
                AppError::internal(format_args!("storage: {e}"))
            }
        })*
    };
}

storage_error_into_internal!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    rmp_serde::encode::Error,
    rmp_serde::decode::Error,
);

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn codes_are_distinct_snake_case_and_map_to_error_statuses() {
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len(), "every code is spelled once");
        assert!(
            Code::ALL
                .iter()
                .all(|c| c.status().is_client_error() || c.status().is_server_error())
        );
    }
}
