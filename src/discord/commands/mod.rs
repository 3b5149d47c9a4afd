//! The slash commands. Bodies stay thin: they read the member's input, call the store or the
//! backend, and answer privately; the logic lives in `domain`, `store`, `prompts` and `render`.

mod account;
mod info;
mod layers;
mod work;

pub(crate) use work::resume_train_replies;

use poise::CreateReply;
use poise::serenity_prelude as serenity;

use super::backend::{LinkToConfirm, Linked};
use super::custom_id::CustomId;
use super::error::user_error;
use super::render;
use super::{Context, Data, Error};
use crate::domain::{Layer, MemberId};

/// Every command, in the order `/help` lists them.
pub(crate) fn all() -> Vec<poise::Command<Data, Error>> {
    vec![
        account::link(),
        account::unlink(),
        account::forget_me(),
        layers::layers(),
        work::label(),
        work::train(),
        info::status(),
        work::refresh(),
        info::settings(),
        info::setup(),
        info::help(),
    ]
}

/// The member behind a command, recorded in the store (with the server they used it in).
pub(crate) async fn member(ctx: Context<'_>) -> Result<MemberId, Error> {
    let id = MemberId(ctx.author().id.get());
    let store = &ctx.data().store;
    // Only a member's own command records them: background work never does, so nothing
    // brings a forgotten member back.
    store.ensure_member(id).await?;
    let mut settings = super::prompts::member_settings(store, id).await?;
    if let Some(guild) = ctx.guild_id()
        && settings.guild_id != Some(guild.get())
    {
        settings.guild_id = Some(guild.get());
        store.set_member_settings(id, &settings).await?;
    }
    Ok(id)
}

/// A private answer.
pub(crate) fn private(text: impl Into<String>) -> CreateReply {
    CreateReply::default()
        .ephemeral(true)
        .content(render::truncate(&text.into(), render::MESSAGE_MAX))
}

