//! `sublist eval`: the protocol of `eval/README.md` (simulated users built from real playlists,
//! four layer cases, two feature sets, k sublists, b labels per sublist), one Markdown row per
//! cell, plus the same budget spent on active questions against random ones. The data set the
//! protocol names is built in (`eval/spotify_songs.csv.gz`, with its source note beside it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::domain::{
    AUDIO_DESCRIPTORS, AudioFeatures, LayerKind, LikedTrack, ReleasePrecision, SublistId, Track,
    TrackId,
};
use crate::learn::{self, Compute, TrainConfig, TrainedModel};

/// Arguments of `sublist eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// A playlists CSV, plain or gzip (columns as in spotify_songs.csv) [default: the built-in
    /// spotify_songs.csv]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Simulated users per cell.
    #[arg(long, default_value_t = 60)]
    pub users: usize,
    /// Users per cell for the active-versus-random comparison (0: skip it).
    #[arg(long)]
    pub active_users: Option<usize>,
    /// Only these cases (MC, MI, NC, NI), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// Seed of the simulated users.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Override the L2 penalty (tuning).
    #[arg(long, hide = true)]
    pub l2: Option<f32>,
    /// Override the learning rate (tuning).
    #[arg(long, hide = true)]
    pub lr: Option<f64>,
    /// Override the most epochs (tuning).
    #[arg(long, hide = true)]
    pub epochs: Option<usize>,
    /// Override the hidden width (tuning).
    #[arg(long, hide = true)]
    pub hidden: Option<usize>,
    /// Override the hidden layer's L2 (tuning).
    #[arg(long, hide = true)]
    pub dense_l2: Option<f32>,
    /// Override the initial trust in album, artist and neighbour votes (tuning).
    #[arg(long, hide = true, value_delimiter = ',')]
    pub trust: Vec<f32>,
}

/// The evaluation data set, `spotify_songs.csv` compressed with gzip (source and licence in
/// `eval/README.md`).
const SPOTIFY_SONGS_GZ: &[u8] = include_bytes!("eval/spotify_songs.csv.gz");

/// The built-in evaluation data set, unpacked: the CSV text of `spotify_songs.csv`.
pub fn spotify_songs_csv() -> anyhow::Result<Vec<u8>> {
    gunzip(SPOTIFY_SONGS_GZ).context("unpacking the built-in spotify_songs.csv")
}

/// The playlists CSV that `eval` and `bench` read: `path` (plain, or gzip-compressed), or the
/// built-in data set. Returns its text and a name for messages.
pub fn read_data(path: Option<&Path>) -> anyhow::Result<(Vec<u8>, String)> {
    let Some(path) = path else {
        return Ok((
            spotify_songs_csv()?,
            "the built-in spotify_songs.csv".into(),
        ));
    };
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("opening {name}"))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let csv = gunzip(&bytes).with_context(|| format!("unpacking {name} (gzip)"))?;
        Ok((csv, name))
    } else {
        Ok((bytes, name))
    }
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// Real playlists: the stand-in for a member's liked songs and their sublists.
#[derive(Clone, Debug)]
pub struct Playlists {
    /// Distinct tracks.
    pub tracks: Vec<LikedTrack>,
    /// (name, indices into `tracks`) per playlist, in order of first appearance.
    pub playlists: Vec<(String, Vec<usize>)>,
    /// Whether the file carries the audio descriptors.
    pub has_audio: bool,
}

