//! `sublist eval`: the protocol of `eval/README.md` (simulated users built from real playlists,
//! drawn at random or all of one genre, four layer cases, two feature sets, k sublists, b labels
//! per sublist). Every cell trains the model and the classical baselines on the same users and
//! prints each one's mean with a 95% interval, then the paired difference between the model and
//! the best baseline; optionally the same budget spent on active questions against random ones,
//! and a cross-validation figure on one taste's playlists (`--cv`). The data set the protocol
//! names is built in (`eval/spotify_songs.csv.gz`, with its source note beside it).

pub mod baselines;
mod stats;

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
    /// Seed of the simulated users. The model's settings were chosen on seeds 0 and 1; the
    /// table in eval/README.md is reported on seed 2.
    #[arg(long, default_value_t = 2)]
    pub seed: u64,
    /// Which draws of users to run: `any` (k playlists at random), `same-genre` (k playlists of
    /// one genre), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "any,same-genre")]
    pub protocols: Vec<String>,
    /// Only the model, without the baselines (faster, for comparing the model's settings).
    #[arg(long)]
    pub skip_baselines: bool,
    /// Instead of the cells: 5-fold cross-validation of a mutual complete layer on 7 playlists
    /// of one genre with 70 tracks each, repeated `--users` times (another draw each time).
    #[arg(long)]
    pub cv: bool,
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
    /// The `playlist_genre` values of each playlist's rows (empty without that column).
    pub genres: Vec<BTreeSet<String>>,
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
    let c_genre = col("playlist_genre");
    let c_audio: Vec<Option<usize>> = AUDIO_DESCRIPTORS.iter().map(|n| col(n)).collect();
    let has_audio = c_audio.iter().all(Option::is_some);

    let mut tracks = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut playlists: Vec<(String, BTreeSet<usize>)> = Vec::new();
    let mut genres: Vec<BTreeSet<String>> = Vec::new();
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
            genres.push(BTreeSet::new());
            playlists.len() - 1
        });
        playlists[p].1.insert(t);
        if let Some(g) = get(c_genre) {
            genres[p].insert(g.to_string());
        }
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
        genres,
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

/// How a simulated user's playlists are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// k eligible playlists at random.
    Any,
    /// k eligible playlists of one `playlist_genre`, chosen at random among the genres with at
    /// least k eligible playlists.
    SameGenre,
}

impl Protocol {
    pub const ALL: [Protocol; 2] = [Protocol::Any, Protocol::SameGenre];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Any => "any",
            Protocol::SameGenre => "same-genre",
        }
    }

    pub fn parse(s: &str) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
    }
}

/// The eligible playlists of each genre (a playlist whose rows carry two genres is in both).
pub fn genre_pools(data: &Playlists, eligible: &[usize]) -> BTreeMap<String, Vec<usize>> {
    let mut pools: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for &p in eligible {
        for g in &data.genres[p] {
            pools.entry(g.clone()).or_default().push(p);
        }
    }
    pools
}

/// The k playlists a user owns under `protocol`; `None` when no genre has k eligible ones.
pub fn draw_playlists(
    data: &Playlists,
    eligible: &[usize],
    protocol: Protocol,
    k: usize,
    rng: &mut StdRng,
) -> Option<Vec<usize>> {
    match protocol {
        Protocol::Any => Some(eligible.choose_multiple(rng, k).copied().collect()),
        Protocol::SameGenre => {
            let pools = genre_pools(data, eligible);
            let fit: Vec<&Vec<usize>> = pools.values().filter(|p| p.len() >= k).collect();
            let pool = fit.choose(rng)?;
            Some(pool.choose_multiple(rng, k).copied().collect())
        }
    }
}

/// Builds one simulated user as `eval/README.md` says, with k playlists at random.
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
    simulate_owner(data, &owned, kind, features, b, rng)
}

/// Builds one simulated user who owns the playlists `owned` (one sublist each, in order).
pub fn simulate_owner(
    data: &Playlists,
    owned: &[usize],
    kind: LayerKind,
    features: FeatureSet,
    b: usize,
    rng: &mut StdRng,
) -> SimUser {
    let k = owned.len();
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

fn mean(xs: &[f32]) -> f32 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f32>() / xs.len() as f32
    }
}

/// One cell of the table.
#[derive(Clone, Copy, Debug)]
struct Cell {
    protocol: Protocol,
    kind: LayerKind,
    features: FeatureSet,
    k: usize,
    b: usize,
}

