//! Invalid input, said in a sentence a member can read.

/// Why a request breaks one of sublist's rules. `Display` is the sentence shown to the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("A name can't be empty.")]
    EmptyName,
    #[error("“{name}” is {chars} characters long; names can be at most {max}.")]
    NameTooLong {
        name: String,
        chars: usize,
        max: usize,
    },
    #[error("You already have a layer called “{0}”.")]
    DuplicateLayer(String),
    #[error("The layer “{layer}” already has a sublist called “{name}”.")]
    DuplicateSublistName { layer: String, name: String },
    #[error("The layer “{layer}” already uses {emoji} for “{used_by}”.")]
    DuplicateEmoji {
        layer: String,
        emoji: String,
        used_by: String,
    },
    #[error("{0} is reserved for the void; pick another emoji.")]
    ReservedEmoji(String),
    #[error("“{0}” is not an emoji. Use one emoji, like 🎸, or a server emoji.")]
    NotAnEmoji(String),
    #[error(
        "The layer “{layer}” already has {max} sublists, the most a Discord message can offer as reactions."
    )]
    TooManySublists { layer: String, max: usize },
    #[error("The layer “{layer}” is mutual: a track can go to only one of its sublists.")]
    MutualTakesOne { layer: String },
    #[error("The layer “{layer}” is complete: every track must go to at least one sublist.")]
    CompleteNeedsSublist { layer: String },
    #[error("The layer “{layer}” has no sublist with that id.")]
    UnknownSublist { layer: String },
    #[error("“{0}” is not a Spotify track id.")]
    BadTrackId(String),
}
