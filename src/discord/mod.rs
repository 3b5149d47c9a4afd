//! Discord: poise commands, label prompts, reactions and buttons, announcements. The only
//! module that names poise.
//!
//! [`start`] connects the bot; its [`Bot`] handle gives the rest of the program a [`Notifier`]
//! to post prompts and announcements. What the commands need from Spotify, learning and the
//! job queue goes through the [`Backend`] trait; everything else is read from the [`Store`].

pub mod backend;
mod commands;
pub mod custom_id;
mod error;
mod events;
mod notify;
mod prompts;
pub mod render;

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use secrecy::{ExposeSecret, SecretString};

pub use backend::{
    Backend, BackendError, Forgotten, Guess, Imported, JobId, LayerRefresh, LinkStart, LinkState,
    LinkToConfirm, Linked, MemberStatus, PlaylistSummary, PromptRequest, QueuedJob, RefreshSummary,
    TrainJob, TrainResult, TrainTicket, TrainUpdate, Why, WhyBasis, async_trait,
};
pub use error::{UserError, incident_id, log_incident};
pub use notify::{DIGEST_AFTER, Notifier, PostOutcome};

use crate::store::Store;

/// The error type of commands and handlers; see [`error`] for how it reaches the member.
pub type Error = anyhow::Error;
/// The context every command receives.
pub type Context<'a> = poise::Context<'a, Data, Error>;

/// The bot's shared state.
pub struct Data {
    pub store: Store,
    pub backend: Arc<dyn Backend>,
    /// Posts prompts and announcements (shares its DM cache with [`Bot::notifier`]).
    pub notifier: Notifier,
    pub(crate) answers: prompts::AnswerLocks,
}

/// How to reach Discord.
#[derive(Clone, Debug)]
pub struct BotOptions {
    pub token: SecretString,
    /// A base URL that replaces `https://discord.com` for REST calls: a rate-limit-sharing
    /// proxy, or a local server in tests. The built-in rate limiter is off when it is set
    /// (serenity ignores the proxy otherwise; the proxy then owns the limits).
    pub api_base: Option<url::Url>,
    /// Register the commands in this server only (instant), instead of globally.
    pub guild_id: Option<u64>,
    /// Register the commands at start-up. Off in tests against servers that don't take them.
    pub register_commands: bool,
}

impl BotOptions {
    /// The options for the configured bot; commands are registered at start-up.
    pub fn from_config(config: &crate::config::DiscordConfig) -> BotOptions {
        BotOptions {
            token: config.token.clone(),
            api_base: config.api_base.clone(),
            guild_id: config.guild_id,
            register_commands: true,
        }
    }
}

/// The running bot.
pub struct Bot {
    client: tokio::task::JoinHandle<()>,
    shard_manager: Arc<serenity::ShardManager>,
    notifier: Notifier,
}

impl Bot {
    /// Posts prompts and announcements on the bot's behalf.
    pub fn notifier(&self) -> Notifier {
        self.notifier.clone()
    }

    /// Disconnects from the gateway and waits for the client to stop.
    /// A client that never reached the gateway keeps retrying; it is given a few seconds,
    /// then stopped.
    pub async fn shutdown(mut self) {
        self.shard_manager.shutdown_all().await;
        match tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.client).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "the Discord client task ended badly"),
            Ok(Ok(())) => {}
            Err(_) => {
                tracing::warn!("the Discord client did not stop in time; stopping it");
                self.client.abort();
            }
        }
    }
}

/// The gateway intents the bot needs: no privileged one.
pub fn intents() -> serenity::GatewayIntents {
    serenity::GatewayIntents::GUILDS
        | serenity::GatewayIntents::GUILD_MESSAGE_REACTIONS
        | serenity::GatewayIntents::DIRECT_MESSAGE_REACTIONS
}

/// The HTTP client, pointed at `api_base` when one is configured.
pub fn http(options: &BotOptions) -> serenity::Http {
    let mut builder = serenity::HttpBuilder::new(options.token.expose_secret());
    if let Some(base) = &options.api_base {
        builder = builder
            .proxy(base.as_str().trim_end_matches('/'))
            .ratelimiter_disabled(true);
    }
    builder.build()
}

/// Every command the bot offers, in the order `/help` lists them.
pub fn commands() -> Vec<poise::Command<Data, Error>> {
    commands::all()
}

/// The JSON the bot sends to register its commands (`PUT /applications/{id}/commands`).
pub fn command_schema() -> serde_json::Value {
    let cmds = poise::builtins::create_application_commands(&commands());
    let mut schema = serde_json::to_value(cmds).unwrap_or_default();
    // serenity writes this permission bit set as a string; Discord's OpenAPI description
    // types it as an integer, so it is sent as one.
    for c in schema.as_array_mut().into_iter().flatten() {
        let bits = c
            .get("default_member_permissions")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(bits) = bits {
            c["default_member_permissions"] = bits.into();
        }
    }
    schema
}

/// Connects the bot and starts serving commands, reactions and buttons.
pub async fn start(
    options: BotOptions,
    store: Store,
    backend: Arc<dyn Backend>,
) -> anyhow::Result<Bot> {
    let register = options.register_commands;
    let guild = options.guild_id;
    let setup_store = store.clone();
    let dms = Arc::new(prompts::DmChannels::new());
    let setup_dms = dms.clone();
    let framework = poise::Framework::builder()
        .options(poise::FrameworkOptions {
            commands: commands(),
            on_error: |e| Box::pin(error::on_error(e)),
            event_handler: |ctx, event| Box::pin(events::handle(ctx, event)),
            ..Default::default()
        })
        .initialize_owners(false)
        .setup(move |ctx, ready, _framework| {
            Box::pin(async move {
                tracing::info!(user = %ready.user.name, "connected to Discord");
                if register {
                    let schema = command_schema();
                    let registered = match guild {
                        Some(g) => {
                            ctx.http
                                .create_guild_commands(serenity::GuildId::new(g), &schema)
                                .await?
                        }
                        None => ctx.http.create_global_commands(&schema).await?,
                    };
                    tracing::info!(commands = registered.len(), "registered the slash commands");
                }
                tokio::spawn(commands::resume_train_replies(
                    ctx.http.clone(),
                    setup_store.clone(),
                    backend.clone(),
                ));
                Ok(Data {
                    notifier: Notifier::new(ctx.http.clone(), setup_store.clone(), setup_dms),
                    store: setup_store,
                    backend,
                    answers: prompts::AnswerLocks::default(),
                })
            })
        })
        .build();
    let mut client = serenity::ClientBuilder::new_with_http(http(&options), intents())
        .framework(framework)
        .await?;
    let shard_manager = client.shard_manager.clone();
    let notifier = Notifier::new(client.http.clone(), store, dms);
    let task = tokio::spawn(async move {
        if let Err(e) = client.start().await {
            tracing::error!(error = %e, "the Discord client stopped");
        }
    });
    Ok(Bot {
        client: task,
        shard_manager,
        notifier,
    })
}
