//! Keeping the sublists: each sublist is a private playlist the member owns, made when the
//! first track goes in. A refresh writes the smallest change (removals, then additions
//! appended, at most 100 per call), keeps the order of tracks already there, respects the
//! member's hand edits, and recreates a playlist the member deleted. The bot writes only to
//! playlists recorded as managed.
//!
//! The bot's own writes never come back as hand edits: before each write it records what it
//! is about to do, so a write that landed while its answer was lost (a crash, a cancelled job,
//! a time-out) is still known as its own. A write that would land twice if sent twice (adding
//! tracks, creating a playlist) is not sent again after such a loss: the playlist (or the
//! member's list of playlists, found by a marker in the description) is read instead.

use std::collections::{HashMap, HashSet};

use rspotify::model::{LibraryId, PlaylistId};
use rspotify::prelude::Id;

use super::api::{CONTAINS_CHUNK, PAGE, PlaylistInfo, Session, WRITE_CHUNK};
use super::{Spotify, SpotifyError};
use crate::domain::{Label, LabelSource, Layer, MemberId, SublistId, Track, TrackId};
use crate::store::PendingOp;

/// How many times a write that would land twice is sent, reading what landed in between.
const WRITE_ROUNDS: u32 = 3;

/// A change the member made by hand to a managed playlist since our last write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandEdit {
    /// The member added the track: it stays, and belongs in this sublist.
    Added(TrackId),
    /// The member removed the track: it is not put back ("not here").
    Removed(TrackId),
}

/// What a refresh did to one sublist's playlist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistChange {
    pub sublist: SublistId,
    pub playlist_id: String,
    /// The playlist's name on Spotify (a rename by the member is kept).
    pub name: String,
    /// Created now for a sublist that had none.
    pub created: bool,
    /// The member had deleted the playlist; a new one was made.
    pub recreated: bool,
    pub added: Vec<TrackId>,
    pub removed: Vec<TrackId>,
    pub hand_edits: Vec<HandEdit>,
    /// Add and remove calls made.
    pub write_calls: u32,
}

/// What a refresh did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub playlists: Vec<PlaylistChange>,
    /// HTTP requests made (reads, writes, retries).
    pub requests: u32,
}

impl Spotify {
    /// Makes each listed sublist's playlist hold `tracks` (in that order for new ones),
    /// writing the smallest change. Sublists not listed are left alone.
    pub async fn write_sublists(
        &self,
        member: MemberId,
        layer: &Layer,
        desired: &[(SublistId, Vec<TrackId>)],
    ) -> Result<WriteReport, SpotifyError> {
        if layer.member != member {
            return Err(SpotifyError::Protocol(
                "a layer of another member was asked to be written".into(),
            ));
        }
        let _guard = self.member_lock(member).await;
        let (session, _) = self.session(member).await?;
        let mut report = WriteReport::default();
        let result = self.write_all(&session, layer, desired, &mut report).await;
        report.requests = session.requests();
        result.map(|()| report)
    }

