//! Layers and sublists.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Result, Store, StoreError};
use crate::domain::{Emoji, Layer, LayerId, LayerRules, MemberId, Sublist, SublistId};

fn sublist_from_row(r: &SqliteRow) -> Result<Sublist> {
    let emoji: String = r.get("emoji");
    Ok(Sublist {
        id: SublistId(r.get("id")),
        name: r.get("name"),
        emoji: Emoji::parse(&emoji).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        playlist_id: r.get("playlist_id"),
    })
}

impl Store {
    /// Creates a layer; a name the member already uses (in any case) is refused.
    pub async fn create_layer(
        &self,
        member: MemberId,
        name: &str,
        rules: LayerRules,
    ) -> Result<Layer> {
        self.ensure_member(member).await?;
        let mut tx = self.write_tx().await?;
        let existing: Vec<String> =
            sqlx::query_scalar("SELECT name FROM layers WHERE member_id = ?")
                .bind(member.0 as i64)
                .fetch_all(&mut *tx)
                .await?;
        let name = Layer::check_name(name, existing.iter().map(String::as_str))?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO layers (member_id, name, mutual, complete, created_at)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(member.0 as i64)
        .bind(&name)
        .bind(rules.mutual)
        .bind(rules.complete)
        .bind(self.now())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Layer {
            id: LayerId(id),
            member,
            name,
            rules,
            sublists: Vec::new(),
        })
    }

    /// A member's layers with their sublists, in creation order.
    pub async fn layers(&self, member: MemberId) -> Result<Vec<Layer>> {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM layers WHERE member_id = ? ORDER BY id")
                .bind(member.0 as i64)
                .fetch_all(self.pool())
                .await?;
        let mut layers = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(l) = self.layer(LayerId(id)).await? {
                layers.push(l);
            }
        }
        Ok(layers)
    }

    /// One layer with its sublists.
    pub async fn layer(&self, id: LayerId) -> Result<Option<Layer>> {
        let Some(row) =
            sqlx::query("SELECT id, member_id, name, mutual, complete FROM layers WHERE id = ?")
                .bind(id.0)
                .fetch_optional(self.pool())
                .await?
        else {
            return Ok(None);
        };
        let sublists = sqlx::query(
            "SELECT id, name, emoji, playlist_id FROM sublists WHERE layer_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(sublist_from_row)
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(Layer {
            id,
            member: MemberId(row.get::<i64, _>("member_id") as u64),
            name: row.get("name"),
            rules: LayerRules {
                mutual: row.get("mutual"),
                complete: row.get("complete"),
            },
            sublists,
        }))
    }

    /// A member's layer by name (case-insensitive).
    pub async fn layer_by_name(&self, member: MemberId, name: &str) -> Result<Option<Layer>> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM layers WHERE member_id = ? AND name = ? COLLATE NOCASE",
        )
        .bind(member.0 as i64)
        .bind(name.trim())
        .fetch_optional(self.pool())
        .await?;
        match id {
            Some(id) => self.layer(LayerId(id)).await,
            None => Ok(None),
        }
    }

    /// Renames a layer, keeping names unique for the member.
    pub async fn rename_layer(&self, layer: LayerId, name: &str) -> Result<Layer> {
        let l = self
            .layer(layer)
            .await?
            .ok_or(StoreError::NotFound("layer"))?;
        let mut tx = self.write_tx().await?;
        let others: Vec<String> =
            sqlx::query_scalar("SELECT name FROM layers WHERE member_id = ? AND id != ?")
                .bind(l.member.0 as i64)
                .bind(layer.0)
                .fetch_all(&mut *tx)
                .await?;
        let name = Layer::check_name(name, others.iter().map(String::as_str))?;
        sqlx::query("UPDATE layers SET name = ? WHERE id = ?")
            .bind(&name)
            .bind(layer.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Layer { name, ..l })
    }

    /// Deletes a layer with its sublists, labels, model and prompts.
    pub async fn remove_layer(&self, layer: LayerId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM layers WHERE id = ?")
            .bind(layer.0)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Adds a sublist to a layer under the layer's rules (unique name and emoji, at most 20).
    pub async fn add_sublist(&self, layer: LayerId, name: &str, emoji: &str) -> Result<Sublist> {
        let l = self
            .layer(layer)
            .await?
            .ok_or(StoreError::NotFound("layer"))?;
        let (name, emoji) = l.check_new_sublist(name, emoji, None)?;
        // The UNIQUE constraints on (layer, name) and (layer, emoji) guard against a race.
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO sublists (layer_id, name, emoji, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(layer.0)
        .bind(&name)
        .bind(emoji.as_str())
        .bind(self.now())
        .fetch_one(self.pool())
        .await?;
        Ok(Sublist {
            id: SublistId(id),
            name,
            emoji,
            playlist_id: None,
        })
    }

    /// Changes a sublist's name and emoji under the layer's rules.
    pub async fn edit_sublist(
        &self,
        layer: LayerId,
        sublist: SublistId,
        name: &str,
        emoji: &str,
    ) -> Result<Sublist> {
        let l = self
            .layer(layer)
            .await?
            .ok_or(StoreError::NotFound("layer"))?;
        let current = l.sublist(sublist).ok_or(StoreError::NotFound("sublist"))?;
        let (name, emoji) = l.check_new_sublist(name, emoji, Some(sublist))?;
        sqlx::query("UPDATE sublists SET name = ?, emoji = ? WHERE id = ? AND layer_id = ?")
            .bind(&name)
            .bind(emoji.as_str())
            .bind(sublist.0)
            .bind(layer.0)
            .execute(self.pool())
            .await?;
        Ok(Sublist {
            name,
            emoji,
            ..current.clone()
        })
    }

    /// Deletes a sublist, in one transaction with its labels: a label that named only this
    /// sublist goes (the track is unlabelled again, not in the void); one that named others
    /// too keeps those.
    pub async fn remove_sublist(&self, sublist: SublistId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "DELETE FROM labels WHERE EXISTS (
                 SELECT 1 FROM label_sublists ls WHERE ls.layer_id = labels.layer_id
                     AND ls.track_id = labels.track_id AND ls.sublist_id = ?1)
             AND NOT EXISTS (
                 SELECT 1 FROM label_sublists ls WHERE ls.layer_id = labels.layer_id
                     AND ls.track_id = labels.track_id AND ls.sublist_id != ?1)",
        )
        .bind(sublist.0)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM sublists WHERE id = ?")
            .bind(sublist.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records the Spotify playlist that holds a sublist (created, adopted or recreated).
    pub async fn set_sublist_playlist(
        &self,
        sublist: SublistId,
        playlist_id: Option<&str>,
    ) -> Result<()> {
        sqlx::query("UPDATE sublists SET playlist_id = ?, snapshot_id = NULL WHERE id = ?")
            .bind(playlist_id)
            .bind(sublist.0)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
