//! The learning pipeline on real playlists: real burn training on the CPU, the four layer
//! rules on every prediction, exact byte round trips, calibration, active questions.

use std::collections::BTreeSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use sublist::domain::{Label, LayerKind, LikedTrack, SublistId};
use sublist::learn::{
    self, Compute, LearnError, Progress, TrainConfig, TrainedModel, class_sets, rank_questions,
};
use sublist::tools::demo::{SAMPLE_CSV, demo_layers, layer_truth};
use sublist::tools::eval::{
    FeatureSet, Playlists, load_playlists, simulate_user, spotify_songs_csv,
};

fn sample() -> Playlists {
    load_playlists(SAMPLE_CSV.as_bytes()).expect("the bundled sample loads")
}

fn ids(k: usize) -> Vec<SublistId> {
    (0..k as i64).map(|i| SublistId(100 + i)).collect()
}

/// Every `step`-th track of a demo layer as labels; returns (model, all tracks, truth).
fn train_layer(
    data: &Playlists,
    layer: usize,
    step: usize,
    config: &TrainConfig,
) -> (TrainedModel, Vec<LikedTrack>, Vec<Vec<usize>>) {
    let layer = &demo_layers()[layer];
    let (idx, truth) = layer_truth(data, layer).unwrap();
    let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();
    let picked: Vec<usize> = (0..tracks.len()).step_by(step).collect();
    let train: Vec<LikedTrack> = picked.iter().map(|&i| tracks[i].clone()).collect();
    let labels: Vec<Vec<usize>> = picked.iter().map(|&i| truth[i].clone()).collect();
    let model = learn::train(
        &Compute::cpu(),
        layer.kind,
        &ids(layer.sublists.len()),
        &train,
        &labels,
        config,
        &mut |_| {},
    )
    .unwrap();
    (model, tracks, truth)
}

#[test]
fn loss_falls_on_a_real_sample() {
    let data = sample();
    let layer = &demo_layers()[0];
    let (idx, truth) = layer_truth(&data, layer).unwrap();
    let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();
    let config = TrainConfig {
        folds: 0,
        ..TrainConfig::default()
    };
    let mut seen: Vec<Progress> = Vec::new();
    learn::train(
        &Compute::cpu(),
        layer.kind,
        &ids(3),
        &tracks,
        &truth,
        &config,
        &mut |p| seen.push(p),
    )
    .unwrap();
    let losses: Vec<f32> = seen
        .iter()
        .map(|p| p.loss)
        .filter(|l| l.is_finite())
        .collect();
    assert!(losses.len() >= 3, "progress was reported: {seen:?}");
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.9),
        "the loss fell: {losses:?}"
    );
    let last = seen.last().unwrap();
    assert_eq!(last.epoch, last.epochs, "progress ends at 100%");
}

#[test]
fn every_prediction_obeys_its_layer_rules() {
    let data = sample();
    for (i, layer) in demo_layers().iter().enumerate() {
        let (model, tracks, _) = train_layer(&data, i, 4, &TrainConfig::default());
        assert_eq!(model.kind(), layer.kind);
        let rules = layer.kind.rules();
        let preds = model.predict(&tracks);
        assert_eq!(preds.len(), tracks.len());
        let known: BTreeSet<SublistId> = model.classes().iter().copied().collect();
        for p in &preds {
            match &p.label {
                Label::Void => assert!(!rules.complete, "{:?} predicted the void", layer.kind),
                Label::Sublists(set) => {
                    assert!(!set.is_empty());
                    assert!(set.is_subset(&known));
                    if rules.mutual {
                        assert_eq!(set.len(), 1, "{:?} predicted {set:?}", layer.kind);
                    }
                }
            }
            assert!((0.0..=1.0).contains(&p.confidence));
            assert_eq!(p.probabilities.len(), layer.sublists.len());
            assert_eq!(p.void_probability.is_some(), !rules.complete);
            let total: f32 = p.probabilities.iter().map(|(_, x)| x).sum::<f32>()
                + p.void_probability.unwrap_or(0.0);
            assert!(
                (total - 1.0).abs() < 1e-3,
                "probabilities sum to 1: {total}"
            );
        }
        // Non-trivial: incomplete layers send some tracks to the void, others somewhere.
        if !rules.complete {
            assert!(preds.iter().any(|p| p.label.is_void()));
            assert!(preds.iter().any(|p| !p.label.is_void()));
        }
    }
}

