//! Builds the running server: store, services, background workers and the HTTP listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::api::ws::{CloseReason, Hub};
use crate::config::Config;
use crate::core::auth::TokenIssuer;
use crate::core::clock::SharedClock;
use crate::core::events::{Consumer, run_consumer};
use crate::core::live::LiveConnections;
use crate::core::metrics::Metrics;
use crate::core::store::Store;
use crate::domains;
use crate::domains::user::external::IdTokenVerifier;
use crate::domains::user::presence::{self, Presence};

/// The store file inside the data directory.
pub const STORE_FILE: &str = "duet.redb";
/// How long shutdown waits for the last user of the store to let go.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How often due account deletions are looked for.
const ERASURES_CHECK_EVERY: Duration = Duration::from_secs(60);
/// How often presence grace periods are checked.
const PRESENCE_SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Everything a request handler or worker needs, shared.
pub struct Ctx {
    pub config: Config,
    /// The gallery's index and feed caches (shutdown closes its writer, freeing the lock).
    pub gallery: Arc<domains::gallery::Gallery>,
    /// Cohorts: the lock their membership writers share.
    pub panel: domains::panel::Panel,
    pub store: Store,
    pub tokens: TokenIssuer,
    pub external: Option<IdTokenVerifier>,
    /// Sign in with Apple and with Google, when configured.
    pub apple_id: Option<IdTokenVerifier>,
    pub google_id: Option<IdTokenVerifier>,
    /// Facebook Login: the Graph API, and Limited Login's token verifier when configured.
    pub facebook: Option<crate::providers::facebook::FacebookGraph>,
    pub facebook_limited: Option<IdTokenVerifier>,
    /// One-time codes by SMS for phone sign-in, when configured.
    pub sms: Option<crate::providers::sms::Twilio>,
    /// Emails about the account (verification and reset links).
    pub auth_mail: domains::user::email::Mailer,
    pub apple: Option<crate::providers::apple::AppleVerifier>,
    pub google: Option<crate::providers::google::GooglePlay>,
    pub pubsub: Option<crate::providers::google::PubSubVerifier>,
    /// The Play package notifications must name.
    pub google_package: Option<String>,
    pub metrics: Arc<Metrics>,
    pub presence: Arc<Presence>,
    pub sign_in: domains::user::SignInGuard,
    /// The per-caller request limits of the write routes (`rate_limits`).
    pub limits: crate::core::rate_limit::RateLimiter,
    /// Media storage: files, signed URLs, the classifier.
    pub media: Arc<domains::media::MediaStore>,
    /// Which video provider carries calls, and its failover.
    pub call_media: domains::video::media::Media,
    /// Push and email providers and the delivery rules.
    pub delivery: Arc<domains::notification::delivery::Delivery>,
    /// Profile views, written in batches.
    pub views: domains::interaction::ProfileViews,
    /// The WebSocket hub: the API layer's alone (domains ask `live`).
    pub hub: Arc<Hub>,
    /// Who has a live connection now, for domains.
    pub live: Arc<dyn LiveConnections>,
    /// The models this app runs (nudity scores are installed as the media classifier).
    pub ml: crate::ml::Ml,
    shutdown: watch::Sender<bool>,
}

