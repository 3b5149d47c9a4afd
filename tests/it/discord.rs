//! The Discord bot end to end: a real poise framework and serenity client against the local
//! fake Discord (`discord_fake`), with a real store on a fresh SQLite file and a small
//! in-test backend standing in for Spotify, learning and the job queue. Every request the bot
//! sends is checked against Discord's own OpenAPI description.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use sublist::discord::{
    self, Backend, BackendError, BotOptions, Forgotten, Guess, Imported, JobId, LayerRefresh,
    LinkStart, LinkState, LinkToConfirm, Linked, MemberStatus, PlaylistSummary, PromptRequest,
    RefreshSummary, TrainJob, TrainResult, TrainTicket, TrainUpdate, Why, WhyBasis,
};
use sublist::domain::{
    Label, LabelSource, Layer, LayerId, LayerRules, MemberId, SublistId, Track, TrackId,
};
use sublist::store::{PromptState, Store};

use crate::discord_fake::{
    APP_ID, BOT_ID, CHANNEL_ID, DM_OFFSET, FakeDiscord, Recorded, component, reaction, slash, sub,
    with_permissions,
};
use crate::openapi::Spec;

const ADA: u64 = 600_000_000_000_000_001;
const BOB: u64 = 600_000_000_000_000_002;
const ANNOUNCE: u64 = 720_000_000_000_000_009;

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        Spec::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/spec/discord-openapi.json"
        ))
        .expect("Discord's OpenAPI file loads")
    })
}

fn track(n: u32) -> Track {
    let id = format!("{n:0>22}");
    let mut t = Track::bare(TrackId::parse(&id).unwrap(), format!("Song {n}"));
    t.artists = vec![(None, "Ada Band".into())];
    t.album_name = Some("First Album".into());
    t.image_url = Some("https://i.scdn.co/image/cover".into());
    t
}

/// Stands in for `app`: answers plausibly, from the store where it can.
struct TestBackend {
    store: Store,
    tracks: Vec<Track>,
    link: Mutex<Option<oneshot::Sender<Result<LinkToConfirm, BackendError>>>>,
    /// Progress senders of trainings that never end in this process (layer "Slow").
    stalled: Arc<Mutex<Vec<Progress>>>,
}

/// The sending side of a training's progress.
type Progress = mpsc::Sender<(usize, TrainUpdate)>;

fn trained() -> TrainUpdate {
    TrainUpdate::Done(TrainResult {
        accuracy: 0.84,
        previous_accuracy: None,
        summary: "3 tracks would now go elsewhere.".into(),
    })
}

#[sublist::discord::async_trait]
impl Backend for TestBackend {
    async fn begin_link(&self, _member: MemberId) -> Result<LinkStart, BackendError> {
        let (tx, rx) = oneshot::channel();
        *self.link.lock().unwrap() = Some(tx);
        Ok(LinkStart {
            consent_url: "https://accounts.spotify.com/authorize?client_id=abc&state=s1".into(),
            completed: rx,
        })
    }

    async fn complete_link(
        &self,
        _member: MemberId,
        url: &str,
    ) -> Result<LinkToConfirm, BackendError> {
        if !url.contains("code=") {
            return Err(BackendError::refused(
                "That address has no `code`: paste the whole address your browser ended on.",
            ));
        }
        let pending = LinkToConfirm {
            display_name: "Ada".into(),
            user_id: "ada".into(),
        };
        if let Some(tx) = self.link.lock().unwrap().take() {
            let _ = tx.send(Ok(pending.clone()));
        }
        Ok(pending)
    }

    async fn confirm_link(&self, _member: MemberId) -> Result<Linked, BackendError> {
        Ok(Linked {
            display_name: "Ada".into(),
            liked_songs: 1240,
        })
    }

    async fn cancel_link(&self, _member: MemberId) -> Result<(), BackendError> {
        Ok(())
    }

    async fn unlink(&self, _member: MemberId) -> Result<(), BackendError> {
        Ok(())
    }

    async fn forget_member(&self, member: MemberId) -> Result<Forgotten, BackendError> {
        let messages = self
            .store
            .forget_member(member)
            .await
            .map_err(|e| BackendError::Internal(e.into()))?
            .unwrap_or_default();
        Ok(Forgotten { messages })
    }

    async fn playlists(&self, _member: MemberId) -> Result<Vec<PlaylistSummary>, BackendError> {
        Ok(vec![PlaylistSummary {
            id: "37i9dQZF1DXcBWIGoYBM5M".into(),
            name: "Night drive".into(),
            tracks: 2,
        }])
    }

    async fn import_playlist(
        &self,
        _member: MemberId,
        layer: LayerId,
        _playlist_id: &str,
        name: &str,
        emoji: &str,
    ) -> Result<Imported, BackendError> {
        let internal = |e: sublist::store::StoreError| BackendError::Internal(e.into());
        let s = self
            .store
            .add_sublist(layer, name, emoji)
            .await
            .map_err(internal)?;
        Ok(Imported {
            sublist: s.id,
            labelled: 2,
        })
    }

    async fn pick_prompts(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
        count: u32,
    ) -> Result<Vec<PromptRequest>, BackendError> {
        let internal = |e: sublist::store::StoreError| BackendError::Internal(e.into());
        let mut out = Vec::new();
        for l in self.store.layers(member).await.map_err(internal)? {
            if layer.is_some_and(|id| id != l.id) || l.sublists.is_empty() {
                continue;
            }
            for t in &self.tracks {
                if self
                    .store
                    .label(l.id, &t.id)
                    .await
                    .map_err(internal)?
                    .is_none()
                {
                    out.push(PromptRequest {
                        member,
                        layer: l.id,
                        track: t.clone(),
                        guess: Some(Guess {
                            label: Label::one(l.sublists[0].id),
                            confidence: 0.55,
                            why: None,
                        }),
                    });
                }
            }
        }
        out.truncate(count as usize);
        Ok(out)
    }

    /// One job per layer: it runs, then ends done, except in layer "Sparse" (refused) and
    /// "Slow" (its process stops before it ends).
    async fn queue_training(
        &self,
        member: MemberId,
        layer: Option<LayerId>,
    ) -> Result<TrainTicket, BackendError> {
        let layers = self
            .store
            .layers(member)
            .await
            .map_err(|e| BackendError::Internal(e.into()))?;
        let names: Vec<String> = layers
            .into_iter()
            .filter(|l| layer.is_none_or(|id| id == l.id))
            .map(|l| l.name)
            .collect();
        let jobs = names
            .iter()
            .enumerate()
            .map(|(i, name)| TrainJob {
                job: JobId(17 + i as i64),
                layer_name: name.clone(),
                position: 2 + i as u32,
            })
            .collect();
        let (tx, rx) = mpsc::channel(8);
        let stalled = self.stalled.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            for (i, name) in names.iter().enumerate() {
                let running = TrainUpdate::Running {
                    epoch: 10,
                    epochs: 50,
                };
                let _ = tx.send((i, running)).await;
                let end = match name.as_str() {
                    "Sparse" => TrainUpdate::Failed(
                        "The layer “Sparse” has 1 labelled track(s); label a few more.".into(),
                    ),
                    "Slow" => {
                        stalled.lock().unwrap().push(tx.clone());
                        continue;
                    }
                    _ => trained(),
                };
                let _ = tx.send((i, end)).await;
            }
        });
        Ok(TrainTicket { jobs, progress: rx })
    }

    /// Jobs queued before a restart: they all ended done meanwhile.
    async fn follow_training(
        &self,
        _member: MemberId,
        jobs: &[JobId],
    ) -> Result<mpsc::Receiver<(usize, TrainUpdate)>, BackendError> {
        let (tx, rx) = mpsc::channel(8);
        for i in 0..jobs.len() {
            let _ = tx.send((i, trained())).await;
        }
        Ok(rx)
    }

    async fn cancel_training(&self, _member: MemberId) -> Result<u32, BackendError> {
        Ok(1)
    }

    async fn refresh(&self, member: MemberId) -> Result<RefreshSummary, BackendError> {
        let layers = self
            .store
            .layers(member)
            .await
            .map_err(|e| BackendError::Internal(e.into()))?;
        Ok(RefreshSummary {
            new_tracks: 3,
            layers: layers
                .iter()
                .map(|l| LayerRefresh {
                    layer: l.id,
                    layer_name: l.name.clone(),
                    added: l
                        .sublists
                        .iter()
                        .take(1)
                        .map(|s| (s.name.clone(), 2))
                        .collect(),
                    to_void: 0,
                    waiting: 1,
                })
                .collect(),
        })
    }

    async fn status(&self, _member: MemberId) -> Result<MemberStatus, BackendError> {
        Ok(MemberStatus {
            link: LinkState::NotLinked,
            last_sync: None,
            liked_songs: 0,
            jobs: Vec::new(),
            quota_paused_until: None,
        })
    }
}

