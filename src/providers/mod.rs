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
