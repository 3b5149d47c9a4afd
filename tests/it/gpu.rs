//! The wgpu path, run on a software adapter (Mesa's lavapipe, `learn.device = "wgpu-software"`)
//! so that it is exercised on every CI run without a GPU: training on wgpu and on flex gives
//! the same model, a model moves between the two devices and scores the same, and the device
//! worker trains on wgpu with progress and cancel. `auto` never takes that adapter.
//!
//! Built only with `--features gpu`. The software adapter is about 200 times slower than flex
//! per step and compiles its kernels on first use, so these trainings are small and few.

use std::sync::OnceLock;
use std::time::Duration;

use sublist::config::DevicePref;
use sublist::domain::{LayerKind, LikedTrack, SublistId};
use sublist::jobs::DevicePool;
use sublist::learn::{
    self, Compute, ComputeKind, LearnError, Prediction, Progress, TrainConfig, TrainedModel,
};
use sublist::tools::demo::{SAMPLE_CSV, demo_layers, layer_truth};
use sublist::tools::eval::load_playlists;

/// The largest difference allowed between two devices' probabilities for the same track.
/// flex and wgpu sum in different orders, so 32-bit rounding differs after training.
const TOLERANCE: f32 = 1e-4;

fn software() -> Compute {
    let (compute, line) = Compute::select(DevicePref::WgpuSoftware, 0).unwrap_or_else(|e| {
        panic!("{e} (the gpu tests need Mesa's lavapipe: mesa-vulkan-drivers)")
    });
    assert_eq!(compute.kind(), ComputeKind::SoftwareAdapter, "{line}");
    compute
}

/// Few epochs and two folds: enough to exercise early stopping, calibration and the
/// held-out checks on the device, small enough for a software adapter.
fn small() -> TrainConfig {
    TrainConfig {
        max_epochs: 30,
        check_every: 10,
        folds: 2,
        ..TrainConfig::default()
    }
}

fn ids(k: usize) -> Vec<SublistId> {
    (0..k as i64).map(|i| SublistId(100 + i)).collect()
}

/// One demo layer trained on both devices from every third track, with every track to score.
struct Pair {
    kind: LayerKind,
    tracks: Vec<LikedTrack>,
    flex: TrainedModel,
    wgpu: TrainedModel,
}

fn pairs() -> &'static [Pair] {
    static PAIRS: OnceLock<Vec<Pair>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let data = load_playlists(SAMPLE_CSV.as_bytes()).expect("the bundled sample loads");
        let wgpu = software();
        demo_layers()
            .iter()
            .map(|layer| {
                let (idx, truth) = layer_truth(&data, layer).unwrap();
                let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();
                let picked: Vec<usize> = (0..tracks.len()).step_by(3).collect();
                let train: Vec<LikedTrack> = picked.iter().map(|&i| tracks[i].clone()).collect();
                let labels: Vec<Vec<usize>> = picked.iter().map(|&i| truth[i].clone()).collect();
                let classes = ids(layer.sublists.len());
                let on = |compute: &Compute| {
                    learn::train(
                        compute,
                        layer.kind,
                        &classes,
                        &train,
                        &labels,
                        &small(),
                        &mut |_| {},
                    )
                    .unwrap_or_else(|e| panic!("{}: {e}", compute.name()))
                };
                Pair {
                    kind: layer.kind,
                    flex: on(&Compute::cpu()),
                    wgpu: on(&wgpu),
                    tracks,
                }
            })
            .collect()
    })
}