/// The date the liked-at time is set to for CSV tracks (the data set's publication date).
fn csv_added_at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 21, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Reads a playlists CSV. `track_id`, `playlist_id` and `playlist_name` are required; every
/// other column is optional and a missing one means that feature is absent.
pub fn load_playlists(reader: impl Read) -> anyhow::Result<Playlists> {
    let mut rdr = csv::Reader::from_reader(reader);
    let headers = rdr.headers().context("reading the CSV header")?.clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let required = |name: &str| {
        col(name).with_context(|| format!("the CSV has no `{name}` column, which is required"))
    };
    let (c_id, c_pid, c_pname) = (
        required("track_id")?,
        required("playlist_id")?,
        required("playlist_name")?,
    );
    let c_name = col("track_name");
    let c_artist = col("track_artist");
    let c_album = col("track_album_id");
    let c_album_name = col("track_album_name");
    let c_date = col("track_album_release_date");
    let c_duration = col("duration_ms");
    let c_audio: Vec<Option<usize>> = AUDIO_DESCRIPTORS.iter().map(|n| col(n)).collect();
    let has_audio = c_audio.iter().all(Option::is_some);

    let mut tracks = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut playlists: Vec<(String, BTreeSet<usize>)> = Vec::new();
    let mut by_playlist: HashMap<String, usize> = HashMap::new();
    for (row, rec) in rdr.records().enumerate() {
        let line = row + 2;
        let rec = rec.with_context(|| format!("reading CSV line {line}"))?;
        let get = |c: Option<usize>| {
            c.and_then(|c| rec.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let raw_id = get(Some(c_id)).unwrap_or("");
        let id =
            TrackId::parse(raw_id).with_context(|| format!("CSV line {line}: bad track_id"))?;
        let Some(pid) = get(Some(c_pid)) else {
            bail!("CSV line {line}: empty playlist_id");
        };
        let t = *by_id.entry(id.as_str().to_string()).or_insert_with(|| {
            let mut track = Track::bare(id.clone(), get(c_name).unwrap_or(""));
            if let Some(a) = get(c_artist) {
                track.artists = vec![(None, a.to_string())];
            }
            track.album_id = get(c_album).map(str::to_string);
            track.album_name = get(c_album_name).map(str::to_string);
            track.release_date = get(c_date).map(str::to_string);
            track.release_precision = track
                .release_date
                .as_deref()
                .and_then(ReleasePrecision::of_date);
            track.duration_ms = get(c_duration)
                .and_then(|d| d.parse::<f64>().ok())
                .map(|d| d as u32);
            if has_audio {
                let mut v = [0f32; 11];
                let mut ok = true;
                for (slot, c) in v.iter_mut().zip(&c_audio) {
                    match get(*c).and_then(|x| x.parse::<f32>().ok()) {
                        Some(x) if x.is_finite() => *slot = x,
                        _ => ok = false,
                    }
                }
                if ok {
                    track.audio = Some(AudioFeatures::from_values(v));
                }
            }
            tracks.push(LikedTrack {
                track,
                added_at: csv_added_at(),
            });
            tracks.len() - 1
        });
        let p = *by_playlist.entry(pid.to_string()).or_insert_with(|| {
            playlists.push((
                get(Some(c_pname)).unwrap_or(pid).to_string(),
                BTreeSet::new(),
            ));
            playlists.len() - 1
        });
        playlists[p].1.insert(t);
    }
    if tracks.is_empty() {
        bail!("the CSV has no rows");
    }
    Ok(Playlists {
        tracks,
        playlists: playlists
            .into_iter()
            .map(|(n, s)| (n, s.into_iter().collect()))
            .collect(),
        has_audio,
    })
}

/// The feature sets of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureSet {
    Runtime,
    RuntimeAudio,
}

impl FeatureSet {
    pub fn name(self) -> &'static str {
        match self {
            FeatureSet::Runtime => "runtime",
            FeatureSet::RuntimeAudio => "runtime+audio",
        }
    }
}

/// One simulated user in one cell: tracks, true label sets (class indices), and which are
/// labelled.
#[derive(Clone, Debug)]
pub struct SimUser {
    pub tracks: Vec<LikedTrack>,
    pub truth: Vec<Vec<usize>>,
    pub labelled: Vec<usize>,
    pub test: Vec<usize>,
    pub playlist_names: Vec<String>,
}