struct Harness {
    fake: FakeDiscord,
    store: Store,
    backend: Arc<TestBackend>,
    bot: Option<discord::Bot>,
    next_id: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_at(&dir.path().join("bot.db"), &[9; 32])
            .await
            .unwrap();
        let tracks: Vec<Track> = (1..=6).map(track).collect();
        store.upsert_tracks(&tracks).await.unwrap();
        let backend = Arc::new(TestBackend {
            store: store.clone(),
            tracks,
            link: Mutex::new(None),
            stalled: Arc::default(),
        });
        let mut h = Harness {
            fake: FakeDiscord::start().await,
            store,
            backend,
            bot: None,
            next_id: AtomicU64::new(950_000_000_000_000_001),
            _dir: dir,
        };
        h.start_bot().await;
        h
    }

    async fn start_bot(&mut self) {
        let before = self.fake.sessions_started();
        let options = BotOptions {
            token: SecretString::from("fake-token"),
            api_base: Some(url::Url::parse(&self.fake.rest_url).unwrap()),
            guild_id: None,
            register_commands: true,
        };
        let bot = discord::start(options, self.store.clone(), self.backend.clone())
            .await
            .expect("the bot starts");
        self.bot = Some(bot);
        self.fake.wait_sessions(before + 1).await;
        self.fake
            .wait_for("the commands registered", |r| {
                r.method == "PUT" && r.path == format!("/applications/{APP_ID}/commands")
            })
            .await;
    }

    /// Stops the bot (its in-memory state goes with it) and starts a new one on the same
    /// database.
    async fn restart(&mut self) {
        if let Some(bot) = self.bot.take() {
            bot.shutdown().await;
        }
        self.start_bot().await;
    }

    fn notifier(&self) -> discord::Notifier {
        self.bot.as_ref().unwrap().notifier()
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Runs a slash command and returns the interaction id and the callback's body.
    async fn command(&self, user: u64, name: &str, options: Value) -> (u64, Value) {
        let id = self.id();
        self.fake
            .dispatch("INTERACTION_CREATE", slash(id, user, name, options))
            .await;
        (id, self.fake.callback(id).await)
    }

    /// Runs a slash command that answers privately at once and returns its text.
    async fn reply(&self, user: u64, name: &str, options: Value) -> String {
        let (_, cb) = self.command(user, name, options).await;
        assert_eq!(cb["type"], 4, "an immediate message: {cb}");
        assert_eq!(cb["data"]["flags"], 64, "private: {cb}");
        cb["data"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn layer(
        &self,
        name: &str,
        mutual: bool,
        complete: bool,
        subs: &[(&str, &str)],
    ) -> Layer {
        let l = self
            .store
            .create_layer(MemberId(ADA), name, LayerRules { mutual, complete })
            .await
            .unwrap();
        for (n, e) in subs {
            self.store.add_sublist(l.id, n, e).await.unwrap();
        }
        self.store.layer(l.id).await.unwrap().unwrap()
    }

    /// Posts one prompt for `track` in `layer`; returns (prompt id, channel, message).
    async fn post(&self, layer: &Layer, n: u32) -> (sublist::store::PromptId, u64, u64) {
        let req = PromptRequest {
            member: MemberId(ADA),
            layer: layer.id,
            track: track(n),
            guess: None,
        };
        let out = self
            .notifier()
            .post_prompts(MemberId(ADA), vec![req])
            .await
            .unwrap();
        let id = out.posted[0];
        let p = self.store.prompt(id).await.unwrap().unwrap();
        (id, p.channel_id.unwrap(), p.message_id.unwrap())
    }

    /// The body of the `n`th edit (from 1) of a message, once it arrives.
    async fn nth_edit(&self, channel: u64, message: u64, n: usize) -> Value {
        let path = format!("/channels/{channel}/messages/{message}");
        for _ in 0..500 {
            let got: Vec<Recorded> = self
                .fake
                .requests()
                .into_iter()
                .filter(|r| r.method == "PATCH" && r.path == path)
                .collect();
            if got.len() >= n {
                return got[n - 1].body.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("edit {n} of the prompt never came");
    }

    async fn label(&self, layer: &Layer, n: u32) -> Option<Label> {
        self.store
            .label(layer.id, &track(n).id)
            .await
            .unwrap()
            .map(|l| {
                assert_eq!(l.source, LabelSource::Member);
                l.label
            })
    }

    /// Checks every request the bot sent against Discord's OpenAPI description, then stops it.
    async fn finish(mut self) {
        validate_all(&self.fake.requests());
        if let Some(bot) = self.bot.take() {
            bot.shutdown().await;
        }
    }
}

fn validate_all(requests: &[Recorded]) {
    let mut checked = 0;
    for r in requests {
        if r.body.is_null() {
            continue;
        }
        if let Err(e) = spec().validate_request(&r.method, &r.path, &r.body) {
            panic!(
                "{} {} sent a body Discord would refuse:\n{e}\n{}",
                r.method, r.path, r.body
            );
        }
        checked += 1;
    }
    assert!(checked > 0, "no request bodies were checked");
}

fn opt(name: &str, kind: u8, value: Value) -> Value {
    json!({"name": name, "type": kind, "value": value})
}

fn custom_ids(components: &Value) -> Vec<String> {
    components
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row["components"].as_array().unwrap().iter())
        .map(|c| c["custom_id"].as_str().unwrap_or("<link>").to_string())
        .collect()
}

fn set(ids: &[SublistId]) -> Label {
    Label::from_set(ids.iter().copied().collect::<BTreeSet<_>>())
}

#[tokio::test]
async fn layers_create_add_sublist_and_list() {
    let h = Harness::new().await;
    let text = h
        .reply(
            ADA,
            "layers",
            sub(
                "create",
                json!([
                    opt("name", 3, json!("Mood")),
                    opt("mutual", 5, json!(true)),
                    opt("complete", 5, json!(false))
                ]),
            ),
        )
        .await;
    assert!(
        text.starts_with("Layer “Mood” created (mutual, incomplete"),
        "{text}"
    );
    for (name, emoji) in [("Calm", "🌙"), ("Loud", "🔥")] {
        let text = h
            .reply(
                ADA,
                "layers",
                sub(
                    "add-sublist",
                    json!([
                        opt("layer", 3, json!("mood")),
                        opt("name", 3, json!(name)),
                        opt("emoji", 3, json!(emoji))
                    ]),
                ),
            )
            .await;
        assert!(
            text.starts_with(&format!("{emoji} “{name}” added to “Mood”")),
            "{text}"
        );
    }
    let layers = h.store.layers(MemberId(ADA)).await.unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].sublists.len(), 2);
    h.store
        .set_label(
            &layers[0],
            &track(1).id,
            &Label::one(layers[0].sublists[1].id),
            LabelSource::Member,
            None,
        )
        .await
        .unwrap();

    let text = h.reply(ADA, "layers", sub("list", json!([]))).await;
    assert!(text.contains("**Mood** (mutual, incomplete"), "{text}");
    assert!(text.contains("no model yet"), "{text}");
    assert!(text.contains("- 🌙 Calm: 0 labels"), "{text}");
    assert!(text.contains("- 🔥 Loud: 1 label\n"), "{text}");
    assert!(text.contains("the void: 0 labels"), "{text}");
    h.finish().await;
}

#[tokio::test]
async fn a_new_track_is_posted_with_its_reactions_and_buttons_and_keeps_its_why() {
    let h = Harness::new().await;
    let layer = h
        .layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let (calm, loud) = (layer.sublists[0].id, layer.sublists[1].id);
    let req = PromptRequest {
        member: MemberId(ADA),
        layer: layer.id,
        track: track(1),
        guess: Some(Guess {
            label: Label::one(loud),
            confidence: 0.62,
            why: Some(Why {
                basis: WhyBasis::Artist,
                tracks: vec!["Song 7".into(), "Song 9".into()],
            }),
        }),
    };
    let out = h
        .notifier()
        .post_prompts(MemberId(ADA), vec![req])
        .await
        .unwrap();
    assert_eq!(out.posted.len(), 1);
    let pid = out.posted[0].0;

    let dm = ADA + DM_OFFSET;
    h.fake
        .wait_for("opening a DM", |r| {
            r.method == "POST" && r.path == "/users/@me/channels"
        })
        .await;
    let msg = h
        .fake
        .wait_for("the prompt", |r| {
            r.method == "POST" && r.path == format!("/channels/{dm}/messages")
        })
        .await
        .body;
    let embed = &msg["embeds"][0];
    assert_eq!(embed["title"], "Song 1");
    assert_eq!(
        embed["url"],
        format!("https://open.spotify.com/track/{}", track(1).id)
    );
    assert_eq!(embed["description"], "by Ada Band\nfrom *First Album*");
    assert_eq!(embed["thumbnail"]["url"], "https://i.scdn.co/image/cover");
    let guess = "🔥 Loud (62% sure): same artist as *Song 7* and *Song 9* you put there";
    assert_eq!(embed["fields"][1]["value"], guess);
    assert_eq!(
        custom_ids(&msg["components"]),
        vec![
            format!("v1:p:{pid}:s:{}", calm.0),
            format!("v1:p:{pid}:s:{}", loud.0),
            format!("v1:p:{pid}:void"),
            format!("v1:p:{pid}:skip"),
        ]
    );
    for emoji in ["🌙", "🔥", "🕳️"] {
        h.fake
            .wait_for(&format!("the {emoji} reaction"), |r| {
                r.method == "PUT" && r.path.ends_with(&format!("/reactions/{emoji}/@me"))
            })
            .await;
    }
    let p = h.store.prompt(out.posted[0]).await.unwrap().unwrap();
    assert_eq!(p.state, PromptState::Open);
    assert_eq!(p.channel_id, Some(dm));

    // An answer redraws the prompt from the store: the guess keeps its evidence.
    let message = p.message_id.expect("the prompt's message is recorded");
    h.fake
        .dispatch("MESSAGE_REACTION_ADD", reaction(ADA, dm, message, "🌙"))
        .await;
    let edit = h.nth_edit(dm, message, 1).await;
    assert_eq!(edit["embeds"][0]["fields"][1]["value"], guess);
    assert_eq!(edit["embeds"][0]["fields"][2]["value"], "🌙 Calm");

    // The same track is not asked twice in a layer.
    let again = PromptRequest {
        member: MemberId(ADA),
        layer: layer.id,
        track: track(1),
        guess: None,
    };
    let out = h
        .notifier()
        .post_prompts(MemberId(ADA), vec![again])
        .await
        .unwrap();
    assert_eq!((out.posted.len(), out.already_asked), (0, 1));
    h.finish().await;
}

#[tokio::test]
async fn many_new_tracks_at_once_become_a_few_prompts_and_a_digest() {
    let h = Harness::new().await;
    let layer = h
        .layer("Mood", true, true, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let reqs: Vec<PromptRequest> = (1..=6)
        .map(|n| PromptRequest {
            member: MemberId(ADA),
            layer: layer.id,
            track: track(n),
            guess: None,
        })
        .collect();
    let out = h
        .notifier()
        .post_prompts(MemberId(ADA), reqs)
        .await
        .unwrap();
    assert_eq!(out.posted.len(), discord::DIGEST_AFTER);
    assert_eq!(out.held_back, 6 - discord::DIGEST_AFTER);
    let dm = ADA + DM_OFFSET;
    let digest = h
        .fake
        .wait_for("the digest", |r| {
            r.path == format!("/channels/{dm}/messages")
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("wait for an answer"))
        })
        .await;
    assert!(
        digest.body["content"]
            .as_str()
            .unwrap()
            .contains("3 more new tracks")
    );
    let prompts = h
        .fake
        .requests()
        .iter()
        .filter(|r| {
            r.path == format!("/channels/{dm}/messages")
                && r.body["embeds"].as_array().is_some_and(|e| !e.is_empty())
        })
        .count();
    assert_eq!(
        prompts,
        discord::DIGEST_AFTER,
        "never more prompts than the budget allows"
    );
    let dm_opened = h
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/users/@me/channels")
        .count();
    assert_eq!(dm_opened, 1, "the DM is opened once, then reused");
    h.finish().await;
}

#[tokio::test]
async fn reactions_label_a_track_and_removing_one_unlabels_in_a_non_mutual_layer() {
    let h = Harness::new().await;
    let layer = h
        .layer("Genre", false, false, &[("Rock", "🎸"), ("Jazz", "🎷")])
        .await;
    let (rock, jazz) = (layer.sublists[0].id, layer.sublists[1].id);
    let (_, channel, message) = h.post(&layer, 1).await;
    let edits = |n: usize| h.nth_edit(channel, message, n);

    h.fake
        .dispatch(
            "MESSAGE_REACTION_ADD",
            reaction(ADA, channel, message, "🎸"),
        )
        .await;
    let edit = edits(1).await;
    assert_eq!(edit["embeds"][0]["fields"][2]["value"], "🎸 Rock");
    assert_eq!(h.label(&layer, 1).await, Some(set(&[rock])));

    h.fake
        .dispatch(
            "MESSAGE_REACTION_ADD",
            reaction(ADA, channel, message, "🎷"),
        )
        .await;
    edits(2).await;
    assert_eq!(h.label(&layer, 1).await, Some(set(&[rock, jazz])));

    h.fake
        .dispatch(
            "MESSAGE_REACTION_REMOVE",
            reaction(ADA, channel, message, "🎸"),
        )
        .await;
    let edit = edits(3).await;
    assert_eq!(edit["embeds"][0]["fields"][2]["value"], "🎷 Jazz");
    assert_eq!(h.label(&layer, 1).await, Some(set(&[jazz])));
    // The menu shows the current label.
    let options = &edit["components"][0]["components"][0]["options"];
    assert_eq!(options[0]["default"], false);
    assert_eq!(options[1]["default"], true);
    h.finish().await;
}

#[tokio::test]
async fn a_button_still_works_after_the_bot_restarts() {
    let mut h = Harness::new().await;
    let layer = h
        .layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let loud = layer.sublists[1].id;
    let (pid, channel, message) = h.post(&layer, 2).await;
    h.restart().await;

    let id = h.id();
    let custom = format!("v1:p:{}:s:{}", pid.0, loud.0);
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, channel, message, &custom, None),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["type"], 7, "the prompt is updated in place: {cb}");
    assert_eq!(cb["data"]["embeds"][0]["fields"][2]["value"], "🔥 Loud");
    let loud_button = &cb["data"]["components"][0]["components"][1];
    assert_eq!(loud_button["custom_id"], custom);
    assert_eq!(loud_button["style"], 3, "the chosen sublist is highlighted");
    assert_eq!(h.label(&layer, 2).await, Some(Label::one(loud)));
    assert_eq!(
        h.store.prompt(pid).await.unwrap().unwrap().state,
        PromptState::Answered
    );

    // In a mutual layer the latest answer wins; Void replaces it.
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(
                id,
                ADA,
                channel,
                message,
                &format!("v1:p:{}:void", pid.0),
                None,
            ),
        )
        .await;
    assert_eq!(h.fake.callback(id).await["type"], 7);
    assert_eq!(h.label(&layer, 2).await, Some(Label::Void));
    h.finish().await;
}

