//! `/link`, `/unlink`, `/forget-me`.

use std::time::Duration;

use poise::serenity_prelude as serenity;
use serenity::{ButtonStyle, CreateActionRow, CreateButton};

use super::{Context, Error, confirm_link_question, member, private};
use crate::discord::custom_id::CustomId;
use crate::discord::error::{describe, finish_deferred};

/// How long a `/link` message waits for the link to complete (interaction tokens last 15 min).
const LINK_WAIT: Duration = Duration::from_secs(14 * 60);

/// Link your Spotify account
///
/// Opens Spotify's consent page. If the bot has no public HTTPS callback, your browser ends on
/// an address that doesn't load: copy it and paste it with the second button. Then confirm the
/// account Spotify sent back before it is linked.
#[poise::command(slash_command)]
pub async fn link(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    ctx.defer_ephemeral().await?;
    let start = ctx.data().backend.begin_link(member).await?;
    let buttons = vec![CreateActionRow::Buttons(vec![
        CreateButton::new_link(start.consent_url).label("Open Spotify's consent page"),
        CreateButton::new(CustomId::LinkPaste.encode())
            .label("Paste the address")
            .style(ButtonStyle::Secondary),
    ])];
    ctx.send(
        private(
            "Link your Spotify account: open the consent page and accept. If your browser then \
             shows an address that doesn't load, copy it and press **Paste the address**.",
        )
        .components(buttons),
    )
    .await?;
    if let poise::Context::Application(actx) = ctx {
        let http = ctx.serenity_context().http.clone();
        let token = actx.interaction.token.clone();
        let completed = start.completed;
        tokio::spawn(async move {
            let (text, components) = match tokio::time::timeout(LINK_WAIT, completed).await {
                Ok(Ok(Ok(pending))) => confirm_link_question(member, &pending),
                Ok(Ok(Err(e))) => (describe(&e.into(), "link"), Vec::new()),
                Ok(Err(_)) | Err(_) => (
                    "This link attempt expired. Use `/link` again.".to_string(),
                    Vec::new(),
                ),
            };
            finish_deferred(&http, &token, &text, components).await;
        });
    }
    Ok(())
}

/// Unlink your Spotify account (layers and labels stay)
#[poise::command(slash_command)]
pub async fn unlink(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    ctx.data().backend.unlink(member).await?;
    ctx.send(private(
        "Unlinked. Your layers and labels stay; your sublists stop updating until you `/link` again.",
    ))
    .await?;
    Ok(())
}

/// Delete everything sublist knows about you
///
/// Deletes your tokens, labels, models, jobs, prompts and announcements, after you confirm.
/// Your playlists on Spotify stay, but are no longer maintained.
#[poise::command(slash_command, rename = "forget-me")]
pub async fn forget_me(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    let buttons = vec![CreateActionRow::Buttons(vec![
        CreateButton::new(
            CustomId::Forget {
                member,
                confirm: true,
            }
            .encode(),
        )
        .label("Delete everything")
        .style(ButtonStyle::Danger),
        CreateButton::new(
            CustomId::Forget {
                member,
                confirm: false,
            }
            .encode(),
        )
        .label("Keep it")
        .style(ButtonStyle::Secondary),
    ])];
    ctx.send(
        private(
            "This stops work in progress for you and deletes your Spotify tokens, labels, \
             models, jobs, prompts and announcements. The playlists on Spotify stay, but sublist \
             will no longer maintain them. Are you sure?",
        )
        .components(buttons),
    )
    .await?;
    Ok(())
}
