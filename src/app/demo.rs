//! `sublist demo`: the whole learning pipeline, offline, on real playlists bundled with the
//! program. A simulated member with one layer of each kind answers the active questions from
//! the playlists' contents; each layer is trained, the remaining tracks are sorted, and every
//! sublist is printed with its tracks' confidence and the accuracy against the truth.

use std::collections::BTreeSet;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::eval::{Playlists, load_playlists};
use crate::domain::{LayerKind, LikedTrack, SublistId};
use crate::learn::{self, Compute, Progress, TrainConfig, TrainedModel};

/// The bundled sample: seven real playlists (see `demo/README.md`).
pub const SAMPLE_CSV: &str = include_str!("demo/sample.csv");

/// Arguments of `sublist demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Questions the member answers per layer.
    #[arg(long, default_value_t = 36)]
    pub questions: usize,
    /// Print every sorted track, not only the five most confident per sublist.
    #[arg(long)]
    pub all: bool,
}

/// One layer of the simulated member.
#[derive(Clone, Debug)]
pub struct DemoLayer {
    pub name: &'static str,
    pub kind: LayerKind,
    /// The playlists that are its sublists.
    pub sublists: Vec<&'static str>,
}

/// The member's four layers, one of each kind.
pub fn demo_layers() -> Vec<DemoLayer> {
    vec![
        DemoLayer {
            name: "Mood",
            kind: LayerKind::MutualComplete,
            sublists: vec!["The Sound of Album Rock", "Dance Pop Tunes", "Trap 2020 🔥"],
        },
        DemoLayer {
            name: "Latin",
            kind: LayerKind::MutualIncomplete,
            sublists: vec![
                "LATIN POP 2020 🔥 Pop latino actual",
                "Urbano: Latino Vibes",
            ],
        },
        DemoLayer {
            name: "Style",
            kind: LayerKind::MultiComplete,
            sublists: vec![
                "LATIN POP 2020 🔥 Pop latino actual",
                "Classic Rock Drive",
                "The Sound of Album Rock",
                "Dance Pop Tunes",
            ],
        },
        DemoLayer {
            name: "Drive",
            kind: LayerKind::MultiIncomplete,
            sublists: vec![
                "The Sound of Album Rock",
                "Classic Rock Drive",
                "Dancefloor Beats",
            ],
        },
    ]
}

/// The tracks a layer sorts and their true class sets: complete layers sort the tracks of
/// their playlists; incomplete ones sort every liked track, and a track in none of their
/// playlists belongs in the void. Mutual layers leave out tracks their playlists share.
pub fn layer_truth(
    data: &Playlists,
    layer: &DemoLayer,
) -> anyhow::Result<(Vec<usize>, Vec<Vec<usize>>)> {
    let mut members = Vec::new();
    for name in &layer.sublists {
        let (_, tracks) = data
            .playlists
            .iter()
            .find(|(n, _)| n == name)
            .with_context(|| format!("the sample has no playlist “{name}”"))?;
        members.push(tracks.iter().copied().collect::<BTreeSet<usize>>());
    }
    let rules = layer.kind.rules();
    let mut idx = Vec::new();
    let mut truth = Vec::new();
    for t in 0..data.tracks.len() {
        let set: Vec<usize> = (0..members.len())
            .filter(|&c| members[c].contains(&t))
            .collect();
        if (rules.complete && set.is_empty()) || (rules.mutual && set.len() > 1) {
            continue;
        }
        idx.push(t);
        truth.push(set);
    }
    Ok((idx, truth))
}

/// What learning one layer produced.
pub struct LearnedLayer {
    pub model: TrainedModel,
    /// Indices (into the layer's tracks) the member was asked about, in order.
    pub asked: Vec<usize>,
}

