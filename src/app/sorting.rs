//! Training a layer's model, and sorting a member's motherlist into their sublists with it:
//! confident tracks are placed, uncertain ones wait for the member's answer, and the result is
//! written to Spotify as the smallest change.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::App;
use crate::domain::{
    Label, LabelSource, LabelledTrack, Layer, LayerId, LikedTrack, MemberId, SublistId, TrackId,
};
use crate::jobs::{CancelToken, JobError, Progress, ProgressSender};
use crate::learn::{self, FEATURE_SCHEMA, TrainedModel};
use crate::store::StoredModel;

/// What training a layer produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    pub layer: LayerId,
    pub labels: u32,
    pub accuracy: Option<f32>,
    pub previous_accuracy: Option<f32>,
    pub device: String,
}

/// What sorting one layer did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerOutcome {
    pub layer: LayerId,
    pub layer_name: String,
    /// (sublist name, tracks added to its playlist), for sublists whose playlist changed.
    pub added: Vec<(String, u32)>,
    /// (sublist name, tracks removed from its playlist).
    pub removed: Vec<(String, u32)>,
    /// Tracks the model placed in the void this time.
    pub to_void: u32,
    /// Tracks that wait for the member's answer.
    pub waiting: Vec<TrackId>,
    /// Playlists made again because the member had deleted them.
    pub recreated: Vec<String>,
    /// Hand edits on Spotify that became labels.
    pub hand_edits: u32,
    /// Model labels this sort placed, changed or took back.
    #[serde(default)]
    pub labels_changed: u32,
    /// Whether the layer's playlists were read and written (a sort whose playlists already
    /// hold what they should reads none, unless a hand-edit check is due).
    #[serde(default)]
    pub playlists_read: bool,
}

/// What sorting a member's layers did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SortOutcome {
    pub new_tracks: u32,
    pub layers: Vec<LayerOutcome>,
}

impl SortOutcome {
    /// Whether the sort found nothing to do: no new track, no label placed or changed, no
    /// playlist read or written.
    pub fn quiet(&self) -> bool {
        self.new_tracks == 0
            && !self.changed()
            && self
                .layers
                .iter()
                .all(|l| l.labels_changed == 0 && !l.playlists_read && l.hand_edits == 0)
    }

    /// Whether anything a member would care about happened.
    pub fn changed(&self) -> bool {
        self.new_tracks > 0
            || self.layers.iter().any(|l| {
                !l.added.is_empty()
                    || !l.removed.is_empty()
                    || l.to_void > 0
                    || !l.recreated.is_empty()
            })
    }
}

/// A label as class indices for training (empty: the void), or None when it is no usable
/// example: a set that names none of the layer's sublists (an empty one, or only sublists
/// removed since), or the void in a complete layer, which has none.
fn to_indices(label: &Label, classes: &[SublistId], complete: bool) -> Option<Vec<usize>> {
    match label {
        Label::Void => (!complete).then(Vec::new),
        Label::Sublists(set) => {
            let idx: Vec<usize> = classes
                .iter()
                .enumerate()
                .filter(|(_, c)| set.contains(c))
                .map(|(i, _)| i)
                .collect();
            (!idx.is_empty()).then_some(idx)
        }
    }
}

/// Reads one track's label again into the sort's picture of the layer.
async fn refresh_label(
    store: &crate::store::Store,
    layer: LayerId,
    track: &TrackId,
    labels: &mut HashMap<TrackId, LabelledTrack>,
) -> anyhow::Result<()> {
    match store.label(layer, track).await? {
        Some(l) => labels.insert(track.clone(), l),
        None => labels.remove(track),
    };
    Ok(())
}

impl App {
    /// The layer, checked to belong to the member.
    pub(crate) async fn member_layer(
        &self,
        member: MemberId,
        layer: LayerId,
    ) -> anyhow::Result<Option<Layer>> {
        Ok(self
            .store()
            .layer(layer)
            .await?
            .filter(|l| l.member == member))
    }

    /// The layer's current model, if one of this feature schema exists.
    pub(crate) async fn load_model(&self, layer: LayerId) -> anyhow::Result<Option<TrainedModel>> {
        let Some(stored) = self.store().model(layer).await? else {
            return Ok(None);
        };
        if stored.feature_schema != FEATURE_SCHEMA {
            return Ok(None);
        }
        match TrainedModel::from_bytes(&stored.weights) {
            Ok(m) => Ok(Some(m)),
            Err(e) => {
                tracing::warn!(layer = layer.0, error = %e, "a stored model could not be loaded; it will be retrained");
                Ok(None)
            }
        }
    }