#[test]
fn byte_round_trip_gives_identical_predictions() {
    let data = sample();
    for (layer, config) in [
        (0, TrainConfig::default()),
        (1, TrainConfig::default()),
        (2, TrainConfig::default()),
        (
            3,
            TrainConfig {
                hidden: 8,
                ..TrainConfig::default()
            },
        ),
    ] {
        let (model, tracks, _) = train_layer(&data, layer, 5, &config);
        let bytes = model.to_bytes().unwrap();
        let loaded = TrainedModel::from_bytes(&bytes).unwrap();
        assert_eq!(loaded.classes(), model.classes());
        assert_eq!(loaded.metrics(), model.metrics());
        assert_eq!(loaded.predict(&tracks), model.predict(&tracks));
        assert_eq!(
            loaded.to_bytes().unwrap(),
            bytes,
            "a loaded model saves the same bytes"
        );
    }
}

#[test]
fn damaged_or_foreign_bytes_are_refused() {
    let data = sample();
    let (model, _, _) = train_layer(&data, 0, 6, &TrainConfig::default());
    let bytes = model.to_bytes().unwrap();
    assert!(matches!(
        TrainedModel::from_bytes(b"hello"),
        Err(LearnError::Corrupt(_))
    ));
    assert!(matches!(
        TrainedModel::from_bytes(&bytes[..bytes.len() / 2]),
        Err(LearnError::Corrupt(_))
    ));
    let mut other_schema = bytes.clone();
    other_schema[4] = other_schema[4].wrapping_add(1);
    assert!(matches!(
        TrainedModel::from_bytes(&other_schema),
        Err(LearnError::SchemaMismatch { .. })
    ));
}

#[test]
fn labels_that_break_the_layer_are_refused() {
    let classes = ids(2);
    let void = class_sets(LayerKind::MutualComplete, &classes, &[Label::Void]);
    assert!(matches!(void, Err(LearnError::BadLabel(_))));
    let two = Label::Sublists(classes.iter().copied().collect());
    assert!(
        class_sets(
            LayerKind::MutualIncomplete,
            &classes,
            std::slice::from_ref(&two)
        )
        .is_err()
    );
    assert_eq!(
        class_sets(LayerKind::MultiIncomplete, &classes, &[two, Label::Void]).unwrap(),
        vec![vec![0, 1], vec![]]
    );
    let stranger = Label::one(SublistId(9));
    assert!(class_sets(LayerKind::MultiComplete, &classes, &[stranger]).is_err());

    let data = sample();
    let tracks = &data.tracks[..4];
    let err = learn::train(
        &Compute::cpu(),
        LayerKind::MultiComplete,
        &classes,
        tracks,
        &[vec![0], vec![], vec![1], vec![0]],
        &TrainConfig::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "The labels do not fit the layer: a complete layer has a track labelled with the void."
    );
    assert!(matches!(
        learn::train(
            &Compute::cpu(),
            LayerKind::MutualComplete,
            &classes,
            &[],
            &[],
            &TrainConfig::default(),
            &mut |_| {}
        ),
        Err(LearnError::NoLabels)
    ));
}

/// Confidence tracks accuracy on held-out tracks of simulated users built from the full data
/// set, pooled over users: overall, and bin by bin (expected calibration error).
#[test]
fn calibrated_confidence_tracks_held_out_accuracy() {
    let csv = spotify_songs_csv().expect("the built-in data set unpacks");
    let data = load_playlists(csv.as_slice()).unwrap();
    let eligible: Vec<usize> = (0..data.playlists.len())
        .filter(|&p| data.playlists[p].1.len() >= 60)
        .collect();
    for kind in [LayerKind::MutualComplete, LayerKind::MutualIncomplete] {
        let mut pairs: Vec<(f32, bool)> = Vec::new();
        for u in 0..8 {
            let mut rng = StdRng::seed_from_u64(1000 + u);
            let user = simulate_user(
                &data,
                &eligible,
                kind,
                FeatureSet::RuntimeAudio,
                4,
                25,
                &mut rng,
            );
            let train: Vec<LikedTrack> = user
                .labelled
                .iter()
                .map(|&i| user.tracks[i].clone())
                .collect();
            let labels: Vec<Vec<usize>> = user
                .labelled
                .iter()
                .map(|&i| user.truth[i].clone())
                .collect();
            let model = learn::train(
                &Compute::cpu(),
                kind,
                &ids(4),
                &train,
                &labels,
                &TrainConfig::default(),
                &mut |_| {},
            )
            .unwrap();
            let test: Vec<LikedTrack> = user.test.iter().map(|&i| user.tracks[i].clone()).collect();
            for (p, &i) in model.predict(&test).iter().zip(&user.test) {
                let predicted: Vec<usize> = p
                    .label
                    .sublists()
                    .iter()
                    .map(|s| (s.0 - 100) as usize)
                    .collect();
                pairs.push((p.confidence, predicted == user.truth[i]));
            }
        }
        let n = pairs.len() as f32;
        let accuracy = pairs.iter().filter(|p| p.1).count() as f32 / n;
        let confidence = pairs.iter().map(|p| p.0).sum::<f32>() / n;
        assert!(
            (accuracy - confidence).abs() <= 0.1,
            "{kind:?}: accuracy {accuracy:.3}, mean confidence {confidence:.3}"
        );
        let mut ece = 0.0;
        for b in 0..5 {
            let (lo, hi) = (b as f32 / 5.0, (b + 1) as f32 / 5.0);
            let bin: Vec<&(f32, bool)> = pairs
                .iter()
                .filter(|p| p.0 >= lo && (p.0 < hi || b == 4))
                .collect();
            if bin.is_empty() {
                continue;
            }
            let acc = bin.iter().filter(|p| p.1).count() as f32 / bin.len() as f32;
            let conf = bin.iter().map(|p| p.0).sum::<f32>() / bin.len() as f32;
            ece += (acc - conf).abs() * bin.len() as f32 / n;
        }
        eprintln!("{kind:?}: accuracy {accuracy:.3}, confidence {confidence:.3}, ECE {ece:.3}");
        assert!(ece <= 0.1, "{kind:?}: expected calibration error {ece:.3}");
    }
}

