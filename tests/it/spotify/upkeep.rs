//! Keeping the sublists: smallest diffs in calls of at most 100, order kept, hand edits
//! respected and turned into labels, deleted playlists recreated, renames kept, adoption, a
//! quota pause mid-refresh that loses nothing, no playlist before its first track, and the
//! bot's own writes whose answers were lost (5xx, time-out, a cut-off mid-request) neither
//! sent twice nor read back as hand edits.

use std::time::{Duration, Instant};

use sublist::domain::{Label, LabelSource, Layer, LayerRules, SublistId, TrackId};
use sublist::spotify::local::{Failure, track_id};
use sublist::spotify::{HandEdit, SpotifyError};

use super::{ALICE, Rig, assert_bodies_valid, link, no_progress, rig};

/// Alice with `n` liked songs synced, and a layer with four sublists.
async fn setup(n: u32, rules: LayerRules) -> (Rig, Layer) {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", n);
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let layer = r.store.create_layer(ALICE, "Mood", rules).await.unwrap();
    for (name, emoji) in [("Calm", "🌙"), ("Loud", "🔥"), ("Sad", "🌧"), ("Happy", "☀")] {
        r.store.add_sublist(layer.id, name, emoji).await.unwrap();
    }
    let layer = r.store.layer(layer.id).await.unwrap().unwrap();
    (r, layer)
}

fn ids(range: std::ops::Range<u32>) -> Vec<TrackId> {
    range.map(track_id).collect()
}

fn split(layer: &Layer, parts: [Vec<TrackId>; 4]) -> Vec<(SublistId, Vec<TrackId>)> {
    layer.sublists.iter().map(|s| s.id).zip(parts).collect()
}

const MUTUAL_INCOMPLETE: LayerRules = LayerRules {
    mutual: true,
    complete: false,
};

fn ceil100(n: usize) -> u32 {
    n.div_ceil(100) as u32
}

