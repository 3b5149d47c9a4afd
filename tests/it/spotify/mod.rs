//! Spotify: linking, token refresh, motherlist sync, limits and the audio provider, through the
//! real rspotify client against the local Spotify, with a real SQLite store. Every body the
//! local Spotify answers is checked against Spotify's official OpenAPI file.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sublist::config::{AudioConfig, AudioProvider, SpotifyApp, SpotifyConfig};
use sublist::domain::{MemberId, Motherlist, TrackId};
use sublist::spotify::local::{Failure, LocalSpotify, Service, track_id};
use sublist::spotify::{LinkError, Spotify, SpotifyError, SyncProgress};
use sublist::store::Store;

use super::openapi::Spec;

mod upkeep;

pub(crate) fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        Spec::load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/it/spec/spotify-openapi.yml"
        ))
        .expect("the Spotify OpenAPI file loads")
    })
}

/// Checks every Web API body the local Spotify answered (and every JSON body sublist sent)
/// against the official OpenAPI file. Statuses the file does not list (5xx, 404) are checked
/// against its ErrorObject.
pub(crate) fn assert_bodies_valid(local: &LocalSpotify) {
    let spec = spec();
    let mut checked = 0;
    for r in local.requests() {
        if r.service != Service::WebApi {
            continue;
        }
        let where_ = format!("{} {}?{} -> {}", r.method, r.path, r.query, r.status);
        if let Some(body) = &r.body {
            let res = spec.validate_response(&r.method, &r.path, r.status, body);
            let res = match res {
                Err(e) if e.contains("is not documented") => body
                    .get("error")
                    .ok_or_else(|| format!("{where_}: an error without `error`"))
                    .and_then(|err| spec.validate_schema("ErrorObject", err)),
                other => other,
            };
            if let Err(e) = res {
                panic!("{where_}: {e}");
            }
            checked += 1;
        }
        if let Some(sent) = &r.request_body
            && r.method != "GET"
        {
            spec.validate_request(&r.method, &r.path, sent)
                .unwrap_or_else(|e| panic!("request {where_}: {e}"));
        }
    }
    assert!(checked > 0, "no Web API body was checked");
}

pub(crate) struct Rig {
    pub local: LocalSpotify,
    pub spotify: Spotify,
    pub store: Store,
    pub dir: tempfile::TempDir,
    config: SpotifyConfig,
    audio: AudioConfig,
}

impl Rig {
    /// A fresh Spotify side on the same database, as after a restart (nothing in memory).
    pub(crate) fn restarted(&self) -> Spotify {
        Spotify::new(self.store.clone(), self.config.clone(), self.audio.clone())
    }
}

pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub(crate) fn app(id: &str, cap: u32, redirect: &str) -> SpotifyApp {
    SpotifyApp {
        client_id: id.into(),
        client_secret: SecretString::from(format!("secret-{id}")),
        redirect_uri: redirect.parse().expect("redirect URI"),
        user_cap: cap,
    }
}

