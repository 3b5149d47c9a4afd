//! `/layers create | add-sublist | edit | remove | list | import`.

use super::{
    Context, Error, autocomplete_layer, autocomplete_playlist, autocomplete_sublist, find_layer,
    member, private,
};
use crate::discord::error::user_error;
use crate::discord::render::{self, percent};
use crate::domain::{LayerRules, VOID_EMOJI};

/// Make and change your layers of sublists
#[poise::command(
    slash_command,
    subcommands("create", "add_sublist", "edit", "remove", "list", "import"),
    subcommand_required
)]
pub async fn layers(_: Context<'_>) -> Result<(), Error> {
    Ok(())
}

/// Make a layer: a set of sublists that decides where each liked track goes
#[poise::command(slash_command)]
async fn create(
    ctx: Context<'_>,
    #[description = "The layer's name, e.g. Mood"]
    #[max_length = 100]
    name: String,
    #[description = "A track goes to at most one of its sublists"] mutual: bool,
    #[description = "Every track goes to some sublist (no void)"] complete: bool,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let rules = LayerRules { mutual, complete };
    let layer = ctx.data().store.create_layer(member, &name, rules).await?;
    ctx.send(private(format!(
        "Layer “{}” created ({}). Add sublists with `/layers add-sublist`.",
        layer.name,
        rules.describe()
    )))
    .await?;
    Ok(())
}

/// Add a sublist (a Spotify playlist the bot keeps) to a layer
#[poise::command(slash_command, rename = "add-sublist")]
async fn add_sublist(
    ctx: Context<'_>,
    #[description = "The layer"]
    #[autocomplete = "autocomplete_layer"]
    layer: String,
    #[description = "The sublist's name, e.g. Calm"]
    #[max_length = 100]
    name: String,
    #[description = "One emoji that stands for it in prompts, e.g. 🌙"] emoji: String,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let layer = find_layer(ctx, member, &layer).await?;
    let sublist = ctx
        .data()
        .store
        .add_sublist(layer.id, &name, &emoji)
        .await?;
    ctx.send(private(format!(
        "{} “{}” added to “{}”. Its playlist is made on Spotify when the first track goes in.",
        sublist.emoji, sublist.name, layer.name
    )))
    .await?;
    Ok(())
}

/// Rename a layer, or rename a sublist or change its emoji
#[poise::command(slash_command)]
async fn edit(
    ctx: Context<'_>,
    #[description = "The layer"]
    #[autocomplete = "autocomplete_layer"]
    layer: String,
    #[description = "The sublist to change (leave empty to rename the layer)"]
    #[autocomplete = "autocomplete_sublist"]
    sublist: Option<String>,
    #[description = "The new name"]
    #[max_length = 100]
    new_name: Option<String>,
    #[description = "The sublist's new emoji"] emoji: Option<String>,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let layer = find_layer(ctx, member, &layer).await?;
    let store = &ctx.data().store;
    let text = match sublist {
        None => {
            if emoji.is_some() {
                return Err(user_error(
                    "Layers have no emoji: name a sublist to change its emoji.",
                ));
            }
            let Some(new_name) = new_name else {
                return Err(user_error("Give a new name, or a sublist to change."));
            };
            let renamed = store.rename_layer(layer.id, &new_name).await?;
            format!("Layer “{}” is now “{}”.", layer.name, renamed.name)
        }
        Some(sub) => {
            let Some(s) = layer.sublist_by_name(&sub) else {
                return Err(no_sublist(&layer, &sub));
            };
            if new_name.is_none() && emoji.is_none() {
                return Err(user_error("Give a new name or a new emoji."));
            }
            let name = new_name.unwrap_or_else(|| s.name.clone());
            let emoji = emoji.unwrap_or_else(|| s.emoji.to_string());
            let edited = store.edit_sublist(layer.id, s.id, &name, &emoji).await?;
            format!(
                "{} “{}” is now {} “{}”.",
                s.emoji, s.name, edited.emoji, edited.name
            )
        }
    };
    ctx.send(private(text)).await?;
    Ok(())
}

fn no_sublist(layer: &crate::domain::Layer, name: &str) -> Error {
    user_error(format!(
        "“{}” has no sublist called “{}”.",
        layer.name,
        render::truncate(name.trim(), 100)
    ))
}

