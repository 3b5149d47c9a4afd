//! `sublist run`: the store, the device workers, Spotify, the web callback, the job runner and
//! scheduler, and the Discord bot, started in that order and stopped cleanly on SIGTERM or
//! Ctrl-C (running jobs finish within the grace period or go back to the queue).

use std::sync::Arc;

use anyhow::Context as _;
use secrecy::ExposeSecret;
use tokio::sync::mpsc;

use super::App;
use crate::config::Config;
use crate::discord::BotOptions;
use crate::jobs::{DevicePool, JobService, Queue, RunnerSettings};
use crate::learn::Compute;
use crate::spotify::Spotify;
use crate::store::Store;

/// Runs the bot until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Store::open_at(
        &config.store.database,
        config.store.encryption_key.expose_secret(),
    )
    .await
    .with_context(|| format!("opening the database {}", config.store.database.display()))?;

    let (compute, why) = Compute::select(config.learn.device, config.learn.gpu_min_labels)?;
    tracing::info!("{why}");
    let workers = config.jobs.device_workers.unwrap_or(1);
    let devices = DevicePool::new(vec![compute; workers])?;

    let spotify = Spotify::new(store.clone(), config.spotify.clone(), config.audio.clone());
    let queue = Queue::new(store.clone(), config.jobs.max_attempts);
    let app = App::new(
        store.clone(),
        spotify.clone(),
        queue.clone(),
        devices,
        config.pipeline.clone(),
    );

    // The OAuth callback completes links and tells the member's waiting /link reply.
    let (linked_tx, mut linked_rx) = mpsc::unbounded_channel();
    let router = crate::web::router(spotify.clone(), &config.web.callback_path, Some(linked_tx));
    let listener = tokio::net::TcpListener::bind(config.web.listen)
        .await
        .with_context(|| format!("listening on {} (web.listen)", config.web.listen))?;
    tracing::info!(address = %config.web.listen, path = %config.web.callback_path, "OAuth callback listening");
    let web = tokio::spawn(crate::web::serve(listener, router));
    let linker = app.clone();
    tokio::spawn(async move {
        while let Some((member, account)) = linked_rx.recv().await {
            linker.link_completed(member, account).await;
        }
    });

    let bot = crate::discord::start(
        BotOptions::from_config(&config.discord),
        store.clone(),
        Arc::new(app.clone()),
    )
    .await
    .context("connecting to Discord")?;
    app.set_notifier(bot.notifier());

    let jobs = JobService::start(
        queue,
        Arc::new(app.clone()),
        RunnerSettings::from_config(&config.jobs, workers),
        config.pipeline.sync_interval,
    );
    tracing::info!("sublist is running");

    shutdown_signal().await;
    tracing::info!("stopping: finishing or re-queueing running jobs");
    jobs.shutdown().await?;
    bot.shutdown().await;
    web.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
