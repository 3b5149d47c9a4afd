-- The whole schema of sublist. Every table that belongs to a member cascades from `members`,
-- so deleting a member forgets everything of theirs.

-- Values the program keeps about itself (the encryption key check).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) STRICT;

-- A Discord user who uses the bot, and their settings.
CREATE TABLE members (
    id                INTEGER PRIMARY KEY NOT NULL,       -- Discord user id
    created_at        TEXT NOT NULL,
    motherlist        TEXT,                               -- NULL: Liked Songs; else a playlist id
    prompts_in_dm     INTEGER NOT NULL DEFAULT 1,
    auto_sort         INTEGER NOT NULL DEFAULT 1,
    ask_below         REAL NOT NULL DEFAULT 0.7,          -- confidence under which a track is asked about
    prompt_budget     INTEGER NOT NULL DEFAULT 10,        -- most open prompts at once
    guild_id          INTEGER                             -- the server the member last used the bot in
) STRICT;

-- A member's linked Spotify account. Tokens are sealed (XChaCha20-Poly1305) with the configured key.
CREATE TABLE spotify_links (
    member_id          INTEGER PRIMARY KEY NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    app_client_id      TEXT NOT NULL,
    account_id         TEXT NOT NULL UNIQUE,
    user_id            TEXT NOT NULL,
    display_name       TEXT,
    access_token       BLOB,
    refresh_token      BLOB,
    access_expires_at  TEXT,
    authorized_at      TEXT NOT NULL,
    refresh_expires_at TEXT NOT NULL,                     -- refresh tokens die 6 months after authorization
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'expired', 'revoked')),
    linked_at          TEXT NOT NULL
) STRICT;
CREATE INDEX spotify_links_app ON spotify_links(app_client_id);

-- OAuth `state` values: unguessable, single use, short-lived, bound to a member.
CREATE TABLE oauth_states (
    state          TEXT PRIMARY KEY NOT NULL,
    member_id      INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    app_client_id  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
) STRICT;

-- Track metadata, stored once and shared between members.
CREATE TABLE tracks (
    id                TEXT PRIMARY KEY NOT NULL,
    name              TEXT NOT NULL,
    artists           TEXT NOT NULL,                      -- JSON [[id|null, name], ...]
    album_id          TEXT,
    album_name        TEXT,
    album_type        TEXT,
    release_date      TEXT,
    release_precision TEXT,
    duration_ms       INTEGER,
    explicit          INTEGER,
    track_number      INTEGER,
    disc_number       INTEGER,
    total_tracks      INTEGER,
    isrc              TEXT,
    image_url         TEXT,
    audio             TEXT,                               -- JSON AudioFeatures, or NULL
    audio_checked_at  TEXT                                -- when a provider was last asked
) STRICT;

-- The motherlist: which tracks each member likes, and when they liked them.
CREATE TABLE liked (
    member_id  INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    track_id   TEXT NOT NULL REFERENCES tracks(id),
    added_at   TEXT NOT NULL,
    seen_at    TEXT NOT NULL,                             -- last sync that saw it
    PRIMARY KEY (member_id, track_id)
) STRICT;
CREATE INDEX liked_added ON liked(member_id, added_at);

-- How far each member's motherlist sync has come.
CREATE TABLE sync_state (
    member_id        INTEGER PRIMARY KEY NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    snapshot_id      TEXT,                                -- playlist motherlists
    initial_done     INTEGER NOT NULL DEFAULT 0,
    resume_offset    INTEGER NOT NULL DEFAULT 0,          -- first sync: where to continue
    full_pass_offset INTEGER NOT NULL DEFAULT 0,          -- unlike detection: where the pass stands
    last_sync_at     TEXT,
    last_full_at     TEXT
) STRICT;

-- Layers and their sublists.
CREATE TABLE layers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id  INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    mutual     INTEGER NOT NULL,
    complete   INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (member_id, name COLLATE NOCASE)
) STRICT;

CREATE TABLE sublists (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    layer_id     INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    emoji        TEXT NOT NULL,
    playlist_id  TEXT,                                    -- the Spotify playlist, once created or adopted
    snapshot_id  TEXT,                                    -- its snapshot after our last write
    created_at   TEXT NOT NULL,
    UNIQUE (layer_id, name COLLATE NOCASE),
    UNIQUE (layer_id, emoji)
) STRICT;

-- What sublist last wrote to each managed playlist, to tell our edits from the member's.
CREATE TABLE sublist_tracks (
    sublist_id INTEGER NOT NULL REFERENCES sublists(id) ON DELETE CASCADE,
    track_id   TEXT NOT NULL REFERENCES tracks(id),
    position   INTEGER NOT NULL,
    PRIMARY KEY (sublist_id, track_id)
) STRICT;

-- One label per (layer, track): the void (no rows in label_sublists) or a set of sublists.
CREATE TABLE labels (
    layer_id   INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    track_id   TEXT NOT NULL REFERENCES tracks(id),
    source     TEXT NOT NULL CHECK (source IN ('member', 'model', 'imported')),
    confidence REAL,                                      -- for model labels
    updated_at TEXT NOT NULL,
    PRIMARY KEY (layer_id, track_id)
) STRICT;

CREATE TABLE label_sublists (
    layer_id   INTEGER NOT NULL,
    track_id   TEXT NOT NULL,
    sublist_id INTEGER NOT NULL REFERENCES sublists(id) ON DELETE CASCADE,
    PRIMARY KEY (layer_id, track_id, sublist_id),
    FOREIGN KEY (layer_id, track_id) REFERENCES labels(layer_id, track_id) ON DELETE CASCADE
) STRICT;

-- Trained models, one current model per layer.
CREATE TABLE models (
    layer_id        INTEGER PRIMARY KEY NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    feature_schema  INTEGER NOT NULL,
    weights         BLOB NOT NULL,
    metrics         TEXT NOT NULL,                        -- JSON
    labels_used     INTEGER NOT NULL,
    trained_at      TEXT NOT NULL,
    device          TEXT NOT NULL
) STRICT;

-- Discord messages that ask a member where a track goes.
CREATE TABLE prompts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id   INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    layer_id    INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    track_id    TEXT NOT NULL REFERENCES tracks(id),
    channel_id  INTEGER,
    message_id  INTEGER UNIQUE,
    guess       TEXT,                                     -- JSON: the model's guess and confidence
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'open', 'answered', 'skipped', 'closed')),
    created_at  TEXT NOT NULL,
    answered_at TEXT,
    UNIQUE (layer_id, track_id)
) STRICT;

-- The durable job queue shared by all members.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id    INTEGER REFERENCES members(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,                           -- JSON
    dedupe_key   TEXT,                                    -- jobs with the same key coalesce while queued or running
    priority     INTEGER NOT NULL DEFAULT 0,              -- higher first within a member
    state        TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 3,
    last_error   TEXT,
    result       TEXT,                                    -- JSON
    created_at   TEXT NOT NULL,
    run_after    TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX jobs_ready ON jobs(state, run_after);
CREATE UNIQUE INDEX jobs_dedupe ON jobs(dedupe_key) WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');

-- Per-server settings.
CREATE TABLE guild_settings (
    guild_id            INTEGER PRIMARY KEY NOT NULL,
    announce_channel_id INTEGER,
    prompt_channel_id   INTEGER
) STRICT;
