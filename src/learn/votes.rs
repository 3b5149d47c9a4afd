//! Neighbour votes among the labelled tracks: the share of each class among labelled tracks of
//! the same album, of the same artist, and among the nearest tracks by sound and era. They are
//! inputs of the model (leave-one-out on the training set), which learns how much to trust each.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::features::{Encoded, KNN_DIMS, TokenMap};

/// Vote sources: same album, same artist, nearest neighbours, class-conditional Gaussians.
pub const SOURCES: usize = 4;
/// Floor of the Gaussian log-likelihood differences (per dimension).
const GAUSS_FLOOR: f32 = -3.0;
/// Neighbours counted by the nearest-neighbour vote.
const K: usize = 15;
/// The most reference tracks the nearest-neighbour vote searches (keeps scoring fast).
const MAX_KNN_REFS: usize = 250;

fn add_stats(s: &mut [f32; 3 * KNN_DIMS], x: &[Option<f32>], w: f32) {
    for (d, v) in x.iter().enumerate().take(KNN_DIMS) {
        if let Some(v) = v {
            s[3 * d] += w;
            s[3 * d + 1] += w * v;
            s[3 * d + 2] += w * v * v;
        }
    }
}

/// The labelled tracks a model votes with, kept inside the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub albums: Vec<Option<u64>>,
    pub artists: Vec<Vec<u64>>,
    /// Scaled numbers (None where missing) of the tracks the neighbour vote searches.
    pub knn: Vec<Vec<Option<f32>>>,
    /// Which reference track each `knn` row is.
    pub knn_rows: Vec<usize>,
    /// Scaled numbers of every reference track (None where missing).
    pub numbers: Vec<Vec<Option<f32>>>,
    /// Soft targets, one row of `classes` values per track.
    pub targets: Vec<Vec<f32>>,
    #[serde(skip)]
    index: Option<Index>,
}

#[derive(Clone, Debug, PartialEq, Default)]
struct Index {
    album: TokenMap<Vec<usize>>,
    artist: TokenMap<Vec<usize>>,
    /// Per class and dimension: weight, weighted sum and weighted sum of squares of the
    /// scaled numbers of every reference track (not only the `knn` sample).
    gauss: Vec<[f32; 3 * KNN_DIMS]>,
    /// `knn` by dimension (`[KNN_DIMS][rows]`, so one dimension of every row is contiguous),
    /// 0 where missing.
    knn_values: Vec<f32>,
    /// 1 where `knn_values` is known, 0 where missing.
    knn_known: Vec<f32>,
}

impl Reference {
    pub fn new(encoded: &[&Encoded], targets: Vec<Vec<f32>>) -> Reference {
        let numbers = encoded
            .iter()
            .map(|e| e.knn.iter().map(|x| (!x.is_nan()).then_some(*x)).collect())
            .collect();
        let n = encoded.len();
        let knn_rows: Vec<usize> = if n <= MAX_KNN_REFS {
            (0..n).collect()
        } else {
            // An even spread over the (shuffled) training order.
            (0..MAX_KNN_REFS).map(|i| i * n / MAX_KNN_REFS).collect()
        };
        let mut r = Reference {
            albums: encoded.iter().map(|e| e.album).collect(),
            artists: encoded.iter().map(|e| e.artists.clone()).collect(),
            knn: knn_rows
                .iter()
                .map(|&i| {
                    encoded[i]
                        .knn
                        .iter()
                        .map(|x| (!x.is_nan()).then_some(*x))
                        .collect()
                })
                .collect(),
            knn_rows,
            numbers,
            targets,
            index: None,
        };
        r.build_index();
        r
    }

