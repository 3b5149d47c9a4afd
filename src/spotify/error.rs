//! What can go wrong talking to Spotify, in sentences a member can read, and the raw failure
//! of one HTTP call that the limiter decides about.

use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// A failure of a Spotify operation. `Display` is a sentence fit for the member.
#[derive(Debug, thiserror::Error)]
pub enum SpotifyError {
    #[error("You haven't linked a Spotify account yet: use /link.")]
    NotLinked,
    #[error(
        "Your Spotify link has expired (Spotify ends links six months after you authorize). Use /link to link again; your layers and labels are kept."
    )]
    LinkExpired,
    #[error(
        "Spotify no longer accepts sublist's access to your account: it was removed on Spotify's side (for example under Apps in your Spotify account settings). Use /link to link again; your layers and labels are kept."
    )]
    LinkRevoked,
    #[error(
        "Spotify work is paused until {} because this bot used up Spotify's daily quota. Nothing is lost: it resumes then.", until.format("%Y-%m-%d %H:%M UTC")
    )]
    Paused { until: DateTime<Utc> },
    #[error(
        "Spotify refused your account because it is not on this bot's Spotify app allowlist. Ask the bot's operator to add your name and Spotify e-mail under User Management in the Spotify developer dashboard, then try again."
    )]
    NotAllowlisted,
    #[error(
        "That playlist is not one you own or collaborate on, so Spotify won't show its tracks."
    )]
    PlaylistNotYours,
    #[error("That playlist doesn't exist on Spotify (any more).")]
    PlaylistNotFound,
    #[error("Spotify is not answering right now ({0}). Try again later.")]
    Unavailable(String),
    #[error("Spotify refused the request ({status}: {message}).")]
    Api { status: u16, message: String },
    #[error("Spotify sent an answer sublist could not read ({0}).")]
    Protocol(String),
    #[error("Something went wrong on sublist's side; the operator can find it in the log.")]
    Store(#[from] StoreError),
}

/// How one HTTP attempt failed, before the limiter decides whether to wait, retry or stop.
#[derive(Debug)]
pub(crate) enum CallError {
    Status {
        status: u16,
        retry_after: Option<u64>,
        body: String,
    },
    Timeout,
    Transport(String),
    Parse(String),
}

impl CallError {
    /// Reads a status, `Retry-After` and body out of a reqwest response.
    pub(crate) async fn from_response(resp: reqwest::Response) -> CallError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp.text().await.unwrap_or_default();
        CallError::Status {
            status,
            retry_after,
            body,
        }
    }

    pub(crate) fn from_reqwest(e: reqwest::Error) -> CallError {
        if e.is_timeout() {
            CallError::Timeout
        } else if e.is_decode() {
            CallError::Parse(e.to_string())
        } else {
            CallError::Transport(without_url(&e))
        }
    }

    /// Maps rspotify's error, reading the body of a failed response (rspotify cannot parse
    /// Spotify's error bodies itself).
    pub(crate) async fn from_rspotify(e: rspotify::ClientError) -> CallError {
        match e {
            rspotify::ClientError::Http(boxed) => match *boxed {
                rspotify::http::HttpError::StatusCode(resp) => CallError::from_response(resp).await,
                rspotify::http::HttpError::Client(e) => CallError::from_reqwest(e),
            },
            rspotify::ClientError::ParseJson(e) => CallError::Parse(e.to_string()),
            rspotify::ClientError::Model(e) => CallError::Parse(e.to_string()),
            other => CallError::Transport(other.to_string()),
        }
    }
}

/// A reqwest error's text without the URL (which may carry query parameters).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}

/// Spotify's error body: `{"error":{"status":N,"message":"...","reason":"..."}}`, or the
/// accounts service's `{"error":"invalid_grant","error_description":"..."}`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    pub reason: Option<String>,
    /// The OAuth error code (`invalid_grant`, ...).
    pub oauth_error: Option<String>,
}

impl ErrorBody {
    pub(crate) fn parse(body: &str) -> ErrorBody {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            return ErrorBody::default();
        };
        match v.get("error") {
            Some(serde_json::Value::Object(e)) => ErrorBody {
                message: e.get("message").and_then(|m| m.as_str()).map(String::from),
                reason: e.get("reason").and_then(|m| m.as_str()).map(String::from),
                oauth_error: None,
            },
            Some(serde_json::Value::String(code)) => ErrorBody {
                message: v
                    .get("error_description")
                    .and_then(|m| m.as_str())
                    .map(String::from),
                reason: None,
                oauth_error: Some(code.clone()),
            },
            _ => ErrorBody::default(),
        }
    }

    pub(crate) fn is_quota(&self) -> bool {
        self.reason.as_deref() == Some("QUOTA_EXCEEDED")
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.contains("QUOTA_EXCEEDED"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_parse_in_both_shapes() {
        let b = ErrorBody::parse(r#"{"error":{"status":429,"reason":"QUOTA_EXCEEDED"}}"#);
        assert!(b.is_quota());
        let b = ErrorBody::parse(r#"{"error":{"status":429,"message":"API rate limit exceeded"}}"#);
        assert!(!b.is_quota());
        assert_eq!(b.message.as_deref(), Some("API rate limit exceeded"));
        let b = ErrorBody::parse(
            r#"{"error":"invalid_grant","error_description":"Refresh token revoked"}"#,
        );
        assert_eq!(b.oauth_error.as_deref(), Some("invalid_grant"));
        assert_eq!(ErrorBody::parse("<html>"), ErrorBody::default());
    }

    #[test]
    fn paused_message_names_the_time() {
        let until = DateTime::parse_from_rfc3339("2026-11-28T03:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(
            SpotifyError::Paused { until }
                .to_string()
                .contains("2026-11-28 03:00 UTC")
        );
    }
}
