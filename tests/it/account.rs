//! A member's account from link to forget, end to end: the real app over the local Spotify and
//! the local Discord, with a real store on a fresh SQLite file. Linking waits for the member to
//! confirm the account; a link dying soon and a quota pause are each told once; `/refresh`
//! honours its cooldown; forgetting a member stops their work and deletes their messages.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};

use sublist::app::App;
use sublist::config::PipelineConfig;
use sublist::discord::{self, Backend, BackendError, BotOptions, LinkState};
use sublist::domain::{LayerRules, MemberId};
use sublist::jobs::{DevicePool, JobKind, Priority, Queue};
use sublist::learn::Compute;
use sublist::spotify::local::Failure;

use crate::discord_fake::{CHANNEL_ID, DM_OFFSET, FakeDiscord, Recorded, component, slash};
use crate::spotify::{Rig, authorize, link, no_progress};

const ADA: u64 = 600_000_000_000_000_201;
const BOB: u64 = 600_000_000_000_000_202;

struct AppRig {
    r: Rig,
    app: App,
    fake: FakeDiscord,
    bot: discord::Bot,
}

impl AppRig {
    /// The app with this `/refresh` cooldown, and links lasting `lifetime` when given.
    async fn new(cooldown: Duration, lifetime: Option<Duration>) -> AppRig {
        let r = crate::spotify::rig().await;
        if let Some(l) = lifetime {
            r.spotify.set_link_lifetime(l);
        }
        let store = r.store.clone();
        let app = App::new(
            store.clone(),
            r.spotify.clone(),
            Queue::new(store.clone(), 3),
            DevicePool::new(vec![Compute::cpu()]).unwrap(),
            PipelineConfig {
                sync_interval: Duration::from_secs(3600),
                retrain_after_labels: 1000,
                refresh_cooldown: cooldown,
                playlist_check_interval: Duration::from_secs(3600),
            },
        );
        let fake = FakeDiscord::start().await;
        let bot = discord::start(
            BotOptions {
                token: SecretString::from("fake-token"),
                api_base: Some(url::Url::parse(&fake.rest_url).unwrap()),
                guild_id: None,
                register_commands: false,
            },
            store,
            Arc::new(app.clone()),
        )
        .await
        .unwrap();
        fake.wait_sessions(1).await;
        app.set_notifier(bot.notifier());
        AppRig { r, app, fake, bot }
    }

