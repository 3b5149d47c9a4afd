//! The use cases that tie the rooms together.

pub mod loadbench;
