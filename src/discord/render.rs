//! What the bot's messages look like: prompts (embed, reactions, buttons, menus), labels,
//! announcements and help. Pure functions from domain values to serenity builders, which
//! serialise to the JSON Discord receives.

use poise::serenity_prelude as serenity;
use serenity::{
    ButtonStyle, CreateActionRow, CreateButton, CreateEmbed, CreateEmbedFooter, CreateSelectMenu,
    CreateSelectMenuKind, CreateSelectMenuOption, ReactionType,
};

use super::backend::{Guess, RefreshSummary, Why, WhyBasis};
use super::custom_id::{CustomId, PromptAction, PromptId};
use crate::domain::{Emoji, Label, Layer, MemberId, Sublist, Track, VOID_EMOJI};
use crate::store::CloseReason;

/// Discord's limits that rendering must respect.
pub const EMBED_TITLE_MAX: usize = 256;
pub const EMBED_FIELD_MAX: usize = 1024;
pub const BUTTON_LABEL_MAX: usize = 80;
pub const OPTION_LABEL_MAX: usize = 100;
pub const MESSAGE_MAX: usize = 2000;
const BUTTONS_PER_ROW: usize = 5;

/// Where a prompt stands, as its message shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptShown {
    Open,
    Answered,
    Skipped,
    /// No longer asked, and why when known: the message keeps the track and loses its buttons.
    Closed(Option<CloseReason>),
}

/// Everything a prompt message shows.
#[derive(Clone, Debug)]
pub struct PromptView<'a> {
    pub id: PromptId,
    pub member: MemberId,
    pub layer: &'a Layer,
    pub track: &'a Track,
    pub guess: Option<&'a Guess>,
    /// The member's current label, if they answered.
    pub current: Option<&'a Label>,
    pub shown: PromptShown,
}

/// Cuts `s` to at most `max` characters, ending with "…" when it was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The reaction for an emoji a sublist uses (Unicode or a server emoji).
pub fn reaction(emoji: &Emoji) -> ReactionType {
    ReactionType::try_from(emoji.as_str())
        .unwrap_or_else(|_| ReactionType::Unicode(emoji.as_str().to_string()))
}

pub fn void_reaction() -> ReactionType {
    ReactionType::Unicode(VOID_EMOJI.to_string())
}

/// The reactions the bot adds under a prompt: each sublist's emoji, then the void's in
/// incomplete layers.
pub fn prompt_reactions(layer: &Layer) -> Vec<ReactionType> {
    let mut out: Vec<ReactionType> = layer.sublists.iter().map(|s| reaction(&s.emoji)).collect();
    if !layer.rules.complete {
        out.push(void_reaction());
    }
    out
}

/// Whether a reaction stands for this sublist's emoji (custom emoji compare by id).
pub fn reaction_matches(sublist: &Sublist, r: &ReactionType) -> bool {
    match (reaction(&sublist.emoji), r) {
        (ReactionType::Custom { id: a, .. }, ReactionType::Custom { id: b, .. }) => a == *b,
        (ReactionType::Unicode(a), ReactionType::Unicode(b)) => {
            let strip = |s: &str| s.replace('\u{FE0F}', "");
            strip(&a) == strip(b)
        }
        _ => false,
    }
}

/// What a reaction means in a layer: a sublist, the void, or nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReactionMeaning {
    Sublist(crate::domain::SublistId),
    Void,
}

pub fn reaction_meaning(layer: &Layer, r: &ReactionType) -> Option<ReactionMeaning> {
    if let Some(s) = layer.sublists.iter().find(|s| reaction_matches(s, r)) {
        return Some(ReactionMeaning::Sublist(s.id));
    }
    match r {
        ReactionType::Unicode(u) if layer.is_void_emoji(u) => Some(ReactionMeaning::Void),
        _ => None,
    }
}

/// "🎸 Rock, 🎹 Piano", or "🕳️ the void".
pub fn label_text(layer: &Layer, label: &Label) -> String {
    match label {
        Label::Void => format!("{VOID_EMOJI} the void"),
        Label::Sublists(ids) => {
            let names: Vec<String> = ids
                .iter()
                .map(|id| match layer.sublist(*id) {
                    Some(s) => format!("{} {}", s.emoji, s.name),
                    None => "a removed sublist".to_string(),
                })
                .collect();
            names.join(", ")
        }
    }
}