/// Builds one simulated user as `eval/README.md` says.
pub fn simulate_user(
    data: &Playlists,
    eligible: &[usize],
    kind: LayerKind,
    features: FeatureSet,
    k: usize,
    b: usize,
    rng: &mut StdRng,
) -> SimUser {
    let owned: Vec<usize> = eligible.choose_multiple(rng, k).copied().collect();
    let mut sets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (class, &p) in owned.iter().enumerate() {
        for &t in &data.playlists[p].1 {
            sets.entry(t).or_default().push(class);
        }
    }
    let rules = kind.rules();
    let mut items: Vec<(usize, Vec<usize>)> = sets
        .into_iter()
        .filter(|(_, s)| !rules.mutual || s.len() == 1)
        .collect();
    if !rules.complete {
        let own: BTreeSet<usize> = items.iter().map(|(t, _)| *t).collect();
        let owned_set: BTreeSet<usize> = owned.iter().copied().collect();
        let in_owned: BTreeSet<usize> = owned
            .iter()
            .flat_map(|&p| data.playlists[p].1.iter().copied())
            .collect();
        let others: Vec<usize> = data
            .playlists
            .iter()
            .enumerate()
            .filter(|(p, _)| !owned_set.contains(p))
            .flat_map(|(_, (_, ts))| ts.iter().copied())
            .filter(|t| !in_owned.contains(t) && !own.contains(t))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let voids = (items.len() as f32 * 0.25).round() as usize;
        for t in others.choose_multiple(rng, voids) {
            items.push((*t, Vec::new()));
        }
    }
    let tracks: Vec<LikedTrack> = items
        .iter()
        .map(|(t, _)| {
            let mut l = data.tracks[*t].clone();
            if features == FeatureSet::Runtime {
                l.track.audio = None;
            }
            l
        })
        .collect();
    let truth: Vec<Vec<usize>> = items.into_iter().map(|(_, s)| s).collect();
    let mut labelled = BTreeSet::new();
    let mut groups: Vec<Vec<usize>> = (0..k)
        .map(|c| {
            (0..truth.len())
                .filter(|&i| truth[i].contains(&c))
                .collect()
        })
        .collect();
    if !rules.complete {
        groups.push((0..truth.len()).filter(|&i| truth[i].is_empty()).collect());
    }
    for mut g in groups {
        g.shuffle(rng);
        let picks: Vec<usize> = g
            .into_iter()
            .filter(|i| !labelled.contains(i))
            .take(b)
            .collect();
        labelled.extend(picks);
    }
    let test = (0..truth.len()).filter(|i| !labelled.contains(i)).collect();
    SimUser {
        tracks,
        truth,
        labelled: labelled.into_iter().collect(),
        test,
        playlist_names: owned.iter().map(|&p| data.playlists[p].0.clone()).collect(),
    }
}

/// The cell's metric for predictions on `idx` (accuracy for mutual layers, samples-F1 else).
pub fn score(model: &TrainedModel, user: &SimUser, idx: &[usize]) -> f32 {
    if idx.is_empty() {
        return 0.0;
    }
    let tracks: Vec<LikedTrack> = idx.iter().map(|&i| user.tracks[i].clone()).collect();
    let classes = model.classes();
    let preds = model.predict(&tracks);
    let sum: f32 = preds
        .iter()
        .zip(idx)
        .map(|(p, &i)| {
            let set: Vec<usize> = p
                .label
                .sublists()
                .iter()
                .filter_map(|s| classes.iter().position(|c| c == s))
                .collect();
            learn::set_f1(&set, &user.truth[i])
        })
        .sum();
    sum / idx.len() as f32
}

/// Trains on `labelled` indices of the user.
pub fn train_on(
    compute: &Compute,
    kind: LayerKind,
    user: &SimUser,
    k: usize,
    labelled: &[usize],
    config: &TrainConfig,
) -> anyhow::Result<TrainedModel> {
    let classes: Vec<SublistId> = (0..k as i64).map(SublistId).collect();
    let tracks: Vec<LikedTrack> = labelled.iter().map(|&i| user.tracks[i].clone()).collect();
    let labels: Vec<Vec<usize>> = labelled.iter().map(|&i| user.truth[i].clone()).collect();
    Ok(learn::train(
        compute,
        kind,
        &classes,
        &tracks,
        &labels,
        config,
        &mut |_| {},
    )?)
}

