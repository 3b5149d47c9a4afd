//! SQL for the durable job queue (the `jobs` table): enqueue with coalescing, fair claiming,
//! completion, failure with retries, cancellation, restart recovery and the queue's order.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
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
    /// The job failed for a reason its member can read and fix: `last_error` is a sentence for
    /// them, not detail for the log.
    pub refused: bool,
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
    /// When an equal job is already running (not just queued): queue one follow-up to run after
    /// it, instead of joining it (a member's `/train` must see the labels given meanwhile).
    pub follow_running: bool,
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
        refused: row.try_get::<i64, _>("refused")? != 0,
    })
}

const JOB_COLUMNS: &str = "id, member_id, kind, payload, dedupe_key, priority, state, attempts, \
     max_attempts, last_error, result, created_at, run_after, started_at, finished_at, \
     cancel_requested, refused";

/// The dedupe key of the follow-up that may wait behind a running job with `key`. A job's
/// family is its key without the trailing `+`: the SQL compares `rtrim(dedupe_key, '+')`.
fn follow_up_key(key: &str) -> String {
    format!("{key}+")
}

/// A `/train` reply that follows training jobs.
#[derive(Debug)]
pub struct TrainReply {
    pub id: i64,
    pub member: MemberId,
    /// The interaction token that lets the bot edit the reply.
    pub token: SecretString,
    /// The jobs it follows, with the name of the layer each trains.
    pub jobs: Vec<(JobId, String)>,
}

impl Store {
    /// Adds a job, or joins the live job with the same dedupe key (raising its priority to the
    /// new request's if that is higher): the queued one first; else the running one, or, when
    /// `follow_running` is set, a follow-up queued behind it (joined like any queued job).
    pub async fn insert_job(
        &self,
        job: &NewJob<'_>,
        now: DateTime<Utc>,
    ) -> Result<Inserted, StoreError> {
        let now = ts(now);
        let Some(key) = job.dedupe_key.map(|k| k.trim_end_matches('+')) else {
            let id = self.insert_job_row(job, None, &now).await?;
            return Ok(Inserted {
                id: JobId(id.unwrap_or_default()),
                joined: false,
            });
        };
        // The partial unique index `jobs_dedupe` makes this race-free: an insert that lost a
        // race inserts nothing, and the loop joins the winner.
        loop {
            let queued: Option<i64> = sqlx::query_scalar(
                "UPDATE jobs SET priority = MAX(priority, ?1) WHERE id = ( \
                     SELECT id FROM jobs WHERE rtrim(dedupe_key, '+') = ?2 AND state = 'queued' \
                     ORDER BY id LIMIT 1) \
                 RETURNING id",
            )
            .bind(job.priority)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
            if let Some(id) = queued {
                return Ok(Inserted {
                    id: JobId(id),
                    joined: true,
                });
            }
            let running: Option<(i64, String)> = sqlx::query_as(
                "SELECT id, dedupe_key FROM jobs \
                 WHERE rtrim(dedupe_key, '+') = ? AND state = 'running' LIMIT 1",
            )
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
            let insert_key = match running {
                None => key.to_owned(),
                Some((_, running_key)) if job.follow_running => {
                    if running_key == key {
                        follow_up_key(key)
                    } else {
                        key.to_owned()
                    }
                }
                Some((id, _)) => {
                    let joined: Option<i64> = sqlx::query_scalar(
                        "UPDATE jobs SET priority = MAX(priority, ?) \
                         WHERE id = ? AND state = 'running' RETURNING id",
                    )
                    .bind(job.priority)
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
                    match joined {
                        Some(id) => {
                            return Ok(Inserted {
                                id: JobId(id),
                                joined: true,
                            });
                        }
                        // It finished meanwhile: look again.
                        None => continue,
                    }
                }
            };
            if let Some(id) = self.insert_job_row(job, Some(&insert_key), &now).await? {
                return Ok(Inserted {
                    id: JobId(id),
                    joined: false,
                });
            }
        }
    }

