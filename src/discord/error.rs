//! What a member sees when something fails: the true sentence for failures they caused, an
//! incident id for everything else (the cause chain goes to the log under that id).

use poise::serenity_prelude as serenity;
use rand::Rng;

use super::backend::BackendError;
use super::{Context, Data, Error};
use crate::domain::DomainError;
use crate::store::StoreError;

/// A failure the member caused; `Display` is shown to them as it is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UserError(pub String);

/// An error carrying a sentence for the member.
pub fn user_error(sentence: impl Into<String>) -> Error {
    UserError(sentence.into()).into()
}

/// The sentence to show for an error the member caused, or `None` when it is unexpected.
pub fn user_message(err: &Error) -> Option<String> {
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UserError>() {
            return Some(u.0.clone());
        }
        if let Some(d) = cause.downcast_ref::<DomainError>() {
            return Some(d.to_string());
        }
        if let Some(BackendError::Refused(s)) = cause.downcast_ref::<BackendError>() {
            return Some(s.clone());
        }
        if let Some(sentence) = discord_refusal(cause) {
            return Some(sentence.to_string());
        }
        match cause.downcast_ref::<StoreError>() {
            Some(StoreError::Domain(d)) => return Some(d.to_string()),
            Some(StoreError::NotFound(what)) => {
                return Some(format!("That {what} no longer exists."));
            }
            _ => {}
        }
    }
    None
}

/// Discord's refusals that the member (or a server manager) can fix.
fn discord_refusal(cause: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let Some(serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response))) =
        cause.downcast_ref::<serenity::Error>()
    else {
        return None;
    };
    match response.error.code {
        50007 => Some(
            "I can't send you direct messages. Allow DMs from this server's members, or choose \
             `prompts: in the server's prompt channel` in `/settings`.",
        ),
        50001 | 50013 => Some(
            "I'm not allowed to post in that channel. A server manager can give me the Send \
             Messages permission there, or choose another channel with `/setup`.",
        ),
        _ => None,
    }
}

/// A short id that ties a member's message to the log line holding the cause.
pub fn incident_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Logs an unexpected error under a fresh incident id and returns the sentence for the member.
pub fn log_incident(err: &Error, during: &str) -> String {
    let id = incident_id();
    tracing::error!(incident = %id, during, error = ?err, "unexpected error");
    format!(
        "Something went wrong on our side (incident `{id}`). Nothing you did caused it; \
         try again later, and give the bot's operator this id if it keeps happening."
    )
}

/// The sentence for any error: the member's own, or a logged incident.
pub fn describe(err: &Error, during: &str) -> String {
    user_message(err).unwrap_or_else(|| log_incident(err, during))
}

async fn reply_private(ctx: Context<'_>, text: String) {
    let reply = poise::CreateReply::default()
        .ephemeral(true)
        .content(super::render::truncate(&text, super::render::MESSAGE_MAX));
    if let Err(e) = ctx.send(reply).await {
        tracing::warn!(error = %e, "could not send an error reply");
    }
}

