//! Following the motherlist: incremental Liked Songs sync (newest page on, until a stored
//! track), a resumable first read, a bounded unlike-detection pass, and playlist motherlists
//! followed through their `snapshot_id`.

use rspotify::model::{LibraryId, TrackId as RsTrackId};

use super::api::{CONTAINS_CHUNK, PAGE, Session};
use super::{Spotify, SpotifyError};
use crate::domain::{MemberId, Motherlist, TrackId};
use crate::store::SyncState;

/// Where a sync stands, for a progress message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    /// Tracks read so far in this sync.
    pub read: u32,
    /// How many the motherlist holds, when Spotify said.
    pub total: Option<u32>,
}

/// What a sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Tracks that entered the motherlist, newest first as Spotify listed them.
    pub new_tracks: Vec<TrackId>,
    /// Tracks that left it (unliked, or gone from the playlist).
    pub removed: Vec<TrackId>,
    /// HTTP requests made to Spotify (retries included).
    pub requests: u32,
    /// The first full read is complete.
    pub initial_done: bool,
}

/// The most pages one sync reads (Liked Songs beyond 50 x 2,000 = 100,000 tracks continue next
/// time).
const MAX_PAGES_PER_SYNC: u32 = 2_000;

impl Spotify {
    /// Brings the member's motherlist up to date. `progress` is called after each page.
    pub async fn sync_motherlist(
        &self,
        member: MemberId,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
    ) -> Result<SyncReport, SpotifyError> {
        let _guard = self.member_lock(member).await;
        let (session, _) = self.session(member).await?;
        let mut report = SyncReport::default();
        let store = self.store();
        let motherlist = store
            .member_settings(member)
            .await?
            .map(|s| s.motherlist)
            .unwrap_or_default();
        let source = match &motherlist {
            Motherlist::LikedSongs => "liked".to_string(),
            Motherlist::Playlist(id) => id.clone(),
        };
        let mut state = store.sync_state(member).await?;
        if state.source.as_deref() != Some(source.as_str()) {
            // The motherlist changed (or was never synced): start over from it.
            store.reset_motherlist(member).await?;
            state = SyncState {
                source: Some(source),
                ..SyncState::default()
            };
        }
        let result = match motherlist {
            Motherlist::LikedSongs => {
                self.sync_liked(member, &session, state, progress, &mut report)
                    .await
            }
            Motherlist::Playlist(id) => {
                self.sync_playlist(member, &session, &id, state, progress, &mut report)
                    .await
            }
        };
        report.requests = session.requests();
        result.map(|()| report)
    }

    async fn sync_liked(
        &self,
        member: MemberId,
        session: &Session,
        mut state: SyncState,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
        report: &mut SyncReport,
    ) -> Result<(), SpotifyError> {
        let store = self.store();
        let mut read = 0u32;
        if !state.initial_done {
            // First read (or its resumption): every page, saving the offset after each.
            let mut offset = state.resume_offset;
            for _ in 0..MAX_PAGES_PER_SYNC {
                let page = session.saved_tracks(offset).await?;
                let now = self.store().now();
                let n = page.items.len() as u32;
                let done = !page.has_next || n == 0;
                offset += PAGE;
                state.resume_offset = if done { 0 } else { offset };
                if done {
                    state.initial_done = true;
                    state.last_full_at = Some(now);
                }
                state.last_sync_at = Some(now);
                let new = store
                    .save_liked_page(member, &page.items, now, &state)
                    .await?;
                report.new_tracks.extend(new);
                progress(SyncProgress {
                    read: offset.min(page.total.unwrap_or(u32::MAX)),
                    total: page.total,
                });
                if done {
                    break;
                }
            }
            report.initial_done = state.initial_done;
            return Ok(());
        }
        report.initial_done = true;

        // Incremental: from the newest page until a page holds a track already stored. Order
        // is not trusted: every new id on the pages read is taken, wherever it stands.
        let mut offset = 0;
        for _ in 0..MAX_PAGES_PER_SYNC {
            let page = session.saved_tracks(offset).await?;
            let ids: Vec<TrackId> = page.items.iter().map(|l| l.track.id.clone()).collect();
            let known = store.known_liked(member, &ids).await?;
            let now = self.store().now();
            state.last_sync_at = Some(now);
            let new = store
                .save_liked_page(member, &page.items, now, &state)
                .await?;
            read += page.items.len() as u32;
            report.new_tracks.extend(new);
            progress(SyncProgress {
                read,
                total: page.total,
            });
            if !known.is_empty() || !page.has_next || page.items.is_empty() {
                break;
            }
            offset += PAGE;
        }

        self.full_pass_step(member, session, &mut state, report)
            .await
    }

