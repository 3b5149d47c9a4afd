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

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a steps over `bytes` from state `h`.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// The FNV state after a token kind and its separator: every token of the kind starts there.
fn kind_state(kind: &str) -> u64 {
    fnv(fnv(FNV_OFFSET, kind.as_bytes()), &[0xff])
}

/// FNV-1a, 64 bits: stable across runs, platforms and compiler versions (models store hashes).
pub fn hash(kind: &str, text: &str) -> u64 {
    fnv(kind_state(kind), text.as_bytes())
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
    num_from(fnv(kind_state(kind), b"#"), n)
}

/// [`hash_num`] from the state after its kind and `#`.
fn num_from(state: u64, n: u64) -> u64 {
    fnv(state, &n.to_le_bytes())
}

/// Hashes of the words of `text` (split at anything not alphanumeric, lowercased), each worth
/// `1 / sqrt(words)`, appended to `out`; lowercases without allocating where the text is ASCII.
fn push_words(kind: &str, text: &str, out: &mut Vec<(u64, f32)>) {
    let state = kind_state(kind);
    let start = out.len();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = if w.is_ascii() {
            w.bytes().fold(state, |h, b| {
                (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(FNV_PRIME)
            })
        } else {
            fnv(state, w.to_lowercase().as_bytes())
        };
        out.push((h, 0.0));
    }
    let v = 1.0 / ((out.len() - start).max(1) as f32).sqrt();
    out[start..].iter_mut().for_each(|t| t.1 = v);
}

/// The numbers a track can carry: its own, then the audio descriptors.
const NUMBERS: usize = TRACK_NUMBERS.len() + AUDIO_DESCRIPTORS.len();

/// Hashes that do not depend on the track, computed once.
struct Tables {
    bias: u64,
    /// `missing` token of each number.
    missing: [u64; NUMBERS],
    /// The state after each number's name and `#` (categorical numbers).
    number: [u64; NUMBERS],
    /// Bin tokens of each number, by bin.
    bins: Vec<Vec<u64>>,
    /// Pair tokens by code.
    pairs: Vec<u64>,
    missing_artist: u64,
    missing_album: u64,
    missing_isrc: u64,
    decade: u64,
}

/// Largest pair code plus one: codes are `((i * 16 + j) * 4 + a) * 4 + b`.
const PAIR_CODES: usize = PAIRED.len() * 16 * 16;

fn pair_code(i: usize, j: usize, a: usize, b: usize) -> usize {
    ((i * 16 + j) * 4 + a) * 4 + b
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let pair = fnv(kind_state("pair"), b"#");
        Tables {
            bias: hash("bias", ""),
            missing: std::array::from_fn(|f| hash("missing", numeric_name(f))),
            number: std::array::from_fn(|f| fnv(kind_state(numeric_name(f)), b"#")),
            bins: (0..NUMBERS)
                .map(|f| {
                    (0..bin_centres(f).len())
                        .map(|j| hash_num(numeric_name(f), 100 + j as u64))
                        .collect()
                })
                .collect(),
            pairs: (0..PAIR_CODES)
                .map(|code| num_from(pair, code as u64))
                .collect(),
            missing_artist: hash("missing", "artist"),
            missing_album: hash("missing", "album"),
            missing_isrc: hash("missing", "isrc"),
            decade: fnv(kind_state("decade"), b"#"),
        }
    })
}