/// The largest probability difference between two sets of predictions, and the tracks whose
/// decisions differ although neither side is near a tie (top two within twice the tolerance,
/// or a non-mutual threshold within the tolerance).
fn compare(a: &[Prediction], b: &[Prediction], threshold: Option<f32>) -> (f32, Vec<usize>) {
    assert_eq!(a.len(), b.len());
    let mut largest = 0f32;
    let mut differ = Vec::new();
    for (i, (p, q)) in a.iter().zip(b).enumerate() {
        let probs = |x: &Prediction| -> Vec<f32> {
            x.probabilities
                .iter()
                .map(|(_, v)| *v)
                .chain(x.void_probability)
                .collect()
        };
        let (pp, qq) = (probs(p), probs(q));
        for (x, y) in pp.iter().zip(&qq) {
            largest = largest.max((x - y).abs());
        }
        if p.label != q.label && !near_tie(&pp, threshold) && !near_tie(&qq, threshold) {
            differ.push(i);
        }
    }
    (largest, differ)
}

fn near_tie(probs: &[f32], threshold: Option<f32>) -> bool {
    let mut sorted = probs.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top_two = sorted.len() > 1 && sorted[0] - sorted[1] <= 2.0 * TOLERANCE;
    let at_threshold = threshold.is_some_and(|t| probs.iter().any(|p| (p - t).abs() <= TOLERANCE));
    top_two || at_threshold
}

#[test]
fn training_on_wgpu_and_on_flex_gives_the_same_decisions_and_probabilities() {
    let mut worst = 0f32;
    for pair in pairs() {
        let (f, w) = (pair.flex.metrics(), pair.wgpu.metrics());
        assert_eq!(f.device, "cpu (flex)");
        assert!(
            w.device.starts_with("wgpu software adapter"),
            "{}",
            w.device
        );
        // The same early-stopping point, temperature and threshold were chosen.
        assert_eq!(
            (f.epochs, f.temperature, f.threshold),
            (w.epochs, w.temperature, w.threshold),
            "{:?}",
            pair.kind
        );
        let (largest, differ) = compare(
            &pair.flex.predict(&pair.tracks),
            &pair.wgpu.predict(&pair.tracks),
            f.threshold,
        );
        eprintln!(
            "{:?}: {} tracks, largest probability difference {largest:.2e}",
            pair.kind,
            pair.tracks.len()
        );
        assert!(largest <= TOLERANCE, "{:?}: {largest}", pair.kind);
        assert!(
            differ.is_empty(),
            "{:?}: decisions differ on {differ:?}",
            pair.kind
        );
        worst = worst.max(largest);
    }
    eprintln!("largest difference over the four layers: {worst:.2e} (tolerance {TOLERANCE:.0e})");
}

