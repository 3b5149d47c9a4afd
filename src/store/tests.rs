//! Store tests on a fresh SQLite file with the real migrations.

use std::collections::BTreeSet;

use super::*;
use crate::domain::{
    AudioFeatures, Label, LabelSource, LayerRules, MemberId, Motherlist, ReleasePrecision,
    SublistId, Track, TrackId,
};

const KEY: [u8; 32] = [42; 32];

async fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_at(&dir.path().join("t.db"), &KEY)
        .await
        .unwrap();
    (dir, store)
}

fn track(n: u32) -> Track {
    let mut t = Track::bare(
        TrackId::parse(&format!("{n:0>22}")).unwrap(),
        format!("Song {n}"),
    );
    t.artists = vec![(Some("artist1".into()), "Artist One".into())];
    t.album_id = Some("album1".into());
    t.release_date = Some("2019-06".into());
    t.release_precision = Some(ReleasePrecision::Month);
    t.duration_ms = Some(180_000);
    t.explicit = Some(false);
    t.isrc = Some("USUM71900764".into());
    t
}

const RULES: LayerRules = LayerRules {
    mutual: false,
    complete: false,
};

async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn pragmas_are_set() {
    let (_d, s) = fresh().await;
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(s.pool())
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(s.pool())
        .await
        .unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!((fk, mode.as_str(), busy), (1, "wal", 10_000));
}

#[tokio::test]
async fn wrong_key_is_a_clear_error_and_the_right_key_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    Store::open_at(&path, &KEY).await.unwrap().close().await;
    let err = Store::open_at(&path, &[1; 32]).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongKey));
    assert!(err.to_string().contains("does not match"));
    Store::open_at(&path, &KEY).await.unwrap();
}

#[tokio::test]
async fn members_and_settings_round_trip() {
    let (_d, s) = fresh().await;
    let m = MemberId(1234);
    assert_eq!(s.member_settings(m).await.unwrap(), None);
    s.ensure_member(m).await.unwrap();
    s.ensure_member(m).await.unwrap();
    let mut settings = s.member_settings(m).await.unwrap().unwrap();
    assert_eq!(settings.motherlist, Motherlist::LikedSongs);
    settings.motherlist = Motherlist::Playlist("pl1".into());
    settings.ask_below = 0.5;
    settings.prompts_in_dm = false;
    settings.guild_id = Some(99);
    s.set_member_settings(m, &settings).await.unwrap();
    assert_eq!(s.member_settings(m).await.unwrap().unwrap(), settings);
    assert_eq!(s.members().await.unwrap(), vec![m]);
}

#[tokio::test]
async fn layers_and_sublists_round_trip_with_rules() {
    let (_d, s) = fresh().await;
    let m = MemberId(1);
    let layer = s.create_layer(m, " Mood ", RULES).await.unwrap();
    assert_eq!(layer.name, "Mood");
    let err = s.create_layer(m, "mood", RULES).await.unwrap_err();
    assert_eq!(err.to_string(), "You already have a layer called “mood”.");
    // Another member may use the same name.
    s.create_layer(MemberId(2), "Mood", RULES).await.unwrap();

    let chill = s.add_sublist(layer.id, "Chill", "🧊").await.unwrap();
    let err = s.add_sublist(layer.id, "Party", "🧊").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "The layer “Mood” already uses 🧊 for “Chill”."
    );
    let party = s.add_sublist(layer.id, "Party", "🎉").await.unwrap();
    s.set_sublist_playlist(party.id, Some("pl-party"))
        .await
        .unwrap();
    let edited = s
        .edit_sublist(layer.id, chill.id, "Calm", "🧘")
        .await
        .unwrap();
    assert_eq!(
        (edited.name.as_str(), edited.emoji.as_str()),
        ("Calm", "🧘")
    );

    let loaded = s.layer_by_name(m, "MOOD").await.unwrap().unwrap();
    assert_eq!(loaded.rules, RULES);
    let names: Vec<_> = loaded.sublists.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["Calm", "Party"]);
    assert_eq!(loaded.sublists[1].playlist_id.as_deref(), Some("pl-party"));
    assert_eq!(s.layers(m).await.unwrap(), vec![loaded.clone()]);

    let renamed = s.rename_layer(layer.id, "Vibe").await.unwrap();
    assert_eq!(renamed.name, "Vibe");
    assert!(s.remove_sublist(chill.id).await.unwrap());
    assert!(s.remove_layer(layer.id).await.unwrap());
    assert!(s.layers(m).await.unwrap().is_empty());
}

