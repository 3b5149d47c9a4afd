//! The use cases that tie the rooms together.

pub mod loadbench;
pub mod eval;
