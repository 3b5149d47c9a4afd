//! The job handler: what each kind of queued job does.

use serde_json::json;

use super::App;
use crate::jobs::{Job, JobContext, JobError, JobHandler, JobKind};
use crate::spotify::SpotifyError;

/// Whether a failed Spotify operation is worth another attempt. A quota pause defers the job
/// until Spotify's resume time without using up an attempt; nothing pending is lost. What the
/// member must fix (link again, the allowlist, a playlist) is refused with Spotify's sentence
/// for them.
fn job_error(e: SpotifyError) -> JobError {
    match e {
        SpotifyError::Paused { until } => JobError::Deferred {
            until,
            reason: e.to_string(),
        },
        SpotifyError::Unavailable(_) | SpotifyError::Protocol(_) => JobError::Retry(e.to_string()),
        // The sentence hides the cause; the job's error keeps it for the log.
        SpotifyError::Store(s) => JobError::Retry(format!("database: {s}")),
        SpotifyError::Api { .. } => JobError::Fatal(e.to_string()),
        _ => JobError::Refused(e.to_string()),
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
                        .sort_after_sync(*member, report.new_tracks.len() as u32)
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
                    // An announcement that can't be delivered is logged, not retried.
                    if let (Some(n), Some(text)) = (self.notifier(), details.as_str())
                        && let Err(e) = n.announce(*member, text.to_string()).await
                    {
                        tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not deliver an announcement");
                        return Ok(json!({ "delivered": false }));
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
        let member = job.kind.member();
        let what = describe(&job.kind);
        let refused = matches!(self.store().job(job.id).await, Ok(Some(row)) if row.refused);
        let text = if refused {
            tracing::info!(
                job = job.id.0,
                kind = job.kind.name(),
                error,
                "a job was refused"
            );
            format!("<@{}>, I couldn't finish {what}: {error}", member.0)
        } else {
            // The member reads a true sentence; the error goes to the log under its incident id.
            let sentence = crate::discord::log_incident(
                &anyhow::anyhow!(
                    "job {} ({}) failed for good: {error}",
                    job.id.0,
                    job.kind.name()
                ),
                what,
            );
            let tries = if job.attempt == 1 { "try" } else { "tries" };
            format!(
                "<@{}>, I couldn't finish {what} after {} {tries}. {sentence}",
                member.0, job.attempt
            )
        };
        if let Some(n) = self.notifier()
            && let Err(e) = n.announce(member, text).await
        {
            tracing::warn!(error = %format!("{e:#}"), "could not tell the member about a failed job");
        }
    }

    async fn progress_mark(&self, job: &Job) -> Option<String> {
        match &job.kind {
            JobKind::SyncMember { member } | JobKind::SortAndWrite { member, .. } => {
                self.store().work_mark(*member).await.ok()
            }
            _ => None,
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