/// "83%".
pub fn percent(x: f32) -> String {
    format!("{:.0}%", (x.clamp(0.0, 1.0) * 100.0))
}

/// Escapes Discord's Markdown in a name shown inside formatting.
fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '_' | '~' | '`' | '|' | '\\' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The model's evidence in a few words: "like *A* and *B* you put there".
pub fn why_text(why: &Why, void: bool) -> Option<String> {
    let names: Vec<String> = why
        .tracks
        .iter()
        .map(|n| format!("*{}*", escape_markdown(&truncate(n, 60))))
        .collect();
    let list = match names.as_slice() {
        [] => return None,
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    };
    let opening = match why.basis {
        WhyBasis::Album => "same album as",
        WhyBasis::Artist => "same artist as",
        WhyBasis::Sound => "like",
    };
    let place = if void {
        "you left out"
    } else {
        "you put there"
    };
    Some(format!("{opening} {list} {place}"))
}

pub fn prompt_embed(v: &PromptView<'_>) -> CreateEmbed {
    let t = v.track;
    let mut description = String::new();
    if !t.artists.is_empty() {
        description.push_str(&format!("by {}", t.artist_names()));
    }
    if let Some(album) = &t.album_name {
        if !description.is_empty() {
            description.push('\n');
        }
        description.push_str(&format!("from *{album}*"));
    }
    let guess = match v.guess {
        Some(g) => {
            let mut text = format!(
                "{} ({} sure)",
                label_text(v.layer, &g.label),
                percent(g.confidence)
            );
            if let Some(why) = g.why.as_ref().and_then(|w| why_text(w, g.label.is_void())) {
                text.push_str(": ");
                text.push_str(&why);
            }
            text
        }
        None => "no model yet: your answers will train one".to_string(),
    };
    let answer = match (v.shown, v.current) {
        (PromptShown::Closed(Some(CloseReason::Unliked)), _) => {
            "no longer asked: the track left your motherlist".to_string()
        }
        (PromptShown::Closed(Some(CloseReason::Sorted)), Some(label)) => format!(
            "{}, placed by the model now that it is sure; no answer needed",
            label_text(v.layer, label)
        ),
        (PromptShown::Closed(Some(CloseReason::Answered)), Some(label)) => format!(
            "{}, answered another way (a playlist edit or an import)",
            label_text(v.layer, label)
        ),
        (PromptShown::Closed(_), None) => "no longer asked".to_string(),
        (_, Some(label)) => label_text(v.layer, label),
        (PromptShown::Skipped, None) => "skipped: `/label` asks about it again".to_string(),
        _ => "not answered yet".to_string(),
    };
    let footer = match v.shown {
        PromptShown::Closed(_) => "This question is closed.",
        _ => "React with an emoji or use the buttons. Only the member this is for can answer.",
    };
    let mut embed = CreateEmbed::new()
        .title(truncate(&t.name, EMBED_TITLE_MAX))
        .url(t.id.url())
        .field(
            "Layer",
            truncate(
                &format!("{} ({})", v.layer.name, v.layer.rules.describe()),
                EMBED_FIELD_MAX,
            ),
            false,
        )
        .field("Model's guess", truncate(&guess, EMBED_FIELD_MAX), true)
        .field("Your answer", truncate(&answer, EMBED_FIELD_MAX), true)
        .footer(CreateEmbedFooter::new(footer));
    if !description.is_empty() {
        embed = embed.description(truncate(&description, 4096));
    }
    if let Some(url) = &t.image_url {
        embed = embed.thumbnail(url);
    }
    embed
}

fn prompt_button(id: PromptId, action: PromptAction) -> CreateButton {
    CreateButton::new(CustomId::Prompt { prompt: id, action }.encode())
}