#[tokio::test]
async fn another_member_cannot_answer_a_prompt() {
    let h = Harness::new().await;
    let layer = h
        .layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let calm = layer.sublists[0].id;
    // Ada wants prompts in the server's prompt channel.
    let mut s = h
        .store
        .member_settings(MemberId(ADA))
        .await
        .unwrap()
        .unwrap();
    s.prompts_in_dm = false;
    s.guild_id = Some(crate::discord_fake::GUILD_ID);
    h.store
        .set_member_settings(MemberId(ADA), &s)
        .await
        .unwrap();
    h.store
        .set_guild_channels(crate::discord_fake::GUILD_ID, None, Some(CHANNEL_ID))
        .await
        .unwrap();
    let (pid, channel, message) = h.post(&layer, 3).await;
    assert_eq!(channel, CHANNEL_ID);
    let posted = h
        .fake
        .wait_for("the prompt in the channel", |r| {
            r.method == "POST" && r.path == format!("/channels/{CHANNEL_ID}/messages")
        })
        .await;
    assert_eq!(
        posted.body["content"],
        format!("<@{ADA}>, where does this one go?")
    );

    let id = h.id();
    let custom = format!("v1:p:{}:s:{}", pid.0, calm.0);
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, BOB, channel, message, &custom, None),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["type"], 4);
    assert_eq!(cb["data"]["flags"], 64);
    assert!(
        cb["data"]["content"]
            .as_str()
            .unwrap()
            .starts_with("This one is not for you")
    );

    // Bob's reaction is taken off and changes nothing.
    h.fake
        .dispatch(
            "MESSAGE_REACTION_ADD",
            reaction(BOB, channel, message, "🌙"),
        )
        .await;
    h.fake
        .wait_for("removing Bob's reaction", |r| {
            r.method == "DELETE" && r.path.ends_with(&format!("/reactions/🌙/{BOB}"))
        })
        .await;
    assert_eq!(h.label(&layer, 3).await, None);
    h.finish().await;
}

