//! The load benchmark: many members, each with a large motherlist, all asking to train at once
//! through the real queue, runner and device workers. It reports the total time, the longest
//! wait of any member (queued to started) and the process's peak memory.
//!
//! The trainer is a parameter so the real one (`learn::train` on a `learn::Compute`) plugs in;
//! [`learn_trainer`] is the one `sublist bench --load` uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::domain::{
    AudioFeatures, LayerId, LayerKind, LikedTrack, MemberId, SublistId, Track, TrackId,
};
use crate::jobs::{
    CancelToken, DevicePool, Job, JobContext, JobError, JobHandler, JobKind, JobStatus, Priority,
    Progress, ProgressSender, Queue, Runner, RunnerSettings,
};
use crate::store::Store;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub members: usize,
    /// Liked songs per member.
    pub liked: usize,
    /// The share of liked songs that carry a label (the rest are what the model sorts).
    pub labelled_fraction: f32,
    /// Sublists in each member's layer (a mutual, complete layer).
    pub sublists: usize,
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            members: 50,
            liked: 2000,
            labelled_fraction: 1.0,
            sublists: 5,
            seed: 7,
        }
    }
}

/// One member's training set, in the shape `learn::train` takes.
#[derive(Clone, Debug)]
pub struct TrainingSet {
    pub member: MemberId,
    pub layer: LayerId,
    pub kind: LayerKind,
    pub classes: Vec<SublistId>,
    pub tracks: Vec<LikedTrack>,
    /// Class-index sets into `classes`, one per track.
    pub labels: Vec<Vec<usize>>,
}

/// Trains one member's set on a device; runs on a device worker thread.
pub type TrainFn<D> = Arc<
    dyn Fn(&D, &TrainingSet, &CancelToken, &ProgressSender) -> Result<serde_json::Value, String>
        + Send
        + Sync,
>;

/// What the benchmark measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    pub members: usize,
    pub liked: usize,
    pub device_workers: usize,
    /// From the first request to the last training's end.
    pub total: Duration,
    /// The longest time any member's request waited in the queue before it started.
    pub longest_wait: Duration,
    pub longest_wait_member: MemberId,
    pub mean_wait: Duration,
    pub longest_training: Duration,
    pub mean_training: Duration,
    pub failed: usize,
    /// Peak resident memory (VmHWM) after building the data, before any training.
    pub peak_before_kib: Option<u64>,
    /// Peak resident memory at the end.
    pub peak_kib: Option<u64>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |k: Option<u64>| {
            k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "unknown".into())
        };
        writeln!(
            f,
            "{} members x {} liked songs, {} device worker(s)",
            self.members, self.liked, self.device_workers
        )?;
        writeln!(f, "total time:        {:.2} s", self.total.as_secs_f64())?;
        writeln!(
            f,
            "longest wait:      {:.2} s (member {})",
            self.longest_wait.as_secs_f64(),
            self.longest_wait_member
        )?;
        writeln!(
            f,
            "mean wait:         {:.2} s",
            self.mean_wait.as_secs_f64()
        )?;
        writeln!(
            f,
            "training per job:  mean {:.3} s, longest {:.3} s",
            self.mean_training.as_secs_f64(),
            self.longest_training.as_secs_f64()
        )?;
        writeln!(f, "failed:            {}", self.failed)?;
        writeln!(
            f,
            "peak memory (VmHWM): {} before training, {} at the end",
            mib(self.peak_before_kib),
            mib(self.peak_kib)
        )
    }
}

