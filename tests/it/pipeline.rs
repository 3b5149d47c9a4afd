//! The whole bot end to end: the real app (queue, runner, device worker, burn training) over
//! the local Spotify and the local Discord, with a real store on a fresh SQLite file.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;

use sublist::app::App;
use sublist::config::PipelineConfig;
use sublist::discord::custom_id::{CustomId, PromptAction};
use sublist::discord::{self, Backend, BotOptions, TrainUpdate};
use sublist::domain::{Label, LabelSource, Layer, LayerRules, MemberId, TrackId};
use sublist::jobs::{
    DevicePool, Job, JobHandler, JobKind, JobService, JobStatus, Lane, Priority, Queue,
    RunnerSettings,
};
use sublist::learn::Compute;
use sublist::spotify::local::track_id;
use sublist::store::{PromptId, PromptState};

use crate::discord_fake::{CHANNEL_ID, DM_OFFSET, FakeDiscord, component, slash};

const ADA: u64 = 600_000_000_000_000_101;

/// The member's own rule: singles are loud, album tracks are calm.
fn loud(album_type: Option<&str>) -> bool {
    album_type == Some("single")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_prompts_answers_training_and_playlists_that_match_the_labels() {
    let r = crate::spotify::rig().await;
    let ada = MemberId(ADA);
    crate::spotify::link(&r, ada, "ada").await;
    let liked: Vec<TrackId> = (0..30).map(track_id).collect();
    r.local.like("ada", &liked);

    let store = r.store.clone();
    let layer = store
        .create_layer(
            ada,
            "Mood",
            LayerRules {
                mutual: true,
                complete: true,
            },
        )
        .await
        .unwrap();
    let calm = store.add_sublist(layer.id, "Calm", "🧊").await.unwrap();
    let noisy = store.add_sublist(layer.id, "Loud", "🔥").await.unwrap();

    let queue = Queue::new(store.clone(), 3);
    let app = App::new(
        store.clone(),
        r.spotify.clone(),
        queue.clone(),
        DevicePool::new(vec![Compute::cpu()]).unwrap(),
        PipelineConfig {
            sync_interval: Duration::from_secs(3600),
            retrain_after_labels: 1000,
            refresh_cooldown: Duration::from_secs(1),
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
        store.clone(),
        Arc::new(app.clone()),
    )
    .await
    .unwrap();
    fake.wait_sessions(1).await;
    app.set_notifier(bot.notifier());
    let jobs = JobService::start(
        queue.clone(),
        Arc::new(app.clone()),
        RunnerSettings {
            poll_interval: Duration::from_millis(50),
            ..RunnerSettings::default()
        },
        Duration::from_secs(3600),
    );

    // The scheduled sync finds the 30 likes; with no model yet, every track waits for an
    // answer and the first few are asked about in a DM.
    let sync = queue
        .enqueue(JobKind::SyncMember { member: ada }, Priority::Automatic)
        .await
        .unwrap();
    let status = queue.wait(sync.id).await.unwrap().unwrap();
    let JobStatus::Done { result } = status else {
        panic!("sync failed: {status:?}");
    };
    assert_eq!(result["new_tracks"], 30, "{result}");
    assert_eq!(store.liked_ids(ada).await.unwrap().len(), 30);
    let dm = ADA + DM_OFFSET;
    fake.wait_for("a prompt in the member's DM", |r| {
        r.method == "POST" && r.path == format!("/channels/{dm}/messages")
    })
    .await;

    // The member asks for more questions, then answers every prompt by button.
    fake.dispatch(
        "INTERACTION_CREATE",
        slash(
            9_001,
            ADA,
            "label",
            json!([{"name": "layer", "type": 3, "value": "Mood"}, {"name": "count", "type": 4, "value": 9}]),
        ),
    )
    .await;
    fake.deferred_reply(9_001).await;
    let mut answered = Vec::new();
    for id in 1..=40 {
        let Some(p) = store.prompt(PromptId(id)).await.unwrap() else {
            continue;
        };
        let Some(message) = p.message_id else {
            continue;
        };
        let track = store.track(&p.track).await.unwrap().unwrap();
        let choice = if loud(track.album_type.as_deref()) {
            noisy.id
        } else {
            calm.id
        };
        let custom = CustomId::Prompt {
            prompt: p.id,
            action: PromptAction::Sublist(choice),
        }
        .encode();
        let interaction = 9_100 + id as u64;
        fake.dispatch(
            "INTERACTION_CREATE",
            component(
                interaction,
                ADA,
                p.channel_id.unwrap_or(dm),
                message,
                &custom,
                None,
            ),
        )
        .await;
        fake.callback(interaction).await;
        answered.push((p.track.clone(), choice));
    }
    assert!(answered.len() >= 10, "answered {}", answered.len());
    for (track, choice) in &answered {
        let label = store.label(layer.id, track).await.unwrap().unwrap();
        assert_eq!(
            (label.label, label.source),
            (Label::one(*choice), LabelSource::Member)
        );
    }

    // /train: queued, trained on the device worker, then the layer is re-sorted and written.
    let mut ticket = app.queue_training(ada, Some(layer.id)).await.unwrap();
    assert_eq!(ticket.jobs[0].position, 1, "the only job in the queue");
    let mut last = None;
    while let Some((_, update)) = ticket.progress.recv().await {
        last = Some(update);
    }
    let Some(TrainUpdate::Done(result)) = last else {
        panic!("training did not finish: {last:?}");
    };
    assert!(
        result
            .summary
            .contains(&format!("{} labelled tracks", answered.len())),
        "{}",
        result.summary
    );
    for _ in 0..600 {
        if store.live_jobs(ada).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        store.live_jobs(ada).await.unwrap().is_empty(),
        "jobs still running"
    );

    // Each playlist holds exactly the liked tracks whose label (the member's, or the model's
    // when it was confident) names its sublist; answers are all in their playlists.
    let layer = store.layer(layer.id).await.unwrap().unwrap();
    let labels = store.labels(layer.id).await.unwrap();
    let mut placed = 0;
    for s in &layer.sublists {
        let pid = s.playlist_id.clone().expect("the playlist was created");
        let on_spotify: HashSet<TrackId> =
            r.local.playlist_tracks(&pid).unwrap().into_iter().collect();
        let expected: HashSet<TrackId> = labels
            .iter()
            .filter(|l| l.label.contains(s.id))
            .map(|l| l.track.clone())
            .collect();
        assert_eq!(on_spotify, expected, "playlist of {}", s.name);
        for (track, choice) in &answered {
            assert_eq!(on_spotify.contains(track), *choice == s.id);
        }
        placed += on_spotify.len();
        let (name, _owner, public) = r.local.playlist_details(&pid).unwrap();
        assert_eq!((name.as_str(), public), (s.name.as_str(), false));
    }
    let by_model = labels
        .iter()
        .filter(|l| l.source == LabelSource::Model)
        .count();
    assert_eq!(placed, answered.len() + by_model);
    let distinct: BTreeSet<_> = labels.iter().map(|l| l.track.clone()).collect();
    assert_eq!(distinct.len(), labels.len());

    // The refresh was announced (by DM: no announcement channel is set).
    let announcement = fake
        .wait_for("the refresh announcement", |r| {
            r.method == "POST"
                && (r.path == format!("/channels/{dm}/messages")
                    || r.path == format!("/channels/{CHANNEL_ID}/messages"))
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("Sublists refreshed") && c.contains(" → "))
        })
        .await;
    let text = announcement.body["content"].as_str().unwrap();
    assert!(text.contains("**Mood**"), "{text}");

    jobs.shutdown().await.unwrap();
    bot.shutdown().await;
}

/// The real app over the local Spotify and the local Discord, for one linked member; the job
/// service starts when the test has set the scene.
struct Stack {
    r: crate::spotify::Rig,
    app: App,
    queue: Queue,
    fake: FakeDiscord,
    bot: discord::Bot,
    jobs: Option<JobService>,
}

async fn stack(max_attempts: u32) -> Stack {
    stack_checking_every(max_attempts, Duration::from_secs(3600)).await
}

/// A [`Stack`] whose quiet syncs read the managed playlists for hand edits every `check`.
async fn stack_checking_every(max_attempts: u32, check: Duration) -> Stack {
    let r = crate::spotify::rig().await;
    crate::spotify::link(&r, MemberId(ADA), "ada").await;
    let store = r.store.clone();
    let queue = Queue::new(store.clone(), max_attempts);
    let app = App::new(
        store.clone(),
        r.spotify.clone(),
        queue.clone(),
        DevicePool::new(vec![Compute::cpu()]).unwrap(),
        PipelineConfig {
            sync_interval: Duration::from_secs(3600),
            retrain_after_labels: 1000,
            refresh_cooldown: Duration::from_secs(1),
            playlist_check_interval: check,
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
        store.clone(),
        Arc::new(app.clone()),
    )
    .await
    .unwrap();
    fake.wait_sessions(1).await;
    app.set_notifier(bot.notifier());
    Stack {
        r,
        app,
        queue,
        fake,
        bot,
        jobs: None,
    }
}

impl Stack {
    /// Starts the runner and the scheduler (which queues the member's first sync at once).
    fn start_jobs(&mut self) {
        self.jobs = Some(JobService::start(
            self.queue.clone(),
            Arc::new(self.app.clone()),
            RunnerSettings {
                poll_interval: Duration::from_millis(50),
                ..RunnerSettings::default()
            },
            Duration::from_secs(3600),
        ));
    }

    fn store(&self) -> &sublist::store::Store {
        &self.r.store
    }

    /// Runs a sync of the member's motherlist (and the sort after it) to its end.
    async fn sync(&self) -> JobStatus {
        let job = self
            .queue
            .enqueue(
                JobKind::SyncMember {
                    member: MemberId(ADA),
                },
                Priority::Automatic,
            )
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.queue.wait(job.id))
            .await
            .expect("the sync ends")
            .unwrap()
            .unwrap()
    }

    /// The member's prompts as stored.
    async fn prompts(&self) -> Vec<sublist::store::Prompt> {
        let mut out = Vec::new();
        for id in 1..=200 {
            if let Some(p) = self.store().prompt(PromptId(id)).await.unwrap() {
                out.push(p);
            }
        }
        out
    }

    /// Messages the bot posted whose text contains `needle`.
    fn posted_containing(&self, needle: &str) -> Vec<crate::discord_fake::Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST"
                    && r.path.ends_with("/messages")
                    && r.body["content"]
                        .as_str()
                        .is_some_and(|c| c.contains(needle))
            })
            .collect()
    }

    async fn stop(self) {
        if let Some(jobs) = self.jobs {
            jobs.shutdown().await.unwrap();
        }
        self.bot.shutdown().await;
    }
}