/// Learns one layer by active questions: seeds with the model-free ranking, then asks in
/// rounds, retraining after each. `answer(i)` is the member's answer for track `i` (class
/// indices; empty is the void).
pub fn learn_layer(
    compute: &Compute,
    kind: LayerKind,
    classes: usize,
    tracks: &[LikedTrack],
    questions: usize,
    answer: &mut dyn FnMut(usize) -> Vec<usize>,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<LearnedLayer> {
    let ids: Vec<SublistId> = (0..classes as i64).map(SublistId).collect();
    let questions = questions.min(tracks.len());
    let rounds = 3;
    let mut asked: Vec<usize> = Vec::new();
    let mut labels: Vec<Vec<usize>> = Vec::new();
    let mut model: Option<TrainedModel> = None;
    for round in 0..rounds {
        let want = questions * (round + 1) / rounds;
        let remaining: Vec<usize> = (0..tracks.len()).filter(|i| !asked.contains(i)).collect();
        let candidates: Vec<LikedTrack> = remaining.iter().map(|&i| tracks[i].clone()).collect();
        for j in learn::rank_questions(model.as_ref(), &candidates, want - asked.len()) {
            let i = remaining[j];
            asked.push(i);
            labels.push(answer(i));
        }
        let train: Vec<LikedTrack> = asked.iter().map(|&i| tracks[i].clone()).collect();
        model = Some(learn::train(
            compute,
            kind,
            &ids,
            &train,
            &labels,
            &TrainConfig::default(),
            progress,
        )?);
    }
    let model = model.context("no questions were asked")?;
    Ok(LearnedLayer { model, asked })
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data = load_playlists(SAMPLE_CSV.as_bytes()).context("reading the bundled sample")?;
    let compute = Compute::cpu();
    println!(
        "A member liked {} tracks from {} real playlists (bundled sample of spotify_songs.csv).",
        data.tracks.len(),
        data.playlists.len()
    );
    println!(
        "They answer {} questions per layer, chosen by the active ranking.\n",
        args.questions
    );
    let started = std::time::Instant::now();
    for layer in demo_layers() {
        let (idx, truth) = layer_truth(&data, &layer)?;
        let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} epochs {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(layer.name);
        let learned = learn_layer(
            &compute,
            layer.kind,
            layer.sublists.len(),
            &tracks,
            args.questions,
            &mut |i| truth[i].clone(),
            &mut |p| {
                bar.set_length(p.epochs as u64);
                bar.set_position(p.epoch as u64);
                if let Some(a) = p.held_out_accuracy {
                    bar.set_message(format!("held-out accuracy {a:.2}"));
                }
            },
        )?;
        bar.finish_and_clear();
        let rest: Vec<usize> = (0..tracks.len())
            .filter(|i| !learned.asked.contains(i))
            .collect();
        let rest_tracks: Vec<LikedTrack> = rest.iter().map(|&i| tracks[i].clone()).collect();
        let preds = learned.model.predict(&rest_tracks);
        let rules = layer.kind.rules();
        println!(
            "Layer “{}” ({}): {} sublists, {} tracks, {} questions asked.",
            layer.name,
            rules.describe(),
            layer.sublists.len(),
            tracks.len(),
            learned.asked.len()
        );
        let m = learned.model.metrics();
        println!(
            "  model: {} labels, held-out accuracy {}, {} epochs, temperature {:.2}{}",
            m.labels,
            m.held_out_accuracy
                .map_or("n/a".to_string(), |a| format!("{a:.2}")),
            m.epochs,
            m.temperature,
            m.threshold.map_or(String::new(), |t| format!(
                ", extra-sublist threshold {t:.2}"
            ))
        );
        let mut groups: Vec<Vec<(f32, String)>> = vec![Vec::new(); layer.sublists.len() + 1];
        let (mut right, mut f1_sum, mut conf_sum) = (0usize, 0f32, 0f32);
        for (p, &i) in preds.iter().zip(&rest) {
            let set: Vec<usize> = p.label.sublists().iter().map(|s| s.0 as usize).collect();
            let line = format!(
                "{} — {}",
                tracks[i].track.artist_names(),
                tracks[i].track.name
            );
            if set.is_empty() {
                groups[layer.sublists.len()].push((p.confidence, line.clone()));
            }
            for &c in &set {
                groups[c].push((p.confidence, line.clone()));
            }
            right += usize::from(set == truth[i]);
            f1_sum += learn::set_f1(&set, &truth[i]);
            conf_sum += p.confidence;
        }
        for (g, items) in groups.iter_mut().enumerate() {
            let name = match layer.sublists.get(g) {
                Some(n) => *n,
                None if !rules.complete => "(the void)",
                None => continue,
            };
            items.sort_by(|a, b| b.0.total_cmp(&a.0));
            println!("  {name}: {} tracks", items.len());
            let shown = if args.all { items.len() } else { 5 };
            for (conf, line) in items.iter().take(shown) {
                println!("     {conf:.2}  {line}");
            }
            if items.len() > shown {
                println!("     … and {} more", items.len() - shown);
            }
        }
        let n = rest.len().max(1) as f32;
        let (metric, value) = if rules.mutual {
            ("accuracy", right as f32 / n)
        } else {
            ("samples-F1", f1_sum / n)
        };
        println!(
            "  {metric} on the {} tracks it sorted: {value:.3} (exact-set accuracy {:.3}, mean confidence {:.3})\n",
            rest.len(),
            right as f32 / n,
            conf_sum / n
        );
    }
    println!(
        "Done in {:.1} s on the CPU, offline.",
        started.elapsed().as_secs_f32()
    );
    Ok(())
}