    async fn write_all(
        &self,
        session: &Session,
        layer: &Layer,
        desired: &[(SublistId, Vec<TrackId>)],
        report: &mut WriteReport,
    ) -> Result<(), SpotifyError> {
        let store = self.store();
        // Which managed playlists the member still has (deleting one on Spotify unfollows it).
        let mut managed = HashMap::new();
        for (sub, _) in desired {
            if let Some((Some(pid), snap)) = store.sublist_playlist(*sub).await? {
                managed.insert(*sub, (pid, snap));
            }
        }
        let ids: Vec<String> = managed.values().map(|(p, _)| p.clone()).collect();
        let mut followed = HashMap::new();
        for chunk in ids.chunks(CONTAINS_CHUNK) {
            let pids: Vec<PlaylistId<'static>> = chunk
                .iter()
                .filter_map(|p| PlaylistId::from_id(p.clone()).ok())
                .collect();
            let lib: Vec<LibraryId<'_>> = pids
                .iter()
                .map(|p| LibraryId::Playlist(p.as_ref()))
                .collect();
            let answer = session.library_contains(&lib).await?;
            for (p, f) in pids.iter().zip(answer) {
                followed.insert(p.id().to_string(), f);
            }
        }

        // 1. Where each playlist stands, and what the member changed by hand.
        let mut plans = Vec::new();
        for (sub, tracks) in desired {
            let Some(sublist) = layer.sublist(*sub) else {
                continue;
            };
            let existing = managed.get(sub).cloned();
            let plan = self
                .prepare(session, sublist.id, existing, &followed)
                .await?;
            plans.push((plan, tracks));
        }

        // 2. Hand edits become the member's labels: an addition puts the track in that sublist,
        // a removal takes it out ("not here").
        let mut added_elsewhere: HashMap<TrackId, SublistId> = HashMap::new();
        for (plan, _) in &plans {
            for edit in &plan.change.hand_edits {
                let (track, on) = match edit {
                    HandEdit::Added(t) => {
                        added_elsewhere.insert(t.clone(), plan.change.sublist);
                        (t, true)
                    }
                    HandEdit::Removed(t) => (t, false),
                };
                self.label_from_hand_edit(layer, plan.change.sublist, track, on)
                    .await?;
            }
        }

        // What the hand edits made of each track's label: a sublist its label no longer
        // names does not keep it (the desired lists were made from the labels before).
        let mut relabelled: HashMap<TrackId, Label> = HashMap::new();
        for (plan, _) in &plans {
            for edit in &plan.change.hand_edits {
                let (HandEdit::Added(t) | HandEdit::Removed(t)) = edit;
                if !relabelled.contains_key(t)
                    && let Some(l) = store.label(layer.id, t).await?
                {
                    relabelled.insert(t.clone(), l.label);
                }
            }
        }

        // 3. The smallest change per playlist.
        for (mut plan, tracks) in plans {
            let mut want: Vec<TrackId> = dedup(tracks.iter().cloned());
            let hand_removed: HashSet<TrackId> = plan
                .change
                .hand_edits
                .iter()
                .filter_map(|e| match e {
                    HandEdit::Removed(t) => Some(t.clone()),
                    HandEdit::Added(_) => None,
                })
                .collect();
            want.retain(|t| !hand_removed.contains(t));
            want.retain(|t| {
                relabelled
                    .get(t)
                    .is_none_or(|l| l.contains(plan.change.sublist))
            });
            if layer.rules.mutual {
                // A track the member put in another sublist of a mutual layer leaves this one.
                want.retain(|t| {
                    added_elsewhere
                        .get(t)
                        .is_none_or(|s| *s == plan.change.sublist)
                });
            }
            for e in &plan.change.hand_edits {
                if let HandEdit::Added(t) = e
                    && !want.contains(t)
                {
                    want.push(t.clone());
                }
            }
            if plan.missing {
                // No playlist until the first track goes in; one the member deleted is
                // forgotten meanwhile.
                if want.is_empty() {
                    if plan.change.recreated {
                        store.forget_managed_playlist(plan.change.sublist).await?;
                    }
                    continue;
                }
                let name = layer
                    .sublist(plan.change.sublist)
                    .map_or("", |s| s.name.as_str());
                self.create(session, layer, name, &mut plan).await?;
            }
            self.apply(session, &mut plan, &want).await?;
            report.playlists.push(plan.change);
        }
        Ok(())
    }

    /// Records a hand edit as the member's label. It changes the member's own answer (or
    /// none): the model's guess is not theirs, and taking a track out of one playlist or
    /// putting it in another says nothing about the guess's other sublists. Where the layer's
    /// rules refuse the result (a complete layer cannot hold the void), the label is cleared
    /// so the track is asked about again.
    async fn label_from_hand_edit(
        &self,
        layer: &Layer,
        sublist: SublistId,
        track: &TrackId,
        on: bool,
    ) -> Result<(), SpotifyError> {
        let store = self.store();
        let current = store
            .label(layer.id, track)
            .await?
            .filter(|l| l.source.is_ground_truth())
            .map_or(Label::Void, |l| l.label);
        let next = current.toggled(layer, sublist, on);
        if next.validate(layer).is_ok() {
            store
                .set_label(layer, track, &next, LabelSource::Member, None)
                .await?;
        } else {
            store.clear_label(layer.id, track).await?;
        }
        Ok(())
    }

