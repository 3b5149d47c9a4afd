//! Label prompts: posting them where the member wants them, and applying an answer (reaction,
//! button or menu) to the store. Everything is read from the database, so prompts keep working
//! after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;

use poise::serenity_prelude as serenity;
use serenity::{
    ChannelId, CreateAllowedMentions, CreateMessage, EditMessage, Http, MessageId, UserId,
};

use super::Error;
use super::backend::PromptRequest;
use super::error::user_error;
use super::render::{self, PromptShown, PromptView};
use crate::domain::{Label, LabelSource, Layer, MemberId, SublistId, Track};
use crate::store::{CloseReason, MemberSettings, Prompt, PromptId, PromptState, Store};

/// The member's settings. A member is recorded only by their own commands, so that work
/// still running for a forgotten member cannot bring them back: for one, this is an error.
pub(crate) async fn member_settings(
    store: &Store,
    member: MemberId,
) -> Result<MemberSettings, Error> {
    store
        .member_settings(member)
        .await?
        .ok_or_else(|| anyhow::anyhow!("member {member} is not known (or was forgotten)"))
}

/// DM channel ids by member, so a DM is opened once per process (opening one is a REST call).
pub(crate) type DmChannels = dashmap::DashMap<u64, ChannelId>;

/// Where a message for a member goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    Prompt,
    Announcement,
}

/// A place a member's message can go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Channel(ChannelId),
    Dm,
}

/// Where a member's prompts or announcements go, best first. Prompts: a DM, or the server's
/// prompt channel set with `/setup` when the member chose "channel"; announcements: the
/// server's announcement channel, else a DM. The other places follow, for when the first
/// refuses (closed DMs, a channel deleted or closed to the bot).
async fn places(store: &Store, member: MemberId, purpose: Purpose) -> Result<Vec<Place>, Error> {
    let settings = member_settings(store, member).await?;
    let guild = match settings.guild_id {
        Some(g) => Some(store.guild_settings(g).await?),
        None => None,
    };
    let prompt_channel = guild
        .as_ref()
        .and_then(|g| g.prompt_channel.or(g.announce_channel))
        .map(|c| Place::Channel(ChannelId::new(c)));
    let announce_channel = guild
        .as_ref()
        .and_then(|g| g.announce_channel)
        .map(|c| Place::Channel(ChannelId::new(c)));
    let order = match purpose {
        Purpose::Prompt if settings.prompts_in_dm => [Some(Place::Dm), prompt_channel, None],
        Purpose::Prompt => [prompt_channel, Some(Place::Dm), None],
        Purpose::Announcement => [announce_channel, Some(Place::Dm), prompt_channel],
    };
    let mut out = Vec::new();
    for place in order.into_iter().flatten() {
        if !out.contains(&place) {
            out.push(place);
        }
    }
    Ok(out)
}

/// Whether Discord refused a message because of where it was going (DMs closed, no permission
/// in the channel, the channel or the user gone): another place may take it.
fn refused_there(e: &serenity::Error) -> bool {
    let serenity::Error::Http(serenity::HttpError::UnsuccessfulRequest(response)) = e else {
        return false;
    };
    matches!(response.error.code, 10003 | 10013 | 50001 | 50007 | 50013)
}

async fn dm_channel(
    http: &Http,
    dms: &DmChannels,
    member: MemberId,
) -> serenity::Result<ChannelId> {
    if let Some(known) = dms.get(&member.0) {
        return Ok(*known);
    }
    let dm = UserId::new(member.0).create_dm_channel(http).await?;
    dms.insert(member.0, dm.id);
    Ok(dm.id)
}