pub(crate) async fn rig_with(
    apps: Vec<SpotifyApp>,
    audio: AudioProvider,
    full_pass_pages: u32,
) -> Rig {
    let local = LocalSpotify::start().await.expect("local Spotify starts");
    for a in &apps {
        local.add_app(&a.client_id, &format!("secret-{}", a.client_id), false);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open_at(&dir.path().join("sublist.db"), &[7u8; 32])
        .await
        .expect("store opens");
    let config = SpotifyConfig {
        api_base_url: local.api_base_url(),
        accounts_base_url: local.accounts_base_url(),
        apps,
        max_retries: 3,
        request_timeout: Duration::from_secs(1),
        full_pass_pages,
    };
    let audio = AudioConfig {
        provider: audio,
        reccobeats_base_url: local.reccobeats_base_url(),
    };
    let spotify = Spotify::new(store.clone(), config.clone(), audio.clone());
    Rig {
        local,
        spotify,
        store,
        dir,
        config,
        audio,
    }
}

pub(crate) async fn rig() -> Rig {
    rig_with(vec![app("app1", 5, REDIRECT)], AudioProvider::None, 0).await
}

/// Opens an authorize URL like a browser whose user clicks Agree, and returns the address it
/// ends on (Spotify's redirect).
pub(crate) async fn authorize(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let resp = http.get(url).send().await.expect("authorize answers");
    assert_eq!(resp.status().as_u16(), 303, "authorize redirects");
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_string()
}

/// Links `member` to the local user `user` (created with account id `acct-<user>`) by paste,
/// and confirms the account.
pub(crate) async fn link(r: &Rig, member: MemberId, user: &str) {
    r.local
        .add_user(user, &format!("acct-{user}"), &format!("{user} name"));
    r.local.set_browser_user(user);
    let start = r.spotify.start_link(member).await.expect("link starts");
    let landed = authorize(&start.url).await;
    r.spotify
        .complete_link_paste(member, &landed)
        .await
        .expect("consent completes");
    r.spotify
        .confirm_link(member)
        .await
        .expect("link is confirmed");
}

pub(crate) fn no_progress() -> impl Fn(SyncProgress) + Send + Sync {
    |_| {}
}

/// Bytes of the database and its WAL.
fn db_bytes(r: &Rig) -> Vec<u8> {
    let mut out = Vec::new();
    for name in ["sublist.db", "sublist.db-wal"] {
        if let Ok(b) = std::fs::read(r.dir.path().join(name)) {
            out.extend(b);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

pub(crate) const ALICE: MemberId = MemberId(1001);
const BOB: MemberId = MemberId(1002);

#[tokio::test]
async fn link_by_paste_stores_sealed_tokens_and_the_account_id() {
    let r = rig().await;
    r.local.add_user("alice", "acct-alice", "Alice");
    r.local.set_browser_user("alice");
    let start = r.spotify.start_link(ALICE).await.unwrap();
    assert!(
        start.paste_needed,
        "a loopback redirect needs the paste flow"
    );
    let url = url::Url::parse(&start.url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "app1");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["response_type"], "code");
    assert!(q["state"].len() >= 43, "state is unguessable");
    assert!(q["scope"].contains("playlist-modify-private"));

    let landed = authorize(&start.url).await;
    assert!(landed.starts_with(REDIRECT));
    let account = r.spotify.complete_link_paste(ALICE, &landed).await.unwrap();
    assert_eq!(account.account_id, "acct-alice");
    assert_eq!(account.user_id, "alice");
    r.spotify.confirm_link(ALICE).await.unwrap();
    let info = r.spotify.link_info(ALICE).await.unwrap().unwrap();
    assert!(info.active && !info.expires_soon);
    let week = chrono::Duration::days(7);
    assert!(
        r.spotify
            .links_expiring_within(week)
            .await
            .unwrap()
            .is_empty()
    );
    let soon = r
        .spotify
        .links_expiring_within(chrono::Duration::days(190))
        .await
        .unwrap();
    assert_eq!(soon, vec![(ALICE, info.refresh_expires_at)]);
    let months = (info.refresh_expires_at - chrono::Utc::now()).num_days();
    assert!(
        (180..=185).contains(&months),
        "refresh token dies in six months: {months} days"
    );

    // Tokens are in the database only sealed.
    let tokens = r.local.tokens_of("alice");
    assert_eq!(tokens.len(), 2);
    let bytes = db_bytes(&r);
    assert!(
        contains(&bytes, "acct-alice"),
        "the scan reads the database"
    );
    for t in &tokens {
        assert!(!contains(&bytes, t), "token stored in the clear");
    }

    // The same address again: the state was used up.
    let err = r
        .spotify
        .complete_link_paste(ALICE, &landed)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::StateUnknown), "{err}");
    // Linking again while linked has a clear answer.
    let err = r.spotify.start_link(ALICE).await.unwrap_err();
    assert!(err.to_string().contains("already linked"), "{err}");
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn foreign_expired_and_declined_states_are_refused() {
    let r = rig().await;
    r.local.add_user("alice", "acct-alice", "Alice");
    r.local.set_browser_user("alice");
    let start = r.spotify.start_link(ALICE).await.unwrap();
    let landed = authorize(&start.url).await;
    // Bob pastes Alice's address: refused, and Alice can still use it.
    let err = r
        .spotify
        .complete_link_paste(BOB, &landed)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::StateForeign), "{err}");
    r.spotify.complete_link_paste(ALICE, &landed).await.unwrap();
    r.spotify.confirm_link(ALICE).await.unwrap();

    // Expired.
    r.spotify.set_state_ttl(Duration::from_secs(1));
    r.local.add_user("bob", "acct-bob", "Bob");
    r.local.set_browser_user("bob");
    let start = r.spotify.start_link(BOB).await.unwrap();
    let landed = authorize(&start.url).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = r
        .spotify
        .complete_link_paste(BOB, &landed)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::StateExpired), "{err}");

    // Declined on Spotify's page.
    r.spotify.set_state_ttl(Duration::from_secs(600));
    let start = r.spotify.start_link(BOB).await.unwrap();
    r.local.deny_next_authorize();
    let landed = authorize(&start.url).await;
    let err = r
        .spotify
        .complete_link_paste(BOB, &landed)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::Denied), "{err}");
    // Garbage pasted.
    let err = r
        .spotify
        .complete_link_paste(BOB, "hello there")
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::PasteUnreadable));
    assert!(r.spotify.link_info(BOB).await.unwrap().is_none());
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn link_by_redirect_to_the_web_callback() {
    // The bot's web server, on a loopback port, is the redirect target.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/spotify/callback", listener.local_addr().unwrap());
    let r = rig_with(vec![app("app1", 5, &redirect)], AudioProvider::None, 0).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let router = sublist::web::router(r.spotify.clone(), "/spotify/callback", Some(tx));
    let server = tokio::spawn(sublist::web::serve(listener, router));

    r.local.add_user("alice", "acct-alice", "Alice");
    r.local.set_browser_user("alice");
    let start = r.spotify.start_link(ALICE).await.unwrap();
    // A browser follows Spotify's redirect to the bot.
    let page = reqwest::get(&start.url).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let text = page.text().await.unwrap();
    assert!(
        text.contains("“Alice”") && text.contains("confirm it there"),
        "{text}"
    );
    let (member, account) = rx.recv().await.unwrap();
    assert_eq!((member, account.account_id.as_str()), (ALICE, "acct-alice"));
    // Bound only once the member who ran /link confirms it.
    assert!(r.spotify.link_info(ALICE).await.unwrap().is_none());
    r.spotify.confirm_link(ALICE).await.unwrap();
    assert!(r.spotify.link_info(ALICE).await.unwrap().unwrap().active);
    // Reloading the page: the state is used up.
    let again = reqwest::get(format!("{redirect}?code=x&state=nope"))
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 400);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("already used or is unknown")
    );
    let health = reqwest::get(redirect.replace("/spotify/callback", "/health"))
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    server.abort();
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn one_account_per_member_and_apps_fill_up() {
    let r = rig_with(
        vec![app("app1", 1, REDIRECT), app("app2", 1, REDIRECT)],
        AudioProvider::None,
        0,
    )
    .await;
    link(&r, ALICE, "alice").await;
    // Bob tries to link Alice's Spotify account.
    r.local.set_browser_user("alice");
    let start = r.spotify.start_link(BOB).await.unwrap();
    let landed = authorize(&start.url).await;
    let err = r
        .spotify
        .complete_link_paste(BOB, &landed)
        .await
        .unwrap_err();
    assert!(matches!(err, LinkError::AccountLinkedElsewhere), "{err}");
    // Bob links his own on the second app.
    link(&r, BOB, "bob").await;
    assert_eq!(
        r.spotify
            .link_info(BOB)
            .await
            .unwrap()
            .unwrap()
            .account
            .app_client_id,
        "app2"
    );
    // Both apps full.
    let err = r.spotify.start_link(MemberId(1003)).await.unwrap_err();
    assert!(matches!(err, LinkError::AllAppsFull { apps: 2 }), "{err}");
    assert!(err.to_string().contains("full"));
    assert!(err.operator_hint().unwrap().contains("[[spotify.apps]]"));
    // Unlinking frees the slot.
    assert!(r.spotify.unlink(BOB).await.unwrap());
    assert!(r.spotify.link_info(BOB).await.unwrap().is_none());
    assert!(r.spotify.start_link(MemberId(1003)).await.is_ok());
    // Forgetting a member removes their link and everything synced.
    r.local.seed_liked("alice", 10);
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert!(r.store.delete_member(ALICE).await.unwrap());
    assert!(r.spotify.link_info(ALICE).await.unwrap().is_none());
    assert!(r.store.liked_ids(ALICE).await.unwrap().is_empty());
    assert!(matches!(
        r.spotify.sync_motherlist(ALICE, &no_progress()).await,
        Err(SpotifyError::NotLinked)
    ));
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_member_not_on_the_allowlist_is_told_so() {
    let r = rig().await;
    r.local.add_app("app1", "secret-app1", true);
    r.local.add_user("carol", "acct-carol", "Carol");
    r.local.set_browser_user("carol");
    let start = r.spotify.start_link(ALICE).await.unwrap();
    let landed = authorize(&start.url).await;
    let err = r
        .spotify
        .complete_link_paste(ALICE, &landed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, LinkError::Spotify(SpotifyError::NotAllowlisted)),
        "{err}"
    );
    assert!(err.to_string().contains("allowlist"), "{err}");
    assert!(r.spotify.link_info(ALICE).await.unwrap().is_none());
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn refresh_keeps_or_rotates_the_refresh_token_and_invalid_grant_ends_the_link() {
    for rotate in [false, true] {
        let r = rig().await;
        r.local.set_rotate_refresh(rotate);
        // Access tokens that are always about to expire: every session refreshes.
        r.local.set_access_ttl(1);
        link(&r, ALICE, "alice").await;
        r.local.seed_liked("alice", 10);
        for _ in 0..3 {
            r.spotify
                .sync_motherlist(ALICE, &no_progress())
                .await
                .unwrap();
        }
        // One code exchange and three refreshes, each accepted.
        assert_eq!(r.local.count("POST", "/api/token"), 4, "rotate={rotate}");
        let refused = r
            .local
            .requests()
            .iter()
            .filter(|l| l.path == "/api/token" && l.status != 200)
            .count();
        assert_eq!(refused, 0, "rotate={rotate}");

        // Spotify refuses the refresh token (access removed): the link ends cleanly.
        r.local.revoke_refresh_tokens("alice");
        let err = r
            .spotify
            .sync_motherlist(ALICE, &no_progress())
            .await
            .unwrap_err();
        assert!(matches!(err, SpotifyError::LinkRevoked), "{err}");
        assert!(err.to_string().contains("/link"));
        let info = r.spotify.link_info(ALICE).await.unwrap().unwrap();
        assert!(!info.active);
        // What was synced is kept, and linking again works.
        assert_eq!(r.store.liked_ids(ALICE).await.unwrap().len(), 10);
        r.local.set_access_ttl(3600);
        let start = r.spotify.start_link(ALICE).await.unwrap();
        let landed = authorize(&start.url).await;
        r.spotify.complete_link_paste(ALICE, &landed).await.unwrap();
        r.spotify.confirm_link(ALICE).await.unwrap();
        assert!(r.spotify.link_info(ALICE).await.unwrap().unwrap().active);
        r.spotify
            .sync_motherlist(ALICE, &no_progress())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_revoked_authorisation_is_told_apart_from_the_six_month_expiry() {
    let r = rig().await;
    r.local.set_access_ttl(1);
    link(&r, ALICE, "alice").await;
    // Access removed on Spotify's side, months before the link's end.
    r.local.revoke_refresh_tokens("alice");
    let err = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, SpotifyError::LinkRevoked), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("removed on Spotify's side") && !text.contains("six months"),
        "{text}"
    );
    let info = r.spotify.link_info(ALICE).await.unwrap().unwrap();
    assert!(info.revoked && !info.active);
    // Later work gives the same true reason.
    let again = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(again, SpotifyError::LinkRevoked), "{again}");

    // A link at the end of its lifetime is refused as expired.
    r.spotify.set_link_lifetime(Duration::from_secs(3600));
    link(&r, BOB, "bob").await;
    r.local.revoke_refresh_tokens("bob");
    let err = r
        .spotify
        .sync_motherlist(BOB, &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, SpotifyError::LinkExpired), "{err}");
    assert!(err.to_string().contains("six months"), "{err}");
    let info = r.spotify.link_info(BOB).await.unwrap().unwrap();
    assert!(!info.revoked && !info.active);
}

