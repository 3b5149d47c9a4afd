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
use sublist::domain::{Label, LabelSource, LayerRules, MemberId, TrackId};
use sublist::jobs::{DevicePool, JobKind, JobService, JobStatus, Priority, Queue, RunnerSettings};
use sublist::learn::Compute;
use sublist::spotify::local::track_id;
use sublist::store::PromptId;

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
    assert_eq!(ticket.position, 1, "the only job in the queue");
    let mut last = None;
    while let Some(update) = ticket.progress.recv().await {
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
