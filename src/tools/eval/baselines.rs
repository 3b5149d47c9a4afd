//! The classical baselines of the protocol, trained and scored on the very users and splits the
//! model sees: a random forest on the numeric columns, the album > artist > forest majority vote
//! (mutual layers), and logistic regression on tf-idf of names and ids plus the scaled numeric
//! columns (smartcore's, L-BFGS, C = 10). Non-mutual layers take every sublist whose one-vs-rest
//! probability reaches 0.5; complete layers take the arg-max when none does.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};

use super::SimUser;
use crate::domain::{LayerKind, LikedTrack};
use crate::learn::set_f1;

/// Trees in the forest.
const TREES: usize = 200;
/// The inverse L2 strength of the regression.
const C: f64 = 10.0;

/// The names of the baselines, in the order [`scores`] returns them for a layer kind.
pub fn names(kind: LayerKind) -> &'static [&'static str] {
    if kind.rules().mutual {
        &["RF(numeric)", "album>artist>RF", "LogReg(text+ids+numeric)"]
    } else {
        &["RF(numeric)", "LogReg(text+ids+numeric)"]
    }
}

/// Each baseline's score (the cell's metric) on `user.test`, trained on `user.labelled`, in the
/// order of [`names`].
pub fn scores(user: &SimUser, kind: LayerKind, k: usize, seed: u64) -> Vec<f32> {
    predictions(user, kind, k, seed)
        .into_iter()
        .map(|preds| {
            let sum: f32 = preds
                .iter()
                .zip(&user.test)
                .map(|(p, &i)| set_f1(p, &user.truth[i]))
                .sum();
            sum / user.test.len().max(1) as f32
        })
        .collect()
}

/// Each baseline's predicted label sets for `user.test` (empty: the void), in the order of
/// [`names`].
pub fn predictions(user: &SimUser, kind: LayerKind, k: usize, seed: u64) -> Vec<Vec<Vec<usize>>> {
    let rules = kind.rules();
    let train: Vec<&LikedTrack> = user.labelled.iter().map(|&i| &user.tracks[i]).collect();
    let test: Vec<&LikedTrack> = user.test.iter().map(|&i| &user.tracks[i]).collect();
    let truth: Vec<&Vec<usize>> = user.labelled.iter().map(|&i| &user.truth[i]).collect();
    let x_train: Vec<Vec<f32>> = train.iter().map(|t| numbers(t)).collect();
    let x_test: Vec<Vec<f32>> = test.iter().map(|t| numbers(t)).collect();
    let (x_train, x_test) = impute(x_train, x_test);

    // The void is class k of mutual incomplete layers.
    let void = k;
    let forest_probs: Vec<Vec<f32>>;
    let forest: Vec<Vec<usize>> = if rules.mutual {
        let y: Vec<Vec<u8>> = truth
            .iter()
            .map(|s| vec![s.first().copied().unwrap_or(void) as u8])
            .collect();
        let classes = k + usize::from(!rules.complete);
        let f = Forest::fit(&x_train, &y, &[classes], seed);
        forest_probs = x_test.iter().map(|x| f.proba(x)).collect();
        forest_probs
            .iter()
            .map(|p| one_of(argmax(p), void))
            .collect()
    } else {
        let y: Vec<Vec<u8>> = truth
            .iter()
            .map(|s| (0..k).map(|c| u8::from(s.contains(&c))).collect())
            .collect();
        let f = Forest::fit(&x_train, &y, &vec![2; k], seed);
        forest_probs = x_test
            .iter()
            .map(|x| f.proba(x).chunks(2).map(|p| p[1]).collect())
            .collect();
        forest_probs
            .iter()
            .map(|p| over_half(p, rules.complete))
            .collect()
    };

    let logreg = logistic(&train, &test, &truth, kind, k);
    if !rules.mutual {
        return vec![forest, logreg];
    }
    let vote = majority_vote(&train, &test, &truth, void, &forest);
    vec![forest, vote, logreg]
}

/// One class as a label set; the void class is the empty set.
fn one_of(c: usize, void: usize) -> Vec<usize> {
    if c == void { Vec::new() } else { vec![c] }
}

/// Every class with probability at least 0.5; in complete layers the arg-max when none.
fn over_half(p: &[f32], complete: bool) -> Vec<usize> {
    let set: Vec<usize> = (0..p.len()).filter(|&c| p[c] >= 0.5).collect();
    if set.is_empty() && complete {
        vec![argmax(p)]
    } else {
        set
    }
}

fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in xs.iter().enumerate() {
        if *x > xs[best] {
            best = i;
        }
    }
    best
}

/// The numeric columns: release year, duration, and the audio descriptors where present
/// (NaN where a value is missing).
fn numbers(t: &LikedTrack) -> Vec<f32> {
    let tr = &t.track;
    let mut v = vec![
        tr.release_year().map_or(f32::NAN, |y| y as f32),
        tr.duration_ms.map_or(f32::NAN, |d| d as f32),
    ];
    if let Some(a) = &tr.audio {
        v.extend(a.values());
    }
    v
}

/// Fills missing numbers with the training mean, and cuts every row to the columns all training
/// rows have.
fn impute(mut train: Vec<Vec<f32>>, mut test: Vec<Vec<f32>>) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let d = train.iter().map(Vec::len).min().unwrap_or(0);
    let mut means = vec![0f32; d];
    for (j, m) in means.iter_mut().enumerate() {
        let known: Vec<f32> = train
            .iter()
            .map(|r| r[j])
            .filter(|x| x.is_finite())
            .collect();
        *m = known.iter().sum::<f32>() / known.len().max(1) as f32;
    }
    for row in train.iter_mut().chain(test.iter_mut()) {
        row.resize(d, f32::NAN);
        for (x, m) in row.iter_mut().zip(&means) {
            if !x.is_finite() {
                *x = *m;
            }
        }
    }
    (train, test)
}

/// Majority label among the labelled tracks of the same album, else of the same artist, else
/// the forest's choice.
fn majority_vote(
    train: &[&LikedTrack],
    test: &[&LikedTrack],
    truth: &[&Vec<usize>],
    void: usize,
    fallback: &[Vec<usize>],
) -> Vec<Vec<usize>> {
    let class = |i: usize| truth[i].first().copied().unwrap_or(void);
    let mut albums: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut artists: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, t) in train.iter().enumerate() {
        if let Some(a) = album_key(t) {
            albums.entry(a).or_default().push(class(i));
        }
        for (_, name) in &t.track.artists {
            artists.entry(name.as_str()).or_default().push(class(i));
        }
    }
    let majority = |classes: &[usize]| -> usize {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for c in classes {
            *counts.entry(*c).or_default() += 1;
        }
        // Most votes; ties go to the smaller class index.
        counts
            .into_iter()
            .fold(
                (void, 0),
                |(bc, bn), (c, n)| if n > bn { (c, n) } else { (bc, bn) },
            )
            .0
    };
    test.iter()
        .zip(fallback)
        .map(|(t, fb)| {
            if let Some(v) = album_key(t).and_then(|a| albums.get(a)) {
                return one_of(majority(v), void);
            }
            let same: Vec<usize> = t
                .track
                .artists
                .iter()
                .filter_map(|(_, n)| artists.get(n.as_str()))
                .flatten()
                .copied()
                .collect();
            if same.is_empty() {
                fb.clone()
            } else {
                one_of(majority(&same), void)
            }
        })
        .collect()
}

fn album_key(t: &LikedTrack) -> Option<&str> {
    t.track
        .album_id
        .as_deref()
        .or(t.track.album_name.as_deref())
}

fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// The tokens tf-idf counts: words of the track and album names, artist and album ids.
fn tokens(t: &LikedTrack) -> Vec<String> {
    let tr = &t.track;
    let mut out: Vec<String> = words(&tr.name).map(|w| format!("w:{w}")).collect();
    if let Some(name) = &tr.album_name {
        out.extend(words(name).map(|w| format!("aw:{w}")));
    }
    for (id, name) in &tr.artists {
        out.push(format!("artist:{}", id.as_deref().unwrap_or(name)));
    }
    if let Some(a) = album_key(t) {
        out.push(format!("album:{a}"));
    }
    out
}