/// Buttons (mutual layers) or a multi-select menu (non-mutual ones), then Void and Skip; none
/// once the prompt is closed.
pub fn prompt_components(v: &PromptView<'_>) -> Vec<CreateActionRow> {
    if matches!(v.shown, PromptShown::Closed(_)) {
        return Vec::new();
    }
    let layer = v.layer;
    let chosen = |s: &Sublist| v.current.is_some_and(|l| l.contains(s.id));
    let mut rows = Vec::new();
    if layer.rules.mutual {
        let buttons: Vec<CreateButton> = layer
            .sublists
            .iter()
            .map(|s| {
                prompt_button(v.id, PromptAction::Sublist(s.id))
                    .label(truncate(&s.name, BUTTON_LABEL_MAX))
                    .emoji(reaction(&s.emoji))
                    .style(if chosen(s) {
                        ButtonStyle::Success
                    } else {
                        ButtonStyle::Secondary
                    })
            })
            .collect();
        for chunk in buttons.chunks(BUTTONS_PER_ROW) {
            rows.push(CreateActionRow::Buttons(chunk.to_vec()));
        }
    } else if !layer.sublists.is_empty() {
        let options = layer
            .sublists
            .iter()
            .map(|s| {
                CreateSelectMenuOption::new(truncate(&s.name, OPTION_LABEL_MAX), s.id.0.to_string())
                    .emoji(reaction(&s.emoji))
                    .default_selection(chosen(s))
            })
            .collect();
        let menu = CreateSelectMenu::new(
            CustomId::Prompt {
                prompt: v.id,
                action: PromptAction::Menu,
            }
            .encode(),
            CreateSelectMenuKind::String { options },
        )
        .placeholder("Choose the sublists")
        .min_values(if layer.rules.complete { 1 } else { 0 })
        .max_values(layer.sublists.len().min(25) as u8);
        rows.push(CreateActionRow::SelectMenu(menu));
    }
    let mut last = Vec::new();
    if !layer.rules.complete {
        let is_void = v.current.is_some_and(Label::is_void);
        last.push(
            prompt_button(v.id, PromptAction::Void)
                .label("Void")
                .emoji(void_reaction())
                .style(if is_void {
                    ButtonStyle::Success
                } else {
                    ButtonStyle::Secondary
                }),
        );
    }
    last.push(
        prompt_button(v.id, PromptAction::Skip)
            .label("Skip")
            .style(ButtonStyle::Secondary),
    );
    rows.push(CreateActionRow::Buttons(last));
    rows
}

/// The announcement after a member's sublists were refreshed.
pub fn refresh_announcement(member: MemberId, summary: &RefreshSummary) -> String {
    let mut out = format!("**Sublists refreshed for <@{}>**", member.0);
    if summary.new_tracks > 0 {
        out.push_str(&format!(
            ": {} new track{}.",
            summary.new_tracks,
            plural(summary.new_tracks)
        ));
    } else {
        out.push('.');
    }
    for l in &summary.layers {
        let mut parts: Vec<String> = l
            .added
            .iter()
            .map(|(name, n)| format!("{n} → {name}"))
            .collect();
        if l.to_void > 0 {
            parts.push(format!("{} to the void", l.to_void));
        }
        if l.waiting > 0 {
            parts.push(format!("{} waiting for an answer", l.waiting));
        }
        if parts.is_empty() {
            continue;
        }
        out.push_str(&format!("\n**{}**: {}", l.layer_name, parts.join(", ")));
    }
    if summary.is_empty() {
        out.push_str("\nNothing changed.");
    }
    truncate(&out, MESSAGE_MAX)
}

/// The message that stands in for many prompts arriving at once.
pub fn digest(member: MemberId, posted: usize, waiting: usize) -> String {
    format!(
        "<@{}>: {waiting} more new track{} wait for an answer ({posted} asked above). \
         Use `/label` to go through them.",
        member.0,
        plural(waiting as u32)
    )
}

