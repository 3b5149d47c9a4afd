//! Layers and their sublists, and the rules that keep them usable from Discord.

use serde::{Deserialize, Serialize};

use super::{DomainError, LayerId, MemberId, SublistId};

/// The most sublists a layer may have: a Discord message takes at most 20 distinct reactions.
pub const MAX_SUBLISTS_PER_LAYER: usize = 20;
/// The longest layer or sublist name; Discord option values and Spotify names stay readable.
pub const MAX_NAME_CHARS: usize = 100;
/// The emoji that stands for the void in incomplete layers; no sublist may use it.
pub const VOID_EMOJI: &str = "🕳️";

/// The two flags that decide what a label in a layer may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRules {
    /// A track goes to at most one sublist of the layer.
    pub mutual: bool,
    /// Every track goes somewhere: the void is not a valid label.
    pub complete: bool,
}

/// The four cases the two flags make; each has its own model head and decision rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LayerKind {
    /// One sublist per track.
    MutualComplete,
    /// One sublist, or the void.
    MutualIncomplete,
    /// One or more sublists, never none.
    MultiComplete,
    /// Any set of sublists, possibly none (the void).
    MultiIncomplete,
}

impl LayerRules {
    pub fn kind(self) -> LayerKind {
        match (self.mutual, self.complete) {
            (true, true) => LayerKind::MutualComplete,
            (true, false) => LayerKind::MutualIncomplete,
            (false, true) => LayerKind::MultiComplete,
            (false, false) => LayerKind::MultiIncomplete,
        }
    }

    /// A short phrase for messages, e.g. "mutual, complete".
    pub fn describe(self) -> &'static str {
        match self.kind() {
            LayerKind::MutualComplete => "mutual, complete: each track goes to exactly one sublist",
            LayerKind::MutualIncomplete => {
                "mutual, incomplete: each track goes to one sublist or the void"
            }
            LayerKind::MultiComplete => {
                "non-mutual, complete: each track goes to one or more sublists"
            }
            LayerKind::MultiIncomplete => {
                "non-mutual, incomplete: each track goes to any sublists, or the void"
            }
        }
    }
}

impl LayerKind {
    pub fn rules(self) -> LayerRules {
        match self {
            LayerKind::MutualComplete => LayerRules {
                mutual: true,
                complete: true,
            },
            LayerKind::MutualIncomplete => LayerRules {
                mutual: true,
                complete: false,
            },
            LayerKind::MultiComplete => LayerRules {
                mutual: false,
                complete: true,
            },
            LayerKind::MultiIncomplete => LayerRules {
                mutual: false,
                complete: false,
            },
        }
    }

    /// The two-letter code used by the evaluation protocol (MC, MI, NC, NI).
    pub fn code(self) -> &'static str {
        match self {
            LayerKind::MutualComplete => "MC",
            LayerKind::MutualIncomplete => "MI",
            LayerKind::MultiComplete => "NC",
            LayerKind::MultiIncomplete => "NI",
        }
    }

    pub const ALL: [LayerKind; 4] = [
        LayerKind::MutualComplete,
        LayerKind::MutualIncomplete,
        LayerKind::MultiComplete,
        LayerKind::MultiIncomplete,
    ];
}

/// An emoji a member picked for a sublist: one Unicode emoji, or a Discord custom emoji
/// written `<:name:id>` / `<a:name:id>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(raw: &str) -> Result<Emoji, DomainError> {
        let s = raw.trim();
        if is_custom_emoji(s) || is_unicode_emoji(s) {
            if same_emoji(s, VOID_EMOJI) {
                return Err(DomainError::ReservedEmoji(s.to_string()));
            }
            Ok(Emoji(s.to_string()))
        } else {
            Err(DomainError::NotAnEmoji(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Emoji {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_custom_emoji(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('<').and_then(|s| s.strip_suffix('>')) else {
        return false;
    };
    let inner = inner.strip_prefix('a').unwrap_or(inner);
    let mut parts = inner.split(':');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(""), Some(name), Some(id), None)
            if (2..=32).contains(&name.len())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !id.is_empty() && id.len() <= 20 && id.chars().all(|c| c.is_ascii_digit())
    )
}

/// One emoji grapheme: pictographs, optionally joined with ZWJ, variation selectors, skin
/// tones, keycaps and flag pairs. Plain letters, digits and punctuation are refused.
fn is_unicode_emoji(s: &str) -> bool {
    if s.is_empty() || s.chars().count() > 16 {
        return false;
    }
    let mut has_pictograph = false;
    for c in s.chars() {
        let cp = c as u32;
        let pictograph = matches!(cp,
            0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2300..=0x23FF | 0x2B00..=0x2BFF
            | 0x2190..=0x21FF | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x00A9 | 0x00AE
            | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x24C2 | 0x25AA..=0x25FE | 0x2934 | 0x2935);
        let joiner = matches!(cp, 0x200D | 0xFE0F | 0xFE0E | 0x20E3 | 0xE0020..=0xE007F);
        let keycap_base = c == '#' || c == '*' || c.is_ascii_digit();
        if pictograph {
            has_pictograph = true;
        } else if !(joiner || keycap_base) {
            return false;
        }
        if keycap_base && !s.contains('\u{20E3}') {
            return false;
        }
    }
    has_pictograph || s.contains('\u{20E3}')
}

/// Equal once variation selectors are ignored ("🕳" and "🕳️" are the same emoji).
fn same_emoji(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.chars().filter(|c| *c != '\u{FE0F}').collect::<String>();
    strip(a) == strip(b)
}

/// Checks a layer or sublist name, and returns it trimmed.
pub fn validate_layer_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(DomainError::EmptyName);
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(DomainError::NameTooLong {
            name: name.chars().take(20).collect::<String>() + "…",
            chars,
            max: MAX_NAME_CHARS,
        });
    }
    Ok(name.to_string())
}