#[tokio::test]
async fn a_link_waits_for_its_member_to_confirm_the_account() {
    let r = rig().await;
    r.local.add_user("alice", "acct-alice", "Alice");
    r.local.add_user("bob", "acct-bob", "Bob");
    let start = r.spotify.start_link(ALICE).await.unwrap();
    let url = url::Url::parse(&start.url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q.get("show_dialog").map(String::as_str),
        Some("true"),
        "Spotify shows whose account it is"
    );
    // Alice shared her consent link; Bob opened it, logged in as himself.
    r.local.set_browser_user("bob");
    let landed = authorize(&start.url).await;
    let account = r.spotify.complete_link_paste(ALICE, &landed).await.unwrap();
    assert_eq!(account.user_id, "bob");
    assert!(
        r.spotify.link_info(ALICE).await.unwrap().is_none(),
        "nothing is bound before Alice confirms"
    );
    // Alice sees it is Bob's and says no.
    assert!(r.spotify.cancel_link(ALICE).await.unwrap());
    let err = r.spotify.confirm_link(ALICE).await.unwrap_err();
    assert!(matches!(err, LinkError::NothingToConfirm), "{err}");
    assert!(r.spotify.link_info(ALICE).await.unwrap().is_none());
    // Her own account, confirmed, is bound.
    r.local.set_browser_user("alice");
    let start = r.spotify.start_link(ALICE).await.unwrap();
    let landed = authorize(&start.url).await;
    r.spotify.complete_link_paste(ALICE, &landed).await.unwrap();
    let account = r.spotify.confirm_link(ALICE).await.unwrap();
    assert_eq!(account.account_id, "acct-alice");
    assert!(r.spotify.link_info(ALICE).await.unwrap().unwrap().active);
    assert_bodies_valid(&r.local);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn links_started_together_never_exceed_an_apps_user_cap() {
    let r = rig_with(vec![app("app1", 2, REDIRECT)], AudioProvider::None, 0).await;
    let members: Vec<MemberId> = (1..=5).map(|i| MemberId(2000 + i)).collect();
    let starts = futures::future::join_all(members.iter().map(|m| r.spotify.start_link(*m))).await;
    let started: Vec<(MemberId, String)> = members
        .iter()
        .zip(starts)
        .filter_map(|(m, s)| match s {
            Ok(s) => Some((*m, s.url)),
            Err(e) => {
                assert!(matches!(e, LinkError::AllAppsFull { apps: 1 }), "{e}");
                None
            }
        })
        .collect();
    assert_eq!(started.len(), 2, "a slot is reserved when a link starts");
    // Both finish together; each is bound.
    let mut landed = Vec::new();
    for (m, url) in &started {
        let user = format!("user{}", m.0);
        r.local.add_user(&user, &format!("acct-{user}"), &user);
        r.local.set_browser_user(&user);
        landed.push((*m, authorize(url).await));
    }
    let spotify = &r.spotify;
    let done = futures::future::join_all(landed.iter().map(|(m, l)| async move {
        spotify.complete_link_paste(*m, l).await?;
        spotify.confirm_link(*m).await
    }))
    .await;
    for d in &done {
        assert!(d.is_ok(), "{d:?}");
    }
    let mut linked = 0;
    for m in &members {
        linked += usize::from(r.spotify.link_info(*m).await.unwrap().is_some());
    }
    assert_eq!(linked, 2);
    let err = r.spotify.start_link(MemberId(3000)).await.unwrap_err();
    assert!(matches!(err, LinkError::AllAppsFull { .. }), "{err}");
}

#[tokio::test]
async fn a_quota_pause_outlives_a_restart() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 10);
    r.local.inject(
        Some("GET"),
        "/me/tracks",
        Failure::Quota { retry_after: 7200 },
        1,
    );
    let err = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    let SpotifyError::Paused { until } = err else {
        panic!("expected a pause, got {err}")
    };
    // The pause is written on its own task; a restarted process reads it at start.
    let mut restarted = r.restarted();
    for _ in 0..250 {
        if restarted.paused_until(ALICE).await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        restarted = r.restarted();
    }
    assert_eq!(restarted.paused_until(ALICE).await.unwrap(), Some(until));
    r.local.clear_log();
    let err = restarted
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    assert!(
        matches!(err, SpotifyError::Paused { until: u } if u == until),
        "{err}"
    );
    assert_eq!(r.local.requests().len(), 0, "no request while paused");
}

