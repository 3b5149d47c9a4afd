//! The web server: the Spotify OAuth callback and a health endpoint.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tokio::sync::mpsc::UnboundedSender;

use crate::domain::{MemberId, SpotifyAccount};
use crate::spotify::Spotify;

/// An account authorised through the callback, for the Discord side to ask its member to
/// confirm.
pub type Linked = (MemberId, SpotifyAccount);

#[derive(Clone)]
struct WebState {
    spotify: Spotify,
    on_linked: Option<UnboundedSender<Linked>>,
}

/// The routes: `GET {callback_path}` completes a Spotify consent (the member then confirms the
/// account in Discord); `GET /health` answers `ok`.
pub fn router(
    spotify: Spotify,
    callback_path: &str,
    on_linked: Option<UnboundedSender<Linked>>,
) -> Router {
    let path = if callback_path.starts_with('/') {
        callback_path.to_string()
    } else {
        format!("/{callback_path}")
    };
    Router::new()
        .route(&path, get(callback))
        .route("/health", get(|| async { "ok" }))
        .with_state(WebState { spotify, on_linked })
}

/// Serves the router until the listener fails.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

async fn callback(
    State(st): State<WebState>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let get = |k: &str| q.get(k).map(String::as_str);
    match st
        .spotify
        .complete_link_callback(get("code"), get("state"), get("error"))
        .await
    {
        Ok((member, account)) => {
            let name = account
                .display_name
                .clone()
                .unwrap_or_else(|| account.user_id.clone());
            if let Some(tx) = &st.on_linked {
                let _ = tx.send((member, account));
            }
            (
                StatusCode::OK,
                page(
                    "Almost linked",
                    &format!(
                        "Spotify sent back the account “{}”. Go back to Discord and confirm it there: \
                         it is linked only once the member who asked confirms it. You can close this tab.",
                        escape(&name)
                    ),
                ),
            )
        }
        Err(e) => {
            tracing::info!(error = %e, "Spotify callback refused");
            (
                StatusCode::BAD_REQUEST,
                page(
                    "Spotify not linked",
                    &format!("{} Go back to Discord.", escape(&e.to_string())),
                ),
            )
        }
    }
}

fn page(title: &str, text: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title} · sublist</title></head>\
         <body style=\"font-family:sans-serif;max-width:36em;margin:4em auto\"><h1>{title}</h1><p>{text}</p></body></html>"
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
