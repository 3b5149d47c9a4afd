//! Acting out the schedule: members use the bot through the fake Discord (slash commands,
//! buttons, menus, reactions) and Spotify through the local Spotify's state (likes, hand
//! edits); the world injects faults and restarts the process. Each action records in the
//! model what the member said.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use sublist::domain::{Label, LabelSource, LayerId, MemberId, SublistId, TrackId, VOID_EMOJI};
use sublist::spotify::local::Failure;
use sublist::store::PromptId;

use super::check::Checks;
use super::model::{
    EMOJIS, Expect, LAYER_NAMES, LayerM, MEMBERS, Member, Presence, SUBLIST_NAMES, Sample, SubM,
    mix,
};
use super::plan::{Event, Restart, Way};
use super::rig::{APPS, Reply, Rig, Stop};
use crate::discord_fake::DM_OFFSET;

/// The first announcement and prompt channels; channels made after a deletion count up.
const FIRST_CHANNEL: u64 = 720_000_000_000_000_101;

/// An option of a slash command.
fn opt(name: &str, kind: u8, value: Value) -> Value {
    json!({"name": name, "type": kind, "value": value})
}

fn sub(name: &str, options: Value) -> Value {
    json!([{"name": name, "type": 1, "options": options}])
}

/// A prompt message as the member sees it.
#[derive(Clone, Debug)]
pub(super) struct Shown {
    pub channel: u64,
    pub message: u64,
    pub prompt: i64,
    pub answered: bool,
    /// custom ids of its buttons and menu.
    pub ids: Vec<String>,
}

/// A `/refresh` run inline by the bot: who, when it started, whether it finished.
#[derive(Clone, Debug)]
pub(super) struct InlineRefresh {
    pub member: usize,
    pub started: DateTime<Utc>,
    pub ok: bool,
}

pub(super) struct Sim {
    pub seed: u64,
    pub rig: Rig,
    pub sample: Sample,
    pub index: HashMap<TrackId, usize>,
    pub members: Vec<Member>,
    pub hour: u32,
    /// A restart to stage while this hour's work runs.
    pub trigger: Option<(Restart, u64)>,
    pub checks: Checks,
    pub refreshes: Vec<InlineRefresh>,
    /// `/train` replies to follow: (member, interaction id, hour).
    pub train_replies: Vec<(usize, u64, u32)>,
    pub announce: u64,
    pub prompt_channel: u64,
    next_channel: u64,
    /// When the admin sets the channels up again (after one was deleted).
    setup_at: Option<u32>,
    layer_names: usize,
    own_playlists: usize,
    /// The hour's events, for the failure report.
    pub log: Vec<String>,
    /// Interactions dispatched without waiting for their answer.
    pub inflight: Vec<u64>,
}

fn kinds() -> [(bool, bool); 4] {
    [(true, true), (true, false), (false, true), (false, false)]
}

