//! The integration tests, one binary with one module per area.

mod discord;
mod discord_commands;
mod discord_fake;
mod openapi;