    /// Trains the layer's model on the member's own labels, on a device worker.
    pub(crate) async fn train_layer(
        &self,
        member: MemberId,
        layer: LayerId,
        progress: ProgressSender,
        cancel: CancelToken,
    ) -> Result<Trained, JobError> {
        let layer = self
            .member_layer(member, layer)
            .await?
            .ok_or_else(|| JobError::Refused("That layer no longer exists.".into()))?;
        if layer.sublists.is_empty() {
            return Err(JobError::Refused(format!(
                "The layer “{}” has no sublists yet: add some with /layers add-sublist.",
                layer.name
            )));
        }
        let truth: Vec<LabelledTrack> = self
            .store()
            .labels(layer.id)
            .await
            .map_err(anyhow::Error::from)?
            .into_iter()
            .filter(|l| l.source.is_ground_truth())
            .collect();
        let liked: HashMap<TrackId, LikedTrack> = self
            .store()
            .liked_tracks(member)
            .await
            .map_err(anyhow::Error::from)?
            .into_iter()
            .map(|l| (l.track.id.clone(), l))
            .collect();
        let classes: Vec<SublistId> = layer.sublists.iter().map(|s| s.id).collect();
        let mut tracks = Vec::new();
        let mut labels = Vec::new();
        for l in &truth {
            let Some(idx) = to_indices(&l.label, &classes, layer.rules.complete) else {
                continue;
            };
            let track = match liked.get(&l.track) {
                Some(t) => t.clone(),
                None => match self
                    .store()
                    .track(&l.track)
                    .await
                    .map_err(anyhow::Error::from)?
                {
                    // Tracks known only from an adopted playlist: the like time is unknown.
                    Some(track) => LikedTrack {
                        track,
                        added_at: self.store().now(),
                    },
                    None => continue,
                },
            };
            tracks.push(track);
            labels.push(idx);
        }
        if tracks.len() < 2 {
            return Err(JobError::Refused(format!(
                "The layer “{}” has {} labelled track(s); label a few more (at least 2) before training.",
                layer.name,
                tracks.len()
            )));
        }
        let previous_accuracy = self
            .store()
            .model(layer.id)
            .await
            .map_err(anyhow::Error::from)?
            .and_then(|m| m.metrics.get("held_out_accuracy")?.as_f64())
            .map(|a| a as f32);
        let kind = layer.kind();
        let n = tracks.len() as u32;
        let config = self.training();
        let stop = config.stop.clone();
        let training = self.inner.devices.run(move |compute| {
            let mut report = |p: learn::Progress| {
                progress.report(Progress {
                    epoch: p.epoch as u32,
                    epochs: p.epochs as u32,
                    loss: p.loss,
                    held_out_accuracy: p.held_out_accuracy,
                })
            };
            learn::train(
                compute,
                kind,
                &classes,
                &tracks,
                &labels,
                &config,
                &mut report,
            )
        });
        tokio::pin!(training);
        // A cancel (or the time limit) stops the training between epochs; the job ends only
        // once the device thread is free again.
        let finished = tokio::select! {
            done = &mut training => done,
            () = cancel.cancelled() => {
                stop.raise();
                training.await
            }
        };
        let model = match finished.map_err(|e| JobError::Retry(e.to_string()))? {
            Ok(model) => model,
            Err(learn::LearnError::Stopped) => return Err(JobError::Cancelled),
            Err(e) => return Err(JobError::Fatal(e.to_string())),
        };
        let weights = model
            .to_bytes()
            .map_err(|e| JobError::Fatal(e.to_string()))?;
        let metrics =
            serde_json::to_value(model.metrics()).map_err(|e| JobError::Fatal(e.to_string()))?;
        let accuracy = model.metrics().held_out_accuracy;
        // Where it really trained: `auto` sends small trainings to the CPU beside a GPU.
        let device = model.metrics().device.clone();
        self.store()
            .save_model(&StoredModel {
                layer: layer.id,
                feature_schema: FEATURE_SCHEMA,
                weights,
                metrics,
                labels_used: n,
                trained_at: self.store().now(),
                device: device.clone(),
            })
            .await
            .map_err(anyhow::Error::from)?;
        Ok(Trained {
            layer: layer.id,
            labels: n,
            accuracy,
            previous_accuracy,
            device,
        })
    }