/// Active versus random questions at the same budget, on one held-out half of the user's
/// tracks. Returns (active score, random score).
pub fn active_vs_random(
    compute: &Compute,
    kind: LayerKind,
    user: &SimUser,
    k: usize,
    budget: usize,
    config: &TrainConfig,
    rng: &mut StdRng,
) -> anyhow::Result<(f32, f32)> {
    let mut all: Vec<usize> = (0..user.tracks.len()).collect();
    all.shuffle(rng);
    let (pool, test) = all.split_at(all.len() / 2);
    let budget = budget.min(pool.len());
    let random: Vec<usize> = pool.choose_multiple(rng, budget).copied().collect();
    let random_model = train_on(compute, kind, user, k, &random, config)?;
    let random_score = score(&random_model, user, test);

    let quick = TrainConfig {
        folds: 0,
        ..config.clone()
    };
    let rounds = 4;
    let mut asked: Vec<usize> = Vec::new();
    let mut model: Option<TrainedModel> = None;
    for round in 0..rounds {
        let want = budget * (round + 1) / rounds;
        let remaining: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|i| !asked.contains(i))
            .collect();
        let cands: Vec<LikedTrack> = remaining.iter().map(|&i| user.tracks[i].clone()).collect();
        let picks = learn::rank_questions(model.as_ref(), &cands, want - asked.len());
        asked.extend(picks.into_iter().map(|j| remaining[j]));
        let cfg = if round + 1 == rounds { config } else { &quick };
        model = Some(train_on(compute, kind, user, k, &asked, cfg)?);
    }
    let active_score = model.map_or(0.0, |m| score(&m, user, test));
    Ok((active_score, random_score))
}

/// The best baseline mean of each cell in `eval/README.md` (40 users, seed 0). Measured values
/// (one happens to be close to 1/π).
#[allow(clippy::approx_constant)]
pub const BEST_BASELINE: [(&str, &str, usize, usize, f32); 32] = [
    ("MC", "runtime", 4, 5, 0.606),
    ("MC", "runtime", 4, 25, 0.742),
    ("MC", "runtime", 8, 5, 0.466),
    ("MC", "runtime", 8, 25, 0.580),
    ("MC", "runtime+audio", 4, 5, 0.704),
    ("MC", "runtime+audio", 4, 25, 0.844),
    ("MC", "runtime+audio", 8, 5, 0.600),
    ("MC", "runtime+audio", 8, 25, 0.748),
    ("MI", "runtime", 4, 5, 0.487),
    ("MI", "runtime", 4, 25, 0.589),
    ("MI", "runtime", 8, 5, 0.371),
    ("MI", "runtime", 8, 25, 0.473),
    ("MI", "runtime+audio", 4, 5, 0.561),
    ("MI", "runtime+audio", 4, 25, 0.720),
    ("MI", "runtime+audio", 8, 5, 0.485),
    ("MI", "runtime+audio", 8, 25, 0.609),
    ("NC", "runtime", 4, 5, 0.588),
    ("NC", "runtime", 4, 25, 0.727),
    ("NC", "runtime", 8, 5, 0.434),
    ("NC", "runtime", 8, 25, 0.568),
    ("NC", "runtime+audio", 4, 5, 0.672),
    ("NC", "runtime+audio", 4, 25, 0.836),
    ("NC", "runtime+audio", 8, 5, 0.579),
    ("NC", "runtime+audio", 8, 25, 0.675),
    ("NI", "runtime", 4, 5, 0.434),
    ("NI", "runtime", 4, 25, 0.514),
    ("NI", "runtime", 8, 5, 0.318),
    ("NI", "runtime", 8, 25, 0.364),
    ("NI", "runtime+audio", 4, 5, 0.451),
    ("NI", "runtime+audio", 4, 25, 0.586),
    ("NI", "runtime+audio", 8, 5, 0.350),
    ("NI", "runtime+audio", 8, 25, 0.463),
];

fn best_baseline(case: &str, features: &str, k: usize, b: usize) -> Option<f32> {
    BEST_BASELINE
        .iter()
        .find(|r| r.0 == case && r.1 == features && r.2 == k && r.3 == b)
        .map(|r| r.4)
}

fn mean(xs: &[f32]) -> f32 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f32>() / xs.len() as f32
    }
}

/// One user's score, and (active, random) scores when compared.
type UserOutcome = (f32, Option<(f32, f32)>);

