//! The web server: the Spotify OAuth callback and a health endpoint.
