//! `sublist bench`: how long training and scoring take and how much memory they use, on the
//! CPU and, where one exists, on the GPU. A measurement, not a test. Each model is scored on
//! the device it trained on; the features and neighbour votes of scoring are always built on
//! the CPU, the network runs on the row's device.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::config::DevicePref;
use crate::domain::{LayerKind, LikedTrack, SublistId};
use crate::learn::{self, Compute, ComputeKind, TrainConfig};

/// Arguments of `sublist bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// A playlists CSV whose tracks are trained on, plain or gzip (labels: the playlist_genre
    /// column) [default: the built-in spotify_songs.csv]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The device measured beside the CPU: `auto` or `gpu` (a real GPU, skipped or an error
    /// where there is none), `wgpu-software` (the GPU code path on a software adapter), `cpu`
    /// (the CPU alone).
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DevicePref,
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
    /// Liked songs of the member whose sync ticks are measured (0: skip those rows).
    #[arg(long, default_value_t = 20_000)]
    pub sync_liked: usize,
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
fn genre_labelled(
    path: Option<&std::path::Path>,
) -> anyhow::Result<(Vec<LikedTrack>, Vec<usize>, usize)> {
    let (csv, name) = super::eval::read_data(path)?;
    let mut rdr = csv::Reader::from_reader(csv.as_slice());
    let headers = rdr
        .headers()
        .with_context(|| format!("reading {name}"))?
        .clone();
    let (Some(c_id), Some(c_genre)) = (
        headers.iter().position(|h| h == "track_id"),
        headers.iter().position(|h| h == "playlist_genre"),
    ) else {
        bail!("{name} needs track_id and playlist_genre columns");
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
    let data =
        super::eval::load_playlists(csv.as_slice()).with_context(|| format!("reading {name}"))?;
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
    let (tracks, labels, classes) = genre_labelled(args.data.as_deref())?;
    let ids: Vec<SublistId> = (0..classes as i64).map(SublistId).collect();
    let mut devices = vec![Compute::cpu()];
    if args.device != DevicePref::Cpu {
        // Every training of a device row runs on that device, whatever its size.
        let (other, line) = Compute::select(args.device, 0)?;
        eprintln!("{line}");
        if other.kind() != ComputeKind::Cpu {
            devices.push(other);
        }
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
        // One small training first, unmeasured: a GPU compiles its kernels on first use.
        let warm = tracks.len().min(50);
        let warm_sets: Vec<Vec<usize>> = labels[..warm].iter().map(|&c| vec![c]).collect();
        let warm_up = TrainConfig {
            max_epochs: 10,
            ..TrainConfig::default()
        };
        if warm > 0 {
            learn::train(
                compute,
                LayerKind::MutualComplete,
                &ids,
                &tracks[..warm],
                &warm_sets,
                &warm_up,
                &mut |_| {},
            )?;
        }
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
                model.metrics().device,
                peak_memory_mib().unwrap_or(f64::NAN)
            );
            if n == 2000 || model_2000.is_none() {
                model_2000 = Some(model);
            }
        }
        if let Some(model) = model_2000.take() {
            // Scored where it trained: the network on this row's device.
            let model = model.to_compute(compute);
            let m = args.score.min(tracks.len());
            let to_score = &tracks[tracks.len() - m..];
            // One warm-up call, then the measured one.
            model.predict(&to_score[..m.min(100)]);
            let t = Instant::now();
            let preds = model.predict(to_score);
            let secs = t.elapsed().as_secs_f64();
            println!(
                "| {} | score (model trained on {} here; features on the CPU) | {} | {secs:.3} | {:.0} |",
                model.scores_on(),
                model.metrics().labels,
                preds.len(),
                peak_memory_mib().unwrap_or(f64::NAN)
            );
        }
    }
    if args.sync_liked > 0 {
        sync_rows(&tracks, &labels, classes, args.sync_liked)?;
    }
    Ok(())
}

/// CPU time of this process so far (user + system), in seconds, from `/proc/self/stat`.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    // Linux counts in clock ticks of 1/100 s.
    Some((user + system) / 100.0)
}

/// The labels a layer of `kind` gives a track of playlist genre `genre`: incomplete layers
/// leave the last genre to the void.
fn kind_label(kind: LayerKind, genre: usize, classes: usize) -> Vec<usize> {
    if !kind.rules().complete && genre + 1 == classes {
        Vec::new()
    } else {
        vec![genre]
    }
}