#[tokio::test]
async fn train_answers_with_the_queue_position_then_the_result() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    let (id, cb) = h
        .command(
            ADA,
            "train",
            sub("start", json!([opt("layer", 3, json!("Mood"))])),
        )
        .await;
    assert_eq!(
        cb["data"]["content"],
        "Training “Mood” is queued: position 2."
    );
    let token = crate::discord_fake::token(id);
    let done = h
        .fake
        .wait_for("the final training update", |r| {
            r.method == "PATCH"
                && r.path == format!("/webhooks/{APP_ID}/{token}/messages/@original")
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("done"))
        })
        .await;
    assert_eq!(
        done.body["content"],
        "Training “Mood” is done: 84% accurate on held-out labels. 3 tracks would now go elsewhere."
    );
    let text = h.reply(ADA, "train", sub("cancel", json!([]))).await;
    assert_eq!(text, "Cancelled 1 training job.");
    h.finish().await;
}

#[tokio::test]
async fn a_refresh_is_announced_in_the_servers_channel() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    let setup_options = json!([opt("announcements", 7, json!(ANNOUNCE.to_string()))]);
    let resolved = json!({"channels": {ANNOUNCE.to_string():
        {"id": ANNOUNCE.to_string(), "name": "announcements", "type": 0, "permissions": "0"}}});

    // Only server managers may choose the channels.
    let id = h.id();
    let mut ev = slash(id, BOB, "setup", setup_options.clone());
    ev["data"]["resolved"] = resolved.clone();
    h.fake.dispatch("INTERACTION_CREATE", ev).await;
    let cb = h.fake.callback(id).await;
    assert_eq!(
        cb["data"]["content"],
        "Only server managers can use `/setup`."
    );

    let id = h.id();
    let mut ev = with_permissions(slash(id, ADA, "setup", setup_options), "32");
    ev["data"]["resolved"] = resolved;
    h.fake.dispatch("INTERACTION_CREATE", ev).await;
    let cb = h.fake.callback(id).await;
    let text = cb["data"]["content"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "**Announcements**: <#{ANNOUNCE}>\n**Prompts**: not set (DMs)\n"
        )),
        "{text}"
    );

    let (id, cb) = h.command(ADA, "refresh", json!([])).await;
    assert_eq!(cb["type"], 5, "deferred while syncing: {cb}");
    let announcement = h
        .fake
        .wait_for("the announcement", |r| {
            r.method == "POST" && r.path == format!("/channels/{ANNOUNCE}/messages")
        })
        .await;
    assert_eq!(
        announcement.body["content"],
        format!(
            "**Sublists refreshed for <@{ADA}>**: 3 new tracks.\n\
             **Mood**: 2 → Calm, 1 waiting for an answer"
        )
    );
    let reply = h.fake.deferred_reply(id).await;
    assert_eq!(reply["content"], announcement.body["content"]);
    h.finish().await;
}

#[tokio::test]
async fn bad_input_is_answered_with_its_message() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    let add = |layer: &str, name: &str, emoji: &str| {
        sub(
            "add-sublist",
            json!([
                opt("layer", 3, json!(layer)),
                opt("name", 3, json!(name)),
                opt("emoji", 3, json!(emoji))
            ]),
        )
    };
    let cases = [
        (
            "layers",
            add("Mood", "Rock", "rock"),
            "“rock” is not an emoji. Use one emoji, like 🎸, or a server emoji.".to_string(),
        ),
        (
            "layers",
            add("Mood", "calm", "🎸"),
            "The layer “Mood” already has a sublist called “calm”.".to_string(),
        ),
        (
            "layers",
            add("Mood", "Hole", "🕳️"),
            "🕳️ is reserved for the void; pick another emoji.".to_string(),
        ),
        (
            "layers",
            add("Genre", "Rock", "🎸"),
            "You have no layer called “Genre”. Yours: “Mood”.".to_string(),
        ),
        (
            "layers",
            sub(
                "create",
                json!([
                    opt("name", 3, json!("mood")),
                    opt("mutual", 5, json!(true)),
                    opt("complete", 5, json!(true))
                ]),
            ),
            "You already have a layer called “mood”.".to_string(),
        ),
        (
            "layers",
            sub(
                "create",
                json!([
                    opt("name", 3, json!("   ")),
                    opt("mutual", 5, json!(true)),
                    opt("complete", 5, json!(true))
                ]),
            ),
            "A name can't be empty.".to_string(),
        ),
        (
            "label",
            json!([opt("count", 4, json!(500))]),
            "I can ask about 1 to 10 tracks at a time, not 500.".to_string(),
        ),
        (
            "settings",
            json!([opt("ask_below", 4, json!(-3))]),
            "`ask_below` is a percentage from 0 to 100, not -3.".to_string(),
        ),
    ];
    for (name, options, want) in cases {
        let text = h.reply(ADA, name, options).await;
        assert_eq!(text, want);
    }
    // Nothing was created by the refused commands.
    let layers = h.store.layers(MemberId(ADA)).await.unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].sublists.len(), 1);
    h.finish().await;
}