#[tokio::test]
async fn tracks_round_trip_and_keep_audio() {
    let (_d, s) = fresh().await;
    let mut t = track(1);
    t.audio = Some(AudioFeatures::from_values([0.5; 11]));
    s.upsert_tracks(std::slice::from_ref(&t)).await.unwrap();
    assert_eq!(s.track(&t.id).await.unwrap().unwrap(), t);
    // A later sync without descriptors keeps the cached ones.
    let mut renamed = t.clone();
    renamed.audio = None;
    renamed.name = "Renamed".into();
    s.upsert_tracks(&[renamed]).await.unwrap();
    let back = s.track(&t.id).await.unwrap().unwrap();
    assert_eq!((back.name.as_str(), back.audio), ("Renamed", t.audio));
}

#[tokio::test]
async fn labels_round_trip_and_model_never_overrides_a_person() {
    let (_d, s) = fresh().await;
    let layer = s.create_layer(MemberId(1), "Mood", RULES).await.unwrap();
    let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
    let b = s.add_sublist(layer.id, "B", "🅱️").await.unwrap();
    let layer = s.layer(layer.id).await.unwrap().unwrap();
    let (t1, t2) = (track(1), track(2));
    s.upsert_tracks(&[t1.clone(), t2.clone()]).await.unwrap();

    let both = Label::from_set(BTreeSet::from([a.id, b.id]));
    assert!(
        s.set_label(&layer, &t1.id, &both, LabelSource::Member, None)
            .await
            .unwrap()
    );
    assert!(
        s.set_label(&layer, &t2.id, &Label::Void, LabelSource::Model, Some(0.9))
            .await
            .unwrap()
    );
    let labels = s.labels(layer.id).await.unwrap();
    assert_eq!(labels.len(), 2);
    assert_eq!(
        (labels[0].label.clone(), labels[0].source),
        (both.clone(), LabelSource::Member)
    );
    assert_eq!(
        (labels[1].label.clone(), labels[1].source),
        (Label::Void, LabelSource::Model)
    );

    // A model label does not replace the member's; a member label replaces the model's.
    assert!(
        !s.set_label(&layer, &t1.id, &Label::Void, LabelSource::Model, None)
            .await
            .unwrap()
    );
    assert_eq!(
        s.label(layer.id, &t1.id).await.unwrap().unwrap().label,
        both
    );
    assert!(
        s.set_label(&layer, &t2.id, &Label::one(a.id), LabelSource::Member, None)
            .await
            .unwrap()
    );
    let counts = s.label_counts(layer.id).await.unwrap();
    assert_eq!(counts.by_sublist[&a.id], 2);
    assert_eq!(counts.by_sublist[&b.id], 1);
    assert_eq!((counts.void, counts.by_model), (0, 0));

    // Rules are checked before anything is written.
    let mut mutual = layer.clone();
    mutual.rules.mutual = true;
    let err = s
        .set_label(&mutual, &t1.id, &both, LabelSource::Member, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Domain(_)));

    // Removing a sublist removes it from labels.
    s.remove_sublist(b.id).await.unwrap();
    assert_eq!(
        s.label(layer.id, &t1.id).await.unwrap().unwrap().label,
        Label::one(a.id)
    );
    s.clear_label(layer.id, &t1.id).await.unwrap();
    assert_eq!(s.label(layer.id, &t1.id).await.unwrap(), None);
}

