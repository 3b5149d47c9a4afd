//! Turning a liked track into model input: hashed tokens for text, ids and binned numbers, and
//! a scaled numeric vector for the nearest-neighbour vote. Missing values are tokens of their
//! own, never a zero that means something else.

use chrono::Datelike;
use rayon::prelude::*;

use crate::domain::{AUDIO_DESCRIPTORS, LikedTrack, Track};

/// The version of the feature schema; stored with every model. A model trained under another
/// schema must be retrained, not loaded.
pub const FEATURE_SCHEMA: u32 = 1;

/// The numbers a track carries before its audio descriptors, in a fixed order.
const TRACK_NUMBERS: [&str; 6] = [
    "year",
    "duration_min",
    "track_number",
    "total_tracks",
    "disc_number",
    "added_year",
];

/// The name of numeric feature `f`: the track's own numbers, then the audio descriptors.
fn numeric_name(f: usize) -> &'static str {
    TRACK_NUMBERS
        .get(f)
        .or_else(|| AUDIO_DESCRIPTORS.get(f - TRACK_NUMBERS.len()))
        .copied()
        .unwrap_or("unknown")
}

/// Centres of the piecewise-linear bins of each numeric feature (empty: categorical).
fn bin_centres(feature: usize) -> &'static [f32] {
    match feature {
        0 => &[
            1960.0, 1970.0, 1980.0, 1990.0, 2000.0, 2005.0, 2010.0, 2013.0, 2015.0, 2017.0, 2018.0,
            2019.0, 2020.0,
        ],
        1 => &[1.5, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0],
        2 => &[1.0, 2.0, 4.0, 8.0, 16.0],
        3 => &[1.0, 2.0, 6.0, 12.0, 20.0, 40.0],
        4 => &[1.0, 2.0, 3.0],
        5 => &[
            2008.0, 2012.0, 2016.0, 2019.0, 2021.0, 2023.0, 2025.0, 2027.0,
        ],
        6 | 7 | 15 => &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        8 | 10 => &[],
        9 => &[
            -30.0, -15.0, -11.0, -9.0, -7.5, -6.5, -5.5, -4.5, -3.5, -2.0, 0.0,
        ],
        11 => &[0.0, 0.03, 0.045, 0.06, 0.08, 0.12, 0.2, 0.3, 0.5, 1.0],
        12 => &[0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0],
        13 => &[0.0, 0.0001, 0.001, 0.01, 0.1, 0.3, 0.6, 0.85, 1.0],
        14 => &[0.0, 0.06, 0.09, 0.12, 0.16, 0.25, 0.4, 0.7, 1.0],
        16 => &[
            60.0, 80.0, 90.0, 98.0, 105.0, 115.0, 122.0, 127.0, 135.0, 150.0, 170.0, 200.0,
        ],
        _ => &[],
    }
}

/// Centre and scale of the numbers that enter the neighbour distance (None: left out).
fn knn_scale(feature: usize) -> Option<(f32, f32)> {
    match feature {
        0 => Some((2010.0, 7.0)),
        1 => Some((3.7, 0.8)),
        6 | 7 | 15 => Some((0.5, 0.15)),
        9 => Some((-7.0, 2.5)),
        11 => Some((0.1, 0.08)),
        12 => Some((0.2, 0.2)),
        13 => Some((0.1, 0.2)),
        14 => Some((0.2, 0.15)),
        16 => Some((120.0, 25.0)),
        _ => None,
    }
}

/// Input value of a pair token (many pairs share the work, so each counts little).
const PAIR_VALUE: f32 = 0.3;

/// Descriptors crossed in pairs, with their tertile cut points: (feature, low, high).
const PAIRED: [(usize, f32, f32); 11] = [
    (0, 2008.0, 2016.0),
    (1, 3.2, 3.9),
    (6, 0.6, 0.72),
    (7, 0.63, 0.79),
    (9, -7.8, -5.6),
    (11, 0.045, 0.08),
    (12, 0.03, 0.15),
    (13, 0.0001, 0.01),
    (14, 0.1, 0.16),
    (15, 0.4, 0.6),
    (16, 105.0, 127.0),
];

/// The number of dimensions of [`Encoded::knn`].
pub const KNN_DIMS: usize = 11;

