//! The world the simulation runs in: the manual clock, the local Spotify and the local Discord
//! (they outlive restarts, as the real services would), and the system under test (store, app,
//! job runner, device worker, bot) started and stopped on one SQLite file.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use sublist::app::App;
use sublist::clock::Clock;
use sublist::config::{AudioConfig, AudioProvider, PipelineConfig, SpotifyApp, SpotifyConfig};
use sublist::discord::{self, Bot, BotOptions};
use sublist::jobs::{DevicePool, Queue, QueueError, Runner, RunnerSettings, Scheduler};
use sublist::learn::{Compute, TrainConfig};
use sublist::spotify::Spotify;
use sublist::spotify::local::LocalSpotify;
use sublist::store::Store;

use crate::discord_fake::{APP_ID, CHANNEL_ID, FakeDiscord, component, slash, token};

/// The database key of the simulated server.
const KEY: [u8; 32] = [5; 32];
/// How often each linked member is synced.
pub(super) const SYNC_EVERY: Duration = Duration::from_secs(12 * 3600);
/// The Spotify apps and their user caps.
pub(super) const APPS: [(&str, u32); 2] = [("app-a", 3), ("app-b", 5)];
/// How long to wait for an answer from the bot before calling it missing.
const ANSWER_WAIT: Duration = Duration::from_secs(20);
/// How long to wait for the edit a reaction causes (none comes when the bot fails).
const REACTION_WAIT: Duration = Duration::from_secs(5);

/// Midnight UTC on the first simulated day (a Monday).
pub(super) fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0)
        .single()
        .expect("a valid date")
}

/// A simulated time as "day 3 14:05".
pub(super) fn sim_time(t: DateTime<Utc>) -> String {
    let d = t - start_time();
    format!(
        "day {} {:02}:{:02}",
        d.num_days(),
        d.num_hours() % 24,
        d.num_minutes() % 60
    )
}

/// The time as the job table stores it.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A quick training: the simulation trains often, on small libraries.
fn quick_training() -> TrainConfig {
    TrainConfig {
        max_epochs: 12,
        check_every: 4,
        folds: 0,
        max_vocab: 4000,
        ..TrainConfig::default()
    }
}

/// The system under test, as one process of `sublist run` holds it.
pub(super) struct System {
    pub store: Store,
    pub app: App,
    bot: Bot,
    runner: JoinHandle<Result<(), QueueError>>,
    stop: watch::Sender<bool>,
}

/// How the process stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// SIGTERM: running jobs get their grace period, then go back to the queue.
    Clean,
    /// The process dies: every task stops where it is.
    Crash,
}

/// A reply to an interaction: the callback's body and, for deferred ones, the message that
/// completed it.
#[derive(Clone, Debug)]
pub(super) struct Reply {
    pub id: u64,
    pub callback: Value,
    /// The message the member sees: the callback's, or the one completing a deferral.
    pub message: Value,
    pub text: String,
}

pub(super) struct Rig {
    pub clock: Clock,
    pub spotify: LocalSpotify,
    pub discord: FakeDiscord,
    _dir: tempfile::TempDir,
    db: PathBuf,
    pub sys: Option<System>,
    /// A read-only connection for the checks.
    pub reader: SqlitePool,
    next_id: u64,
    sessions: u64,
    pub restarts: u32,
}

impl Rig {
    /// A rig whose database lives in a fresh temporary directory, or in
    /// `$SUBLIST_SIM_DB_DIR/seed-<seed>` when that is set (kept for a look afterwards).
    pub async fn new(seed: u64) -> Rig {
        let clock = Clock::manual(start_time());
        let spotify = LocalSpotify::start_with_clock(clock.clone())
            .await
            .expect("the local Spotify starts");
        for (app, _) in APPS {
            spotify.add_app(app, &format!("secret-{app}"), false);
        }
        let discord = FakeDiscord::start().await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = match std::env::var_os("SUBLIST_SIM_DB_DIR") {
            Some(keep) => {
                let d = PathBuf::from(keep).join(format!("seed-{seed}"));
                let _ = std::fs::remove_dir_all(&d);
                std::fs::create_dir_all(&d).expect("the database directory");
                d.join("sublist.db")
            }
            None => dir.path().join("sublist.db"),
        };
        // The store creates the file and runs the migrations before the reader opens it.
        let store = Store::open_with_clock(&db, &KEY, clock.clone())
            .await
            .expect("the store opens");
        store.close().await;
        let options = SqliteConnectOptions::from_str("sqlite:")
            .expect("sqlite options")
            .filename(&db)
            .read_only(true);
        let reader = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("the reader opens");
        let mut rig = Rig {
            clock,
            spotify,
            discord,
            _dir: dir,
            db,
            sys: None,
            reader,
            next_id: 950_000_000_000_000_001,
            sessions: 0,
            restarts: 0,
        };
        rig.start().await;
        rig
    }