#[tokio::test]
async fn removing_a_sublist_drops_the_labels_that_named_only_it_and_keeps_the_void() {
    for complete in [false, true] {
        let (_d, s) = fresh().await;
        let rules = LayerRules {
            mutual: false,
            complete,
        };
        let layer = s.create_layer(MemberId(1), "Mood", rules).await.unwrap();
        let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
        let b = s.add_sublist(layer.id, "B", "🅱️").await.unwrap();
        let layer = s.layer(layer.id).await.unwrap().unwrap();
        let tracks: Vec<Track> = (1..=5).map(track).collect();
        s.upsert_tracks(&tracks).await.unwrap();
        let id = |n: usize| tracks[n - 1].id.clone();
        let label = |ids: &[SublistId]| Label::from_set(ids.iter().copied().collect());
        for (n, l, source) in [
            (1, label(&[b.id]), LabelSource::Member),
            (2, label(&[a.id, b.id]), LabelSource::Member),
            (3, label(&[a.id]), LabelSource::Imported),
            (4, label(&[b.id]), LabelSource::Model),
        ] {
            assert!(s.set_label(&layer, &id(n), &l, source, None).await.unwrap());
        }
        if !complete {
            s.set_label(&layer, &id(5), &Label::Void, LabelSource::Member, None)
                .await
                .unwrap();
        }

        assert!(s.remove_sublist(b.id).await.unwrap());
        let left: Vec<(TrackId, Label, LabelSource)> = s
            .labels(layer.id)
            .await
            .unwrap()
            .into_iter()
            .map(|l| (l.track, l.label, l.source))
            .collect();
        let mut expected = vec![
            (id(2), Label::one(a.id), LabelSource::Member),
            (id(3), Label::one(a.id), LabelSource::Imported),
        ];
        if !complete {
            expected.push((id(5), Label::Void, LabelSource::Member));
        }
        assert_eq!(left, expected, "complete: {complete}");
        assert_eq!(
            s.label(layer.id, &id(1)).await.unwrap(),
            None,
            "not the void"
        );
        let counts = s.label_counts(layer.id).await.unwrap();
        assert_eq!(counts.void, u32::from(!complete));
    }
}

