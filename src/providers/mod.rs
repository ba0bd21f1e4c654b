//! Adapters to outside services. Each speaks the provider's real wire format against a
//! configurable base URL (tests point them at local fake servers that record what they got),
//! or verifies what a provider issued with keys and certificates from configuration.

pub mod apple;
pub mod facebook;
pub mod google;
pub mod google_oauth;
pub mod jwks;
pub mod notify;
pub mod sms;
pub mod video;

/// One HTTP client for all adapters: bounded timeouts, rustls.
pub fn http_client() -> reqwest::Client {
    crate::cli::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("a TLS backend is compiled in")
}

/// Sends `request` and reads the whole answer, refusing one over `bytes_max`: the status and
/// the body, or why there is none (for the adapter's `provider_failed` message).
pub async fn answer(
    request: reqwest::RequestBuilder,
    bytes_max: usize,
) -> Result<(reqwest::StatusCode, bytes::Bytes), String> {
    let resp = request.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    if body.len() > bytes_max {
        return Err("the answer is too large".into());
    }
    Ok((status, body))
}