    /// Inserts a job row; None when a live job holds `key` already.
    async fn insert_job_row(
        &self,
        job: &NewJob<'_>,
        key: Option<&str>,
        now: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO jobs (member_id, kind, payload, dedupe_key, priority, max_attempts, \
             created_at, run_after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(member_param(job.member))
        .bind(job.kind)
        .bind(job.payload)
        .bind(key)
        .bind(job.priority)
        .bind(i64::from(job.max_attempts))
        .bind(now)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Claims the next ready job among `kinds`, fairly: members take turns, the member served
    /// least recently first (never served first), then the member with the oldest ready job.
    /// Within the member: priority (a manual request before their automatic work), then age.
    /// A job never runs beside one of its family (the same dedupe key, or its follow-up), and
    /// with `one_per_member` a member who already has a job of `kinds` running waits for it to
    /// end. One statement, so two claimers never get the same job.
    pub async fn claim_job(
        &self,
        kinds: &[&str],
        one_per_member: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRow>, StoreError> {
        let sql = format!(
            "WITH ready AS ( \
                 SELECT q.id, q.member_id, q.priority FROM jobs q \
                 WHERE q.state = 'queued' AND q.run_after <= ?1 \
                   AND q.kind IN (SELECT value FROM json_each(?2)) \
                   AND (q.dedupe_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
                        WHERE r.state = 'running' \
                          AND rtrim(r.dedupe_key, '+') = rtrim(q.dedupe_key, '+'))) \
                   AND (NOT ?3 OR q.member_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
                        WHERE r.state = 'running' AND r.member_id = q.member_id \
                          AND r.kind IN (SELECT value FROM json_each(?2)))) \
             ), \
             members_ready AS ( \
                 SELECT member_id, MIN(id) AS oldest, \
                     (SELECT MAX(j.claim_seq) FROM jobs j \
                      WHERE j.member_id IS ready.member_id \
                        AND j.kind IN (SELECT value FROM json_each(?2))) AS last_turn \
                 FROM ready GROUP BY member_id \
             ), \
             chosen AS ( \
                 SELECT member_id FROM members_ready \
                 ORDER BY last_turn IS NOT NULL, last_turn, oldest LIMIT 1 \
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
            .bind(one_per_member)
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

    /// Records that a running job failed for good for a reason its member can read and fix;
    /// `sentence` is kept as its last error and shown to them. A job whose cancel was requested
    /// ends cancelled.
    pub async fn refuse_job(
        &self,
        id: JobId,
        sentence: &str,
        now: DateTime<Utc>,
    ) -> Result<FailOutcome, StoreError> {
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE jobs SET \
                 state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'failed' END, \
                 refused = CASE WHEN cancel_requested THEN 0 ELSE 1 END, \
                 finished_at = ?, last_error = ? \
             WHERE id = ? AND state = 'running' RETURNING state",
        )
        .bind(ts(now))
        .bind(sentence)
        .bind(id.0)
        .fetch_optional(self.pool())
        .await?;
        Ok(match state.as_deref() {
            None => FailOutcome::NotRunning,
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

    /// Puts a running job back in the queue to run after `until`, without counting the attempt
    /// (a rate limit or quota said when to come back). `reason` is kept as its last error.
    /// False when it was not running. A job whose cancel was requested ends cancelled instead.
    pub async fn defer_job(
        &self,
        id: JobId,
        until: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET \
                 state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, \
                 finished_at = CASE WHEN cancel_requested THEN ?1 ELSE NULL END, \
                 attempts = MAX(attempts - 1, 0), run_after = ?2, started_at = NULL, \
                 last_error = ?3 \
             WHERE id = ?4 AND state = 'running'",
        )
        .bind(ts(now))
        .bind(ts(until))
        .bind(reason)
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

    /// The queued jobs among `kinds` that are ready at `now` (a follow-up waiting for its running
    /// sibling is not), with each member's last turn: what the fairness rule needs to tell a
    /// job's place in the queue.
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
               AND j.kind IN (SELECT value FROM json_each(?2)) \
               AND (j.dedupe_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
                    WHERE r.state = 'running' \
                      AND rtrim(r.dedupe_key, '+') = rtrim(j.dedupe_key, '+'))) \
             ORDER BY j.id",
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

    /// A fingerprint of what the member's data jobs have done so far: the motherlist sync's
    /// place, the liked tracks, the labels, and each managed playlist's last written snapshot.
    /// It changes when a sync, sort or write makes progress, so a job that ran out of time can
    /// tell whether a further attempt continues where it stopped.
    pub async fn work_mark(&self, member: MemberId) -> Result<String, StoreError> {
        let mark: Option<String> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT resume_offset || '/' || initial_done || '/' || \
                         full_pass_offset FROM sync_state WHERE member_id = ?1), '-') \
                 || ' ' || (SELECT COUNT(*) FROM liked WHERE member_id = ?1) \
                 || ' ' || (SELECT COUNT(*) FROM labels l JOIN layers y ON y.id = l.layer_id \
                            WHERE y.member_id = ?1) \
                 || ' ' || COALESCE((SELECT group_concat(v, ',') FROM ( \
                        SELECT COALESCE(s.playlist_id, '') || ':' || COALESCE(s.snapshot_id, '') \
                            AS v \
                        FROM sublists s JOIN layers y ON y.id = s.layer_id \
                        WHERE y.member_id = ?1 ORDER BY s.id)), '')",
        )
        .bind(member.0 as i64)
        .fetch_one(self.pool())
        .await?;
        Ok(mark.unwrap_or_default())
    }

    /// Records a `/train` reply (its interaction token sealed) that follows `jobs` until
    /// `expires_at`; returns its id.
    pub async fn save_train_reply(
        &self,
        member: MemberId,
        token: &str,
        jobs: &[(JobId, String)],
        expires_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let jobs: Vec<(i64, &str)> = jobs.iter().map(|(j, n)| (j.0, n.as_str())).collect();
        let jobs = serde_json::to_string(&jobs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(sqlx::query_scalar(
            "INSERT INTO train_replies (member_id, token, jobs, expires_at) VALUES (?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(member.0 as i64)
        .bind(self.seal(token))
        .bind(jobs)
        .bind(ts(expires_at))
        .fetch_one(self.pool())
        .await?)
    }

    /// The `/train` replies that can still be edited at `now`; the expired ones are deleted.
    pub async fn train_replies(&self, now: DateTime<Utc>) -> Result<Vec<TrainReply>, StoreError> {
        sqlx::query("DELETE FROM train_replies WHERE expires_at <= ?")
            .bind(ts(now))
            .execute(self.pool())
            .await?;
        let rows = sqlx::query("SELECT id, member_id, token, jobs FROM train_replies ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            let sealed: Vec<u8> = row.try_get("token")?;
            let jobs: String = row.try_get("jobs")?;
            let jobs: Vec<(i64, String)> = serde_json::from_str(&jobs)
                .map_err(|_| StoreError::Corrupt(format!("train reply {id}")))?;
            out.push(TrainReply {
                id,
                member: MemberId(row.try_get::<i64, _>("member_id")? as u64),
                token: self.unseal(&sealed)?,
                jobs: jobs.into_iter().map(|(j, n)| (JobId(j), n)).collect(),
            });
        }
        Ok(out)
    }

    /// Forgets a `/train` reply that reached its final state (or can no longer be edited).
    pub async fn delete_train_reply(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM train_replies WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
