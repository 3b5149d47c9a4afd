//! The services the Discord bot calls: linking, playlists, questions, training, refresh and
//! status, each answering with a sentence the member can read when it can't be done.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use dashmap::mapref::entry::Entry;
use tokio::sync::{mpsc, oneshot};

use super::App;
use super::sorting::SortOutcome;
use crate::discord::{
    Backend, BackendError, Forgotten, Guess, Imported, LayerRefresh, LinkStart, LinkState,
    LinkToConfirm, Linked, MemberStatus, Notifier, PlaylistSummary, PromptRequest, QueuedJob,
    RefreshSummary, TrainJob, TrainResult, TrainTicket, TrainUpdate, Why, WhyBasis, async_trait,
};
use crate::domain::{LayerId, MemberId, SpotifyAccount, TrackId};
use crate::jobs::{CancelOutcome, JobKind, JobStatus, Priority};
use crate::spotify::{LinkError, Notice, SpotifyError};
use crate::store::{JobState, PromptState};

/// How long forgetting a member waits for their running jobs to stop (a training stops
/// between epochs); past it, what still runs can no longer write anything of theirs.
const FORGET_WAIT: Duration = Duration::from_secs(60);

/// The model's evidence for placing `track` at `placed`: up to two tracks the member put in its
/// first sublist (or left in the void) that share its album or artist, or sound most like it.
fn why(
    track: &crate::domain::LikedTrack,
    placed: &crate::domain::Label,
    examples: &crate::learn::Examples,
    labelled: &[(crate::domain::LikedTrack, crate::domain::Label)],
) -> Option<Why> {
    use crate::domain::Label;
    let alike = |i: usize| match (placed, &labelled[i].1) {
        (Label::Void, Label::Void) => true,
        (Label::Sublists(p), Label::Sublists(s)) => p.first().is_some_and(|f| s.contains(f)),
        _ => false,
    };
    let evidence = examples.evidence(track, &alike, 2)?;
    Some(Why {
        basis: match evidence.basis {
            crate::learn::Basis::Album => WhyBasis::Album,
            crate::learn::Basis::Artist => WhyBasis::Artist,
            crate::learn::Basis::Sound => WhyBasis::Sound,
        },
        tracks: evidence
            .tracks
            .iter()
            .map(|&i| labelled[i].0.track.name.clone())
            .collect(),
    })
}

fn refused(e: impl std::fmt::Display) -> BackendError {
    BackendError::Refused(e.to_string())
}

fn spotify_error(e: SpotifyError) -> BackendError {
    match e {
        SpotifyError::Store(s) => BackendError::Internal(s.into()),
        other => refused(other),
    }
}

fn link_error(e: LinkError) -> BackendError {
    match e {
        LinkError::Spotify(s) => spotify_error(s),
        other => refused(other),
    }
}

fn internal(e: impl Into<anyhow::Error>) -> BackendError {
    BackendError::Internal(e.into())
}

fn to_confirm(account: &SpotifyAccount) -> LinkToConfirm {
    LinkToConfirm {
        display_name: account
            .display_name
            .clone()
            .unwrap_or_else(|| account.user_id.clone()),
        user_id: account.user_id.clone(),
    }
}

impl SortOutcome {
    /// The summary the bot renders for a refresh.
    pub fn to_summary(&self) -> RefreshSummary {
        RefreshSummary {
            new_tracks: self.new_tracks,
            layers: self
                .layers
                .iter()
                .map(|l| LayerRefresh {
                    layer: l.layer,
                    layer_name: l.layer_name.clone(),
                    added: l.added.clone(),
                    to_void: l.to_void,
                    waiting: l.waiting.len() as u32,
                })
                .collect(),
        }
    }
}

