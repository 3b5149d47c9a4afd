//! Trained models: the current weights of each layer, with their schema and metrics.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, StoreError};
use crate::domain::LayerId;

/// A model as stored: opaque weights plus what is needed to trust them.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredModel {
    pub layer: LayerId,
    /// The feature schema the weights expect; a model of another schema must be retrained.
    pub feature_schema: u32,
    pub weights: Vec<u8>,
    /// Held-out metrics, as JSON.
    pub metrics: serde_json::Value,
    pub labels_used: u32,
    pub trained_at: DateTime<Utc>,
    /// Where it was trained ("cpu", "gpu: <adapter>").
    pub device: String,
}

impl Store {
    /// Replaces the layer's model.
    pub async fn save_model(&self, m: &StoredModel) -> Result<()> {
        sqlx::query(
            "INSERT INTO models (layer_id, feature_schema, weights, metrics, labels_used, trained_at, device)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(layer_id) DO UPDATE SET feature_schema = excluded.feature_schema,
                weights = excluded.weights, metrics = excluded.metrics,
                labels_used = excluded.labels_used, trained_at = excluded.trained_at,
                device = excluded.device",
        )
        .bind(m.layer.0)
        .bind(m.feature_schema as i64)
        .bind(&m.weights)
        .bind(m.metrics.to_string())
        .bind(m.labels_used as i64)
        .bind(m.trained_at)
        .bind(&m.device)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The layer's current model.
    pub async fn model(&self, layer: LayerId) -> Result<Option<StoredModel>> {
        let Some(r) = sqlx::query("SELECT * FROM models WHERE layer_id = ?")
            .bind(layer.0)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let metrics: String = r.get("metrics");
        Ok(Some(StoredModel {
            layer,
            feature_schema: r.get::<i64, _>("feature_schema") as u32,
            weights: r.get("weights"),
            metrics: serde_json::from_str(&metrics)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            labels_used: r.get::<i64, _>("labels_used") as u32,
            trained_at: r.get("trained_at"),
            device: r.get("device"),
        }))
    }
}
