-- When the unlike-detection pass in progress began: tracks it has not seen by its end are
-- checked against Spotify and, if no longer liked, leave the motherlist.
ALTER TABLE sync_state ADD COLUMN full_pass_started_at TEXT;
-- Which motherlist the state (and the member's `liked` rows) belongs to: 'liked' or a
-- playlist id. A sync that finds another motherlist starts over.
ALTER TABLE sync_state ADD COLUMN source TEXT;
