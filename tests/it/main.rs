//! The integration tests: one binary, one module per area.

mod cli;
mod discord;
mod discord_commands;
mod discord_fake;
mod jobs;
mod learn;
mod openapi;
mod pipeline;
mod sim;
mod spotify;
