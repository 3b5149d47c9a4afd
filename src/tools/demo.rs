//! `sublist demo`: the whole learning pipeline, offline, on real playlists bundled with the
//! program. A simulated member with one layer of each kind answers the active questions from
//! the playlists' contents; each layer is trained, the remaining tracks are sorted, and every
//! sublist is printed with its tracks' confidence and the accuracy against the truth.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::eval::{Playlists, load_playlists};
use crate::app::App;
use crate::config::PipelineConfig;
use crate::domain::{
    Label, LabelSource, Layer, LayerKind, LikedTrack, MemberId, SublistId, Track, TrackId,
};
use crate::jobs::{DevicePool, Queue};
use crate::learn::{self, Compute, Progress, TrainConfig, TrainedModel};
use crate::store::{Store, StoredModel};

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
    classes: &[SublistId],
    tracks: &[LikedTrack],
    questions: usize,
    answer: &mut dyn FnMut(usize) -> Vec<usize>,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<LearnedLayer> {
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
            classes,
            &train,
            &labels,
            &TrainConfig::default(),
            progress,
        )?);
    }
    let model = model.context("no questions were asked")?;
    Ok(LearnedLayer { model, asked })
}

/// One emoji per sublist, in order.
const EMOJI: [&str; 8] = ["🎸", "💃", "🔥", "🌶️", "🎧", "🚗", "🌙", "🎺"];

/// Runs the demo: a local Spotify serves the bundled sample as the member's Liked Songs; the
/// bot links, syncs and fetches audio descriptors through its production Spotify code; the
/// simulated member answers the active questions of each layer; each layer's model is trained
/// and stored; the app sorts the motherlist and writes the sublists to the local Spotify; the
/// resulting playlists are printed with confidence and accuracy against the truth.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data = load_playlists(SAMPLE_CSV.as_bytes()).context("reading the bundled sample")?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_pipeline(args, data))
}

async fn run_pipeline(args: DemoArgs, data: Playlists) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let dir = tempfile::TempDir::new()?;
    let store = Store::open_at(&dir.path().join("demo.db"), &rand::random()).await?;
    let member = MemberId(1);
    let catalogue: Vec<Track> = data.tracks.iter().map(|l| l.track.clone()).collect();
    let demo = crate::spotify::demo::start(store.clone(), member, &catalogue).await?;
    let compute = Compute::cpu();
    let app = App::new(
        store.clone(),
        demo.spotify.clone(),
        Queue::new(store.clone(), 1),
        DevicePool::new(vec![compute.clone()])?,
        PipelineConfig {
            sync_interval: std::time::Duration::from_secs(300),
            retrain_after_labels: u32::MAX,
            refresh_cooldown: std::time::Duration::from_secs(60),
            playlist_check_interval: std::time::Duration::from_secs(6 * 3600),
        },
    );
    let sync = demo.spotify.sync_motherlist(member, &|_| {}).await?;
    let audio = demo.spotify.fill_audio(10_000).await?;
    println!(
        "A member linked a (local) Spotify account whose Liked Songs are {} tracks from {} real playlists\n\
         (bundled sample of spotify_songs.csv). Synced in {} requests; audio descriptors for {} tracks in {} requests.",
        sync.new_tracks.len(),
        data.playlists.len(),
        sync.requests,
        audio.found,
        audio.requests,
    );
    println!(
        "They answer {} questions per layer, chosen by the active ranking.\n",
        args.questions
    );
    let liked = store.liked_tracks(member).await?;
    for spec in demo_layers() {
        let layer = store
            .create_layer(member, spec.name, spec.kind.rules())
            .await?;
        for (i, name) in spec.sublists.iter().enumerate() {
            store.add_sublist(layer.id, name, EMOJI[i]).await?;
        }
        let layer = store
            .layer(layer.id)
            .await?
            .context("the layer was just made")?;
        let classes: Vec<SublistId> = layer.sublists.iter().map(|s| s.id).collect();
        let (idx, truth) = layer_truth(&data, &spec)?;
        let tracks: Vec<LikedTrack> = idx.iter().map(|&t| data.tracks[t].clone()).collect();

        // The member answers the active questions; each round retrains.
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} epochs {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(spec.name);
        let (kind, questions, learn_classes) = (spec.kind, args.questions, classes.clone());
        let compute = compute.clone();
        let (learn_tracks, learn_truth, learn_bar) = (tracks.clone(), truth.clone(), bar.clone());
        let learned = tokio::task::spawn_blocking(move || {
            learn_layer(
                &compute,
                kind,
                &learn_classes,
                &learn_tracks,
                questions,
                &mut |i| learn_truth[i].clone(),
                &mut |p| {
                    learn_bar.set_length(p.epochs as u64);
                    learn_bar.set_position(p.epoch as u64);
                    if let Some(a) = p.held_out_accuracy {
                        learn_bar.set_message(format!("held-out accuracy {a:.2}"));
                    }
                },
            )
        })
        .await??;
        bar.finish_and_clear();
        let to_label = |set: &[usize]| Label::from_set(set.iter().map(|&c| classes[c]).collect());
        for &i in &learned.asked {
            store
                .set_label(
                    &layer,
                    &tracks[i].track.id,
                    &to_label(&truth[i]),
                    LabelSource::Member,
                    None,
                )
                .await?;
        }
        let model = learned.model;
        store
            .save_model(&StoredModel {
                layer: layer.id,
                feature_schema: learn::FEATURE_SCHEMA,
                weights: model.to_bytes()?,
                metrics: serde_json::to_value(model.metrics())?,
                labels_used: learned.asked.len() as u32,
                trained_at: store.now(),
                device: Compute::cpu().name().to_string(),
            })
            .await?;

        // The app sorts the whole motherlist with the stored model and writes the playlists.
        let outcome = app.sort_layer(member, &layer, &liked, true).await?;
        let shown = Shown {
            layer: &layer,
            kind: spec.kind,
            model: &model,
            tracks: &tracks,
            truth: &truth,
            asked: &learned.asked,
            outcome: &outcome,
            all: args.all,
        };
        shown.print(&demo, &store, &liked).await?;
    }
    println!(
        "Done in {:.1} s on the CPU, offline: the playlists above are on the local Spotify, written by the bot's own playlist upkeep.",
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// One layer after sorting, for printing.
struct Shown<'a> {
    layer: &'a Layer,
    kind: LayerKind,
    model: &'a TrainedModel,
    /// The tracks of the layer's playlists, and their true sublists (class indices).
    tracks: &'a [LikedTrack],
    truth: &'a [Vec<usize>],
    /// Indices into `tracks` the member was asked about.
    asked: &'a [usize],
    outcome: &'a crate::app::LayerOutcome,
    all: bool,
}

