//! SQL for the durable job queue (the `jobs` table): enqueue with coalescing, fair claiming,
//! completion, failure with retries, cancellation, restart recovery and the queue's order.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError};
use crate::domain::MemberId;

/// A job in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(StoreError::Corrupt(format!("job state {other:?}"))),
        })
    }

    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the `jobs` table.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: JobId,
    pub member: Option<MemberId>,
    pub kind: String,
    /// JSON.
    pub payload: String,
    pub dedupe_key: Option<String>,
    pub priority: i64,
    pub state: JobState,
    /// Attempts started so far, the current one included.
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    /// JSON.
    pub result: Option<String>,
    pub created_at: DateTime<Utc>,
    pub run_after: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
}

/// A job to add.
#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    pub member: Option<MemberId>,
    pub kind: &'a str,
    /// JSON.
    pub payload: &'a str,
    pub dedupe_key: Option<&'a str>,
    pub priority: i64,
    pub max_attempts: u32,
}

/// What [`Store::insert_job`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub id: JobId,
    /// True when a queued or running job with the same dedupe key was joined instead.
    pub joined: bool,
}

/// What [`Store::cancel_job`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and is now cancelled.
    Cancelled,
    /// The job is running; it has been asked to stop.
    Requested,
    /// The job had already finished in this state.
    AlreadyFinished(JobState),
    /// No such job.
    Unknown,
}

/// What [`Store::fail_job`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// The job is queued again and runs after this time.
    Retrying(DateTime<Utc>),
    /// The job failed for good (retry cap reached or not retryable).
    Failed,
    /// A cancel had been requested: the job is cancelled.
    Cancelled,
    /// The job was not running (already finished or re-queued elsewhere).
    NotRunning,
}

/// A queued job as the fairness rule sees it, for computing queue positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyJob {
    pub id: JobId,
    pub member: Option<MemberId>,
    pub priority: i64,
    /// The member's last claim number among the same kinds (None: never served).
    pub last_turn: Option<i64>,
}

/// Timestamps are stored as fixed-width UTC text so that text order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt(format!("job timestamp {s:?}")))
}

fn member_param(member: Option<MemberId>) -> Option<i64> {
    member.map(|m| m.0 as i64)
}

/// The kinds a claim may pick, as a JSON array for `json_each`.
fn kinds_param(kinds: &[&str]) -> String {
    serde_json::to_string(kinds).unwrap_or_else(|_| "[]".to_owned())
}

fn job_row(row: &SqliteRow) -> Result<JobRow, StoreError> {
    let opt_ts = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        row.try_get::<Option<String>, _>(col)?
            .as_deref()
            .map(parse_ts)
            .transpose()
    };
    Ok(JobRow {
        id: JobId(row.try_get("id")?),
        member: row
            .try_get::<Option<i64>, _>("member_id")?
            .map(|m| MemberId(m as u64)),
        kind: row.try_get("kind")?,
        payload: row.try_get("payload")?,
        dedupe_key: row.try_get("dedupe_key")?,
        priority: row.try_get("priority")?,
        state: JobState::parse(&row.try_get::<String, _>("state")?)?,
        attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
        max_attempts: row.try_get::<i64, _>("max_attempts")?.max(0) as u32,
        last_error: row.try_get("last_error")?,
        result: row.try_get("result")?,
        created_at: parse_ts(&row.try_get::<String, _>("created_at")?)?,
        run_after: parse_ts(&row.try_get::<String, _>("run_after")?)?,
        started_at: opt_ts("started_at")?,
        finished_at: opt_ts("finished_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
    })
}

const JOB_COLUMNS: &str = "id, member_id, kind, payload, dedupe_key, priority, state, attempts, \
     max_attempts, last_error, result, created_at, run_after, started_at, finished_at, cancel_requested";

