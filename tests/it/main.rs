//! The integration tests, one binary with one module per area.

mod openapi;
mod spotify;