    /// Finds the sublist's playlist and reads what is in it now. A playlist the member
    /// deleted, or one never made, is marked missing (made later, if a track goes in),
    /// unless a creation whose answer was lost finds its playlist.
    async fn prepare(
        &self,
        session: &Session,
        sub: SublistId,
        existing: Option<(String, Option<String>)>,
        followed: &HashMap<String, bool>,
    ) -> Result<Plan, SpotifyError> {
        let store = self.store();
        let mut info: Option<PlaylistInfo> = None;
        if let Some((pid, _)) = &existing
            && followed.get(pid).copied().unwrap_or(true)
        {
            info = session.playlist(pid).await?;
        }
        let mut change = PlaylistChange {
            sublist: sub,
            playlist_id: String::new(),
            name: String::new(),
            created: false,
            recreated: false,
            added: Vec::new(),
            removed: Vec::new(),
            hand_edits: Vec::new(),
            write_calls: 0,
        };
        let Some(info) = info else {
            change.created = existing.is_none();
            change.recreated = existing.is_some();
            let mut plan = Plan {
                change,
                current: Vec::new(),
                snapshot: String::new(),
                missing: true,
            };
            if let Some(marker) = store.playlist_creation(sub).await?
                && let Some(found) = find_created(session, &marker).await?
            {
                // Made by us while the answer was lost: it is ours, and what it holds is not
                // a hand edit.
                store
                    .set_managed_playlist(sub, &found.id, &found.snapshot_id)
                    .await?;
                let (snapshot, current) = read_playlist(session, &found.id).await?;
                plan.change.playlist_id = found.id;
                plan.change.name = found.name;
                plan.current = current;
                plan.snapshot = snapshot.unwrap_or(found.snapshot_id);
                plan.missing = false;
            }
            return Ok(plan);
        };
        let last_written = store.sublist_tracks(sub).await?;
        let our_snapshot = existing.as_ref().and_then(|(_, s)| s.clone());
        let current = if our_snapshot.as_deref() == Some(info.snapshot_id.as_str()) {
            last_written
        } else {
            let items = session.all_playlist_items(&info.id).await?;
            let tracks: Vec<Track> = items.iter().map(|l| l.track.clone()).collect();
            store.upsert_tracks(&tracks).await?;
            let current = dedup(tracks.into_iter().map(|t| t.id));
            let now: HashSet<&TrackId> = current.iter().collect();
            let before: HashSet<&TrackId> = last_written.iter().collect();
            // What the bot set out to write since its last record explains a difference as
            // its own write, whose answer was lost.
            let ours = store.pending_writes(sub).await?;
            change.hand_edits.extend(
                current
                    .iter()
                    .filter(|t| !before.contains(t) && !ours.added.contains(*t))
                    .map(|t| HandEdit::Added(t.clone())),
            );
            change.hand_edits.extend(
                last_written
                    .iter()
                    .filter(|t| !now.contains(t) && !ours.removed.contains(*t))
                    .map(|t| HandEdit::Removed(t.clone())),
            );
            current
        };
        change.playlist_id = info.id;
        change.name = info.name;
        Ok(Plan {
            change,
            current,
            snapshot: info.snapshot_id,
            missing: false,
        })
    }

    /// Makes the sublist's playlist. The creation is recorded (with a marker that goes in the
    /// description) before it is sent; if its answer is lost, the member's playlists are read
    /// for the marker before another is made.
    async fn create(
        &self,
        session: &Session,
        layer: &Layer,
        name: &str,
        plan: &mut Plan,
    ) -> Result<(), SpotifyError> {
        let store = self.store();
        let sub = plan.change.sublist;
        let marker = format!("ref {:016x}", rand::random::<u64>());
        let description = format!(
            "Kept by sublist: the “{name}” sublist of your “{}” layer. Edits you make here are respected. ({marker})",
            layer.name
        );
        store.begin_playlist_creation(sub, &marker).await?;
        let mut round = 1;
        let made = loop {
            match session.create_playlist(name, &description).await {
                Ok(made) => break made,
                Err(SpotifyError::Unavailable(why)) => {
                    if let Some(found) = find_created(session, &marker).await? {
                        break found;
                    }
                    if round == WRITE_ROUNDS {
                        return Err(SpotifyError::Unavailable(why));
                    }
                    round += 1;
                }
                Err(e) => return Err(e),
            }
        };
        store
            .set_managed_playlist(sub, &made.id, &made.snapshot_id)
            .await?;
        plan.change.playlist_id = made.id;
        plan.change.name = made.name;
        plan.snapshot = made.snapshot_id;
        plan.current = Vec::new();
        plan.missing = false;
        Ok(())
    }