impl App {
    /// Questions for the tracks a sort left waiting that were never asked about (or whose
    /// prompt was closed since), with the model's guess: each layer's in the active ranking's
    /// order (newest first among equals), the layers taking turns (see [`App::take_turns`]),
    /// layers the sort did not cover included with their tracks that carry no label.
    /// A skipped track is not asked again here; `/label` asks about it.
    pub(crate) async fn prompt_requests_for(
        &self,
        member: MemberId,
        outcome: &SortOutcome,
    ) -> anyhow::Result<Vec<PromptRequest>> {
        let sorted: HashSet<LayerId> = outcome.layers.iter().map(|l| l.layer).collect();
        // What waits in each layer: what the sort left waiting, and in layers it did not
        // cover (a sort of one layer, after an answer) every track with no label at all, so
        // that one layer's answers do not keep the rest unasked.
        let mut waiting: Vec<(LayerId, HashSet<TrackId>)> = outcome
            .layers
            .iter()
            .filter(|l| !l.waiting.is_empty())
            .map(|l| (l.layer, l.waiting.iter().cloned().collect()))
            .collect();
        let mut liked_ids = None;
        for l in self.store().layers(member).await? {
            if sorted.contains(&l.id) || l.sublists.is_empty() {
                continue;
            }
            let placed: HashSet<TrackId> = self
                .store()
                .labels(l.id)
                .await?
                .into_iter()
                .map(|x| x.track)
                .collect();
            let liked = match &mut liked_ids {
                Some(ids) => ids,
                None => liked_ids.insert(self.store().liked_ids(member).await?),
            };
            let open = liked.iter().filter(|t| !placed.contains(*t)).cloned();
            waiting.push((l.id, open.collect()));
        }
        let mut per_layer = Vec::new();
        let mut liked = None;
        for (layer, ids) in waiting {
            let asked = self.store().prompt_states(layer).await?;
            let ids: HashSet<_> = ids
                .into_iter()
                .filter(|t| asked.get(t).is_none_or(|s| *s == PromptState::Closed))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let liked = match &mut liked {
                Some(liked) => liked,
                None => liked.insert(self.store().liked_tracks(member).await?),
            };
            // Newest first among equals.
            let candidates: Vec<_> = liked
                .iter()
                .rev()
                .filter(|t| ids.contains(&t.track.id))
                .cloned()
                .collect();
            let questions = self
                .questions(member, layer, candidates, usize::MAX)
                .await?;
            per_layer.push((layer, questions));
        }
        self.take_turns(member, per_layer).await
    }

    /// One question from each layer in turn, so that a budget of a few prompts reaches every
    /// layer over time: the layer asked about longest ago (or never) first, except that a layer
    /// already holding its share of the budget in unanswered prompts waits until the others
    /// had their turn.
    async fn take_turns(
        &self,
        member: MemberId,
        mut per_layer: Vec<(LayerId, Vec<PromptRequest>)>,
    ) -> anyhow::Result<Vec<PromptRequest>> {
        let turns = self.store().prompt_turns(member).await?;
        let budget = self
            .store()
            .member_settings(member)
            .await?
            .map_or(0, |s| s.prompt_budget);
        let share = budget.div_ceil(per_layer.len().max(1) as u32).max(1);
        per_layer.sort_by_key(|(layer, _)| {
            let (open, last_asked) = turns.get(layer).copied().unwrap_or((0, None));
            (open >= share, last_asked, layer.0)
        });
        Ok(round_robin(
            per_layer
                .into_iter()
                .map(|(_, questions)| questions)
                .collect(),
        ))
    }

    /// After a sort: closes the prompts it settled, asks about what waits, and announces what
    /// changed (when `announce`). Telling the member never fails the work that was done: a
    /// member who can't be reached is logged. Returns whether every step went through.
    pub(crate) async fn tell_member(
        &self,
        member: MemberId,
        outcome: &SortOutcome,
        announce: bool,
    ) -> bool {
        let Some(notifier) = self.notifier() else {
            return true;
        };
        let mut told = true;
        if let Err(e) = notifier.close_settled_prompts(member).await {
            told = false;
            tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not close settled prompts");
        }
        match self.prompt_requests_for(member, outcome).await {
            Ok(waiting) if waiting.is_empty() => {}
            Ok(waiting) => {
                if let Err(e) = notifier.post_prompts(member, waiting).await {
                    told = false;
                    tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not post prompts");
                }
            }
            Err(e) => {
                told = false;
                tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not choose prompts");
            }
        }
        if announce
            && outcome.changed()
            && let Err(e) = notifier
                .announce_refresh(member, &outcome.to_summary())
                .await
        {
            told = false;
            tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not announce a refresh");
        }
        told
    }

