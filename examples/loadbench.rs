//! The load benchmark: `cargo run --release --example loadbench -- [members] [liked] [workers]`
//! (defaults 50, 2000, 1). Every member asks to train at once; prints total time, the longest
//! wait of any member and peak memory. Trains with the stand-in trainer until the real one is
//! wired in.

use std::sync::Arc;

use sublist::app::loadbench::{self, LoadOptions, TrainFn};
use sublist::jobs::DevicePool;
use sublist::store::Store;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let options = LoadOptions {
        members: args.first().copied().unwrap_or(50),
        liked: args.get(1).copied().unwrap_or(2000),
        ..LoadOptions::default()
    };
    let workers = args.get(2).copied().unwrap_or(1).max(1);
    let dir = tempfile::tempdir()?;
    let store = Store::open_at(&dir.path().join("bench.db"), &[7; 32]).await?;
    let devices = DevicePool::new(vec![(); workers])?;
    let train: TrainFn<()> = Arc::new(loadbench::stand_in_train);
    let report = loadbench::run(store, devices, train, &options).await?;
    println!("{report}");
    Ok(())
}
