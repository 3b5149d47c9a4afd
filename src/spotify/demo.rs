//! A local Spotify ready for `sublist demo`: the server, one app, a listener with a library,
//! and a member linked to it through the real OAuth flow (authorize, then paste), so the demo
//! syncs and keeps playlists through the same code as production.

use std::time::Duration;

use secrecy::SecretString;

use super::local::LocalSpotify;
use super::{LinkError, Spotify};
use crate::config::{AudioConfig, AudioProvider, SpotifyApp, SpotifyConfig};
use crate::domain::{MemberId, Track};
use crate::store::Store;

/// The demo listener's user id on the local Spotify.
pub const DEMO_USER: &str = "demo-listener";

/// A running demo: the local server (to inspect playlists) and the bot's Spotify side.
pub struct Demo {
    pub local: LocalSpotify,
    pub spotify: Spotify,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the local Spotify could not start: {0}")]
    Io(#[from] std::io::Error),
    #[error("the demo link failed: {0}")]
    Link(#[from] LinkError),
    #[error("the demo authorize step failed: {0}")]
    Authorize(String),
}

/// Starts a local Spotify whose listener liked `liked` (in order, the last one newest; served
/// with their real metadata) and links `member` to it.
pub async fn start(store: Store, member: MemberId, liked: &[Track]) -> Result<Demo, DemoError> {
    let local = LocalSpotify::start().await?;
    local.add_app("demo-app", "demo-secret", false);
    local.add_user(DEMO_USER, "demo-account", "Demo listener");
    local.set_browser_user(DEMO_USER);
    local.add_catalogue(liked);
    let ids: Vec<_> = liked.iter().map(|t| t.id.clone()).collect();
    local.like(DEMO_USER, &ids);
    let config = SpotifyConfig {
        api_base_url: local.api_base_url(),
        accounts_base_url: local.accounts_base_url(),
        apps: vec![SpotifyApp {
            client_id: "demo-app".into(),
            client_secret: SecretString::from("demo-secret"),
            redirect_uri: "http://127.0.0.1:9/callback"
                .parse()
                .map_err(|e| DemoError::Authorize(format!("{e}")))?,
            user_cap: 5,
        }],
        max_retries: 3,
        request_timeout: Duration::from_secs(10),
        full_pass_pages: 2,
    };
    let audio = AudioConfig {
        provider: AudioProvider::Reccobeats,
        reccobeats_base_url: local.reccobeats_base_url(),
    };
    let spotify = Spotify::new(store, config, audio);
    let start = spotify.start_link(member).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DemoError::Authorize(e.to_string()))?;
    let resp = http
        .get(&start.url)
        .send()
        .await
        .map_err(|e| DemoError::Authorize(e.to_string()))?;
    let landed = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| DemoError::Authorize(format!("no redirect ({})", resp.status())))?
        .to_string();
    spotify.complete_link_paste(member, &landed).await?;
    spotify.confirm_link(member).await?;
    Ok(Demo { local, spotify })
}
