//! `/label`, `/train start | cancel`, `/refresh`: the commands that make sublist work now.

use poise::serenity_prelude as serenity;
use serenity::EditInteractionResponse;

use super::{Context, Error, autocomplete_layer, find_layer, member, private};
use crate::discord::backend::{TrainTicket, TrainUpdate};
use crate::discord::render::{self, percent};
use crate::domain::LayerId;

/// The most prompts one `/label` posts (each costs several rate-limited calls).
pub(crate) const MAX_LABEL_COUNT: u32 = 10;

async fn layer_id(
    ctx: Context<'_>,
    member: crate::domain::MemberId,
    layer: Option<String>,
) -> Result<Option<(LayerId, String)>, Error> {
    Ok(match layer {
        Some(name) => {
            let l = find_layer(ctx, member, &name).await?;
            Some((l.id, l.name))
        }
        None => None,
    })
}

/// Ask me about some tracks now, the ones the model learns most from
#[poise::command(slash_command)]
pub async fn label(
    ctx: Context<'_>,
    #[description = "Only this layer (all layers when empty)"]
    #[autocomplete = "autocomplete_layer"]
    layer: Option<String>,
    #[description = "How many tracks (1 to 10, default 5)"]
    #[min = 1]
    #[max = 10]
    count: Option<i64>,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let count = match count {
        None => 5,
        Some(n) if (1..=i64::from(MAX_LABEL_COUNT)).contains(&n) => n as u32,
        Some(n) => {
            return Err(crate::discord::error::user_error(format!(
                "I can ask about 1 to {MAX_LABEL_COUNT} tracks at a time, not {n}."
            )));
        }
    };
    let layer = layer_id(ctx, member, layer).await?;
    ctx.defer_ephemeral().await?;
    let data = ctx.data();
    let requests = data
        .backend
        .pick_prompts(member, layer.as_ref().map(|(id, _)| *id), count)
        .await?;
    if requests.is_empty() {
        ctx.send(private(
            "Nothing to ask about right now: every track has an answer or a confident guess.",
        ))
        .await?;
        return Ok(());
    }
    let notifier = &data.notifier;
    let out = notifier
        .post_requested(member, requests, count as usize)
        .await?;
    let n = out.posted.len() as u32;
    let text = if n == 0 {
        "Those tracks were already asked about: answer the open questions first.".to_string()
    } else {
        format!(
            "Asked about {n} track{}: react or use the buttons on each.",
            render::plural(n)
        )
    };
    ctx.send(private(text)).await?;
    Ok(())
}

/// Train models on your labels, on the shared GPU
#[poise::command(slash_command, subcommands("start", "cancel"), subcommand_required)]
pub async fn train(_: Context<'_>) -> Result<(), Error> {
    Ok(())
}

fn update_text(what: &str, update: &TrainUpdate) -> String {
    match update {
        TrainUpdate::Queued { position } => {
            format!("Training {what} is queued: position {position}.")
        }
        TrainUpdate::Running { epoch, epochs } => {
            format!("Training {what}: epoch {epoch} of {epochs}.")
        }
        TrainUpdate::Done(r) => {
            let mut s = format!(
                "Training {what} is done: {} accurate on held-out labels",
                percent(r.accuracy)
            );
            if let Some(prev) = r.previous_accuracy {
                s.push_str(&format!(" (was {})", percent(prev)));
            }
            s.push_str(". ");
            s.push_str(&r.summary);
            s
        }
        TrainUpdate::Failed(why) => format!("Training {what} failed: {why}"),
        TrainUpdate::Cancelled => format!("Training {what} was cancelled."),
    }
}

/// Queue training now; the answer shows the queue position, then progress and the result
#[poise::command(slash_command)]
async fn start(
    ctx: Context<'_>,
    #[description = "Only this layer (all layers when empty)"]
    #[autocomplete = "autocomplete_layer"]
    layer: Option<String>,
) -> Result<(), Error> {
    let member = member(ctx).await?;
    let layer = layer_id(ctx, member, layer).await?;
    let TrainTicket {
        job,
        position,
        mut progress,
    } = ctx
        .data()
        .backend
        .queue_training(member, layer.as_ref().map(|(id, _)| *id))
        .await?;
    let what = match &layer {
        Some((_, name)) => format!("“{name}”"),
        None => "your layers".to_string(),
    };
    ctx.send(private(update_text(
        &what,
        &TrainUpdate::Queued { position },
    )))
    .await?;
    tracing::info!(job = job.0, position, "training queued from Discord");
    if let poise::Context::Application(actx) = ctx {
        let http = ctx.serenity_context().http.clone();
        let token = actx.interaction.token.clone();
        tokio::spawn(async move {
            while let Some(update) = progress.recv().await {
                let edit = EditInteractionResponse::new().content(update_text(&what, &update));
                if let Err(e) = http
                    .edit_original_interaction_response(&token, &edit, Vec::new())
                    .await
                {
                    tracing::warn!(error = %e, "could not update the /train message");
                    break;
                }
            }
        });
    }
    Ok(())
}

/// Cancel your queued or running training
#[poise::command(slash_command)]
async fn cancel(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    let n = ctx.data().backend.cancel_training(member).await?;
    let text = if n == 0 {
        "You have no training queued or running.".to_string()
    } else {
        format!("Cancelled {n} training job{}.", render::plural(n))
    };
    ctx.send(private(text)).await?;
    Ok(())
}

/// Sync your liked songs and re-sort your sublists now
#[poise::command(slash_command)]
pub async fn refresh(ctx: Context<'_>) -> Result<(), Error> {
    let member = member(ctx).await?;
    ctx.defer_ephemeral().await?;
    let data = ctx.data();
    let summary = data.backend.refresh(member).await?;
    let notifier = &data.notifier;
    notifier.announce_refresh(member, &summary).await?;
    ctx.send(private(render::refresh_announcement(member, &summary)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::backend::TrainResult;

    #[test]
    fn training_updates_read_well() {
        assert_eq!(
            update_text("“Mood”", &TrainUpdate::Queued { position: 2 }),
            "Training “Mood” is queued: position 2."
        );
        let done = TrainUpdate::Done(TrainResult {
            accuracy: 0.84,
            previous_accuracy: Some(0.79),
            summary: "12 tracks would now go elsewhere.".into(),
        });
        assert_eq!(
            update_text("“Mood”", &done),
            "Training “Mood” is done: 84% accurate on held-out labels (was 79%). \
             12 tracks would now go elsewhere."
        );
    }
}
