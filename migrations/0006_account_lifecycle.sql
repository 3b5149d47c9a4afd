-- A Spotify account someone authorised through a member's /link, held until that member
-- confirms it is theirs (a consent page opened by someone else must not bind their account).
-- Tokens are sealed as in `spotify_links`.
CREATE TABLE pending_links (
    member_id          INTEGER PRIMARY KEY NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    app_client_id      TEXT NOT NULL,
    account_id         TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    display_name       TEXT,
    access_token       BLOB,
    refresh_token      BLOB,
    access_expires_at  TEXT,
    authorized_at      TEXT NOT NULL,
    refresh_expires_at TEXT NOT NULL,
    expires_at         TEXT NOT NULL                      -- the confirmation is refused after this
) STRICT;

-- When the member was warned that their link dies soon (once per link).
ALTER TABLE spotify_links ADD COLUMN expiry_warned_at TEXT;

-- Spotify apps paused by their daily quota, so that a restart does not hit the quota again.
CREATE TABLE app_pauses (
    app_client_id TEXT PRIMARY KEY NOT NULL,
    paused_until  TEXT NOT NULL,
    since         TEXT NOT NULL                           -- when this pause began
) STRICT;

-- Messages the bot posted for a member outside prompts (announcements, digests), so that
-- forgetting the member deletes them from Discord too.
CREATE TABLE member_messages (
    message_id INTEGER PRIMARY KEY NOT NULL,
    channel_id INTEGER NOT NULL,
    member_id  INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    posted_at  TEXT NOT NULL
) STRICT;
CREATE INDEX member_messages_member ON member_messages(member_id);