#[test]
fn first_questions_spread_over_artists_and_follow_the_model() {
    let data = sample();
    let picks = rank_questions(None, &data.tracks, 12);
    assert_eq!(picks.len(), 12);
    let artists: BTreeSet<String> = picks
        .iter()
        .map(|&i| data.tracks[i].track.artist_names())
        .collect();
    assert!(artists.len() >= 10, "diverse first questions: {artists:?}");
    assert_eq!(
        picks.iter().collect::<BTreeSet<_>>().len(),
        12,
        "no repeats"
    );

    let (model, tracks, _) = train_layer(&data, 1, 8, &TrainConfig::default());
    let picks = rank_questions(Some(&model), &tracks, 10);
    assert_eq!(picks.len(), 10);
    assert!(picks.iter().all(|&i| i < tracks.len()));
    // The model's ranking favours tracks it is unsure of over the ones it is surest of.
    let preds = model.predict(&tracks);
    let asked: f32 = picks.iter().map(|&i| preds[i].confidence).sum::<f32>() / 10.0;
    let all: f32 = preds.iter().map(|p| p.confidence).sum::<f32>() / preds.len() as f32;
    assert!(
        asked < all,
        "asked about confidence {asked:.3} < mean {all:.3}"
    );
    assert!(rank_questions(None, &[], 5).is_empty());
}

#[test]
fn demo_layer_learns_from_the_questions_it_asks() {
    let data = sample();
    let layer = &demo_layers()[0];
    let (idx, truth) = layer_truth(&data, layer).unwrap();
    let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();
    let mut answered = Vec::new();
    let classes: Vec<SublistId> = (0..layer.sublists.len() as i64).map(SublistId).collect();
    let learned = sublist::tools::demo::learn_layer(
        &Compute::cpu(),
        layer.kind,
        &classes,
        &tracks,
        30,
        &mut |i| {
            answered.push(i);
            truth[i].clone()
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        learned.asked, answered,
        "every question asked was answered once"
    );
    assert_eq!(learned.asked.iter().collect::<BTreeSet<_>>().len(), 30);
    assert_eq!(learned.model.metrics().labels, 30);
    let rest: Vec<usize> = (0..tracks.len())
        .filter(|i| !learned.asked.contains(i))
        .collect();
    let preds = learned
        .model
        .predict(&rest.iter().map(|&i| tracks[i].clone()).collect::<Vec<_>>());
    let right = preds
        .iter()
        .zip(&rest)
        .filter(|(p, i)| p.label == Label::one(SublistId(truth[**i][0] as i64)))
        .count();
    assert!(
        right as f32 / rest.len() as f32 > 0.7,
        "sorts the rest well: {right}/{}",
        rest.len()
    );
}

#[test]
fn a_raised_stop_flag_ends_training_as_stopped() {
    let data = sample();
    let layer = &demo_layers()[0];
    let (idx, truth) = layer_truth(&data, layer).unwrap();
    let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();
    let config = TrainConfig::default();
    let stop = config.stop.clone();
    let result = learn::train(
        &Compute::cpu(),
        layer.kind,
        &ids(layer.sublists.len()),
        &tracks,
        &truth,
        &config,
        // Raised from inside the first progress report, as a cancelled job raises it.
        &mut |_| stop.raise(),
    );
    assert!(matches!(result, Err(LearnError::Stopped)), "{result:?}");
    // The same settings without the flag train.
    let fresh = TrainConfig::default();
    assert!(
        learn::train(
            &Compute::cpu(),
            layer.kind,
            &ids(layer.sublists.len()),
            &tracks,
            &truth,
            &fresh,
            &mut |_| {},
        )
        .is_ok()
    );
}
