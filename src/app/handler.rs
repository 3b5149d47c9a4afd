//! The job handler: what each kind of queued job does.

use serde_json::json;

use super::App;
use crate::jobs::{Job, JobContext, JobError, JobHandler, JobKind};
use crate::spotify::SpotifyError;

/// Whether a failed Spotify operation is worth another attempt. A quota pause defers the job
/// until Spotify's resume time without using up an attempt; nothing pending is lost.
fn job_error(e: SpotifyError) -> JobError {
    match e {
        SpotifyError::Paused { until } => JobError::Deferred {
            until,
            reason: e.to_string(),
        },
        SpotifyError::Unavailable(_) | SpotifyError::Store(_) | SpotifyError::Protocol(_) => {
            JobError::Retry(e.to_string())
        }
        _ => JobError::Fatal(e.to_string()),
    }
}

fn any_error(e: anyhow::Error) -> JobError {
    match e.downcast::<SpotifyError>() {
        Ok(s) => job_error(s),
        Err(e) => JobError::Retry(format!("{e:#}")),
    }
}

impl JobHandler for App {
    async fn run(&self, job: &Job, ctx: JobContext) -> Result<serde_json::Value, JobError> {
        let work = async {
            match &job.kind {
                JobKind::SyncMember { member } => {
                    let report = self
                        .spotify()
                        .sync_motherlist(*member, &|_| {})
                        .await
                        .map_err(job_error)?;
                    if let Err(e) = self.spotify().fill_audio(400).await {
                        // Descriptors are optional: sorting goes on without them.
                        tracing::warn!(error = %e, "audio descriptors unavailable");
                    }
                    let outcome = self
                        .sort_member(*member, None, report.new_tracks.len() as u32)
                        .await
                        .map_err(any_error)?;
                    Ok(serde_json::to_value(outcome).unwrap_or_default())
                }
                JobKind::FetchAudio { .. } => {
                    let report = self.spotify().fill_audio(400).await.map_err(job_error)?;
                    Ok(json!({ "asked": report.asked, "found": report.found }))
                }
                JobKind::Train { member, layer } => {
                    let trained = self
                        .train_layer(*member, *layer, ctx.progress.clone(), ctx.cancel.clone())
                        .await?;
                    self.queue()
                        .enqueue(
                            JobKind::SortAndWrite {
                                member: *member,
                                layer: Some(*layer),
                            },
                            job.priority,
                        )
                        .await
                        .map_err(anyhow::Error::from)?;
                    Ok(serde_json::to_value(trained).unwrap_or_default())
                }
                JobKind::SortAndWrite { member, layer } => {
                    let outcome = self
                        .sort_member(*member, *layer, 0)
                        .await
                        .map_err(any_error)?;
                    Ok(serde_json::to_value(outcome).unwrap_or_default())
                }
                JobKind::PostPrompts { member } => {
                    let posted = self
                        .post_waiting_prompts(*member)
                        .await
                        .map_err(any_error)?;
                    Ok(json!({ "posted": posted }))
                }
                JobKind::Announce { member, details } => {
                    if let (Some(n), Some(text)) = (self.notifier(), details.as_str()) {
                        n.announce(*member, text.to_string())
                            .await
                            .map_err(|e| JobError::Retry(format!("{e:#}")))?;
                    }
                    Ok(json!({}))
                }
            }
        };
        if matches!(job.kind, JobKind::Train { .. }) {
            // Training stops itself on the device thread when cancelled.
            return work.await;
        }
        tokio::select! {
            result = work => result,
            () = ctx.cancel.cancelled() => Err(JobError::Cancelled),
        }
    }

    async fn on_failed(&self, job: &Job, error: &str) {
        tracing::warn!(
            job = job.id.0,
            kind = job.kind.name(),
            error,
            "a job failed for good"
        );
        if let Some(n) = self.notifier() {
            let text = format!(
                "<@{}>, I couldn't finish {} after {} tries: {error}",
                job.kind.member().0,
                describe(&job.kind),
                job.attempt
            );
            if let Err(e) = n.announce(job.kind.member(), text).await {
                tracing::warn!(error = %e, "could not tell the member about a failed job");
            }
        }
    }
}

/// A phrase for a job, for messages.
pub(crate) fn describe(kind: &JobKind) -> &'static str {
    match kind {
        JobKind::SyncMember { .. } => "syncing your Liked Songs",
        JobKind::FetchAudio { .. } => "fetching audio descriptors",
        JobKind::Train { .. } => "training",
        JobKind::SortAndWrite { .. } => "sorting your sublists",
        JobKind::PostPrompts { .. } => "posting questions",
        JobKind::Announce { .. } => "an announcement",
    }
}