/// One track, ready for the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// (token hash, value) pairs.
    pub tokens: Vec<(u64, f32)>,
    /// Album key (id, else name), for the same-album vote.
    pub album: Option<u64>,
    /// Artist keys (id, else name), for the same-artist vote.
    pub artists: Vec<u64>,
    /// Scaled numbers for the neighbour distance; NaN when missing.
    pub knn: [f32; KNN_DIMS],
}

/// FNV-1a, 64 bits: stable across runs, platforms and compiler versions (models store hashes).
pub fn hash(kind: &str, text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in kind.bytes().chain([0xff]).chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A map keyed by token hashes, which are already well mixed: no second hashing.
pub type TokenMap<V> =
    std::collections::HashMap<u64, V, std::hash::BuildHasherDefault<TokenHasher>>;

/// Passes a `u64` key through unchanged (keys are FNV hashes already).
#[derive(Default)]
pub struct TokenHasher(u64);

impl std::hash::Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The hash of a token made of a kind and a number (bins, categories, pairs), without
/// formatting the number.
pub fn hash_num(kind: &str, n: u64) -> u64 {
    let mut h = hash(kind, "#");
    for b in n.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

fn numeric_values(liked: &LikedTrack) -> [Option<f32>; 17] {
    let t: &Track = &liked.track;
    let mut v = [None; 17];
    v[0] = t.release_year().map(|y| y as f32);
    v[1] = t.duration_ms.map(|d| d as f32 / 60_000.0);
    v[2] = t.track_number.map(|n| n as f32);
    v[3] = t.total_tracks.map(|n| n as f32);
    v[4] = t.disc_number.map(|n| n as f32);
    v[5] = Some(liked.added_at.year() as f32 + liked.added_at.ordinal0() as f32 / 366.0);
    if let Some(a) = &t.audio {
        for (i, x) in a.values().into_iter().enumerate() {
            if x.is_finite() {
                v[6 + i] = Some(x);
            }
        }
    }
    v
}

/// Piecewise-linear weights of `x` over `centres`: at most two neighbouring bins, summing to 1.
fn bin_weights(x: f32, centres: &[f32]) -> Vec<(usize, f32)> {
    let last = centres.len() - 1;
    if x <= centres[0] {
        return vec![(0, 1.0)];
    }
    if x >= centres[last] {
        return vec![(last, 1.0)];
    }
    let j = centres.iter().position(|c| *c > x).unwrap_or(last);
    let (lo, hi) = (centres[j - 1], centres[j]);
    let w = (x - lo) / (hi - lo);
    vec![(j - 1, 1.0 - w), (j, w)]
}

/// Encodes one track.
pub fn encode(liked: &LikedTrack) -> Encoded {
    let t = &liked.track;
    let mut tokens: Vec<(u64, f32)> = vec![(hash("bias", ""), 1.0)];
    let mut artists = Vec::new();
    for (id, name) in &t.artists {
        let key = match id {
            Some(id) => hash("artist", id),
            None => hash("artist-name", &name.to_lowercase()),
        };
        artists.push(key);
        tokens.push((key, 1.0));
    }
    if t.artists.is_empty() {
        tokens.push((hash("missing", "artist"), 1.0));
    }
    let album = match (&t.album_id, &t.album_name) {
        (Some(id), _) => Some(hash("album", id)),
        (None, Some(name)) => Some(hash("album-name", &name.to_lowercase())),
        (None, None) => None,
    };
    match album {
        Some(a) => tokens.push((a, 1.0)),
        None => tokens.push((hash("missing", "album"), 1.0)),
    }
    for (kind, text) in [
        ("track-word", Some(&t.name)),
        ("album-word", t.album_name.as_ref()),
    ] {
        let Some(text) = text else { continue };
        let ws = words(text);
        let v = 1.0 / (ws.len().max(1) as f32).sqrt();
        for w in ws {
            tokens.push((hash(kind, &w), v));
        }
    }
    let cat = |kind: &str, value: Option<&str>| match value {
        Some(v) => (hash(kind, v), 1.0),
        None => (hash("missing", kind), 1.0),
    };
    tokens.push(cat("album-type", t.album_type.as_deref()));
    tokens.push(cat(
        "explicit",
        t.explicit.map(|e| if e { "y" } else { "n" }),
    ));
    tokens.push(cat("precision", t.release_precision.map(|p| p.as_str())));
    match t.isrc_parts() {
        Some((country, registrant, _)) => {
            tokens.push((hash("isrc-country", country), 1.0));
            tokens.push((hash("isrc-registrant", registrant), 1.0));
        }
        None => tokens.push((hash("missing", "isrc"), 1.0)),
    }
    if let Some(year) = t.release_year() {
        tokens.push((hash_num("decade", (year / 10) as u64), 1.0));
    }

    let values = numeric_values(liked);
    let mut knn = [f32::NAN; KNN_DIMS];
    let mut k = 0;
    for (f, value) in values.iter().enumerate() {
        let name = numeric_name(f);
        match value {
            None => tokens.push((hash("missing", name), 1.0)),
            Some(x) => {
                let centres = bin_centres(f);
                if centres.is_empty() {
                    tokens.push((hash_num(name, x.round() as i64 as u64), 1.0));
                } else {
                    for (j, w) in bin_weights(*x, centres) {
                        if w > 0.0 {
                            tokens.push((hash_num(name, 100 + j as u64), w));
                        }
                    }
                }
            }
        }
        if let Some((centre, scale)) = knn_scale(f) {
            if let Some(x) = value {
                knn[k] = (x - centre) / scale;
            }
            k += 1;
        }
    }
    // Coarse pairs of sound descriptors (low/mid/high each), so a linear layer can carve
    // regions of two descriptors at once, as a tree would.
    {
        let levels: Vec<Option<usize>> = PAIRED
            .iter()
            .map(|&(f, lo, hi)| values[f].map(|x| usize::from(x > lo) + usize::from(x > hi)))
            .collect();
        for i in 0..PAIRED.len() {
            for j in i + 1..PAIRED.len() {
                if let (Some(a), Some(b)) = (levels[i], levels[j]) {
                    let code = ((i * 16 + j) * 4 + a) * 4 + b;
                    tokens.push((hash_num("pair", code as u64), PAIR_VALUE));
                }
            }
        }
    }
    Encoded {
        tokens,
        album,
        artists,
        knn,
    }
}

/// Encodes many tracks in parallel.
pub fn encode_all(tracks: &[LikedTrack]) -> Vec<Encoded> {
    tracks.par_iter().map(encode).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AudioFeatures, TrackId};
    use chrono::TimeZone;

    fn liked(name: &str) -> LikedTrack {
        LikedTrack {
            track: Track::bare(TrackId::parse("6f807x0ima9a1j3VPbc7VN").unwrap(), name),
            added_at: chrono::Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn knn_dims_match_the_scaled_features() {
        assert_eq!(
            (0..17).filter(|f| knn_scale(*f).is_some()).count(),
            KNN_DIMS
        );
    }

    #[test]
    fn missing_values_are_their_own_tokens() {
        let bare = encode(&liked("Song"));
        assert!(bare.tokens.contains(&(hash("missing", "album"), 1.0)));
        assert!(
            bare.tokens
                .contains(&(hash("missing", "danceability"), 1.0))
        );
        assert!(bare.knn.iter().all(|x| x.is_nan()));

        let mut l = liked("Song");
        l.track.audio = Some(AudioFeatures::from_values([0.0; 11]));
        l.track.release_date = Some("1999-01-01".into());
        let full = encode(&l);
        assert!(
            !full
                .tokens
                .contains(&(hash("missing", "danceability"), 1.0))
        );
        // A zero is a value, distinct from missing.
        assert!(full.tokens.contains(&(hash_num("danceability", 100), 1.0)));
        assert!(!full.knn[0].is_nan());
    }

    #[test]
    fn bins_interpolate_between_neighbours() {
        let w = bin_weights(0.25, &[0.0, 0.1, 0.2, 0.3]);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0, 2);
        assert!((w[0].1 - 0.5).abs() < 1e-5 && (w[1].1 - 0.5).abs() < 1e-5);
        assert_eq!(bin_weights(-1.0, &[0.0, 1.0]), vec![(0, 1.0)]);
        assert_eq!(bin_weights(9.0, &[0.0, 1.0]), vec![(1, 1.0)]);
    }

    #[test]
    fn hashing_is_stable() {
        assert_eq!(hash("a", "b"), hash("a", "b"));
        assert_ne!(hash("a", "b"), hash("ab", ""));
        assert_ne!(hash("artist", "x"), hash("album", "x"));
    }
}