#[tokio::test]
async fn link_by_pasting_the_address_updates_the_private_message() {
    let h = Harness::new().await;
    let (link_id, cb) = h.command(ADA, "link", json!([])).await;
    assert_eq!(cb["type"], 5);
    assert_eq!(cb["data"]["flags"], 64);
    let reply = h.fake.deferred_reply(link_id).await;
    let buttons = &reply["components"][0]["components"];
    assert_eq!(
        buttons[0]["url"],
        "https://accounts.spotify.com/authorize?client_id=abc&state=s1"
    );
    assert_eq!(buttons[1]["custom_id"], "v1:link:paste");

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, CHANNEL_ID, 1, "v1:link:paste", None),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["type"], 9, "a modal: {cb}");
    assert_eq!(cb["data"]["custom_id"], "v1:link:modal");

    let submit = |id: u64, url: &str| {
        let mut v = slash(id, ADA, "x", json!([]));
        v["type"] = json!(5);
        v["data"] = json!({"custom_id": "v1:link:modal", "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": "url", "value": url}]}]});
        v
    };
    // A wrong address is answered with what is wrong.
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            submit(id, "http://127.0.0.1:8888/callback"),
        )
        .await;
    assert_eq!(h.fake.callback(id).await["type"], 5);
    let token = crate::discord_fake::token(id);
    let answer = h
        .fake
        .wait_for("the modal's answer", |r| {
            r.path == format!("/webhooks/{APP_ID}/{token}/messages/@original")
        })
        .await;
    assert!(
        answer.body["content"]
            .as_str()
            .unwrap()
            .starts_with("That address has no `code`")
    );

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            submit(id, "http://127.0.0.1:8888/callback?code=abc&state=s1"),
        )
        .await;
    // The account Spotify sent back waits for the member's word, in the form's answer and in
    // the /link message.
    let token = crate::discord_fake::token(id);
    let question = h
        .fake
        .wait_for("the question about the account", |r| {
            r.path == format!("/webhooks/{APP_ID}/{token}/messages/@original")
        })
        .await;
    assert!(
        question.body["content"]
            .as_str()
            .unwrap()
            .starts_with("Link the Spotify account **Ada** (user `ada`) to you?"),
        "{}",
        question.body
    );
    let confirm = format!("v1:link:confirm:{ADA}:yes");
    assert_eq!(
        custom_ids(&question.body["components"]),
        vec![confirm.clone(), format!("v1:link:confirm:{ADA}:no")]
    );
    let link_token = crate::discord_fake::token(link_id);
    let updated = h
        .fake
        .wait_for("the /link message updated", |r| {
            r.method == "PATCH"
                && r.path == format!("/webhooks/{APP_ID}/{link_token}/messages/@original")
        })
        .await;
    assert_eq!(updated.body["content"], question.body["content"]);

    // Only the member who ran /link can answer; their yes links the account.
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, BOB, CHANNEL_ID, 1, &confirm, None),
        )
        .await;
    assert_eq!(h.fake.callback(id).await["data"]["flags"], 64);
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, CHANNEL_ID, 1, &confirm, None),
        )
        .await;
    assert_eq!(
        h.fake.callback(id).await["type"],
        6,
        "deferred: the first sync follows"
    );
    let done = h.fake.deferred_reply(id).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("Linked as **Ada**, 1,240 liked songs found."),
        "{done}"
    );
    h.finish().await;
}

#[tokio::test]
async fn an_error_after_the_link_form_is_deferred_is_a_follow_up_not_a_second_callback() {
    let h = Harness::new().await;
    let id = h.id();
    let mut v = slash(id, ADA, "x", json!([]));
    v["type"] = json!(5);
    v["data"] = json!({"custom_id": "v1:link:modal", "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": "url",
            "value": "http://127.0.0.1:8888/callback?code=abc&state=s1"}]}]});
    // Discord fails the edit of the deferred answer.
    h.fake.fail_original_edits(1);
    h.fake.dispatch("INTERACTION_CREATE", v).await;
    assert_eq!(h.fake.callback(id).await["type"], 5);
    let token = crate::discord_fake::token(id);
    let follow_up = h
        .fake
        .wait_for("the follow-up", |r| {
            r.method == "POST" && r.path == format!("/webhooks/{APP_ID}/{token}")
        })
        .await;
    assert!(
        follow_up.body["content"]
            .as_str()
            .unwrap()
            .starts_with("Link the Spotify account **Ada**"),
        "{}",
        follow_up.body
    );
    assert_eq!(follow_up.body["flags"], 64, "private");
    let callbacks = h
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with(&format!("/interactions/{id}/")))
        .count();
    assert_eq!(callbacks, 1, "one callback per interaction");
    h.finish().await;
}

#[tokio::test]
async fn setup_asks_for_manage_messages_where_prompts_go() {
    let h = Harness::new().await;
    let id = h.id();
    let mut ev = with_permissions(
        slash(
            id,
            ADA,
            "setup",
            json!([opt("prompts", 7, json!(CHANNEL_ID.to_string()))]),
        ),
        "32",
    );
    ev["data"]["resolved"] = json!({"channels": {CHANNEL_ID.to_string():
        {"id": CHANNEL_ID.to_string(), "name": "prompts", "type": 0, "permissions": "0"}}});
    h.fake.dispatch("INTERACTION_CREATE", ev).await;
    let text = h.fake.callback(id).await["data"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!("In <#{CHANNEL_ID}> I need "))
            && text.contains("*Manage Messages* lets me remove reactions other members add"),
        "{text}"
    );
    h.finish().await;
}

#[tokio::test]
async fn forget_me_asks_first_and_only_its_member_can_confirm() {
    let h = Harness::new().await;
    let layer = h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    let (_, cb) = h.command(ADA, "forget-me", json!([])).await;
    assert!(
        cb["data"]["content"]
            .as_str()
            .unwrap()
            .contains("playlists on Spotify stay")
    );
    let ids = custom_ids(&cb["data"]["components"]);
    assert_eq!(
        ids,
        vec![
            format!("v1:forget:{ADA}:yes"),
            format!("v1:forget:{ADA}:no")
        ]
    );

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, BOB, CHANNEL_ID, 1, &ids[0], None),
        )
        .await;
    assert_eq!(h.fake.callback(id).await["data"]["flags"], 64);
    assert!(h.store.layer(layer.id).await.unwrap().is_some());

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, CHANNEL_ID, 1, &ids[0], None),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["type"], 6, "deferred while work stops: {cb}");
    let done = h.fake.deferred_reply(id).await;
    let text = done["content"].as_str().unwrap();
    assert!(text.starts_with("Done"), "{text}");
    assert!(
        text.contains("https://www.spotify.com/account/apps/"),
        "{text}"
    );
    assert!(h.store.layer(layer.id).await.unwrap().is_none());
    h.finish().await;
}

#[tokio::test]
async fn label_posts_as_many_prompts_as_asked() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let (id, cb) = h
        .command(ADA, "label", json!([opt("count", 4, json!(2))]))
        .await;
    assert_eq!(cb["type"], 5);
    let reply = h.fake.deferred_reply(id).await;
    assert_eq!(
        reply["content"],
        "Asked about 2 tracks: react or use the buttons on each."
    );
    let dm = ADA + DM_OFFSET;
    let prompts = h
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == format!("/channels/{dm}/messages"))
        .count();
    assert_eq!(prompts, 2);
    let _ = BOT_ID;
    h.finish().await;
}