    /// Closes the member's settled prompts (after an import or a refresh); failures are logged.
    pub(crate) async fn close_settled_prompts(&self, member: MemberId) {
        if let Some(notifier) = self.notifier()
            && let Err(e) = notifier.close_settled_prompts(member).await
        {
            tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not close settled prompts");
        }
    }

    /// Up to `n` questions about `candidates` in one layer, in the active ranking's order.
    async fn questions(
        &self,
        member: MemberId,
        layer: LayerId,
        candidates: Vec<crate::domain::LikedTrack>,
        n: usize,
    ) -> anyhow::Result<Vec<PromptRequest>> {
        let model = self.load_model(layer).await?;
        let labelled = match model {
            Some(_) => self.labelled_tracks(member, layer).await?,
            None => Vec::new(),
        };
        let (order, guesses) = tokio::task::spawn_blocking(move || {
            let order = crate::learn::rank_questions(model.as_ref(), &candidates, n);
            let chosen: Vec<_> = order.iter().map(|i| candidates[*i].clone()).collect();
            let guesses = model.map(|m| {
                let tracks: Vec<_> = labelled.iter().map(|(t, _)| t.clone()).collect();
                let examples = crate::learn::Examples::new(&tracks);
                m.predict(&chosen)
                    .into_iter()
                    .zip(&chosen)
                    .map(|(p, t)| Guess {
                        why: why(t, &p.label, &examples, &labelled),
                        label: p.label,
                        confidence: p.confidence,
                    })
                    .collect::<Vec<_>>()
            });
            (chosen, guesses)
        })
        .await?;
        Ok(order
            .into_iter()
            .enumerate()
            .map(|(i, t)| PromptRequest {
                member,
                layer,
                track: t.track,
                guess: guesses.as_ref().and_then(|g| g.get(i)).cloned(),
            })
            .collect())
    }

    /// The member's liked tracks a person labelled in a layer, with their labels.
    async fn labelled_tracks(
        &self,
        member: MemberId,
        layer: LayerId,
    ) -> anyhow::Result<Vec<(crate::domain::LikedTrack, crate::domain::Label)>> {
        let labels: std::collections::HashMap<_, _> = self
            .store()
            .labels(layer)
            .await?
            .into_iter()
            .filter(|l| l.source.is_ground_truth())
            .map(|l| (l.track, l.label))
            .collect();
        Ok(self
            .store()
            .liked_tracks(member)
            .await?
            .into_iter()
            .filter_map(|t| labels.get(&t.track.id).cloned().map(|l| (t, l)))
            .collect())
    }

    /// Tracks no person labelled yet in a layer that no prompt asks about now: never asked,
    /// or asked by a prompt since closed, or (when `skipped_too`) skipped by the member.
    async fn unlabelled(
        &self,
        member: MemberId,
        layer: LayerId,
        skipped_too: bool,
    ) -> anyhow::Result<Vec<crate::domain::LikedTrack>> {
        let labelled: HashSet<_> = self
            .store()
            .labels(layer)
            .await?
            .into_iter()
            .filter(|l| l.source.is_ground_truth())
            .map(|l| l.track)
            .collect();
        let asked = self.store().prompt_states(layer).await?;
        let askable = |t: &crate::domain::TrackId| match asked.get(t) {
            None | Some(PromptState::Closed) => true,
            Some(PromptState::Skipped) => skipped_too,
            Some(_) => false,
        };
        Ok(self
            .store()
            .liked_tracks(member)
            .await?
            .into_iter()
            .filter(|t| !labelled.contains(&t.track.id) && askable(&t.track.id))
            .collect())
    }

    /// Posts questions for every layer's unlabelled tracks, within the member's budget; a
    /// failure to reach the member is logged, not the job's failure.
    pub(crate) async fn post_waiting_prompts(&self, member: MemberId) -> anyhow::Result<usize> {
        let Some(notifier) = self.notifier() else {
            return Ok(0);
        };
        let requests = self.pick(member, None, 25, false).await?;
        match notifier.post_prompts(member, requests).await {
            Ok(out) => Ok(out.posted.len()),
            // A member who can't be reached now is asked at a later sync.
            Err(e) => {
                tracing::warn!(member = member.0, error = %format!("{e:#}"), "could not post prompts");
                Ok(0)
            }
        }
    }

