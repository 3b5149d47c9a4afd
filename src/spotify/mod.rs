//! Spotify: OAuth and tokens, the per-app limiter, motherlist sync, playlist upkeep and the
//! optional audio-descriptor provider. The only module that names rspotify.
