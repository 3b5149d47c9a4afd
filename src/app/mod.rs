//! The use cases that tie the rooms together.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod loadbench;