impl Ctx {
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Opens the store of a data directory (creating it), without starting a server: used by the
/// server and by offline CLI commands alike.
pub fn open_store(
    config: &Config,
    clock: SharedClock,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Store> {
    let dir = &config.server.data_dir;
    let dir_existed = dir.exists();
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    restrict(dir, DATA_DIR_MODE, dir_existed)?;
    let path = dir.join(STORE_FILE);
    let file_existed = path.exists();
    let store = Store::open(&path, domains::TABLES, clock, metrics)
        .with_context(|| format!("opening the store {}", path.display()))?;
    restrict(&path, DATA_FILE_MODE, file_existed)?;
    Ok(store)
}

/// The data directory is the owner's alone: every account, session and coin is in it.
pub const DATA_DIR_MODE: u32 = 0o700;
/// The store file and the signing key: readable and writable by the owner only.
pub const DATA_FILE_MODE: u32 = 0o600;

/// Sets `path` to `mode` whatever the umask made of it; warns when one that `existed` was
/// looser (someone else on the machine could have read it until now).
fn restrict(path: &std::path::Path, mode: u32, existed: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let was = meta.permissions().mode() & 0o777;
    if was & !mode != 0 {
        if existed {
            tracing::warn!(
                path = %path.display(),
                was = format!("{was:o}"),
                now = format!("{mode:o}"),
                "this was open to other local users; its permissions are now restricted"
            );
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    Ok(())
}

/// A running server.
pub struct App {
    pub ctx: Arc<Ctx>,
    pub addr: SocketAddr,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
    /// The names of the running event-log consumers.
    consumers: Vec<&'static str>,
    stop_listening: Option<tokio::sync::oneshot::Sender<()>>,
}

impl App {
    /// Opens the data directory, starts the workers and listens on `config.server.listen`
    /// (port 0 picks a free port; see [`App::addr`]).
    pub async fn start(config: Config, clock: SharedClock) -> anyhow::Result<App> {
        config.validate()?;
        let metrics = Arc::new(Metrics::new());
        let store = open_store(&config, clock.clone(), metrics.clone())?;
        let reset = presence::reset_after_restart(&store).await?;
        if reset > 0 {
            tracing::info!(
                users = reset,
                "set offline the users who were online before the restart"
            );
        }
        let tokens = TokenIssuer::load_or_create(
            &config.signing_key_path(),
            &config.auth.issuer,
            config.auth.access_token_ttl_secs,
        )?;
        let apple_id = match config.auth.apple.enabled {
            true => Some(IdTokenVerifier::apple(&config.auth.apple, clock.now_ms()).await?),
            false => None,
        };
        let google_id = match config.auth.google.enabled {
            true => Some(IdTokenVerifier::google(&config.auth.google, clock.now_ms()).await?),
            false => None,
        };
        let fb = &config.auth.facebook;
        let facebook = fb
            .enabled
            .then(|| crate::providers::facebook::FacebookGraph::new(fb));
        let facebook_limited =
            match fb.enabled && !(fb.jwks_file.is_empty() && fb.jwks_url.is_empty()) {
                true => Some(IdTokenVerifier::facebook_limited(fb, clock.now_ms()).await?),
                false => None,
            };
        let sms = config
            .auth
            .phone
            .enabled
            .then(|| crate::providers::sms::Twilio::new(&config.auth.phone));
        let (auth_mail, mailer) = domains::user::email::Mailer::start(&config);
        let external = if config.auth.external.enabled {
            Some(IdTokenVerifier::new(&config.auth.external, clock.now_ms()).await?)
        } else {
            None
        };
        let apple = if config.payments.apple.enabled {
            Some(crate::providers::apple::AppleVerifier::new(
                &config.payments.apple,
            )?)
        } else {
            None
        };
        let (google, pubsub, google_package) = if config.payments.google.enabled {
            let g = &config.payments.google;
            (
                Some(crate::providers::google::GooglePlay::new(g)?),
                Some(crate::providers::google::PubSubVerifier::new(g, clock.now_ms()).await?),
                Some(g.package_name.clone()),
            )
        } else {
            (None, None, None)
        };
        let presence = Presence::start(
            store.clone(),
            config.presence.offline_grace_secs,
            metrics.clone(),
        );
        let (shutdown, _) = watch::channel(false);
        let listen = config.listen_addr()?;
        let call_media = domains::video::media::Media::new(&config.video);
        let media = Arc::new(domains::media::MediaStore::open(
            &config.server.data_dir,
            &config.media,
        )?);
        let ml = crate::ml::start(&config.ml);
        tracing::info!(ml = %ml.status, "machine learning");
        if let Some(nsfw) = &ml.nsfw {
            media.set_classifier(Some(nsfw.clone()));
        }
        let views = domains::interaction::ProfileViews::start(store.clone());
        let (gallery, gallery_is_new) =
            domains::gallery::Gallery::open(&config.server.data_dir, &config.gallery)?;
        let delivery = Arc::new(domains::notification::delivery::Delivery::from_config(
            &config.notifications,
        )?);
        let hub = Arc::new(Hub::default());
        let limits = crate::core::rate_limit::RateLimiter::new(config.rate_limits.keys_max);
        let ctx = Arc::new(Ctx {
            config,
            store,
            tokens,
            external,
            apple_id,
            google_id,
            facebook,
            facebook_limited,
            sms,
            auth_mail,
            apple,
            google,
            pubsub,
            google_package,
            metrics,
            presence,
            limits,
            sign_in: domains::user::SignInGuard::new(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            ),
            call_media,
            media,
            gallery: Arc::new(gallery),
            panel: Default::default(),
            views,
            delivery,
            hub: hub.clone(),
            live: hub,
            ml,
            shutdown,
        });

        let ended = domains::video::recover(&ctx).await?;
        if ended > 0 {
            tracing::info!(
                calls = ended,
                "ended calls that had not connected before the restart"
            );
        }
        let interrupted = domains::notification::delivery::recover(&ctx).await?;
        if interrupted > 0 {
            tracing::warn!(
                sends = interrupted,
                "dead-lettered sends that were with a provider when the server stopped"
            );
        }
        let indexed = ctx
            .store
            .write(domains::payment::index_purchases_by_user)
            .await?;
        if indexed > 0 {
            tracing::info!(purchases = indexed, "indexed store purchases by user");
        }
        let indexed = ctx
            .store
            .write(domains::user::identities::index_identities_by_user)
            .await?;
        if indexed > 0 {
            tracing::info!(
                identities = indexed,
                "indexed sign-in identities by account"
            );
        }
        if gallery_is_new {
            let n = domains::gallery::rebuild(&ctx.store, &ctx.gallery, &|_, _| {}).await?;
            tracing::info!(accounts = n, "built the gallery index from the store");
        }
        let seeded = domains::billing::seed_defaults(&ctx).await?;
        if seeded > 0 {
            tracing::info!(tariffs = seeded, "installed the default call tariffs");
        }
        let mut workers = vec![
            mailer,
            tokio::spawn(api::ws::run_dispatcher(ctx.clone(), ctx.shutdown_signal())),
            tokio::spawn(sweep_presence(ctx.clone())),
            tokio::spawn(release_expired_holds(ctx.clone())),
            tokio::spawn(run_call_timers(ctx.clone())),
            tokio::spawn(end_lost_calls(ctx.clone())),
            tokio::spawn(run_deliveries(ctx.clone())),
            tokio::spawn(run_digest(ctx.clone())),
            tokio::spawn(run_erasures(ctx.clone())),
            tokio::spawn(run_gallery_signals(ctx.clone())),
            tokio::spawn(recompute_cohorts(ctx.clone())),
            tokio::spawn(collect_media(ctx.clone())),
            tokio::spawn(delete_kyc_documents(ctx.clone())),
        ];
        // The block consumers came after the blocks they carry out (which used to be applied in
        // the block's own request): on a data directory from before, they start at the head.
        // So did the moderation rules (older blocks were judged by the rules of their time).
        for name in [
            domains::video::BLOCKED_CALLS,
            domains::favorites::BLOCKED_FAVORITES,
            domains::mission_control::moderation::CONSUMER,
            // Media came later still: there is nothing before it to moderate.
            domains::media::moderation::CONSUMER,
        ] {
            crate::core::events::start_new_consumer_at_head(&ctx.store, name).await?;
        }
        // The durable event-log consumers: each domain's reactions to other domains' events.
        let mut consumers = Vec::new();
        let store = &ctx.store;
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::chat::records::ChatRecords {
                store: store.clone(),
                config: ctx.config.chat.clone(),
            }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::notification::notifier::Notifier { ctx: ctx.clone() }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::video::BlockedCalls {
                store: store.clone(),
            }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::favorites::BlockedFavorites {
                store: store.clone(),
            }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::gallery::GalleryFeeder { ctx: ctx.clone() }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::panel::PanelFeeder { ctx: ctx.clone() }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::interaction::Interactions {
                store: store.clone(),
            }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::portal::PortalDays {
                store: store.clone(),
            }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::mission_control::moderation::ModerationRules {
                store: store.clone(),
                config: ctx.config.moderation.clone(),
                waiting_for: Default::default(),
            }),
        );
        spawn_consumer(
            &ctx,
            &mut workers,
            &mut consumers,
            Arc::new(domains::media::moderation::Moderation {
                store: store.clone(),
                media: ctx.media.clone(),
            }),
        );

        let limits = api::server::Limits::new(
            &ctx.config.server.connections,
            !ctx.config.server.client_ip_header.is_empty(),
            api::server::raise_descriptor_limit(),
        );
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener
            .local_addr()
            .context("the listener has no address")?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let grace = Duration::from_secs(ctx.config.server.shutdown_grace_secs);
        let routes = api::routes(ctx.clone());
        let server = tokio::spawn(api::server::serve(
            listener,
            routes,
            limits,
            ctx.metrics.clone(),
            async move {
                let _ = stop_rx.await;
            },
            grace,
        ));
        tracing::info!(%addr, "duet is listening");
        Ok(App {
            ctx,
            addr,
            server,
            workers,
            consumers,
            stop_listening: Some(stop_tx),
        })
    }

    /// Runs a durable event-log consumer until the app stops.
    pub fn spawn_consumer<C: Consumer>(&mut self, consumer: Arc<C>) {
        spawn_consumer(&self.ctx, &mut self.workers, &mut self.consumers, consumer);
    }

    /// Waits until every consumer has handled every event committed before this call (tests
    /// and tools that must see the consumers' effects; fails after `wait`).
    pub async fn consumers_caught_up(&self, wait: Duration) -> anyhow::Result<()> {
        let head = self.ctx.store.head_seq();
        let done =
            crate::core::events::wait_applied(&self.ctx.store, &self.consumers, head, wait).await?;
        anyhow::ensure!(done, "the consumers did not reach seq {head}");
        Ok(())
    }

    /// Graceful stop: refuse new work, close WebSockets with going-away, let in-flight requests
    /// finish (up to the grace period), stop the workers. Every acknowledged write is already
    /// durable, so nothing else needs flushing.
    pub async fn shutdown(self) {
        let App {
            ctx,
            server,
            workers,
            stop_listening,
            ..
        } = self;
        ctx.shutdown.send_replace(true);
        ctx.hub.close_all(CloseReason::ShuttingDown);
        if let Some(stop) = stop_listening {
            let _ = stop.send(());
        }
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "the server task failed"),
        }
        for w in workers {
            w.abort();
            let _ = w.await;
        }
        // The gallery's writer holds its directory's lock; a commit still running off the
        // workers finishes first.
        let gallery = ctx.gallery.clone();
        let _ = tokio::task::spawn_blocking(move || gallery.index.close()).await;
        // WebSocket sessions and the presence writer let go of the store as they wind down;
        // wait for the file to close so the data directory can be opened again at once.
        let closed = ctx.store.closed();
        drop(ctx);
        if tokio::time::timeout(STORE_CLOSE_WAIT, closed)
            .await
            .is_err()
        {
            tracing::warn!("the store was still in use when shutdown gave up waiting");
        }
    }
}