impl Sim {
    pub async fn new(seed: u64) -> Sim {
        let rig = Rig::new(seed).await;
        let sample = Sample::load();
        let index = sample
            .tracks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let mut rng = StdRng::seed_from_u64(mix(seed, 1));
        rig.spotify.add_catalogue(&sample.tracks);
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let mut all: Vec<usize> = (0..sample.tracks.len()).collect();
            all.shuffle(&mut rng);
            all.truncate(150);
            let m = Member::new(i, all);
            rig.spotify
                .add_user(&m.user, &format!("acct-{}", m.user), &format!("Member {i}"));
            members.push(m);
        }
        Sim {
            seed,
            rig,
            sample,
            index,
            members,
            hour: 0,
            trigger: None,
            checks: Checks::default(),
            refreshes: Vec::new(),
            train_replies: Vec::new(),
            announce: FIRST_CHANNEL,
            prompt_channel: FIRST_CHANNEL + 1,
            next_channel: FIRST_CHANNEL + 2,
            setup_at: None,
            layer_names: 0,
            own_playlists: 0,
            log: Vec::new(),
            inflight: Vec::new(),
        }
    }

    fn rng(&self, salt: u64) -> StdRng {
        StdRng::seed_from_u64(mix(mix(self.seed, u64::from(self.hour)), salt))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.rig.clock.now()
    }

    /// The event being acted out and when, for the model's history.
    fn why(&self) -> String {
        format!(
            "{} at {}",
            self.log.last().map_or("setup", String::as_str),
            super::rig::sim_time(self.now())
        )
    }

    /// A harness observation that is not an invariant (kept for the report).
    pub fn note(&mut self, what: impl Into<String>) {
        let text = what.into();
        self.checks.note(self.hour, text);
    }

    /// Day 0: the server's channels, then every member likes some songs, links Spotify and
    /// makes their layers.
    pub async fn setup(&mut self) {
        self.setup_channels(0).await;
        let mut rng = self.rng(2);
        for m in 0..MEMBERS {
            let n = rng.random_range(15..25);
            self.like(m, n);
            self.join(m, &mut rng).await;
        }
        // One member wants prompts in the server's channel.
        self.prompt_place(1, false).await;
    }

    /// A member links and makes two to four layers; across members every kind appears.
    async fn join(&mut self, m: usize, rng: &mut StdRng) {
        if let Err(e) = self.link(m).await {
            self.note(format!("member {m} could not link: {e}"));
            // They try again tomorrow.
            self.members[m].presence = Presence::Away {
                back: self.hour + 24,
            };
            return;
        }
        let n = rng.random_range(2..=3);
        for j in 0..n {
            let (mutual, complete) = kinds()[(m + j) % 4];
            self.add_layer(m, mutual, complete, rng).await;
        }
    }

    async fn setup_channels(&mut self, admin: usize) {
        let (a, p) = (self.announce, self.prompt_channel);
        let resolved = json!({"channels": {
            a.to_string(): {"id": a.to_string(), "name": "announcements", "type": 0, "permissions": "0"},
            p.to_string(): {"id": p.to_string(), "name": "prompts", "type": 0, "permissions": "0"},
        }});
        let options = json!([
            opt("announcements", 7, json!(a.to_string())),
            opt("prompts", 7, json!(p.to_string()))
        ]);
        let user = self.members[admin].id;
        let r = self
            .rig
            .command_with(user, "setup", options, |v| {
                v["member"]["permissions"] = json!("32");
                v["data"]["resolved"] = resolved;
            })
            .await;
        match r {
            Ok(r) if r.text.contains("**Announcements**") => {}
            Ok(r) => self.note(format!("/setup answered: {}", r.text)),
            Err(e) => self.note(format!("/setup: {e}")),
        }
    }

    /// Tracks the member likes on Spotify now (from their pool).
    fn like(&mut self, m: usize, n: usize) {
        let mut rng = self.rng(100 + m as u64);
        let member = &mut self.members[m];
        let mut ids = Vec::new();
        for _ in 0..n {
            if member.pool.is_empty() {
                break;
            }
            let k = rng.random_range(0..member.pool.len());
            let t = member.pool.swap_remove(k);
            member.liked.push(t);
            ids.push(self.sample.id(t));
        }
        if ids.is_empty() {
            return;
        }
        member.last_change = self.rig.clock.now();
        member.last_like = member.last_change;
        self.rig.spotify.like(&member.user, &ids);
    }

    /// Links the member's Spotify account through `/link`, the consent page and the form.
    pub async fn link(&mut self, m: usize) -> Result<(), String> {
        let (id, user) = (self.members[m].id, self.members[m].user.clone());
        self.rig.spotify.set_browser_user(&user);
        let r = self.rig.command(id, "link", json!([])).await?;
        let url = r.message["components"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["components"].as_array().into_iter().flatten())
            .find_map(|c| c["url"].as_str().map(String::from))
            .ok_or_else(|| format!("/link offered no consent page: {}", r.text))?;
        let landed = authorize(&url).await?;
        let paste = self
            .rig
            .press(id, self.rig.channel(), 1, "v1:link:paste", None)
            .await?;
        if paste.callback["type"] != 9 {
            return Err(format!("the paste button opened no form: {}", paste.text));
        }
        let mut done = self.rig.submit_link_form(id, &landed).await?;
        // A confirmation step, if the bot asks for one.
        if !done.text.starts_with("Linked as")
            && let Some(confirm) = custom_ids(&done.message["components"])
                .into_iter()
                .find(|c| c.ends_with(":yes"))
        {
            done = self
                .rig
                .press(id, self.rig.channel(), 1, &confirm, None)
                .await?;
        }
        // The /link message tells the result too.
        let told = |v: Option<Value>| {
            v.is_some_and(|v| {
                v["content"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("Linked as"))
            })
        };
        if !(done.text.starts_with("Linked as") || told(self.rig.last_edit(r.id))) {
            return Err(format!("linking answered: {}", done.text));
        }
        let member = &mut self.members[m];
        member.linked = true;
        member.relink_at = None;
        member.last_change = self.rig.clock.now();
        Ok(())
    }

    /// `/layers create` and two or three `/layers add-sublist`.
    async fn add_layer(&mut self, m: usize, mutual: bool, complete: bool, rng: &mut StdRng) {
        let name = LAYER_NAMES[self.layer_names % LAYER_NAMES.len()].to_string();
        let name = if self.layer_names >= LAYER_NAMES.len() {
            format!("{name} {}", self.layer_names)
        } else {
            name
        };
        self.layer_names += 1;
        let user = self.members[m].id;
        let r = self
            .rig
            .command(
                user,
                "layers",
                sub(
                    "create",
                    json!([
                        opt("name", 3, json!(name)),
                        opt("mutual", 5, json!(mutual)),
                        opt("complete", 5, json!(complete))
                    ]),
                ),
            )
            .await;
        if let Err(e) | Ok(Reply { text: e, .. }) = &r
            && !e.starts_with("Layer “")
        {
            self.note(format!("/layers create answered: {e}"));
            return;
        }
        let Ok(Some(layer)) = self.rig.store().layer_by_name(MemberId(user), &name).await else {
            self.note(format!("the layer {name} was not stored"));
            return;
        };
        self.members[m].layers.push(LayerM::new(
            layer.id,
            name.clone(),
            mutual,
            complete,
            rng.random(),
        ));
        let n = rng.random_range(2..=3);
        for _ in 0..n {
            self.add_sublist(m, layer.id, rng).await;
        }
        self.members[m].last_change = self.now();
    }

    async fn add_sublist(&mut self, m: usize, layer: LayerId, rng: &mut StdRng) {
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let names: Vec<&str> = SUBLIST_NAMES
            .iter()
            .copied()
            .filter(|n| !l.subs.iter().any(|s| s.name == *n))
            .collect();
        let emojis: Vec<&str> = EMOJIS
            .iter()
            .copied()
            .filter(|e| !l.subs.iter().any(|s| s.emoji == *e))
            .collect();
        let (Some(name), Some(emoji)) = (names.choose(rng), emojis.choose(rng)) else {
            return;
        };
        let (name, emoji, layer_name) = (name.to_string(), emoji.to_string(), l.name.clone());
        let user = self.members[m].id;
        let r = self
            .rig
            .command(
                user,
                "layers",
                sub(
                    "add-sublist",
                    json!([
                        opt("layer", 3, json!(layer_name)),
                        opt("name", 3, json!(name)),
                        opt("emoji", 3, json!(emoji))
                    ]),
                ),
            )
            .await;
        match r {
            Ok(r) if r.text.contains(&format!("“{name}” added")) => {}
            Ok(r) => return self.note(format!("/layers add-sublist answered: {}", r.text)),
            Err(e) => return self.note(format!("/layers add-sublist: {e}")),
        }
        let stored = self.rig.store().layer(layer).await.ok().flatten();
        let Some(s) = stored.and_then(|l| l.sublist_by_name(&name).cloned()) else {
            return self.note(format!("the sublist {name} was not stored"));
        };
        if let Some(l) = self.members[m].layer_mut(layer) {
            l.subs.push(SubM {
                id: s.id,
                name,
                emoji,
            });
        }
        self.members[m].last_change = self.now();
    }

    /// Acts out one event.
    pub async fn act(&mut self, ev: Event, salt: u64) {
        let mut rng = self.rng(salt);
        self.log.push(ev.name());
        self.checks.step += 1;
        let step = format!(
            "step {} at {}: {}",
            self.checks.step,
            super::rig::sim_time(self.now()),
            ev.name()
        );
        self.checks.trail(step);
        if let Some(m) = member_of(ev) {
            let member = &self.members[m];
            let usable = member.active() && (member.linked || matches!(ev, Event::Relink(_)));
            if !usable {
                return;
            }
        }
        match ev {
            Event::Like(m) => {
                let n = rng.random_range(1..=3);
                self.like(m, n);
            }
            Event::Unlike(m) => self.unlike(m, &mut rng),
            Event::Answer(m, way) => {
                let n = rng.random_range(1..=3);
                for _ in 0..n {
                    self.answer(m, way, &mut rng).await;
                }
            }
            Event::Skip(m) => self.skip(m, &mut rng).await,
            Event::Change(m) => self.change(m, &mut rng).await,
            Event::TakeBack(m) => self.take_back(m, &mut rng).await,
            Event::AddSublist(m) => {
                let layers: Vec<LayerId> = self.members[m]
                    .layers
                    .iter()
                    .filter(|l| l.subs.len() < 5)
                    .map(|l| l.id)
                    .collect();
                if let Some(l) = layers.choose(&mut rng) {
                    self.add_sublist(m, *l, &mut rng).await;
                }
            }
            Event::EditSublist(m) => self.edit_sublist(m, &mut rng).await,
            Event::RemoveSublist(m) => self.remove_sublist(m, &mut rng).await,
            Event::AddLayer(m) => {
                if self.members[m].layers.len() < 4 {
                    let (mutual, complete) = *kinds().choose(&mut rng).unwrap_or(&(true, true));
                    self.add_layer(m, mutual, complete, &mut rng).await;
                }
            }
            Event::RemoveLayer(m) => self.remove_layer(m, &mut rng).await,
            Event::Import(m) => self.import(m, &mut rng).await,
            Event::HandAdd(m) => self.hand_edit(m, true, &mut rng).await,
            Event::HandRemove(m) => self.hand_edit(m, false, &mut rng).await,
            Event::DeletePlaylist(m) => self.delete_playlist(m, &mut rng).await,
            Event::Train(m) => self.train(m, &mut rng).await,
            Event::Refresh(m) => self.refresh(m).await,
            Event::Label(m) => self.label(m, &mut rng).await,
            Event::Status(m) => {
                let user = self.members[m].id;
                if let Err(e) = self.rig.command(user, "status", json!([])).await {
                    self.note(format!("/status: {e}"));
                }
            }
            Event::PromptPlace(m) => {
                let dm = !self.members[m].prompts_in_dm;
                self.prompt_place(m, dm).await;
            }
            Event::Relink(m) => self.relink(m).await,
            Event::Forget(m) => self.forget(m, &mut rng).await,
            Event::RateLimit => {
                let path = [
                    "/v1/me/tracks",
                    "/v1/playlists",
                    "/v1/me/library",
                    "/v1/me/",
                ]
                .choose(&mut rng)
                .copied()
                .unwrap_or("/v1/");
                let times = rng.random_range(1..=2);
                self.rig
                    .spotify
                    .inject(None, path, Failure::RateLimited { retry_after: 0 }, times);
            }
            Event::ServerError => {
                let path = [
                    "/v1/me/tracks",
                    "/v1/playlists",
                    "/v1/me/library",
                    "/api/token",
                    "/reccobeats",
                ]
                .choose(&mut rng)
                .copied()
                .unwrap_or("/v1/");
                let status = *[500u16, 502, 503].choose(&mut rng).unwrap_or(&500);
                self.rig
                    .spotify
                    .inject(None, path, Failure::Status(status), 1);
            }
            Event::TimeoutAfterWrite => self.rig.spotify.inject(
                Some("POST"),
                "/items",
                Failure::AppliedThenSlow(Duration::from_millis(700)),
                1,
            ),
            Event::ErrorAfterWrite => {
                let (method, path) = *[
                    ("POST", "/items"),
                    ("DELETE", "/items"),
                    ("POST", "/me/playlists"),
                ]
                .choose(&mut rng)
                .unwrap_or(&("POST", "/items"));
                self.rig
                    .spotify
                    .inject(Some(method), path, Failure::AppliedThenStatus(502), 1);
            }
            Event::Quota => {
                let (app, _) = *APPS.choose(&mut rng).unwrap_or(&APPS[0]);
                let hours = rng.random_range(2..=6);
                let until = self.now() + chrono::Duration::hours(hours);
                self.rig.spotify.exhaust_quota(app, until);
                self.checks.quota(app, self.now(), until);
            }
            Event::Revoke(m) => {
                let user = self.members[m].user.clone();
                self.rig.spotify.revoke_access(&user);
                // The member learns of it from the bot, and links again later.
                self.members[m].relink_at = Some(self.hour + rng.random_range(12..36));
            }
            Event::CloseDms(m) => {
                let member = &mut self.members[m];
                if member.dms_closed_until.is_none() {
                    self.rig.discord.close_channel(member.id + DM_OFFSET);
                    member.dms_closed_until = Some(self.hour + rng.random_range(24..72));
                }
            }
            Event::DeleteChannel => {
                if self.setup_at.is_none() {
                    self.rig.discord.delete_channel(self.announce);
                    self.rig.discord.delete_channel(self.prompt_channel);
                    self.announce = self.next_channel;
                    self.prompt_channel = self.next_channel + 1;
                    self.next_channel += 2;
                    self.setup_at = Some(self.hour + rng.random_range(6..30));
                }
            }
            Event::Restart(Restart::Clean) => self.rig.restart(Stop::Clean).await,
            Event::Restart(Restart::Crash) => self.rig.restart(Stop::Crash).await,
            Event::Restart(r) => self.trigger = Some((r, rng.random())),
        }
    }

    /// What the hour brings by itself: DMs opened again, channels set up again, members who
    /// link again or come back.
    pub async fn due(&mut self) {
        let hour = self.hour;
        if self.setup_at.is_some_and(|h| h <= hour)
            && let Some(admin) = self.members.iter().position(Member::active)
        {
            self.due_trail(format!("/setup by member {admin}"));
            self.setup_at = None;
            self.setup_channels(admin).await;
        }
        for m in 0..MEMBERS {
            if let Some(h) = self.members[m].dms_closed_until
                && h <= hour
            {
                self.members[m].dms_closed_until = None;
                self.rig
                    .discord
                    .open_channel(self.members[m].id + DM_OFFSET);
            }
            if let Presence::Forgotten { back } | Presence::Away { back } = self.members[m].presence
                && back <= hour
            {
                self.due_trail(format!("member {m} comes back"));
                self.come_back(m).await;
            }
            if self.members[m].active() && self.members[m].relink_at.is_some_and(|h| h <= hour) {
                self.due_trail(format!("member {m} links again"));
                self.relink(m).await;
            }
        }
    }

    /// Something the hour brings by itself, for the trail.
    fn due_trail(&mut self, what: String) {
        let at = super::rig::sim_time(self.now());
        self.checks.trail(format!("at {at}: {what}"));
    }

    fn unlike(&mut self, m: usize, rng: &mut StdRng) {
        let member = &mut self.members[m];
        if member.liked.len() < 10 {
            return;
        }
        let k = rng.random_range(0..member.liked.len());
        let t = member.liked.remove(k);
        member.last_change = self.rig.clock.now();
        self.rig.spotify.unlike(&member.user, &[self.sample.id(t)]);
    }

    /// The member's prompt messages as they see them: the latest message of each prompt
    /// (a prompt asked again is a new message; the first one no longer counts).
    async fn shown(&self, m: usize) -> Vec<Shown> {
        let member = &self.members[m];
        let mention = format!("<@{}>", member.id);
        let current: HashSet<i64> = sqlx::query_scalar(
            "SELECT message_id FROM prompts WHERE member_id = ? AND message_id IS NOT NULL",
        )
        .bind(member.id as i64)
        .fetch_all(&self.rig.reader)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect();
        self.rig
            .discord
            .messages_where(|msg| {
                !msg.deleted
                    && current.contains(&(msg.id as i64))
                    && (msg.channel == member.id + DM_OFFSET || msg.content.contains(&mention))
            })
            .into_iter()
            .filter_map(|msg| {
                let ids: Vec<String> = custom_ids(&msg.components);
                let prompt = ids.first().and_then(|id| prompt_of(id))?;
                let answer = msg.embeds[0]["fields"][2]["value"].as_str().unwrap_or("");
                Some(Shown {
                    channel: msg.channel,
                    message: msg.id,
                    prompt,
                    answered: answer != "not answered yet" && !answer.starts_with("skipped"),
                    ids,
                })
            })
            .collect()
    }

    /// Answers one open prompt the way the member likes.
    async fn answer(&mut self, m: usize, way: Way, rng: &mut StdRng) {
        let open: Vec<Shown> = self
            .shown(m)
            .await
            .into_iter()
            .filter(|s| !s.answered)
            .collect();
        let Some(p) = open.choose(rng).cloned() else {
            return;
        };
        let Some((layer, track)) = self.prompt_target(m, p.prompt).await else {
            return;
        };
        let want = {
            let member = &self.members[m];
            let Some(l) = member.layer(layer) else { return };
            let Some(&t) = self.index.get(&track) else {
                return;
            };
            member.taste(l, &self.sample, t)
        };
        self.give(m, &p, layer, &track, way, want).await;
    }

    /// Gives `want` as the answer to prompt `p`, by reaction, button or menu.
    async fn give(
        &mut self,
        m: usize,
        p: &Shown,
        layer: LayerId,
        track: &TrackId,
        way: Way,
        want: Label,
    ) {
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let (mutual, complete) = (l.mutual, l.complete);
        let emoji_of: BTreeMap<SublistId, String> =
            l.subs.iter().map(|s| (s.id, s.emoji.clone())).collect();
        let user = self.members[m].id;
        let way = match way {
            Way::Menu if mutual => Way::Button,
            Way::Button if !mutual && !want.is_void() => Way::Menu,
            w => w,
        };
        match way {
            Way::Reaction => {
                let mut emojis: Vec<(Option<SublistId>, String)> = match &want {
                    Label::Void => vec![(None, VOID_EMOJI.to_string())],
                    Label::Sublists(set) => set
                        .iter()
                        .filter_map(|s| emoji_of.get(s).map(|e| (Some(*s), e.clone())))
                        .collect(),
                };
                if mutual {
                    emojis.truncate(1);
                }
                for (s, emoji) in emojis {
                    let base = self.member_label(layer, track).await;
                    let next = match s {
                        Some(s) => toggle(mutual, complete, base, s, true),
                        None => void(complete, base, true),
                    };
                    match self
                        .rig
                        .react(user, p.channel, p.message, &emoji, true)
                        .await
                    {
                        Ok(()) => {
                            self.members[m].reactions.insert((p.message, emoji));
                            self.record(m, layer, track, next);
                        }
                        Err(e) => {
                            let dbg = format!(
                                "{e} [member {m} channel {} prompt {:?}; layer {:?}; label {:?}; mutual {mutual} complete {complete}]",
                                p.channel,
                                self.rig
                                    .store()
                                    .prompt(PromptId(p.prompt))
                                    .await
                                    .ok()
                                    .flatten()
                                    .map(|p| p.state),
                                self.rig.store().layer(layer).await.ok().flatten().map(|l| l
                                    .sublists
                                    .iter()
                                    .map(|s| s.emoji.as_str().to_string())
                                    .collect::<Vec<_>>()),
                                self.rig.store().label(layer, track).await.ok().flatten(),
                            );
                            self.note(dbg);
                            self.record_unknown(m, layer, track);
                        }
                    }
                }
            }
            Way::Button => {
                let (custom, next) = match &want {
                    Label::Void => (format!("v1:p:{}:void", p.prompt), Some(Label::Void)),
                    Label::Sublists(set) => {
                        let Some(s) = set.iter().next() else { return };
                        let base = self.member_label(layer, track).await;
                        (
                            format!("v1:p:{}:s:{}", p.prompt, s.0),
                            toggle(mutual, complete, base, *s, true),
                        )
                    }
                };
                self.press(m, p, layer, track, &custom, None, next).await;
            }
            Way::Menu => {
                let values: Vec<String> = want.sublists().iter().map(|s| s.0.to_string()).collect();
                let next = Some(want.clone()).filter(|l| !(l.is_void() && complete));
                let custom = format!("v1:p:{}:menu", p.prompt);
                self.press(m, p, layer, track, &custom, Some(values), next)
                    .await;
            }
        }
    }

    /// Presses a prompt's button (or chooses in its menu) and records the answer it gives.
    #[allow(clippy::too_many_arguments)]
    async fn press(
        &mut self,
        m: usize,
        p: &Shown,
        layer: LayerId,
        track: &TrackId,
        custom: &str,
        values: Option<Vec<String>>,
        next: Option<Label>,
    ) {
        if !p.ids.iter().any(|i| i == custom) {
            // A sublist added after the prompt was posted has no button on it.
            return;
        }
        let user = self.members[m].id;
        let values_ref: Option<Vec<&str>> = values
            .as_ref()
            .map(|v| v.iter().map(String::as_str).collect());
        match self
            .rig
            .press(user, p.channel, p.message, custom, values_ref)
            .await
        {
            Ok(r) if r.callback["type"] == 7 => {
                if !custom.ends_with(":skip") {
                    self.record(m, layer, track, next);
                }
            }
            Ok(r) => self.note(format!("a prompt answered {custom} with: {}", r.text)),
            Err(e) => {
                self.note(e);
                self.record_unknown(m, layer, track);
            }
        }
    }

    fn record(&mut self, m: usize, layer: LayerId, track: &TrackId, next: Option<Label>) {
        let now = self.now();
        let why = self.why();
        let member = &mut self.members[m];
        member.last_change = now;
        if let Some(l) = member.layer_mut(layer) {
            l.set(track, next.map(|l| Expect::Is(l, LabelSource::Member)), why);
        }
    }

    fn record_unknown(&mut self, m: usize, layer: LayerId, track: &TrackId) {
        let now = self.now();
        let why = self.why();
        let member = &mut self.members[m];
        member.last_change = now;
        if let Some(l) = member.layer_mut(layer) {
            l.set(track, Some(Expect::Unknown), why);
        }
    }

    /// The label the bot starts an answer from: the member's own, if any.
    async fn member_label(&self, layer: LayerId, track: &TrackId) -> Option<Label> {
        match self.rig.store().label(layer, track).await {
            Ok(Some(l)) if l.source == LabelSource::Member => Some(l.label),
            _ => None,
        }
    }

    /// The layer and track a prompt asks about, if it is the member's and the layer lives.
    async fn prompt_target(&self, m: usize, prompt: i64) -> Option<(LayerId, TrackId)> {
        let p = self
            .rig
            .store()
            .prompt(PromptId(prompt))
            .await
            .ok()
            .flatten()?;
        let member = &self.members[m];
        (p.member.0 == member.id && member.layer(p.layer).is_some()).then_some((p.layer, p.track))
    }

    async fn skip(&mut self, m: usize, rng: &mut StdRng) {
        let open: Vec<Shown> = self
            .shown(m)
            .await
            .into_iter()
            .filter(|s| !s.answered)
            .collect();
        let Some(p) = open.choose(rng).cloned() else {
            return;
        };
        let Some((layer, track)) = self.prompt_target(m, p.prompt).await else {
            return;
        };
        let custom = format!("v1:p:{}:skip", p.prompt);
        self.press(m, &p, layer, &track, &custom, None, None).await;
    }

    /// Changes an earlier answer to another one.
    async fn change(&mut self, m: usize, rng: &mut StdRng) {
        let done: Vec<Shown> = self
            .shown(m)
            .await
            .into_iter()
            .filter(|s| s.answered)
            .collect();
        let Some(p) = done.choose(rng).cloned() else {
            return;
        };
        let Some((layer, track)) = self.prompt_target(m, p.prompt).await else {
            return;
        };
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let Some(s) = l.subs.choose(rng) else { return };
        let want = if l.mutual {
            Label::one(s.id)
        } else {
            let mut set: BTreeSet<SublistId> = l
                .subs
                .iter()
                .filter(|_| rng.random_bool(0.4))
                .map(|x| x.id)
                .collect();
            set.insert(s.id);
            Label::Sublists(set)
        };
        self.give(m, &p, layer, &track, Way::Button, want).await;
    }

    /// Takes back one reaction the member added.
    async fn take_back(&mut self, m: usize, rng: &mut StdRng) {
        let mut mine: Vec<(u64, String)> = self.members[m].reactions.iter().cloned().collect();
        mine.sort();
        let Some((message, emoji)) = mine.choose(rng).cloned() else {
            return;
        };
        self.members[m].reactions.remove(&(message, emoji.clone()));
        let Some(p) = self
            .shown(m)
            .await
            .into_iter()
            .find(|s| s.message == message)
        else {
            return;
        };
        let Some((layer, track)) = self.prompt_target(m, p.prompt).await else {
            return;
        };
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let (mutual, complete) = (l.mutual, l.complete);
        let target = l.subs.iter().find(|s| s.emoji == emoji).map(|s| s.id);
        if target.is_none() && emoji != VOID_EMOJI {
            return;
        }
        let base = self.member_label(layer, &track).await;
        let next = match target {
            Some(s) => toggle(mutual, complete, base, s, false),
            None => void(complete, base, false),
        };
        let user = self.members[m].id;
        match self
            .rig
            .react(user, p.channel, message, &emoji, false)
            .await
        {
            Ok(()) => {
                if next.is_none() {
                    self.members[m].reopened.insert(p.prompt);
                }
                self.record(m, layer, &track, next);
            }
            Err(e) => {
                self.note(e);
                self.record_unknown(m, layer, &track);
            }
        }
    }

    async fn edit_sublist(&mut self, m: usize, rng: &mut StdRng) {
        let Some(l) = self.members[m].layers.choose(rng) else {
            return;
        };
        let Some(s) = l.subs.choose(rng) else { return };
        let (layer, layer_name, sid, old) = (l.id, l.name.clone(), s.id, s.name.clone());
        let rename = rng.random_bool(0.5);
        let (option, value) = if rename {
            let free: Vec<&str> = SUBLIST_NAMES
                .iter()
                .copied()
                .filter(|n| !l.subs.iter().any(|s| s.name == *n))
                .collect();
            let Some(n) = free.choose(rng) else { return };
            ("new_name", n.to_string())
        } else {
            let free: Vec<&str> = EMOJIS
                .iter()
                .copied()
                .filter(|e| !l.subs.iter().any(|s| s.emoji == *e))
                .collect();
            let Some(e) = free.choose(rng) else { return };
            ("emoji", e.to_string())
        };
        let user = self.members[m].id;
        let r = self
            .rig
            .command(
                user,
                "layers",
                sub(
                    "edit",
                    json!([
                        opt("layer", 3, json!(layer_name)),
                        opt("sublist", 3, json!(old)),
                        opt(option, 3, json!(value))
                    ]),
                ),
            )
            .await;
        match r {
            Ok(r) if r.text.contains(" is now ") => {
                if let Some(s) = self.members[m]
                    .layer_mut(layer)
                    .and_then(|l| l.subs.iter_mut().find(|s| s.id == sid))
                {
                    if rename {
                        s.name = value;
                    } else {
                        s.emoji = value;
                    }
                }
            }
            Ok(r) => self.note(format!("/layers edit answered: {}", r.text)),
            Err(e) => self.note(format!("/layers edit: {e}")),
        }
    }

    /// The playlist the store holds for a sublist.
    async fn playlist_of(&self, layer: LayerId, s: SublistId) -> Option<String> {
        let l = self.rig.store().layer(layer).await.ok().flatten()?;
        l.sublist(s)?.playlist_id.clone()
    }

    async fn remove_sublist(&mut self, m: usize, rng: &mut StdRng) {
        let layers: Vec<LayerId> = self.members[m]
            .layers
            .iter()
            .filter(|l| l.subs.len() >= 3)
            .map(|l| l.id)
            .collect();
        let Some(&layer) = layers.choose(rng) else {
            return;
        };
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let Some(s) = l.subs.choose(rng) else { return };
        let (sid, name, layer_name) = (s.id, s.name.clone(), l.name.clone());
        let playlist = self.playlist_of(layer, sid).await;
        let user = self.members[m].id;
        let r = self
            .rig
            .command(
                user,
                "layers",
                sub(
                    "remove",
                    json!([
                        opt("layer", 3, json!(layer_name)),
                        opt("sublist", 3, json!(name))
                    ]),
                ),
            )
            .await;
        match r {
            Ok(r) if r.text.contains("removed from") => {
                let now = self.now();
                let why = self.why();
                let member = &mut self.members[m];
                member.released.extend(playlist);
                member.last_change = now;
                if let Some(l) = member.layer_mut(layer) {
                    l.remove_sublist(sid, why);
                }
            }
            Ok(r) => self.note(format!("/layers remove answered: {}", r.text)),
            Err(e) => self.note(format!("/layers remove: {e}")),
        }
    }

    async fn remove_layer(&mut self, m: usize, rng: &mut StdRng) {
        if self.members[m].layers.len() <= 2 {
            return;
        }
        let Some(l) = self.members[m].layers.choose(rng) else {
            return;
        };
        let (layer, name) = (l.id, l.name.clone());
        let playlists: Vec<String> = match self.rig.store().layer(layer).await {
            Ok(Some(l)) => l
                .sublists
                .iter()
                .filter_map(|s| s.playlist_id.clone())
                .collect(),
            _ => Vec::new(),
        };
        let user = self.members[m].id;
        let r = self
            .rig
            .command(
                user,
                "layers",
                sub("remove", json!([opt("layer", 3, json!(name))])),
            )
            .await;
        match r {
            Ok(r) if r.text.starts_with("Layer “") && r.text.contains("removed") => {
                let now = self.now();
                let member = &mut self.members[m];
                member.released.extend(playlists);
                member.layers.retain(|l| l.id != layer);
                member.last_change = now;
            }
            Ok(r) => self.note(format!("/layers remove (layer) answered: {}", r.text)),
            Err(e) => self.note(format!("/layers remove (layer): {e}")),
        }
    }

    /// The member makes a playlist on Spotify by hand and adopts it as a new sublist.
    async fn import(&mut self, m: usize, rng: &mut StdRng) {
        let layers: Vec<LayerId> = self.members[m]
            .layers
            .iter()
            .filter(|l| l.subs.len() < 5)
            .map(|l| l.id)
            .collect();
        let Some(&layer) = layers.choose(rng) else {
            return;
        };
        let member = &self.members[m];
        let (n_liked, n_new) = (rng.random_range(3..8), rng.random_range(1..3));
        let mut tracks: Vec<usize> = member
            .liked
            .choose_multiple(rng, n_liked)
            .copied()
            .collect();
        tracks.extend(member.pool.choose_multiple(rng, n_new));
        let ids: Vec<TrackId> = tracks.iter().map(|t| self.sample.id(*t)).collect();
        self.own_playlists += 1;
        let title = format!("Mix {}", self.own_playlists);
        let user = member.user.clone();
        let playlist = self.rig.spotify.create_playlist(&user, &title, &ids, false);
        self.members[m].own_playlists.push(playlist.clone());
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let Some(emoji) = EMOJIS
            .iter()
            .copied()
            .filter(|e| !l.subs.iter().any(|s| s.emoji == *e))
            .collect::<Vec<_>>()
            .choose(rng)
            .map(|e| e.to_string())
        else {
            return;
        };
        let layer_name = l.name.clone();
        let id = self.members[m].id;
        let r = self
            .rig
            .command(
                id,
                "layers",
                sub(
                    "import",
                    json!([
                        opt("layer", 3, json!(layer_name)),
                        opt("playlist", 3, json!(playlist)),
                        opt("emoji", 3, json!(emoji))
                    ]),
                ),
            )
            .await;
        match r {
            Ok(r) if r.text.contains("now keeps the playlist") => {}
            Ok(r) => return self.note(format!("/layers import answered: {}", r.text)),
            Err(e) => return self.note(format!("/layers import: {e}")),
        }
        let stored = self.rig.store().layer(layer).await.ok().flatten();
        let Some(s) = stored.and_then(|l| l.sublist_by_name(&title).cloned()) else {
            return self.note(format!("the imported sublist {title} was not stored"));
        };
        let now = self.now();
        let why = self.why();
        let member = &mut self.members[m];
        member.last_change = now;
        if let Some(l) = member.layer_mut(layer) {
            l.subs.push(SubM {
                id: s.id,
                name: title,
                emoji,
            });
            // The import is the member's latest word: the track stays in the adopted
            // playlist. In a mutual layer that is its one sublist; in a non-mutual one an
            // answer of theirs gains it.
            let mutual = l.mutual;
            for t in &ids {
                let next = match l.answers.get(t).map(|e| (&e.now, &e.pending)) {
                    _ if mutual => Expect::Is(Label::one(s.id), LabelSource::Imported),
                    None | Some((None, None)) => {
                        Expect::Is(Label::one(s.id), LabelSource::Imported)
                    }
                    Some((Some(Expect::Is(label, _)), None)) => {
                        let mut set = label.sublists();
                        set.insert(s.id);
                        Expect::Is(Label::Sublists(set), LabelSource::Imported)
                    }
                    Some(_) => Expect::Unknown,
                };
                l.set(t, Some(next), why.clone());
            }
        }
    }

    /// Managed playlists of the member that are in their library: (layer, sublist, id).
    async fn managed(&self, m: usize) -> Vec<(LayerId, SublistId, String)> {
        let member = &self.members[m];
        let library: Vec<String> = self
            .rig
            .spotify
            .library_playlists(&member.user)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut out = Vec::new();
        for l in &member.layers {
            let Ok(Some(stored)) = self.rig.store().layer(l.id).await else {
                continue;
            };
            for s in stored.sublists {
                if let Some(p) = s.playlist_id
                    && library.contains(&p)
                {
                    out.push((l.id, s.id, p));
                }
            }
        }
        out
    }

    /// The member adds a liked track to, or takes one out of, a managed playlist on Spotify.
    async fn hand_edit(&mut self, m: usize, add: bool, rng: &mut StdRng) {
        let managed = self.managed(m).await;
        let Some((layer, s, playlist)) = managed.choose(rng).cloned() else {
            return;
        };
        let inside = self
            .rig
            .spotify
            .playlist_tracks(&playlist)
            .unwrap_or_default();
        let track = if add {
            let known: Vec<TrackId> = self
                .rig
                .store()
                .liked_ids(MemberId(self.members[m].id))
                .await
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !inside.contains(t))
                .collect();
            known.choose(rng).cloned()
        } else if inside.len() >= 2 {
            inside.choose(rng).cloned()
        } else {
            None
        };
        let Some(track) = track else { return };
        let Some(l) = self.members[m].layer(layer) else {
            return;
        };
        let (mutual, complete) = (l.mutual, l.complete);
        // A hand edit changes the member's own answer (the model's guess is not theirs).
        let base: Option<Label> = match self.rig.store().label(layer, &track).await {
            Ok(Some(l)) if l.source.is_ground_truth() => Some(l.label),
            _ => None,
        };
        let rest: BTreeSet<SublistId> = base
            .as_ref()
            .map(Label::sublists)
            .unwrap_or_default()
            .into_iter()
            .filter(|x| *x != s)
            .collect();
        let next = match (add, mutual) {
            (true, true) => Some(Expect::Is(Label::one(s), LabelSource::Member)),
            (true, false) => Some(Expect::Has(s)),
            // Nothing of theirs is left: the void, or asked again in a complete layer.
            (false, _) if rest.is_empty() && complete => None,
            (false, _) if rest.is_empty() => Some(Expect::Is(Label::Void, LabelSource::Member)),
            (false, _) => Some(Expect::Lacks(s)),
        };
        // A track taken out stays out while a label of the member's says so. Cleared in a
        // complete layer, it waits for an answer, and a confident guess may place it in that
        // sublist again: nothing records "not here" without a label.
        let cleared = rest.is_empty() && complete;
        let stays_out = !add && !cleared;
        if add {
            self.rig
                .spotify
                .hand_add(&playlist, std::slice::from_ref(&track));
        } else {
            self.rig
                .spotify
                .hand_remove(&playlist, std::slice::from_ref(&track));
        }
        let now = self.now();
        let why = self.why();
        let member = &mut self.members[m];
        member.last_change = now;
        member.last_hand_edit = now;
        if let Some(l) = member.layer_mut(layer) {
            l.set_pending(&track, next, now, why);
            if stays_out {
                l.taken_out.insert((track, s));
            } else {
                l.taken_out.remove(&(track, s));
            }
        }
    }

    async fn delete_playlist(&mut self, m: usize, rng: &mut StdRng) {
        let managed = self.managed(m).await;
        let Some((_, _, playlist)) = managed.choose(rng).cloned() else {
            return;
        };
        let user = self.members[m].user.clone();
        self.rig.spotify.delete_playlist(&user, &playlist);
        self.members[m].last_change = self.now();
        self.members[m].last_hand_edit = self.now();
    }

    pub async fn train(&mut self, m: usize, rng: &mut StdRng) {
        let member = &self.members[m];
        if member.layers.is_empty() {
            return;
        }
        let options = if rng.random_bool(0.7) {
            let Some(l) = member.layers.choose(rng) else {
                return;
            };
            sub("start", json!([opt("layer", 3, json!(l.name))]))
        } else {
            sub("start", json!([]))
        };
        let user = member.id;
        match self.rig.command(user, "train", options).await {
            Ok(r) if r.text.starts_with("Training ") => {
                self.train_replies.push((m, r.id, self.hour));
            }
            Ok(r) => self.note(format!("/train answered: {}", r.text)),
            Err(e) => self.note(format!("/train: {e}")),
        }
    }

    async fn refresh(&mut self, m: usize) {
        let user = self.members[m].id;
        let started = self.now();
        match self.rig.command(user, "refresh", json!([])).await {
            Ok(r) => {
                let ok = r.text.starts_with("**Sublists refreshed");
                self.refreshes.push(InlineRefresh {
                    member: m,
                    started,
                    ok,
                });
                if !ok && !r.text.contains("was used a moment ago") {
                    self.note(format!("/refresh answered: {}", r.text));
                }
            }
            Err(e) => self.note(format!("/refresh: {e}")),
        }
    }

    async fn label(&mut self, m: usize, rng: &mut StdRng) {
        let member = &self.members[m];
        let mut options = vec![opt("count", 4, json!(rng.random_range(1..=5)))];
        if rng.random_bool(0.5)
            && let Some(l) = member.layers.choose(rng)
        {
            options.push(opt("layer", 3, json!(l.name)));
        }
        let user = member.id;
        // Prompts asked (or asked again) by this /label: new rows, or rows made anew.
        let asked = |rig: &Rig| {
            let reader = rig.reader.clone();
            async move {
                sqlx::query_as::<_, (i64, String)>(
                    "SELECT id, created_at FROM prompts WHERE member_id = ?",
                )
                .bind(user as i64)
                .fetch_all(&reader)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect::<HashSet<(i64, String)>>()
            }
        };
        let before = asked(&self.rig).await;
        if let Err(e) = self.rig.command(user, "label", json!(options)).await {
            return self.note(format!("/label: {e}"));
        }
        let made: Vec<i64> = asked(&self.rig)
            .await
            .difference(&before)
            .map(|(id, _)| *id)
            .collect();
        self.members[m].requested.extend(made);
    }

    async fn prompt_place(&mut self, m: usize, dm: bool) {
        let user = self.members[m].id;
        let r = self
            .rig
            .command(
                user,
                "settings",
                json!([opt("prompts", 4, json!(if dm { 0 } else { 1 }))]),
            )
            .await;
        match r {
            Ok(r) if r.text.contains("**Prompts**") => self.members[m].prompts_in_dm = dm,
            Ok(r) => self.note(format!("/settings answered: {}", r.text)),
            Err(e) => self.note(format!("/settings: {e}")),
        }
    }

    /// `/unlink` (when linked), then `/link` again.
    async fn relink(&mut self, m: usize) {
        let user = self.members[m].id;
        if self.members[m].relink_at.is_none() {
            match self.rig.command(user, "unlink", json!([])).await {
                Ok(r) if r.text.starts_with("Unlinked") => {}
                Ok(r) => self.note(format!("/unlink answered: {}", r.text)),
                Err(e) => self.note(format!("/unlink: {e}")),
            }
        }
        self.members[m].linked = false;
        match self.link(m).await {
            Ok(()) => {}
            Err(e) => {
                self.note(format!("member {m} could not link again: {e}"));
                // Try again in a day.
                self.members[m].relink_at = Some(self.hour + 24);
            }
        }
    }

    /// `/forget-me`, confirmed; sometimes while a `/refresh` of theirs still runs.
    async fn forget(&mut self, m: usize, rng: &mut StdRng) {
        let user = self.members[m].id;
        if rng.random_bool(0.5) {
            // A refresh in flight: not waited for here.
            let id = 940_000_000_000_000_000 + u64::from(self.hour) * 100 + m as u64;
            self.inflight.push(id);
            self.rig
                .discord
                .dispatch(
                    "INTERACTION_CREATE",
                    crate::discord_fake::slash(id, user, "refresh", json!([])),
                )
                .await;
        }
        // The playlists stay on Spotify, no longer kept.
        let kept: Vec<String> = self
            .rig
            .store()
            .layers(MemberId(user))
            .await
            .unwrap_or_default()
            .into_iter()
            .flat_map(|l| l.sublists.into_iter().filter_map(|s| s.playlist_id))
            .collect();
        self.members[m].released.extend(kept);
        // The messages the store still points at (prompts and recorded announcements).
        let known: Vec<i64> = sqlx::query_scalar(
            "SELECT message_id FROM prompts WHERE member_id = ?1 AND message_id IS NOT NULL \
             UNION SELECT message_id FROM member_messages WHERE member_id = ?1",
        )
        .bind(user as i64)
        .fetch_all(&self.rig.reader)
        .await
        .unwrap_or_default();
        self.checks.known_messages(m, known);
        let r = match self.rig.command(user, "forget-me", json!([])).await {
            Ok(r) => r,
            Err(e) => return self.note(format!("/forget-me: {e}")),
        };
        let Some(yes) = custom_ids(&r.callback["data"]["components"])
            .into_iter()
            .find(|c| c.ends_with(":yes"))
        else {
            return self.note(format!("/forget-me offered no confirmation: {}", r.text));
        };
        match self
            .rig
            .press(user, self.rig.channel(), 1, &yes, None)
            .await
        {
            Ok(r) if r.text.starts_with("Done") => {}
            Ok(r) => return self.note(format!("/forget-me confirmation answered: {}", r.text)),
            Err(e) => return self.note(format!("/forget-me confirmation: {e}")),
        }
        let back = self.hour + rng.random_range(48..120);
        let now = self.now();
        let member = &mut self.members[m];
        member.presence = Presence::Forgotten { back };
        member.linked = false;
        member.relink_at = None;
        member.layers.clear();
        member.reactions.clear();
        member.requested.clear();
        member.reopened.clear();
        member.last_change = now;
        let last = self
            .rig
            .discord
            .messages_where(|_| true)
            .last()
            .map_or(0, |msg| msg.id);
        self.checks.forgotten(m, now, last);
    }

    /// A forgotten member comes back: links again and makes new layers.
    async fn come_back(&mut self, m: usize) {
        self.members[m].presence = Presence::Active;
        let mut rng = self.rng(300 + m as u64);
        self.join(m, &mut rng).await;
    }
}