    /// Sorts the member's motherlist (`liked`, newest like first) in one layer and writes the
    /// layer's playlists. When every playlist already holds what it should and nothing of the
    /// bot's is pending, Spotify is not asked at all, unless `check_playlists` asks for the
    /// member's hand edits to be read.
    pub(crate) async fn sort_layer(
        &self,
        member: MemberId,
        layer: &Layer,
        liked: &[LikedTrack],
        check_playlists: bool,
    ) -> anyhow::Result<LayerOutcome> {
        let store = self.store();
        let settings =
            store
                .member_settings(member)
                .await?
                .unwrap_or_else(|| crate::store::MemberSettings {
                    motherlist: Default::default(),
                    prompts_in_dm: true,
                    auto_sort: true,
                    ask_below: 0.7,
                    prompt_budget: 10,
                    guild_id: None,
                });
        let mut labels: HashMap<TrackId, LabelledTrack> = store
            .labels(layer.id)
            .await?
            .into_iter()
            .map(|l| (l.track.clone(), l))
            .collect();
        let model = self.load_model(layer.id).await?.map(std::sync::Arc::new);
        let mut outcome = LayerOutcome {
            layer: layer.id,
            layer_name: layer.name.clone(),
            added: Vec::new(),
            removed: Vec::new(),
            to_void: 0,
            waiting: Vec::new(),
            recreated: Vec::new(),
            hand_edits: 0,
            labels_changed: 0,
            playlists_read: false,
        };

        // Score every liked track no person has labelled.
        let open: Vec<LikedTrack> = liked
            .iter()
            .filter(|l| {
                labels
                    .get(&l.track.id)
                    .is_none_or(|x| !x.source.is_ground_truth())
            })
            .cloned()
            .collect();
        let predictions = match model {
            Some(m) if !open.is_empty() => {
                let open = open.clone();
                tokio::task::spawn_blocking(move || m.predict(&open))
                    .await
                    .context("scoring tracks")?
            }
            _ => Vec::new(),
        };
        // The model's new and changed labels, written together after the loop.
        let mut writes: Vec<(TrackId, Label, f32, bool)> = Vec::new();
        for (i, track) in open.iter().enumerate() {
            let id = &track.track.id;
            let prediction = predictions.get(i).filter(|p| {
                settings.auto_sort
                    && p.confidence >= settings.ask_below
                    && p.label.validate(layer).is_ok()
            });
            match prediction {
                Some(p) => {
                    // A model label that stands as it is is not written again.
                    if labels
                        .get(id)
                        .is_none_or(|l| l.source != LabelSource::Model || l.label != p.label)
                    {
                        let was_void = labels.get(id).is_some_and(|l| l.label.is_void());
                        writes.push((id.clone(), p.label.clone(), p.confidence, was_void));
                    }
                }
                None => {
                    // Unsure (or no model yet): ask, and keep it out of the playlists meanwhile.
                    // Only the model's label goes: an answer given while this sort ran stays.
                    if labels
                        .get(id)
                        .is_some_and(|l| l.source == LabelSource::Model)
                    {
                        outcome.labels_changed += 1;
                        if store.clear_model_label(layer.id, id).await? {
                            labels.remove(id);
                        } else {
                            refresh_label(store, layer.id, id, &mut labels).await?;
                        }
                    } else {
                        labels.remove(id);
                    }
                    if labels.get(id).is_none_or(|l| !l.source.is_ground_truth()) {
                        outcome.waiting.push(id.clone());
                    }
                }
            }
        }

        if !writes.is_empty() {
            let batch: Vec<(TrackId, Label, f32)> = writes
                .iter()
                .map(|(id, label, confidence, _)| (id.clone(), label.clone(), *confidence))
                .collect();
            let written = store.set_model_labels(layer, &batch).await?;
            outcome.labels_changed += writes.len() as u32;
            for ((id, label, _, was_void), ok) in writes.into_iter().zip(written) {
                if ok {
                    if label.is_void() && !was_void {
                        outcome.to_void += 1;
                    }
                    labels.insert(
                        id.clone(),
                        LabelledTrack {
                            track: id,
                            label,
                            source: LabelSource::Model,
                        },
                    );
                } else {
                    // The member answered while this sort ran: their answer counts.
                    refresh_label(store, layer.id, &id, &mut labels).await?;
                }
            }
        }

        // What each playlist should hold: liked tracks in like order, then tracks adopted from a
        // playlist that are not liked (they came with it and stay).
        let liked_ids: HashSet<&TrackId> = liked.iter().map(|l| &l.track.id).collect();
        let mut desired: BTreeMap<SublistId, Vec<TrackId>> =
            layer.sublists.iter().map(|s| (s.id, Vec::new())).collect();
        let mut place = |id: &TrackId, label: &Label| {
            for s in label.sublists() {
                if let Some(v) = desired.get_mut(&s) {
                    v.push(id.clone());
                }
            }
        };
        for l in liked {
            if let Some(label) = labels.get(&l.track.id) {
                place(&l.track.id, &label.label);
            }
        }
        let mut adopted: Vec<&LabelledTrack> = labels
            .values()
            .filter(|l| l.source == LabelSource::Imported && !liked_ids.contains(&l.track))
            .collect();
        adopted.sort_by(|a, b| a.track.cmp(&b.track));
        for l in adopted {
            place(&l.track, &l.label);
        }
        let desired: Vec<(SublistId, Vec<TrackId>)> = desired.into_iter().collect();
        if !check_playlists && self.playlists_hold(&desired).await? {
            return Ok(outcome);
        }
        outcome.playlists_read = true;
        let report = self
            .spotify()
            .write_sublists(member, layer, &desired)
            .await?;

        for change in &report.playlists {
            let name = layer
                .sublist(change.sublist)
                .map_or_else(|| change.name.clone(), |s| s.name.clone());
            if !change.added.is_empty() {
                outcome
                    .added
                    .push((name.clone(), change.added.len() as u32));
            }
            if !change.removed.is_empty() {
                outcome
                    .removed
                    .push((name.clone(), change.removed.len() as u32));
            }
            if change.recreated {
                outcome.recreated.push(name);
            }
            // The adapter already turned hand edits into the member's labels.
            outcome.hand_edits += change.hand_edits.len() as u32;
        }
        Ok(outcome)
    }

