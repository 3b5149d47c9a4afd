-- When the bot last read every managed playlist of the member for hand edits. A sort with
-- nothing to write reads no playlist until this is older than the configured interval.
ALTER TABLE sync_state ADD COLUMN playlists_checked_at TEXT;