/// Design matrices for the regression: tf-idf (smooth idf, rows of unit length) over the
/// training vocabulary, then the numbers standardised on the training rows.
fn design(train: &[&LikedTrack], test: &[&LikedTrack]) -> (DenseMatrix<f64>, DenseMatrix<f64>) {
    use smartcore::linalg::basic::arrays::Array2;
    let toks: Vec<Vec<String>> = train.iter().map(|t| tokens(t)).collect();
    let mut vocab: HashMap<String, usize> = HashMap::new();
    let mut df: Vec<f64> = Vec::new();
    for ts in &toks {
        let mut seen: Vec<usize> = ts
            .iter()
            .map(|w| {
                let next = vocab.len();
                let j = *vocab.entry(w.clone()).or_insert(next);
                if j == df.len() {
                    df.push(0.0);
                }
                j
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for j in seen {
            df[j] += 1.0;
        }
    }
    let n = train.len() as f64;
    let idf: Vec<f64> = df
        .iter()
        .map(|d| ((1.0 + n) / (1.0 + d)).ln() + 1.0)
        .collect();
    let (nums_train, nums_test) = impute(
        train.iter().map(|t| numbers(t)).collect(),
        test.iter().map(|t| numbers(t)).collect(),
    );
    let d = nums_train.first().map_or(0, Vec::len);
    let mut mean = vec![0f64; d];
    let mut sd = vec![0f64; d];
    for j in 0..d {
        let col: Vec<f64> = nums_train.iter().map(|r| f64::from(r[j])).collect();
        mean[j] = col.iter().sum::<f64>() / n.max(1.0);
        let var = col.iter().map(|x| (x - mean[j]).powi(2)).sum::<f64>() / n.max(1.0);
        sd[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
    }
    let width = vocab.len() + d;
    let row = |t: &LikedTrack, nums: &[f32]| -> Vec<f64> {
        let mut r = vec![0f64; width];
        for w in tokens(t) {
            if let Some(&j) = vocab.get(&w) {
                r[j] += idf[j];
            }
        }
        let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            r.iter_mut().for_each(|x| *x /= norm);
        }
        for j in 0..d {
            r[vocab.len() + j] = (f64::from(nums[j]) - mean[j]) / sd[j];
        }
        r
    };
    let build = |ts: &[&LikedTrack], nums: &[Vec<f32>]| -> DenseMatrix<f64> {
        let rows: Vec<Vec<f64>> = ts.iter().zip(nums).map(|(t, x)| row(t, x)).collect();
        if rows.is_empty() {
            return DenseMatrix::from_iterator(std::iter::empty(), 0, width, 0);
        }
        DenseMatrix::from_2d_vec(&rows).expect("rows of equal width")
    };
    (build(train, &nums_train), build(test, &nums_test))
}

/// Logistic regression: multinomial over the sublists (and the void) in mutual layers,
/// one-vs-rest in the others.
fn logistic(
    train: &[&LikedTrack],
    test: &[&LikedTrack],
    truth: &[&Vec<usize>],
    kind: LayerKind,
    k: usize,
) -> Vec<Vec<usize>> {
    use smartcore::linalg::basic::arrays::Array;
    let rules = kind.rules();
    let (x_train, x_test) = design(train, test);
    let n_test = test.len();
    let params = LogisticRegressionParameters::default().with_alpha(1.0 / C);
    let void = k;
    if rules.mutual {
        let y: Vec<u32> = truth
            .iter()
            .map(|s| s.first().copied().unwrap_or(void) as u32)
            .collect();
        return match LogisticRegression::fit(&x_train, &y, params) {
            Ok(m) => match m.predict(&x_test) {
                Ok(p) => p.into_iter().map(|c| one_of(c as usize, void)).collect(),
                Err(_) => vec![Vec::new(); n_test],
            },
            Err(_) => vec![vec![y.first().copied().unwrap_or(0) as usize]; n_test],
        };
    }
    let mut probs = vec![vec![0f32; k]; n_test];
    for c in 0..k {
        let y: Vec<u32> = truth.iter().map(|s| u32::from(s.contains(&c))).collect();
        let Ok(m) = LogisticRegression::fit(&x_train, &y, params.clone()) else {
            continue;
        };
        let (w, b) = (m.coefficients(), *m.intercept().get((0, 0)));
        let width = x_test.shape().1;
        for (i, p) in probs.iter_mut().enumerate() {
            let z: f64 = (0..width).map(|j| x_test.get((i, j)) * w.get((0, j))).sum();
            p[c] = (1.0 / (1.0 + (-(z + b)).exp())) as f32;
        }
    }
    probs.iter().map(|p| over_half(p, rules.complete)).collect()
}

/// A random forest (bootstrap samples, √d features tried per split, Gini impurity, trees grown
/// until pure) over one or more outputs, each with its own classes; probabilities are the
/// average of the leaves' class shares, as scikit-learn's.
pub struct Forest {
    trees: Vec<Vec<Node>>,
    /// Offset of each output's classes in a leaf's share vector.
    offsets: Vec<usize>,
    width: usize,
}

enum Node {
    Leaf(Vec<f32>),
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
}

impl Forest {
    /// Fits on rows `x` with one class per output in `y`; `classes[o]` is output o's count.
    pub fn fit(x: &[Vec<f32>], y: &[Vec<u8>], classes: &[usize], seed: u64) -> Forest {
        let mut offsets = Vec::with_capacity(classes.len());
        let mut width = 0;
        for c in classes {
            offsets.push(width);
            width += c;
        }
        let d = x.first().map_or(0, Vec::len);
        let mtry = ((d as f64).sqrt().floor() as usize).max(1);
        let mut rng = StdRng::seed_from_u64(seed);
        let n = x.len();
        let trees = (0..TREES)
            .map(|_| {
                let sample: Vec<usize> = (0..n).map(|_| rng.random_range(0..n.max(1))).collect();
                let mut b = Builder {
                    x,
                    y,
                    offsets: &offsets,
                    width,
                    d,
                    mtry,
                    nodes: Vec::new(),
                };
                if n > 0 {
                    b.grow(sample, &mut rng);
                }
                b.nodes
            })
            .collect();
        Forest {
            trees,
            offsets,
            width,
        }
    }

    /// Class shares of every output, one after the other.
    pub fn proba(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.width];
        let mut used = 0;
        for tree in &self.trees {
            let mut at = 0;
            loop {
                match tree.get(at) {
                    Some(Node::Leaf(p)) => {
                        out.iter_mut().zip(p).for_each(|(o, p)| *o += p);
                        used += 1;
                        break;
                    }
                    Some(Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                    }) => {
                        at = if x[*feature] <= *threshold {
                            *left
                        } else {
                            *right
                        }
                    }
                    None => break,
                }
            }
        }
        if used > 0 {
            out.iter_mut().for_each(|o| *o /= used as f32);
        } else {
            // No training rows: every class of every output equally likely.
            for (o, &start) in self.offsets.iter().enumerate() {
                let end = self.offsets.get(o + 1).copied().unwrap_or(self.width);
                let share = 1.0 / (end - start).max(1) as f32;
                out[start..end].iter_mut().for_each(|x| *x = share);
            }
        }
        out
    }
}