    /// Up to `count` questions, the layers taking turns; skipped tracks only when the member
    /// asked (`/label`).
    async fn pick(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
        count: u32,
        skipped_too: bool,
    ) -> anyhow::Result<Vec<PromptRequest>> {
        let layers: Vec<_> = self
            .store()
            .layers(member)
            .await?
            .into_iter()
            .filter(|l| !l.sublists.is_empty() && layer.is_none_or(|id| id == l.id))
            .collect();
        let mut per_layer = Vec::new();
        for l in &layers {
            let candidates = self.unlabelled(member, l.id, skipped_too).await?;
            let questions = self
                .questions(member, l.id, candidates, count as usize)
                .await?;
            per_layer.push((l.id, questions));
        }
        let mut out = self.take_turns(member, per_layer).await?;
        out.truncate(count as usize);
        Ok(out)
    }

    /// Runs work for the member outside the queue (an inline refresh, the first sync after a
    /// link, an import) so that forgetting them stops it at its next await.
    async fn inline<T>(
        &self,
        member: MemberId,
        work: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let stop = self.inner.inline_work.entry(member).or_default().clone();
        tokio::select! {
            result = work => result,
            () = stop.cancelled() => Err(refused("Stopped: you asked me to forget you.")),
        }
    }

    /// Delivers what Spotify work tells members (a link dying within a week, a quota pause)
    /// through the bot, for as long as the app runs.
    pub(crate) fn deliver_notices(&self, notifier: Notifier) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.spotify().set_notice_sender(tx);
        runtime.spawn(async move {
            while let Some(notice) = rx.recv().await {
                match notice {
                    Notice::LinkExpiring { member, expires_at } => {
                        if let Err(e) = notifier.warn_link_expiry(member, expires_at).await {
                            tracing::warn!(member = member.0, error = %e, "could not warn about a link's expiry");
                        }
                    }
                    Notice::QuotaPaused { members, until } => {
                        for member in members {
                            if let Err(e) = notifier.announce_quota_pause(&[member], until).await {
                                tracing::warn!(member = member.0, error = %e, "could not announce a quota pause");
                            }
                        }
                    }
                }
            }
        });
    }

    /// The first full sync after a link, and what to tell the member.
    async fn after_link(&self, member: MemberId, account: &SpotifyAccount) -> Linked {
        let display_name = account
            .display_name
            .clone()
            .unwrap_or_else(|| account.user_id.clone());
        if let Err(e) = self.spotify().sync_motherlist(member, &|_| {}).await {
            tracing::warn!(member = member.0, error = %e, "first sync after linking failed");
        }
        // Tracks unliked while the account was not linked leave their questions now.
        self.close_settled_prompts(member).await;
        let liked_songs = self
            .store()
            .liked_ids(member)
            .await
            .map_or(0, |ids| ids.len() as u64);
        Linked {
            display_name,
            liked_songs,
        }
    }

    /// Asks the member whose consent arrived through the web callback, in their waiting
    /// `/link` message, to confirm the account.
    pub async fn link_completed(&self, member: MemberId, account: SpotifyAccount) {
        if let Some((_, tx)) = self.inner.link_waiters.remove(&member) {
            let _ = tx.send(Ok(to_confirm(&account)));
        }
    }

    /// Follows training jobs: each one's updates as (its index in `jobs`, the update), until
    /// every one has ended.
    fn follow_jobs(&self, jobs: Vec<crate::store::JobId>) -> mpsc::Receiver<(usize, TrainUpdate)> {
        let (tx, rx) = mpsc::channel(16 * jobs.len().max(1));
        for (i, job) in jobs.into_iter().enumerate() {
            let app = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move { app.train_updates(i, job, tx).await });
        }
        rx
    }

    async fn train_updates(
        &self,
        i: usize,
        job: crate::store::JobId,
        tx: mpsc::Sender<(usize, TrainUpdate)>,
    ) {
        let mut rx = match self.queue().subscribe(job).await {
            Ok(Some(rx)) => rx,
            Ok(None) => {
                let gone = TrainUpdate::Failed("That training is no longer in the queue.".into());
                let _ = tx.send((i, gone)).await;
                return;
            }
            Err(e) => {
                tracing::warn!(job = job.0, error = %e, "could not follow a training");
                return;
            }
        };
        let mut status = rx.borrow_and_update().clone();
        loop {
            let update = self.train_update(job, status).await;
            let last = update.is_final();
            if tx.send((i, update)).await.is_err() || last {
                return;
            }
            status = match self.next_status(job, &mut rx).await {
                Some(next) => next,
                None => return,
            };
        }
    }

    /// The job's next status: the next change its waiters hear of, or the final state the
    /// store holds when this process was not told (another process ran the job after a
    /// restart). None when neither will come.
    async fn next_status(
        &self,
        job: crate::store::JobId,
        rx: &mut tokio::sync::watch::Receiver<JobStatus>,
    ) -> Option<JobStatus> {
        const RECHECK: std::time::Duration = std::time::Duration::from_secs(2);
        loop {
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_ok() {
                        return Some(rx.borrow_and_update().clone());
                    }
                    // No one will say more: the store has the last word.
                    return match self.queue().stored_status(job).await {
                        Ok(Some(stored)) if stored.is_final() => Some(stored),
                        _ => None,
                    };
                }
                () = tokio::time::sleep(RECHECK) => {
                    if let Ok(Some(stored)) = self.queue().stored_status(job).await
                        && stored.is_final()
                    {
                        return Some(stored);
                    }
                }
            }
        }
    }

    /// What the member reads about a job's status.
    async fn train_update(&self, job: crate::store::JobId, status: JobStatus) -> TrainUpdate {
        match status {
            JobStatus::Queued => match self.queue().position(job).await {
                Ok(Some(p)) => TrainUpdate::Queued {
                    position: p as u32 + 1,
                },
                _ => TrainUpdate::Queued { position: 1 },
            },
            JobStatus::Running { progress, .. } => TrainUpdate::Running {
                epoch: progress.map_or(0, |p| p.epoch),
                epochs: progress.map_or(0, |p| p.epochs),
            },
            JobStatus::Done { result } => {
                let trained: Option<super::sorting::Trained> = serde_json::from_value(result).ok();
                TrainUpdate::Done(match trained {
                    Some(t) => TrainResult {
                        accuracy: t.accuracy.unwrap_or(0.0),
                        previous_accuracy: t.previous_accuracy,
                        summary: format!(
                            "Learned from {} labelled tracks on {}; your sublists are being re-sorted with it.",
                            t.labels, t.device
                        ),
                    },
                    None => TrainResult {
                        accuracy: 0.0,
                        previous_accuracy: None,
                        summary: "Training finished.".into(),
                    },
                })
            }
            JobStatus::Failed { error } => {
                let refused = matches!(self.store().job(job).await, Ok(Some(row)) if row.refused);
                TrainUpdate::Failed(if refused {
                    error
                } else {
                    crate::discord::log_incident(&anyhow::anyhow!(error), "training")
                })
            }
            JobStatus::Cancelled => TrainUpdate::Cancelled,
        }
    }
}