/// Runs the protocol and prints the table.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (csv, name) = read_data(args.data.as_deref())?;
    let data = load_playlists(csv.as_slice()).with_context(|| format!("reading {name}"))?;
    drop(csv);
    let eligible: Vec<usize> = (0..data.playlists.len())
        .filter(|&p| data.playlists[p].1.len() >= 60)
        .collect();
    if eligible.len() < 8 {
        bail!(
            "{name} has {} playlists with at least 60 tracks; the protocol needs 8",
            eligible.len()
        );
    }
    let mut config = TrainConfig::default();
    if let Some(l2) = args.l2 {
        config.l2 = l2;
    }
    if let Some(lr) = args.lr {
        config.learning_rate = lr;
    }
    if let Some(e) = args.epochs {
        config.max_epochs = e;
    }
    if let Some(h) = args.hidden {
        config.hidden = h;
    }
    if let Some(l) = args.dense_l2 {
        config.dense_l2 = l;
    }
    if args.trust.len() == config.trust.len() {
        config.trust.copy_from_slice(&args.trust);
    }
    let compute = Compute::cpu();
    let active_users = args.active_users.unwrap_or(args.users);
    let feature_sets: Vec<FeatureSet> = if data.has_audio {
        vec![FeatureSet::Runtime, FeatureSet::RuntimeAudio]
    } else {
        vec![FeatureSet::Runtime]
    };
    eprintln!(
        "{} tracks, {} playlists ({} eligible); {} users per cell; training on {}",
        data.tracks.len(),
        data.playlists.len(),
        eligible.len(),
        args.users,
        compute.name()
    );
    let started = std::time::Instant::now();
    println!("| case | features | k | labels/sublist | model | metric | mean |");
    println!("|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    let mut active_summary: BTreeMap<&str, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for kind in LayerKind::ALL {
        if !args.cases.is_empty()
            && !args
                .cases
                .iter()
                .any(|c| c.eq_ignore_ascii_case(kind.code()))
        {
            continue;
        }
        let metric = if kind.rules().mutual {
            "accuracy"
        } else {
            "samples-F1"
        };
        for &fs in &feature_sets {
            for k in [4usize, 8] {
                for b in [5usize, 25] {
                    let results: Vec<anyhow::Result<UserOutcome>> = (0..args.users)
                        .into_par_iter()
                        .map(|u| {
                            let mut rng = StdRng::seed_from_u64(
                                args.seed.wrapping_mul(1_000_003) ^ ((k as u64) << 40) ^ u as u64,
                            );
                            let user = simulate_user(&data, &eligible, kind, fs, k, b, &mut rng);
                            let model =
                                train_on(&compute, kind, &user, k, &user.labelled, &config)?;
                            let s = score(&model, &user, &user.test);
                            let ar = if u < active_users {
                                let mut r2 = StdRng::seed_from_u64(rng.random());
                                Some(active_vs_random(
                                    &compute,
                                    kind,
                                    &user,
                                    k,
                                    user.labelled.len(),
                                    &config,
                                    &mut r2,
                                )?)
                            } else {
                                None
                            };
                            Ok((s, ar))
                        })
                        .collect();
                    let mut scores = Vec::new();
                    let (mut act, mut rnd) = (Vec::new(), Vec::new());
                    for r in results {
                        let (s, ar) = r?;
                        scores.push(s);
                        if let Some((a, r)) = ar {
                            act.push(a);
                            rnd.push(r);
                        }
                    }
                    let m = mean(&scores);
                    let (code, fname) = (kind.code(), fs.name());
                    println!("| {code} | {fname} | {k} | {b} | sublist | {metric} | {m:.3} |");
                    if !act.is_empty() {
                        println!(
                            "| {code} | {fname} | {k} | {b} | sublist, active questions | {metric} | {:.3} |",
                            mean(&act)
                        );
                        println!(
                            "| {code} | {fname} | {k} | {b} | sublist, random questions | {metric} | {:.3} |",
                            mean(&rnd)
                        );
                        let e = active_summary.entry(code).or_default();
                        e.0.push(mean(&act));
                        e.1.push(mean(&rnd));
                    }
                    summary.push((code, fname, k, b, m));
                }
            }
        }
    }
    println!();
    println!("| case | features | k | labels/sublist | sublist | best baseline | delta |");
    println!("|---|---|---|---|---|---|---|");
    let mut deltas = Vec::new();
    for (code, fname, k, b, m) in &summary {
        match best_baseline(code, fname, *k, *b) {
            Some(base) => {
                println!(
                    "| {code} | {fname} | {k} | {b} | {m:.3} | {base:.3} | {:+.3} |",
                    m - base
                );
                deltas.push(m - base);
            }
            None => println!("| {code} | {fname} | {k} | {b} | {m:.3} | | |"),
        }
    }
    if !deltas.is_empty() {
        let worst = deltas.iter().copied().fold(f32::INFINITY, f32::min);
        println!(
            "\nmean delta over {} cells: {:+.4}; worst cell: {:+.3}",
            deltas.len(),
            mean(&deltas),
            worst
        );
    }
    if !active_summary.is_empty() {
        println!("\n| case | active questions | random questions | delta |");
        println!("|---|---|---|---|");
        let mut all = Vec::new();
        for (code, (a, r)) in &active_summary {
            println!(
                "| {code} | {:.3} | {:.3} | {:+.3} |",
                mean(a),
                mean(r),
                mean(a) - mean(r)
            );
            all.extend(a.iter().zip(r).map(|(a, r)| a - r));
        }
        println!("\nactive minus random, mean over cells: {:+.4}", mean(&all));
    }
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f32());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_required_column_is_a_clear_error() {
        let csv = "track_id,playlist_name\n6f807x0ima9a1j3VPbc7VN,Pop\n";
        let err = load_playlists(csv.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the CSV has no `playlist_id` column, which is required"
        );
    }

    #[test]
    fn optional_columns_may_be_missing() {
        let csv = "playlist_id,track_id,playlist_name,track_artist\n\
                   p1,6f807x0ima9a1j3VPbc7VN,Pop,Ed\n\
                   p2,6f807x0ima9a1j3VPbc7VN,Rock,Ed\n\
                   p2,0r7CVbZTWZgbTCYdfa2P31,Rock,Maroon\n";
        let d = load_playlists(csv.as_bytes()).unwrap();
        assert_eq!(d.tracks.len(), 2);
        assert!(!d.has_audio);
        assert_eq!(d.playlists[1], ("Rock".to_string(), vec![0, 1]));
        assert_eq!(d.tracks[0].track.artists, vec![(None, "Ed".to_string())]);
        assert!(d.tracks[0].track.album_id.is_none());
    }

    #[test]
    fn the_built_in_data_set_is_the_file_its_note_names() {
        use sha2::Digest;
        let csv = spotify_songs_csv().unwrap();
        let sha: String = sha2::Sha256::digest(&csv)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let note = include_str!("eval/README.md");
        assert!(
            note.contains(&format!("`{sha}`")),
            "sha256 {sha} is not in the note"
        );
        let data = load_playlists(csv.as_slice()).unwrap();
        assert_eq!((data.tracks.len(), data.playlists.len()), (28_356, 471));
        assert!(data.has_audio);
    }

    #[test]
    fn data_files_may_be_plain_or_gzip_and_a_missing_one_is_named() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = b"track_id,playlist_id,playlist_name\n6f807x0ima9a1j3VPbc7VN,p,P\n";
        let plain = dir.path().join("p.csv");
        std::fs::write(&plain, text).unwrap();
        let packed = dir.path().join("p.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(text).unwrap();
        std::fs::write(&packed, gz.finish().unwrap()).unwrap();
        for path in [&plain, &packed] {
            let (csv, name) = read_data(Some(path)).unwrap();
            assert_eq!(csv, text, "{name}");
        }
        let missing = dir.path().join("none.csv");
        let err = read_data(Some(&missing)).unwrap_err();
        assert_eq!(err.to_string(), format!("opening {}", missing.display()));
        let broken = dir.path().join("broken.csv.gz");
        std::fs::write(&broken, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        let err = read_data(Some(&broken)).unwrap_err();
        assert!(err.to_string().starts_with("unpacking"), "{err}");
    }

    #[test]
    fn a_bad_track_id_names_its_line() {
        let csv = "track_id,playlist_id,playlist_name\nnope,p,P\n";
        let err = load_playlists(csv.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "CSV line 2: bad track_id");
    }
}
