//! One limiter per Spotify app, shared by every member linked through it: honours
//! `Retry-After`, backs off with jitter on 5xx and timeouts up to a retry cap, and pauses the
//! app's work on `QUOTA_EXCEEDED` (or a `Retry-After` too long to sleep through) until the
//! time Spotify gives. Nothing is retried in a loop: every loop is bounded by the cap. A
//! request that would land twice if sent twice is never sent again after an answer that
//! leaves its outcome unknown: the caller reads what happened instead.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::error::{CallError, ErrorBody, SpotifyError};
use crate::clock::Clock;

/// The longest `Retry-After` we sleep through inside a call; longer ones pause the app.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(60);
/// `Retry-After` assumed for a quota error that gives none.
const DEFAULT_QUOTA_PAUSE: Duration = Duration::from_secs(3600);
/// The longest pause a `Retry-After` can impose.
const MAX_PAUSE: Duration = Duration::from_secs(7 * 24 * 3600);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

/// Told the app and the new resume time whenever a pause begins or grows, so that the pause
/// can be recorded and outlive the process.
pub(crate) type PauseSink = Arc<dyn Fn(&str, DateTime<Utc>) + Send + Sync>;

/// Whether a request may be sent again when its outcome is unknown: a 5xx, a time-out or a
/// broken connection can come after Spotify applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Reads, and writes that land the same however often they are sent.
    Safe,
    /// Writes that would land twice (adding items, creating a playlist).
    Never,
}

/// Rate-limit state of one app.
pub struct AppLimiter {
    client_id: String,
    max_retries: u32,
    timeout: Duration,
    state: Mutex<State>,
    attempts: AtomicU64,
    /// What "now" is for quota pauses.
    clock: Clock,
    on_pause: OnceLock<PauseSink>,
}

impl std::fmt::Debug for AppLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppLimiter")
            .field("client_id", &self.client_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// No request before this instant (a `Retry-After` is being waited out).
    not_before: Option<Instant>,
    /// The app's work is paused until then (quota).
    paused_until: Option<DateTime<Utc>>,
}

impl AppLimiter {
    pub fn new(client_id: impl Into<String>, max_retries: u32, timeout: Duration) -> AppLimiter {
        AppLimiter {
            client_id: client_id.into(),
            max_retries,
            timeout,
            state: Mutex::new(State::default()),
            attempts: AtomicU64::new(0),
            clock: Clock::system(),
            on_pause: OnceLock::new(),
        }
    }

    /// The limiter with `clock` as the time its quota pauses are measured against.
    pub fn with_clock(mut self, clock: Clock) -> AppLimiter {
        self.clock = clock;
        self
    }

    /// The current time on the limiter's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Where new pauses are reported (set once).
    pub(crate) fn set_pause_sink(&self, sink: PauseSink) {
        let _ = self.on_pause.set(sink);
    }

    /// Takes up a pause recorded before a restart, if it has not ended.
    pub(crate) fn restore_pause(&self, until: DateTime<Utc>) {
        if until <= self.now() {
            return;
        }
        let mut st = self.lock();
        st.paused_until = Some(st.paused_until.map_or(until, |t| t.max(until)));
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// When the app's paused work resumes, if it is paused now.
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        let mut st = self.lock();
        match st.paused_until {
            Some(t) if t > self.now() => Some(t),
            Some(_) => {
                st.paused_until = None;
                None
            }
            None => None,
        }
    }