#[tokio::test]
async fn autocomplete_offers_layers_and_the_typed_layers_sublists() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    h.layer("Genre", false, false, &[("Rock", "🎸")]).await;
    let complete = |id: u64, sub_name: &str, options: Value| {
        let mut v = slash(id, ADA, "layers", sub(sub_name, options));
        v["type"] = json!(4);
        v
    };
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            complete(
                id,
                "add-sublist",
                json!([{"name": "layer", "type": 3, "value": "mo", "focused": true}]),
            ),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["type"], 8);
    assert_eq!(
        cb["data"]["choices"],
        json!([{"name": "Mood", "value": "Mood"}])
    );

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            complete(
                id,
                "remove",
                json!([opt("layer", 3, json!("Mood")),
                       {"name": "sublist", "type": 3, "value": "", "focused": true}]),
            ),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(
        cb["data"]["choices"],
        json!([{"name": "🌙 Calm", "value": "Calm"}, {"name": "🔥 Loud", "value": "Loud"}])
    );
    h.finish().await;
}

#[tokio::test]
async fn the_other_commands_answer_privately() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;

    let help = h.reply(ADA, "help", json!([])).await;
    for name in [
        "`/link`",
        "`/layers create`",
        "`/train cancel`",
        "`/setup`",
        "`/help`",
    ] {
        assert!(help.contains(name), "{name} missing from {help}");
    }
    let (id, cb) = h.command(ADA, "status", json!([])).await;
    assert_eq!(
        (cb["type"].as_u64(), cb["data"]["flags"].as_u64()),
        (Some(5), Some(64))
    );
    let status = h.fake.deferred_reply(id).await["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        status.contains("**Spotify**: not linked. Use `/link`."),
        "{status}"
    );
    assert!(
        status.contains("**Mood**: 🌙 0 · 🔥 0 · no model"),
        "{status}"
    );

    let settings = h
        .reply(
            ADA,
            "settings",
            json!([
                opt("prompts", 4, json!(1)),
                opt("ask_below", 4, json!(55)),
                opt("auto_sort", 5, json!(false))
            ]),
        )
        .await;
    assert!(
        settings.contains("**Prompts**: in the server's prompt channel"),
        "{settings}"
    );
    assert!(settings.contains("**Auto-sort**: off"), "{settings}");
    assert!(
        settings.contains("**Ask when less sure than**: 55%"),
        "{settings}"
    );
    let s = h
        .store
        .member_settings(MemberId(ADA))
        .await
        .unwrap()
        .unwrap();
    assert!(!s.prompts_in_dm && !s.auto_sort);
    assert!((s.ask_below - 0.55).abs() < 1e-6);
    assert_eq!(
        s.guild_id,
        Some(crate::discord_fake::GUILD_ID),
        "the member's server is kept"
    );

    let text = h
        .reply(
            ADA,
            "layers",
            sub(
                "edit",
                json!([
                    opt("layer", 3, json!("Mood")),
                    opt("sublist", 3, json!("calm")),
                    opt("emoji", 3, json!("🌊"))
                ]),
            ),
        )
        .await;
    assert_eq!(text, "🌙 “Calm” is now 🌊 “Calm”.");
    let text = h
        .reply(
            ADA,
            "layers",
            sub(
                "edit",
                json!([
                    opt("layer", 3, json!("Mood")),
                    opt("new_name", 3, json!("Vibe"))
                ]),
            ),
        )
        .await;
    assert_eq!(text, "Layer “Mood” is now “Vibe”.");

    let (id, _) = h
        .command(
            ADA,
            "layers",
            sub(
                "import",
                json!([
                    opt("layer", 3, json!("Vibe")),
                    opt("playlist", 3, json!("37i9dQZF1DXcBWIGoYBM5M")),
                    opt("emoji", 3, json!("🚗"))
                ]),
            ),
        )
        .await;
    let reply = h.fake.deferred_reply(id).await;
    assert_eq!(
        reply["content"],
        "🚗 “Night drive” now keeps the playlist “Night drive” in “Vibe”; its 2 tracks count as your labels."
    );
    let text = h
        .reply(
            ADA,
            "layers",
            sub(
                "remove",
                json!([
                    opt("layer", 3, json!("Vibe")),
                    opt("sublist", 3, json!("Loud"))
                ]),
            ),
        )
        .await;
    assert!(text.starts_with("🔥 “Loud” removed from “Vibe”"), "{text}");
    let layer = h.store.layers(MemberId(ADA)).await.unwrap().remove(0);
    let names: Vec<&str> = layer.sublists.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Calm", "Night drive"]);

    let text = h.reply(ADA, "unlink", json!([])).await;
    assert!(text.starts_with("Unlinked."), "{text}");
    let text = h
        .reply(
            ADA,
            "layers",
            sub("remove", json!([opt("layer", 3, json!("Vibe"))])),
        )
        .await;
    assert!(text.starts_with("Layer “Vibe” removed"), "{text}");
    assert!(h.store.layers(MemberId(ADA)).await.unwrap().is_empty());
    h.finish().await;
}

#[tokio::test]
async fn expiry_warnings_and_quota_pauses_reach_the_members_they_affect() {
    let h = Harness::new().await;
    h.store.ensure_member(MemberId(ADA)).await.unwrap();
    h.store.ensure_member(MemberId(BOB)).await.unwrap();
    // Bob uses a server with an announcement channel; Ada gets DMs.
    let mut s = h
        .store
        .member_settings(MemberId(BOB))
        .await
        .unwrap()
        .unwrap();
    s.guild_id = Some(crate::discord_fake::GUILD_ID);
    h.store
        .set_member_settings(MemberId(BOB), &s)
        .await
        .unwrap();
    h.store
        .set_guild_channels(crate::discord_fake::GUILD_ID, Some(ANNOUNCE), None)
        .await
        .unwrap();
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    h.notifier()
        .warn_link_expiry(MemberId(ADA), at)
        .await
        .unwrap();
    let dm = h
        .fake
        .wait_for("the expiry warning", |r| {
            r.path == format!("/channels/{}/messages", ADA + DM_OFFSET)
        })
        .await;
    assert_eq!(
        dm.body["content"],
        format!(
            "<@{ADA}>, your Spotify link expires <t:1800000000:R>. Use `/link` before then to keep your sublists up to date."
        )
    );
    h.notifier()
        .announce_quota_pause(&[MemberId(BOB)], at)
        .await
        .unwrap();
    let msg = h
        .fake
        .wait_for("the pause", |r| {
            r.path == format!("/channels/{ANNOUNCE}/messages")
        })
        .await;
    let content = msg.body["content"].as_str().unwrap();
    assert!(
        content.starts_with(&format!("<@{BOB}>, Spotify's daily quota")),
        "{content}"
    );
    assert_eq!(
        msg.body["allowed_mentions"]["users"],
        json!([BOB.to_string()])
    );
    h.finish().await;
}