impl Shown<'_> {
    /// Prints each sublist's playlist as it is on the (local) Spotify, with the model's
    /// confidence per track, and the accuracy against the real playlists.
    async fn print(
        &self,
        demo: &crate::spotify::demo::Demo,
        store: &Store,
        liked: &[LikedTrack],
    ) -> anyhow::Result<()> {
        let rules = self.kind.rules();
        let m = self.model.metrics();
        println!(
            "Layer “{}” ({}): {} sublists, {} questions asked, model held-out accuracy {}.",
            self.layer.name,
            rules.describe(),
            self.layer.sublists.len(),
            self.asked.len(),
            m.held_out_accuracy
                .map_or("n/a".to_string(), |a| format!("{a:.2}")),
        );
        let predictions = self.model.predict(liked);
        let confidence: HashMap<&TrackId, f32> = liked
            .iter()
            .zip(&predictions)
            .map(|(l, p)| (&l.track.id, p.confidence))
            .collect();
        let labels: HashMap<TrackId, Label> = store
            .labels(self.layer.id)
            .await?
            .into_iter()
            .map(|l| (l.track, l.label))
            .collect();
        let layer = store
            .layer(self.layer.id)
            .await?
            .context("the layer exists")?;
        for s in &layer.sublists {
            let Some(pid) = &s.playlist_id else {
                println!("  {} {}: no tracks yet", s.emoji, s.name);
                continue;
            };
            let on_spotify = demo.local.playlist_tracks(pid).unwrap_or_default();
            println!(
                "  {} {} (a private playlist on Spotify): {} tracks",
                s.emoji,
                s.name,
                on_spotify.len()
            );
            let mut lines = Vec::new();
            for id in &on_spotify {
                let name = match store.track(id).await? {
                    Some(t) => format!("{} — {}", t.artist_names(), t.name),
                    None => id.to_string(),
                };
                lines.push((confidence.get(id).copied().unwrap_or(1.0), name));
            }
            lines.sort_by(|a, b| b.0.total_cmp(&a.0));
            let shown = if self.all { lines.len() } else { 5 };
            for (c, line) in lines.iter().take(shown) {
                println!("     {c:.2}  {line}");
            }
            if lines.len() > shown {
                println!("     … and {} more", lines.len() - shown);
            }
        }
        if !rules.complete {
            let void = labels.values().filter(|l| l.is_void()).count();
            println!(
                "  {} the void: {void} tracks (never written to Spotify)",
                crate::domain::VOID_EMOJI
            );
        }
        // The model's decisions on the layer's tracks it was not asked about, against the
        // real playlists; and how many of those it was sure enough to place without asking.
        let classes: Vec<SublistId> = layer.sublists.iter().map(|s| s.id).collect();
        let asked: HashSet<usize> = self.asked.iter().copied().collect();
        let decided: HashMap<&TrackId, &learn::Prediction> = liked
            .iter()
            .zip(&predictions)
            .map(|(l, p)| (&l.track.id, p))
            .collect();
        let (mut n, mut right, mut f1, mut placed, mut placed_right) =
            (0usize, 0usize, 0f32, 0usize, 0usize);
        for (j, t) in self.tracks.iter().enumerate() {
            let Some(p) = decided.get(&t.track.id).filter(|_| !asked.contains(&j)) else {
                continue;
            };
            let got: Vec<usize> = classes
                .iter()
                .enumerate()
                .filter(|(_, c)| p.label.contains(**c))
                .map(|(i, _)| i)
                .collect();
            n += 1;
            right += usize::from(got == self.truth[j]);
            f1 += learn::set_f1(&got, &self.truth[j]);
            if labels.contains_key(&t.track.id) {
                placed += 1;
                placed_right += usize::from(got == self.truth[j]);
            }
        }
        let n_f = n.max(1) as f32;
        let (metric, value) = if rules.mutual {
            ("accuracy", right as f32 / n_f)
        } else {
            ("samples-F1", f1 / n_f)
        };
        println!(
            "  {metric} {value:.3} against the real playlists on the {n} tracks it was not asked about;\n  \
             {placed} of them were sure enough (confidence ≥ 0.70) to be sorted without asking, \
             {placed_right} of those exactly right. {} liked tracks in all wait for an answer.\n",
            self.outcome.waiting.len()
        );
        Ok(())
    }
}