    /// HTTP attempts made through this limiter since start.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pause(&self, for_: Duration) -> DateTime<Utc> {
        // Clamped: the length comes from the remote server's Retry-After.
        let for_ = for_.min(MAX_PAUSE);
        let until =
            self.now() + chrono::Duration::from_std(for_).unwrap_or(chrono::Duration::hours(24));
        let mut st = self.lock();
        let before = st.paused_until;
        let until = before.map_or(until, |t| t.max(until));
        st.paused_until = Some(until);
        drop(st);
        tracing::warn!(app = %self.client_id, %until, "Spotify app paused");
        if before != Some(until)
            && let Some(sink) = self.on_pause.get()
        {
            sink(&self.client_id, until);
        }
        until
    }

    /// Runs one Spotify call under the limiter. `what` names it in logs; `call` makes one
    /// HTTP attempt each time it is invoked.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, call: F) -> Result<T, SpotifyError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        self.run_as(what, Resend::Safe, call).await
    }

    /// Like [`AppLimiter::run`]; with [`Resend::Never`], an answer that leaves the outcome
    /// unknown (5xx, time-out, broken connection) ends the call with
    /// [`SpotifyError::Unavailable`] instead of sending it again. A 429 is still waited out
    /// and sent again: Spotify did not apply it.
    pub(crate) async fn run_as<T, F, Fut>(
        &self,
        what: &str,
        resend: Resend,
        mut call: F,
    ) -> Result<T, SpotifyError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let mut last = String::new();
        for attempt in 0..=self.max_retries {
            if let Some(until) = self.paused_until() {
                return Err(SpotifyError::Paused { until });
            }
            let wait = self.lock().not_before;
            if let Some(at) = wait {
                tokio::time::sleep_until(at).await;
            }
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let outcome = match tokio::time::timeout(self.timeout, call()).await {
                Ok(r) => r,
                Err(_) => Err(CallError::Timeout),
            };
            let err = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            match err {
                CallError::Status {
                    status: 429,
                    retry_after,
                    body,
                } => {
                    let parsed = ErrorBody::parse(&body);
                    let after = retry_after.map(Duration::from_secs);
                    if parsed.is_quota() {
                        let until = self.pause(after.unwrap_or(DEFAULT_QUOTA_PAUSE));
                        return Err(SpotifyError::Paused { until });
                    }
                    let after = after.unwrap_or(Duration::from_secs(1));
                    if after > MAX_INLINE_WAIT {
                        let until = self.pause(after);
                        return Err(SpotifyError::Paused { until });
                    }
                    tracing::info!(app = %self.client_id, what, secs = after.as_secs(), "429: waiting Retry-After");
                    let at = Instant::now() + after;
                    let mut st = self.lock();
                    st.not_before = Some(st.not_before.map_or(at, |t| t.max(at)));
                    last = "rate limited".into();
                }
                CallError::Status { status, body, .. } if status >= 500 => {
                    last = format!("HTTP {status}");
                    tracing::info!(app = %self.client_id, what, status, attempt, body = %truncate(&body), "Spotify 5xx");
                    if resend == Resend::Never {
                        return Err(unknown_outcome(&last));
                    }
                    self.backoff(attempt).await;
                }
                CallError::Timeout => {
                    last = "timed out".into();
                    tracing::info!(app = %self.client_id, what, attempt, "Spotify call timed out");
                    if resend == Resend::Never {
                        return Err(unknown_outcome(&last));
                    }
                    self.backoff(attempt).await;
                }
                CallError::Transport(e) => {
                    last = e;
                    if resend == Resend::Never {
                        return Err(unknown_outcome(&last));
                    }
                    self.backoff(attempt).await;
                }
                CallError::Parse(e) => return Err(SpotifyError::Protocol(e)),
                CallError::Status { status, body, .. } => return Err(status_error(status, &body)),
            }
        }
        Err(SpotifyError::Unavailable(format!(
            "{last}; gave up after {} attempts",
            self.max_retries + 1
        )))
    }

    async fn backoff(&self, attempt: u32) {
        let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(10));
        let capped = exp.min(BACKOFF_CAP);
        // Full jitter between half and all of the step.
        let factor = 0.5 + rand::random::<f64>() * 0.5;
        tokio::time::sleep(capped.mul_f64(factor)).await;
    }
}

/// The error for a write that may or may not have landed.
fn unknown_outcome(last: &str) -> SpotifyError {
    SpotifyError::Unavailable(format!(
        "{last}; not sent again, as it may have been applied"
    ))
}

