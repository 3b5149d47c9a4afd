//! `/label`, `/train start | cancel`, `/refresh`: the commands that make sublist work now.

use std::sync::Arc;

use poise::serenity_prelude as serenity;
use secrecy::ExposeSecret;
use serenity::{EditInteractionResponse, Http};
use tokio::sync::mpsc;

use super::{Context, Error, autocomplete_layer, find_layer, member, private};
use crate::discord::backend::{Backend, JobId, TrainTicket, TrainUpdate};
use crate::discord::render::{self, percent};
use crate::domain::{LayerId, MemberId};
use crate::store::Store;

/// How long Discord lets a bot edit its reply to a command (15 minutes), less a margin.
const REPLY_EDITABLE: chrono::Duration = chrono::Duration::minutes(14);

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

/// The `/train` reply: one line per layer's training.
fn ticket_text(names: &[String], updates: &[TrainUpdate]) -> String {
    let lines: Vec<String> = names
        .iter()
        .zip(updates)
        .map(|(name, update)| update_text(&format!("“{name}”"), update))
        .collect();
    render::truncate(&lines.join("\n"), render::MESSAGE_MAX)
}

/// Keeps a `/train` reply up to date until every job in it has ended (or Discord no longer
/// takes edits), then forgets the stored reply. `updates` holds what the reply shows now;
/// `None` for a job not heard of yet (the reply is edited once every job has been heard of).
async fn follow_reply(
    http: Arc<Http>,
    store: Store,
    reply: Option<i64>,
    token: String,
    names: Vec<String>,
    mut updates: Vec<Option<TrainUpdate>>,
    mut progress: mpsc::Receiver<(usize, TrainUpdate)>,
) {
    let mut settled = false;
    while let Some((i, update)) = progress.recv().await {
        let Some(slot) = updates.get_mut(i) else {
            continue;
        };
        *slot = Some(update);
        let Some(shown) = updates.iter().cloned().collect::<Option<Vec<_>>>() else {
            continue;
        };
        let edit = EditInteractionResponse::new().content(ticket_text(&names, &shown));
        if let Err(e) = http
            .edit_original_interaction_response(&token, &edit, Vec::new())
            .await
        {
            tracing::warn!(error = %e, "could not update the /train message");
            settled = true;
            break;
        }
        if shown.iter().all(TrainUpdate::is_final) {
            settled = true;
            break;
        }
    }
    // A reply left unsettled stays stored: a restarted bot picks it up again.
    if settled
        && let Some(id) = reply
        && let Err(e) = store.delete_train_reply(id).await
    {
        tracing::warn!(error = %e, "could not forget a finished /train reply");
    }
}

/// At start-up: takes up the `/train` replies that a previous run of the bot was still
/// following, so that each reaches its final state.
pub(crate) async fn resume_train_replies(http: Arc<Http>, store: Store, backend: Arc<dyn Backend>) {
    let replies = match store.train_replies(store.now()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the /train replies to resume");
            return;
        }
    };
    for reply in replies {
        let jobs: Vec<JobId> = reply.jobs.iter().map(|(j, _)| JobId(j.0)).collect();
        let names: Vec<String> = reply.jobs.iter().map(|(_, n)| n.clone()).collect();
        match backend.follow_training(reply.member, &jobs).await {
            Ok(progress) => {
                tokio::spawn(follow_reply(
                    http.clone(),
                    store.clone(),
                    Some(reply.id),
                    reply.token.expose_secret().to_string(),
                    names,
                    vec![None; jobs.len()],
                    progress,
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, reply = reply.id, "could not resume a /train reply");
            }
        }
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
    let TrainTicket { jobs, progress } = ctx
        .data()
        .backend
        .queue_training(member, layer.as_ref().map(|(id, _)| *id))
        .await?;
    let names: Vec<String> = jobs.iter().map(|j| j.layer_name.clone()).collect();
    let updates: Vec<TrainUpdate> = jobs
        .iter()
        .map(|j| TrainUpdate::Queued {
            position: j.position,
        })
        .collect();
    ctx.send(private(ticket_text(&names, &updates))).await?;
    tracing::info!(jobs = jobs.len(), "training queued from Discord");
    if let poise::Context::Application(actx) = ctx {
        let http = ctx.serenity_context().http.clone();
        let token = actx.interaction.token.clone();
        let store = ctx.data().store.clone();
        let reply = remember_reply(&store, member, &token, &jobs).await;
        tokio::spawn(follow_reply(
            http,
            store,
            reply,
            token,
            names,
            updates.into_iter().map(Some).collect(),
            progress,
        ));
    }
    Ok(())
}

/// Stores the reply so that a restarted bot can finish it; None when that failed (the reply is
/// still followed while this process runs).
async fn remember_reply(
    store: &Store,
    member: MemberId,
    token: &str,
    jobs: &[crate::discord::backend::TrainJob],
) -> Option<i64> {
    let jobs: Vec<(crate::store::JobId, String)> = jobs
        .iter()
        .map(|j| (crate::store::JobId(j.job.0), j.layer_name.clone()))
        .collect();
    let expires_at = store.now() + REPLY_EDITABLE;
    match store
        .save_train_reply(member, token, &jobs, expires_at)
        .await
    {
        Ok(id) => Some(id),
        Err(e) => {
            tracing::warn!(error = %e, "could not store the /train reply");
            None
        }
    }
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
    // The member gets the reply either way; an announcement that can't be delivered is logged.
    if let Err(e) = data.notifier.announce_refresh(member, &summary).await {
        tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not announce a refresh");
    }
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

    #[test]
    fn a_reply_for_several_layers_tells_each_ones_outcome() {
        let names = vec!["Mood".to_string(), "Genre".to_string()];
        let updates = vec![
            TrainUpdate::Failed("label a few more.".into()),
            TrainUpdate::Running {
                epoch: 3,
                epochs: 50,
            },
        ];
        assert_eq!(
            ticket_text(&names, &updates),
            "Training “Mood” failed: label a few more.\nTraining “Genre”: epoch 3 of 50."
        );
    }
}
