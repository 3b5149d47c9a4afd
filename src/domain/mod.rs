//! The vocabulary of sublist and the rules between its words: members, layers, sublists, the
//! void, labels and tracks. Pure: no I/O, no async, nothing but std and serde.

mod error;
mod guess;
mod label;
mod layer;
mod track;

pub use error::DomainError;
pub use guess::{Guess, Why, WhyBasis};
pub use label::{Label, LabelSource, LabelledTrack};
pub use layer::{
    Emoji, Layer, LayerKind, LayerRules, MAX_NAME_CHARS, MAX_SUBLISTS_PER_LAYER, Sublist,
    VOID_EMOJI, validate_layer_name,
};
pub use track::{AUDIO_DESCRIPTORS, AudioFeatures, LikedTrack, ReleasePrecision, Track, TrackId};

use serde::{Deserialize, Serialize};

/// A Discord user who uses the bot. The id is the Discord snowflake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberId(pub u64);

/// A layer in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LayerId(pub i64);

/// A sublist in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SublistId(pub i64);

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The Spotify account a member linked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotifyAccount {
    /// The stable id from `GET /me` (`account_id`), used to keep one account to one member.
    pub account_id: String,
    /// The user id that appears in playlist owners.
    pub user_id: String,
    pub display_name: Option<String>,
    /// The client id of the Spotify app the member was linked through.
    pub app_client_id: String,
}

/// Where a member's motherlist comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Motherlist {
    /// The member's Liked Songs.
    #[default]
    LikedSongs,
    /// A playlist the member owns or collaborates on.
    Playlist(String),
}
