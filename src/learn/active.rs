//! Which tracks to ask a member about next: the ones the model is least sure of, weighted by
//! how many other tracks share their artist or album (an answer there teaches the most), and
//! kept diverse so the member is not asked about ten near-identical tracks. Before any model
//! exists the same ranking runs on coverage alone, spreading the questions over artists,
//! albums, sound and time.

use std::collections::HashMap;

use super::features::{Encoded, encode_all};
use super::model::TrainedModel;
use crate::domain::LikedTrack;

/// The most questions ranked with the diversity pass: no more prompts than this are posted at
/// once (a `/label` asks for at most 10, a sync posts within the member's budget).
const MAX_DIVERSE: usize = 25;

/// Indices into `candidates` of the `n` tracks to ask about, best first. Time is linear in the
/// candidates (times at most [`MAX_DIVERSE`] picks), plus a sort when more than that are asked
/// for.
pub fn rank_questions(
    model: Option<&TrainedModel>,
    candidates: &[LikedTrack],
    n: usize,
) -> Vec<usize> {
    let n = n.min(candidates.len());
    if n == 0 {
        return Vec::new();
    }
    let encoded = encode_all(candidates);
    let uncertainty: Vec<f32> = match model {
        Some(m) => m
            .predict(candidates)
            .iter()
            .map(|p| (1.0 - p.confidence).max(0.01))
            .collect(),
        None => vec![1.0; candidates.len()],
    };
    let mut album_count: HashMap<u64, f32> = HashMap::new();
    let mut artist_count: HashMap<u64, f32> = HashMap::new();
    for e in &encoded {
        if let Some(a) = e.album {
            *album_count.entry(a).or_default() += 1.0;
        }
        for a in &e.artists {
            *artist_count.entry(*a).or_default() += 1.0;
        }
    }
    let density: Vec<f32> = encoded
        .iter()
        .map(|e| {
            let album = e.album.map_or(0.0, |a| album_count[&a]);
            let artist = e
                .artists
                .iter()
                .map(|a| artist_count[a])
                .fold(0.0, f32::max);
            1.0 + (album.max(artist)).ln()
        })
        .collect();
    let mut score: Vec<f32> = uncertainty
        .iter()
        .zip(&density)
        .map(|(u, d)| u * d.sqrt())
        .collect();
    // Best first; earliest liked first among equals, so ties spread over time deterministically.
    let before = |score: &[f32], i: usize, j: usize| {
        score[i] > score[j]
            || (score[i] == score[j] && candidates[i].added_at < candidates[j].added_at)
    };
    let diverse = n.min(MAX_DIVERSE);
    let mut picked = Vec::with_capacity(n);
    let mut taken = vec![false; candidates.len()];
    // The first few are chosen one at a time, each lowering the value of tracks like it:
    // linear in the candidates per pick, and never more picks than can be posted at once.
    while picked.len() < diverse {
        let mut best: Option<usize> = None;
        for (i, _) in taken.iter().enumerate().filter(|(_, t)| !**t) {
            if best.is_none_or(|b| before(&score, i, b)) {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        taken[b] = true;
        picked.push(b);
        for i in 0..candidates.len() {
            if !taken[i] {
                score[i] *= similarity_penalty(&encoded[b], &encoded[i]);
            }
        }
    }
    if picked.len() < n {
        // The rest (never posted in one go) in the order of their scores after those picks.
        let mut rest: Vec<usize> = (0..candidates.len()).filter(|&i| !taken[i]).collect();
        rest.sort_by(|&i, &j| {
            score[j]
                .total_cmp(&score[i])
                .then(candidates[i].added_at.cmp(&candidates[j].added_at))
        });
        rest.truncate(n - picked.len());
        picked.extend(rest);
    }
    picked
}

/// How much asking about `a` lowers the value of asking about `b`.
fn similarity_penalty(a: &Encoded, b: &Encoded) -> f32 {
    let mut p = 1.0;
    if a.album.is_some() && a.album == b.album {
        p *= 0.2;
    }
    if a.artists.iter().any(|x| b.artists.contains(x)) {
        p *= 0.4;
    }
    let (mut d, mut m) = (0.0f32, 0);
    for (x, y) in a.knn.iter().zip(&b.knn) {
        if !x.is_nan() && !y.is_nan() {
            d += (x - y) * (x - y);
            m += 1;
        }
    }
    if m > 0 {
        p *= 1.0 - 0.5 * (-d / m as f32).exp();
    }
    p
}