async fn layer(store: &sublist::store::Store, name: &str, sublists: &[(&str, &str)]) -> Layer {
    let l = store
        .create_layer(
            MemberId(ADA),
            name,
            LayerRules {
                mutual: true,
                complete: false,
            },
        )
        .await
        .unwrap();
    for (n, e) in sublists {
        store.add_sublist(l.id, n, e).await.unwrap();
    }
    store.layer(l.id).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_layer_is_asked_about_a_skip_is_remembered_and_the_digest_comes_once() {
    let mut s = stack(3).await;
    let mood = layer(s.store(), "Mood", &[("Calm", "🧊")]).await;
    let genre = layer(s.store(), "Genre", &[("Rock", "🎸")]).await;
    s.r.local
        .like("ada", &(0..10).map(track_id).collect::<Vec<_>>());
    s.start_jobs();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));

    // No model yet: all 20 (track, layer) pairs wait; a few are asked, from both layers.
    let open: Vec<_> = s
        .prompts()
        .await
        .into_iter()
        .filter(|p| p.state == PromptState::Open)
        .collect();
    assert_eq!(open.len(), discord::DIGEST_AFTER);
    let layers: BTreeSet<_> = open.iter().map(|p| p.layer).collect();
    assert_eq!(layers, BTreeSet::from([mood.id, genre.id]));
    assert_eq!(s.posted_containing("wait for an answer").len(), 1);

    // The member skips one question.
    let skipped = &open[0];
    let custom = CustomId::Prompt {
        prompt: skipped.id,
        action: PromptAction::Skip,
    }
    .encode();
    s.fake
        .dispatch(
            "INTERACTION_CREATE",
            component(
                9_500,
                ADA,
                skipped.channel_id.unwrap(),
                skipped.message_id.unwrap(),
                &custom,
                None,
            ),
        )
        .await;
    s.fake.callback(9_500).await;

    // The next sync finds a new like: the skipped track is not asked again, the layer with
    // fewer open prompts goes first, and no second digest comes the same day.
    s.r.local.like("ada", &[track_id(10)]);
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    let prompts = s.prompts().await;
    let again = prompts.iter().find(|p| p.id == skipped.id).unwrap();
    assert_eq!(again.state, PromptState::Skipped);
    assert_eq!(again.message_id, skipped.message_id, "not posted again");
    let open = prompts
        .iter()
        .filter(|p| p.state == PromptState::Open)
        .count();
    assert_eq!(open, 2 + discord::DIGEST_AFTER);
    for l in [mood.id, genre.id] {
        let asked = prompts.iter().filter(|p| p.layer == l).count();
        assert!(asked >= 2, "layer {l:?} was asked about {asked} times");
    }
    assert_eq!(s.posted_containing("wait for an answer").len(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_closed_dms_gets_prompts_in_the_server_and_the_sync_succeeds() {
    // One attempt: a sync that failed on a message would fail for good.
    let mut s = stack(1).await;
    layer(s.store(), "Mood", &[("Calm", "🧊")]).await;
    let store = s.store();
    store.ensure_member(MemberId(ADA)).await.unwrap();
    let mut settings = store.member_settings(MemberId(ADA)).await.unwrap().unwrap();
    settings.guild_id = Some(crate::discord_fake::GUILD_ID);
    store
        .set_member_settings(MemberId(ADA), &settings)
        .await
        .unwrap();
    store
        .set_guild_channels(crate::discord_fake::GUILD_ID, None, Some(CHANNEL_ID))
        .await
        .unwrap();
    s.fake.close_channel(ADA + DM_OFFSET);
    s.r.local
        .like("ada", &(0..2).map(track_id).collect::<Vec<_>>());
    s.start_jobs();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    let in_server = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "POST"
                && r.path == format!("/channels/{CHANNEL_ID}/messages")
                && r.body["embeds"].as_array().is_some_and(|e| !e.is_empty())
        })
        .count();
    assert_eq!(
        in_server, 2,
        "both prompts went to the server's prompt channel"
    );
    assert!(
        s.prompts()
            .await
            .iter()
            .all(|p| p.channel_id == Some(CHANNEL_ID))
    );
    // The refresh announcement, refused by DM, went there too.
    let announced: Vec<String> = s
        .posted_containing("Sublists refreshed")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(
        announced,
        [
            format!("/channels/{}/messages", ADA + DM_OFFSET),
            format!("/channels/{CHANNEL_ID}/messages")
        ]
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_tells_the_member_a_true_sentence_and_logs_the_detail() {
    let s = stack(3).await;
    let id = s
        .queue
        .enqueue(
            JobKind::SyncMember {
                member: MemberId(ADA),
            },
            Priority::Automatic,
        )
        .await
        .unwrap()
        .id;
    let job = Job {
        id,
        kind: JobKind::SyncMember {
            member: MemberId(ADA),
        },
        priority: Priority::Automatic,
        attempt: 3,
        max_attempts: 3,
        created_at: chrono::Utc::now(),
        started_at: chrono::Utc::now(),
    };
    s.app
        .on_failed(
            &job,
            "error returned from database: (code: 5) database is locked",
        )
        .await;
    let told = s
        .fake
        .wait_for("the member told", |r| {
            r.method == "POST"
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("I couldn't finish"))
        })
        .await;
    let text = told.body["content"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "<@{ADA}>, I couldn't finish syncing your Liked Songs after 3 tries. \
             Something went wrong on our side (incident `"
        )),
        "{text}"
    );
    assert!(!text.contains("database"), "{text}");
    assert!(!text.contains("code"), "{text}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_without_a_layer_follows_every_layer_and_reports_each_truthfully() {
    let mut s = stack(3).await;
    let mood = layer(s.store(), "Mood", &[("Calm", "🧊"), ("Loud", "🔥")]).await;
    let sparse = layer(s.store(), "Sparse", &[("Rock", "🎸")]).await;
    let tracks: Vec<_> = (0..6).map(track_id).collect();
    s.r.local.like("ada", &tracks);
    s.start_jobs();
    let store = s.store();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    for (i, t) in tracks.iter().enumerate() {
        let sub = mood.sublists[i % 2].id;
        store
            .set_label(&mood, t, &Label::one(sub), LabelSource::Member, None)
            .await
            .unwrap();
    }
    store
        .set_label(
            &sparse,
            &tracks[0],
            &Label::one(sparse.sublists[0].id),
            LabelSource::Member,
            None,
        )
        .await
        .unwrap();

    let mut ticket = s.app.queue_training(MemberId(ADA), None).await.unwrap();
    let names: Vec<&str> = ticket.jobs.iter().map(|j| j.layer_name.as_str()).collect();
    assert_eq!(names, ["Mood", "Sparse"]);
    let mut last = [None, None];
    while let Some((i, update)) = ticket.progress.recv().await {
        last[i] = Some(update);
    }
    match &last[0] {
        Some(TrainUpdate::Done(r)) => assert!(r.summary.contains("6 labelled tracks"), "{r:?}"),
        other => panic!("Mood: {other:?}"),
    }
    assert_eq!(
        last[1],
        Some(TrainUpdate::Failed(
            "The layer “Sparse” has 1 labelled track(s); label a few more (at least 2) before \
             training."
                .into()
        ))
    );
    // The member is told the same true sentence, with nothing else.
    let told = s
        .fake
        .wait_for("the refusal", |r| {
            r.method == "POST"
                && r.body["content"]
                    .as_str()
                    .is_some_and(|c| c.contains("I couldn't finish training"))
        })
        .await;
    assert_eq!(
        told.body["content"],
        format!(
            "<@{ADA}>, I couldn't finish training: The layer “Sparse” has 1 labelled track(s); \
             label a few more (at least 2) before training."
        )
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_follower_sees_the_end_another_process_recorded() {
    // No job service here: another process (another queue on the same database) runs the job.
    let s = stack(3).await;
    let mood = layer(s.store(), "Mood", &[("Calm", "🧊")]).await;
    let mut ticket = s
        .app
        .queue_training(MemberId(ADA), Some(mood.id))
        .await
        .unwrap();
    let (i, first) = ticket.progress.recv().await.unwrap();
    assert_eq!((i, first), (0, TrainUpdate::Queued { position: 1 }));

    let other = Queue::new(s.store().clone(), 3);
    let claimed = other.claim(Lane::Device).await.unwrap().unwrap();
    assert_eq!(claimed.job.id.0, ticket.jobs[0].job.0);
    other
        .complete(
            claimed.job.id,
            json!({"layer": mood.id.0, "labels": 7, "accuracy": 0.9,
                   "previous_accuracy": null, "device": "cpu"}),
        )
        .await
        .unwrap();

    let end = tokio::time::timeout(Duration::from_secs(30), async {
        let mut last = None;
        while let Some((_, update)) = ticket.progress.recv().await {
            last = Some(update);
        }
        last
    })
    .await
    .expect("the follower reached the end");
    match end {
        Some(TrainUpdate::Done(r)) => assert!(r.summary.contains("7 labelled tracks"), "{r:?}"),
        other => panic!("{other:?}"),
    }
    s.stop().await;
}

/// Web API requests the local Spotify answered since its log was last cleared, as
/// `METHOD /path`.
fn web_requests(s: &Stack) -> Vec<String> {
    s.r.local
        .requests()
        .into_iter()
        .filter(|r| r.service == sublist::spotify::local::Service::WebApi)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Labels tracks `range` by the member's hand into the layer's first sublist.
async fn answer_all(s: &Stack, layer: &Layer, range: std::ops::Range<u32>) {
    let first = layer.sublists[0].id;
    for n in range {
        s.store()
            .set_label(
                layer,
                &track_id(n),
                &Label::one(first),
                LabelSource::Member,
                None,
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_sync_reads_one_page_and_new_likes_a_page_per_fifty() {
    let mut s = stack(3).await;
    let mood = layer(s.store(), "Mood", &[("Calm", "🧊"), ("Loud", "🔥")]).await;
    let genre = layer(s.store(), "Genre", &[("Rock", "🎸")]).await;
    s.r.local
        .like("ada", &(0..30).map(track_id).collect::<Vec<_>>());
    s.start_jobs();
    // The first syncs read the library and, once the member answered, make the playlists.
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    answer_all(&s, &mood, 0..10).await;
    answer_all(&s, &genre, 5..15).await;
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    let calm = s.store().layer(mood.id).await.unwrap().unwrap().sublists[0]
        .playlist_id
        .clone()
        .expect("the Calm playlist exists");
    assert_eq!(s.r.local.playlist_tracks(&calm).unwrap().len(), 10);

    // Nothing new: one request, the first page of Liked Songs.
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert_eq!(web_requests(&s), vec!["GET /me/tracks".to_string()]);

    // A hand edit is not looked for by a quiet sync...
    s.r.local.hand_add(&calm, &[track_id(20)]);
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert_eq!(web_requests(&s).len(), 1);
    // ...but the member's /refresh reads every playlist, and the edit becomes their label.
    s.app.refresh(MemberId(ADA)).await.unwrap();
    let label = s
        .store()
        .label(mood.id, &track_id(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (label.label, label.source),
        (Label::one(mood.sublists[0].id), LabelSource::Member)
    );

    // 20 new likes, with no model to place them: one page, nothing to write.
    s.r.local
        .like("ada", &(100..120).map(track_id).collect::<Vec<_>>());
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert_eq!(web_requests(&s), vec!["GET /me/tracks".to_string()]);

    // 120 new likes: three pages.
    s.r.local
        .like("ada", &(200..320).map(track_id).collect::<Vec<_>>());
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert_eq!(s.r.local.count("GET", "/me/tracks"), 3);
    assert_eq!(web_requests(&s).len(), 3, "{:?}", web_requests(&s));

    // A new answer changes what a playlist should hold: that playlist is written.
    answer_all(&s, &mood, 200..201).await;
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert!(
        s.r.local
            .playlist_tracks(&calm)
            .unwrap()
            .contains(&track_id(200))
    );
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert_eq!(web_requests(&s).len(), 1, "written once, then quiet again");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_syncs_still_look_for_hand_edits_at_the_configured_interval() {
    let mut s = stack_checking_every(3, Duration::from_secs(2)).await;
    let mood = layer(s.store(), "Mood", &[("Calm", "🧊")]).await;
    s.r.local
        .like("ada", &(0..10).map(track_id).collect::<Vec<_>>());
    s.start_jobs();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    answer_all(&s, &mood, 0..5).await;
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    let calm = s.store().layer(mood.id).await.unwrap().unwrap().sublists[0]
        .playlist_id
        .clone()
        .expect("the Calm playlist exists");
    s.r.local.hand_remove(&calm, &[track_id(0)]);
    s.r.local.clear_log();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert_eq!(web_requests(&s).len(), 1, "{:?}", web_requests(&s));

    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    assert!(
        s.r.local.count("GET", "/playlists/") >= 1,
        "the check read it"
    );
    let label = s.store().label(mood.id, &track_id(0)).await.unwrap();
    assert!(
        label
            .as_ref()
            .is_none_or(|l| !l.label.contains(mood.sublists[0].id)),
        "the hand removal became the member's word: {label:?}"
    );
    s.stop().await;
}

/// How many layers a sync's sort went through (0: the sync did not sort).
fn layers_sorted(status: &JobStatus) -> usize {
    match status {
        JobStatus::Done { result } => result["layers"].as_array().map_or(0, Vec::len),
        other => panic!("the sync did not finish: {other:?}"),
    }
}

/// Syncs until a sync with nothing new no longer sorts.
async fn settle(s: &Stack) {
    for _ in 0..8 {
        if layers_sorted(&s.sync().await) == 0 {
            return;
        }
    }
    panic!("every sync sorted again: the sorts never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_sync_sorts_again_only_once_something_it_reads_changed() {
    let mut s = stack(3).await;
    let mood = layer(s.store(), "Mood", &[("Calm", "🧊"), ("Loud", "🔥")]).await;
    s.r.local
        .like("ada", &(0..30).map(track_id).collect::<Vec<_>>());
    s.start_jobs();
    assert!(matches!(s.sync().await, JobStatus::Done { .. }));
    answer_all(&s, &mood, 0..10).await;
    assert_eq!(layers_sorted(&s.sync().await), 1, "an answer is sorted in");
    // The sorts that follow post the first questions; then one finds everything in place,
    // and from there on a sync with nothing new does not sort at all.
    settle(&s).await;
    assert_eq!(layers_sorted(&s.sync().await), 0);

    // An answer: the next sync sorts it into its playlist.
    answer_all(&s, &mood, 20..21).await;
    assert_eq!(layers_sorted(&s.sync().await), 1);
    let calm = s.store().layer(mood.id).await.unwrap().unwrap().sublists[0]
        .playlist_id
        .clone()
        .expect("the Calm playlist exists");
    assert!(
        s.r.local
            .playlist_tracks(&calm)
            .unwrap()
            .contains(&track_id(20))
    );
    settle(&s).await;

    // A setting the sort reads.
    let mut settings = s
        .store()
        .member_settings(MemberId(ADA))
        .await
        .unwrap()
        .unwrap();
    settings.ask_below = 0.5;
    s.store()
        .set_member_settings(MemberId(ADA), &settings)
        .await
        .unwrap();
    assert_eq!(layers_sorted(&s.sync().await), 1);
    settle(&s).await;

    // A new like is always sorted.
    s.r.local.like("ada", &[track_id(40)]);
    assert_eq!(layers_sorted(&s.sync().await), 1);
    s.stop().await;
}