/// A sublist: a Spotify playlist the bot maintains, one choice of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sublist {
    pub id: SublistId,
    pub name: String,
    pub emoji: Emoji,
    /// The Spotify playlist, once created (on first use) or adopted.
    pub playlist_id: Option<String>,
}

/// A layer: a set of sublists that decides, for every track, where it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub id: LayerId,
    pub member: MemberId,
    pub name: String,
    pub rules: LayerRules,
    pub sublists: Vec<Sublist>,
}

impl Layer {
    pub fn kind(&self) -> LayerKind {
        self.rules.kind()
    }

    pub fn sublist(&self, id: SublistId) -> Option<&Sublist> {
        self.sublists.iter().find(|s| s.id == id)
    }

    pub fn sublist_by_name(&self, name: &str) -> Option<&Sublist> {
        let name = name.trim();
        self.sublists
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    pub fn sublist_by_emoji(&self, emoji: &str) -> Option<&Sublist> {
        self.sublists
            .iter()
            .find(|s| same_emoji(s.emoji.as_str(), emoji))
    }

    /// Whether `emoji` stands for the void in this layer.
    pub fn is_void_emoji(&self, emoji: &str) -> bool {
        !self.rules.complete && same_emoji(emoji, VOID_EMOJI)
    }

    /// Checks that a new sublist with this name and emoji may join the layer, and returns the
    /// cleaned name and parsed emoji. `except` skips one sublist (when editing it).
    pub fn check_new_sublist(
        &self,
        name: &str,
        emoji: &str,
        except: Option<SublistId>,
    ) -> Result<(String, Emoji), DomainError> {
        let name = validate_layer_name(name)?;
        let emoji = Emoji::parse(emoji)?;
        let others = || self.sublists.iter().filter(|s| Some(s.id) != except);
        if except.is_none() && self.sublists.len() >= MAX_SUBLISTS_PER_LAYER {
            return Err(DomainError::TooManySublists {
                layer: self.name.clone(),
                max: MAX_SUBLISTS_PER_LAYER,
            });
        }
        if others().any(|s| s.name.to_lowercase() == name.to_lowercase()) {
            return Err(DomainError::DuplicateSublistName {
                layer: self.name.clone(),
                name,
            });
        }
        if let Some(s) = others().find(|s| same_emoji(s.emoji.as_str(), emoji.as_str())) {
            return Err(DomainError::DuplicateEmoji {
                layer: self.name.clone(),
                emoji: emoji.to_string(),
                used_by: s.name.clone(),
            });
        }
        Ok((name, emoji))
    }
}

/// Checks that a member may create a layer with this name, given the names they already use.
pub(crate) fn check_new_layer_name<'a>(
    name: &str,
    existing: impl IntoIterator<Item = &'a str>,
) -> Result<String, DomainError> {
    let name = validate_layer_name(name)?;
    if existing
        .into_iter()
        .any(|n| n.to_lowercase() == name.to_lowercase())
    {
        return Err(DomainError::DuplicateLayer(name));
    }
    Ok(name)
}

