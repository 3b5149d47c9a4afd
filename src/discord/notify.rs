//! The bot's voice outside commands: new prompts, refresh announcements, link expiry warnings
//! and quota pauses. `app` holds a [`Notifier`] and calls it when those things happen.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poise::serenity_prelude as serenity;
use serenity::{CreateMessage, Http};

use super::Error;
use super::backend::{PromptRequest, RefreshSummary};
use super::custom_id::PromptId;
use super::prompts::{self, DmChannels, Purpose};
use super::render;
use crate::domain::{LayerId, MemberId, TrackId};
use crate::store::Store;

/// When this many prompts or more arrive at once, the ones past the first few become a digest.
pub const DIGEST_AFTER: usize = 3;

/// A member gets at most one digest in this many hours, and only when new tracks wait.
pub const DIGEST_EVERY_HOURS: i64 = 24;

/// What [`Notifier::post_prompts`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostOutcome {
    /// Prompts posted, in order.
    pub posted: Vec<PromptId>,
    /// Tracks not posted because the member already has enough open prompts, or because they
    /// were summed up in a digest.
    pub held_back: usize,
    /// Tracks already asked about in that layer.
    pub already_asked: usize,
}

/// Posts prompts and announcements for members.
#[derive(Clone)]
pub struct Notifier {
    http: Arc<Http>,
    store: Store,
    dms: Arc<DmChannels>,
}

impl Notifier {
    pub(crate) fn new(http: Arc<Http>, store: Store, dms: Arc<DmChannels>) -> Notifier {
        Notifier { http, store, dms }
    }

    /// Posts prompts for tracks that wait for an answer, within the member's budget of open
    /// prompts; when many wait, posts the first [`DIGEST_AFTER`] and, at most once a day and
    /// only when new tracks wait since the last one, a digest for the rest.
    pub async fn post_prompts(
        &self,
        member: MemberId,
        requests: Vec<PromptRequest>,
    ) -> Result<PostOutcome, Error> {
        let room = self.store.prompt_room(member).await? as usize;
        let limit = if requests.len() > DIGEST_AFTER {
            room.min(DIGEST_AFTER)
        } else {
            room
        };
        self.post_at_most(member, requests, limit, true).await
    }

    /// Posts up to `limit` prompts the member asked for (`/label`), with no digest.
    pub(crate) async fn post_requested(
        &self,
        member: MemberId,
        requests: Vec<PromptRequest>,
        limit: usize,
    ) -> Result<PostOutcome, Error> {
        // Forgets the prompts a stopped process recorded and never posted.
        self.store.prompt_room(member).await?;
        self.post_at_most(member, requests, limit, false).await
    }

    async fn post_at_most(
        &self,
        member: MemberId,
        requests: Vec<PromptRequest>,
        limit: usize,
        digest: bool,
    ) -> Result<PostOutcome, Error> {
        let mut out = PostOutcome::default();
        let mut held: Vec<(LayerId, TrackId)> = Vec::new();
        for req in requests.into_iter().filter(|r| r.member == member) {
            if out.posted.len() >= limit {
                held.push((req.layer, req.track.id.clone()));
                continue;
            }
            match prompts::post(&self.http, &self.store, &self.dms, &req).await? {
                Some(id) => out.posted.push(id),
                None => out.already_asked += 1,
            }
        }
        out.held_back = held.len();
        if digest && !held.is_empty() && self.digest_due(member, &held).await? {
            let text = render::digest(member, out.posted.len(), out.held_back);
            prompts::send_to_member(
                &self.http,
                &self.store,
                &self.dms,
                member,
                Purpose::Prompt,
                CreateMessage::new().content(text),
            )
            .await?;
            self.store
                .record_digest(member, self.store.now(), &held)
                .await?;
        }
        Ok(out)
    }

    /// Whether a digest about `held` may go out now: none in the last day, and some track in it
    /// was not counted by the last one.
    async fn digest_due(
        &self,
        member: MemberId,
        held: &[(LayerId, TrackId)],
    ) -> Result<bool, Error> {
        let Some((sent_at, counted)) = self.store.last_digest(member).await? else {
            return Ok(true);
        };
        let day_passed = self.store.now() - sent_at >= chrono::Duration::hours(DIGEST_EVERY_HOURS);
        Ok(day_passed && held.iter().any(|k| !counted.contains(k)))
    }

    /// Closes the member's prompts whose question is settled (the track left the motherlist,
    /// was answered another way, or was sorted with confidence) and shows each message as
    /// closed. Returns how many closed; a message that can't be edited is logged.
    pub async fn close_settled_prompts(&self, member: MemberId) -> Result<usize, Error> {
        let closed = self.store.close_settled_prompts(member).await?;
        for (prompt, reason) in &closed {
            if let Err(e) = prompts::show_closed(&self.http, &self.store, prompt, *reason).await {
                tracing::info!(prompt = prompt.id.0, error = %format!("{e:#}"), "could not show a prompt as closed");
            }
        }
        Ok(closed.len())
    }

    /// Announces a refresh of the member's sublists (in the server's announcement channel, or
    /// by DM when none is set).
    pub async fn announce_refresh(
        &self,
        member: MemberId,
        summary: &RefreshSummary,
    ) -> Result<(), Error> {
        let text = render::refresh_announcement(member, summary);
        self.announce(member, text).await
    }

    /// Warns a member that their Spotify link dies soon.
    pub async fn warn_link_expiry(
        &self,
        member: MemberId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let text = format!(
            "<@{}>, your Spotify link expires <t:{}:R>. Use `/link` before then to keep your \
             sublists up to date.",
            member.0,
            expires_at.timestamp()
        );
        self.announce(member, text).await
    }

    /// Tells members that Spotify paused the app they use until `until`.
    pub async fn announce_quota_pause(
        &self,
        members: &[MemberId],
        until: DateTime<Utc>,
    ) -> Result<(), Error> {
        for member in members {
            let text = format!(
                "<@{}>, Spotify's daily quota for this bot is used up: syncing and sorting pause \
                 until <t:{}:f> and resume by themselves. Your labels are kept.",
                member.0,
                until.timestamp()
            );
            self.announce(*member, text).await?;
        }
        Ok(())
    }

    /// Posts `text` for the member: in the announcement channel, or by DM when none is set.
    pub async fn announce(&self, member: MemberId, text: String) -> Result<(), Error> {
        prompts::send_to_member(
            &self.http,
            &self.store,
            &self.dms,
            member,
            Purpose::Announcement,
            CreateMessage::new().content(render::truncate(&text, render::MESSAGE_MAX)),
        )
        .await?;
        Ok(())
    }
}
