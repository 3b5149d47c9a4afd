//! sublist: a self-hosted Discord bot that keeps each member's Spotify playlists sorted by a
//! small neural network trained on that member's own choices.
//!
//! The modules. `domain` depends on nothing; `app` ties the rooms together; `tools` (demo,
//! eval, bench) drives `app` from outside, and nothing in the bot depends on it.

/// The use cases that tie the rooms together: link, label, train, sort, announce, run.
pub mod app;
/// The command line.
pub mod cli;
/// The time the program reads: the system's, or a manual clock a test moves.
pub mod clock;
/// The configuration file and environment, validated once into the values the program uses.
pub mod config;
/// Slash commands, label prompts and their `custom_id` codec, events, announcements.
pub mod discord;
/// Members, layers, sublists, the void, labels, tracks and the rules between them.
pub mod domain;
/// The durable, fair job queue, the device workers and the scheduler.
pub mod jobs;
/// Features, the model for the four layer cases, training, calibration, active questions.
pub mod learn;
/// OAuth, tokens, the per-app limiter, Liked Songs sync, playlist upkeep, audio descriptors.
pub mod spotify;
/// SQLite through sqlx: migrations, one file per table family, tokens sealed at rest.
pub mod store;
/// The commands beside the bot: the offline demo, the quality evaluation, the benchmarks.
pub mod tools;
/// The OAuth callback and health endpoints.
pub mod web;