impl Layer {
    /// Checks a new layer's name against the member's existing layers.
    pub fn check_name<'a>(
        name: &str,
        existing: impl IntoIterator<Item = &'a str>,
    ) -> Result<String, DomainError> {
        check_new_layer_name(name, existing)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn layer(mutual: bool, complete: bool, n: usize) -> Layer {
        let emoji = ["🎸", "🎹", "🥁", "🎺", "🎻", "🎷", "🪕", "🪗"];
        Layer {
            id: LayerId(1),
            member: MemberId(7),
            name: "Mood".into(),
            rules: LayerRules { mutual, complete },
            sublists: (0..n)
                .map(|i| Sublist {
                    id: SublistId(i as i64 + 1),
                    name: format!("List {i}"),
                    emoji: Emoji::parse(emoji[i % emoji.len()]).unwrap(),
                    playlist_id: None,
                })
                .collect(),
        }
    }

    #[test]
    fn flags_make_four_kinds() {
        for kind in LayerKind::ALL {
            assert_eq!(kind.rules().kind(), kind);
        }
        assert_eq!(
            LayerRules {
                mutual: false,
                complete: false
            }
            .kind()
            .code(),
            "NI"
        );
    }

    #[test]
    fn emoji_accepts_unicode_and_custom() {
        for ok in [
            "🎸",
            "❤️",
            "👩‍🚀",
            "1️⃣",
            "🇫🇷",
            "<:party:123456789012345678>",
            "<a:dance:42>",
        ] {
            assert!(Emoji::parse(ok).is_ok(), "{ok} should be an emoji");
        }
    }

    #[test]
    fn emoji_refuses_text_with_its_message() {
        for bad in [
            "",
            "a",
            "rock",
            "1",
            ":)",
            "<:x:>",
            "🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸🎸",
        ] {
            let err = Emoji::parse(bad).unwrap_err();
            assert_eq!(err, DomainError::NotAnEmoji(bad.into()));
        }
        assert_eq!(
            Emoji::parse("rock").unwrap_err().to_string(),
            "“rock” is not an emoji. Use one emoji, like 🎸, or a server emoji."
        );
    }

    #[test]
    fn void_emoji_is_reserved_with_or_without_selector() {
        assert_eq!(
            Emoji::parse("🕳").unwrap_err(),
            DomainError::ReservedEmoji("🕳".into())
        );
        assert!(matches!(
            Emoji::parse(VOID_EMOJI),
            Err(DomainError::ReservedEmoji(_))
        ));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_layer_name("  Mood ").unwrap(), "Mood");
        assert_eq!(validate_layer_name("   "), Err(DomainError::EmptyName));
        let long = "x".repeat(101);
        let err = validate_layer_name(&long).unwrap_err();
        assert!(matches!(
            err,
            DomainError::NameTooLong {
                chars: 101,
                max: 100,
                ..
            }
        ));
        assert!(err.to_string().contains("101 characters long"));
        assert!(validate_layer_name(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn layer_names_unique_per_member_ignoring_case() {
        let err = Layer::check_name("mood", ["Mood", "Genre"]).unwrap_err();
        assert_eq!(err, DomainError::DuplicateLayer("mood".into()));
        assert_eq!(err.to_string(), "You already have a layer called “mood”.");
        assert_eq!(Layer::check_name("Energy", ["Mood"]).unwrap(), "Energy");
    }

    #[test]
    fn sublist_names_and_emoji_unique_within_layer() {
        let l = layer(true, true, 2);
        let err = l.check_new_sublist("list 0", "🎺", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The layer “Mood” already has a sublist called “list 0”."
        );
        let err = l.check_new_sublist("New", "🎹", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The layer “Mood” already uses 🎹 for “List 1”."
        );
        assert!(l.check_new_sublist("New", "🎺", None).is_ok());
        // Editing a sublist may keep its own name and emoji.
        assert!(
            l.check_new_sublist("List 0", "🎸", Some(SublistId(1)))
                .is_ok()
        );
    }

    #[test]
    fn at_most_twenty_sublists() {
        let mut l = layer(false, false, 0);
        for i in 0..MAX_SUBLISTS_PER_LAYER {
            l.sublists.push(Sublist {
                id: SublistId(i as i64),
                name: format!("s{i}"),
                emoji: Emoji(format!("<:e{i}:{i}>")),
                playlist_id: None,
            });
        }
        let err = l.check_new_sublist("one more", "🎺", None).unwrap_err();
        assert_eq!(
            err,
            DomainError::TooManySublists {
                layer: "Mood".into(),
                max: 20
            }
        );
    }

    #[test]
    fn void_emoji_only_in_incomplete_layers() {
        assert!(layer(true, false, 1).is_void_emoji("🕳️"));
        assert!(layer(false, false, 1).is_void_emoji("🕳"));
        assert!(!layer(true, true, 1).is_void_emoji("🕳️"));
        assert_eq!(
            layer(true, true, 2).sublist_by_emoji("🎹").unwrap().name,
            "List 1"
        );
    }
}
