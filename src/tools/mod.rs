//! The commands beside the bot: `demo` runs the whole pipeline offline on a bundled sample,
//! `eval` measures sorting quality against classical baselines, `bench` measures speed and load.
//! They drive the use cases of `app` like a member would; nothing in `app` depends on them.

pub mod bench;
pub mod demo;
pub mod eval;
pub mod loadbench;