fn member_of(ev: Event) -> Option<usize> {
    use Event::*;
    match ev {
        Like(m)
        | Unlike(m)
        | Answer(m, _)
        | Skip(m)
        | Change(m)
        | TakeBack(m)
        | AddSublist(m)
        | EditSublist(m)
        | RemoveSublist(m)
        | AddLayer(m)
        | RemoveLayer(m)
        | Import(m)
        | HandAdd(m)
        | HandRemove(m)
        | DeletePlaylist(m)
        | Train(m)
        | Refresh(m)
        | Label(m)
        | Status(m)
        | PromptPlace(m)
        | Relink(m)
        | Forget(m)
        | Revoke(m)
        | CloseDms(m) => Some(m),
        _ => None,
    }
}

/// The label after toggling sublist `s`, as a member means it; None when nothing is left
/// (taking back the one answer of a mutual or complete layer leaves the track unanswered).
fn toggle(
    mutual: bool,
    complete: bool,
    base: Option<Label>,
    s: SublistId,
    on: bool,
) -> Option<Label> {
    let mut set = base.as_ref().map(Label::sublists).unwrap_or_default();
    if !on && !set.contains(&s) {
        // Nothing to take back; a complete layer still has no void.
        return base.filter(|l| !(l.is_void() && complete));
    }
    if on && mutual {
        set = BTreeSet::from([s]);
    } else if on {
        set.insert(s);
    } else {
        set.remove(&s);
    }
    let next = Label::from_set(set);
    if next.is_void() && (complete || (!on && mutual)) {
        return None;
    }
    Some(next)
}

/// The label after the void's reaction is added or taken back.
fn void(complete: bool, base: Option<Label>, on: bool) -> Option<Label> {
    if complete {
        return base;
    }
    match (on, base) {
        (true, _) => Some(Label::Void),
        (false, Some(Label::Void)) => None,
        (false, other) => other,
    }
}

/// Every custom id in a message's components.
pub(super) fn custom_ids(components: &Value) -> Vec<String> {
    components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().into_iter().flatten())
        .filter_map(|c| c["custom_id"].as_str().map(String::from))
        .collect()
}

/// The prompt id in a prompt component's custom id (`v1:p:<id>:…`).
pub(super) fn prompt_of(custom: &str) -> Option<i64> {
    let mut parts = custom.split(':');
    (parts.next()? == "v1" && parts.next()? == "p")
        .then(|| parts.next()?.parse().ok())
        .flatten()
}

/// Opens a consent page like a browser whose user clicks Agree; the address it ends on.
async fn authorize(url: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .ok_or_else(|| format!("the consent page did not redirect ({})", resp.status()))
}
