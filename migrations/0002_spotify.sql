-- When the unlike-detection pass in progress began: tracks it has not seen by its end are
-- checked against Spotify and, if no longer liked, leave the motherlist.
ALTER TABLE sync_state ADD COLUMN full_pass_started_at TEXT;