/// Interleaves the lists: the first of each, then the second of each, and so on.
fn round_robin<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in &mut iters {
            out.extend(it.next());
        }
        if out.len() == before {
            return out;
        }
    }
}

#[async_trait]
impl Backend for App {
    async fn begin_link(&self, member: MemberId) -> Result<LinkStart, BackendError> {
        let start = self
            .spotify()
            .start_link(member)
            .await
            .map_err(link_error)?;
        let (tx, rx) = oneshot::channel();
        self.inner.link_waiters.insert(member, tx);
        Ok(LinkStart {
            consent_url: start.url,
            completed: rx,
        })
    }

    async fn complete_link(
        &self,
        member: MemberId,
        pasted_url: &str,
    ) -> Result<LinkToConfirm, BackendError> {
        let account = self
            .spotify()
            .complete_link_paste(member, pasted_url)
            .await
            .map_err(link_error)?;
        let pending = to_confirm(&account);
        if let Some((_, tx)) = self.inner.link_waiters.remove(&member) {
            let _ = tx.send(Ok(pending.clone()));
        }
        Ok(pending)
    }

    async fn confirm_link(&self, member: MemberId) -> Result<Linked, BackendError> {
        self.inline(member, async {
            let account = self
                .spotify()
                .confirm_link(member)
                .await
                .map_err(link_error)?;
            Ok(self.after_link(member, &account).await)
        })
        .await
    }