/// Starts a durable event-log consumer as a worker of the app.
fn spawn_consumer<C: Consumer>(
    ctx: &Arc<Ctx>,
    workers: &mut Vec<JoinHandle<()>>,
    names: &mut Vec<&'static str>,
    consumer: Arc<C>,
) {
    names.push(consumer.name());
    workers.push(tokio::spawn(run_consumer(
        ctx.store.clone(),
        consumer,
        ctx.shutdown_signal(),
    )));
}

/// The longest the call engine sleeps, and how often calls are checked for lost connections.
const CALL_TIMERS_EVERY: Duration = Duration::from_millis(1000);

/// Runs durable deadlines as they fall due: sleeps until the earliest (`next_due`), waking
/// early when a commit may have added an earlier one and at least every `CALL_TIMERS_EVERY`,
/// and calls `run_due` once one has passed on the injected clock.
async fn run_deadlines<N, NF, R, RF>(ctx: Arc<Ctx>, what: &'static str, next_due: N, run_due: R)
where
    N: Fn(Arc<Ctx>) -> NF,
    NF: std::future::Future<Output = crate::core::error::AppResult<Option<i64>>>,
    R: Fn(Arc<Ctx>) -> RF,
    RF: std::future::Future<Output = crate::core::error::AppResult<usize>>,
{
    let mut stop = ctx.shutdown_signal();
    let mut head = ctx.store.bus().head();
    loop {
        let now = ctx.store.now_ms();
        let next = next_due(ctx.clone()).await.unwrap_or(None);
        if next.is_some_and(|due| due <= now) {
            if let Err(e) = run_due(ctx.clone()).await {
                tracing::warn!(error = %e, "running {what} failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        }
        let wait = next.map_or(CALL_TIMERS_EVERY, |due| {
            Duration::from_millis((due - now) as u64).min(CALL_TIMERS_EVERY)
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = head.changed() => {}
            _ = stop.changed() => return,
        }
    }
}

async fn run_call_timers(ctx: Arc<Ctx>) {
    run_deadlines(
        ctx,
        "call timers",
        |c| async move { domains::video::next_due(&c).await },
        |c| async move { domains::video::run_due(&c).await },
    )
    .await
}

/// Push fallbacks and outbox sends.
async fn run_deliveries(ctx: Arc<Ctx>) {
    run_deadlines(
        ctx,
        "notification deliveries",
        |c| async move { domains::notification::delivery::next_due(&c).await },
        |c| async move { domains::notification::delivery::tick(&c).await },
    )
    .await
}

/// How often the digest checks whether its period has passed.
const DIGEST_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Runs `job` on each tick of `tick` until the app stops: the shape of every periodic worker.
async fn on_each_tick<F, Fut>(ctx: Arc<Ctx>, mut tick: tokio::time::Interval, job: F)
where
    F: Fn(Arc<Ctx>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut stop = ctx.shutdown_signal();
    loop {
        tokio::select! {
            _ = tick.tick() => job(ctx.clone()).await,
            _ = stop.changed() => return,
        }
    }
}

/// Ticks every `every`, the first after one period; a late tick delays the next ones rather
/// than bursting to catch up.
fn after_each(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Ticks every `every`, the first at once; a late tick delays the next ones.
fn from_now_each(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn run_digest(ctx: Arc<Ctx>) {
    on_each_tick(
        ctx,
        tokio::time::interval(DIGEST_CHECK_EVERY),
        |ctx| async move {
            if let Err(e) = domains::notification::digest::run_if_due(&ctx).await {
                tracing::warn!(error = %e, "the missed-call digest failed");
            }
        },
    )
    .await
}

/// Sends the gallery's live signal every `gallery.signal_interval_ms`, when something changed.
async fn run_gallery_signals(ctx: Arc<Ctx>) {
    let every = Duration::from_millis(ctx.config.gallery.signal_interval_ms);
    on_each_tick(ctx, after_each(every), |ctx| async move {
        if let Err(e) = domains::gallery::send_signal(&ctx) {
            tracing::warn!(error = %e, "sending the gallery signal failed");
        }
    })
    .await
}

/// Judges every account against every rule cohort, every `panel.recompute_interval_secs`.
async fn recompute_cohorts(ctx: Arc<Ctx>) {
    let every = Duration::from_secs(ctx.config.panel.recompute_interval_secs);
    on_each_tick(ctx, after_each(every), |ctx| async move {
        match domains::panel::recompute_all(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(changed = n, "recomputed cohort memberships"),
            Err(e) => tracing::warn!(error = %e, "recomputing cohorts failed"),
        }
    })
    .await
}

/// Deletes the media files no record names any more (deleted items, uploads cut off by a
/// crash), once past their grace period.
async fn collect_media(ctx: Arc<Ctx>) {
    let every = Duration::from_secs(ctx.config.media.collect_interval_secs);
    on_each_tick(ctx, from_now_each(every), |ctx| async move {
        match domains::media::collect(&ctx).await {
            Ok((0, _)) => {}
            Ok((files, bytes)) => {
                tracing::info!(files, bytes, "collected unreferenced media files")
            }
            Err(e) => tracing::warn!(error = %e, "collecting media files failed"),
        }
    })
    .await
}

/// How often the documents of decided KYC cases are checked against their retention.
const KYC_RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// Deletes the documents of decided KYC cases once their retention has passed.
async fn delete_kyc_documents(ctx: Arc<Ctx>) {
    on_each_tick(ctx, from_now_each(KYC_RETENTION_EVERY), |ctx| async move {
        use domains::mission_control::kyc;
        // A pass per commit, until a pass finds less than a full batch.
        loop {
            match kyc::delete_expired_documents(&ctx).await {
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(cases = n, "deleted the documents of decided KYC cases");
                    if n < kyc::RETENTION_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deleting expired KYC documents failed");
                    break;
                }
            }
        }
    })
    .await
}

/// Erases the accounts whose deletion is due.
async fn run_erasures(ctx: Arc<Ctx>) {
    on_each_tick(ctx, from_now_each(ERASURES_CHECK_EVERY), |ctx| async move {
        match domains::privacy::run_due(&ctx).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(accounts = n, "erased accounts whose deletion was due"),
            Err(e) => tracing::warn!(error = %e, "erasing due accounts failed"),
        }
    })
    .await
}

/// Ends calls whose participants lost their connections, on its own task so that the check
/// never delays a billing deadline.
async fn end_lost_calls(ctx: Arc<Ctx>) {
    on_each_tick(ctx, from_now_each(CALL_TIMERS_EVERY), |ctx| async move {
        if let Err(e) = domains::video::end_lost_calls(&ctx).await {
            tracing::warn!(error = %e, "checking calls for lost connections failed");
        }
    })
    .await
}

/// How often expired ledger holds are released.
const HOLD_SWEEP_EVERY: Duration = Duration::from_secs(5);

async fn release_expired_holds(ctx: Arc<Ctx>) {
    on_each_tick(
        ctx,
        tokio::time::interval(HOLD_SWEEP_EVERY),
        |ctx| async move {
            if let Err(e) = domains::balance::release_expired(&ctx).await {
                tracing::warn!(error = %e, "releasing expired holds failed");
            }
        },
    )
    .await
}

async fn sweep_presence(ctx: Arc<Ctx>) {
    on_each_tick(
        ctx,
        tokio::time::interval(PRESENCE_SWEEP_EVERY),
        |ctx| async move { ctx.presence.sweep().await },
    )
    .await
}