    /// Continues the unlike-detection pass by at most `full_pass_pages` pages, if one is due.
    /// When the pass reaches the end, tracks it did not see are checked with
    /// `/me/library/contains` and the ones no longer liked leave the motherlist.
    async fn full_pass_step(
        &self,
        member: MemberId,
        session: &Session,
        state: &mut SyncState,
        report: &mut SyncReport,
    ) -> Result<(), SpotifyError> {
        let budget = self.inner.config.full_pass_pages;
        let now = self.store().now();
        let due = state.full_pass_started_at.is_some()
            || state
                .last_full_at
                .is_none_or(|t| now - t >= self.full_pass_every());
        if budget == 0 || !due {
            return Ok(());
        }
        let store = self.store();
        let started = *state.full_pass_started_at.get_or_insert(now);
        let mut offset = state.full_pass_offset;
        let mut finished = false;
        for _ in 0..budget {
            let page = session.saved_tracks(offset).await?;
            let n = page.items.len() as u32;
            finished = !page.has_next || n == 0;
            offset = if finished { 0 } else { offset + PAGE };
            state.full_pass_offset = offset;
            let seen = self.store().now();
            let new = store
                .save_liked_page(member, &page.items, seen, state)
                .await?;
            report.new_tracks.extend(new);
            if finished {
                break;
            }
        }
        if !finished {
            return Ok(());
        }
        let unseen = store.liked_unseen_since(member, started).await?;
        let mut gone = Vec::new();
        let mut still = Vec::new();
        for chunk in unseen.chunks(CONTAINS_CHUNK) {
            let ids: Vec<RsTrackId<'static>> = chunk
                .iter()
                .filter_map(|t| RsTrackId::from_id(t.as_str().to_string()).ok())
                .collect();
            let lib: Vec<LibraryId<'_>> =
                ids.iter().map(|i| LibraryId::Track(i.as_ref())).collect();
            let answer = session.library_contains(&lib).await?;
            for (t, liked) in chunk.iter().zip(answer) {
                if liked {
                    still.push(t.clone())
                } else {
                    gone.push(t.clone())
                }
            }
        }
        let now = self.store().now();
        store.touch_liked(member, &still, now).await?;
        store.remove_liked(member, &gone).await?;
        report.removed.extend(gone);
        state.full_pass_started_at = None;
        state.full_pass_offset = 0;
        state.last_full_at = Some(now);
        store.put_sync_state(member, state).await?;
        Ok(())
    }

    async fn sync_playlist(
        &self,
        member: MemberId,
        session: &Session,
        playlist: &str,
        mut state: SyncState,
        progress: &(dyn Fn(SyncProgress) + Send + Sync),
        report: &mut SyncReport,
    ) -> Result<(), SpotifyError> {
        let store = self.store();
        let info = session
            .playlist(playlist)
            .await?
            .ok_or(SpotifyError::PlaylistNotFound)?;
        report.initial_done = true;
        if state.initial_done && state.snapshot_id.as_deref() == Some(info.snapshot_id.as_str()) {
            return Ok(());
        }
        let started = self.store().now();
        let items = session.all_playlist_items(playlist).await?;
        progress(SyncProgress {
            read: items.len() as u32,
            total: info.total,
        });
        state.snapshot_id = Some(info.snapshot_id);
        state.initial_done = true;
        state.last_sync_at = Some(started);
        state.last_full_at = Some(started);
        let new = store
            .save_liked_page(member, &items, started, &state)
            .await?;
        report.new_tracks.extend(new);
        let present: std::collections::HashSet<&TrackId> =
            items.iter().map(|l| &l.track.id).collect();
        let gone: Vec<TrackId> = store
            .liked_ids(member)
            .await?
            .into_iter()
            .filter(|t| !present.contains(t))
            .collect();
        store.remove_liked(member, &gone).await?;
        report.removed.extend(gone);
        Ok(())
    }

    /// Changes the member's motherlist. A playlist must be one they own or collaborate on.
    pub async fn set_motherlist(
        &self,
        member: MemberId,
        motherlist: Motherlist,
    ) -> Result<(), SpotifyError> {
        let _guard = self.member_lock(member).await;
        if let Motherlist::Playlist(id) = &motherlist {
            let (session, link) = self.session(member).await?;
            let info = session
                .playlist(id)
                .await?
                .ok_or(SpotifyError::PlaylistNotFound)?;
            if info.owner_id != link.user_id && !info.collaborative {
                return Err(SpotifyError::PlaylistNotYours);
            }
        }
        let store = self.store();
        store.ensure_member(member).await?;
        let Some(mut settings) = store.member_settings(member).await? else {
            return Err(SpotifyError::NotLinked);
        };
        settings.motherlist = motherlist;
        // The next sync sees the new motherlist and starts over from it.
        Ok(store.set_member_settings(member, &settings).await?)
    }
}