#[tokio::test]
async fn clearing_a_model_label_keeps_an_answer_that_landed_meanwhile() {
    let (_d, s) = fresh().await;
    let layer = s.create_layer(MemberId(1), "Mood", RULES).await.unwrap();
    let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
    let layer = s.layer(layer.id).await.unwrap().unwrap();
    let (t1, t2) = (track(1), track(2));
    s.upsert_tracks(&[t1.clone(), t2.clone()]).await.unwrap();
    for t in [&t1, &t2] {
        s.set_label(
            &layer,
            &t.id,
            &Label::one(a.id),
            LabelSource::Model,
            Some(0.8),
        )
        .await
        .unwrap();
    }
    // The member answers about t2 after a sort read the model's label.
    s.set_label(&layer, &t2.id, &Label::Void, LabelSource::Member, None)
        .await
        .unwrap();
    assert!(s.clear_model_label(layer.id, &t1.id).await.unwrap());
    assert!(!s.clear_model_label(layer.id, &t2.id).await.unwrap());
    assert_eq!(s.label(layer.id, &t1.id).await.unwrap(), None);
    let kept = s.label(layer.id, &t2.id).await.unwrap().unwrap();
    assert_eq!(
        (kept.label, kept.source),
        (Label::Void, LabelSource::Member)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_read_then_write_transactions_all_succeed() {
    let (_d, s) = fresh().await;
    let layer = s.create_layer(MemberId(1), "Mood", RULES).await.unwrap();
    let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
    let b = s.add_sublist(layer.id, "B", "🅱️").await.unwrap();
    let layer = s.layer(layer.id).await.unwrap().unwrap();
    let tracks: Vec<Track> = (1..=10).map(track).collect();
    s.upsert_tracks(&tracks).await.unwrap();
    // Eight tasks, more than the pool's connections, each reading then writing labels (the
    // model's and the member's) on the same tracks, and layers of their own.
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let (s, layer, tracks) = (s.clone(), layer.clone(), tracks.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..40u64 {
                let t = &tracks[((task + round) % 10) as usize].id;
                let (label, source) = match (task + round) % 3 {
                    0 => (Label::one(a.id), LabelSource::Model),
                    1 => (Label::one(b.id), LabelSource::Member),
                    _ => (Label::Void, LabelSource::Model),
                };
                s.set_label(&layer, t, &label, source, Some(0.5)).await?;
                if round % 10 == 0 {
                    s.create_layer(MemberId(100 + task), &format!("L{round}"), RULES)
                        .await?;
                }
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.labels(layer.id).await.unwrap().len(), 10);
    assert_eq!(count(&s, "layers").await, 1 + 8 * 4);
}

#[tokio::test]
async fn the_void_becomes_explicit_and_leftovers_in_complete_layers_go() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // A database as the previous schema left it.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate!("./migrations")
        .run_to(3, &pool)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO members (id, created_at) VALUES (1, 'now')",
        "INSERT INTO layers (id, member_id, name, mutual, complete, created_at) VALUES (1, 1, 'Open', 0, 0, 'now')",
        "INSERT INTO layers (id, member_id, name, mutual, complete, created_at) VALUES (2, 1, 'Full', 1, 1, 'now')",
        "INSERT INTO sublists (id, layer_id, name, emoji, created_at) VALUES (1, 1, 'A', '🅰️', 'now')",
        "INSERT INTO sublists (id, layer_id, name, emoji, created_at) VALUES (2, 2, 'B', '🅱️', 'now')",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let ids: Vec<String> = (1..=4).map(|n| track(n).id.to_string()).collect();
    for id in &ids {
        sqlx::query("INSERT INTO tracks (id, name, artists) VALUES (?, 'x', '[]')")
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
    }
    // Layer 1: track 1 in A, track 2 without sublists; layer 2: track 3 in B, track 4 without.
    for (layer, id, sublist) in [
        (1, &ids[0], Some(1)),
        (1, &ids[1], None),
        (2, &ids[2], Some(2)),
        (2, &ids[3], None),
    ] {
        sqlx::query("INSERT INTO labels (layer_id, track_id, source, updated_at) VALUES (?, ?, 'member', 'now')")
            .bind(layer)
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
        if let Some(sublist) = sublist {
            sqlx::query(
                "INSERT INTO label_sublists (layer_id, track_id, sublist_id) VALUES (?, ?, ?)",
            )
            .bind(layer)
            .bind(id)
            .bind(sublist)
            .execute(&pool)
            .await
            .unwrap();
        }
    }
    pool.close().await;

    let s = Store::open_at(&path, &KEY).await.unwrap();
    let open: Vec<Label> = s
        .labels(crate::domain::LayerId(1))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.label)
        .collect();
    assert_eq!(
        open,
        vec![Label::one(crate::domain::SublistId(1)), Label::Void]
    );
    let full: Vec<Label> = s
        .labels(crate::domain::LayerId(2))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.label)
        .collect();
    assert_eq!(full, vec![Label::one(crate::domain::SublistId(2))]);
    assert_eq!(count(&s, "labels").await, 3);
}