/// Sends the message `build` makes (told whether it goes to a DM) to the first of the member's
/// places that takes it. When none does, the first place's refusal is returned.
pub(crate) async fn deliver(
    http: &Http,
    store: &Store,
    dms: &DmChannels,
    member: MemberId,
    purpose: Purpose,
    build: impl Fn(bool) -> CreateMessage,
) -> Result<serenity::Message, Error> {
    let mut first_refusal: Option<serenity::Error> = None;
    for place in places(store, member, purpose).await? {
        let sent = match place {
            Place::Channel(channel) => channel.send_message(http, build(false)).await,
            Place::Dm => match dm_channel(http, dms, member).await {
                Ok(channel) => channel.send_message(http, build(true)).await,
                Err(e) => Err(e),
            },
        };
        match sent {
            Ok(message) => return Ok(message),
            Err(e) if refused_there(&e) => {
                tracing::info!(member = member.0, ?place, error = %e, "a message could not go there; trying the next place");
                first_refusal.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(match first_refusal {
        Some(e) => e.into(),
        None => anyhow::anyhow!("member {member} has no place to send messages to"),
    })
}

/// Sends `message` to the member's place for `purpose` (or the next one that takes it),
/// mentioning them.
pub(crate) async fn send_to_member(
    http: &Http,
    store: &Store,
    dms: &DmChannels,
    member: MemberId,
    purpose: Purpose,
    message: CreateMessage,
) -> Result<serenity::Message, Error> {
    let message =
        message.allowed_mentions(CreateAllowedMentions::new().users([UserId::new(member.0)]));
    let sent = deliver(http, store, dms, member, purpose, |_| message.clone()).await?;
    // Recorded so that forgetting the member deletes it; forgotten meanwhile, it goes now.
    if !store
        .record_member_message(member, sent.channel_id.get(), sent.id.get(), store.now())
        .await?
    {
        sent.channel_id.delete_message(http, sent.id).await?;
        return Err(anyhow::anyhow!(
            "member {member} was forgotten while a message was sent"
        ));
    }
    Ok(sent)
}

/// The layer a prompt belongs to, checked against its member.
async fn layer_of(
    store: &Store,
    member: MemberId,
    layer: crate::domain::LayerId,
) -> Result<Layer, Error> {
    match store.layer(layer).await? {
        Some(l) if l.member == member => Ok(l),
        _ => Err(user_error("That layer no longer exists.")),
    }
}

/// Posts one prompt. `None` when the track was already asked about in that layer.
pub(crate) async fn post(
    http: &Http,
    store: &Store,
    dms: &DmChannels,
    req: &PromptRequest,
) -> Result<Option<PromptId>, Error> {
    let layer = layer_of(store, req.member, req.layer).await?;
    if layer.sublists.is_empty() {
        return Err(user_error(format!(
            "The layer “{}” has no sublists yet: add one with `/layers add-sublist`.",
            layer.name
        )));
    }
    let Some(id) = store
        .create_prompt(req.member, req.layer, &req.track.id, req.guess.as_ref())
        .await?
    else {
        return Ok(None);
    };
    let view = PromptView {
        id,
        member: req.member,
        layer: &layer,
        track: &req.track,
        guess: req.guess.as_ref(),
        current: None,
        shown: PromptShown::Open,
    };
    let build = |is_dm: bool| {
        let message = CreateMessage::new()
            .embed(render::prompt_embed(&view))
            .components(render::prompt_components(&view))
            .allowed_mentions(CreateAllowedMentions::new().users([UserId::new(req.member.0)]));
        if is_dm {
            message
        } else {
            message.content(format!("<@{}>, where does this one go?", req.member.0))
        }
    };
    let sent = match deliver(http, store, dms, req.member, Purpose::Prompt, build).await {
        Ok(m) => m,
        Err(e) => {
            store.delete_prompt(id).await?;
            return Err(e);
        }
    };
    let channel = sent.channel_id;
    store
        .set_prompt_posted(id, channel.get(), sent.id.get())
        .await?;
    // Recorded as the member's message too: the prompt's row may go (its layer removed, the
    // track asked again) while the message stays, and forgetting the member deletes it.
    if !store
        .record_member_message(req.member, channel.get(), sent.id.get(), store.now())
        .await?
    {
        channel.delete_message(http, sent.id).await?;
        return Ok(None);
    }
    for reaction in render::prompt_reactions(&layer) {
        if let Err(e) = http.create_reaction(channel, sent.id, &reaction).await {
            // The buttons still work; a missing reaction is not worth failing the prompt.
            tracing::warn!(prompt = id.0, error = %e, "could not add a reaction");
        }
    }
    Ok(Some(id))
}

/// Shows a closed prompt's message as closed, and why: its buttons go.
pub(crate) async fn show_closed(
    http: &Http,
    store: &Store,
    prompt: &Prompt,
    reason: CloseReason,
) -> Result<(), Error> {
    let (Some(channel), Some(message)) = (prompt.channel_id, prompt.message_id) else {
        return Ok(());
    };
    let Some(layer) = store.layer(prompt.layer).await? else {
        return Ok(());
    };
    let track = store
        .track(&prompt.track)
        .await?
        .unwrap_or_else(|| Track::bare(prompt.track.clone(), prompt.track.to_string()));
    let current = store.label(layer.id, &prompt.track).await?.map(|l| l.label);
    let view = PromptView {
        id: prompt.id,
        member: prompt.member,
        layer: &layer,
        track: &track,
        guess: prompt.guess.as_ref(),
        current: current.as_ref(),
        shown: PromptShown::Closed(Some(reason)),
    };
    ChannelId::new(channel)
        .edit_message(
            http,
            MessageId::new(message),
            EditMessage::new()
                .embed(render::prompt_embed(&view))
                .components(render::prompt_components(&view)),
        )
        .await?;
    Ok(())
}

/// What a member did on a prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A sublist's reaction added (true) or removed, or its button pressed (true).
    Toggle(SublistId, bool),
    /// The void's reaction added (true) or removed, or its button pressed (true).
    Void(bool),
    /// The select menu's values.
    Set(BTreeSet<SublistId>),
    Skip,
}

/// A prompt after an answer, ready to render.
pub(crate) struct Answered {
    pub prompt: Prompt,
    pub layer: Layer,
    pub track: Track,
    pub label: Option<Label>,
}

impl Answered {
    pub fn view(&self) -> PromptView<'_> {
        PromptView {
            id: self.prompt.id,
            member: self.prompt.member,
            layer: &self.layer,
            track: &self.track,
            guess: None,
            current: self.label.as_ref(),
            shown: match self.prompt.state {
                PromptState::Answered => PromptShown::Answered,
                PromptState::Skipped => PromptShown::Skipped,
                PromptState::Closed => PromptShown::Closed(None),
                _ => PromptShown::Open,
            },
        }
    }

    pub fn embed(&self) -> serenity::CreateEmbed {
        let mut view = self.view();
        view.guess = self.prompt.guess.as_ref();
        render::prompt_embed(&view)
    }

    pub fn components(&self) -> Vec<serenity::CreateActionRow> {
        render::prompt_components(&self.view())
    }

    /// Re-renders the prompt's message in place.
    pub async fn edit_message(&self, http: &Http) -> Result<(), Error> {
        let (Some(channel), Some(message)) = (self.prompt.channel_id, self.prompt.message_id)
        else {
            return Ok(());
        };
        ChannelId::new(channel)
            .edit_message(
                http,
                MessageId::new(message),
                EditMessage::new()
                    .embed(self.embed())
                    .components(self.components()),
            )
            .await?;
        Ok(())
    }
}

/// One answer at a time per prompt: reactions arrive concurrently, and each answer reads the
/// label it changes.
#[derive(Default)]
pub(crate) struct AnswerLocks(dashmap::DashMap<PromptId, Arc<tokio::sync::Mutex<()>>>);

impl AnswerLocks {
    /// [`answer`], after the answers already under way for the same prompt.
    pub(crate) async fn answer(
        &self,
        store: &Store,
        prompt: Prompt,
        answer: Answer,
    ) -> Result<Answered, Error> {
        let id = prompt.id;
        let lock = self.0.entry(id).or_default().clone();
        let result = {
            let _turn = lock.lock().await;
            self::answer(store, prompt, answer).await
        };
        // Forget the lock when no one else waits on it (the map and `lock` hold it).
        self.0.remove_if(&id, |_, l| Arc::strong_count(l) <= 2);
        result
    }
}

/// Applies a member's answer to a prompt and returns the prompt as it now stands.
pub(crate) async fn answer(
    store: &Store,
    prompt: Prompt,
    answer: Answer,
) -> Result<Answered, Error> {
    let layer = layer_of(store, prompt.member, prompt.layer).await?;
    let track = store
        .track(&prompt.track)
        .await?
        .unwrap_or_else(|| Track::bare(prompt.track.clone(), prompt.track.to_string()));
    // Only the member's own label is a starting point; a model's guess is not theirs.
    let current = match store.label(layer.id, &prompt.track).await? {
        Some(l) if l.source == LabelSource::Member => Some(l.label),
        _ => None,
    };
    let next: Option<Label> = match &answer {
        Answer::Skip => {
            store
                .set_prompt_state(prompt.id, PromptState::Skipped)
                .await?;
            let prompt = store.prompt(prompt.id).await?.unwrap_or(prompt);
            return Ok(Answered {
                prompt,
                layer,
                track,
                label: current,
            });
        }
        Answer::Toggle(id, on) => {
            if layer.sublist(*id).is_none() {
                return Err(user_error("That sublist no longer exists."));
            }
            let base = current.clone().unwrap_or(Label::Void);
            if !on && !base.contains(*id) {
                current.clone()
            } else {
                let next = base.toggled(&layer, *id, *on);
                // A mutual layer's void has its own emoji: taking back the one reaction that
                // made the label leaves the track unanswered, not in the void.
                if !on && layer.rules.mutual && next.is_void() {
                    None
                } else {
                    Some(next)
                }
            }
        }
        Answer::Void(true) => Some(Label::Void),
        Answer::Void(false) => match &current {
            Some(Label::Void) => None,
            other => other.clone(),
        },
        Answer::Set(set) => Some(Label::from_set(set.clone())),
    };
    // A complete layer has no void: an emptied answer means "not answered".
    let next = next.filter(|l| !(l.is_void() && layer.rules.complete));
    match &next {
        Some(label) => {
            label.validate(&layer)?;
            store
                .set_label(&layer, &prompt.track, label, LabelSource::Member, None)
                .await?;
            store
                .set_prompt_state(prompt.id, PromptState::Answered)
                .await?;
        }
        None => {
            store.clear_label(layer.id, &prompt.track).await?;
            // A closed prompt stays closed: taking back an answer does not ask again.
            if prompt.state != PromptState::Closed {
                store.set_prompt_state(prompt.id, PromptState::Open).await?;
            }
        }
    }
    let prompt = store.prompt(prompt.id).await?.unwrap_or(prompt);
    Ok(Answered {
        prompt,
        layer,
        track,
        label: next,
    })
}