fn numeric_values(liked: &LikedTrack) -> [Option<f32>; NUMBERS] {
    let t: &Track = &liked.track;
    let mut v = [None; NUMBERS];
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
fn bin_weights(x: f32, centres: &[f32]) -> Bins {
    let last = centres.len() - 1;
    if x <= centres[0] {
        return Bins::one(0);
    }
    if x >= centres[last] {
        return Bins::one(last);
    }
    let j = centres.iter().position(|c| *c > x).unwrap_or(last);
    let (lo, hi) = (centres[j - 1], centres[j]);
    let w = (x - lo) / (hi - lo);
    Bins {
        weights: [(j - 1, 1.0 - w), (j, w)],
        len: 2,
    }
}

/// One or two (bin, weight) pairs.
struct Bins {
    weights: [(usize, f32); 2],
    len: usize,
}

impl Bins {
    fn one(bin: usize) -> Bins {
        Bins {
            weights: [(bin, 1.0), (0, 0.0)],
            len: 1,
        }
    }

    fn as_slice(&self) -> &[(usize, f32)] {
        &self.weights[..self.len]
    }
}

/// Encodes one track.
pub fn encode(liked: &LikedTrack) -> Encoded {
    let tables = tables();
    let t = &liked.track;
    let mut tokens: Vec<(u64, f32)> = Vec::with_capacity(128);
    tokens.push((tables.bias, 1.0));
    let mut artists = Vec::with_capacity(t.artists.len());
    for (id, name) in &t.artists {
        let key = match id {
            Some(id) => hash("artist", id),
            None => hash("artist-name", &name.to_lowercase()),
        };
        artists.push(key);
        tokens.push((key, 1.0));
    }
    if t.artists.is_empty() {
        tokens.push((tables.missing_artist, 1.0));
    }
    let album = match (&t.album_id, &t.album_name) {
        (Some(id), _) => Some(hash("album", id)),
        (None, Some(name)) => Some(hash("album-name", &name.to_lowercase())),
        (None, None) => None,
    };
    tokens.push((album.unwrap_or(tables.missing_album), 1.0));
    push_words("track-word", &t.name, &mut tokens);
    if let Some(name) = &t.album_name {
        push_words("album-word", name, &mut tokens);
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
        None => tokens.push((tables.missing_isrc, 1.0)),
    }
    if let Some(year) = t.release_year() {
        tokens.push((num_from(tables.decade, (year / 10) as u64), 1.0));
    }

    let values = numeric_values(liked);
    let mut knn = [f32::NAN; KNN_DIMS];
    let mut k = 0;
    for (f, value) in values.iter().enumerate() {
        match value {
            None => tokens.push((tables.missing[f], 1.0)),
            Some(x) => {
                let centres = bin_centres(f);
                if centres.is_empty() {
                    tokens.push((num_from(tables.number[f], x.round() as i64 as u64), 1.0));
                } else {
                    for &(j, w) in bin_weights(*x, centres).as_slice() {
                        if w > 0.0 {
                            tokens.push((tables.bins[f][j], w));
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
    let levels: [Option<usize>; PAIRED.len()] = std::array::from_fn(|i| {
        let (f, lo, hi) = PAIRED[i];
        values[f].map(|x| usize::from(x > lo) + usize::from(x > hi))
    });
    for i in 0..PAIRED.len() {
        for j in i + 1..PAIRED.len() {
            if let (Some(a), Some(b)) = (levels[i], levels[j]) {
                tokens.push((tables.pairs[pair_code(i, j, a, b)], PAIR_VALUE));
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
        let w = w.as_slice();
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].0, 2);
        assert!((w[0].1 - 0.5).abs() < 1e-5 && (w[1].1 - 0.5).abs() < 1e-5);
        assert_eq!(bin_weights(-1.0, &[0.0, 1.0]).as_slice(), [(0, 1.0)]);
        assert_eq!(bin_weights(9.0, &[0.0, 1.0]).as_slice(), [(1, 1.0)]);
    }

    #[test]
    fn precomputed_tokens_hash_as_spelled_out() {
        let t = tables();
        assert_eq!(t.missing[6], hash("missing", "danceability"));
        assert_eq!(t.bins[0][3], hash_num("year", 103));
        assert_eq!(t.pairs[pair_code(2, 5, 1, 2)], hash_num("pair", 598));
        assert_eq!(num_from(t.number[8], 7), hash_num("key", 7));
        let mut out = Vec::new();
        push_words("track-word", "Héllo, WORLD ΣΑΣ", &mut out);
        let expected: Vec<u64> = ["héllo", "world", "σας"]
            .iter()
            .map(|w| hash("track-word", w))
            .collect();
        assert_eq!(out.iter().map(|t| t.0).collect::<Vec<_>>(), expected);
        assert!(out.iter().all(|t| (t.1 - 1.0 / 3f32.sqrt()).abs() < 1e-6));
    }

    #[test]
    fn hashing_is_stable() {
        assert_eq!(hash("a", "b"), hash("a", "b"));
        assert_ne!(hash("a", "b"), hash("ab", ""));
        assert_ne!(hash("artist", "x"), hash("album", "x"));
    }
}