#[tokio::test]
async fn pending_writes_are_kept_until_the_playlist_is_recorded() {
    let (_d, s) = fresh().await;
    let layer = s.create_layer(MemberId(1), "Mood", RULES).await.unwrap();
    let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
    let tracks: Vec<Track> = (1..=3).map(track).collect();
    s.upsert_tracks(&tracks).await.unwrap();
    let ids: Vec<TrackId> = tracks.iter().map(|t| t.id.clone()).collect();
    assert_eq!(s.playlist_creation(a.id).await.unwrap(), None);
    s.begin_playlist_creation(a.id, "ref 1").await.unwrap();
    assert_eq!(
        s.playlist_creation(a.id).await.unwrap().as_deref(),
        Some("ref 1")
    );
    s.set_managed_playlist(a.id, "pl1", "snap1").await.unwrap();
    assert_eq!(s.playlist_creation(a.id).await.unwrap(), None);

    s.record_pending(a.id, PendingOp::Add, &ids[..2])
        .await
        .unwrap();
    s.record_pending(a.id, PendingOp::Remove, &ids[2..])
        .await
        .unwrap();
    let pending = s.pending_writes(a.id).await.unwrap();
    assert_eq!(pending.added, ids[..2].iter().cloned().collect());
    assert_eq!(pending.removed, ids[2..].iter().cloned().collect());
    s.set_sublist_tracks(a.id, &ids[..2], "snap2")
        .await
        .unwrap();
    assert_eq!(
        s.pending_writes(a.id).await.unwrap(),
        playlists::PendingWrites::default()
    );
    assert_eq!(s.sublist_tracks(a.id).await.unwrap(), ids[..2]);
}

#[tokio::test]
async fn a_transaction_that_fails_half_way_leaves_nothing() {
    let (_d, s) = fresh().await;
    let layer = s.create_layer(MemberId(1), "Mood", RULES).await.unwrap();
    let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
    let stale = s.layer(layer.id).await.unwrap().unwrap();
    let t = track(1);
    s.upsert_tracks(std::slice::from_ref(&t)).await.unwrap();
    // The sublist disappears after the caller read the layer: the label row is written first,
    // then its sublist row fails the foreign key, and the whole label is rolled back.
    s.remove_sublist(a.id).await.unwrap();
    let err = s
        .set_label(&stale, &t.id, &Label::one(a.id), LabelSource::Member, None)
        .await;
    assert!(matches!(err, Err(StoreError::Db(_))), "{err:?}");
    assert_eq!(count(&s, "labels").await, 0);
    assert_eq!(count(&s, "label_sublists").await, 0);
}

#[tokio::test]
async fn models_round_trip() {
    let (_d, s) = fresh().await;
    let layer = s.create_layer(MemberId(1), "Mood", RULES).await.unwrap();
    let m = StoredModel {
        layer: layer.id,
        feature_schema: 3,
        weights: vec![1, 2, 3, 255],
        metrics: serde_json::json!({"accuracy": 0.8}),
        labels_used: 40,
        trained_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        device: "cpu".into(),
    };
    s.save_model(&m).await.unwrap();
    assert_eq!(s.model(layer.id).await.unwrap().unwrap(), m);
    let newer = StoredModel {
        weights: vec![9],
        ..m
    };
    s.save_model(&newer).await.unwrap();
    assert_eq!(s.model(layer.id).await.unwrap().unwrap(), newer);
}

#[tokio::test]
async fn sealed_tokens_are_not_readable_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealed.db");
    let s = Store::open_at(&path, &KEY).await.unwrap();
    s.ensure_member(MemberId(1)).await.unwrap();
    let token = "BQDrefresh-token-that-must-stay-secret";
    sqlx::query(
        "INSERT INTO spotify_links (member_id, app_client_id, account_id, user_id, refresh_token,
         authorized_at, refresh_expires_at, linked_at) VALUES (1, 'app', 'acc', 'user', ?, 'now', 'later', 'now')",
    )
    .bind(s.seal(token))
    .execute(s.pool())
    .await
    .unwrap();
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT refresh_token FROM spotify_links")
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&s.unseal(&sealed).unwrap()),
        token
    );
    s.close().await;
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let needle = token.as_bytes();
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    assert!(!bytes.windows(3).any(|w| w == b"BQD"));
}