#[tokio::test]
async fn a_401_mid_session_refreshes_once_and_carries_on() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 60);
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    r.local.expire_access_tokens();
    r.local.like("alice", &[track_id(900)]);
    r.local.clear_log();
    let rep = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(rep.new_tracks, vec![track_id(900)]);
    let seen: Vec<(String, u16)> = r
        .local
        .requests()
        .iter()
        .map(|l| (l.path.clone(), l.status))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/me/tracks".to_string(), 401),
            ("/api/token".to_string(), 200),
            ("/me/tracks".to_string(), 200)
        ]
    );
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn liked_songs_sync_costs_100_pages_then_1() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 5000);
    r.local.clear_log();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let progress = move |p: SyncProgress| s2.lock().unwrap().push(p);
    let t = Instant::now();
    let first = r.spotify.sync_motherlist(ALICE, &progress).await.unwrap();
    let first_time = t.elapsed();
    assert_eq!(r.local.count("GET", "/me/tracks"), 100);
    assert_eq!(first.requests, 100);
    assert_eq!(first.new_tracks.len(), 5000);
    assert!(first.initial_done);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 100);
    assert_eq!(
        seen.last().copied(),
        Some(SyncProgress {
            read: 5000,
            total: Some(5000)
        })
    );
    assert_eq!(r.store.liked_ids(ALICE).await.unwrap().len(), 5000);

    r.local.clear_log();
    let t = Instant::now();
    let again = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let again_time = t.elapsed();
    assert_eq!((again.requests, again.new_tracks.len()), (1, 0));

    let new: Vec<TrackId> = (10_000..10_020).map(track_id).collect();
    r.local.like("alice", &new);
    let t = Instant::now();
    let twenty = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let twenty_time = t.elapsed();
    assert_eq!(twenty.requests, 1);
    let mut got = twenty.new_tracks.clone();
    got.sort();
    let mut want = new.clone();
    want.sort();
    assert_eq!(got, want);
    let mut newest: Vec<TrackId> = r.store.liked_ids(ALICE).await.unwrap()[..20].to_vec();
    newest.sort();
    assert_eq!(newest, want, "newest first");
    eprintln!(
        "SYNC-MEASURE first 5000: {} requests in {:?}; unchanged: {} request in {:?}; 20 new: {} request in {:?}",
        first.requests, first_time, again.requests, again_time, twenty.requests, twenty_time
    );
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn an_interrupted_first_sync_resumes_where_it_stopped() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 5000);
    // Page 41 fails more often than the retry cap allows.
    r.local
        .inject_after(Some("GET"), "/me/tracks", 40, Failure::Status(503), 4);
    let err = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    assert!(matches!(err, SpotifyError::Unavailable(_)), "{err}");
    assert_eq!(r.store.liked_ids(ALICE).await.unwrap().len(), 2000);
    r.local.clear_log();
    let rest = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(rest.requests, 60, "continues at page 41");
    assert_eq!(rest.new_tracks.len(), 3000);
    assert_eq!(r.store.liked_ids(ALICE).await.unwrap().len(), 5000);
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn unliked_tracks_are_found_by_a_bounded_full_pass() {
    let r = rig_with(vec![app("app1", 5, REDIRECT)], AudioProvider::None, 2).await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 300);
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let gone = [track_id(5), track_id(150), track_id(299)];
    r.local.unlike("alice", &gone);
    // A pass is due on every sync from now on; each reads at most 2 pages.
    r.spotify.set_full_pass_every(Duration::ZERO);
    let mut removed = Vec::new();
    let mut syncs = 0;
    while removed.is_empty() && syncs < 10 {
        r.local.clear_log();
        let rep = r
            .spotify
            .sync_motherlist(ALICE, &no_progress())
            .await
            .unwrap();
        syncs += 1;
        // 1 incremental page + at most 2 pass pages (+ contains checks at the end).
        assert!(r.local.count("GET", "/me/tracks") <= 3);
        removed = rep.removed;
    }
    removed.sort();
    let mut want = gone.to_vec();
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(syncs, 3, "297 tracks = 6 pages, 2 per sync");
    let liked = r.store.liked_ids(ALICE).await.unwrap();
    assert_eq!(liked.len(), 297);
    assert!(gone.iter().all(|g| !liked.contains(g)));
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_playlist_motherlist_is_followed_by_its_snapshot() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.add_user("bob", "acct-bob", "Bob");
    let tracks: Vec<TrackId> = (0..120).map(track_id).collect();
    let mine = r.local.create_playlist("alice", "Mine", &tracks, false);
    let theirs = r.local.create_playlist("bob", "Theirs", &tracks, false);

    let err = r
        .spotify
        .set_motherlist(ALICE, Motherlist::Playlist(theirs))
        .await
        .unwrap_err();
    assert!(matches!(err, SpotifyError::PlaylistNotYours), "{err}");

    r.spotify
        .set_motherlist(ALICE, Motherlist::Playlist(mine.clone()))
        .await
        .unwrap();
    let first = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(first.new_tracks.len(), 120);
    assert_eq!(first.requests, 1 + 3, "details + 3 pages of 50");
    let same = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(same.requests, 1, "unchanged snapshot: no paging");
    r.local.hand_remove(&mine, &[track_id(3)]);
    r.local.hand_add(&mine, &[track_id(500)]);
    let changed = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(changed.new_tracks, vec![track_id(500)]);
    assert_eq!(changed.removed, vec![track_id(3)]);
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn a_429_is_waited_out_not_hammered() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 100);
    r.local.clear_log();
    r.local.inject(
        Some("GET"),
        "/me/tracks",
        Failure::RateLimited { retry_after: 2 },
        1,
    );
    let t = Instant::now();
    let rep = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(rep.new_tracks.len(), 100);
    // 2 pages + exactly one retry of the limited one.
    assert_eq!(r.local.count("GET", "/me/tracks"), 3);
    assert!(
        waited >= Duration::from_secs(2),
        "Retry-After honoured: {waited:?}"
    );
    let statuses: Vec<u16> = r.local.requests().iter().map(|l| l.status).collect();
    assert_eq!(statuses, vec![429, 200, 200]);
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn server_errors_and_slow_answers_are_retried_with_a_cap() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 100);
    r.local.clear_log();
    r.local
        .inject(Some("GET"), "/me/tracks", Failure::Status(502), 2);
    r.local.inject(
        Some("GET"),
        "/me/tracks",
        Failure::Slow(Duration::from_millis(1500)),
        1,
    );
    let rep = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(rep.new_tracks.len(), 100);
    assert_eq!(
        rep.requests,
        2 + 2 + 1,
        "2 pages, 2 server errors, 1 timeout"
    );
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn quota_exceeded_pauses_the_app_until_the_time_spotify_gives() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 100);
    r.local.inject(
        Some("GET"),
        "/me/tracks",
        Failure::Quota { retry_after: 7200 },
        1,
    );
    let before = chrono::Utc::now();
    let err = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    let SpotifyError::Paused { until } = err else {
        panic!("expected a pause, got {err}")
    };
    let secs = (until - before).num_seconds();
    assert!((7199..=7201).contains(&secs), "{secs}");
    assert_eq!(r.spotify.paused_until(ALICE).await.unwrap(), Some(until));
    assert_eq!(r.spotify.paused_apps(), vec![("app1".to_string(), until)]);
    // While paused, no request reaches Spotify.
    r.local.clear_log();
    let err = r
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("paused until"), "{err}");
    assert_eq!(r.local.count("GET", "/me/tracks"), 0);
}

