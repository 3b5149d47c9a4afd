//! The integration tests: one binary, one module per area.

mod cli;
mod jobs;
mod openapi;
mod spotify;
mod discord;
mod discord_commands;
mod discord_fake;