#[tokio::test]
async fn deleting_a_member_leaves_no_row_of_theirs() {
    let (_d, s) = fresh().await;
    let (gone, kept) = (MemberId(1), MemberId(2));
    let t = track(1);
    s.upsert_tracks(std::slice::from_ref(&t)).await.unwrap();
    for m in [gone, kept] {
        let layer = s.create_layer(m, "Mood", RULES).await.unwrap();
        let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
        let layer = s.layer(layer.id).await.unwrap().unwrap();
        s.set_label(&layer, &t.id, &Label::one(a.id), LabelSource::Member, None)
            .await
            .unwrap();
        s.save_model(&StoredModel {
            layer: layer.id,
            feature_schema: 1,
            weights: vec![1],
            metrics: serde_json::json!({}),
            labels_used: 1,
            trained_at: chrono::Utc::now(),
            device: "cpu".into(),
        })
        .await
        .unwrap();
        let id = m.0 as i64;
        for sql in [
            "INSERT INTO spotify_links (member_id, app_client_id, account_id, user_id, authorized_at, refresh_expires_at, linked_at) VALUES (?1, 'app', 'acc' || ?1, 'u', 'x', 'x', 'x')",
            "INSERT INTO oauth_states (state, member_id, app_client_id, created_at, expires_at) VALUES ('s' || ?1, ?1, 'app', 'x', 'x')",
            "INSERT INTO liked (member_id, track_id, added_at, seen_at) VALUES (?1, '0000000000000000000001', 'x', 'x')",
            "INSERT INTO sync_state (member_id) VALUES (?1)",
            "INSERT INTO prompts (member_id, layer_id, track_id, created_at) SELECT ?1, id, '0000000000000000000001', 'x' FROM layers WHERE member_id = ?1",
            "INSERT INTO jobs (member_id, kind, payload, created_at, run_after) VALUES (?1, 'sync', '{}', 'x', 'x')",
            "INSERT INTO sublist_tracks (sublist_id, track_id, position) SELECT s.id, '0000000000000000000001', 0 FROM sublists s JOIN layers l ON l.id = s.layer_id WHERE l.member_id = ?1",
            "INSERT INTO sublist_pending (sublist_id, track_id, op) SELECT s.id, '0000000000000000000001', 'add' FROM sublists s JOIN layers l ON l.id = s.layer_id WHERE l.member_id = ?1",
        ] {
            sqlx::query(sql).bind(id).execute(s.pool()).await.unwrap();
        }
    }
    let tables = [
        "members",
        "spotify_links",
        "oauth_states",
        "liked",
        "sync_state",
        "sort_revisions",
        "layers",
        "sublists",
        "sublist_tracks",
        "sublist_pending",
        "labels",
        "label_sublists",
        "models",
        "prompts",
        "jobs",
    ];
    for table in tables {
        assert_eq!(count(&s, table).await, 2, "{table} before");
    }
    assert!(s.delete_member(gone).await.unwrap());
    assert!(!s.delete_member(gone).await.unwrap());
    for table in tables {
        assert_eq!(
            count(&s, table).await,
            1,
            "{table} after: only the other member's row"
        );
    }
    assert_eq!(count(&s, "tracks").await, 1, "shared track metadata stays");
}