pub fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LayerId, LayerRules, SublistId, TrackId};
    use std::collections::BTreeSet;

    fn layer(mutual: bool, complete: bool, n: usize) -> Layer {
        let emoji = ["🎸", "🎹", "🥁", "<:party:123456789012345678>"];
        Layer {
            id: LayerId(3),
            member: MemberId(7),
            name: "Mood".into(),
            rules: LayerRules { mutual, complete },
            sublists: (0..n)
                .map(|i| Sublist {
                    id: SublistId(i as i64 + 10),
                    name: format!("List {i}"),
                    emoji: Emoji::parse(emoji[i % emoji.len()]).unwrap(),
                    playlist_id: None,
                })
                .collect(),
        }
    }

    fn track() -> Track {
        let mut t = Track::bare(TrackId::parse("6f807x0ima9a1j3VPbc7VN").unwrap(), "Song");
        t.artists = vec![(None, "A".into()), (None, "B".into())];
        t.album_name = Some("Album".into());
        t.image_url = Some("https://i.scdn.co/image/x".into());
        t
    }

    fn json<T: serde::Serialize>(x: &T) -> serde_json::Value {
        serde_json::to_value(x).unwrap()
    }

    fn view<'a>(layer: &'a Layer, track: &'a Track, current: Option<&'a Label>) -> PromptView<'a> {
        PromptView {
            id: PromptId(5),
            member: MemberId(7),
            layer,
            track,
            guess: None,
            current,
            shown: PromptShown::Open,
        }
    }

    #[test]
    fn mutual_prompt_has_a_button_per_sublist_then_void_and_skip() {
        let l = layer(true, false, 7);
        let t = track();
        let rows = json(&prompt_components(&view(&l, &t, None)));
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 3, "5 + 2 sublist buttons, then void and skip");
        assert_eq!(rows[0]["components"].as_array().unwrap().len(), 5);
        assert_eq!(rows[0]["components"][0]["custom_id"], "v1:p:5:s:10");
        assert_eq!(rows[0]["components"][0]["label"], "List 0");
        assert_eq!(rows[0]["components"][0]["emoji"]["name"], "🎸");
        assert_eq!(
            rows[0]["components"][3]["emoji"]["id"],
            "123456789012345678"
        );
        assert_eq!(rows[2]["components"][0]["custom_id"], "v1:p:5:void");
        assert_eq!(rows[2]["components"][1]["custom_id"], "v1:p:5:skip");
    }

    #[test]
    fn twenty_sublists_fit_discords_five_rows() {
        let l = layer(true, false, 20);
        let t = track();
        let rows = json(&prompt_components(&view(&l, &t, None)));
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 5);
        for row in rows {
            assert!(row["components"].as_array().unwrap().len() <= 5);
        }
    }

    #[test]
    fn complete_layers_offer_no_void() {
        let l = layer(true, true, 2);
        let t = track();
        let s = serde_json::to_string(&prompt_components(&view(&l, &t, None))).unwrap();
        assert!(!s.contains(":void"));
        assert_eq!(prompt_reactions(&l).len(), 2);
        assert_eq!(prompt_reactions(&layer(true, false, 2)).len(), 3);
    }

    #[test]
    fn non_mutual_prompt_is_a_multi_select_showing_the_current_label() {
        let l = layer(false, false, 3);
        let t = track();
        let label = Label::from_set(BTreeSet::from([SublistId(11)]));
        let rows = json(&prompt_components(&view(&l, &t, Some(&label))));
        let menu = &rows[0]["components"][0];
        assert_eq!(menu["type"], 3);
        assert_eq!(menu["custom_id"], "v1:p:5:menu");
        assert_eq!(menu["min_values"], 0);
        assert_eq!(menu["max_values"], 3);
        assert_eq!(menu["options"][1]["value"], "11");
        assert_eq!(menu["options"][1]["default"], true);
        assert_eq!(menu["options"][0]["default"], false);
        let complete = layer(false, true, 3);
        let rows = json(&prompt_components(&view(&complete, &t, None)));
        assert_eq!(rows[0]["components"][0]["min_values"], 1);
    }

    #[test]
    fn embed_shows_track_guess_and_answer() {
        let l = layer(true, false, 2);
        let t = track();
        let guess = Guess {
            label: Label::one(SublistId(11)),
            confidence: 0.834,
            why: None,
        };
        let mut v = view(&l, &t, None);
        v.guess = Some(&guess);
        let e = json(&prompt_embed(&v));
        assert_eq!(e["title"], "Song");
        assert_eq!(
            e["url"],
            "https://open.spotify.com/track/6f807x0ima9a1j3VPbc7VN"
        );
        assert_eq!(e["description"], "by A, B\nfrom *Album*");
        assert_eq!(e["thumbnail"]["url"], "https://i.scdn.co/image/x");
        assert_eq!(e["fields"][1]["value"], "🎹 List 1 (83% sure)");
        let explained = Guess {
            why: Some(Why {
                basis: WhyBasis::Sound,
                tracks: vec!["Song A".into(), "B*side".into()],
            }),
            ..guess.clone()
        };
        v.guess = Some(&explained);
        assert_eq!(
            json(&prompt_embed(&v))["fields"][1]["value"],
            "🎹 List 1 (83% sure): like *Song A* and *B\\*side* you put there"
        );
        v.guess = Some(&guess);
        assert_eq!(e["fields"][2]["value"], "not answered yet");
        let void = Label::Void;
        v.current = Some(&void);
        assert_eq!(json(&prompt_embed(&v))["fields"][2]["value"], "🕳️ the void");
    }

    #[test]
    fn a_closed_prompt_says_why_and_has_no_buttons() {
        let l = layer(true, false, 2);
        let t = track();
        let placed = Label::one(SublistId(11));
        let mut v = view(&l, &t, Some(&placed));
        v.shown = PromptShown::Closed(Some(CloseReason::Sorted));
        assert!(prompt_components(&v).is_empty());
        let e = json(&prompt_embed(&v));
        assert_eq!(
            e["fields"][2]["value"],
            "🎹 List 1, placed by the model now that it is sure; no answer needed"
        );
        assert_eq!(e["footer"]["text"], "This question is closed.");
        v.shown = PromptShown::Closed(Some(CloseReason::Unliked));
        assert_eq!(
            json(&prompt_embed(&v))["fields"][2]["value"],
            "no longer asked: the track left your motherlist"
        );
    }

    #[test]
    fn long_names_are_cut_to_discords_limits() {
        let mut l = layer(true, false, 1);
        l.sublists[0].name = "n".repeat(100);
        let mut t = track();
        t.name = "x".repeat(300);
        let v = view(&l, &t, None);
        let e = json(&prompt_embed(&v));
        assert_eq!(e["title"].as_str().unwrap().chars().count(), 256);
        let rows = json(&prompt_components(&v));
        let label = rows[0]["components"][0]["label"].as_str().unwrap();
        assert_eq!(label.chars().count(), 80);
        assert!(label.ends_with('…'));
    }

    #[test]
    fn reactions_map_back_to_sublists_or_the_void() {
        let l = layer(false, false, 4);
        let r = |s: &str| ReactionType::try_from(s).unwrap();
        assert_eq!(
            reaction_meaning(&l, &r("🎹")),
            Some(ReactionMeaning::Sublist(SublistId(11)))
        );
        assert_eq!(
            reaction_meaning(&l, &r("<:renamed:123456789012345678>")),
            Some(ReactionMeaning::Sublist(SublistId(13))),
            "custom emoji match by id"
        );
        assert_eq!(reaction_meaning(&l, &r("🕳")), Some(ReactionMeaning::Void));
        assert_eq!(reaction_meaning(&l, &r("🍎")), None);
        assert_eq!(reaction_meaning(&layer(false, true, 4), &r("🕳️")), None);
    }

    #[test]
    fn announcement_says_where_tracks_went() {
        use super::super::backend::LayerRefresh;
        let s = RefreshSummary {
            new_tracks: 12,
            layers: vec![LayerRefresh {
                layer: LayerId(1),
                layer_name: "Mood".into(),
                added: vec![("Rock".into(), 5), ("Calm".into(), 3)],
                to_void: 2,
                waiting: 2,
            }],
        };
        assert_eq!(
            refresh_announcement(MemberId(7), &s),
            "**Sublists refreshed for <@7>**: 12 new tracks.\n\
             **Mood**: 5 → Rock, 3 → Calm, 2 to the void, 2 waiting for an answer"
        );
        assert!(
            refresh_announcement(MemberId(7), &RefreshSummary::default())
                .ends_with("Nothing changed.")
        );
    }
}