    async fn cancel_link(&self, member: MemberId) -> Result<(), BackendError> {
        match self
            .spotify()
            .cancel_link(member)
            .await
            .map_err(spotify_error)?
        {
            true => Ok(()),
            false => Err(refused(LinkError::NothingToConfirm)),
        }
    }

    async fn unlink(&self, member: MemberId) -> Result<(), BackendError> {
        match self.spotify().unlink(member).await.map_err(spotify_error)? {
            true => Ok(()),
            false => Err(refused("You have no linked Spotify account.")),
        }
    }

    async fn forget_member(&self, member: MemberId) -> Result<Forgotten, BackendError> {
        // Work outside the queue stops at its next await; queued jobs go, and running ones
        // are asked to stop and given a moment to.
        if let Some((_, stop)) = self.inner.inline_work.remove(&member) {
            stop.cancel();
        }
        self.inner.link_waiters.remove(&member);
        let mut running = Vec::new();
        for job in self.store().live_jobs(member).await.map_err(internal)? {
            if let Ok(CancelOutcome::Requested) = self.queue().cancel(job.id).await {
                running.push(job.id);
            }
        }
        let stopped = async {
            for id in running {
                let _ = self.queue().wait(id).await;
            }
        };
        if tokio::time::timeout(FORGET_WAIT, stopped).await.is_err() {
            tracing::warn!(
                member = member.0,
                "a job still runs for a member being forgotten; it can no longer record anything of theirs"
            );
        }
        // Spotify work still under way for them (a link being completed) ends first, and none
        // starts until their rows are gone; after that it finds no link and no member.
        let _held = self.spotify().hold_member(member).await;
        let messages = self
            .store()
            .forget_member(member)
            .await
            .map_err(internal)?
            .unwrap_or_default();
        self.inner.last_refresh.remove(&member);
        tracing::info!(
            member = member.0,
            messages = messages.len(),
            "member forgotten"
        );
        Ok(Forgotten { messages })
    }

    async fn playlists(&self, member: MemberId) -> Result<Vec<PlaylistSummary>, BackendError> {
        Ok(self
            .spotify()
            .list_playlists(member)
            .await
            .map_err(spotify_error)?
            .into_iter()
            .filter(|p| p.editable)
            .map(|p| PlaylistSummary {
                id: p.id,
                name: p.name,
                tracks: p.total.unwrap_or(0),
            })
            .collect())
    }

