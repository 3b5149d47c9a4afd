-- The void is stored, not inferred: a label is the void only when `void` says so. A label
-- left without sublists (its sublists were removed) is no answer at all.
ALTER TABLE labels ADD COLUMN void INTEGER NOT NULL DEFAULT 0 CHECK (void IN (0, 1));

-- Until now a label without sublists was read as the void. A complete layer never accepts
-- the void, so there such a label can only be one whose sublists were removed: it goes.
DELETE FROM labels
WHERE layer_id IN (SELECT id FROM layers WHERE complete = 1)
  AND NOT EXISTS (SELECT 1 FROM label_sublists ls
                  WHERE ls.layer_id = labels.layer_id AND ls.track_id = labels.track_id);

-- In an incomplete layer it cannot be told apart from an answer "none of these": it stays
-- the void.
UPDATE labels SET void = 1
WHERE NOT EXISTS (SELECT 1 FROM label_sublists ls
                  WHERE ls.layer_id = labels.layer_id AND ls.track_id = labels.track_id);

-- What the bot is about to write to a managed playlist, recorded before the request and
-- cleared when the playlist's new contents are recorded. A difference on Spotify that these
-- explain is the bot's own write (its answer was lost), not the member's hand edit.
CREATE TABLE sublist_pending (
    sublist_id INTEGER NOT NULL REFERENCES sublists(id) ON DELETE CASCADE,
    track_id   TEXT NOT NULL REFERENCES tracks(id),
    op         TEXT NOT NULL CHECK (op IN ('add', 'remove')),
    PRIMARY KEY (sublist_id, track_id, op)
) STRICT;

-- A playlist being created for the sublist: this marker is in its description, so a
-- playlist created while its answer was lost is found and adopted, not made a second time.
ALTER TABLE sublists ADD COLUMN creating TEXT;
