//! Sorting through the real app, store and local Spotify: an import keeps what it adopted, and
//! an answer given while a sort runs stands.

use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sublist::app::App;
use sublist::config::PipelineConfig;
use sublist::discord::Backend;
use sublist::domain::{Label, LabelSource, Layer, LayerRules, TrackId};
use sublist::jobs::{DevicePool, JobContext, JobHandler, JobKind, Lane, Priority, Queue};
use sublist::learn::Compute;
use sublist::spotify::local::track_id;

use crate::spotify::{ALICE, Rig, link, no_progress, rig};

const MUTUAL_INCOMPLETE: LayerRules = LayerRules {
    mutual: true,
    complete: false,
};

fn app(r: &Rig) -> App {
    App::new(
        r.store.clone(),
        r.spotify.clone(),
        Queue::new(r.store.clone(), 3),
        DevicePool::new(vec![Compute::cpu()]).unwrap(),
        PipelineConfig {
            sync_interval: Duration::from_secs(3600),
            retrain_after_labels: 1000,
            refresh_cooldown: Duration::from_secs(1),
        },
    )
}

/// Alice with `n` liked songs synced, and a mutual, incomplete layer with Calm and Loud.
async fn setup(n: u32) -> (Rig, Layer) {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", n);
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let layer = r
        .store
        .create_layer(ALICE, "Mood", MUTUAL_INCOMPLETE)
        .await
        .unwrap();
    r.store.add_sublist(layer.id, "Calm", "🌙").await.unwrap();
    r.store.add_sublist(layer.id, "Loud", "🔥").await.unwrap();
    let layer = r.store.layer(layer.id).await.unwrap().unwrap();
    (r, layer)
}

fn ids(range: std::ops::Range<u32>) -> Vec<TrackId> {
    range.map(track_id).collect()
}

#[tokio::test]
async fn an_import_keeps_every_track_of_the_adopted_playlist_over_the_models_guesses() {
    let (r, layer) = setup(20).await;
    let app = app(&r);
    let loud = layer.sublists[1].id;
    // The model had placed two of the playlist's tracks in Loud.
    for n in [3, 4] {
        r.store
            .set_label(
                &layer,
                &track_id(n),
                &Label::one(loud),
                LabelSource::Model,
                Some(0.9),
            )
            .await
            .unwrap();
    }
    let own = r
        .local
        .create_playlist("alice", "Old favourites", &ids(0..10), false);
    let imported = app
        .import_playlist(ALICE, layer.id, &own, "Favourites", "⭐")
        .await
        .unwrap();
    assert_eq!(imported.labelled, 10);
    for n in [3, 4] {
        let l = r
            .store
            .label(layer.id, &track_id(n))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.label, l.source),
            (Label::one(imported.sublist), LabelSource::Imported)
        );
    }
    // The next refresh (no model is sure of anything) takes nothing out of it.
    app.refresh(ALICE).await.unwrap();
    assert_eq!(r.local.playlist_tracks(&own).unwrap(), ids(0..10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_while_a_sort_runs_stands() {
    let (r, layer) = setup(10).await;
    let app = app(&r);
    let (calm, loud) = (layer.sublists[0].id, layer.sublists[1].id);
    // The model had placed track 3 in Loud; with no model now, the sort is unsure of it.
    r.store
        .set_label(
            &layer,
            &track_id(3),
            &Label::one(loud),
            LabelSource::Model,
            Some(0.9),
        )
        .await
        .unwrap();
    app.queue()
        .enqueue(
            JobKind::SortAndWrite {
                member: ALICE,
                layer: None,
            },
            Priority::Manual,
        )
        .await
        .unwrap();
    let claimed = app.queue().claim(Lane::Network).await.unwrap().unwrap();

    // Another writer (the member's answer, by a reaction) holds the database while the sort
    // reads the labels; its answer for track 3 commits while the sort waits to write.
    let mut answer = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        r.dir.path().join("sublist.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut answer)
        .await
        .unwrap();
    for sql in [
        "UPDATE labels SET source = 'member', confidence = NULL WHERE layer_id = ?1 AND track_id = ?2",
        "DELETE FROM label_sublists WHERE layer_id = ?1 AND track_id = ?2",
        "INSERT INTO label_sublists (layer_id, track_id, sublist_id) VALUES (?1, ?2, ?3)",
    ] {
        sqlx::query(sql)
            .bind(layer.id.0)
            .bind(track_id(3).as_str())
            .bind(calm.0)
            .execute(&mut answer)
            .await
            .unwrap();
    }
    let sort = {
        let app = app.clone();
        tokio::spawn(async move {
            let ctx = JobContext {
                cancel: claimed.cancel,
                progress: claimed.progress,
                deadline: Instant::now() + Duration::from_secs(300),
            };
            app.run(&claimed.job, ctx).await
        })
    };
    // Long enough for the sort to read the labels and wait on its first write.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::query("COMMIT").execute(&mut answer).await.unwrap();
    sort.await.unwrap().unwrap();

    let l = r
        .store
        .label(layer.id, &track_id(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((l.label, l.source), (Label::one(calm), LabelSource::Member));
    let layer = r.store.layer(layer.id).await.unwrap().unwrap();
    let calm_playlist = layer.sublists[0].playlist_id.clone().expect("made");
    assert_eq!(
        r.local.playlist_tracks(&calm_playlist).unwrap(),
        vec![track_id(3)]
    );
    assert_eq!(
        layer.sublists[1].playlist_id, None,
        "no playlist for Loud: nothing goes in it"
    );
}
