//! What the bot needs from the rest of sublist that lives outside Discord and the store:
//! linking Spotify, playlists, choosing tracks to ask about, training, syncing and status.
//! `app` implements [`Backend`]; the bot holds it as `Arc<dyn Backend>`.

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

pub use crate::domain::{Guess, Why, WhyBasis};
use crate::domain::{LayerId, MemberId, SublistId, Track};

pub use poise::serenity_prelude::async_trait;

/// Why a backend call did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The member asked for something that cannot be done now; the sentence says why and is
    /// shown to them as it is (e.g. "You haven't linked Spotify yet: use /link.").
    #[error("{0}")]
    Refused(String),
    /// Something broke that the member cannot fix; it is logged with an incident id.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl BackendError {
    pub fn refused(sentence: impl Into<String>) -> BackendError {
        BackendError::Refused(sentence.into())
    }
}

/// The start of a Spotify link.
#[derive(Debug)]
pub struct LinkStart {
    /// Spotify's consent page for this member, with a fresh `state`.
    pub consent_url: String,
    /// Resolves when Spotify sent back the account the consent page was used with (by the web
    /// callback or a pasted address), which then waits for the member's confirmation, or with
    /// the reason it failed. Dropped without a value when the attempt expires.
    pub completed: oneshot::Receiver<Result<LinkToConfirm, BackendError>>,
}

/// A Spotify account someone authorised through the member's `/link`, waiting for the member
/// to confirm that it is theirs before it is bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkToConfirm {
    pub display_name: String,
    /// The Spotify user id (shown with the name: names need not be unique).
    pub user_id: String,
}

/// What forgetting a member leaves for the bot to clean up in Discord.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forgotten {
    /// (channel, message) of every prompt and announcement the bot posted for them.
    pub messages: Vec<(u64, u64)>,
}

/// A completed link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linked {
    pub display_name: String,
    /// How many tracks the motherlist holds after the first sync page(s).
    pub liked_songs: u64,
}

/// One of the member's Spotify playlists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlaylistSummary {
    pub id: String,
    pub name: String,
    pub tracks: u32,
}

/// The result of adopting a playlist as a sublist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub sublist: SublistId,
    /// Tracks labelled into the sublist from the playlist.
    pub labelled: u32,
}

/// A question to post: where does `track` go in `layer`?
#[derive(Clone, Debug, PartialEq)]
pub struct PromptRequest {
    pub member: MemberId,
    pub layer: LayerId,
    pub track: Track,
    pub guess: Option<Guess>,
}

/// The id of a job in the shared queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobId(pub i64);

/// Training that was queued: one job per layer.
#[derive(Debug)]
pub struct TrainTicket {
    /// The jobs, one per layer, in the member's layer order.
    pub jobs: Vec<TrainJob>,
    /// Each job's progress as (its index in `jobs`, the update), until every job has ended;
    /// the channel closes after the last.
    pub progress: mpsc::Receiver<(usize, TrainUpdate)>,
}

/// One layer's training job in a [`TrainTicket`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainJob {
    pub job: JobId,
    pub layer_name: String,
    /// 1 = next to run.
    pub position: u32,
}

/// How a training job moves along.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainUpdate {
    Queued {
        position: u32,
    },
    Running {
        epoch: u32,
        epochs: u32,
    },
    Done(TrainResult),
    /// A sentence for the member.
    Failed(String),
    Cancelled,
}

impl TrainUpdate {
    /// Whether the job will not move any more.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            TrainUpdate::Done(_) | TrainUpdate::Failed(_) | TrainUpdate::Cancelled
        )
    }
}

/// What a finished training produced.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainResult {
    /// Held-out accuracy of the new model, 0..=1.
    pub accuracy: f32,
    /// The previous model's accuracy on the same split, when there was one.
    pub previous_accuracy: Option<f32>,
    /// What changed, in a sentence or two ("12 tracks would now go elsewhere").
    pub summary: String,
}

/// What a refresh did, per layer and sublist, for the reply and the announcement.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct RefreshSummary {
    /// New tracks found in the motherlist.
    pub new_tracks: u32,
    pub layers: Vec<LayerRefresh>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LayerRefresh {
    pub layer: LayerId,
    pub layer_name: String,
    /// (sublist name, tracks added to it), only sublists that changed.
    pub added: Vec<(String, u32)>,
    pub to_void: u32,
    /// Tracks the model was not sure about and that wait for the member's answer.
    pub waiting: u32,
}

