//! The configuration file and environment.
//!
//! Stand-in on the `spotify` branch for the lead's config (same shapes); main's version wins
//! at merge.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// Spotify: where the API lives and the pool of apps links are spread over.
#[derive(Clone, Debug)]
pub struct SpotifyConfig {
    pub api_base_url: Url,
    pub accounts_base_url: Url,
    pub apps: Vec<SpotifyApp>,
    pub max_retries: u32,
    pub request_timeout: Duration,
    pub full_pass_pages: u32,
}

/// One Spotify app (client id/secret) and how many users it may hold.
#[derive(Clone, Debug)]
pub struct SpotifyApp {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: Url,
    pub user_cap: u32,
}

/// The optional audio-descriptor provider.
#[derive(Clone, Debug)]
pub struct AudioConfig {
    pub provider: AudioProvider,
    pub reccobeats_base_url: Url,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AudioProvider {
    None,
    ReccoBeats,
}

/// The web server for the OAuth callback and health.
#[derive(Clone, Debug)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub callback_path: String,
}