#[tokio::test]
async fn a_refresh_writes_the_smallest_change_and_keeps_order() {
    let (r, layer) = setup(1000, MUTUAL_INCOMPLETE).await;
    let first = split(
        &layer,
        [ids(0..250), ids(250..500), ids(500..750), ids(750..1000)],
    );
    r.local.clear_log();
    let t = Instant::now();
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &first)
        .await
        .unwrap();
    let first_time = t.elapsed();
    assert_eq!(rep.playlists.len(), 4);
    for (change, (_, want)) in rep.playlists.iter().zip(&first) {
        assert!(change.created && !change.recreated);
        assert_eq!(change.write_calls, 3, "250 tracks in calls of 100");
        assert_eq!(r.local.playlist_tracks(&change.playlist_id).unwrap(), *want);
        let (name, description, public) = r.local.playlist_details(&change.playlist_id).unwrap();
        assert!(!public, "created private");
        assert!(description.contains("sublist"));
        assert_eq!(name, change.name);
    }
    assert_eq!(r.local.count("POST", "/playlists/"), 12);
    assert_eq!(r.local.count("POST", "/me/playlists"), 4);
    let first_requests = rep.requests;

    // Move tracks around: Calm loses 100 to Loud, Sad loses 30 to Happy, 150 tracks leave
    // Happy, and Calm gets 40 new ones.
    let second = split(
        &layer,
        [
            [ids(100..250), ids(1000..1040)].concat(),
            [ids(250..500), ids(0..100)].concat(),
            ids(530..750),
            [ids(900..1000), ids(500..530)].concat(),
        ],
    );
    let before: Vec<Vec<TrackId>> = rep
        .playlists
        .iter()
        .map(|c| r.local.playlist_tracks(&c.playlist_id).unwrap())
        .collect();
    // Tracks 1000..1040 are liked since.
    r.local.like("alice", &ids(1000..1040));
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    r.local.clear_log();
    let t = Instant::now();
    let rep2 = r
        .spotify
        .write_sublists(ALICE, &layer, &second)
        .await
        .unwrap();
    let second_time = t.elapsed();
    for ((change, (_, want)), old) in rep2.playlists.iter().zip(&second).zip(&before) {
        let now = r.local.playlist_tracks(&change.playlist_id).unwrap();
        let mut got = now.clone();
        got.sort();
        let mut expect = want.clone();
        expect.sort();
        assert_eq!(got, expect);
        assert!(change.hand_edits.is_empty());
        assert_eq!(
            change.write_calls,
            ceil100(change.added.len()) + ceil100(change.removed.len()),
            "no more calls than ceil(changes / 100) per kind"
        );
        // Tracks already there keep their order, first; new ones follow.
        let kept: Vec<&TrackId> = old.iter().filter(|t| want.contains(t)).collect();
        assert_eq!(now[..kept.len()].iter().collect::<Vec<_>>(), kept);
        assert_eq!(now[kept.len()..], change.added[..]);
    }
    let calls: Vec<u32> = rep2.playlists.iter().map(|c| c.write_calls).collect();
    assert_eq!(calls, vec![2, 1, 1, 3]);
    // Unchanged snapshots: no playlist was read page by page.
    assert_eq!(
        r.local.count("GET", "/playlists/") - 4,
        0,
        "only 4 detail reads"
    );
    eprintln!(
        "UPKEEP-MEASURE create 4 x 250: {first_requests} requests in {first_time:?}; second refresh ({} write calls): {} requests in {second_time:?}",
        calls.iter().sum::<u32>(),
        rep2.requests
    );
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn hand_edits_are_respected_and_become_labels() {
    let (r, layer) = setup(100, MUTUAL_INCOMPLETE).await;
    let desired = split(&layer, [ids(0..10), ids(10..20), ids(20..30), ids(30..40)]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let calm = rep.playlists[0].playlist_id.clone();
    let (calm_id, loud_id) = (layer.sublists[0].id, layer.sublists[1].id);
    // The member removes track 3 from Calm and adds track 15 (a Loud track) and 60 to it.
    r.local.hand_remove(&calm, &[track_id(3)]);
    r.local.hand_add(&calm, &[track_id(15), track_id(60)]);

    r.local.clear_log();
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let edits = &rep.playlists[0].hand_edits;
    assert!(edits.contains(&HandEdit::Removed(track_id(3))));
    assert!(edits.contains(&HandEdit::Added(track_id(15))));
    assert!(edits.contains(&HandEdit::Added(track_id(60))));
    let calm_now = r.local.playlist_tracks(&calm).unwrap();
    assert!(
        !calm_now.contains(&track_id(3)),
        "a hand removal is not undone"
    );
    assert!(calm_now.contains(&track_id(15)) && calm_now.contains(&track_id(60)));
    // Mutual layer: 15 moved to Calm, so it left Loud.
    let loud_now = r
        .local
        .playlist_tracks(&rep.playlists[1].playlist_id)
        .unwrap();
    assert!(!loud_now.contains(&track_id(15)));
    // Labels say so, as the member's own.
    let l3 = r
        .store
        .label(layer.id, &track_id(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (l3.label, l3.source),
        (Label::Void, LabelSource::Member),
        "not here"
    );
    let l15 = r
        .store
        .label(layer.id, &track_id(15))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l15.label, Label::one(calm_id));
    assert_ne!(l15.label, Label::one(loud_id));
    // The next refresh sees no hand edit and writes nothing.
    let desired_now = split(
        &layer,
        [calm_now.clone(), loud_now.clone(), ids(20..30), ids(30..40)],
    );
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired_now)
        .await
        .unwrap();
    assert!(
        rep.playlists
            .iter()
            .all(|c| c.hand_edits.is_empty() && c.write_calls == 0)
    );
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_hand_edit_changes_the_members_answer_never_the_models_guess() {
    let rules = LayerRules {
        mutual: false,
        complete: false,
    };
    let (r, layer) = setup(40, rules).await;
    let (calm, loud) = (layer.sublists[0].id, layer.sublists[1].id);
    let mut loud_tracks = ids(10..20);
    loud_tracks.push(track_id(25));
    let desired = split(&layer, [ids(0..10), loud_tracks, vec![], vec![]]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let (calm_pl, loud_pl) = (
        rep.playlists[0].playlist_id.clone(),
        rep.playlists[1].playlist_id.clone(),
    );
    // The model now guesses Loud for track 5 (still in Calm's playlist) and for track 25
    // (in Loud's).
    for n in [5, 25] {
        r.store
            .set_label(
                &layer,
                &track_id(n),
                &Label::one(loud),
                LabelSource::Model,
                None,
            )
            .await
            .unwrap();
    }
    // The member takes 5 out of Calm and puts 25 in it: "not Calm" and "Calm", nothing
    // about Loud.
    r.local.hand_remove(&calm_pl, &[track_id(5)]);
    r.local.hand_add(&calm_pl, &[track_id(25)]);
    r.spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let label = |n| {
        let r = &r;
        let layer = &layer;
        async move {
            let l = r
                .store
                .label(layer.id, &track_id(n))
                .await
                .unwrap()
                .unwrap();
            (l.label, l.source)
        }
    };
    assert_eq!(
        label(5).await,
        (Label::Void, LabelSource::Member),
        "taking a track out answers only for that sublist"
    );
    assert_eq!(
        label(25).await,
        (Label::one(calm), LabelSource::Member),
        "the model's guess does not become the member's answer"
    );
    // The playlists follow the labels at once: 25 left Loud, where no label puts it now.
    let loud_now = r.local.playlist_tracks(&loud_pl).unwrap();
    assert!(!loud_now.contains(&track_id(25)), "{loud_now:?}");
    assert!(
        r.local
            .playlist_tracks(&calm_pl)
            .unwrap()
            .contains(&track_id(25))
    );
}

#[tokio::test]
async fn a_deleted_playlist_is_recreated_and_a_rename_is_kept() {
    let (r, layer) = setup(100, MUTUAL_INCOMPLETE).await;
    let desired = split(&layer, [ids(0..10), ids(10..20), ids(20..30), ids(30..40)]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let (calm, loud) = (
        rep.playlists[0].playlist_id.clone(),
        rep.playlists[1].playlist_id.clone(),
    );
    r.local.delete_playlist("alice", &calm);
    r.local.rename(&loud, "Loud (mine)");
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let c = &rep.playlists[0];
    assert!(c.recreated && !c.created);
    assert_ne!(c.playlist_id, calm);
    assert_eq!(r.local.playlist_tracks(&c.playlist_id).unwrap(), ids(0..10));
    let l = &rep.playlists[1];
    assert_eq!((l.name.as_str(), l.write_calls), ("Loud (mine)", 0));
    assert_eq!(r.local.playlist_details(&loud).unwrap().0, "Loud (mine)");
    let names: Vec<String> = r
        .local
        .library_playlists("alice")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, vec!["Loud (mine)", "Sad", "Happy", "Calm"]);
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_deleted_playlist_with_nothing_to_hold_is_forgotten_until_a_track_goes_in() {
    let (r, layer) = setup(100, MUTUAL_INCOMPLETE).await;
    let desired = split(&layer, [ids(0..10), ids(10..20), ids(20..30), ids(30..40)]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let calm = rep.playlists[0].playlist_id.clone();
    let calm_id = layer.sublists[0].id;
    r.local.delete_playlist("alice", &calm);
    // Nothing goes in Calm any more: no empty playlist is made again, and none is pointed at.
    let emptied = split(&layer, [Vec::new(), ids(10..20), ids(20..30), ids(30..40)]);
    r.spotify
        .write_sublists(ALICE, &layer, &emptied)
        .await
        .unwrap();
    let sublist = r.store.layer(layer.id).await.unwrap().unwrap().sublists[0].clone();
    assert_eq!(sublist.playlist_id, None);
    assert_eq!(r.local.library_playlists("alice").len(), 3);
    // A track goes in again: a new playlist holds it.
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    let c = rep
        .playlists
        .iter()
        .find(|p| p.sublist == calm_id)
        .expect("Calm is written");
    assert!(c.created);
    assert_ne!(c.playlist_id, calm);
    assert_eq!(r.local.playlist_tracks(&c.playlist_id).unwrap(), ids(0..10));
    assert_eq!(r.local.library_playlists("alice").len(), 4);
}

#[tokio::test]
async fn quota_mid_refresh_pauses_and_loses_no_pending_change() {
    let (r, layer) = setup(600, MUTUAL_INCOMPLETE).await;
    let desired = split(
        &layer,
        [ids(0..300), ids(300..400), ids(400..500), ids(500..600)],
    );
    // The second add call of the first playlist hits the daily quota.
    r.local.inject_after(
        Some("POST"),
        "/items",
        1,
        Failure::Quota { retry_after: 2 },
        1,
    );
    let before = chrono::Utc::now();
    let err = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap_err();
    let SpotifyError::Paused { until } = err else {
        panic!("expected a pause, got {err}")
    };
    let wait = (until - before).num_milliseconds();
    assert!(
        (1500..=2500).contains(&wait),
        "resume time from Retry-After: {wait} ms"
    );
    assert_eq!(r.spotify.paused_until(ALICE).await.unwrap(), Some(until));
    // While paused, nothing is sent.
    r.local.clear_log();
    assert!(matches!(
        r.spotify.write_sublists(ALICE, &layer, &desired).await,
        Err(SpotifyError::Paused { .. })
    ));
    assert!(r.local.requests().is_empty());
    // After the pause, the same refresh finishes what was left, with no false hand edit.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(r.spotify.paused_until(ALICE).await.unwrap(), None);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &desired)
        .await
        .unwrap();
    for (change, (_, want)) in rep.playlists.iter().zip(&desired) {
        assert_eq!(r.local.playlist_tracks(&change.playlist_id).unwrap(), *want);
        assert!(change.hand_edits.is_empty());
    }
    assert_eq!(
        rep.playlists[0].write_calls, 2,
        "the first 100 were kept: 200 left"
    );
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn an_adopted_playlist_gives_imported_labels() {
    let (r, layer) = setup(50, MUTUAL_INCOMPLETE).await;
    let own = r
        .local
        .create_playlist("alice", "Old favourites", &ids(0..30), false);
    let (calm, loud) = (layer.sublists[0].id, layer.sublists[1].id);
    // One track has the member's answer for another sublist, one the model's guess, one the
    // member's answer for this sublist: the import is the member's latest word, so every
    // track of the playlist ends up labelled as belonging here.
    for (n, source) in [(0, LabelSource::Member), (1, LabelSource::Model)] {
        r.store
            .set_label(&layer, &track_id(n), &Label::one(loud), source, None)
            .await
            .unwrap();
    }
    r.store
        .set_label(
            &layer,
            &track_id(2),
            &Label::one(calm),
            LabelSource::Member,
            None,
        )
        .await
        .unwrap();
    let adopted = r
        .spotify
        .adopt_playlist(ALICE, &layer, calm, &own)
        .await
        .unwrap();
    assert_eq!(adopted.tracks, ids(0..30));
    assert_eq!(adopted.labelled, 29, "track 2 already named the sublist");
    for n in [0, 1, 2, 5] {
        let l = r
            .store
            .label(layer.id, &track_id(n))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.label, l.source),
            (Label::one(calm), LabelSource::Imported),
            "track {n}"
        );
    }
    // The playlist is now managed: a refresh writes to it, and only the difference.
    let layer = r.store.layer(layer.id).await.unwrap().unwrap();
    let want = [ids(0..30), ids(30..35)].concat();
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &[(calm, want.clone())])
        .await
        .unwrap();
    assert_eq!(rep.playlists[0].playlist_id, own);
    assert_eq!(
        (rep.playlists[0].write_calls, rep.playlists[0].added.len()),
        (1, 5)
    );
    assert!(rep.playlists[0].hand_edits.is_empty());
    assert_eq!(r.local.playlist_tracks(&own).unwrap(), want);
    // Somebody else's playlist cannot be adopted.
    r.local.add_user("bob", "acct-bob", "Bob");
    let theirs = r.local.create_playlist("bob", "Bob's", &ids(0..5), false);
    let err = r
        .spotify
        .adopt_playlist(ALICE, &layer, layer.sublists[2].id, &theirs)
        .await
        .unwrap_err();
    assert!(matches!(err, SpotifyError::PlaylistNotYours));
    let listed = r.spotify.list_playlists(ALICE).await.unwrap();
    assert!(listed.iter().any(|p| p.id == own && p.editable));
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_sublist_gets_its_playlist_with_its_first_track_not_before() {
    let (r, layer) = setup(50, MUTUAL_INCOMPLETE).await;
    let rep = r
        .spotify
        .write_sublists(
            ALICE,
            &layer,
            &split(&layer, [ids(0..10), vec![], vec![], vec![]]),
        )
        .await
        .unwrap();
    assert_eq!(rep.playlists.len(), 1);
    assert!(rep.playlists[0].created);
    assert_eq!(r.local.count("POST", "/me/playlists"), 1);
    let names: Vec<String> = r
        .local
        .library_playlists("alice")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, vec!["Calm"], "no empty playlist");
    // The first track for Loud makes its playlist.
    let rep = r
        .spotify
        .write_sublists(
            ALICE,
            &layer,
            &split(&layer, [ids(0..10), ids(10..11), vec![], vec![]]),
        )
        .await
        .unwrap();
    assert_eq!(rep.playlists.len(), 2);
    assert!(rep.playlists[1].created);
    assert_eq!(
        r.local
            .playlist_tracks(&rep.playlists[1].playlist_id)
            .unwrap(),
        ids(10..11)
    );
    assert_eq!(r.local.library_playlists("alice").len(), 2);
    assert_bodies_valid(&r.local);
}

/// After a quiet refresh with `desired`, every playlist holds exactly its tracks, once, no
/// hand edit was seen, nothing was written, and no label came from the bot's own writes.
async fn assert_quiet(r: &Rig, layer: &Layer, desired: &[(SublistId, Vec<TrackId>)]) {
    let rep = r
        .spotify
        .write_sublists(ALICE, layer, desired)
        .await
        .unwrap();
    for (change, (_, want)) in rep.playlists.iter().zip(desired) {
        assert_eq!(
            r.local.playlist_tracks(&change.playlist_id).unwrap(),
            *want,
            "{}",
            change.name
        );
        assert!(change.hand_edits.is_empty(), "{change:?}");
        assert_eq!(change.write_calls, 0, "{change:?}");
    }
    assert_eq!(r.store.labels(layer.id).await.unwrap(), vec![]);
}

#[tokio::test]
async fn an_add_whose_answer_is_lost_is_read_back_not_sent_twice() {
    let (r, layer) = setup(200, MUTUAL_INCOMPLETE).await;
    let first = split(&layer, [ids(0..10), ids(10..20), ids(20..30), ids(30..40)]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &first)
        .await
        .unwrap();
    let (calm, loud) = (
        rep.playlists[0].playlist_id.clone(),
        rep.playlists[1].playlist_id.clone(),
    );
    // Spotify applies Calm's addition but its answer is a 502; Loud's answer comes after the
    // client gave up (1 s); Sad's addition fails for real once.
    r.local.inject(
        Some("POST"),
        &format!("/playlists/{calm}/items"),
        Failure::AppliedThenStatus(502),
        1,
    );
    r.local.inject(
        Some("POST"),
        &format!("/playlists/{loud}/items"),
        Failure::AppliedThenSlow(Duration::from_millis(1500)),
        1,
    );
    let sad = rep.playlists[2].playlist_id.clone();
    r.local.inject(
        Some("POST"),
        &format!("/playlists/{sad}/items"),
        Failure::Status(503),
        1,
    );
    let second = split(
        &layer,
        [
            [ids(0..10), ids(100..110)].concat(),
            [ids(10..20), ids(110..120)].concat(),
            [ids(20..30), ids(120..130)].concat(),
            ids(30..40),
        ],
    );
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &second)
        .await
        .unwrap();
    for (change, (_, want)) in rep.playlists.iter().zip(&second) {
        assert_eq!(
            r.local.playlist_tracks(&change.playlist_id).unwrap(),
            *want,
            "{}: each track once",
            change.name
        );
    }
    assert_eq!(rep.playlists[0].added, ids(100..110));
    assert_eq!(
        r.local.count("POST", &format!("/playlists/{calm}/items")),
        2,
        "the first refresh's add, and the lost one: not sent again"
    );
    assert_eq!(
        r.local.count("POST", &format!("/playlists/{sad}/items")),
        3,
        "refused, read back, sent again"
    );
    assert_quiet(&r, &layer, &second).await;
    assert_bodies_valid(&r.local);
}

/// Waits until the local Spotify's playlist `id` holds `n` tracks.
async fn until_holds(r: &Rig, id: &str, n: usize) {
    for _ in 0..1000 {
        if r.local.playlist_tracks(id).is_some_and(|t| t.len() == n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("playlist {id} never held {n} tracks");
}

#[tokio::test]
async fn a_write_cut_off_after_spotify_applied_it_is_not_read_as_a_hand_edit() {
    let (r, layer) = setup(200, MUTUAL_INCOMPLETE).await;
    let first = split(&layer, [ids(0..10), ids(10..20), ids(20..30), ids(30..40)]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &first)
        .await
        .unwrap();
    let (calm, loud) = (
        rep.playlists[0].playlist_id.clone(),
        rep.playlists[1].playlist_id.clone(),
    );
    // The job is stopped (a time limit, a restart) while Spotify has applied an addition
    // and its answer is still on the way.
    r.local.inject(
        Some("POST"),
        &format!("/playlists/{calm}/items"),
        Failure::AppliedThenSlow(Duration::from_secs(30)),
        1,
    );
    let second = split(
        &layer,
        [
            [ids(0..10), ids(100..110)].concat(),
            ids(10..20),
            ids(20..30),
            ids(30..40),
        ],
    );
    let run = {
        let (spotify, layer, second) = (r.spotify.clone(), layer.clone(), second.clone());
        tokio::spawn(async move { spotify.write_sublists(ALICE, &layer, &second).await })
    };
    until_holds(&r, &calm, 20).await;
    run.abort();
    let _ = run.await;
    r.local.clear_failures();
    assert_quiet(&r, &layer, &second).await;

    // The same for a removal.
    r.local.inject(
        Some("DELETE"),
        &format!("/playlists/{loud}/items"),
        Failure::AppliedThenSlow(Duration::from_secs(30)),
        1,
    );
    let third = split(
        &layer,
        [
            [ids(0..10), ids(100..110)].concat(),
            ids(10..15),
            ids(20..30),
            ids(30..40),
        ],
    );
    let run = {
        let (spotify, layer, third) = (r.spotify.clone(), layer.clone(), third.clone());
        tokio::spawn(async move { spotify.write_sublists(ALICE, &layer, &third).await })
    };
    until_holds(&r, &loud, 5).await;
    run.abort();
    let _ = run.await;
    r.local.clear_failures();
    assert_quiet(&r, &layer, &third).await;
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_playlist_creation_whose_answer_is_lost_is_found_not_made_twice() {
    let (r, layer) = setup(50, MUTUAL_INCOMPLETE).await;
    // Spotify makes the playlist, but its answer is a 502.
    r.local.inject(
        Some("POST"),
        "/me/playlists",
        Failure::AppliedThenStatus(502),
        1,
    );
    let first = split(&layer, [ids(0..10), vec![], vec![], vec![]]);
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &first)
        .await
        .unwrap();
    assert!(rep.playlists[0].created);
    assert_eq!(r.local.count("POST", "/me/playlists"), 1, "not sent again");
    let library = r.local.library_playlists("alice");
    assert_eq!(library.len(), 1, "{library:?}");
    assert_eq!(library[0].0, rep.playlists[0].playlist_id);
    assert_eq!(r.local.playlist_tracks(&library[0].0).unwrap(), ids(0..10));

    // Stopped while the creation's answer is on the way: the next refresh finds it.
    r.local.inject(
        Some("POST"),
        "/me/playlists",
        Failure::AppliedThenSlow(Duration::from_secs(30)),
        1,
    );
    let second = split(&layer, [ids(0..10), ids(10..20), vec![], vec![]]);
    let run = {
        let (spotify, layer, second) = (r.spotify.clone(), layer.clone(), second.clone());
        tokio::spawn(async move { spotify.write_sublists(ALICE, &layer, &second).await })
    };
    for _ in 0..1000 {
        if r.local.library_playlists("alice").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    let _ = run.await;
    r.local.clear_failures();
    let rep = r
        .spotify
        .write_sublists(ALICE, &layer, &second)
        .await
        .unwrap();
    let names: Vec<String> = r
        .local
        .library_playlists("alice")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, vec!["Calm", "Loud"], "one playlist per sublist");
    assert_eq!(
        r.local
            .playlist_tracks(&rep.playlists[1].playlist_id)
            .unwrap(),
        ids(10..20)
    );
    assert_quiet(&r, &layer, &second).await;
    assert_bodies_valid(&r.local);
}
