//! The `custom_id`s of the bot's buttons, menus and modals: versioned, at most 100 characters,
//! and carrying everything needed to act on them after a restart (the rest is in the store).

use crate::domain::{MemberId, SublistId};

/// The version prefix of every id this build writes.
const VERSION: &str = "v1";
/// Discord's limit on a `custom_id`.
pub const MAX_LEN: usize = 100;

pub use crate::store::PromptId;

/// What a component on a prompt does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptAction {
    /// Choose (mutual) or toggle (non-mutual) one sublist.
    Sublist(SublistId),
    /// Send the track to the void.
    Void,
    /// Ask again later.
    Skip,
    /// The multi-select menu of a non-mutual layer: its values are the label.
    Menu,
}

/// Everything a component or modal of the bot can mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomId {
    Prompt {
        prompt: PromptId,
        action: PromptAction,
    },
    /// The "paste the address" button under `/link`: opens the modal.
    LinkPaste,
    /// The modal holding the pasted address.
    LinkModal,
    /// The answer to `/forget-me`'s question.
    Forget { member: MemberId, confirm: bool },
    /// The member's answer to "link this Spotify account?" after the consent page.
    LinkConfirm { member: MemberId, confirm: bool },
}

impl CustomId {
    pub fn encode(&self) -> String {
        let s = match self {
            CustomId::Prompt { prompt, action } => match action {
                PromptAction::Sublist(id) => format!("{VERSION}:p:{}:s:{}", prompt.0, id.0),
                PromptAction::Void => format!("{VERSION}:p:{}:void", prompt.0),
                PromptAction::Skip => format!("{VERSION}:p:{}:skip", prompt.0),
                PromptAction::Menu => format!("{VERSION}:p:{}:menu", prompt.0),
            },
            CustomId::LinkPaste => format!("{VERSION}:link:paste"),
            CustomId::LinkModal => format!("{VERSION}:link:modal"),
            CustomId::Forget { member, confirm } => {
                format!(
                    "{VERSION}:forget:{}:{}",
                    member.0,
                    if *confirm { "yes" } else { "no" }
                )
            }
            CustomId::LinkConfirm { member, confirm } => {
                format!(
                    "{VERSION}:link:confirm:{}:{}",
                    member.0,
                    if *confirm { "yes" } else { "no" }
                )
            }
        };
        debug_assert!(s.len() <= MAX_LEN);
        s
    }

    /// Reads an id this or an earlier build wrote. `None` for anything else: an unknown
    /// version, a foreign component, or text that was tampered with.
    pub fn parse(raw: &str) -> Option<CustomId> {
        if raw.len() > MAX_LEN {
            return None;
        }
        let mut parts = raw.split(':');
        if parts.next()? != VERSION {
            return None;
        }
        let parsed = match (parts.next()?, parts.next(), parts.next(), parts.next()) {
            ("p", Some(id), Some(action), rest) => {
                let prompt = PromptId(parse_id(id)?);
                let action = match (action, rest) {
                    ("s", Some(sid)) => PromptAction::Sublist(SublistId(parse_id(sid)?)),
                    ("void", None) => PromptAction::Void,
                    ("skip", None) => PromptAction::Skip,
                    ("menu", None) => PromptAction::Menu,
                    _ => return None,
                };
                CustomId::Prompt { prompt, action }
            }
            ("link", Some("paste"), None, None) => CustomId::LinkPaste,
            ("link", Some("modal"), None, None) => CustomId::LinkModal,
            ("forget", Some(member), Some(answer), None) => CustomId::Forget {
                member: MemberId(member.parse().ok()?),
                confirm: yes_no(answer)?,
            },
            ("link", Some("confirm"), Some(member), Some(answer)) => CustomId::LinkConfirm {
                member: MemberId(member.parse().ok()?),
                confirm: yes_no(answer)?,
            },
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(parsed)
    }
}

fn yes_no(s: &str) -> Option<bool> {
    match s {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn parse_id(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<CustomId> {
        let prompt = PromptId(i64::MAX);
        vec![
            CustomId::Prompt {
                prompt,
                action: PromptAction::Sublist(SublistId(i64::MAX)),
            },
            CustomId::Prompt {
                prompt,
                action: PromptAction::Void,
            },
            CustomId::Prompt {
                prompt,
                action: PromptAction::Skip,
            },
            CustomId::Prompt {
                prompt,
                action: PromptAction::Menu,
            },
            CustomId::LinkPaste,
            CustomId::LinkModal,
            CustomId::Forget {
                member: MemberId(u64::MAX),
                confirm: true,
            },
            CustomId::Forget {
                member: MemberId(1),
                confirm: false,
            },
            CustomId::LinkConfirm {
                member: MemberId(u64::MAX),
                confirm: true,
            },
            CustomId::LinkConfirm {
                member: MemberId(1),
                confirm: false,
            },
        ]
    }

    #[test]
    fn every_id_round_trips_within_discords_limit() {
        for id in all_kinds() {
            let s = id.encode();
            assert!(s.len() <= MAX_LEN, "{s} is too long");
            assert!(s.starts_with("v1:"));
            assert_eq!(CustomId::parse(&s), Some(id), "{s}");
        }
    }

    #[test]
    fn the_format_is_stable() {
        let id = CustomId::Prompt {
            prompt: PromptId(42),
            action: PromptAction::Sublist(SublistId(7)),
        };
        assert_eq!(id.encode(), "v1:p:42:s:7");
        assert_eq!(
            CustomId::parse("v1:forget:99:no"),
            Some(CustomId::Forget {
                member: MemberId(99),
                confirm: false
            })
        );
    }

    #[test]
    fn foreign_old_or_tampered_ids_are_refused() {
        for bad in [
            "",
            "v0:p:1:skip",
            "v2:p:1:skip",
            "v1",
            "v1:p",
            "v1:p:1",
            "v1:p:x:skip",
            "v1:p:-1:skip",
            "v1:p:+1:skip",
            "v1:p:1:s",
            "v1:p:1:s:",
            "v1:p:1:s:2:3",
            "v1:p:1:skip:extra",
            "v1:p:99999999999999999999:skip",
            "v1:link",
            "v1:link:paste:again",
            "v1:forget:1:maybe",
            "v1:forget:-1:yes",
            "v1:link:confirm:1",
            "v1:link:confirm:1:maybe",
            "v1:link:confirm:1:yes:2",
            "v1:nope",
            "some-other-bot",
        ] {
            assert_eq!(CustomId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(CustomId::parse(&"v1:p:1:skip".repeat(20)), None);
    }
}