/// The member's layer with this name (case-insensitive), or a sentence listing theirs.
pub(crate) async fn find_layer(
    ctx: Context<'_>,
    member: MemberId,
    name: &str,
) -> Result<Layer, Error> {
    let layers = ctx.data().store.layers(member).await?;
    let wanted = name.trim();
    if let Some(l) = layers.iter().find(|l| l.name.eq_ignore_ascii_case(wanted)) {
        return Ok(l.clone());
    }
    Err(user_error(if layers.is_empty() {
        "You have no layers yet: make one with `/layers create`.".to_string()
    } else {
        format!(
            "You have no layer called “{}”. Yours: {}.",
            render::truncate(wanted, 100),
            layers
                .iter()
                .map(|l| format!("“{}”", l.name))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }))
}

/// The held-out accuracy of the layer's model, when it has one that reports it.
pub(crate) async fn model_accuracy(
    ctx: Context<'_>,
    layer: crate::domain::LayerId,
) -> Result<Option<f32>, Error> {
    Ok(ctx
        .data()
        .store
        .model(layer)
        .await?
        .and_then(|m| {
            m.metrics
                .get("held_out_accuracy")
                .and_then(serde_json::Value::as_f64)
        })
        .map(|a| a as f32))
}

/// "Linked as …, 1,240 liked songs found."
pub(crate) fn linked_text(linked: &Linked) -> String {
    format!(
        "Linked as **{}**, {} liked song{} found. Make a layer with `/layers create` next.",
        linked.display_name,
        thousands(linked.liked_songs),
        render::plural(linked.liked_songs.min(2) as u32)
    )
}

/// "Link the Spotify account …?" with its two buttons, for the member who ran `/link`.
pub(crate) fn confirm_link_question(
    member: MemberId,
    pending: &LinkToConfirm,
) -> (String, Vec<serenity::CreateActionRow>) {
    let text = format!(
        "Link the Spotify account **{}** (user `{}`) to you? Spotify sent it back from your \
         consent page. Only confirm if it is yours: whoever opened the page chose the account.",
        escape_markdown(&render::truncate(&pending.display_name, 100)),
        render::truncate(&pending.user_id, 100).replace('`', "'"),
    );
    let button = |confirm: bool| CustomId::LinkConfirm { member, confirm }.encode();
    let buttons = vec![serenity::CreateActionRow::Buttons(vec![
        serenity::CreateButton::new(button(true))
            .label("Link this account")
            .style(serenity::ButtonStyle::Success),
        serenity::CreateButton::new(button(false))
            .label("It's not mine")
            .style(serenity::ButtonStyle::Secondary),
    ])];
    (text, buttons)
}

/// `text` with Discord's markdown characters escaped.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '_' | '`' | '~' | '|' | '\\' | '>' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// 1240 -> "1,240".
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn choices(
    items: impl IntoIterator<Item = (String, String)>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let partial = partial.to_lowercase();
    let choices = items
        .into_iter()
        .filter(|(name, _)| name.to_lowercase().contains(&partial))
        .take(25)
        .map(|(name, value)| serenity::AutocompleteChoice::new(render::truncate(&name, 100), value))
        .collect();
    serenity::CreateAutocompleteResponse::new().set_choices(choices)
}

/// Autocomplete: the member's layers.
pub(crate) async fn autocomplete_layer(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let member = MemberId(ctx.author().id.get());
    let layers = ctx.data().store.layers(member).await.unwrap_or_default();
    choices(
        layers.into_iter().map(|l| (l.name.clone(), l.name)),
        partial,
    )
}

/// The value the member typed for the `layer` option, from the interaction being completed.
fn typed_layer(ctx: Context<'_>) -> Option<String> {
    let poise::Context::Application(actx) = ctx else {
        return None;
    };
    fn find(options: &[serenity::CommandDataOption]) -> Option<String> {
        for o in options {
            match &o.value {
                serenity::CommandDataOptionValue::SubCommand(inner)
                | serenity::CommandDataOptionValue::SubCommandGroup(inner) => {
                    if let Some(v) = find(inner) {
                        return Some(v);
                    }
                }
                serenity::CommandDataOptionValue::String(s) if o.name == "layer" => {
                    return Some(s.clone());
                }
                serenity::CommandDataOptionValue::Autocomplete { value, .. }
                    if o.name == "layer" =>
                {
                    return Some(value.clone());
                }
                _ => {}
            }
        }
        None
    }
    find(&actx.interaction.data.options)
}

/// Autocomplete: the sublists of the layer typed so far (of every layer when none is).
pub(crate) async fn autocomplete_sublist(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let member = MemberId(ctx.author().id.get());
    let layers = ctx.data().store.layers(member).await.unwrap_or_default();
    let layer = typed_layer(ctx);
    let items = layers
        .into_iter()
        .filter(|l| {
            layer
                .as_deref()
                .is_none_or(|name| l.name.eq_ignore_ascii_case(name.trim()))
        })
        .flat_map(|l| l.sublists.into_iter())
        .map(|s| (format!("{} {}", s.emoji, s.name), s.name));
    choices(items, partial)
}

/// Autocomplete: the member's Spotify playlists (shown by name, answered by id).
pub(crate) async fn autocomplete_playlist(
    ctx: Context<'_>,
    partial: &str,
) -> serenity::CreateAutocompleteResponse {
    let member = MemberId(ctx.author().id.get());
    let playlists = ctx
        .data()
        .backend
        .playlists(member)
        .await
        .unwrap_or_default();
    choices(
        playlists
            .into_iter()
            .map(|p| (format!("{} ({} tracks)", p.name, p.tracks), p.id)),
        partial,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1240), "1,240");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn linked_text_reads_well() {
        let t = linked_text(&Linked {
            display_name: "Ada".into(),
            liked_songs: 1240,
        });
        assert!(t.starts_with("Linked as **Ada**, 1,240 liked songs found."));
    }

    #[test]
    fn the_link_question_names_the_account_and_escapes_its_name() {
        let (text, buttons) = confirm_link_question(
            MemberId(5),
            &LinkToConfirm {
                display_name: "*Ada*".into(),
                user_id: "ada".into(),
            },
        );
        assert!(text.starts_with("Link the Spotify account **\\*Ada\\*** (user `ada`)"));
        assert_eq!(buttons.len(), 1);
    }

    #[test]
    fn help_lists_every_command() {
        let text = info::help_text(&all());
        for name in [
            "/link",
            "/layers create",
            "/layers add-sublist",
            "/train start",
            "/setup",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