impl Store {
    /// Adds a job, or joins the queued or running job with the same dedupe key (raising its
    /// priority to the new request's if that is higher).
    pub async fn insert_job(
        &self,
        job: &NewJob<'_>,
        now: DateTime<Utc>,
    ) -> Result<Inserted, StoreError> {
        let now = ts(now);
        // The partial unique index `jobs_dedupe` makes the insert and the join race-free:
        // either this insert wins, or a live job with the key exists and is joined below.
        loop {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO jobs (member_id, kind, payload, dedupe_key, priority, max_attempts, \
                 created_at, run_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(member_param(job.member))
            .bind(job.kind)
            .bind(job.payload)
            .bind(job.dedupe_key)
            .bind(job.priority)
            .bind(i64::from(job.max_attempts))
            .bind(&now)
            .bind(&now)
            .fetch_optional(self.pool())
            .await?;
            if let Some(id) = inserted {
                return Ok(Inserted {
                    id: JobId(id),
                    joined: false,
                });
            }
            let joined: Option<i64> = sqlx::query_scalar(
                "UPDATE jobs SET priority = MAX(priority, ?) \
                 WHERE dedupe_key = ? AND state IN ('queued', 'running') RETURNING id",
            )
            .bind(job.priority)
            .bind(job.dedupe_key)
            .fetch_optional(self.pool())
            .await?;
            if let Some(id) = joined {
                return Ok(Inserted {
                    id: JobId(id),
                    joined: true,
                });
            }
            // The live job finished between the two statements: insert again.
        }
    }

    /// Claims the next ready job among `kinds`, fairly: the member with the highest-priority
    /// ready job wins; among equals, the member served least recently (never served first),
    /// then the member with the oldest ready job. Within the member: priority, then age.
    /// One statement, so two claimers never get the same job.
    pub async fn claim_job(
        &self,
        kinds: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Option<JobRow>, StoreError> {
        let sql = format!(
            "WITH ready AS ( \
                 SELECT id, member_id, priority FROM jobs \
                 WHERE state = 'queued' AND run_after <= ?1 \
                   AND kind IN (SELECT value FROM json_each(?2)) \
             ), \
             members_ready AS ( \
                 SELECT member_id, MAX(priority) AS top, MIN(id) AS oldest, \
                     (SELECT MAX(j.claim_seq) FROM jobs j \
                      WHERE j.member_id IS ready.member_id \
                        AND j.kind IN (SELECT value FROM json_each(?2))) AS last_turn \
                 FROM ready GROUP BY member_id \
             ), \
             chosen AS ( \
                 SELECT member_id FROM members_ready \
                 ORDER BY top DESC, last_turn IS NOT NULL, last_turn, oldest LIMIT 1 \
             ) \
             UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?1, \
                 claim_seq = (SELECT COALESCE(MAX(claim_seq), 0) + 1 FROM jobs) \
             WHERE id = ( \
                 SELECT id FROM ready WHERE member_id IS (SELECT member_id FROM chosen) \
                 ORDER BY priority DESC, id LIMIT 1 \
             ) AND state = 'queued' \
             RETURNING {JOB_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(now))
            .bind(kinds_param(kinds))
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Marks a running job done with its result. False when it was not running.
    pub async fn complete_job(
        &self,
        id: JobId,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', result = ?, finished_at = ? \
             WHERE id = ? AND state = 'running'",
        )
        .bind(result)
        .bind(ts(now))
        .bind(id.0)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a running job's failure. With `retry_at`, and attempts left, it is queued again
    /// to run after that time; otherwise it fails for good. Its error is kept either way. A job
    /// whose cancel was requested ends cancelled.
    pub async fn fail_job(
        &self,
        id: JobId,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome, StoreError> {
        let retry = retry_at.is_some();
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
                 state = CASE WHEN cancel_requested THEN 'cancelled' \
                              WHEN ?1 AND attempts < max_attempts THEN 'queued' \
                              ELSE 'failed' END, \
                 run_after = CASE WHEN NOT cancel_requested AND ?1 AND attempts < max_attempts \
                                  THEN ?2 ELSE run_after END, \
                 finished_at = CASE WHEN NOT cancel_requested AND ?1 AND attempts < max_attempts \
                                    THEN NULL ELSE ?3 END, \
                 last_error = ?4 \
             WHERE id = ?5 AND state = 'running' RETURNING state",
        )
        .bind(retry)
        .bind(retry_at.map(ts))
        .bind(ts(now))
        .bind(error)
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?;
        Ok(match state.as_deref() {
            None => FailOutcome::NotRunning,
            Some("queued") => FailOutcome::Retrying(retry_at.unwrap_or(now)),
            Some("cancelled") => FailOutcome::Cancelled,
            Some(_) => FailOutcome::Failed,
        })
    }

    /// Marks a running job cancelled (its handler stopped on request). False when it was not
    /// running.
    pub async fn finish_cancelled_job(
        &self,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ? \
             WHERE id = ? AND state = 'running'",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels a queued job at once, or asks a running one to stop.
    pub async fn cancel_job(
        &self,
        id: JobId,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
                 state = CASE state WHEN 'queued' THEN 'cancelled' ELSE state END, \
                 finished_at = CASE state WHEN 'queued' THEN ? ELSE finished_at END, \
                 cancel_requested = 1 \
             WHERE id = ? AND state IN ('queued', 'running') RETURNING state",
        )
        .bind(ts(now))
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?;
        match state.as_deref() {
            Some("cancelled") => Ok(CancelOutcome::Cancelled),
            Some(_) => Ok(CancelOutcome::Requested),
            None => Ok(match self.job(id).await? {
                Some(job) => CancelOutcome::AlreadyFinished(job.state),
                None => CancelOutcome::Unknown,
            }),
        }
    }

    /// Puts a running job back in the queue without counting the interrupted attempt (a clean
    /// shutdown stopped it). False when it was not running.
    pub async fn requeue_job(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), run_after = ?, \
                 started_at = NULL \
             WHERE id = ? AND state = 'running'",
        )
        .bind(ts(now))
        .bind(id.0)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// At start-up: jobs left `running` by a process that died are queued again. The interrupted
    /// attempt counts, so a job that keeps killing the process stops at its retry cap; such jobs
    /// fail with an error saying so, and ones whose cancel was requested end cancelled. Returns
    /// the jobs this made final.
    pub async fn recover_jobs(&self, now: DateTime<Utc>) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "UPDATE jobs SET \
                 state = CASE WHEN cancel_requested THEN 'cancelled' \
                              WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
                 last_error = CASE WHEN NOT cancel_requested AND attempts >= max_attempts \
                     THEN 'the process stopped while its last attempt ran' ELSE last_error END, \
                 finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts \
                     THEN ?1 ELSE NULL END, \
                 run_after = ?1, started_at = NULL \
             WHERE state = 'running' RETURNING {JOB_COLUMNS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ts(now))
            .fetch_all(self.pool())
            .await?;
        let mut finished = Vec::new();
        for row in &rows {
            let job = job_row(row)?;
            if job.state.is_final() {
                finished.push(job);
            }
        }
        Ok(finished)
    }

    /// One job.
    pub async fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// A member's jobs that are queued or running, oldest first.
    pub async fn live_jobs(&self, member: MemberId) -> Result<Vec<JobRow>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE member_id = ? \
             AND state IN ('queued', 'running') ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(member.0 as i64)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job_row).collect()
    }