#[test]
fn a_model_trained_on_one_device_loads_and_scores_on_the_other() {
    let wgpu = software();
    for pair in pairs() {
        // Trained on wgpu, saved, loaded: scores on the CPU exactly as before saving.
        let loaded = TrainedModel::from_bytes(&pair.wgpu.to_bytes().unwrap()).unwrap();
        assert_eq!(loaded.scores_on(), "cpu (flex)");
        assert_eq!(
            loaded.predict(&pair.tracks),
            pair.wgpu.predict(&pair.tracks)
        );
        assert_eq!(loaded.metrics(), pair.wgpu.metrics());

        // Trained on flex, saved, loaded, moved to wgpu: scores there as on the CPU.
        let expected = pair.flex.predict(&pair.tracks);
        let moved = TrainedModel::from_bytes(&pair.flex.to_bytes().unwrap())
            .unwrap()
            .to_compute(&wgpu);
        assert_eq!(moved.scores_on(), wgpu.name());
        let on_wgpu = moved.predict(&pair.tracks);
        let (largest, differ) = compare(&expected, &on_wgpu, pair.flex.metrics().threshold);
        assert!(largest <= TOLERANCE, "{:?}: {largest}", pair.kind);
        assert!(
            differ.is_empty(),
            "{:?}: decisions differ on {differ:?}",
            pair.kind
        );

        // And back: a model moved to wgpu still saves, and loads on the CPU.
        let back = TrainedModel::from_bytes(&moved.to_bytes().unwrap()).unwrap();
        assert_eq!(back.predict(&pair.tracks), expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_worker_trains_on_wgpu_with_progress_and_cancel() {
    let wgpu = software();
    let name = wgpu.name().to_string();
    let pool = DevicePool::new(vec![wgpu]).unwrap();
    let data = load_playlists(SAMPLE_CSV.as_bytes()).unwrap();
    let layer = &demo_layers()[0];
    let (idx, truth) = layer_truth(&data, layer).unwrap();
    let picked: Vec<usize> = idx.iter().copied().step_by(4).collect();
    let tracks: Vec<LikedTrack> = picked.iter().map(|&t| data.tracks[t].clone()).collect();
    let labels: Vec<Vec<usize>> = (0..idx.len())
        .step_by(4)
        .map(|i| truth[i].clone())
        .collect();
    let (kind, classes) = (layer.kind, ids(layer.sublists.len()));

    // A whole training, its progress carried back from the worker thread.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let (t, l, c) = (tracks.clone(), labels.clone(), classes.clone());
    let (thread, model) = pool
        .run(move |compute| {
            let thread = std::thread::current().name().map(str::to_owned);
            let model = learn::train(compute, kind, &c, &t, &l, &small(), &mut |p| {
                let _ = tx.send(p);
            });
            (thread, model)
        })
        .await
        .unwrap();
    assert!(thread.unwrap().starts_with("sublist-device-"));
    let model = model.unwrap();
    assert_eq!(model.metrics().device, name);
    let mut reports = Vec::new();
    while let Ok(p) = rx.try_recv() {
        reports.push(p);
    }
    assert!(reports.len() >= 3, "{reports:?}");
    assert!(
        reports.windows(2).all(|w| w[0].epoch <= w[1].epoch),
        "{reports:?}"
    );
    let last = reports.last().unwrap();
    assert_eq!(last.epoch, last.epochs);
    assert!(reports.iter().any(|p| p.held_out_accuracy.is_some()));

    // A training far too long to finish, cancelled after its first report as a job is.
    let config = TrainConfig {
        max_epochs: 100_000,
        ..small()
    };
    let stop = config.stop.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let training = pool.run(move |compute| {
        learn::train(
            compute,
            kind,
            &classes,
            &tracks,
            &labels,
            &config,
            &mut |p| {
                let _ = tx.send(p);
            },
        )
        .map(|_| ())
    });
    tokio::pin!(training);
    let first = tokio::select! {
        p = rx.recv() => p,
        done = &mut training => panic!("finished before any progress: {done:?}"),
    };
    assert!(first.is_some_and(|p| p.epoch < p.epochs));
    stop.raise();
    let result = tokio::time::timeout(Duration::from_secs(120), training)
        .await
        .expect("the cancelled training stops between epochs")
        .unwrap();
    assert!(matches!(result, Err(LearnError::Stopped)), "{result:?}");
    // The worker is free again.
    assert_eq!(
        pool.run(|c: &Compute| c.kind()).await,
        Ok(ComputeKind::SoftwareAdapter)
    );
}

#[test]
fn auto_never_takes_a_software_adapter_for_a_gpu() {
    // This machine may have a real GPU or none; a software adapter is never the answer.
    let (auto, line) = Compute::select(DevicePref::Auto, 0).unwrap();
    assert_ne!(auto.kind(), ComputeKind::SoftwareAdapter, "{line}");
    match Compute::select(DevicePref::Gpu, 0) {
        Ok((gpu, line)) => {
            assert_eq!(gpu.kind(), ComputeKind::Gpu, "{line}");
            assert!(auto.is_gpu(), "{line}");
        }
        Err(e) => {
            assert!(matches!(e, LearnError::NoGpu(_)), "{e}");
            assert_eq!(auto.kind(), ComputeKind::Cpu, "{line}");
            assert!(line.contains("no usable GPU"), "{line}");
        }
    }
    // The software adapter is there all the same, for whoever names it.
    assert_eq!(software().kind(), ComputeKind::SoftwareAdapter);
}