    /// Sorts every layer of the member (or one), writes the playlists, closes the prompts that
    /// are settled and posts prompts for what is uncertain, queues retraining where enough new
    /// labels arrived, and announces what changed.
    pub(crate) async fn sort_member(
        &self,
        member: MemberId,
        only: Option<LayerId>,
        new_tracks: u32,
    ) -> anyhow::Result<SortOutcome> {
        // What the sort reads, as of now: a sort of every layer that changes nothing records it.
        let revision = self.store().sort_revision(member).await?.map(|(r, _)| r);
        let outcome = match self.sort_layers(member, only, new_tracks, false).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // What the sort settled before it failed (hand edits read, tracks unliked)
                // closes its questions all the same.
                self.close_settled_prompts(member).await;
                return Err(e);
            }
        };
        // Nothing changed and no prompt could be posted: nothing to rank or tell.
        let told = (outcome.quiet() && !self.room_for_prompts(member).await?)
            || self.tell_member(member, &outcome, true).await;
        if let (None, Some(revision), true) = (only, revision, told) {
            self.store().mark_sorted(member, revision).await?;
        }
        Ok(outcome)
    }

    /// Sorts after a sync of the motherlist. A sync that found nothing new does not sort (no
    /// scoring, no ranking, no write) while nothing a sort reads has changed since the last
    /// sort that found everything in place, unless the playlists are due to be read for hand
    /// edits.
    pub(crate) async fn sort_after_sync(
        &self,
        member: MemberId,
        new_tracks: u32,
    ) -> anyhow::Result<SortOutcome> {
        if new_tracks == 0
            && !self.playlist_check_due(member).await?
            && matches!(self.store().sort_revision(member).await?, Some((_, true)))
        {
            return Ok(SortOutcome::default());
        }
        self.sort_member(member, None, new_tracks).await
    }

    /// Sorts like [`App::sort_member`] without posting anything: the caller tells the member.
    /// This is the member's own `/refresh`, so their playlists are read for hand edits.
    pub(crate) async fn sort_member_quietly(
        &self,
        member: MemberId,
        new_tracks: u32,
    ) -> anyhow::Result<SortOutcome> {
        self.sort_layers(member, None, new_tracks, true).await
    }

    async fn sort_layers(
        &self,
        member: MemberId,
        only: Option<LayerId>,
        new_tracks: u32,
        check_playlists: bool,
    ) -> anyhow::Result<SortOutcome> {
        let mut outcome = SortOutcome {
            new_tracks,
            layers: Vec::new(),
        };
        let store = self.store();
        let now = store.now();
        let check = check_playlists || self.playlist_check_due(member).await?;
        let liked = store.liked_tracks(member).await?;
        for layer in store.layers(member).await? {
            if only.is_some_and(|l| l != layer.id) || layer.sublists.is_empty() {
                continue;
            }
            outcome
                .layers
                .push(self.sort_layer(member, &layer, &liked, check).await?);
            self.maybe_retrain(member, &layer).await?;
        }
        if check && only.is_none() {
            store.set_playlists_checked_at(member, now).await?;
        }
        Ok(outcome)
    }

    /// Whether the member's playlists are due to be read for hand edits.
    async fn playlist_check_due(&self, member: MemberId) -> anyhow::Result<bool> {
        let store = self.store();
        let now = store.now();
        Ok(store.playlists_checked_at(member).await?.is_none_or(|t| {
            now - t
                >= chrono::Duration::from_std(self.inner.pipeline.playlist_check_interval)
                    .unwrap_or(chrono::Duration::MAX)
        }))
    }

    /// Whether each sublist's playlist holds what it should, as far as the bot knows without
    /// asking Spotify: what it last wrote or read there equals `desired` (as sets: order is
    /// kept by the writer), no write of its own is unaccounted for, and a sublist without a
    /// playlist has nothing to hold.
    async fn playlists_hold(&self, desired: &[(SublistId, Vec<TrackId>)]) -> anyhow::Result<bool> {
        let store = self.store();
        for (sub, want) in desired {
            let Some((playlist, _)) = store.sublist_playlist(*sub).await? else {
                continue;
            };
            if playlist.is_none() {
                if want.is_empty() {
                    continue;
                }
                return Ok(false);
            }
            let pending = store.pending_writes(*sub).await?;
            if !pending.added.is_empty() || !pending.removed.is_empty() {
                return Ok(false);
            }
            let have: HashSet<TrackId> = store.sublist_tracks(*sub).await?.into_iter().collect();
            let want: HashSet<&TrackId> = want.iter().collect();
            if have.len() != want.len() || want.iter().any(|t| !have.contains(*t)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the member has room for another prompt within their budget.
    async fn room_for_prompts(&self, member: MemberId) -> anyhow::Result<bool> {
        Ok(self.store().prompt_room(member).await? > 0)
    }

    /// Queues automatic retraining once enough new labels arrived since the last model.
    async fn maybe_retrain(&self, member: MemberId, layer: &Layer) -> anyhow::Result<()> {
        let labelled = self
            .store()
            .labels(layer.id)
            .await?
            .iter()
            .filter(|l| l.source.is_ground_truth())
            .count() as u32;
        let used = self
            .store()
            .model(layer.id)
            .await?
            .map_or(0, |m| m.labels_used);
        if labelled >= used + self.inner.pipeline.retrain_after_labels.max(1) {
            self.queue()
                .enqueue(
                    crate::jobs::JobKind::Train {
                        member,
                        layer: layer.id,
                    },
                    crate::jobs::Priority::Automatic,
                )
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn only_labels_that_name_a_sublist_of_the_layer_or_its_void_are_examples() {
        let classes = [SublistId(1), SublistId(2), SublistId(3)];
        let set = |ids: &[i64]| Label::Sublists(ids.iter().map(|i| SublistId(*i)).collect());
        assert_eq!(to_indices(&set(&[2]), &classes, true), Some(vec![1]));
        assert_eq!(
            to_indices(&set(&[1, 3, 9]), &classes, false),
            Some(vec![0, 2])
        );
        assert_eq!(
            to_indices(&set(&[9]), &classes, false),
            None,
            "only removed sublists"
        );
        assert_eq!(
            to_indices(&Label::Sublists(BTreeSet::new()), &classes, false),
            None,
            "an empty set is not the void"
        );
        assert_eq!(to_indices(&Label::Void, &classes, false), Some(Vec::new()));
        assert_eq!(
            to_indices(&Label::Void, &classes, true),
            None,
            "no void in a complete layer"
        );
    }
}