    /// Messages posted in the member's DM whose text contains `needle`.
    fn dms_containing(&self, member: u64, needle: &str) -> Vec<Recorded> {
        let path = format!("/channels/{}/messages", member + DM_OFFSET);
        self.fake
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path == path
                    && r.body["content"]
                        .as_str()
                        .is_some_and(|c| c.contains(needle))
            })
            .collect()
    }

    async fn wait_dm(&self, member: u64, needle: &str) {
        let path = format!("/channels/{}/messages", member + DM_OFFSET);
        self.fake
            .wait_for(needle, |r| {
                r.method == "POST"
                    && r.path == path
                    && r.body["content"]
                        .as_str()
                        .is_some_and(|c| c.contains(needle))
            })
            .await;
    }

    async fn finish(self) {
        self.bot.shutdown().await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_asks_the_member_to_confirm_the_account_spotify_sent_back() {
    let rig = AppRig::new(Duration::from_secs(60), None).await;
    let ada = MemberId(ADA);
    rig.r.local.add_user("ada", "acct-ada", "Ada S");
    rig.r.local.set_browser_user("ada");

    rig.fake
        .dispatch("INTERACTION_CREATE", slash(9_001, ADA, "link", json!([])))
        .await;
    let reply = rig.fake.deferred_reply(9_001).await;
    let consent = reply["components"][0]["components"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(consent.contains("show_dialog=true"), "{consent}");
    let landed = authorize(&consent).await;

    let mut form = slash(9_002, ADA, "x", json!([]));
    form["type"] = json!(5);
    form["data"] = json!({"custom_id": "v1:link:modal", "components": [
        {"type": 1, "components": [{"type": 4, "custom_id": "url", "value": landed}]}]});
    rig.fake.dispatch("INTERACTION_CREATE", form).await;
    assert_eq!(rig.fake.callback(9_002).await["type"], 5);
    let question = rig.fake.deferred_reply(9_002).await;
    assert!(
        question["content"]
            .as_str()
            .unwrap()
            .starts_with("Link the Spotify account **Ada S** (user `ada`) to you?"),
        "{question}"
    );
    let ids = custom_ids(&question["components"]);
    assert_eq!(ids[0], format!("v1:link:confirm:{ADA}:yes"));
    assert!(
        rig.app.spotify().link_info(ada).await.unwrap().is_none(),
        "nothing is bound before the member confirms"
    );

    rig.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(9_003, ADA, CHANNEL_ID, 1, &ids[0], None),
        )
        .await;
    assert_eq!(rig.fake.callback(9_003).await["type"], 6);
    let done = rig.fake.deferred_reply(9_003).await;
    assert!(
        done["content"]
            .as_str()
            .unwrap()
            .starts_with("Linked as **Ada S**"),
        "{done}"
    );
    let info = rig.app.spotify().link_info(ada).await.unwrap().unwrap();
    assert!(info.active && info.account.account_id == "acct-ada");
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_link_and_a_quota_pause_are_each_told_once() {
    // Links that end in three days: within the week's warning from the start.
    let rig = AppRig::new(
        Duration::from_secs(60),
        Some(Duration::from_secs(3 * 24 * 3600)),
    )
    .await;
    let (ada, bob) = (MemberId(ADA), MemberId(BOB));
    link(&rig.r, ada, "ada").await;
    link(&rig.r, bob, "bob").await;
    rig.r.local.seed_liked("ada", 5);
    let spotify = rig.app.spotify();
    for _ in 0..2 {
        spotify.sync_motherlist(ada, &no_progress()).await.unwrap();
    }
    rig.wait_dm(ADA, "your Spotify link expires").await;

    // Spotify's daily quota runs out: everyone on the app hears when work resumes.
    rig.r.local.inject(
        Some("GET"),
        "/me/tracks",
        Failure::Quota { retry_after: 7200 },
        1,
    );
    let err = spotify
        .sync_motherlist(ada, &no_progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("paused until"), "{err}");
    rig.wait_dm(ADA, "daily quota").await;
    rig.wait_dm(BOB, "daily quota").await;
    assert!(spotify.sync_motherlist(ada, &no_progress()).await.is_err());
    // Bob's first work after the pause began warns him about his link: every notice sent
    // before it has arrived by the time his warning does.
    assert!(spotify.sync_motherlist(bob, &no_progress()).await.is_err());
    rig.wait_dm(BOB, "your Spotify link expires").await;

    for (member, needle) in [
        (ADA, "your Spotify link expires"),
        (ADA, "daily quota"),
        (BOB, "daily quota"),
        (BOB, "your Spotify link expires"),
    ] {
        assert_eq!(
            rig.dms_containing(member, needle).len(),
            1,
            "{member}: {needle}"
        );
    }
    let pause = &rig.dms_containing(ADA, "daily quota")[0];
    assert!(
        pause.body["content"]
            .as_str()
            .unwrap()
            .contains("resume by themselves"),
        "{}",
        pause.body
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_honours_the_configured_cooldown() {
    let rig = AppRig::new(Duration::from_secs(3600), None).await;
    let (ada, bob) = (MemberId(ADA), MemberId(BOB));
    link(&rig.r, ada, "ada").await;
    link(&rig.r, bob, "bob").await;
    rig.r.local.seed_liked("ada", 3);
    let summary = rig.app.refresh(ada).await.unwrap();
    assert_eq!(summary.new_tracks, 3);
    let Err(BackendError::Refused(text)) = rig.app.refresh(ada).await else {
        panic!("a second refresh within the cooldown is refused");
    };
    assert!(text.contains("you can refresh again in"), "{text}");
    rig.app.refresh(bob).await.unwrap();
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_a_revoked_link_from_an_expired_one() {
    let rig = AppRig::new(Duration::from_secs(60), None).await;
    let ada = MemberId(ADA);
    rig.r.local.set_access_ttl(1);
    link(&rig.r, ada, "ada").await;
    rig.r.local.revoke_refresh_tokens("ada");
    assert!(
        rig.app
            .spotify()
            .sync_motherlist(ada, &no_progress())
            .await
            .is_err()
    );
    assert_eq!(rig.app.status(ada).await.unwrap().link, LinkState::Revoked);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_me_stops_work_deletes_messages_and_stays_forgotten() {
    let rig = AppRig::new(Duration::from_secs(60), None).await;
    let ada = MemberId(ADA);
    let store = rig.r.store.clone();
    link(&rig.r, ada, "ada").await;
    rig.r.local.seed_liked("ada", 6);
    rig.app
        .spotify()
        .sync_motherlist(ada, &no_progress())
        .await
        .unwrap();
    let layer = store
        .create_layer(
            ada,
            "Mood",
            LayerRules {
                mutual: true,
                complete: false,
            },
        )
        .await
        .unwrap();
    store.add_sublist(layer.id, "Calm", "🧊").await.unwrap();
    store.add_sublist(layer.id, "Loud", "🔥").await.unwrap();
    // Questions and an announcement for Ada, and a job waiting in the queue.
    let notifier = rig.bot.notifier();
    let asks = rig.app.pick_prompts(ada, None, 2).await.unwrap();
    let posted = notifier.post_prompts(ada, asks).await.unwrap().posted;
    assert_eq!(posted.len(), 2);
    notifier
        .announce(ada, "Sublists refreshed".into())
        .await
        .unwrap();
    rig.app
        .queue()
        .enqueue(JobKind::SyncMember { member: ada }, Priority::Automatic)
        .await
        .unwrap();
    let mut prompt_messages = Vec::new();
    for p in &posted {
        prompt_messages.push(store.prompt(*p).await.unwrap().unwrap().message_id.unwrap());
    }

    // A refresh is under way (it waits for Ada's Spotify work, held here) when she confirms.
    let held = rig.app.spotify().hold_member(ada).await;
    let app = rig.app.clone();
    let refresh = tokio::spawn(async move { app.refresh(ada).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(
                9_101,
                ADA,
                CHANNEL_ID,
                1,
                &format!("v1:forget:{ADA}:yes"),
                None,
            ),
        )
        .await;
    assert_eq!(rig.fake.callback(9_101).await["type"], 6);
    let stopped = tokio::time::timeout(Duration::from_secs(10), refresh)
        .await
        .expect("forgetting stops the refresh in progress")
        .unwrap();
    let Err(BackendError::Refused(why)) = stopped else {
        panic!("the refresh was not stopped: {stopped:?}");
    };
    assert!(why.starts_with("Stopped"), "{why}");
    drop(held);

    let done = rig.fake.deferred_reply(9_101).await;
    let text = done["content"].as_str().unwrap();
    assert!(text.starts_with("Done"), "{text}");
    assert!(
        text.contains("https://www.spotify.com/account/apps/"),
        "{text}"
    );

    // Every message posted for Ada is deleted from Discord.
    let dm = ADA + DM_OFFSET;
    let posts = rig
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == format!("/channels/{dm}/messages"))
        .count();
    assert_eq!(posts, 3);
    let deleted: Vec<u64> = rig
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .filter_map(|r| r.path.strip_prefix(&format!("/channels/{dm}/messages/")))
        .filter_map(|id| id.parse().ok())
        .collect();
    assert_eq!(deleted.len(), posts, "{deleted:?}");
    for m in &prompt_messages {
        assert!(deleted.contains(m), "prompt message {m} left");
    }
    // Nothing of hers is left, and nothing brings her back.
    assert!(store.member_settings(ada).await.unwrap().is_none());
    assert!(store.live_jobs(ada).await.unwrap().is_empty());
    assert!(rig.app.spotify().link_info(ada).await.unwrap().is_none());
    assert!(notifier.announce(ada, "late news".into()).await.is_err());
    assert!(rig.app.refresh(ada).await.is_err());
    assert!(store.member_settings(ada).await.unwrap().is_none());
    let late = rig
        .fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == format!("/channels/{dm}/messages"))
        .count();
    assert_eq!(late, posts, "no message after forgetting");
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgetting_finds_the_prompt_messages_of_a_removed_layer() {
    let rig = AppRig::new(Duration::from_secs(60), None).await;
    let ada = MemberId(ADA);
    let store = rig.r.store.clone();
    link(&rig.r, ada, "ada").await;
    rig.r.local.seed_liked("ada", 4);
    rig.app
        .spotify()
        .sync_motherlist(ada, &no_progress())
        .await
        .unwrap();
    let rules = LayerRules {
        mutual: true,
        complete: false,
    };
    let layer = store.create_layer(ada, "Mood", rules).await.unwrap();
    store.add_sublist(layer.id, "Calm", "🧊").await.unwrap();
    let notifier = rig.bot.notifier();
    let asks = rig.app.pick_prompts(ada, None, 1).await.unwrap();
    let posted = notifier.post_prompts(ada, asks).await.unwrap().posted;
    assert_eq!(posted.len(), 1);
    let message = store
        .prompt(posted[0])
        .await
        .unwrap()
        .unwrap()
        .message_id
        .unwrap();
    // The layer goes, and its prompts' rows with it; the message stays on Discord.
    assert!(store.remove_layer(layer.id).await.unwrap());
    let messages = store.forget_member(ada).await.unwrap().unwrap();
    assert!(
        messages.contains(&(ADA + DM_OFFSET, message)),
        "the prompt's message {message} is not among {messages:?}"
    );
    rig.finish().await;
}