impl Cell {
    fn metric(&self) -> &'static str {
        if self.kind.rules().mutual {
            "accuracy"
        } else {
            "samples-F1"
        }
    }

    /// The first columns of its rows.
    fn columns(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} |",
            self.protocol.name(),
            self.kind.code(),
            self.features.name(),
            self.k,
            self.b
        )
    }

    /// The seed of user `u`: the same users (playlists, labels) for every case, feature set
    /// and label budget of one protocol and k.
    fn user_seed(&self, seed: u64, u: usize) -> u64 {
        let protocol = match self.protocol {
            Protocol::Any => 0,
            Protocol::SameGenre => 1u64 << 48,
        };
        seed.wrapping_mul(1_000_003) ^ ((self.k as u64) << 40) ^ protocol ^ u as u64
    }
}

/// One user's outcome in a cell: the model's score, each baseline's, and (active, random)
/// scores when compared.
struct UserOutcome {
    sublist: f32,
    baselines: Vec<f32>,
    active: Option<(f32, f32)>,
}

/// The model's and the baselines' scores over one cell's users.
struct CellResult {
    cell: Cell,
    sublist: Vec<f32>,
    /// (name, per-user scores) per baseline.
    baselines: Vec<(&'static str, Vec<f32>)>,
}

impl CellResult {
    /// The baseline with the highest mean, and the per-user differences model minus it.
    fn paired(&self) -> (&'static str, Vec<f32>) {
        let best = self
            .baselines
            .iter()
            .max_by(|a, b| mean(&a.1).total_cmp(&mean(&b.1)));
        match best {
            Some((name, scores)) => (
                name,
                self.sublist
                    .iter()
                    .zip(scores)
                    .map(|(a, b)| a - b)
                    .collect(),
            ),
            None => ("", Vec::new()),
        }
    }
}

/// Runs one cell over `users` simulated users.
fn run_cell(
    data: &Playlists,
    eligible: &[usize],
    compute: &Compute,
    config: &TrainConfig,
    cell: Cell,
    args: &EvalArgs,
    active_users: usize,
) -> anyhow::Result<Vec<UserOutcome>> {
    let Cell {
        protocol,
        kind,
        features,
        k,
        b,
    } = cell;
    (0..args.users)
        .into_par_iter()
        .map(|u| {
            let mut rng = StdRng::seed_from_u64(cell.user_seed(args.seed, u));
            let owned = draw_playlists(data, eligible, protocol, k, &mut rng)
                .with_context(|| format!("no genre has {k} playlists with at least 60 tracks"))?;
            let user = simulate_owner(data, &owned, kind, features, b, &mut rng);
            let model = train_on(compute, kind, &user, k, &user.labelled, config)?;
            let sublist = score(&model, &user, &user.test);
            let seed: u64 = rng.random();
            let baselines = if args.skip_baselines {
                Vec::new()
            } else {
                baselines::scores(&user, kind, k, seed)
            };
            let active = if u < active_users {
                let mut r2 = StdRng::seed_from_u64(rng.random());
                Some(active_vs_random(
                    compute,
                    kind,
                    &user,
                    k,
                    user.labelled.len(),
                    config,
                    &mut r2,
                )?)
            } else {
                None
            };
            Ok(UserOutcome {
                sublist,
                baselines,
                active,
            })
        })
        .collect()
}

/// Loads the data and the eligible playlists (at least 60 tracks).
fn load(args: &EvalArgs) -> anyhow::Result<(Playlists, Vec<usize>)> {
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
    eprintln!(
        "{name}: {} tracks, {} playlists ({} eligible); seed {}; {} users per cell",
        data.tracks.len(),
        data.playlists.len(),
        eligible.len(),
        args.seed,
        args.users,
    );
    Ok((data, eligible))
}

/// Runs the protocol and prints the tables.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let (data, eligible) = load(&args)?;
    if args.cv {
        return run_cv(&args, &data, &eligible);
    }
    let protocols: Vec<Protocol> = args
        .protocols
        .iter()
        .map(|p| {
            Protocol::parse(p)
                .with_context(|| format!("unknown protocol `{p}`: use any or same-genre"))
        })
        .collect::<anyhow::Result<_>>()?;
    if protocols.contains(&Protocol::SameGenre) && data.genres.iter().all(BTreeSet::is_empty) {
        bail!("the same-genre protocol needs a `playlist_genre` column");
    }
    let config = TrainConfig::default();
    let compute = Compute::cpu();
    let active_users = args.active_users.unwrap_or(args.users);
    let feature_sets: Vec<FeatureSet> = if data.has_audio {
        vec![FeatureSet::Runtime, FeatureSet::RuntimeAudio]
    } else {
        vec![FeatureSet::Runtime]
    };
    let started = std::time::Instant::now();
    println!(
        "| protocol | case | features | k | labels/sublist | model | metric | mean | 95% interval |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut results: Vec<CellResult> = Vec::new();
    let mut active_summary: BTreeMap<&str, (Vec<f32>, Vec<f32>)> = BTreeMap::new();
    for &protocol in &protocols {
        for kind in LayerKind::ALL {
            if !args.cases.is_empty()
                && !args
                    .cases
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(kind.code()))
            {
                continue;
            }
            for &features in &feature_sets {
                for k in [4usize, 8] {
                    for b in [5usize, 25] {
                        let cell = Cell {
                            protocol,
                            kind,
                            features,
                            k,
                            b,
                        };
                        let outcomes = run_cell(
                            &data,
                            &eligible,
                            &compute,
                            &config,
                            cell,
                            &args,
                            active_users,
                        )?;
                        let names: &[&str] = if args.skip_baselines {
                            &[]
                        } else {
                            baselines::names(kind)
                        };
                        let result = CellResult {
                            cell,
                            sublist: outcomes.iter().map(|o| o.sublist).collect(),
                            baselines: names
                                .iter()
                                .enumerate()
                                .map(|(j, n)| {
                                    (*n, outcomes.iter().map(|o| o.baselines[j]).collect())
                                })
                                .collect(),
                        };
                        let (cols, metric) = (cell.columns(), cell.metric());
                        let row = |model: &str, xs: &[f32]| {
                            let (m, h) = stats::mean_ci(xs);
                            println!("{cols} {model} | {metric} | {m:.3} | ±{h:.3} |");
                        };
                        row("sublist", &result.sublist);
                        for (name, xs) in &result.baselines {
                            row(name, xs);
                        }
                        let (act, rnd): (Vec<f32>, Vec<f32>) =
                            outcomes.iter().filter_map(|o| o.active).unzip();
                        if !act.is_empty() {
                            row("sublist, active questions", &act);
                            row("sublist, random questions", &rnd);
                            let e = active_summary.entry(kind.code()).or_default();
                            e.0.push(mean(&act));
                            e.1.push(mean(&rnd));
                        }
                        results.push(result);
                    }
                }
            }
        }
    }
    if !args.skip_baselines {
        print_paired(&results);
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

/// The paired differences, model minus the cell's best baseline on the same users, with their
/// intervals, and a summary per protocol.
fn print_paired(results: &[CellResult]) {
    println!();
    println!(
        "| protocol | case | features | k | labels/sublist | sublist | best baseline | sublist − best | 95% interval |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut by_protocol: BTreeMap<&str, Vec<(f32, f32)>> = BTreeMap::new();
    for r in results {
        let (name, diffs) = r.paired();
        let (d, h) = stats::mean_ci(&diffs);
        let best = r
            .baselines
            .iter()
            .find(|b| b.0 == name)
            .map_or(0.0, |b| mean(&b.1));
        println!(
            "{} {:.3} | {name} {best:.3} | {d:+.3} | ±{h:.3} |",
            r.cell.columns(),
            mean(&r.sublist),
        );
        by_protocol
            .entry(r.cell.protocol.name())
            .or_default()
            .push((d, h));
    }
    for (protocol, cells) in by_protocol {
        let deltas: Vec<f32> = cells.iter().map(|c| c.0).collect();
        let below = cells.iter().filter(|(d, h)| d + h < 0.0).count();
        let above = cells.iter().filter(|(d, h)| d - h > 0.0).count();
        let worst = deltas.iter().copied().fold(f32::INFINITY, f32::min);
        println!(
            "\n{protocol}: mean difference over {} cells {:+.4}; worst cell {worst:+.3}; \
             significantly above the best baseline in {above}, below in {below}",
            cells.len(),
            mean(&deltas),
        );
    }
}

/// Playlists and tracks of the cross-validation figure.
const CV_PLAYLISTS: usize = 7;
const CV_TRACKS: usize = 70;
const CV_FOLDS: usize = 5;

/// One draw for `--cv`: 7 eligible playlists of one genre, up to 70 tracks from each that are
/// in none of the other six, as a mutual complete layer.
pub fn cv_user(data: &Playlists, eligible: &[usize], rng: &mut StdRng) -> Option<SimUser> {
    let owned = draw_playlists(data, eligible, Protocol::SameGenre, CV_PLAYLISTS, rng)?;
    let mut user = simulate_owner(
        data,
        &owned,
        LayerKind::MutualComplete,
        FeatureSet::RuntimeAudio,
        0,
        rng,
    );
    let mut keep: Vec<usize> = Vec::new();
    for c in 0..CV_PLAYLISTS {
        let mut of: Vec<usize> = (0..user.truth.len())
            .filter(|&i| user.truth[i] == [c])
            .collect();
        of.shuffle(rng);
        keep.extend(of.into_iter().take(CV_TRACKS));
    }
    keep.sort_unstable();
    user.tracks = keep.iter().map(|&i| user.tracks[i].clone()).collect();
    user.truth = keep.iter().map(|&i| user.truth[i].clone()).collect();
    user.labelled = Vec::new();
    user.test = Vec::new();
    Some(user)
}

/// Stratified folds: each class's tracks, shuffled, dealt in turn.
fn cv_folds(truth: &[Vec<usize>], folds: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut fold = vec![0; truth.len()];
    let classes = truth
        .iter()
        .filter_map(|t| t.first())
        .max()
        .map_or(0, |m| m + 1);
    let mut next = 0;
    for c in 0..classes {
        let mut of: Vec<usize> = (0..truth.len()).filter(|&i| truth[i] == [c]).collect();
        of.shuffle(rng);
        for i in of {
            fold[i] = next % folds;
            next += 1;
        }
    }
    fold
}

/// `--cv`: 5-fold cross-validated accuracy of a mutual complete layer on 7 same-genre
/// playlists of 70 tracks each, for the model and the baselines, over `--users` draws.
fn run_cv(args: &EvalArgs, data: &Playlists, eligible: &[usize]) -> anyhow::Result<()> {
    let config = TrainConfig::default();
    let compute = Compute::cpu();
    let kind = LayerKind::MutualComplete;
    let names = baselines::names(kind);
    println!(
        "| features | playlists | tracks/playlist | folds | model | accuracy | 95% interval |"
    );
    println!("|---|---|---|---|---|---|---|");
    let features: Vec<FeatureSet> = if data.has_audio {
        vec![FeatureSet::Runtime, FeatureSet::RuntimeAudio]
    } else {
        vec![FeatureSet::Runtime]
    };
    for fs in features {
        let draws: Vec<anyhow::Result<(f32, Vec<f32>)>> = (0..args.users)
            .into_par_iter()
            .map(|u| {
                let mut rng =
                    StdRng::seed_from_u64(args.seed.wrapping_mul(1_000_003) ^ (7 << 40) ^ u as u64);
                let mut user = cv_user(data, eligible, &mut rng).with_context(|| {
                    format!("no genre has {CV_PLAYLISTS} playlists with at least 60 tracks")
                })?;
                if fs == FeatureSet::Runtime {
                    user.tracks.iter_mut().for_each(|t| t.track.audio = None);
                }
                let fold = cv_folds(&user.truth, CV_FOLDS, &mut rng);
                let (mut right, mut base) = (0.0f32, vec![0.0f32; names.len()]);
                for f in 0..CV_FOLDS {
                    user.labelled = (0..fold.len()).filter(|&i| fold[i] != f).collect();
                    user.test = (0..fold.len()).filter(|&i| fold[i] == f).collect();
                    let model =
                        train_on(&compute, kind, &user, CV_PLAYLISTS, &user.labelled, &config)?;
                    let n = user.test.len() as f32;
                    right += score(&model, &user, &user.test) * n;
                    let s = baselines::scores(&user, kind, CV_PLAYLISTS, rng.random());
                    base.iter_mut().zip(s).for_each(|(b, s)| *b += s * n);
                }
                let total = user.tracks.len().max(1) as f32;
                Ok((right / total, base.into_iter().map(|b| b / total).collect()))
            })
            .collect();
        let mut sublist = Vec::new();
        let mut base: Vec<Vec<f32>> = vec![Vec::new(); names.len()];
        for d in draws {
            let (s, b) = d?;
            sublist.push(s);
            base.iter_mut().zip(b).for_each(|(v, x)| v.push(x));
        }
        let row = |model: &str, xs: &[f32]| {
            let (m, h) = stats::mean_ci(xs);
            println!(
                "| {} | {CV_PLAYLISTS} | {CV_TRACKS} | {CV_FOLDS} | {model} | {m:.3} | ±{h:.3} |",
                fs.name()
            );
        };
        row("sublist", &sublist);
        for (name, xs) in names.iter().zip(&base) {
            row(name, xs);
        }
    }
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

    fn built_in() -> (Playlists, Vec<usize>) {
        let data = load_playlists(spotify_songs_csv().unwrap().as_slice()).unwrap();
        let eligible = (0..data.playlists.len())
            .filter(|&p| data.playlists[p].1.len() >= 60)
            .collect();
        (data, eligible)
    }

    #[test]
    fn same_genre_users_own_playlists_of_one_genre_and_void_from_elsewhere() {
        let (data, eligible) = built_in();
        let pools = genre_pools(&data, &eligible);
        assert!(pools.values().filter(|p| p.len() >= 8).count() >= 2);
        let mut genres_seen = BTreeSet::new();
        for u in 0..30 {
            let mut rng = StdRng::seed_from_u64(u);
            let owned = draw_playlists(&data, &eligible, Protocol::SameGenre, 8, &mut rng).unwrap();
            assert_eq!(owned.iter().collect::<BTreeSet<_>>().len(), 8);
            let shared: BTreeSet<&String> = owned
                .iter()
                .map(|&p| &data.genres[p])
                .fold(None, |acc: Option<BTreeSet<&String>>, g| {
                    Some(match acc {
                        None => g.iter().collect(),
                        Some(a) => a.into_iter().filter(|x| g.contains(*x)).collect(),
                    })
                })
                .unwrap();
            assert!(
                !shared.is_empty(),
                "user {u} owns playlists of several genres"
            );
            genres_seen.extend(shared.into_iter().cloned());
            let user = simulate_owner(
                &data,
                &owned,
                LayerKind::MutualIncomplete,
                FeatureSet::Runtime,
                5,
                &mut rng,
            );
            let owned_tracks: BTreeSet<&str> = owned
                .iter()
                .flat_map(|&p| data.playlists[p].1.iter())
                .map(|&t| data.tracks[t].track.id.as_str())
                .collect();
            let voids: Vec<usize> = (0..user.truth.len())
                .filter(|&i| user.truth[i].is_empty())
                .collect();
            assert!(!voids.is_empty());
            for i in voids {
                assert!(!owned_tracks.contains(user.tracks[i].track.id.as_str()));
            }
        }
        assert!(genres_seen.len() >= 2, "the genre is drawn at random");
    }

    #[test]
    fn the_cv_draw_has_seven_playlists_of_seventy_tracks_in_balanced_folds() {
        let (data, eligible) = built_in();
        let mut rng = StdRng::seed_from_u64(5);
        let user = cv_user(&data, &eligible, &mut rng).unwrap();
        assert_eq!(user.playlist_names.len(), CV_PLAYLISTS);
        for c in 0..CV_PLAYLISTS {
            let n = user.truth.iter().filter(|t| **t == [c]).count();
            assert!((40..=CV_TRACKS).contains(&n), "playlist {c}: {n} tracks");
        }
        let folds = cv_folds(&user.truth, CV_FOLDS, &mut rng);
        for f in 0..CV_FOLDS {
            let n = folds.iter().filter(|x| **x == f).count();
            assert!(
                n.abs_diff(user.truth.len() / CV_FOLDS) <= 1,
                "fold {f}: {n}"
            );
        }
    }

    #[test]
    fn protocols_parse_by_name() {
        assert_eq!(Protocol::parse("Same-Genre"), Some(Protocol::SameGenre));
        assert_eq!(Protocol::parse("any"), Some(Protocol::Any));
        assert_eq!(Protocol::parse("mood"), None);
    }

    #[test]
    fn a_bad_track_id_names_its_line() {
        let csv = "track_id,playlist_id,playlist_name\nnope,p,P\n";
        let err = load_playlists(csv.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "CSV line 2: bad track_id");
    }
}
