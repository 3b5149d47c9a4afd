//! The model's guess for a track in one layer, as a prompt shows it and keeps it.

use serde::{Deserialize, Serialize};

use super::Label;

/// The model's guess for a track in one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Guess {
    pub label: Label,
    /// 0..=1.
    pub confidence: f32,
    /// The model's evidence for it, when there is some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Why>,
}

/// Labelled tracks that speak for a guess, and what they share with the track.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Why {
    pub basis: WhyBasis,
    /// Names of the labelled tracks, strongest first.
    pub tracks: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhyBasis {
    /// From the same album.
    Album,
    /// By the same artist.
    Artist,
    /// Nearest by sound and era.
    Sound,
}