/// The error for a non-retryable status.
pub(crate) fn status_error(status: u16, body: &str) -> SpotifyError {
    let parsed = ErrorBody::parse(body);
    let message = parsed
        .message
        .or(parsed.oauth_error)
        .unwrap_or_else(|| truncate(body));
    match status {
        403 if message.contains("not be registered") || message.contains("allowlist") => {
            SpotifyError::NotAllowlisted
        }
        404 => SpotifyError::PlaylistNotFound,
        _ => SpotifyError::Api { status, message },
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn status(status: u16, retry_after: Option<u64>, body: &str) -> CallError {
        CallError::Status {
            status,
            retry_after,
            body: body.into(),
        }
    }

    #[tokio::test]
    async fn retries_5xx_up_to_the_cap_then_gives_up() {
        let lim = AppLimiter::new("app", 2, Duration::from_secs(5));
        let n = AtomicU32::new(0);
        let r: Result<(), _> = lim
            .run("x", || {
                n.fetch_add(1, Ordering::SeqCst);
                async { Err(status(503, None, "")) }
            })
            .await;
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert!(matches!(r, Err(SpotifyError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_write_that_would_land_twice_is_never_sent_again_on_an_unknown_outcome() {
        let lim = AppLimiter::new("app", 3, Duration::from_millis(50));
        for failure in [
            status(502, None, ""),
            CallError::Timeout,
            CallError::Transport("reset".into()),
        ] {
            let failure = std::sync::Mutex::new(Some(failure));
            let n = AtomicU32::new(0);
            let r: Result<(), _> = lim
                .run_as("add items", Resend::Never, || {
                    n.fetch_add(1, Ordering::SeqCst);
                    let f = failure.lock().unwrap().take();
                    async move { f.map_or(Ok(()), Err) }
                })
                .await;
            assert_eq!(n.load(Ordering::SeqCst), 1, "sent once");
            assert!(matches!(r, Err(SpotifyError::Unavailable(_))), "{r:?}");
        }
        // A 429 was not applied: it is waited out and sent again.
        let n = AtomicU32::new(0);
        let r: Result<(), _> = lim
            .run_as("add items", Resend::Never, || {
                let first = n.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Err(status(429, Some(0), ""))
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        assert!(r.is_ok());
        assert_eq!(n.load(Ordering::SeqCst), 2);
        // A stalled answer is a time-out: not sent again either.
        let n = AtomicU32::new(0);
        let r: Result<(), _> = lim
            .run_as("create playlist", Resend::Never, || {
                n.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(())
                }
            })
            .await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(matches!(r, Err(SpotifyError::Unavailable(_))));
    }

    #[tokio::test]
    async fn quota_pauses_without_retrying_and_refuses_until_then() {
        let lim = AppLimiter::new("app", 5, Duration::from_secs(5));
        let n = AtomicU32::new(0);
        let body = r#"{"error":{"status":429,"message":"quota","reason":"QUOTA_EXCEEDED"}}"#;
        let r: Result<(), _> = lim
            .run("x", || {
                n.fetch_add(1, Ordering::SeqCst);
                async { Err(status(429, Some(7200), body)) }
            })
            .await;
        let Err(SpotifyError::Paused { until }) = r else {
            panic!("expected a pause, got {r:?}")
        };
        let secs = (until - Utc::now()).num_seconds();
        assert!((7190..=7200).contains(&secs), "{secs}");
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // A paused app makes no request at all.
        let r: Result<(), _> = lim
            .run("y", || {
                n.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .await;
        assert!(matches!(r, Err(SpotifyError::Paused { .. })));
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert_eq!(lim.paused_until(), Some(until));
    }

    #[tokio::test]
    async fn a_quota_pause_ends_when_the_limiters_clock_reaches_it() {
        let start = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 1, 8, 0, 0).unwrap();
        let clock = Clock::manual(start);
        let lim = AppLimiter::new("app", 5, Duration::from_secs(5)).with_clock(clock.clone());
        let body = r#"{"error":{"status":429,"message":"quota","reason":"QUOTA_EXCEEDED"}}"#;
        let r: Result<(), _> = lim
            .run("x", || async { Err(status(429, Some(7200), body)) })
            .await;
        assert!(matches!(r, Err(SpotifyError::Paused { .. })));
        assert_eq!(
            lim.paused_until(),
            Some(start + chrono::Duration::seconds(7200))
        );
        clock.advance(Duration::from_secs(7199));
        assert!(lim.paused_until().is_some(), "still paused a second before");
        clock.advance(Duration::from_secs(1));
        assert_eq!(lim.paused_until(), None);
        let r: Result<u8, _> = lim.run("y", || async { Ok(1) }).await;
        assert_eq!(r.unwrap(), 1);
    }

    #[tokio::test]
    async fn an_absurd_retry_after_is_clamped_not_a_panic() {
        let lim = AppLimiter::new("app", 1, Duration::from_secs(5));
        let body = r#"{"error":{"status":429,"message":"q","reason":"QUOTA_EXCEEDED"}}"#;
        let r: Result<(), _> = lim
            .run("x", || async { Err(status(429, Some(u64::MAX), body)) })
            .await;
        let Err(SpotifyError::Paused { until }) = r else {
            panic!("expected a pause")
        };
        assert!((until - Utc::now()).num_days() <= 7);
    }

    #[tokio::test]
    async fn not_allowlisted_403_is_named() {
        let lim = AppLimiter::new("app", 1, Duration::from_secs(5));
        let body = r#"{"error":{"status":403,"message":"Check settings on developer.spotify.com/dashboard, the user may not be registered."}}"#;
        let r: Result<(), _> = lim
            .run("me", || async { Err(status(403, None, body)) })
            .await;
        assert!(matches!(r, Err(SpotifyError::NotAllowlisted)));
    }
}
