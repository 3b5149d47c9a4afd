//! Labels: one per (layer, track), the void or a set of sublists, with its source.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{Row, SqliteConnection};

use super::{Result, Store, StoreError};
use crate::domain::{Label, LabelSource, LabelledTrack, Layer, LayerId, SublistId, TrackId};

/// How many labels name each sublist (and the void) in a layer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelCount {
    /// Ground-truth labels (member or imported) per sublist.
    pub by_sublist: BTreeMap<SublistId, u32>,
    /// Ground-truth labels that are the void.
    pub void: u32,
    /// Labels placed by the model.
    pub by_model: u32,
}

impl Store {
    /// Sets a track's label in a layer, after checking it against the layer's rules, in one
    /// transaction. A model's label never replaces one a person gave: it returns `false` then.
    pub async fn set_label(
        &self,
        layer: &Layer,
        track: &TrackId,
        label: &Label,
        source: LabelSource,
        confidence: Option<f32>,
    ) -> Result<bool> {
        label.validate(layer)?;
        let mut tx = self.write_tx().await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT source FROM labels WHERE layer_id = ? AND track_id = ?")
                .bind(layer.id.0)
                .bind(track.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let existing = existing.as_deref().and_then(LabelSource::parse);
        if source == LabelSource::Model && existing.is_some_and(LabelSource::is_ground_truth) {
            return Ok(false);
        }
        put_label(
            &mut tx,
            layer.id,
            track,
            label,
            source,
            confidence,
            self.now(),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes a track's label in a layer (the track becomes unlabelled).
    pub async fn clear_label(&self, layer: LayerId, track: &TrackId) -> Result<()> {
        sqlx::query("DELETE FROM labels WHERE layer_id = ? AND track_id = ?")
            .bind(layer.0)
            .bind(track.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes a track's label only if the model placed it: an answer a person gave since
    /// the caller last looked stays. Returns whether a model label went.
    pub async fn clear_model_label(&self, layer: LayerId, track: &TrackId) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM labels WHERE layer_id = ? AND track_id = ? AND source = 'model'",
        )
        .bind(layer.0)
        .bind(track.as_str())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One track's label in a layer.
    pub async fn label(&self, layer: LayerId, track: &TrackId) -> Result<Option<LabelledTrack>> {
        let mut conn = self.pool().acquire().await?;
        Ok(read_labels(&mut conn, layer, Some(track))
            .await?
            .into_iter()
            .next())
    }

    /// Every label in a layer, ordered by track id.
    pub async fn labels(&self, layer: LayerId) -> Result<Vec<LabelledTrack>> {
        let mut conn = self.pool().acquire().await?;
        read_labels(&mut conn, layer, None).await
    }

    /// Label counts per sublist in a layer.
    pub async fn label_counts(&self, layer: LayerId) -> Result<LabelCount> {
        let mut count = LabelCount::default();
        for l in self.labels(layer).await? {
            if !l.source.is_ground_truth() {
                count.by_model += 1;
                continue;
            }
            match &l.label {
                Label::Void => count.void += 1,
                Label::Sublists(set) => {
                    for s in set {
                        *count.by_sublist.entry(*s).or_default() += 1;
                    }
                }
            }
        }
        Ok(count)
    }
}

/// Writes a label (replacing the track's previous one) inside the caller's transaction. The
/// void is stored as such; a set of sublists as its rows.
pub(super) async fn put_label(
    conn: &mut SqliteConnection,
    layer: LayerId,
    track: &TrackId,
    label: &Label,
    source: LabelSource,
    confidence: Option<f32>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO labels (layer_id, track_id, source, confidence, updated_at, void)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(layer_id, track_id) DO UPDATE SET source = excluded.source,
            confidence = excluded.confidence, updated_at = excluded.updated_at,
            void = excluded.void",
    )
    .bind(layer.0)
    .bind(track.as_str())
    .bind(source.as_str())
    .bind(confidence.map(f64::from))
    .bind(now)
    .bind(label.is_void())
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM label_sublists WHERE layer_id = ? AND track_id = ?")
        .bind(layer.0)
        .bind(track.as_str())
        .execute(&mut *conn)
        .await?;
    for s in label.sublists() {
        sqlx::query("INSERT INTO label_sublists (layer_id, track_id, sublist_id) VALUES (?, ?, ?)")
            .bind(layer.0)
            .bind(track.as_str())
            .bind(s.0)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The labels of a layer (or of one track in it), ordered by track id. A label is the void
/// only when stored as the void; a row left without sublists is no label and is skipped.
pub(super) async fn read_labels(
    conn: &mut SqliteConnection,
    layer: LayerId,
    track: Option<&TrackId>,
) -> Result<Vec<LabelledTrack>> {
    let rows = sqlx::query(
        "SELECT l.track_id, l.source, l.void, ls.sublist_id FROM labels l
         LEFT JOIN label_sublists ls ON ls.layer_id = l.layer_id AND ls.track_id = l.track_id
         WHERE l.layer_id = ?1 AND (?2 IS NULL OR l.track_id = ?2)
         ORDER BY l.track_id",
    )
    .bind(layer.0)
    .bind(track.map(TrackId::as_str))
    .fetch_all(&mut *conn)
    .await?;
    let mut out: Vec<(TrackId, LabelSource, bool, BTreeSet<SublistId>)> = Vec::new();
    for r in rows {
        let id: String = r.get("track_id");
        let id = TrackId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let source: String = r.get("source");
        let source = LabelSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("label source {source}")))?;
        let void: bool = r.get("void");
        let sublist: Option<i64> = r.get("sublist_id");
        if out.last().is_none_or(|(t, ..)| *t != id) {
            out.push((id, source, void, BTreeSet::new()));
        }
        if let (Some(s), Some(last)) = (sublist, out.last_mut()) {
            last.3.insert(SublistId(s));
        }
    }
    Ok(out
        .into_iter()
        .filter_map(|(track, source, void, set)| {
            let label = match (void, set.is_empty()) {
                (true, _) => Label::Void,
                (false, false) => Label::Sublists(set),
                (false, true) => return None,
            };
            Some(LabelledTrack {
                track,
                label,
                source,
            })
        })
        .collect())
}