#[tokio::test]
async fn in_a_mutual_layer_the_latest_reaction_wins() {
    let h = Harness::new().await;
    let layer = h
        .layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let (calm, loud) = (layer.sublists[0].id, layer.sublists[1].id);
    let (pid, channel, message) = h.post(&layer, 4).await;
    let react = |t: &'static str, emoji: &'static str| {
        h.fake.dispatch(t, reaction(ADA, channel, message, emoji))
    };
    react("MESSAGE_REACTION_ADD", "🌙").await;
    h.nth_edit(channel, message, 1).await;
    assert_eq!(h.label(&layer, 4).await, Some(Label::one(calm)));

    react("MESSAGE_REACTION_ADD", "🔥").await;
    let edit = h.nth_edit(channel, message, 2).await;
    assert_eq!(edit["embeds"][0]["fields"][2]["value"], "🔥 Loud");
    assert_eq!(h.label(&layer, 4).await, Some(Label::one(loud)));

    // Taking back the older reaction changes nothing; taking back the current one leaves the
    // track unanswered (the void has its own emoji).
    react("MESSAGE_REACTION_REMOVE", "🌙").await;
    h.nth_edit(channel, message, 3).await;
    assert_eq!(h.label(&layer, 4).await, Some(Label::one(loud)));
    react("MESSAGE_REACTION_REMOVE", "🔥").await;
    let edit = h.nth_edit(channel, message, 4).await;
    assert_eq!(edit["embeds"][0]["fields"][2]["value"], "not answered yet");
    assert_eq!(h.label(&layer, 4).await, None);
    assert_eq!(
        h.store.prompt(pid).await.unwrap().unwrap().state,
        PromptState::Open
    );

    react("MESSAGE_REACTION_ADD", "🕳️").await;
    h.nth_edit(channel, message, 5).await;
    assert_eq!(h.label(&layer, 4).await, Some(Label::Void));
    h.finish().await;
}

#[tokio::test]
async fn the_menu_sets_a_non_mutual_label_and_unknown_buttons_are_answered() {
    let h = Harness::new().await;
    let layer = h
        .layer("Genre", false, false, &[("Rock", "🎸"), ("Jazz", "🎷")])
        .await;
    let (rock, jazz) = (layer.sublists[0].id, layer.sublists[1].id);
    let (pid, channel, message) = h.post(&layer, 5).await;
    let menu = format!("v1:p:{}:menu", pid.0);
    let (r, j) = (rock.0.to_string(), jazz.0.to_string());

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, channel, message, &menu, Some(vec![&r, &j])),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["type"], 7);
    assert_eq!(
        cb["data"]["embeds"][0]["fields"][2]["value"],
        "🎸 Rock, 🎷 Jazz"
    );
    assert_eq!(h.label(&layer, 5).await, Some(set(&[rock, jazz])));

    // An empty selection in an incomplete layer is the void.
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, channel, message, &menu, Some(vec![])),
        )
        .await;
    assert_eq!(h.fake.callback(id).await["type"], 7);
    assert_eq!(h.label(&layer, 5).await, Some(Label::Void));

    // A value that is not a sublist of the layer is refused with the layer's rule.
    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, channel, message, &menu, Some(vec!["999999"])),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["data"]["flags"], 64);
    assert_eq!(
        cb["data"]["content"],
        "The layer “Genre” has no sublist with that id."
    );
    assert_eq!(h.label(&layer, 5).await, Some(Label::Void));

    // Skip keeps the question for later.
    let id = h.id();
    let skip = format!("v1:p:{}:skip", pid.0);
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, channel, message, &skip, None),
        )
        .await;
    assert_eq!(h.fake.callback(id).await["type"], 7);
    assert_eq!(
        h.store.prompt(pid).await.unwrap().unwrap().state,
        PromptState::Skipped
    );

    let id = h.id();
    h.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(id, ADA, channel, message, "v0:p:1:skip", None),
        )
        .await;
    let cb = h.fake.callback(id).await;
    assert_eq!(cb["data"]["flags"], 64);
    assert!(
        cb["data"]["content"]
            .as_str()
            .unwrap()
            .contains("older version")
    );
    h.finish().await;
}

#[tokio::test]
async fn closed_dms_are_explained_and_leave_no_open_prompt() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    h.fake.close_channel(ADA + DM_OFFSET);
    let (id, cb) = h
        .command(ADA, "label", json!([opt("count", 4, json!(1))]))
        .await;
    assert_eq!(cb["type"], 5);
    let reply = h.fake.deferred_reply(id).await;
    assert_eq!(
        reply["content"],
        "I can't send you direct messages. Allow DMs from this server's members, or choose \
         `prompts: in the server's prompt channel` in `/settings`."
    );
    assert_eq!(h.store.open_prompt_count(MemberId(ADA)).await.unwrap(), 0);
    h.finish().await;
}

#[tokio::test]
async fn reactions_arriving_together_are_all_kept() {
    let h = Harness::new().await;
    let subs = [("A", "🍎"), ("B", "🍐"), ("C", "🍊"), ("D", "🍋")];
    let layer = h.layer("Fruit", false, false, &subs).await;
    let (_, channel, message) = h.post(&layer, 6).await;
    // All four taps are sent before the bot has answered any of them.
    for (_, emoji) in subs {
        h.fake
            .dispatch(
                "MESSAGE_REACTION_ADD",
                reaction(ADA, channel, message, emoji),
            )
            .await;
    }
    h.nth_edit(channel, message, 4).await;
    let all: Vec<SublistId> = layer.sublists.iter().map(|s| s.id).collect();
    assert_eq!(h.label(&layer, 6).await, Some(set(&all)));
    h.finish().await;
}

#[tokio::test]
async fn train_without_a_layer_tells_each_layers_own_outcome() {
    let h = Harness::new().await;
    h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    h.layer("Sparse", true, false, &[("Rock", "🎸")]).await;
    let (id, cb) = h.command(ADA, "train", sub("start", json!([]))).await;
    assert_eq!(
        cb["data"]["content"],
        "Training “Mood” is queued: position 2.\nTraining “Sparse” is queued: position 3."
    );
    let token = crate::discord_fake::token(id);
    let end = h
        .fake
        .wait_for("every layer's outcome", |r| {
            r.method == "PATCH"
                && r.path == format!("/webhooks/{APP_ID}/{token}/messages/@original")
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("failed"))
        })
        .await;
    assert_eq!(
        end.body["content"],
        "Training “Mood” is done: 84% accurate on held-out labels. 3 tracks would now go \
         elsewhere.\nTraining “Sparse” failed: The layer “Sparse” has 1 labelled track(s); \
         label a few more."
    );
    h.finish().await;
}

#[tokio::test]
async fn a_train_reply_reaches_its_final_state_after_the_bot_restarts() {
    let mut h = Harness::new().await;
    h.layer("Slow", true, false, &[("Calm", "🌙")]).await;
    let (id, _) = h
        .command(
            ADA,
            "train",
            sub("start", json!([opt("layer", 3, json!("Slow"))])),
        )
        .await;
    let path = format!(
        "/webhooks/{APP_ID}/{}/messages/@original",
        crate::discord_fake::token(id)
    );
    let edited = |r: &Recorded, needle: &str| {
        r.method == "PATCH"
            && r.path == path
            && r.body["content"]
                .as_str()
                .is_some_and(|c| c.contains(needle))
    };
    h.fake
        .wait_for("the progress", |r| edited(r, "epoch 10 of 50"))
        .await;
    // The bot stops while the training runs; the job ends while it is away.
    h.restart().await;
    let done = h
        .fake
        .wait_for("the final state", |r| edited(r, "is done"))
        .await;
    assert_eq!(
        done.body["content"],
        "Training “Slow” is done: 84% accurate on held-out labels. 3 tracks would now go \
         elsewhere."
    );
    // Once final, the reply is forgotten: the next start has nothing to resume.
    for _ in 0..500 {
        if h.store
            .train_replies(chrono::Utc::now())
            .await
            .unwrap()
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        h.store
            .train_replies(chrono::Utc::now())
            .await
            .unwrap()
            .is_empty()
    );
    h.finish().await;
}

