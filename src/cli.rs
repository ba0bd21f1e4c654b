//! The `duet` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::config::Config;
use crate::core::auth::Role;
use crate::core::clock::{SharedClock, SystemClock};
use crate::core::metrics::Metrics;

#[derive(Parser)]
#[command(name = "duet", version, about = "The Duet backend server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// A TOML config file (see config/duet.toml); DUET_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides server.data_dir.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Overrides server.listen (host:port).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Administrative tasks on a data directory, with the server stopped.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The coin ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The gallery's index.
    Gallery {
        #[command(subcommand)]
        command: GalleryCommand,
    },
    /// Media storage (<data-dir>/media).
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Check that every media record's files are present with the bytes their names hash to,
    /// and count the files no record names; exits non-zero if any is missing or damaged. Runs
    /// on a stopped server's data directory.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Delete the files no record names, once older than the grace period (default
    /// `media.collect_grace_secs`; 0 is safe only here, with the server stopped).
    Collect {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        grace_secs: Option<u64>,
    },
}

#[derive(Subcommand)]
enum GalleryCommand {
    /// Rebuild the gallery index (<data-dir>/gallery) from the store, from scratch. Runs on a
    /// stopped server's data directory.
    Reindex {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Replay the whole journal and prove the balances, the hash chain and every invariant;
    /// exits non-zero on any mismatch. Runs on a stopped server's data directory (or a copy).
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account with email and password and give it a role (or update an existing
    /// one): how the first admin is made.
    Create {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("duet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi => {
            println!("{}", crate::api::spec_json());
            Ok(())
        }
        Command::Serve {
            config,
            data_dir,
            listen,
        } => {
            let mut cfg = Config::load(config.as_deref())?;
            if let Some(d) = data_dir {
                cfg.server.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.server.listen = l;
            }
            cfg.validate()?;
            init_tracing(&cfg);
            install_crypto_provider();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(cfg))
        }
        Command::Ledger {
            command: LedgerCommand::Verify { data_dir },
        } => verify_ledger(data_dir),
        Command::Gallery {
            command: GalleryCommand::Reindex { data_dir },
        } => reindex_gallery(data_dir),
        Command::Media { command } => media(command),
        Command::Admin {
            command:
                AdminCommand::Create {
                    data_dir,
                    email,
                    password,
                    role,
                },
        } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!("--role: {}", e.detail))?;
            let (rt, store) = offline_store(data_dir)?;
            let user_id = rt
                .block_on(async {
                    tokio::task::spawn_blocking(move || {
                        crate::domains::user::bootstrap_account(&store, &email, &password, role)
                    })
                    .await
                })?
                .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?;
            println!("{user_id}");
            Ok(())
        }
    }
}

/// Opens a data directory's store for an offline command (the server must be stopped: redb
/// allows one process). The runtime runs the store's writer and must outlive the store.
fn offline_store(
    data_dir: PathBuf,
) -> anyhow::Result<(tokio::runtime::Runtime, crate::core::store::Store)> {
    let mut cfg = Config::load(None)?;
    cfg.server.data_dir = data_dir;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let store = rt.block_on(async {
        app::open_store(&cfg, Arc::new(SystemClock), Arc::new(Metrics::new()))
    })?;
    Ok((rt, store))
}

fn media(command: MediaCommand) -> anyhow::Result<()> {
    use crate::domains::media;
    let (MediaCommand::Verify { data_dir } | MediaCommand::Collect { data_dir, .. }) = &command;
    let blobs = media::blobs::Blobs::open(&data_dir.join("media"))
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let (_rt, store) = offline_store(data_dir.clone())?;
    match command {
        MediaCommand::Verify { .. } => {
            let v = media::verify_blocking(&store, &blobs)
                .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            println!(
                "{} records, {} files checked, {} unreferenced",
                v.records, v.files_checked, v.unreferenced
            );
            for (id, sha) in &v.broken {
                println!("BROKEN: media {id} names {sha}, which is missing or damaged");
            }
            anyhow::ensure!(
                v.broken.is_empty(),
                "{} files are missing or damaged",
                v.broken.len()
            );
            Ok(())
        }
        MediaCommand::Collect { grace_secs, .. } => {
            let grace = grace_secs.unwrap_or(Config::load(None)?.media.collect_grace_secs);
            let (files, bytes) =
                media::collect_blocking(&store, &blobs, std::time::Duration::from_secs(grace))
                    .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
            println!("collected {files} files ({bytes} bytes)");
            Ok(())
        }
    }
}

fn reindex_gallery(data_dir: PathBuf) -> anyhow::Result<()> {
    let path = data_dir.join(app::STORE_FILE);
    if !path.exists() {
        anyhow::bail!("{} does not exist", path.display());
    }
    let cfg = Config::load(None)?;
    let (rt, store) = offline_store(data_dir.clone())?;
    let (gallery, _) = crate::domains::gallery::Gallery::open(&data_dir, &cfg.gallery)
        .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
    let gallery = Arc::new(gallery);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "indexing {bar:40} {pos}/{len} accounts ({per_sec}, {eta})",
        )
        .expect("a valid template"),
    );
    let n = rt
        .block_on(crate::domains::gallery::rebuild(
            &store,
            &gallery,
            &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        ))
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?;
    bar.finish_and_clear();
    println!("gallery index rebuilt: {n} accounts");
    Ok(())
}

fn verify_ledger(data_dir: PathBuf) -> anyhow::Result<()> {
    let path = data_dir.join(app::STORE_FILE);
    if !path.exists() {
        anyhow::bail!("{} does not exist", path.display());
    }
    let (_rt, store) = offline_store(data_dir)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "verifying {bar:40} {pos}/{len} entries ({per_sec}, {eta})",
        )
        .expect("a valid template"),
    );
    let report = store
        .read_blocking(|rtx| {
            crate::domains::balance::verify::verify(rtx, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
        })
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?;
    bar.finish_and_clear();
    println!("journal entries:   {}", report.entries);
    println!("accounts:          {}", report.accounts);
    println!("coins in wallets:  {}", report.wallet_coins);
    println!("wallets in debt:   {}", report.wallets_in_debt);
    println!("head hash:         {}", report.head_hash);
    if report.ok() {
        println!("ledger OK");
        Ok(())
    } else {
        for p in &report.problems {
            println!("PROBLEM: {p}");
        }
        anyhow::bail!(
            "the ledger does not verify: {} problem(s)",
            report.problems.len()
        )
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    let app = App::start(cfg, clock).await?;
    wait_for_signal().await;
    tracing::info!("stopping: closing connections and finishing requests");
    app.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing(cfg: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.init();
    }
}

/// Process settings the server runs best with. Transparent huge pages are turned off: with them
/// every fresh 2 MiB of heap is zeroed on first touch, which measured as ~15% of the
/// group-commit writer's time while the store's page cache grows (databases commonly advise
/// the same).
pub fn tune_process() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// rustls needs one process-wide crypto provider; ring keeps the build free of aws-lc.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