    /// Rebuilds the lookup tables (after deserialising).
    pub fn build_index(&mut self) {
        let mut index = Index::default();
        for (i, a) in self.albums.iter().enumerate() {
            if let Some(a) = a {
                index.album.entry(*a).or_default().push(i);
            }
        }
        for (i, artists) in self.artists.iter().enumerate() {
            for a in artists {
                let list = index.artist.entry(*a).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
        let cell = |row: &Vec<Option<f32>>, d: usize| row.get(d).copied().flatten();
        for d in 0..KNN_DIMS {
            for row in &self.knn {
                index.knn_values.push(cell(row, d).unwrap_or(0.0));
                index
                    .knn_known
                    .push(f32::from(u8::from(cell(row, d).is_some())));
            }
        }
        let classes = self.targets.first().map_or(0, Vec::len);
        index.gauss = vec![[0.0; 3 * KNN_DIMS]; classes];
        for (x, t) in self.numbers.iter().zip(&self.targets) {
            for (c, w) in t.iter().enumerate() {
                if *w > 0.0 {
                    add_stats(&mut index.gauss[c], x, *w);
                }
            }
        }
        self.index = Some(index);
    }

    /// Log-likelihood of `e` under each class's Gaussian (pooled variance), relative to the
    /// best class and per known dimension; `exclude`'s own numbers are taken out of the statistics.
    fn gaussian(&self, index: &Index, e: &Encoded, exclude: Option<usize>, out: &mut [f32]) {
        let left_out;
        let stats = match exclude {
            None => &index.gauss,
            Some(i) => {
                let mut s = index.gauss.clone();
                for (c, w) in self.targets[i].iter().enumerate() {
                    if *w > 0.0 {
                        add_stats(&mut s[c], &self.numbers[i], -*w);
                    }
                }
                left_out = s;
                &left_out
            }
        };
        // Pooled within-class variance per dimension, shrunk towards 1 (the scaled unit).
        let mut var = [1.0f32; KNN_DIMS];
        for (d, v) in var.iter_mut().enumerate() {
            let (mut ss, mut ww) = (1.0f32, 1.0f32);
            for s in stats {
                let (w, sum, sq) = (s[3 * d], s[3 * d + 1], s[3 * d + 2]);
                if w > 1e-6 {
                    ss += (sq - sum * sum / w).max(0.0);
                    ww += w;
                }
            }
            *v = (ss / ww).max(0.05);
        }
        let mut any = false;
        for (c, s) in stats.iter().enumerate() {
            let mut ll = 0.0f32;
            let mut known = false;
            for (d, x) in e.knn.iter().enumerate() {
                let w = s[3 * d];
                if x.is_nan() || w <= 1e-6 {
                    continue;
                }
                // The class mean, shrunk towards 0 by one pseudo-track.
                let mean = s[3 * d + 1] / (w + 1.0);
                ll -= 0.5 * (x - mean) * (x - mean) / var[d];
                known = true;
            }
            out[c] = if known { ll } else { f32::NEG_INFINITY };
            any |= known;
        }
        if !any {
            out.iter_mut().for_each(|x| *x = 0.0);
            return;
        }
        // Per dimension, so the scale does not grow with the number of numbers known.
        let dims = e.knn.iter().filter(|x| !x.is_nan()).count().max(1) as f32;
        let best = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        out.iter_mut()
            .for_each(|x| *x = ((*x - best) / dims).max(GAUSS_FLOOR));
    }

    /// The votes for one track, `[SOURCES][classes]` flattened, written into `out` (zeros,
    /// `SOURCES * classes` long), with `exclude` (the track's own index in the reference) left
    /// out.
    pub(crate) fn votes_into(
        &self,
        e: &Encoded,
        exclude: Option<usize>,
        classes: usize,
        out: &mut [f32],
    ) {
        let Some(index) = &self.index else {
            return;
        };
        let mut add = |source: usize, rows: &mut dyn Iterator<Item = (usize, f32)>| {
            let mut total = 0.0;
            let slot = &mut out[source * classes..(source + 1) * classes];
            for (i, w) in rows {
                if Some(i) == exclude {
                    continue;
                }
                for (s, t) in slot.iter_mut().zip(&self.targets[i]) {
                    *s += w * t;
                }
                total += w;
            }
            if total > 0.0 {
                slot.iter_mut().for_each(|s| *s /= total);
            }
        };
        if let Some(rows) = e.album.and_then(|a| index.album.get(&a)) {
            add(0, &mut rows.iter().map(|&i| (i, 1.0)));
        }
        match e.artists.as_slice() {
            [] => {}
            [one] => {
                if let Some(rows) = index.artist.get(one) {
                    add(1, &mut rows.iter().map(|&i| (i, 1.0)));
                }
            }
            many => {
                let mut same_artist: Vec<usize> = many
                    .iter()
                    .filter_map(|a| index.artist.get(a))
                    .flatten()
                    .copied()
                    .collect();
                same_artist.sort_unstable();
                same_artist.dedup();
                add(1, &mut same_artist.into_iter().map(|i| (i, 1.0)));
            }
        }
        let near = self.nearest(index, e, exclude);
        add(2, &mut near.into_iter());
        self.gaussian(index, e, exclude, &mut out[3 * classes..4 * classes]);
    }

    /// The nearest reference tracks by scaled numbers, weighted by closeness: the mean squared
    /// difference over the numbers both tracks know.
    fn nearest(&self, index: &Index, e: &Encoded, exclude: Option<usize>) -> Vec<(usize, f32)> {
        let rows = self.knn_rows.len();
        // One dimension at a time over every row: the loops run across rows, in step.
        let mut sums = vec![0f32; 2 * rows];
        let (dist, count) = sums.split_at_mut(rows);
        for (d, x) in e.knn.iter().enumerate() {
            if x.is_nan() {
                continue;
            }
            let values = &index.knn_values[d * rows..(d + 1) * rows];
            let known = &index.knn_known[d * rows..(d + 1) * rows];
            for (((s, m), v), k) in dist.iter_mut().zip(count.iter_mut()).zip(values).zip(known) {
                let diff = x - v;
                *s += k * diff * diff;
                *m += k;
            }
        }
        let mut dists: Vec<(f32, usize)> = Vec::with_capacity(rows);
        for ((s, m), &i) in dist.iter().zip(count.iter()).zip(&self.knn_rows) {
            if *m > 0.0 && Some(i) != exclude {
                dists.push((s / m, i));
            }
        }
        let k = K.min(dists.len());
        if k == 0 {
            return Vec::new();
        }
        dists.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        dists.truncate(k);
        dists
            .into_iter()
            .map(|(d, i)| (i, (-d).exp().max(1e-6)))
            .collect()
    }

    /// Votes for many tracks in parallel; `loo` leaves each track out of its own votes (the
    /// tracks are then the reference itself, in order).
    pub fn votes_all(&self, encoded: &[&Encoded], loo: bool, classes: usize) -> Vec<f32> {
        let mut out = vec![0.0; encoded.len() * SOURCES * classes];
        if classes == 0 {
            return out;
        }
        out.par_chunks_mut(SOURCES * classes)
            .zip(encoded.par_iter())
            .enumerate()
            .with_min_len(64)
            .for_each(|(i, (slot, e))| self.votes_into(e, loo.then_some(i), classes, slot));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(knn: [f32; KNN_DIMS]) -> Encoded {
        Encoded {
            tokens: Vec::new(),
            album: None,
            artists: Vec::new(),
            knn,
        }
    }

    /// The neighbour distance spelled out: mean squared difference over the numbers both know.
    fn distance(a: &[f32; KNN_DIMS], b: &[f32; KNN_DIMS]) -> Option<f32> {
        let both: Vec<f32> = a
            .iter()
            .zip(b)
            .filter(|(x, y)| !x.is_nan() && !y.is_nan())
            .map(|(x, y)| (x - y) * (x - y))
            .collect();
        (!both.is_empty()).then(|| both.iter().sum::<f32>() / both.len() as f32)
    }

    #[test]
    fn nearest_neighbours_compare_only_known_numbers() {
        // 40 reference tracks with a varying pattern of missing numbers.
        let rows: Vec<Encoded> = (0..40)
            .map(|i| {
                encoded(std::array::from_fn(|d| {
                    if (i + d) % 4 == 0 || (i % 9 == 0 && d > 0) {
                        f32::NAN
                    } else {
                        ((i * 7 + d * 3) % 11) as f32 / 3.0 - 1.5
                    }
                }))
            })
            .collect();
        let refs: Vec<&Encoded> = rows.iter().collect();
        let targets = (0..40)
            .map(|i| vec![(i % 2) as f32, 1.0 - (i % 2) as f32])
            .collect();
        let reference = Reference::new(&refs, targets);
        let index = reference.index.as_ref().expect("an index");
        let query: [f32; KNN_DIMS] = std::array::from_fn(|d| {
            if d == 2 {
                f32::NAN
            } else {
                d as f32 / 5.0 - 1.0
            }
        });
        for exclude in [None, Some(3)] {
            let got = reference.nearest(index, &encoded(query), exclude);
            let mut want: Vec<(f32, usize)> = rows
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != exclude)
                .filter_map(|(i, r)| distance(&query, &r.knn).map(|d| (d, i)))
                .collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert_eq!(got.len(), K);
            let mut got_d: Vec<f32> = got.iter().map(|(_, w)| -w.ln()).collect();
            got_d.sort_by(f32::total_cmp);
            for (g, (w, _)) in got_d.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "distance {g} against {w}");
            }
            assert!(got.iter().all(|(i, _)| Some(*i) != exclude));
        }
    }
}