    fn spotify_config(&self) -> SpotifyConfig {
        SpotifyConfig {
            api_base_url: self.spotify.api_base_url(),
            accounts_base_url: self.spotify.accounts_base_url(),
            apps: APPS
                .iter()
                .map(|(id, cap)| SpotifyApp {
                    client_id: (*id).into(),
                    client_secret: SecretString::from(format!("secret-{id}")),
                    redirect_uri: "http://127.0.0.1:9/callback".parse().expect("a URI"),
                    user_cap: *cap,
                })
                .collect(),
            max_retries: 2,
            request_timeout: Duration::from_millis(400),
            full_pass_pages: 2,
        }
    }

    /// Starts the system on the database as it stands (recovering what a dead process left).
    pub async fn start(&mut self) {
        let store = Store::open_with_clock(&self.db, &KEY, self.clock.clone())
            .await
            .expect("the store opens");
        let audio = AudioConfig {
            provider: AudioProvider::Reccobeats,
            reccobeats_base_url: self.spotify.reccobeats_base_url(),
        };
        let spotify = Spotify::new(store.clone(), self.spotify_config(), audio);
        let queue = Queue::new(store.clone(), 3);
        let app = App::new(
            store.clone(),
            spotify,
            queue.clone(),
            DevicePool::new(vec![Compute::cpu()]).expect("a device worker"),
            PipelineConfig {
                sync_interval: SYNC_EVERY,
                retrain_after_labels: 15,
                refresh_cooldown: Duration::from_secs(60),
                // The production default: hand edits are read at most this late.
                playlist_check_interval: Duration::from_secs(6 * 3600),
            },
        );
        app.set_training(quick_training());
        let bot = discord::start(
            BotOptions {
                token: SecretString::from("fake-token"),
                api_base: Some(url::Url::parse(&self.discord.rest_url).expect("a URL")),
                guild_id: None,
                register_commands: false,
            },
            store.clone(),
            Arc::new(app.clone()),
        )
        .await
        .expect("the bot starts");
        self.sessions += 1;
        self.discord.wait_sessions(self.sessions).await;
        app.set_notifier(bot.notifier());
        let (stop, shutdown) = watch::channel(false);
        let settings = RunnerSettings {
            device_slots: 1,
            network_concurrency: 4,
            train_timeout: Duration::from_secs(120),
            job_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_millis(500),
            retry_backoff: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
        };
        let runner =
            tokio::spawn(Runner::new(queue, Arc::new(app.clone()), settings).run(shutdown));
        self.sys = Some(System {
            store,
            app,
            bot,
            runner,
            stop,
        });
    }

    /// Stops the system: cleanly, or as a process that dies.
    pub async fn stop(&mut self, how: Stop) {
        let Some(sys) = self.sys.take() else {
            return;
        };
        match how {
            Stop::Clean => {
                sys.stop.send_replace(true);
                let _ = sys.runner.await;
            }
            Stop::Crash => {
                // Aborting the runner drops its job tasks wherever they stand.
                sys.runner.abort();
                let _ = sys.runner.await;
            }
        }
        sys.bot.shutdown().await;
        let store = sys.store;
        // Connections still held by tasks of the dead process close when those tasks end.
        tokio::spawn(async move { store.close().await });
        drop(sys.app);
        self.restarts += 1;
    }

    pub async fn restart(&mut self, how: Stop) {
        self.stop(how).await;
        self.start().await;
    }

    pub fn sys(&self) -> &System {
        self.sys.as_ref().expect("the system runs")
    }

    pub fn store(&self) -> &Store {
        &self.sys().store
    }

    /// Queues the periodic syncs that are due, as the scheduler's tick does.
    pub async fn tick(&self) {
        let queue = self.sys().app.queue().clone();
        if let Err(e) = Scheduler::new(queue, SYNC_EVERY).tick().await {
            panic!("the scheduler could not queue syncs: {e}");
        }
    }

