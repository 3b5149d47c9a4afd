//! `sublist bench`: how long training and scoring take and how much memory they use, on the
//! CPU and, where one exists, on the GPU. A measurement, not a test.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::config::DevicePref;
use crate::domain::{LayerKind, LikedTrack, SublistId};
use crate::learn::{self, Compute, TrainConfig};

/// Arguments of `sublist bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The playlists CSV whose tracks are trained on (labels: the playlist genre column).
    #[arg(long, default_value = "../shared/data/spotify_songs.csv")]
    pub data: PathBuf,
    /// Labelled-track counts to train on.
    #[arg(long, value_delimiter = ',', default_value = "500,2000,20000")]
    pub sizes: Vec<usize>,
    /// Tracks to score.
    #[arg(long, default_value_t = 10_000)]
    pub score: usize,
    /// Instead: the load benchmark, where many members ask to train at once through the
    /// real queue and device workers (CPU).
    #[arg(long)]
    pub load: bool,
    /// Members in the load benchmark.
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    /// Liked songs per member in the load benchmark.
    #[arg(long, default_value_t = 2000)]
    pub liked: usize,
    /// Device workers in the load benchmark.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
}

/// The load benchmark on a fresh database in a temporary folder.
fn run_load(args: &BenchArgs) -> anyhow::Result<()> {
    use super::loadbench;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let dir = tempfile::TempDir::new()?;
        let store = crate::store::Store::open_at(&dir.path().join("bench.db"), &[7; 32]).await?;
        let devices = crate::jobs::DevicePool::new(vec![Compute::cpu(); args.workers.max(1)])?;
        let options = loadbench::LoadOptions {
            members: args.members,
            liked: args.liked,
            ..loadbench::LoadOptions::default()
        };
        loadbench::run(store, devices, loadbench::learn_trainer(), &options).await
    })?;
    println!("{report}");
    Ok(())
}

/// Peak resident memory of this process (VmHWM), in MiB.
fn peak_memory_mib() -> Option<f64> {
    super::loadbench::peak_rss_kib().map(|k| k as f64 / 1024.0)
}

/// Tracks and their genre (class index) from the CSV, shuffled.
fn genre_labelled(path: &PathBuf) -> anyhow::Result<(Vec<LikedTrack>, Vec<usize>, usize)> {
    let mut rdr =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = rdr.headers()?.clone();
    let (Some(c_id), Some(c_genre)) = (
        headers.iter().position(|h| h == "track_id"),
        headers.iter().position(|h| h == "playlist_genre"),
    ) else {
        bail!(
            "{} needs track_id and playlist_genre columns",
            path.display()
        );
    };
    let mut genre_of = std::collections::HashMap::new();
    let mut genres: Vec<String> = Vec::new();
    for rec in rdr.records() {
        let rec = rec?;
        let (Some(id), Some(g)) = (rec.get(c_id), rec.get(c_genre)) else {
            continue;
        };
        let class = match genres.iter().position(|x| x == g) {
            Some(c) => c,
            None => {
                genres.push(g.to_string());
                genres.len() - 1
            }
        };
        genre_of.entry(id.to_string()).or_insert(class);
    }
    let file = std::fs::File::open(path)?;
    let data = super::eval::load_playlists(std::io::BufReader::new(file))?;
    let mut pairs: Vec<(LikedTrack, usize)> = data
        .tracks
        .into_iter()
        .filter_map(|t| {
            let c = *genre_of.get(t.track.id.as_str())?;
            Some((t, c))
        })
        .collect();
    pairs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(1));
    let (tracks, labels) = pairs.into_iter().unzip();
    Ok((tracks, labels, genres.len()))
}

/// Runs the benchmark and prints one Markdown row per measurement.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.load {
        return run_load(&args);
    }
    let (tracks, labels, classes) = genre_labelled(&args.data)?;
    let ids: Vec<SublistId> = (0..classes as i64).map(SublistId).collect();
    let mut devices = vec![Compute::cpu()];
    let (gpu, line) = Compute::select(DevicePref::Auto)?;
    eprintln!("{line}");
    if gpu.is_gpu() {
        devices.push(gpu);
    }
    println!(
        "threads: {}; {} tracks available, {} classes (playlist genre)",
        rayon::current_num_threads(),
        tracks.len(),
        classes
    );
    println!("| device | what | tracks | seconds | peak memory (MiB) |");
    println!("|---|---|---|---|---|");
    for compute in &devices {
        let mut model_2000 = None;
        for &n in &args.sizes {
            if n > tracks.len() {
                eprintln!("skipping {n}: only {} tracks", tracks.len());
                continue;
            }
            let sets: Vec<Vec<usize>> = labels[..n].iter().map(|&c| vec![c]).collect();
            let t = Instant::now();
            let model = learn::train(
                compute,
                LayerKind::MutualComplete,
                &ids,
                &tracks[..n],
                &sets,
                &TrainConfig::default(),
                &mut |_| {},
            )?;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "| {} | train one layer model | {n} | {secs:.3} | {:.0} |",
                compute.name(),
                peak_memory_mib().unwrap_or(f64::NAN)
            );
            if n == 2000 || model_2000.is_none() {
                model_2000 = Some(model);
            }
        }
        if let Some(model) = model_2000 {
            let m = args.score.min(tracks.len());
            let to_score = &tracks[tracks.len() - m..];
            // One warm-up call, then the measured one.
            model.predict(&to_score[..m.min(100)]);
            let t = Instant::now();
            let preds = model.predict(to_score);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "| {} | score (model trained on {}) | {} | {secs:.3} | {:.0} |",
                compute.name(),
                model.metrics().labels,
                preds.len(),
                peak_memory_mib().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}
