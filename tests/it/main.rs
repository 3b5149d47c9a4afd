//! The integration tests: one binary, one module per area.

mod account;
mod cli;
mod discord;
mod discord_commands;
mod discord_fake;
#[cfg(feature = "gpu")]
mod gpu;
mod jobs;
mod learn;
mod openapi;
mod pipeline;
mod sim;
mod sorting;
mod spotify;