    /// Jobs running, or queued and ready now.
    pub async fn busy(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'running' \
             OR (state = 'queued' AND run_after <= ?)",
        )
        .bind(ts(self.clock.now()))
        .fetch_one(&self.reader)
        .await
        .unwrap_or(1)
    }

    /// When the next queued job becomes ready, if one waits.
    pub async fn next_ready(&self) -> Option<DateTime<Utc>> {
        let next: Option<String> =
            sqlx::query_scalar("SELECT MIN(run_after) FROM jobs WHERE state = 'queued'")
                .fetch_one(&self.reader)
                .await
                .ok()
                .flatten();
        next.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    /// Whether a job of `kind` runs now.
    pub async fn running(&self, kind: &str) -> bool {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND kind = ?",
        )
        .bind(kind)
        .fetch_one(&self.reader)
        .await
        .unwrap_or(0)
            > 0
    }

    /// Moves the clock forward to `t` (never back).
    pub fn advance_to(&self, t: DateTime<Utc>) {
        let now = self.clock.now();
        if t > now {
            self.clock
                .advance((t - now).to_std().unwrap_or(Duration::ZERO));
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    async fn wait_callback(&self, id: u64) -> Option<Value> {
        let prefix = format!("/interactions/{id}/");
        self.discord
            .try_wait_for(ANSWER_WAIT, |r| {
                r.method == "POST" && r.path.starts_with(&prefix) && r.path.ends_with("/callback")
            })
            .await
            .map(|r| r.body)
    }

    /// The first message completing deferred interaction `id` (a follow-up or an edit of the
    /// original response).
    pub async fn completion(&self, id: u64, wait: Duration) -> Option<Value> {
        let prefix = format!("/webhooks/{APP_ID}/{}", token(id));
        self.discord
            .try_wait_for(wait, |r| r.path.starts_with(&prefix))
            .await
            .map(|r| r.body)
    }

    /// The latest message editing interaction `id`'s response, if any.
    pub fn last_edit(&self, id: u64) -> Option<Value> {
        let prefix = format!("/webhooks/{APP_ID}/{}", token(id));
        self.discord
            .requests()
            .into_iter()
            .rev()
            .find(|r| r.path.starts_with(&prefix))
            .map(|r| r.body)
    }

    /// Dispatches an interaction and waits for its answer (and, when deferred, for the message
    /// that completes it).
    async fn interact(&mut self, id: u64, payload: Value) -> Result<Reply, String> {
        self.discord.dispatch("INTERACTION_CREATE", payload).await;
        let callback = self
            .wait_callback(id)
            .await
            .ok_or_else(|| format!("interaction {id} was never answered"))?;
        // 5 and 6 defer: a follow-up or an edit of the original completes them.
        let message = if callback["type"] == 5 || callback["type"] == 6 {
            self.completion(id, ANSWER_WAIT)
                .await
                .ok_or_else(|| format!("deferred interaction {id} was never completed"))?
        } else {
            callback["data"].clone()
        };
        let text = message["content"].as_str().unwrap_or_default().to_string();
        Ok(Reply {
            id,
            callback,
            message,
            text,
        })
    }

    /// A slash command in the server's channel.
    pub async fn command(
        &mut self,
        user: u64,
        name: &str,
        options: Value,
    ) -> Result<Reply, String> {
        let id = self.next_id();
        self.interact(id, slash(id, user, name, options)).await
    }

    /// A slash command with extra fields (permissions, resolved channels).
    pub async fn command_with(
        &mut self,
        user: u64,
        name: &str,
        options: Value,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Reply, String> {
        let id = self.next_id();
        let mut payload = slash(id, user, name, options);
        edit(&mut payload);
        self.interact(id, payload).await
    }

    /// A button press or menu choice on a message.
    pub async fn press(
        &mut self,
        user: u64,
        channel: u64,
        message: u64,
        custom_id: &str,
        values: Option<Vec<&str>>,
    ) -> Result<Reply, String> {
        let id = self.next_id();
        let payload = component(id, user, channel, message, custom_id, values);
        self.interact(id, payload).await
    }

    /// Submits the `/link` form with the address the browser ended on.
    pub async fn submit_link_form(&mut self, user: u64, url: &str) -> Result<Reply, String> {
        let id = self.next_id();
        let mut v = slash(id, user, "x", json!([]));
        v["type"] = json!(5);
        v["data"] = json!({"custom_id": "v1:link:modal", "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "url", "value": url}]}]});
        self.interact(id, v).await
    }

    /// A reaction added or removed, and the edit of the prompt it causes.
    pub async fn react(
        &mut self,
        user: u64,
        channel: u64,
        message: u64,
        emoji: &str,
        added: bool,
    ) -> Result<(), String> {
        let path = format!("/channels/{channel}/messages/{message}");
        let edits = || {
            self.discord
                .count(|r| r.method == "PATCH" && r.path == path)
        };
        let before = edits();
        let t = if added {
            "MESSAGE_REACTION_ADD"
        } else {
            "MESSAGE_REACTION_REMOVE"
        };
        self.discord
            .dispatch(
                t,
                crate::discord_fake::reaction(user, channel, message, emoji),
            )
            .await;
        let deadline = tokio::time::Instant::now() + REACTION_WAIT;
        while edits() <= before {
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the reaction {emoji} on message {message} changed nothing"
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// The server's channel id in interactions.
    pub fn channel(&self) -> u64 {
        CHANNEL_ID
    }
}