struct Builder<'a> {
    x: &'a [Vec<f32>],
    y: &'a [Vec<u8>],
    offsets: &'a [usize],
    width: usize,
    d: usize,
    mtry: usize,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    fn counts(&self, rows: &[usize]) -> Vec<f32> {
        let mut c = vec![0f32; self.width];
        for &i in rows {
            for (o, &class) in self.y[i].iter().enumerate() {
                c[self.offsets[o] + class as usize] += 1.0;
            }
        }
        c
    }

    /// Sum over outputs of n·Gini, from class counts.
    fn impurity(&self, counts: &[f32], n: f32) -> f32 {
        if n <= 0.0 {
            return 0.0;
        }
        let mut total = 0.0;
        for (o, &start) in self.offsets.iter().enumerate() {
            let end = self.offsets.get(o + 1).copied().unwrap_or(self.width);
            let sq: f32 = counts[start..end].iter().map(|c| c * c).sum();
            total += n - sq / n;
        }
        total
    }

    /// Grows the subtree over `rows` (with repeats) and returns its node index.
    fn grow(&mut self, rows: Vec<usize>, rng: &mut StdRng) -> usize {
        let n = rows.len() as f32;
        let counts = self.counts(&rows);
        let parent = self.impurity(&counts, n);
        let here = self.nodes.len();
        let leaf = |counts: &[f32]| Node::Leaf(counts.iter().map(|c| c / n).collect());
        if rows.len() < 2 || parent <= 1e-6 {
            self.nodes.push(leaf(&counts));
            return here;
        }
        // Features in random order; at least `mtry` are tried, more while none splits.
        let mut features: Vec<usize> = (0..self.d).collect();
        for i in (1..features.len()).rev() {
            features.swap(i, rng.random_range(0..=i));
        }
        let mut best: Option<(f32, usize, f32)> = None;
        for (tried, &f) in features.iter().enumerate() {
            if tried >= self.mtry && best.is_some() {
                break;
            }
            let mut sorted = rows.clone();
            sorted.sort_by(|a, b| self.x[*a][f].total_cmp(&self.x[*b][f]));
            let mut left = vec![0f32; self.width];
            for s in 0..sorted.len() - 1 {
                let i = sorted[s];
                for (o, &class) in self.y[i].iter().enumerate() {
                    left[self.offsets[o] + class as usize] += 1.0;
                }
                let (a, b) = (self.x[i][f], self.x[sorted[s + 1]][f]);
                if a >= b {
                    continue;
                }
                let nl = (s + 1) as f32;
                let right: Vec<f32> = counts.iter().zip(&left).map(|(c, l)| c - l).collect();
                let score = self.impurity(&left, nl) + self.impurity(&right, n - nl);
                if score < parent - 1e-6 && best.is_none_or(|(bs, _, _)| score < bs) {
                    best = Some((score, f, a + (b - a) / 2.0));
                }
            }
        }
        let Some((_, feature, threshold)) = best else {
            self.nodes.push(leaf(&counts));
            return here;
        };
        self.nodes.push(Node::Leaf(Vec::new()));
        let (l, r): (Vec<usize>, Vec<usize>) = rows
            .into_iter()
            .partition(|&i| self.x[i][feature] <= threshold);
        let left = self.grow(l, rng);
        let right = self.grow(r, rng);
        self.nodes[here] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        here
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AudioFeatures, Track, TrackId};
    use chrono::TimeZone;

    #[test]
    fn the_forest_learns_a_threshold_and_a_second_output() {
        let x: Vec<Vec<f32>> = (0..40).map(|i| vec![i as f32, (i % 3) as f32]).collect();
        let y: Vec<Vec<u8>> = (0..40)
            .map(|i| vec![u8::from(i >= 20), u8::from(i % 3 == 0)])
            .collect();
        let f = Forest::fit(&x, &y, &[2, 2], 1);
        let low = f.proba(&[3.0, 1.0]);
        let high = f.proba(&[35.0, 0.0]);
        assert!(low[0] > 0.8 && high[1] > 0.8, "{low:?} {high:?}");
        assert!(low[2] > 0.8 && high[3] > 0.8, "{low:?} {high:?}");
    }

    fn track(i: usize, artist: &str, album: &str, name: &str, energy: f32) -> LikedTrack {
        let id = format!("{:0>22}", i);
        let mut t = Track::bare(TrackId::parse(&id).unwrap(), name);
        t.artists = vec![(None, artist.to_string())];
        t.album_id = Some(album.to_string());
        t.album_name = Some(album.to_string());
        t.release_date = Some("2015-01-01".into());
        t.duration_ms = Some(200_000);
        let mut v = [0.5f32; 11];
        v[1] = energy;
        t.audio = Some(AudioFeatures::from_values(v));
        LikedTrack {
            track: t,
            added_at: chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    /// Two sublists told apart by artist, album, a name word and energy; every baseline beats
    /// chance (0.5) on tracks it did not see, in all four cases.
    #[test]
    fn baselines_beat_chance_on_an_easy_split() {
        let mut tracks = Vec::new();
        let mut truth = Vec::new();
        for i in 0..80 {
            let c = i % 2;
            let (artist, album, word) = if c == 0 {
                ("Calm", "Quiet", "night")
            } else {
                ("Loud", "Noise", "party")
            };
            let album = format!("{album}{}", i % 8);
            let energy = if c == 0 { 0.2 } else { 0.9 } + (i % 5) as f32 * 0.01;
            tracks.push(track(i, artist, &album, &format!("{word} {i}"), energy));
            truth.push(vec![c]);
        }
        for kind in LayerKind::ALL {
            let mut tracks = tracks.clone();
            let mut truth = truth.clone();
            if !kind.rules().complete {
                for i in 80..100 {
                    tracks.push(track(i, "Other", &format!("Else{i}"), "song", 0.55));
                    truth.push(Vec::new());
                }
            }
            let labelled: Vec<usize> = (0..tracks.len()).filter(|i| i % 5 == 0).collect();
            let test: Vec<usize> = (0..tracks.len()).filter(|i| i % 5 != 0).collect();
            let user = SimUser {
                tracks,
                truth,
                labelled,
                test,
                playlist_names: vec!["a".into(), "b".into()],
            };
            let s = scores(&user, kind, 2, 3);
            assert_eq!(s.len(), names(kind).len());
            for (name, s) in names(kind).iter().zip(&s) {
                assert!(*s > 0.75, "{} {name}: {s}", kind.code());
            }
        }
    }
}