    /// Writes the difference between the playlist and `want`: removals, then additions
    /// appended, at most 100 per call. Each accepted call is recorded at once, so a pause
    /// keeps what is done and the next refresh continues from there.
    async fn apply(
        &self,
        session: &Session,
        plan: &mut Plan,
        want: &[TrackId],
    ) -> Result<(), SpotifyError> {
        let store = self.store();
        let sub = plan.change.sublist;
        let want_set: HashSet<&TrackId> = want.iter().collect();
        let have_set: HashSet<&TrackId> = plan.current.iter().collect();
        let removes: Vec<TrackId> = plan
            .current
            .iter()
            .filter(|t| !want_set.contains(t))
            .cloned()
            .collect();
        let adds: Vec<TrackId> = want
            .iter()
            .filter(|t| !have_set.contains(t))
            .cloned()
            .collect();
        for chunk in removes.chunks(WRITE_CHUNK) {
            // Removing is the same however often it is sent: the limiter may send it again.
            store.record_pending(sub, PendingOp::Remove, chunk).await?;
            plan.snapshot = session
                .remove_items(&plan.change.playlist_id, chunk, Some(&plan.snapshot))
                .await?;
            plan.change.write_calls += 1;
            let gone: HashSet<&TrackId> = chunk.iter().collect();
            plan.current.retain(|t| !gone.contains(t));
            store
                .set_sublist_tracks(sub, &plan.current, &plan.snapshot)
                .await?;
            plan.change.removed.extend(chunk.iter().cloned());
        }
        for chunk in adds.chunks(WRITE_CHUNK) {
            let mut left = chunk.to_vec();
            for round in 1..=WRITE_ROUNDS {
                store.record_pending(sub, PendingOp::Add, &left).await?;
                plan.change.write_calls += 1;
                match session.add_items(&plan.change.playlist_id, &left).await {
                    Ok(snapshot) => {
                        plan.snapshot = snapshot;
                        plan.current.extend(left.iter().cloned());
                        plan.change.added.append(&mut left);
                    }
                    Err(SpotifyError::Unavailable(why)) => {
                        // The answer was lost: read what landed instead of adding it twice.
                        let (snapshot, now) =
                            read_playlist(session, &plan.change.playlist_id).await?;
                        let now: HashSet<TrackId> = now.into_iter().collect();
                        let (landed, rest): (Vec<TrackId>, Vec<TrackId>) =
                            left.into_iter().partition(|t| now.contains(t));
                        left = rest;
                        plan.current.extend(landed.iter().cloned());
                        plan.change.added.extend(landed);
                        if let Some(snapshot) = snapshot {
                            plan.snapshot = snapshot;
                        }
                        if !left.is_empty() && round == WRITE_ROUNDS {
                            store
                                .set_sublist_tracks(sub, &plan.current, &plan.snapshot)
                                .await?;
                            return Err(SpotifyError::Unavailable(why));
                        }
                    }
                    Err(e) => return Err(e),
                }
                store
                    .set_sublist_tracks(sub, &plan.current, &plan.snapshot)
                    .await?;
                if left.is_empty() {
                    break;
                }
            }
        }
        if removes.is_empty() && adds.is_empty() {
            store
                .set_sublist_tracks(sub, &plan.current, &plan.snapshot)
                .await?;
        }
        Ok(())
    }

