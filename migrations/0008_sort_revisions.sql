-- A counter per member of changes to what sorting their motherlist reads: liked tracks, their
-- audio descriptors, layers, sublists and their playlists' contents, labels, models, settings
-- and prompts. Triggers keep it; a sort that changed nothing records the revision it saw, and a
-- sync with nothing new skips scoring while the two are equal.
CREATE TABLE sort_revisions (
    member_id INTEGER PRIMARY KEY NOT NULL REFERENCES members(id) ON DELETE CASCADE,
    revision  INTEGER NOT NULL DEFAULT 0,
    sorted    INTEGER                                     -- the revision the last quiet sort saw
) STRICT;

INSERT INTO sort_revisions (member_id) SELECT id FROM members;

CREATE TRIGGER sort_revisions_member AFTER INSERT ON members
BEGIN
    INSERT OR IGNORE INTO sort_revisions (member_id) VALUES (NEW.id);
END;

CREATE TRIGGER sort_revisions_settings AFTER UPDATE ON members
WHEN NEW.motherlist IS NOT OLD.motherlist OR NEW.prompts_in_dm IS NOT OLD.prompts_in_dm
  OR NEW.auto_sort IS NOT OLD.auto_sort OR NEW.ask_below IS NOT OLD.ask_below
  OR NEW.prompt_budget IS NOT OLD.prompt_budget
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.id;
END;

-- Liked tracks (a sync only touching `seen_at` changes nothing).
CREATE TRIGGER sort_revisions_liked_in AFTER INSERT ON liked
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER sort_revisions_liked_out AFTER DELETE ON liked
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = OLD.member_id;
END;
CREATE TRIGGER sort_revisions_liked_at AFTER UPDATE OF added_at ON liked
WHEN NEW.added_at IS NOT OLD.added_at
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.member_id;
END;

-- What is known of a track (its audio descriptors, or its names and numbers), for every
-- member who likes it. A sync that stores a track again unchanged changes nothing.
CREATE TRIGGER sort_revisions_tracks AFTER UPDATE ON tracks
WHEN NEW.audio IS NOT OLD.audio OR NEW.name IS NOT OLD.name OR NEW.artists IS NOT OLD.artists
  OR NEW.album_id IS NOT OLD.album_id OR NEW.album_name IS NOT OLD.album_name
  OR NEW.album_type IS NOT OLD.album_type OR NEW.release_date IS NOT OLD.release_date
  OR NEW.release_precision IS NOT OLD.release_precision
  OR NEW.duration_ms IS NOT OLD.duration_ms OR NEW.explicit IS NOT OLD.explicit
  OR NEW.track_number IS NOT OLD.track_number OR NEW.disc_number IS NOT OLD.disc_number
  OR NEW.total_tracks IS NOT OLD.total_tracks OR NEW.isrc IS NOT OLD.isrc
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id IN (SELECT member_id FROM liked WHERE track_id = NEW.id);
END;

-- Layers.
CREATE TRIGGER sort_revisions_layers_in AFTER INSERT ON layers
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER sort_revisions_layers_up AFTER UPDATE ON layers
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER sort_revisions_layers_out AFTER DELETE ON layers
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = OLD.member_id;
END;

-- Rows that belong to a layer: sublists, labels, models.
CREATE TRIGGER sort_revisions_sublists_in AFTER INSERT ON sublists
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_sublists_up AFTER UPDATE ON sublists
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_sublists_out AFTER DELETE ON sublists
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = OLD.layer_id);
END;

CREATE TRIGGER sort_revisions_labels_in AFTER INSERT ON labels
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_labels_up AFTER UPDATE ON labels
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_labels_out AFTER DELETE ON labels
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = OLD.layer_id);
END;

CREATE TRIGGER sort_revisions_label_sublists_in AFTER INSERT ON label_sublists
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_label_sublists_out AFTER DELETE ON label_sublists
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = OLD.layer_id);
END;

CREATE TRIGGER sort_revisions_models_in AFTER INSERT ON models
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_models_up AFTER UPDATE ON models
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = NEW.layer_id);
END;
CREATE TRIGGER sort_revisions_models_out AFTER DELETE ON models
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT member_id FROM layers WHERE id = OLD.layer_id);
END;

-- What the bot last wrote or read in each managed playlist, and its writes in flight.
CREATE TRIGGER sort_revisions_sublist_tracks_in AFTER INSERT ON sublist_tracks
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT y.member_id FROM sublists s JOIN layers y ON y.id = s.layer_id
                       WHERE s.id = NEW.sublist_id);
END;
CREATE TRIGGER sort_revisions_sublist_tracks_up AFTER UPDATE ON sublist_tracks
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT y.member_id FROM sublists s JOIN layers y ON y.id = s.layer_id
                       WHERE s.id = NEW.sublist_id);
END;
CREATE TRIGGER sort_revisions_sublist_tracks_out AFTER DELETE ON sublist_tracks
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT y.member_id FROM sublists s JOIN layers y ON y.id = s.layer_id
                       WHERE s.id = OLD.sublist_id);
END;

CREATE TRIGGER sort_revisions_pending_in AFTER INSERT ON sublist_pending
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT y.member_id FROM sublists s JOIN layers y ON y.id = s.layer_id
                       WHERE s.id = NEW.sublist_id);
END;
CREATE TRIGGER sort_revisions_pending_out AFTER DELETE ON sublist_pending
BEGIN
    UPDATE sort_revisions SET revision = revision + 1
    WHERE member_id = (SELECT y.member_id FROM sublists s JOIN layers y ON y.id = s.layer_id
                       WHERE s.id = OLD.sublist_id);
END;

-- Prompts: one posted, answered, closed or dropped changes what may be asked next.
CREATE TRIGGER sort_revisions_prompts_in AFTER INSERT ON prompts
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER sort_revisions_prompts_up AFTER UPDATE OF state ON prompts
WHEN NEW.state IS NOT OLD.state
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = NEW.member_id;
END;
CREATE TRIGGER sort_revisions_prompts_out AFTER DELETE ON prompts
BEGIN
    UPDATE sort_revisions SET revision = revision + 1 WHERE member_id = OLD.member_id;
END;
