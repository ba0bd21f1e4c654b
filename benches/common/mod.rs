//! What every benchmark shares: the `duet` binary's allocator and process tuning, so figures
//! match production, and the runtime.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether the full sizes run (`cargo bench` passes `--bench`); under `cargo test` the smoke
/// sizes prove the benchmark still works without spending minutes on it.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Tunes the process like `duet serve` and runs `f` on a multi-threaded runtime.
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    duet::cli::tune_process();
    duet::cli::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