    /// The playlists the member owns or follows (at most 10,000).
    pub async fn list_playlists(
        &self,
        member: MemberId,
    ) -> Result<Vec<PlaylistSummary>, SpotifyError> {
        let _guard = self.member_lock(member).await;
        let (session, link) = self.session(member).await?;
        let mut out = Vec::new();
        let mut offset = 0;
        for _ in 0..(10_000 / PAGE) {
            let page = session.my_playlists(offset).await?;
            let n = page.items.len();
            out.extend(page.items.into_iter().map(|p| PlaylistSummary {
                editable: p.owner_id == link.user_id || p.collaborative,
                id: p.id,
                name: p.name,
                total: p.total,
            }));
            if !page.has_next || n == 0 {
                break;
            }
            offset += PAGE;
        }
        Ok(out)
    }

    /// Makes an existing playlist of the member's the playlist of `sublist` (of `layer`):
    /// the bot manages it from now on, and each of its tracks gets a label that keeps it there
    /// (source "imported"): the import is the member's word, and outranks the model's guesses
    /// (see [`Label::adopted`]).
    pub async fn adopt_playlist(
        &self,
        member: MemberId,
        layer: &Layer,
        sublist: SublistId,
        playlist_id: &str,
    ) -> Result<Adopted, SpotifyError> {
        if layer.member != member || layer.sublist(sublist).is_none() {
            return Err(SpotifyError::Protocol(
                "the sublist is not one of this member's".into(),
            ));
        }
        let _guard = self.member_lock(member).await;
        let (session, link) = self.session(member).await?;
        let info = session
            .playlist(playlist_id)
            .await?
            .ok_or(SpotifyError::PlaylistNotFound)?;
        if info.owner_id != link.user_id && !info.collaborative {
            return Err(SpotifyError::PlaylistNotYours);
        }
        let items = session.all_playlist_items(&info.id).await?;
        let tracks: Vec<Track> = items.into_iter().map(|l| l.track).collect();
        let store = self.store();
        store.upsert_tracks(&tracks).await?;
        let ids = dedup(tracks.into_iter().map(|t| t.id));
        let labelled = store
            .adopt_playlist(layer, sublist, &info.id, &info.snapshot_id, &ids)
            .await?;
        Ok(Adopted {
            tracks: ids,
            labelled,
        })
    }
}

/// What adopting a playlist did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adopted {
    /// The playlist's tracks, in order.
    pub tracks: Vec<TrackId>,
    /// How many of them got a new label (the others already named the sublist).
    pub labelled: u32,
}

/// A playlist in the member's library, for choosing a motherlist or a playlist to adopt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistSummary {
    pub id: String,
    pub name: String,
    /// Owned or collaborative: Spotify serves its tracks and sublist may use it.
    pub editable: bool,
    pub total: Option<u32>,
}

/// One sublist's playlist during a refresh.
struct Plan {
    change: PlaylistChange,
    /// What the playlist holds now, in order.
    current: Vec<TrackId>,
    snapshot: String,
    /// The sublist has no playlist (yet, or the member deleted it).
    missing: bool,
}

/// What a playlist holds now, and its snapshot (None if it changed while being read).
async fn read_playlist(
    session: &Session,
    id: &str,
) -> Result<(Option<String>, Vec<TrackId>), SpotifyError> {
    let before = session.playlist(id).await?.map(|i| i.snapshot_id);
    let items = session.all_playlist_items(id).await?;
    let after = session.playlist(id).await?.map(|i| i.snapshot_id);
    let snapshot = before.filter(|b| after.as_ref() == Some(b));
    Ok((snapshot, dedup(items.into_iter().map(|l| l.track.id))))
}

/// The member's playlist whose description carries `marker`: one the bot created while the
/// answer was lost.
async fn find_created(
    session: &Session,
    marker: &str,
) -> Result<Option<PlaylistInfo>, SpotifyError> {
    let mut offset = 0;
    for _ in 0..(10_000 / PAGE) {
        let page = session.my_playlists(offset).await?;
        let n = page.items.len();
        if let Some(found) = page
            .items
            .into_iter()
            .find(|p| p.description.as_deref().is_some_and(|d| d.contains(marker)))
        {
            return Ok(Some(found));
        }
        if !page.has_next || n == 0 {
            break;
        }
        offset += PAGE;
    }
    Ok(None)
}

fn dedup(ids: impl IntoIterator<Item = TrackId>) -> Vec<TrackId> {
    let mut seen = HashSet::new();
    ids.into_iter().filter(|t| seen.insert(t.clone())).collect()
}