    async fn import_playlist(
        &self,
        member: MemberId,
        layer: LayerId,
        playlist_id: &str,
        name: &str,
        emoji: &str,
    ) -> Result<Imported, BackendError> {
        let Some(layer) = self.member_layer(member, layer).await.map_err(internal)? else {
            return Err(refused("That layer doesn't exist."));
        };
        let sublist = self
            .store()
            .add_sublist(layer.id, name, emoji)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Domain(d) => refused(d),
                other => internal(other),
            })?;
        let layer = self
            .store()
            .layer(layer.id)
            .await
            .map_err(internal)?
            .ok_or_else(|| refused("That layer doesn't exist."))?;
        let adopted = self
            .inline(member, async {
                self.spotify()
                    .adopt_playlist(member, &layer, sublist.id, playlist_id)
                    .await
                    .map_err(spotify_error)
            })
            .await;
        match adopted {
            Ok(adopted) => {
                // The imported labels answer any open prompt about those tracks.
                self.close_settled_prompts(member).await;
                Ok(Imported {
                    sublist: sublist.id,
                    labelled: adopted.labelled,
                })
            }
            Err(e) => {
                // Nothing half-done: the new sublist goes again.
                let _ = self.store().remove_sublist(sublist.id).await;
                Err(e)
            }
        }
    }

    async fn pick_prompts(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
        count: u32,
    ) -> Result<Vec<PromptRequest>, BackendError> {
        self.pick(member, layer, count, true)
            .await
            .map_err(internal)
    }

    async fn queue_training(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
    ) -> Result<TrainTicket, BackendError> {
        let layers: Vec<_> = self
            .store()
            .layers(member)
            .await
            .map_err(internal)?
            .into_iter()
            .filter(|l| layer.is_none_or(|id| id == l.id))
            .collect();
        if layers.is_empty() {
            return Err(refused(
                "You have no layer to train yet: make one with /layers create.",
            ));
        }
        let mut jobs = Vec::new();
        for l in &layers {
            let queued = self
                .queue()
                .enqueue(
                    JobKind::Train {
                        member,
                        layer: l.id,
                    },
                    Priority::Manual,
                )
                .await
                .map_err(internal)?;
            let position = self
                .queue()
                .position(queued.id)
                .await
                .map_err(internal)?
                // Not queued any more: it already started.
                .map_or(1, |p| p as u32 + 1);
            jobs.push(TrainJob {
                job: crate::discord::JobId(queued.id.0),
                layer_name: l.name.clone(),
                position,
            });
        }
        let ids = jobs.iter().map(|j| crate::store::JobId(j.job.0)).collect();
        Ok(TrainTicket {
            jobs,
            progress: self.follow_jobs(ids),
        })
    }

    async fn follow_training(
        &self,
        member: MemberId,
        jobs: &[crate::discord::JobId],
    ) -> Result<mpsc::Receiver<(usize, TrainUpdate)>, BackendError> {
        let mut ids = Vec::new();
        for job in jobs {
            let id = crate::store::JobId(job.0);
            match self.store().job(id).await.map_err(internal)? {
                Some(row) if row.member != Some(member) => {
                    return Err(refused("That training is not yours."));
                }
                _ => ids.push(id),
            }
        }
        Ok(self.follow_jobs(ids))
    }

    async fn cancel_training(&self, member: MemberId) -> Result<u32, BackendError> {
        let mut n = 0;
        for job in self.store().live_jobs(member).await.map_err(internal)? {
            if job.kind == "train" {
                self.queue().cancel(job.id).await.map_err(internal)?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn refresh(&self, member: MemberId) -> Result<RefreshSummary, BackendError> {
        let now = self.store().now();
        let cooldown = chrono::Duration::from_std(self.inner.pipeline.refresh_cooldown)
            .unwrap_or(chrono::Duration::zero());
        match self.inner.last_refresh.entry(member) {
            Entry::Occupied(mut last) => {
                let since = now - *last.get();
                if since < cooldown {
                    let wait = (cooldown - since).num_seconds().max(1);
                    return Err(refused(format!(
                        "You refreshed a moment ago; you can refresh again in {wait} s."
                    )));
                }
                last.insert(now);
            }
            Entry::Vacant(v) => {
                v.insert(now);
            }
        }
        self.inline(member, async {
            let report = self
                .spotify()
                .sync_motherlist(member, &|_| {})
                .await
                .map_err(spotify_error)?;
            if let Err(e) = self.spotify().fill_audio(400).await {
                tracing::warn!(error = %e, "audio descriptors unavailable");
            }
            let outcome = self
                .sort_member_quietly(member, report.new_tracks.len() as u32)
                .await
                .map_err(|e| match e.downcast::<SpotifyError>() {
                    Ok(s) => spotify_error(s),
                    Err(e) => internal(e),
                })?;
            self.close_settled_prompts(member).await;
            Ok(outcome.to_summary())
        })
        .await
    }

    async fn status(&self, member: MemberId) -> Result<MemberStatus, BackendError> {
        let link = match self
            .spotify()
            .link_info(member)
            .await
            .map_err(spotify_error)?
        {
            None => LinkState::NotLinked,
            Some(l) if l.revoked => LinkState::Revoked,
            Some(l) if !l.active => LinkState::Expired,
            Some(l) => LinkState::Linked {
                display_name: l
                    .account
                    .display_name
                    .clone()
                    .unwrap_or_else(|| l.account.user_id.clone()),
                expires_at: l.refresh_expires_at,
            },
        };
        let sync = self.store().sync_state(member).await.map_err(internal)?;
        let liked_songs = self
            .store()
            .liked_ids(member)
            .await
            .map_err(internal)?
            .len() as u64;
        let mut jobs = Vec::new();
        for row in self.store().live_jobs(member).await.map_err(internal)? {
            let what = serde_json::from_str::<JobKind>(&row.payload)
                .map(|k| super::handler::describe(&k).to_string())
                .unwrap_or_else(|_| row.kind.clone());
            let position = match row.state {
                JobState::Queued => self
                    .queue()
                    .position(row.id)
                    .await
                    .map_err(internal)?
                    .map(|p| p as u32 + 1),
                _ => None,
            };
            jobs.push(QueuedJob {
                job: crate::discord::JobId(row.id.0),
                what,
                position,
            });
        }
        let quota_paused_until = self
            .spotify()
            .paused_until(member)
            .await
            .map_err(spotify_error)?;
        Ok(MemberStatus {
            link,
            last_sync: sync.last_sync_at,
            liked_songs,
            jobs,
            quota_paused_until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{round_robin, why};
    use crate::discord::render::why_text;
    use crate::domain::{Label, LayerKind, SublistId};
    use crate::learn::{Compute, TrainConfig, train};
    use crate::tools::demo::{SAMPLE_CSV, demo_layers, layer_truth};
    use crate::tools::eval::load_playlists;

    /// A model trained on the demo sample guesses where unlabelled tracks go; the explanation
    /// shown with each guess names tracks the member really put in the guessed sublist.
    #[test]
    fn the_explanation_names_labelled_tracks_of_the_guessed_sublist() {
        let data = load_playlists(SAMPLE_CSV.as_bytes()).unwrap();
        let layer = demo_layers()
            .into_iter()
            .find(|l| l.kind == LayerKind::MutualComplete)
            .unwrap();
        let (idx, truth) = layer_truth(&data, &layer).unwrap();
        let classes: Vec<SublistId> = (0..layer.sublists.len() as i64).map(SublistId).collect();
        let (lab, rest): (Vec<usize>, Vec<usize>) = (0..idx.len()).partition(|i| i % 4 == 0);
        let tracks =
            |is: &[usize]| -> Vec<_> { is.iter().map(|&i| data.tracks[idx[i]].clone()).collect() };
        let labels: Vec<Vec<usize>> = lab.iter().map(|&i| truth[i].clone()).collect();
        let model = train(
            &Compute::cpu(),
            layer.kind,
            &classes,
            &tracks(&lab),
            &labels,
            &TrainConfig::default(),
            &mut |_| {},
        )
        .unwrap();
        let labelled: Vec<_> = tracks(&lab)
            .into_iter()
            .zip(&labels)
            .map(|(t, l)| (t, Label::one(classes[l[0]])))
            .collect();
        let unseen = tracks(&rest[..20]);
        let examples = crate::learn::Examples::new(&tracks(&lab));
        let mut explained = 0;
        for (t, p) in unseen.iter().zip(model.predict(&unseen)) {
            let Some(w) = why(t, &p.label, &examples, &labelled) else {
                continue;
            };
            let text = why_text(&w, false).unwrap();
            assert!(!w.tracks.is_empty() && w.tracks.len() <= 2);
            for name in &w.tracks {
                let plain = name.chars().count() <= 60
                    && !name.contains(['*', '_', '~', '`', '|', '\\', '>']);
                assert!(
                    !plain || text.contains(name.as_str()),
                    "{text} lacks {name}"
                );
                assert!(
                    labelled
                        .iter()
                        .any(|(l, lab)| &l.track.name == name && *lab == p.label),
                    "{name} is not a track labelled {:?}",
                    p.label
                );
            }
            explained += 1;
        }
        assert_eq!(
            explained, 20,
            "every guess in a layer with labels has evidence"
        );
    }

    #[test]
    fn round_robin_takes_one_from_each_list_in_turn() {
        let lists = vec![vec![1, 2, 3, 4], vec![10], vec![20, 21]];
        assert_eq!(round_robin(lists), vec![1, 10, 20, 2, 21, 3, 4]);
        assert!(round_robin::<u8>(Vec::new()).is_empty());
    }
}