/// The process's peak resident memory in KiB (`VmHWM` in `/proc/self/status`), on Linux.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A deterministic, realistic-looking motherlist for member number `index`: artists with a
/// favourite sublist, albums, release dates, ISRCs and audio descriptors; labels follow the
/// artist with some noise, as real taste does.
pub fn synthetic_member(index: usize, options: &LoadOptions) -> TrainingSet {
    let mut rng = StdRng::seed_from_u64(options.seed.wrapping_add(index as u64 * 7919));
    let member = MemberId(1_000_000 + index as u64);
    let classes: Vec<SublistId> = (0..options.sublists.max(1))
        .map(|c| SublistId((index * 100 + c) as i64 + 1))
        .collect();
    let artists = (options.liked / 8).max(1);
    let artist_class: Vec<usize> = (0..artists)
        .map(|_| rng.random_range(0..classes.len()))
        .collect();
    let start = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).single();
    let mut labels = Vec::new();
    let mut labelled_tracks = Vec::new();
    for t in 0..options.liked {
        let artist = rng.random_range(0..artists);
        let album = rng.random_range(0..3);
        let class = if rng.random::<f32>() < 0.85 {
            artist_class[artist]
        } else {
            rng.random_range(0..classes.len())
        };
        let centre = class as f32 / classes.len() as f32;
        let mut audio = [0f32; 11];
        for v in &mut audio {
            *v = (centre + rng.random::<f32>() * 0.4 - 0.2).clamp(0.0, 1.0);
        }
        let year = 1970 + (artist * 37 + album * 5) % 55;
        let id = TrackId::parse(&format!("{:0>22}", format!("m{index}t{t}")))
            .unwrap_or_else(|_| unreachable!("22 alphanumeric characters"));
        let mut track = Track::bare(id, format!("Song {t} of member {index}"));
        track.artists = vec![(
            Some(format!("artist{index}x{artist}")),
            format!("Artist {artist}"),
        )];
        track.album_id = Some(format!("album{index}x{artist}x{album}"));
        track.album_name = Some(format!("Album {album} by {artist}"));
        track.album_type = Some("album".into());
        track.release_date = Some(format!("{year}-06-01"));
        track.duration_ms = Some(150_000 + rng.random_range(0..150_000));
        track.explicit = Some(rng.random::<f32>() < 0.1);
        track.track_number = Some(rng.random_range(1..13));
        track.disc_number = Some(1);
        track.total_tracks = Some(12);
        track.isrc = Some(format!(
            "US{:03}{:02}{:05}",
            artist % 1000,
            year % 100,
            t % 100_000
        ));
        track.audio = Some(AudioFeatures::from_values(audio));
        let liked = LikedTrack {
            track,
            added_at: start.unwrap_or_else(Utc::now) + chrono::Duration::hours(t as i64),
        };
        // Training sees the labelled tracks; the rest are what the model would sort.
        if rng.random::<f32>() < options.labelled_fraction {
            labelled_tracks.push(liked);
            labels.push(vec![class]);
        }
    }
    TrainingSet {
        member,
        layer: LayerId(index as i64 + 1),
        kind: LayerKind::MutualComplete,
        classes,
        tracks: labelled_tracks,
        labels,
    }
}

