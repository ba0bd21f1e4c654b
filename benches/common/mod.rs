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
#[allow(dead_code)] // the ML benchmark runs no server
pub fn run<F: std::future::Future>(f: F) -> F::Output {
    duet::cli::tune_process();
    duet::cli::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A connection to the baseline PostgreSQL (127.0.0.1:5432, database `test`), its driver
/// running on the runtime; an error when there is none (the benchmark then says so).
#[allow(dead_code)] // only the benchmarks with a PostgreSQL baseline use it
pub async fn postgres() -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3",
        tokio_postgres::NoTls,
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

/// The `p` quantile (0–1) of sorted latencies; 0 when there are none.
#[allow(dead_code)] // only the benchmarks that report latency quantiles use it
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}