/// poise's error hook: every failure gets a short private answer.
pub async fn on_error(error: poise::FrameworkError<'_, Data, Error>) {
    use poise::FrameworkError as F;
    match error {
        F::Command { error, ctx, .. } => {
            let text = describe(&error, &ctx.command().qualified_name);
            reply_private(ctx, text).await;
        }
        F::ArgumentParse {
            error, input, ctx, ..
        } => {
            let text = match input {
                Some(input) => format!(
                    "I couldn't read “{}”: {error}. See `/help` for what `/{}` takes.",
                    super::render::truncate(&input, 100),
                    ctx.command().qualified_name
                ),
                None => format!("I couldn't read that: {error}."),
            };
            reply_private(ctx, text).await;
        }
        F::CommandStructureMismatch {
            ctx, description, ..
        } => {
            tracing::warn!(
                description,
                "a command's options differ from the registered ones"
            );
            reply_private(
                poise::Context::Application(ctx),
                format!(
                    "I couldn't read this command's options ({description}). If the bot was \
                     just updated, Discord may still show the old command: try again in a minute."
                ),
            )
            .await;
        }
        F::CooldownHit {
            remaining_cooldown,
            ctx,
            ..
        } => {
            let secs = remaining_cooldown.as_secs().max(1);
            let text = format!(
                "`/{}` was used a moment ago; try again in {secs} s.",
                ctx.command().qualified_name
            );
            reply_private(ctx, text).await;
        }
        F::CommandPanic { payload, ctx, .. } => {
            let err = anyhow::anyhow!("panic: {}", payload.unwrap_or_default());
            let text = log_incident(&err, &ctx.command().qualified_name);
            reply_private(ctx, text).await;
        }
        F::GuildOnly { ctx, .. } => {
            reply_private(ctx, "This command works only in a server.".into()).await;
        }
        F::MissingUserPermissions { ctx, .. } => {
            reply_private(ctx, "Only server managers can use this command.".into()).await;
        }
        F::EventHandler { error, event, .. } => {
            log_incident(&error, event.snake_case_name());
        }
        F::Setup { error, .. } => {
            log_incident(&error, "setup");
        }
        other => {
            if let Err(e) = poise::builtins::on_error(other).await {
                tracing::warn!(error = %e, "poise's error handler failed");
            }
        }
    }
}

/// Ends an interaction that was already acknowledged (deferred): edits the original response,
/// and when Discord refuses the edit, sends the same text as a private follow-up. Never a
/// second callback, which Discord refuses ("already acknowledged", 40060) and which would
/// leave the member looking at "thinking…". Failures are logged, not returned.
pub async fn finish_deferred(
    http: &serenity::Http,
    token: &str,
    text: &str,
    components: Vec<serenity::CreateActionRow>,
) {
    let text = super::render::truncate(text, super::render::MESSAGE_MAX);
    let edit = serenity::EditInteractionResponse::new()
        .content(text.clone())
        .components(components.clone());
    let Err(e) = http
        .edit_original_interaction_response(token, &edit, Vec::new())
        .await
    else {
        return;
    };
    tracing::warn!(error = %e, "could not edit a deferred answer; sending it as a follow-up");
    let follow = serenity::CreateInteractionResponseFollowup::new()
        .ephemeral(true)
        .content(text)
        .components(components);
    if let Err(e) = http
        .create_followup_message(token, &follow, Vec::new())
        .await
    {
        tracing::warn!(error = %e, "could not send the follow-up either");
    }
}

/// Answers a component or modal interaction privately (used outside commands).
pub async fn answer_private(
    http: &serenity::Http,
    interaction_id: serenity::InteractionId,
    token: &str,
    text: &str,
) -> serenity::Result<()> {
    let msg = serenity::CreateInteractionResponseMessage::new()
        .ephemeral(true)
        .content(super::render::truncate(text, super::render::MESSAGE_MAX));
    http.create_interaction_response(
        interaction_id,
        token,
        &serenity::CreateInteractionResponse::Message(msg),
        Vec::new(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_errors_keep_their_sentence_through_context() {
        let err: Error = Error::from(DomainError::EmptyName).context("creating a layer");
        assert_eq!(
            user_message(&err).as_deref(),
            Some("A name can't be empty.")
        );
        let err: Error = BackendError::refused("Link Spotify first: use /link.").into();
        assert_eq!(
            user_message(&err).as_deref(),
            Some("Link Spotify first: use /link.")
        );
        assert_eq!(user_message(&user_error("No.")).as_deref(), Some("No."));
    }

    #[test]
    fn unexpected_errors_get_an_incident_id_not_their_cause() {
        let err = anyhow::anyhow!("database is locked: secret detail");
        assert_eq!(user_message(&err), None);
        let text = describe(&err, "test");
        assert!(text.contains("incident `"));
        assert!(!text.contains("secret detail"));
        let a = incident_id();
        assert_eq!(a.len(), 8);
        assert_ne!(a, incident_id());
    }
}