#[tokio::test]
async fn a_settled_prompt_closes_and_its_message_loses_its_buttons() {
    let h = Harness::new().await;
    let layer = h
        .layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let (id, channel, message) = h.post(&layer, 1).await;
    // The harness's member likes nothing: the track has left the motherlist.
    assert_eq!(
        h.notifier()
            .close_settled_prompts(MemberId(ADA))
            .await
            .unwrap(),
        1
    );
    let edit = h.nth_edit(channel, message, 1).await;
    assert_eq!(edit["components"], json!([]), "{edit}");
    assert_eq!(
        edit["embeds"][0]["fields"][2]["value"],
        "no longer asked: the track left your motherlist"
    );
    let p = h.store.prompt(id).await.unwrap().unwrap();
    assert_eq!(p.state, PromptState::Closed);
    assert_eq!(h.store.open_prompt_count(MemberId(ADA)).await.unwrap(), 0);
    // Taking back a reaction on it does not ask again.
    h.fake
        .dispatch(
            "MESSAGE_REACTION_REMOVE",
            reaction(ADA, channel, message, "🌙"),
        )
        .await;
    h.nth_edit(channel, message, 2).await;
    assert_eq!(
        h.store.prompt(id).await.unwrap().unwrap().state,
        PromptState::Closed
    );
    h.finish().await;
}

#[tokio::test]
async fn prompts_recorded_but_never_posted_free_the_budget() {
    let h = Harness::new().await;
    let layer = h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    h.store.ensure_member(MemberId(ADA)).await.unwrap();
    let mut settings = h
        .store
        .member_settings(MemberId(ADA))
        .await
        .unwrap()
        .unwrap();
    settings.prompt_budget = 2;
    h.store
        .set_member_settings(MemberId(ADA), &settings)
        .await
        .unwrap();
    // A crash left two prompts recorded but never posted, an hour ago.
    for n in [1, 2] {
        h.store
            .create_prompt(MemberId(ADA), layer.id, &track(n).id, None)
            .await
            .unwrap()
            .unwrap();
    }
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        h._dir.path().join("bot.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE prompts SET created_at = '2020-01-01T00:00:00+00:00'")
        .execute(&db)
        .await
        .unwrap();
    let reqs = [3, 4]
        .into_iter()
        .map(|n| PromptRequest {
            member: MemberId(ADA),
            layer: layer.id,
            track: track(n),
            guess: None,
        })
        .collect();
    let out = h
        .notifier()
        .post_prompts(MemberId(ADA), reqs)
        .await
        .unwrap();
    assert_eq!(out.posted.len(), 2, "{out:?}");
    assert_eq!(h.store.open_prompt_count(MemberId(ADA)).await.unwrap(), 2);
    h.finish().await;
}

#[tokio::test]
async fn the_digest_comes_at_most_once_a_day_and_only_for_new_tracks() {
    let h = Harness::new().await;
    let layer = h.layer("Mood", true, false, &[("Calm", "🌙")]).await;
    let more: Vec<Track> = (7..=20).map(track).collect();
    h.store.upsert_tracks(&more).await.unwrap();
    let requests = |tracks: std::ops::RangeInclusive<u32>| -> Vec<PromptRequest> {
        tracks
            .map(|n| PromptRequest {
                member: MemberId(ADA),
                layer: layer.id,
                track: track(n),
                guess: None,
            })
            .collect()
    };
    let digests = || {
        h.fake
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.body["content"]
                        .as_str()
                        .is_some_and(|c| c.contains("wait for an answer"))
            })
            .count()
    };
    let notifier = h.notifier();
    let member = MemberId(ADA);
    // Twelve wait: three asked, a digest for the nine others.
    let out = notifier
        .post_prompts(member, requests(1..=12))
        .await
        .unwrap();
    assert_eq!((out.posted.len(), out.held_back), (3, 9));
    assert_eq!(digests(), 1);
    // The next sync, the same tracks wait: no second digest.
    let out = notifier
        .post_prompts(member, requests(1..=12))
        .await
        .unwrap();
    assert_eq!((out.posted.len(), out.held_back), (3, 6));
    assert_eq!(digests(), 1);
    // A day later nothing new waits: still none.
    let (_, counted) = h.store.last_digest(member).await.unwrap().unwrap();
    let counted: Vec<_> = counted.into_iter().collect();
    let yesterday = chrono::Utc::now() - chrono::Duration::hours(25);
    h.store
        .record_digest(member, yesterday, &counted)
        .await
        .unwrap();
    notifier
        .post_prompts(member, requests(1..=12))
        .await
        .unwrap();
    assert_eq!(digests(), 1);
    // New tracks wait: one digest.
    notifier
        .post_prompts(member, requests(1..=20))
        .await
        .unwrap();
    assert_eq!(digests(), 2);
    notifier
        .post_prompts(member, requests(1..=20))
        .await
        .unwrap();
    assert_eq!(digests(), 2);
    h.finish().await;
}

#[tokio::test]
async fn an_announcement_refused_by_the_servers_channel_goes_by_dm() {
    let h = Harness::new().await;
    h.store.ensure_member(MemberId(ADA)).await.unwrap();
    let mut settings = h
        .store
        .member_settings(MemberId(ADA))
        .await
        .unwrap()
        .unwrap();
    settings.guild_id = Some(crate::discord_fake::GUILD_ID);
    h.store
        .set_member_settings(MemberId(ADA), &settings)
        .await
        .unwrap();
    h.store
        .set_guild_channels(crate::discord_fake::GUILD_ID, Some(ANNOUNCE), None)
        .await
        .unwrap();
    h.fake.close_channel(ANNOUNCE);
    h.notifier()
        .announce(MemberId(ADA), "Hello.".into())
        .await
        .unwrap();
    let dm = ADA + DM_OFFSET;
    h.fake
        .wait_for("the announcement by DM", |r| {
            r.method == "POST"
                && r.path == format!("/channels/{dm}/messages")
                && r.body["content"] == "Hello."
        })
        .await;
    h.finish().await;
}

/// Not a test: prints how long posting prompts and answering buttons take against the local
/// fake (`cargo test --release --test it bench_prompt_round_trips -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn bench_prompt_round_trips() {
    let h = Harness::new().await;
    let layer = h
        .layer("Mood", true, false, &[("Calm", "🌙"), ("Loud", "🔥")])
        .await;
    let loud = layer.sublists[1].id;
    let mut s = h
        .store
        .member_settings(MemberId(ADA))
        .await
        .unwrap()
        .unwrap();
    s.prompt_budget = 1000;
    h.store
        .set_member_settings(MemberId(ADA), &s)
        .await
        .unwrap();
    let more: Vec<Track> = (100..150).map(track).collect();
    h.store.upsert_tracks(&more).await.unwrap();
    let start = std::time::Instant::now();
    let mut posted = Vec::new();
    for n in 100..150 {
        posted.push(h.post(&layer, n).await);
    }
    let post = start.elapsed() / posted.len() as u32;
    let mut presses = Vec::new();
    for (pid, channel, message) in &posted {
        let id = h.id();
        let custom = format!("v1:p:{}:s:{}", pid.0, loud.0);
        let t = std::time::Instant::now();
        h.fake
            .dispatch(
                "INTERACTION_CREATE",
                component(id, ADA, *channel, *message, &custom, None),
            )
            .await;
        assert_eq!(h.fake.callback(id).await["type"], 7);
        presses.push(t.elapsed());
    }
    presses.sort();
    println!(
        "post one prompt (message + 3 reactions): {post:?}; button press to callback: median {:?}, max {:?} over {}",
        presses[presses.len() / 2],
        presses[presses.len() - 1],
        presses.len()
    );
    h.finish().await;
}