impl RefreshSummary {
    /// Whether anything moved at all.
    pub fn is_empty(&self) -> bool {
        self.new_tracks == 0
            && self
                .layers
                .iter()
                .all(|l| l.added.is_empty() && l.to_void == 0 && l.waiting == 0)
    }
}

/// The state of the member's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    NotLinked,
    Linked {
        display_name: String,
        /// When the refresh token dies and the member must link again.
        expires_at: DateTime<Utc>,
    },
    /// Spotify ended the link six months after the member authorised it.
    Expired,
    /// Spotify refused the link well before that: access was removed on Spotify's side.
    Revoked,
}

/// A job of the member's in the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedJob {
    pub job: JobId,
    /// "training Mood", "sync".
    pub what: String,
    /// None while running.
    pub position: Option<u32>,
}

/// What `/status` shows that the store does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub link: LinkState,
    pub last_sync: Option<DateTime<Utc>>,
    pub liked_songs: u64,
    pub jobs: Vec<QueuedJob>,
    /// Set while the Spotify app the member uses is paused by its daily quota.
    pub quota_paused_until: Option<DateTime<Utc>>,
}

/// The services the bot calls that live outside Discord and the store.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Starts a link: a consent URL bound to this member, and a way to learn when it completes.
    async fn begin_link(&self, member: MemberId) -> Result<LinkStart, BackendError>;
    /// Completes the consent from the address the member's browser ended on (holds `code`,
    /// `state`); the account then waits for [`Backend::confirm_link`].
    async fn complete_link(
        &self,
        member: MemberId,
        pasted_url: &str,
    ) -> Result<LinkToConfirm, BackendError>;
    /// Binds the account waiting for the member's confirmation, and syncs it a first time.
    async fn confirm_link(&self, member: MemberId) -> Result<Linked, BackendError>;
    /// Drops the account waiting for the member's confirmation.
    async fn cancel_link(&self, member: MemberId) -> Result<(), BackendError>;
    /// Drops the member's tokens; layers and labels stay.
    async fn unlink(&self, member: MemberId) -> Result<(), BackendError>;
    /// Deletes everything of the member's (tokens, labels, models, jobs, prompts), after
    /// stopping their work in progress; returns the Discord messages to delete.
    async fn forget_member(&self, member: MemberId) -> Result<Forgotten, BackendError>;
    /// The playlists the member owns or collaborates on.
    async fn playlists(&self, member: MemberId) -> Result<Vec<PlaylistSummary>, BackendError>;
    /// Adopts a playlist as a new sublist of `layer`, labelling its tracks.
    async fn import_playlist(
        &self,
        member: MemberId,
        layer: LayerId,
        playlist_id: &str,
        name: &str,
        emoji: &str,
    ) -> Result<Imported, BackendError>;
    /// Up to `count` tracks to ask about now, chosen by the active ranking; all layers when
    /// `layer` is None.
    async fn pick_prompts(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
        count: u32,
    ) -> Result<Vec<PromptRequest>, BackendError>;
    /// Queues training of one layer (all of the member's layers when None).
    async fn queue_training(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
    ) -> Result<TrainTicket, BackendError>;
    /// Follows training jobs queued earlier (a `/train` reply that outlived the bot that sent
    /// it): each job's updates as (its index in `jobs`, the update), until every job has ended.
    async fn follow_training(
        &self,
        member: MemberId,
        jobs: &[JobId],
    ) -> Result<mpsc::Receiver<(usize, TrainUpdate)>, BackendError> {
        let _ = (member, jobs);
        Err(BackendError::refused(
            "I can't follow that training any more: `/status` shows where it stands.",
        ))
    }
    /// Cancels the member's queued or running training; returns how many jobs it stopped.
    async fn cancel_training(&self, member: MemberId) -> Result<u32, BackendError>;
    /// Syncs the motherlist and re-sorts the sublists now.
    async fn refresh(&self, member: MemberId) -> Result<RefreshSummary, BackendError>;
    /// What `/status` shows that the store does not know.
    async fn status(&self, member: MemberId) -> Result<MemberStatus, BackendError>;
}