/// A member's steady state: `liked` liked songs (real tracks of the data set) on the local
/// Spotify, four layers (one of each kind) with models trained on 2,000 of them, synced and
/// sorted until nothing changes. Then one sync tick (sync, audio descriptors, sort, as the
/// scheduled job does) with nothing new and one with 20 new likes: wall time, CPU time of the
/// process (the local Spotify's serving included) and Spotify Web API requests.
fn sync_rows(
    tracks: &[LikedTrack],
    labels: &[usize],
    classes: usize,
    liked: usize,
) -> anyhow::Result<()> {
    use crate::config::PipelineConfig;
    use crate::domain::MemberId;
    use crate::jobs::{DevicePool, Queue};
    use crate::spotify::local::Service;
    use crate::store::{Store, StoredModel};

    const NEW: usize = 20;
    const TRAINED_ON: usize = 2_000;
    let liked = liked.min(tracks.len().saturating_sub(NEW));
    if liked < TRAINED_ON {
        eprintln!("skipping the sync ticks: only {} tracks", tracks.len());
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::TempDir::new()?;
        let store = Store::open_at(&dir.path().join("bench.db"), &[7; 32]).await?;
        let member = MemberId(1);
        let library: Vec<_> = tracks[NEW..NEW + liked]
            .iter()
            .map(|t| t.track.clone())
            .collect();
        let demo = crate::spotify::demo::start(store.clone(), member, &library).await?;
        let fresh: Vec<_> = tracks[..NEW].iter().map(|t| t.track.clone()).collect();
        demo.local.add_catalogue(&fresh);
        let app = crate::app::App::new(
            store.clone(),
            demo.spotify.clone(),
            Queue::new(store.clone(), 1),
            DevicePool::new(vec![Compute::cpu()])?,
            PipelineConfig {
                sync_interval: std::time::Duration::from_secs(300),
                retrain_after_labels: u32::MAX,
                refresh_cooldown: std::time::Duration::from_secs(60),
                playlist_check_interval: std::time::Duration::from_secs(6 * 3600),
            },
        );
        demo.spotify.sync_motherlist(member, &|_| {}).await?;
        demo.spotify.fill_audio(liked as u32).await?;
        for kind in [
            LayerKind::MutualComplete,
            LayerKind::MutualIncomplete,
            LayerKind::MultiComplete,
            LayerKind::MultiIncomplete,
        ] {
            let layer = store
                .create_layer(member, &format!("{kind:?}"), kind.rules())
                .await?;
            let sublists = if kind.rules().complete {
                classes
            } else {
                classes - 1
            };
            for c in 0..sublists {
                let emoji = ["🔴", "🟠", "🟡", "🟢", "🔵", "🟣", "🟤", "⚫"][c % 8];
                store
                    .add_sublist(layer.id, &format!("genre {c}"), emoji)
                    .await?;
            }
            let layer = store
                .layer(layer.id)
                .await?
                .context("the layer was just made")?;
            let ids: Vec<SublistId> = layer.sublists.iter().map(|s| s.id).collect();
            let train_on = &tracks[NEW..NEW + TRAINED_ON];
            let sets: Vec<Vec<usize>> = labels[NEW..NEW + TRAINED_ON]
                .iter()
                .map(|&g| kind_label(kind, g, classes))
                .collect();
            let model = learn::train(
                &Compute::cpu(),
                kind,
                &ids,
                train_on,
                &sets,
                &TrainConfig::default(),
                &mut |_| {},
            )?;
            store
                .save_model(&StoredModel {
                    layer: layer.id,
                    feature_schema: learn::FEATURE_SCHEMA,
                    weights: model.to_bytes()?,
                    metrics: serde_json::to_value(model.metrics())?,
                    labels_used: TRAINED_ON as u32,
                    trained_at: store.now(),
                    device: Compute::cpu().name().to_string(),
                })
                .await?;
        }
        // One sync tick, as the scheduled job runs it.
        let tick = || async {
            let report = demo.spotify.sync_motherlist(member, &|_| {}).await?;
            demo.spotify.fill_audio(400).await?;
            app.sort_after_sync(member, report.new_tracks.len() as u32)
                .await?;
            anyhow::Ok(())
        };
        // The first tick places every track and writes the playlists; the next one finds them
        // in place and records that, so the one measured next has nothing to sort.
        tick().await?;
        tick().await?;
        println!();
        println!(
            "| sync tick, {liked} liked songs, 4 layers | wall (s) | CPU (s) | Spotify requests |"
        );
        println!("|---|---|---|---|");
        for (what, new) in [("nothing new", 0), ("20 new likes", NEW)] {
            if new > 0 {
                let ids: Vec<_> = fresh.iter().map(|t| t.id.clone()).collect();
                demo.local.like(crate::spotify::demo::DEMO_USER, &ids);
            }
            demo.local.clear_log();
            let cpu = cpu_seconds();
            let t = Instant::now();
            tick().await?;
            let wall = t.elapsed().as_secs_f64();
            let cpu = cpu.zip(cpu_seconds()).map_or(f64::NAN, |(a, b)| b - a);
            let requests = demo
                .local
                .requests()
                .iter()
                .filter(|r| r.service == Service::WebApi)
                .count();
            println!("| {what} | {wall:.3} | {cpu:.2} | {requests} |");
        }
        anyhow::Ok(())
    })
}