/// Remove a sublist, or a whole layer when no sublist is named
#[poise::command(slash_command)]
async fn remove(
    ctx: Context<'_>,
    #[description = "The layer"]
    #[autocomplete = "autocomplete_layer"]
    layer: String,
    #[description = "The sublist to remove (leave empty to remove the whole layer)"]
    #[autocomplete = "autocomplete_sublist"]
    sublist: Option<String>,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let layer = find_layer(ctx, member, &layer).await?;
    let store = &ctx.data().store;
    let text = match sublist {
        Some(sub) => {
            let Some(s) = layer.sublist_by_name(&sub) else {
                return Err(no_sublist(&layer, &sub));
            };
            store.remove_sublist(s.id).await?;
            format!(
                "{} “{}” removed from “{}”, with its labels. Its playlist stays on Spotify.",
                s.emoji, s.name, layer.name
            )
        }
        None => {
            store.remove_layer(layer.id).await?;
            format!(
                "Layer “{}” removed, with its labels and model. Its playlists stay on Spotify.",
                layer.name
            )
        }
    };
    ctx.send(private(text)).await?;
    Ok(())
}

/// Show your layers: rules, sublists, labels and the model's accuracy
#[poise::command(slash_command)]
async fn list(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    let store = &ctx.data().store;
    let layers = store.layers(member).await?;
    if layers.is_empty() {
        ctx.send(private(
            "You have no layers yet: make one with `/layers create`.",
        ))
        .await?;
        return Ok(());
    }
    let mut out = String::new();
    for layer in &layers {
        let counts = store.label_counts(layer.id).await?;
        let model = match super::model_accuracy(ctx, layer.id).await? {
            Some(acc) => format!("model: {} accurate on held-out labels", percent(acc)),
            None => "no model yet: `/train` makes one".to_string(),
        };
        out.push_str(&format!(
            "**{}** ({})\n{model}\n",
            layer.name,
            layer.rules.describe()
        ));
        if layer.sublists.is_empty() {
            out.push_str("- no sublists yet\n");
        }
        for s in &layer.sublists {
            let n = counts.by_sublist.get(&s.id).copied().unwrap_or(0);
            out.push_str(&format!(
                "- {} {}: {n} label{}\n",
                s.emoji,
                s.name,
                render::plural(n)
            ));
        }
        if !layer.rules.complete {
            out.push_str(&format!(
                "- {VOID_EMOJI} the void: {} label{}\n",
                counts.void,
                render::plural(counts.void)
            ));
        }
        out.push('\n');
    }
    ctx.send(private(out.trim_end().to_string())).await?;
    Ok(())
}

/// Adopt one of your Spotify playlists as a new sublist, with its tracks as labels
#[poise::command(slash_command)]
async fn import(
    ctx: Context<'_>,
    #[description = "The layer"]
    #[autocomplete = "autocomplete_layer"]
    layer: String,
    #[description = "The playlist"]
    #[autocomplete = "autocomplete_playlist"]
    playlist: String,
    #[description = "One emoji for the sublist"] emoji: String,
    #[description = "The sublist's name (the playlist's when left empty)"] name: Option<String>,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let layer = find_layer(ctx, member, &layer).await?;
    ctx.defer_ephemeral().await?;
    let playlists = ctx.data().backend.playlists(member).await?;
    let wanted = playlist.trim();
    let Some(p) = playlists
        .iter()
        .find(|p| p.id == wanted || p.name.eq_ignore_ascii_case(wanted))
    else {
        return Err(user_error(format!(
            "You have no playlist “{}” that you own or collaborate on.",
            render::truncate(wanted, 100)
        )));
    };
    let name = name.unwrap_or_else(|| p.name.clone());
    let (name, emoji) = layer.check_new_sublist(&name, &emoji, None)?;
    let imported = ctx
        .data()
        .backend
        .import_playlist(member, layer.id, &p.id, &name, emoji.as_str())
        .await?;
    ctx.send(private(format!(
        "{emoji} “{name}” now keeps the playlist “{}” in “{}”; its {} track{} count as your labels.",
        p.name,
        layer.name,
        imported.labelled,
        render::plural(imported.labelled)
    )))
    .await?;
    Ok(())
}
