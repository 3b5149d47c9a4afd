//! Why a track was placed where it was, in the terms of the model's own votes: labelled tracks
//! of the chosen sublist from the same album, else by the same artist, else the nearest by sound
//! and era (the scaled numbers the neighbour vote compares).

use super::features::{Encoded, encode};
use crate::domain::{LikedTrack, TrackId};

/// What the evidence tracks share with the placed track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis {
    Album,
    Artist,
    /// Nearest by the scaled numbers (sound descriptors where known, year, duration).
    Sound,
}

/// Labelled tracks that speak for a placement.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub basis: Basis,
    /// Indices into the labelled tracks given to [`Examples::new`], strongest first.
    pub tracks: Vec<usize>,
}

/// The labelled tracks of a layer, encoded once, to explain many placements.
pub struct Examples {
    tracks: Vec<(TrackId, Encoded)>,
}

impl Examples {
    pub fn new(labelled: &[LikedTrack]) -> Examples {
        Examples {
            tracks: labelled
                .iter()
                .map(|t| (t.track.id.clone(), encode(t)))
                .collect(),
        }
    }

    /// Up to `n` of the examples for which `placed` holds (those labelled with the sublist, or
    /// the void, that `track` was placed in) that speak for the placement: the same album, else
    /// the same artist, else the nearest by sound and era, nearest first. `None` when none
    /// shares anything with it. The track itself is never its own evidence.
    pub fn evidence(
        &self,
        track: &LikedTrack,
        placed: &dyn Fn(usize) -> bool,
        n: usize,
    ) -> Option<Evidence> {
        let e = encode(track);
        let others: Vec<(usize, &Encoded)> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(i, (id, _))| *id != track.track.id && placed(*i))
            .map(|(i, (_, o))| (i, o))
            .collect();
        let pick = |basis: Basis, mut found: Vec<(f32, usize)>| {
            found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            found.truncate(n);
            (!found.is_empty()).then(|| Evidence {
                basis,
                tracks: found.into_iter().map(|(_, i)| i).collect(),
            })
        };
        let by_distance = |matches: &dyn Fn(&Encoded) -> bool| -> Vec<(f32, usize)> {
            others
                .iter()
                .filter(|(_, o)| matches(o))
                .map(|(i, o)| (distance(&e, o).unwrap_or(f32::INFINITY), *i))
                .collect()
        };
        if n == 0 {
            return None;
        }
        if let Some(album) = e.album
            && let Some(ev) = pick(Basis::Album, by_distance(&|o| o.album == Some(album)))
        {
            return Some(ev);
        }
        if let Some(ev) = pick(
            Basis::Artist,
            by_distance(&|o| o.artists.iter().any(|a| e.artists.contains(a))),
        ) {
            return Some(ev);
        }
        let near: Vec<(f32, usize)> = others
            .iter()
            .filter_map(|(i, o)| distance(&e, o).map(|d| (d, *i)))
            .collect();
        pick(Basis::Sound, near)
    }
}

/// Mean squared difference of the scaled numbers both tracks have; `None` when they share none.
fn distance(a: &Encoded, b: &Encoded) -> Option<f32> {
    let (mut d, mut m) = (0.0f32, 0usize);
    for (x, y) in a.knn.iter().zip(&b.knn) {
        let diff = x - y;
        if !diff.is_nan() {
            d += diff * diff;
            m += 1;
        }
    }
    (m > 0).then(|| d / m as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AudioFeatures, Track, TrackId};
    use chrono::TimeZone;

    fn liked(n: usize, artist: &str, album: &str, energy: f32) -> LikedTrack {
        let mut t = Track::bare(
            TrackId::parse(&format!("{n:0>22}")).unwrap(),
            format!("Song {n}"),
        );
        t.artists = vec![(None, artist.into())];
        t.album_id = Some(album.into());
        let mut v = [0.5f32; 11];
        v[1] = energy;
        t.audio = Some(AudioFeatures::from_values(v));
        LikedTrack {
            track: t,
            added_at: chrono::Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap(),
        }
    }

    #[test]
    fn album_before_artist_before_sound_and_nearest_first() {
        let placed = vec![
            liked(1, "A", "x", 0.9),
            liked(2, "B", "y", 0.31),
            liked(3, "B", "z", 0.8),
            liked(4, "C", "w", 0.3),
        ];
        let ex = Examples::new(&placed);
        let all = |_: usize| true;
        let evidence = |t: &LikedTrack, n| ex.evidence(t, &all, n);
        let same_album = liked(9, "Q", "x", 0.1);
        assert_eq!(
            evidence(&same_album, 2),
            Some(Evidence {
                basis: Basis::Album,
                tracks: vec![0]
            })
        );
        let same_artist = liked(9, "B", "new", 0.3);
        assert_eq!(
            evidence(&same_artist, 2),
            Some(Evidence {
                basis: Basis::Artist,
                tracks: vec![1, 2]
            })
        );
        let stranger = liked(9, "Z", "new", 0.3);
        assert_eq!(
            evidence(&stranger, 2),
            Some(Evidence {
                basis: Basis::Sound,
                tracks: vec![3, 1]
            })
        );
        // Only the tracks placed alike count; a track is not its own evidence; nothing to
        // compare is no evidence.
        assert_eq!(
            ex.evidence(&same_artist, &|i| i != 1, 2),
            Some(Evidence {
                basis: Basis::Artist,
                tracks: vec![2]
            })
        );
        assert_eq!(ex.evidence(&placed[0], &|i| i == 0, 2), None);
        assert_eq!(ex.evidence(&stranger, &|_| false, 2), None);
        assert_eq!(evidence(&stranger, 0), None);
    }
}