fn link_row(member: u64, app: &str, account: &str) -> LinkRow {
    let now = chrono::Utc::now();
    LinkRow {
        member: MemberId(member),
        app_client_id: app.into(),
        account_id: account.into(),
        user_id: account.into(),
        display_name: None,
        access_token: Some(secrecy::SecretString::from("at")),
        refresh_token: Some(secrecy::SecretString::from("rt")),
        access_expires_at: None,
        authorized_at: now,
        refresh_expires_at: now + chrono::Duration::days(180),
        status: LinkStatus::Active,
        linked_at: now,
        expiry_warned_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_started_together_reserve_at_most_each_apps_cap() {
    let (_d, s) = fresh().await;
    let now = chrono::Utc::now();
    let until = now + chrono::Duration::minutes(10);
    for i in 1..=9 {
        s.ensure_member(MemberId(i)).await.unwrap();
    }
    let tasks: Vec<_> = (1..=8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.reserve_link_slot(
                    MemberId(i),
                    &format!("state{i}"),
                    until,
                    &[("a", 2), ("b", 1)],
                    now,
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let on = |app: &str| got.iter().filter(|g| g.as_deref() == Some(app)).count();
    assert_eq!((on("a"), on("b")), (2, 1), "{got:?}");
    // Attempts that expired free their slots.
    let later = until + chrono::Duration::seconds(1);
    let app = s
        .reserve_link_slot(MemberId(9), "state9", later, &[("a", 2), ("b", 1)], later)
        .await
        .unwrap();
    assert_eq!(app.as_deref(), Some("a"));
}

#[tokio::test]
async fn binding_a_link_checks_the_cap_and_the_account_together() {
    let (_d, s) = fresh().await;
    for i in 1..=3 {
        s.ensure_member(MemberId(i)).await.unwrap();
    }
    let until = chrono::Utc::now() + chrono::Duration::minutes(15);
    let first = link_row(1, "a", "acct1");
    s.put_pending_link(&first, until).await.unwrap();
    assert!(s.pending_link(MemberId(1)).await.unwrap().is_some());
    assert_eq!(s.bind_link(&first, 1).await.unwrap(), Bind::Bound);
    assert!(s.pending_link(MemberId(1)).await.unwrap().is_none());
    assert_eq!(
        s.bind_link(&link_row(2, "a", "acct2"), 1).await.unwrap(),
        Bind::AppFull
    );
    assert_eq!(
        s.bind_link(&link_row(3, "b", "acct1"), 1).await.unwrap(),
        Bind::AccountElsewhere
    );
    assert_eq!(
        s.bind_link(&link_row(1, "a", "acct9"), 1).await.unwrap(),
        Bind::AlreadyLinked("acct1".into())
    );
    // The member's own slot is not counted against them.
    assert_eq!(s.bind_link(&first, 1).await.unwrap(), Bind::Bound);
    assert!(s.link(MemberId(2)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_link_is_warned_about_once_and_a_pause_is_new_once() {
    let (_d, s) = fresh().await;
    s.ensure_member(MemberId(1)).await.unwrap();
    s.bind_link(&link_row(1, "a", "acct1"), 5).await.unwrap();
    let now = chrono::Utc::now();
    assert!(s.claim_expiry_warning(MemberId(1), now).await.unwrap());
    assert!(!s.claim_expiry_warning(MemberId(1), now).await.unwrap());
    assert_eq!(s.members_on_app("a").await.unwrap(), vec![MemberId(1)]);

    let hour = chrono::Duration::hours(1);
    assert!(s.record_app_pause("a", now + hour * 2, now).await.unwrap());
    assert!(
        !s.record_app_pause("a", now + hour * 3, now + hour)
            .await
            .unwrap()
    );
    assert!(
        !s.record_app_pause("a", now + hour, now + hour)
            .await
            .unwrap()
    );
    assert_eq!(
        s.app_pauses(now + hour).await.unwrap(),
        vec![("a".to_string(), now + hour * 3)]
    );
    assert!(s.app_pauses(now + hour * 4).await.unwrap().is_empty());
    assert!(
        s.record_app_pause("a", now + hour * 6, now + hour * 4)
            .await
            .unwrap(),
        "a pause after the last one ended is a new one"
    );
}

#[tokio::test]
async fn forgetting_a_member_hands_back_their_messages_and_refuses_later_ones() {
    let (_d, s) = fresh().await;
    let (gone, kept) = (MemberId(1), MemberId(2));
    s.upsert_tracks(&[track(1)]).await.unwrap();
    let layer = s.create_layer(gone, "Mood", RULES).await.unwrap();
    s.ensure_member(kept).await.unwrap();
    let now = chrono::Utc::now();
    let prompt = s
        .create_prompt(gone, layer.id, &track(1).id, None)
        .await
        .unwrap()
        .unwrap();
    s.set_prompt_posted(prompt, 11, 101).await.unwrap();
    assert!(s.record_member_message(gone, 10, 100, now).await.unwrap());
    assert!(s.record_member_message(kept, 10, 200, now).await.unwrap());

    let mut messages = s.forget_member(gone).await.unwrap().unwrap();
    messages.sort();
    assert_eq!(messages, vec![(10, 100), (11, 101)]);
    assert!(s.member_settings(gone).await.unwrap().is_none());
    assert!(!s.record_member_message(gone, 10, 102, now).await.unwrap());
    assert!(
        s.member_settings(gone).await.unwrap().is_none(),
        "not recreated"
    );
    assert_eq!(s.forget_member(gone).await.unwrap(), None);
    assert_eq!(count(&s, "member_messages").await, 1);
}

#[tokio::test]
async fn the_sort_revision_moves_with_what_a_sort_reads_and_not_with_a_sync_seeing_tracks() {
    let (_d, s) = fresh().await;
    let m = MemberId(1);
    s.ensure_member(m).await.unwrap();
    let settled = |s: Store| async move {
        let (revision, _) = s.sort_revision(m).await.unwrap().unwrap();
        assert!(s.mark_sorted(m, revision).await.unwrap());
        revision
    };
    let r = settled(s.clone()).await;
    assert_eq!(s.sort_revision(m).await.unwrap(), Some((r, true)));

    // A new like moves it, and a sort that began before cannot mark the new revision sorted.
    let liked = crate::domain::LikedTrack {
        track: track(1),
        added_at: s.now(),
    };
    let state = SyncState::default();
    s.save_liked_page(m, std::slice::from_ref(&liked), s.now(), &state)
        .await
        .unwrap();
    assert_eq!(s.sort_revision(m).await.unwrap(), Some((r + 1, false)));
    assert!(!s.mark_sorted(m, r).await.unwrap());
    let r = settled(s.clone()).await;

    // A sync that sees the same track again, unchanged, moves nothing.
    s.save_liked_page(m, std::slice::from_ref(&liked), s.now(), &state)
        .await
        .unwrap();
    s.touch_liked(m, std::slice::from_ref(&liked.track.id), s.now())
        .await
        .unwrap();
    assert_eq!(s.sort_revision(m).await.unwrap(), Some((r, true)));

    // Its audio descriptors arriving, a layer, a label, a setting: each moves it.
    let audio = AudioFeatures::from_values([0.5; 11]);
    s.set_audio(&liked.track.id, Some(&audio), s.now())
        .await
        .unwrap();
    let r = {
        let (after, sorted) = s.sort_revision(m).await.unwrap().unwrap();
        assert!(after > r && !sorted);
        settled(s.clone()).await
    };
    let layer = s.create_layer(m, "Mood", RULES).await.unwrap();
    let a = s.add_sublist(layer.id, "A", "🅰️").await.unwrap();
    let layer = s.layer(layer.id).await.unwrap().unwrap();
    let r2 = settled(s.clone()).await;
    assert!(r2 > r);
    s.set_label(
        &layer,
        &liked.track.id,
        &Label::one(a.id),
        LabelSource::Member,
        None,
    )
    .await
    .unwrap();
    let r3 = settled(s.clone()).await;
    assert!(r3 > r2);
    let mut settings = s.member_settings(m).await.unwrap().unwrap();
    settings.ask_below = 0.5;
    s.set_member_settings(m, &settings).await.unwrap();
    assert!(!s.sort_revision(m).await.unwrap().unwrap().1);

    // Another member's changes leave it alone.
    let r4 = settled(s.clone()).await;
    s.ensure_member(MemberId(2)).await.unwrap();
    s.create_layer(MemberId(2), "Mood", RULES).await.unwrap();
    assert_eq!(s.sort_revision(m).await.unwrap(), Some((r4, true)));
}