/// The real trainer: `learn::train` with the default settings on the worker's device.
pub fn learn_trainer() -> TrainFn<crate::learn::Compute> {
    let config = crate::learn::TrainConfig::default();
    Arc::new(move |compute, set, _cancel, progress| {
        let model = crate::learn::train(
            compute,
            set.kind,
            &set.classes,
            &set.tracks,
            &set.labels,
            &config,
            &mut |p| {
                progress.report(Progress {
                    epoch: p.epoch as u32,
                    epochs: p.epochs as u32,
                    loss: p.loss,
                    held_out_accuracy: p.held_out_accuracy,
                })
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(json!({ "held_out_accuracy": model.metrics().held_out_accuracy }))
    })
}

struct BenchHandler<D> {
    sets: HashMap<MemberId, Arc<TrainingSet>>,
    devices: Arc<DevicePool<D>>,
    train: TrainFn<D>,
    durations: Mutex<Vec<Duration>>,
}

impl<D: Send + 'static> JobHandler for BenchHandler<D> {
    async fn run(&self, job: &Job, ctx: JobContext) -> Result<serde_json::Value, JobError> {
        let JobKind::Train { member, .. } = job.kind else {
            return Err(JobError::Fatal("the benchmark only trains".into()));
        };
        let set = self
            .sets
            .get(&member)
            .cloned()
            .ok_or_else(|| JobError::Fatal(format!("no data for member {member}")))?;
        let train = Arc::clone(&self.train);
        let started = Instant::now();
        let result = self
            .devices
            .run(move |device| train(device, &set, &ctx.cancel, &ctx.progress))
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        if let Ok(mut durations) = self.durations.lock() {
            durations.push(started.elapsed());
        }
        result.map_err(JobError::Fatal)
    }
}

/// Runs the benchmark: builds the members' data, stores the members, has every member ask for
/// a training at once, and measures until all are done.
pub async fn run<D: Send + 'static>(
    store: Store,
    devices: DevicePool<D>,
    train: TrainFn<D>,
    options: &LoadOptions,
) -> anyhow::Result<LoadReport> {
    let sets: Vec<Arc<TrainingSet>> = (0..options.members)
        .map(|i| Arc::new(synthetic_member(i, options)))
        .collect();
    for set in &sets {
        store.ensure_member(set.member).await?;
    }
    let peak_before_kib = peak_rss_kib();
    let device_workers = devices.len();
    let handler = Arc::new(BenchHandler {
        sets: sets.iter().map(|s| (s.member, Arc::clone(s))).collect(),
        devices: Arc::new(devices),
        train,
        durations: Mutex::new(Vec::new()),
    });
    let queue = Queue::new(store, 1);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let runner = Runner::new(
        queue.clone(),
        Arc::clone(&handler),
        RunnerSettings {
            device_slots: device_workers,
            train_timeout: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(50),
            ..RunnerSettings::default()
        },
    );
    let runner = tokio::spawn(runner.run(shutdown));

    let started = Instant::now();
    let requests = sets.iter().map(|set| {
        queue.enqueue(
            JobKind::Train {
                member: set.member,
                layer: set.layer,
            },
            Priority::Manual,
        )
    });
    let ids: Vec<_> = futures::future::try_join_all(requests).await?;
    let mut failed = 0;
    for job in &ids {
        match queue.wait(job.id).await? {
            Some(JobStatus::Done { .. }) => {}
            other => {
                failed += 1;
                tracing::warn!(job = %job.id, status = ?other, "benchmark training did not succeed");
            }
        }
    }
    let total = started.elapsed();
    stop.send_replace(true);
    runner.await??;

    let mut waits = Vec::new();
    for job in &ids {
        if let Some(row) = queue.job(job.id).await?
            && let (Some(started_at), Some(member)) = (row.started_at, row.member)
        {
            let wait = (started_at - row.created_at).to_std().unwrap_or_default();
            waits.push((wait, member));
        }
    }
    let (longest_wait, longest_wait_member) = waits
        .iter()
        .copied()
        .max()
        .unwrap_or((Duration::ZERO, MemberId(0)));
    let mean = |d: &[Duration]| {
        if d.is_empty() {
            Duration::ZERO
        } else {
            d.iter().sum::<Duration>() / d.len() as u32
        }
    };
    let wait_times: Vec<Duration> = waits.iter().map(|(w, _)| *w).collect();
    let durations = handler
        .durations
        .lock()
        .map(|d| d.clone())
        .unwrap_or_default();
    Ok(LoadReport {
        members: options.members,
        liked: options.liked,
        device_workers,
        total,
        longest_wait,
        longest_wait_member,
        mean_wait: mean(&wait_times),
        longest_training: durations.iter().copied().max().unwrap_or_default(),
        mean_training: mean(&durations),
        failed,
        peak_before_kib,
        peak_kib: peak_rss_kib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_members_are_deterministic_and_labelled() {
        let options = LoadOptions {
            liked: 200,
            labelled_fraction: 0.5,
            ..LoadOptions::default()
        };
        let a = synthetic_member(3, &options);
        let b = synthetic_member(3, &options);
        assert_eq!(a.tracks, b.tracks);
        assert_eq!(a.tracks.len(), a.labels.len());
        assert!(a.tracks.len() > 50 && a.tracks.len() < 150);
        assert!(
            a.labels
                .iter()
                .all(|l| l.len() == 1 && l[0] < a.classes.len())
        );
        assert_ne!(synthetic_member(4, &options).member, a.member);
    }
}
