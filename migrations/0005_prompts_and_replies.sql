-- The digest that stands in for prompts held back: when it was last posted to the member, and
-- which (layer, track) pairs it counted, so that it is posted at most once a day and only when
-- new tracks wait.
CREATE TABLE prompt_digests (
    member_id INTEGER PRIMARY KEY NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    sent_at   TEXT NOT NULL,
    waiting   TEXT NOT NULL                               -- JSON ["layer_id:track_id", ...]
) STRICT;

-- 1 when a job failed for a reason its member can read and fix: `last_error` is then a sentence
-- for them (otherwise it is detail for the log).
ALTER TABLE jobs ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;

-- `/train` replies that follow training jobs, so that a restarted bot can still bring them to
-- their final state while Discord lets it edit them.
CREATE TABLE train_replies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id   INTEGER NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    token       BLOB NOT NULL,                            -- the interaction token, sealed
    jobs        TEXT NOT NULL,                            -- JSON [[job id, layer name], ...]
    expires_at  TEXT NOT NULL                             -- when Discord stops taking edits
) STRICT;