    /// The queued jobs among `kinds` that are ready at `now`, with each member's last turn: what
    /// the fairness rule needs to tell a job's place in the queue.
    pub async fn ready_jobs(
        &self,
        kinds: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Vec<ReadyJob>, StoreError> {
        let rows = sqlx::query(
            "SELECT j.id, j.member_id, j.priority, \
                 (SELECT MAX(k.claim_seq) FROM jobs k WHERE k.member_id IS j.member_id \
                  AND k.kind IN (SELECT value FROM json_each(?2))) AS last_turn \
             FROM jobs j WHERE j.state = 'queued' AND j.run_after <= ?1 \
               AND j.kind IN (SELECT value FROM json_each(?2)) ORDER BY j.id",
        )
        .bind(ts(now))
        .bind(kinds_param(kinds))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ReadyJob {
                    id: JobId(row.try_get("id")?),
                    member: row
                        .try_get::<Option<i64>, _>("member_id")?
                        .map(|m| MemberId(m as u64)),
                    priority: row.try_get("priority")?,
                    last_turn: row.try_get("last_turn")?,
                })
            })
            .collect()
    }

    /// Members with an active Spotify link and no job of `kind` queued, running, or created
    /// since `since`: the ones whose periodic sync is due.
    pub async fn members_due(
        &self,
        kind: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<MemberId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT l.member_id FROM spotify_links l WHERE l.status = 'active' \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.member_id = l.member_id AND j.kind = ? \
                 AND (j.state IN ('queued', 'running') OR j.created_at > ?)) \
             ORDER BY l.member_id",
        )
        .bind(kind)
        .bind(ts(since))
        .fetch_all(self.pool())
        .await?;
        Ok(ids.into_iter().map(|m| MemberId(m as u64)).collect())
    }

    /// Deletes finished jobs that finished before `before`; returns how many.
    pub async fn prune_jobs(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND finished_at < ?",
        )
        .bind(ts(before))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