#[tokio::test]
async fn the_quota_body_validates() {
    let r = rig().await;
    link(&r, ALICE, "alice").await;
    r.local.inject(
        Some("GET"),
        "/me/tracks",
        Failure::Quota { retry_after: 60 },
        1,
    );
    assert!(
        r.spotify
            .sync_motherlist(ALICE, &no_progress())
            .await
            .is_err()
    );
    let quota = r
        .local
        .requests()
        .into_iter()
        .filter(|l| l.status == 429)
        .count();
    assert_eq!(quota, 1);
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn audio_descriptors_come_in_batches_of_40_and_are_cached() {
    let r = rig_with(vec![app("app1", 5, REDIRECT)], AudioProvider::Reccobeats, 0).await;
    link(&r, ALICE, "alice").await;
    r.local.seed_liked("alice", 100);
    r.local.set_audio_unknown(&[track_id(7), track_id(8)]);
    r.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    let rep = r.spotify.fill_audio(1000).await.unwrap();
    assert_eq!((rep.asked, rep.found, rep.requests), (100, 98, 3));
    let t = r.store.track(&track_id(1)).await.unwrap().unwrap();
    assert!(t.audio.is_some());
    assert!(
        r.store
            .track(&track_id(7))
            .await
            .unwrap()
            .unwrap()
            .audio
            .is_none()
    );
    assert_eq!(
        t.total_tracks.map(|n| n >= 1),
        Some(true),
        "album total_tracks is read"
    );
    assert!(t.isrc.is_some());
    // Cached forever, known or not.
    let again = r.spotify.fill_audio(1000).await.unwrap();
    assert_eq!((again.asked, again.requests), (0, 0));

    // Without a provider nothing is asked.
    let off = rig().await;
    link(&off, ALICE, "alice").await;
    off.local.seed_liked("alice", 10);
    off.spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!(off.spotify.fill_audio(1000).await.unwrap().requests, 0);
    assert_eq!(off.local.count("GET", "/audio-features"), 0);
    assert_bodies_valid(&r.local);
}

#[tokio::test]
async fn the_demo_links_syncs_and_keeps_playlists_through_production_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_at(&dir.path().join("demo.db"), &[9u8; 32])
        .await
        .unwrap();
    let catalogue: Vec<sublist::domain::Track> = (0..120)
        .map(|i| {
            let mut t = sublist::domain::Track::bare(
                sublist::spotify::local::track_id(i),
                format!("Song {i}"),
            );
            t.artists = vec![(
                Some(format!("artist{}", i % 7)),
                format!("Artist {}", i % 7),
            )];
            t.album_type = Some("single".into());
            t
        })
        .collect();
    let demo = sublist::spotify::demo::start(store.clone(), ALICE, &catalogue)
        .await
        .unwrap();
    let rep = demo
        .spotify
        .sync_motherlist(ALICE, &no_progress())
        .await
        .unwrap();
    assert_eq!((rep.new_tracks.len(), rep.requests), (120, 3));
    let layer = store
        .create_layer(
            ALICE,
            "Demo",
            sublist::domain::LayerRules {
                mutual: true,
                complete: false,
            },
        )
        .await
        .unwrap();
    let s = store.add_sublist(layer.id, "First", "🎸").await.unwrap();
    let layer = store.layer(layer.id).await.unwrap().unwrap();
    let liked = store.liked_ids(ALICE).await.unwrap();
    let w = demo
        .spotify
        .write_sublists(ALICE, &layer, &[(s.id, liked[..10].to_vec())])
        .await
        .unwrap();
    assert_eq!(
        demo.local
            .playlist_tracks(&w.playlists[0].playlist_id)
            .unwrap(),
        liked[..10].to_vec()
    );
    assert_bodies_valid(&demo.local);
}
