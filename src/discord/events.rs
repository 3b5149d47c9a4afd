//! The global event handler: reactions on prompts, and the buttons, menus and modals of the
//! bot's messages. State comes from the database and the `custom_id`, never from memory, so all
//! of it keeps working after a restart.

use std::collections::BTreeSet;

use poise::serenity_prelude as serenity;
use serenity::{
    ComponentInteraction, ComponentInteractionDataKind, CreateInteractionResponse,
    CreateInteractionResponseMessage, FullEvent, Interaction, ModalInteraction, Reaction,
};

use super::custom_id::{CustomId, PromptAction};
use super::error::{answer_private, describe, finish_deferred};
use super::prompts::Answer;
use super::render::{self, ReactionMeaning};
use super::{Data, Error};
use crate::domain::{MemberId, SublistId};

type Fw<'a> = poise::FrameworkContext<'a, Data, Error>;

pub(crate) async fn handle(fw: Fw<'_>, event: &FullEvent) -> Result<(), Error> {
    match event {
        FullEvent::ReactionAdd { add_reaction } => on_reaction(fw, add_reaction, true).await,
        FullEvent::ReactionRemove { removed_reaction } => {
            on_reaction(fw, removed_reaction, false).await
        }
        FullEvent::InteractionCreate { interaction } => match interaction {
            Interaction::Component(c) => {
                let result = on_component(fw, c).await;
                reply_failure(fw, c.id, &c.token, result, "component").await
            }
            Interaction::Modal(m) => {
                let result = on_modal(fw, m).await;
                reply_failure(fw, m.id, &m.token, result, "modal").await
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Turns a failed component or modal into a private answer with the true reason.
async fn reply_failure(
    fw: Fw<'_>,
    id: serenity::InteractionId,
    token: &str,
    result: Result<(), Error>,
    during: &str,
) -> Result<(), Error> {
    if let Err(err) = result {
        let text = describe(&err, during);
        answer_private(&fw.serenity_context.http, id, token, &text).await?;
    }
    Ok(())
}

async fn on_reaction(fw: Fw<'_>, r: &Reaction, added: bool) -> Result<(), Error> {
    let Some(user) = r.user_id else {
        return Ok(());
    };
    if user == fw.bot_id() {
        return Ok(());
    }
    let data = fw.user_data;
    let Some(prompt) = data.store.prompt_by_message(r.message_id.get()).await? else {
        return Ok(());
    };
    let http = &fw.serenity_context.http;
    if prompt.member.0 != user.get() {
        // Not theirs to answer: it never counts, but it would read as an answer to everyone
        // else, so it is removed. That takes Manage Messages in the channel (the README's
        // invite and /setup ask for it). Only a server channel can hold someone else's
        // reaction: a DM has no one else in it.
        if added
            && r.guild_id.is_some()
            && let Err(e) = r.delete(http).await
        {
            tracing::debug!(
                channel = r.channel_id.get(),
                message = r.message_id.get(),
                error = %e,
                "could not remove another member's reaction from a prompt (the bot needs \
                 Manage Messages in that channel); it is ignored either way"
            );
        }
        return Ok(());
    }
    let Some(layer) = data.store.layer(prompt.layer).await? else {
        return Ok(());
    };
    let answer = match render::reaction_meaning(&layer, &r.emoji) {
        Some(ReactionMeaning::Sublist(id)) => Answer::Toggle(id, added),
        Some(ReactionMeaning::Void) => Answer::Void(added),
        None => return Ok(()),
    };
    let answered = data.answers.answer(&data.store, prompt, answer).await?;
    answered.edit_message(http).await?;
    Ok(())
}

fn not_for_you() -> CreateInteractionResponse {
    CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .ephemeral(true)
            .content("This one is not for you: only the member it asks can answer it."),
    )
}

async fn on_component(fw: Fw<'_>, c: &ComponentInteraction) -> Result<(), Error> {
    let http = &fw.serenity_context.http;
    let data = fw.user_data;
    let clicker = MemberId(c.user.id.get());
    let Some(id) = CustomId::parse(&c.data.custom_id) else {
        answer_private(
            http,
            c.id,
            &c.token,
            "This button belongs to an older version of the bot. Use `/label` for a fresh one.",
        )
        .await?;
        return Ok(());
    };
    match id {
        CustomId::Prompt { prompt, action } => {
            let Some(p) = data.store.prompt(prompt).await? else {
                answer_private(http, c.id, &c.token, "This question was withdrawn.").await?;
                return Ok(());
            };
            if p.member != clicker {
                c.create_response(http, not_for_you()).await?;
                return Ok(());
            }
            let answer = match action {
                PromptAction::Sublist(s) => Answer::Toggle(s, true),
                PromptAction::Void => Answer::Void(true),
                PromptAction::Skip => Answer::Skip,
                PromptAction::Menu => match &c.data.kind {
                    ComponentInteractionDataKind::StringSelect { values } => menu_answer(values)?,
                    _ => return Err(super::error::user_error("That menu answer was empty.")),
                },
            };
            let answered = data.answers.answer(&data.store, p, answer).await?;
            let update = CreateInteractionResponseMessage::new()
                .embed(answered.embed())
                .components(answered.components());
            c.create_response(http, CreateInteractionResponse::UpdateMessage(update))
                .await?;
        }
        CustomId::LinkPaste => {
            let input = serenity::CreateInputText::new(
                serenity::InputTextStyle::Paragraph,
                "The address your browser ended on",
                "url",
            )
            .placeholder("http://127.0.0.1:8888/callback?code=…&state=…")
            .min_length(10)
            .max_length(4000);
            let modal =
                serenity::CreateModal::new(CustomId::LinkModal.encode(), "Finish linking Spotify")
                    .components(vec![serenity::CreateActionRow::InputText(input)]);
            c.create_response(http, CreateInteractionResponse::Modal(modal))
                .await?;
        }
        CustomId::LinkModal => {
            answer_private(http, c.id, &c.token, "Use the button to open the form.").await?;
        }
        CustomId::Forget { member, confirm } => {
            if member != clicker {
                c.create_response(http, not_for_you()).await?;
                return Ok(());
            }
            if !confirm {
                c.create_response(http, update_text("Nothing was deleted."))
                    .await?;
                return Ok(());
            }
            // Work in progress for the member stops first, which can take a moment: answer
            // within Discord's 3 s, then edit the message.
            c.create_response(http, CreateInteractionResponse::Acknowledge)
                .await?;
            let text = match data.backend.forget_member(member).await {
                Ok(forgotten) => {
                    delete_messages(http, &forgotten.messages).await;
                    FORGOTTEN.to_string()
                }
                Err(e) => describe(&e.into(), "forget-me"),
            };
            finish_deferred(http, &c.token, &text, Vec::new()).await;
        }
        CustomId::LinkConfirm { member, confirm } => {
            if member != clicker {
                c.create_response(http, not_for_you()).await?;
                return Ok(());
            }
            if !confirm {
                let text = match data.backend.cancel_link(member).await {
                    Ok(()) => "Nothing was linked. Use `/link` again, and open the consent page \
                               yourself, logged in to your own Spotify account."
                        .to_string(),
                    Err(e) => describe(&e.into(), "link"),
                };
                c.create_response(http, update_text(&text)).await?;
                return Ok(());
            }
            // The first sync of the account follows: answer within 3 s, then edit.
            c.create_response(http, CreateInteractionResponse::Acknowledge)
                .await?;
            let text = match data.backend.confirm_link(member).await {
                Ok(linked) => super::commands::linked_text(&linked),
                Err(e) => describe(&e.into(), "link"),
            };
            finish_deferred(http, &c.token, &text, Vec::new()).await;
        }
    }
    Ok(())
}

/// What `/forget-me` says once it is done.
const FORGOTTEN: &str = "Done: your tokens, labels, models, jobs, prompts and announcements are \
    deleted, and work in progress for you has stopped. The playlists on Spotify stay, but \
    sublist no longer maintains them. To remove sublist's access to your Spotify account too, \
    open https://www.spotify.com/account/apps/ and choose *Remove access* next to this app.";

/// Replaces the message a component is on with a sentence and no components.
fn update_text(text: &str) -> CreateInteractionResponse {
    CreateInteractionResponse::UpdateMessage(
        CreateInteractionResponseMessage::new()
            .content(render::truncate(text, render::MESSAGE_MAX))
            .components(Vec::new()),
    )
}

/// Deletes the bot's messages for a forgotten member; one that is already gone is fine.
async fn delete_messages(http: &serenity::Http, messages: &[(u64, u64)]) {
    for &(channel, message) in messages {
        if let Err(e) = http
            .delete_message(
                serenity::ChannelId::new(channel),
                serenity::MessageId::new(message),
                None,
            )
            .await
        {
            tracing::info!(channel, message, error = %e, "could not delete a forgotten member's message");
        }
    }
}

/// The label a select menu's values name: sublist ids; none at all is the void.
fn menu_answer(values: &[String]) -> Result<Answer, Error> {
    let mut set = BTreeSet::new();
    for v in values {
        let id: i64 = v.parse().map_err(|_| {
            super::error::user_error("That menu answer was not one of the sublists.")
        })?;
        set.insert(SublistId(id));
    }
    Ok(Answer::Set(set))
}

async fn on_modal(fw: Fw<'_>, m: &ModalInteraction) -> Result<(), Error> {
    let http = &fw.serenity_context.http;
    if CustomId::parse(&m.data.custom_id) != Some(CustomId::LinkModal) {
        answer_private(
            http,
            m.id,
            &m.token,
            "This form belongs to an older version of the bot. Use `/link` again.",
        )
        .await?;
        return Ok(());
    }
    let pasted = m
        .data
        .components
        .iter()
        .flat_map(|row| row.components.iter())
        .find_map(|c| match c {
            serenity::ActionRowComponent::InputText(t) => t.value.clone(),
            _ => None,
        })
        .unwrap_or_default();
    // Spotify's token exchange can take a moment: answer within 3 s, then edit. From here on
    // the interaction is acknowledged, so nothing may end in a second callback.
    m.defer_ephemeral(http).await?;
    let member = MemberId(m.user.id.get());
    let (text, components) = match fw
        .user_data
        .backend
        .complete_link(member, pasted.trim())
        .await
    {
        Ok(pending) => super::commands::confirm_link_question(member, &pending),
        Err(e) => (describe(&e.into(), "link"), Vec::new()),
    };
    finish_deferred(http, &m.token, &text, components).await;
    Ok(())
}
