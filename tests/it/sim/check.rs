//! The invariants, checked after every simulated hour once the system is quiet, against the
//! store, the local Spotify's playlists and the fake Discord's messages; and the per-day
//! message counts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use sublist::domain::{Label, LabelSource, LayerId, MemberId, TrackId};

use super::act::{Sim, custom_ids, prompt_of};
use super::model::{MEMBERS, Presence, member_index, show};
use crate::discord_fake::{APP_ID, DM_OFFSET, token};

/// The five invariants, as the report names them.
pub(super) const INVARIANTS: [(&str, &str); 5] = [
    ("I1", "answers stand"),
    ("I2", "playlists true"),
    ("I3", "jobs exact"),
    ("I4", "messages bounded and useful"),
    ("I5", "forgotten means gone"),
];

/// Words that only internal error text holds.
const INTERNAL: [&str; 12] = [
    "database",
    "sqlx",
    "SQLITE",
    "error returned from",
    "Caused by",
    "panicked",
    "the job's task died",
    "process stopped while",
    "gave up after",
    "HTTP 5",
    "error sending request",
    "injected failure",
];

/// A layer with tracks waiting at the end of a day: (id, name, how many).
type Waiting = (i64, String, usize);

/// A violated invariant: how often, and the first few times.
#[derive(Clone, Debug, Default)]
pub(super) struct Finding {
    pub count: usize,
    pub examples: Vec<(u32, String)>,
}

/// Messages one member got in one day.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    /// Prompts posted without being asked for.
    pub prompts: u32,
    /// Prompts the member asked for with `/label`.
    pub requested: u32,
    pub digests: u32,
    /// Refresh announcements.
    pub refreshes: u32,
    /// Failure notices.
    pub failures: u32,
    /// Everything else (expiry warnings, quota pauses).
    pub other: u32,
}

impl Counts {
    pub fn total(&self) -> u32 {
        self.prompts + self.requested + self.digests + self.refreshes + self.failures + self.other
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Prompt,
    Digest,
    Refresh,
    Failure,
    Other,
}

/// What each kind of violation (the first word of its key) means, for the report.
pub(super) const KINDS: [(&str, &str); 24] = [
    (
        "answer",
        "an answer the member gave is not the stored label",
    ),
    ("never", "a ground-truth label the member never gave"),
    (
        "back",
        "a track taken out of a playlist by hand is back in it",
    ),
    ("noplaylist", "placements, but no playlist"),
    ("missing", "a sublist's playlist is gone from Spotify"),
    (
        "unfollowed",
        "a sublist's playlist is not in the member's library",
    ),
    ("dupes", "a track twice in a playlist"),
    ("empty", "a playlist that never held a track"),
    ("content", "a playlist differs from the layer's placements"),
    ("orphan", "a playlist the bot made that no sublist keeps"),
    ("running", "a job still running when the queue is quiet"),
    ("twice", "a job that ended changed again"),
    ("locked", "a job attempt failed for a locked database"),
    (
        "notify",
        "a data job failed because a message could not be posted",
    ),
    ("noisy", "the queue did not go quiet"),
    ("pending", "a prompt recorded but never posted"),
    (
        "stale",
        "an open prompt for a track that left, was answered or was sorted",
    ),
    ("budget", "open prompts over the member's budget"),
    ("internal", "internal error text in a public message"),
    ("digests", "more than one digest a day"),
    ("stale-digest", "a digest though no track waits unasked"),
    (
        "unasked",
        "a waiting layer not asked about in three days of prompts",
    ),
    ("rows", "rows of a forgotten member"),
    ("messages", "messages of a forgotten member left on Discord"),
];

#[derive(Default)]
pub(super) struct Checks {
    /// Violations by invariant and kind.
    pub found: BTreeMap<&'static str, BTreeMap<String, Finding>>,
    seen: HashSet<String>,
    /// Observations that are not invariants (the bot did not answer, extra findings).
    pub notes: BTreeMap<String, (u32, u32)>,
    /// Every job row read so far, as last read.
    jobs: BTreeMap<i64, JobRow>,
    /// The newest message already counted.
    last_message: u64,
    /// What each member's state looked like at their last check (skipped when unchanged).
    fingerprints: HashMap<usize, String>,
    pub per_day: BTreeMap<(u32, usize), Counts>,
    /// Prompts posted per member and day, by layer.
    prompted_layers: HashMap<(u32, usize), HashSet<i64>>,
    forgotten: HashMap<usize, (DateTime<Utc>, u64)>,
    /// The messages the store pointed at for a member when they were forgotten.
    known_at_forget: HashMap<usize, HashSet<u64>>,
    /// The layers with tracks waiting at the end of each day, per member: (id, name, count).
    waiting_layers: HashMap<(u32, usize), Vec<Waiting>>,
    pub quota_windows: u32,
    pub quota_answers: u32,
    /// When each prompt was first seen recorded but not posted.
    pending_since: HashMap<i64, u32>,
    /// Playlists seen holding tracks at some check.
    filled: HashSet<String>,
    /// The latest text of each followed `/train` reply.
    train_text: HashMap<u64, String>,
    /// When each open prompt was first seen settled (its track left, answered or sorted).
    settled_at: HashMap<i64, DateTime<Utc>>,
    /// Whether some track of each member waited unasked at the previous check.
    waited: HashMap<usize, bool>,
    /// Events acted out so far.
    pub step: u64,
    /// The latest events, with their step and simulated time (oldest first).
    recent: std::collections::VecDeque<String>,
}

/// How many of the latest events a violation's report shows.
const TRAIL: usize = 12;

impl Checks {
    pub fn violate(&mut self, inv: &'static str, hour: u32, key: String, text: String) {
        if !self.seen.insert(format!("{inv}:{key}")) {
            return;
        }
        let kind = key.split(':').next().unwrap_or_default().to_string();
        let f = self.found.entry(inv).or_default().entry(kind).or_default();
        f.count += 1;
        let keep = std::env::var("SUBLIST_SIM_EXAMPLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2);
        if f.examples.len() < keep {
            let trail: Vec<String> = self.recent.iter().map(|e| format!("        {e}")).collect();
            f.examples.push((
                hour,
                format!(
                    "{text}\n        after step {} (the latest events, oldest first):\n{}",
                    self.step,
                    trail.join("\n")
                ),
            ));
        }
    }

    /// Records an event for the trail of the next violations.
    pub fn trail(&mut self, event: String) {
        self.recent.push_back(event);
        if self.recent.len() > TRAIL {
            self.recent.pop_front();
        }
    }

    pub fn note(&mut self, hour: u32, text: String) {
        let e = self.notes.entry(text).or_insert((0, hour));
        e.0 += 1;
    }

    /// The messages the store pointed at for member `m` just before they were forgotten.
    pub fn known_messages(&mut self, m: usize, ids: Vec<i64>) {
        self.known_at_forget
            .insert(m, ids.into_iter().map(|i| i as u64).collect());
    }

    /// Member `m` was forgotten at `at`, when `last` was the newest message.
    pub fn forgotten(&mut self, m: usize, at: DateTime<Utc>, last: u64) {
        self.forgotten.insert(m, (at, last));
    }

    pub fn quota(&mut self, _app: &str, _from: DateTime<Utc>, _until: DateTime<Utc>) {
        self.quota_windows += 1;
    }

    pub fn violations(&self) -> usize {
        self.found
            .values()
            .flat_map(|k| k.values())
            .map(|f| f.count)
            .sum()
    }
}

/// A job row, as the checks read it.
#[derive(Clone, Debug, PartialEq)]
struct JobRow {
    id: i64,
    member: Option<u64>,
    kind: String,
    payload: Value,
    state: String,
    last_error: Option<String>,
    started_at: Option<DateTime<Utc>>,
    /// The layers whose playlists the job read (a sort reads them only when it must write,
    /// when the member asked, or when the hand-edit check is due).
    read: Vec<i64>,
}

/// A run of the sort of one member: a job, or an inline `/refresh`.
struct SortRun {
    started: DateTime<Utc>,
    /// None: every layer.
    layer: Option<i64>,
    /// Some(true) done, Some(false) failed, None queued or running.
    ok: Option<bool>,
    /// Whether it read the layer's playlists (and so the member's hand edits).
    read: Option<Vec<i64>>,
}

fn ended(state: &str) -> bool {
    matches!(state, "done" | "failed" | "cancelled")
}

fn parse_time(s: Option<String>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn classify(content: &str, components: &Value) -> Class {
    if custom_ids(components)
        .iter()
        .any(|c| c.starts_with("v1:p:"))
    {
        Class::Prompt
    } else if content.contains("more new track") {
        Class::Digest
    } else if content.starts_with("**Sublists refreshed for") {
        Class::Refresh
    } else if content.contains("I couldn't finish") {
        Class::Failure
    } else {
        Class::Other
    }
}

impl Sim {
    /// Reads the job rows that may have changed since the last read (new ones, and every
    /// one that had not ended) into the cache; returns the ids of the rows that changed. A
    /// job that had ended and changes again is a violation of I3.
    async fn jobs(&mut self) -> Vec<i64> {
        let cache = &self.checks.jobs;
        let from = cache
            .values()
            .filter(|j| !ended(&j.state))
            .map(|j| j.id)
            .min()
            .unwrap_or_else(|| cache.keys().next_back().map_or(0, |k| k + 1));
        let rows = sqlx::query(
            "SELECT id, member_id, kind, payload, state, last_error, started_at, result FROM jobs \
             WHERE id >= ?1 OR (id < ?1 AND state IN ('queued', 'running'))",
        )
        .bind(from)
        .fetch_all(&self.rig.reader)
        .await
        .unwrap_or_default();
        let mut changed = Vec::new();
        let mut twice = Vec::new();
        for r in &rows {
            let row = JobRow {
                id: r.get("id"),
                member: r.get::<Option<i64>, _>("member_id").map(|m| m as u64),
                kind: r.get("kind"),
                payload: serde_json::from_str(r.get::<&str, _>("payload")).unwrap_or(Value::Null),
                state: r.get("state"),
                last_error: r.get("last_error"),
                started_at: parse_time(r.get("started_at")),
                read: layers_read(r.get("result")),
            };
            match self.checks.jobs.get(&row.id) {
                Some(old) if *old == row => continue,
                Some(old) if ended(&old.state) && old.state != row.state => twice.push((
                    format!("twice:{}", row.id),
                    format!(
                        "job {} ({}) ended as {}, and later stood as {}",
                        row.id, row.kind, old.state, row.state
                    ),
                )),
                _ => {}
            }
            changed.push(row.id);
            self.checks.jobs.insert(row.id, row);
        }
        for (k, t) in twice {
            self.checks.violate("I3", self.hour, k, t);
        }
        changed
    }

    /// Every sort of member `m`: jobs that sync or sort, and inline refreshes.
    fn sort_runs(&self, m: usize) -> Vec<SortRun> {
        let id = self.members[m].id;
        let mut runs: Vec<SortRun> = self
            .checks
            .jobs
            .values()
            .filter(|j| j.member == Some(id))
            .filter_map(|j| {
                let layer = match j.kind.as_str() {
                    "sync_member" => None,
                    "sort_and_write" => j.payload["layer"].as_i64(),
                    _ => return None,
                };
                let ok = match j.state.as_str() {
                    "done" => Some(true),
                    "failed" => Some(false),
                    "cancelled" => return None,
                    _ => None,
                };
                let started = match (ok, j.started_at) {
                    (_, Some(t)) => t,
                    // Queued and never started: it blocks the quiet.
                    (None, None) => DateTime::<Utc>::MAX_UTC,
                    (Some(_), None) => return None,
                };
                Some(SortRun {
                    started,
                    layer,
                    ok,
                    read: Some(j.read.clone()),
                })
            })
            .collect();
        runs.extend(
            self.refreshes
                .iter()
                .filter(|r| r.member == m)
                .map(|r| SortRun {
                    started: r.started,
                    layer: None,
                    ok: Some(r.ok),
                    // `/refresh` always reads the playlists.
                    read: None,
                }),
        );
        runs
    }

    /// When the last successful sort of the layer started, if nothing failed or waits after
    /// it: the layer is quiet since then. With `reading`, only sorts that read the layer's
    /// playlists count (they are what sees the member's hand edits).
    fn quiet_since(runs: &[SortRun], layer: LayerId, reading: bool) -> Option<DateTime<Utc>> {
        let covering: Vec<&SortRun> = runs
            .iter()
            .filter(|r| r.layer.is_none_or(|l| l == layer.0))
            .collect();
        let last_ok = covering
            .iter()
            .filter(|r| r.ok == Some(true))
            .filter(|r| !reading || r.read.as_ref().is_none_or(|read| read.contains(&layer.0)))
            .map(|r| r.started)
            .max()?;
        let spoiled = covering
            .iter()
            .any(|r| r.ok != Some(true) && r.started >= last_ok);
        (!spoiled).then_some(last_ok)
    }

    /// I1-I5 and the message counts, after the hour's work went quiet.
    pub async fn check(&mut self) {
        self.note_filled();
        let changed = self.jobs().await;
        self.check_messages().await;
        self.check_jobs(&changed);
        for m in 0..MEMBERS {
            match self.members[m].presence {
                Presence::Active => {
                    if self.members[m].layers.is_empty() {
                        continue;
                    }
                    // Nothing of the member's moved since their last check: nothing to see.
                    let id = Some(self.members[m].id);
                    let theirs: Vec<String> = self
                        .checks
                        .jobs
                        .values()
                        .filter(|j| j.member == id)
                        .map(|j| format!("{}{}", j.id, j.state))
                        .collect();
                    let fingerprint = format!(
                        "{}|{}|{}|{}",
                        theirs.join(","),
                        self.members[m].last_change,
                        self.rig.restarts,
                        self.refreshes.len()
                    );
                    if self.checks.fingerprints.get(&m) == Some(&fingerprint) {
                        continue;
                    }
                    self.checks.fingerprints.insert(m, fingerprint);
                    self.check_member(m).await;
                }
                Presence::Forgotten { .. } => self.check_forgotten(m).await,
                Presence::Away { .. } => {}
            }
        }
        if self.hour % 24 == 23 {
            self.check_day().await;
        }
        for m in 0..MEMBERS {
            let waits = self.members[m].active() && !self.waiting(m).await.is_empty();
            self.checks.waited.insert(m, waits);
        }
        self.follow_train_replies();
        self.rig.discord.clear();
        self.count_quota_answers();
        self.rig.spotify.clear_log();
    }

    async fn check_member(&mut self, m: usize) {
        let hour = self.hour;
        let member_id = self.members[m].id;
        let runs = self.sort_runs(m);
        let liked: HashSet<TrackId> = self
            .rig
            .store()
            .liked_ids(MemberId(member_id))
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        let stored_layers = self
            .rig
            .store()
            .layers(MemberId(member_id))
            .await
            .unwrap_or_default();
        let layer_ids: Vec<LayerId> = self.members[m].layers.iter().map(|l| l.id).collect();
        for layer in layer_ids {
            let quiet = Self::quiet_since(&runs, layer, false);
            let read = Self::quiet_since(&runs, layer, true);
            let hand_edited = self.members[m].last_hand_edit;
            let stored: HashMap<TrackId, (Label, LabelSource)> = self
                .rig
                .store()
                .labels(layer)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|l| (l.track, (l.label, l.source)))
                .collect();
            let Some(l) = self.members[m].layer_mut(layer) else {
                continue;
            };
            // Hand edits a quiet refresh read stand from now on.
            if let Some(t) = read {
                l.settle(t);
            }
            let (name, kind) = (l.name.clone(), l.kind());
            // I1: every answer stands; no ground-truth label the member never gave.
            let mut bad = Vec::new();
            for (track, entry) in &l.answers {
                if !entry.admits(stored.get(track)) {
                    let want = entry
                        .now
                        .as_ref()
                        .map_or("no answer".to_string(), |e| e.describe());
                    let got = stored.get(track).map_or("no label".to_string(), |(l, s)| {
                        format!("{} ({})", show(l), s.as_str())
                    });
                    bad.push((
                        format!("answer:{m}:{}:{track}:{want}", layer.0),
                        format!(
                            "member {m}, layer “{name}” ({kind}), track {track}: the member's answer is {want}, the store holds {got} (history: {})",
                            entry.history.join("; ")
                        ),
                    ));
                }
            }
            for (track, (label, source)) in &stored {
                if source.is_ground_truth() && !l.answers.contains_key(track) {
                    bad.push((
                        format!("never:{m}:{}:{track}", layer.0),
                        format!(
                            "member {m}, layer “{name}” ({kind}), track {track}: the store holds {} ({}) though the member never answered",
                            show(label),
                            source.as_str()
                        ),
                    ));
                }
            }
            let taken_out: Vec<(TrackId, i64)> =
                l.taken_out.iter().map(|(t, s)| (t.clone(), s.0)).collect();
            for (key, text) in bad {
                self.checks.violate("I1", hour, key, text);
            }
            // I2: after a quiet refresh, the playlists hold exactly the placements.
            let Some(since) = quiet else { continue };
            if since <= self.members[m].last_change || read.is_none_or(|r| r <= hand_edited) {
                continue;
            }
            let Some(stored_layer) = stored_layers.iter().find(|x| x.id == layer) else {
                continue;
            };
            let library: HashSet<String> = self
                .rig
                .spotify
                .library_playlists(&self.members[m].user)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            for s in &stored_layer.sublists {
                let placed: BTreeSet<TrackId> = stored
                    .iter()
                    .filter(|(t, (label, source))| {
                        label.contains(s.id)
                            && (liked.contains(*t) || *source == LabelSource::Imported)
                    })
                    .map(|(t, _)| t.clone())
                    .collect();
                let at = format!("member {m}, layer “{name}” ({kind}), sublist “{}”", s.name);
                let Some(pid) = &s.playlist_id else {
                    if !placed.is_empty() {
                        self.checks.violate(
                            "I2",
                            hour,
                            format!("noplaylist:{}", s.id.0),
                            format!("{at}: {} placements but no playlist", placed.len()),
                        );
                    }
                    continue;
                };
                let Some(tracks) = self.rig.spotify.playlist_tracks(pid) else {
                    self.checks.violate(
                        "I2",
                        hour,
                        format!("missing:{pid}"),
                        format!("{at}: its playlist {pid} does not exist on Spotify"),
                    );
                    continue;
                };
                if !library.contains(pid) {
                    self.checks.violate(
                        "I2",
                        hour,
                        format!("unfollowed:{pid}"),
                        format!("{at}: its playlist {pid} is not in the member's library after a refresh"),
                    );
                }
                let on: BTreeSet<TrackId> = tracks.iter().cloned().collect();
                if on.len() != tracks.len() {
                    self.checks.violate(
                        "I2",
                        hour,
                        format!("dupes:{pid}:{}", tracks.len()),
                        format!(
                            "{at}: the playlist holds {} items for {} tracks (duplicates)",
                            tracks.len(),
                            on.len()
                        ),
                    );
                }
                if !tracks.is_empty() {
                    self.checks.filled.insert(pid.clone());
                } else if !self.checks.filled.contains(pid) {
                    // Emptied by the member's answers is fine; made empty is not.
                    self.checks.violate(
                        "I2",
                        hour,
                        format!("empty:{pid}"),
                        format!("{at}: the playlist {pid} is empty"),
                    );
                }
                if on != placed {
                    let extra: Vec<String> = on
                        .difference(&placed)
                        .take(3)
                        .map(|t| t.to_string())
                        .collect();
                    let missing: Vec<String> = placed
                        .difference(&on)
                        .take(3)
                        .map(|t| t.to_string())
                        .collect();
                    self.checks.violate(
                        "I2",
                        hour,
                        format!("content:{pid}:{}:{}", extra.join(","), missing.join(",")),
                        format!(
                            "{at}: the playlist holds {} tracks, the placements are {}; extra {extra:?}, missing {missing:?}",
                            on.len(),
                            placed.len()
                        ),
                    );
                }
                for (t, sid) in &taken_out {
                    if *sid == s.id.0 && on.contains(t) {
                        self.checks.violate(
                            "I1",
                            hour,
                            format!("back:{pid}:{t}"),
                            format!(
                                "{at}: track {t}, taken out of the playlist by hand, is back in it"
                            ),
                        );
                    }
                }
            }
        }
        self.check_orphans(m).await;
        self.check_prompts(m).await;
    }

    /// I2: no playlist the bot made is left behind unrecorded.
    async fn check_orphans(&mut self, m: usize) {
        let member = &self.members[m];
        let mut kept: HashSet<String> = HashSet::new();
        for l in self
            .rig
            .store()
            .layers(MemberId(member.id))
            .await
            .unwrap_or_default()
        {
            kept.extend(l.sublists.into_iter().filter_map(|s| s.playlist_id));
        }
        let mut bad = Vec::new();
        for (id, name) in self.rig.spotify.library_playlists(&member.user) {
            if kept.contains(&id) || member.released.contains(&id) {
                continue;
            }
            let Some((_, description, _)) = self.rig.spotify.playlist_details(&id) else {
                continue;
            };
            if description.starts_with("Kept by sublist") {
                bad.push((
                    format!("orphan:{id}"),
                    format!(
                        "member {m}: the playlist “{name}” ({id}) was made by the bot but no sublist keeps it"
                    ),
                ));
            }
        }
        for (k, t) in bad {
            self.checks.violate("I2", self.hour, k, t);
        }
    }

    /// I4: open prompts within the budget, and none for a track that left, was answered or
    /// was sorted.
    async fn check_prompts(&mut self, m: usize) {
        let member = &self.members[m];
        let id = member.id;
        let rows = sqlx::query(
            "SELECT id, layer_id, track_id, state, message_id FROM prompts \
             WHERE member_id = ? AND state IN ('pending', 'open')",
        )
        .bind(id as i64)
        .fetch_all(&self.rig.reader)
        .await
        .unwrap_or_default();
        let budget: i64 = sqlx::query_scalar("SELECT prompt_budget FROM members WHERE id = ?")
            .bind(id as i64)
            .fetch_optional(&self.rig.reader)
            .await
            .ok()
            .flatten()
            .unwrap_or(10);
        let liked: HashSet<TrackId> = self
            .rig
            .store()
            .liked_ids(MemberId(id))
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut unasked = 0;
        let mut bad = Vec::new();
        let runs = self.sort_runs(m);
        let now = self.now();
        for r in &rows {
            let pid: i64 = r.get("id");
            let layer = LayerId(r.get("layer_id"));
            let Ok(track) = TrackId::parse(r.get::<&str, _>("track_id")) else {
                continue;
            };
            let state: String = r.get("state");
            let requested = member.requested.contains(&pid);
            if !requested && !member.reopened.contains(&pid) {
                unasked += 1;
            }
            if state == "pending" {
                // A process that stopped while posting leaves one; it must not stay.
                let first = *self.checks.pending_since.entry(pid).or_insert(self.hour);
                if self.hour < first + 24 {
                    continue;
                }
                bad.push((
                    format!("pending:{pid}"),
                    format!("member {m}: prompt {pid} was recorded but not posted for a day, and counts against the budget"),
                ));
                continue;
            }
            let why = if !liked.contains(&track) {
                Some("left the motherlist")
            } else {
                match self.rig.store().label(layer, &track).await {
                    Ok(Some(l)) if l.source.is_ground_truth() => Some("was answered"),
                    // `/label` may ask about a guess on purpose, to correct it.
                    Ok(Some(_)) if !requested => Some("was sorted by the model"),
                    _ => None,
                }
            };
            // Prompts close at the refresh that settles them: one still open after a whole
            // successful refresh that started once it was settled stays open for good.
            let why = why.filter(|_| {
                let first = *self.checks.settled_at.entry(pid).or_insert(now);
                runs.iter()
                    .any(|r| r.layer.is_none() && r.ok == Some(true) && r.started > first)
            });
            if let Some(why) = why {
                bad.push((
                    format!("stale:{pid}:{why}"),
                    format!(
                        "member {m}: prompt {pid} (layer {}, track {track}) is still open though its track {why}; their latest jobs: {}",
                        layer.0,
                        self.latest_jobs(id)
                    ),
                ));
            }
        }
        if unasked > budget {
            bad.push((
                format!("budget:{m}:{}", self.hour / 24),
                format!("member {m}: {unasked} prompts are open, over the budget of {budget}"),
            ));
        }
        for (k, t) in bad {
            self.checks.violate("I4", self.hour, k, t);
        }
    }

    /// When the hour being checked began.
    fn hour_start(&self) -> DateTime<Utc> {
        super::rig::start_time() + chrono::Duration::hours(i64::from(self.hour))
    }

    /// The member's latest jobs, for a report.
    fn latest_jobs(&self, member: u64) -> String {
        let mut jobs: Vec<String> = self
            .checks
            .jobs
            .values()
            .rev()
            .filter(|j| j.member == Some(member))
            .take(4)
            .map(|j| {
                format!(
                    "{} {} {} from {}{}",
                    j.id,
                    j.kind,
                    j.state,
                    j.started_at.map_or("-".to_string(), super::rig::sim_time),
                    j.last_error
                        .as_ref()
                        .map_or(String::new(), |e| format!(" ({e})"))
                )
            })
            .collect();
        jobs.reverse();
        jobs.join("; ")
    }

    /// I3: jobs end once; none is left running, none ends twice, none fails for a locked
    /// database or because a message could not be posted.
    fn check_jobs(&mut self, changed: &[i64]) {
        let hour = self.hour;
        let mut bad = Vec::new();
        for j in changed.iter().filter_map(|id| self.checks.jobs.get(id)) {
            let what = format!(
                "job {} ({}, member {:?})",
                j.id,
                j.kind,
                j.member.and_then(member_index)
            );
            if j.state == "running" {
                bad.push((
                    format!("running:{}", j.id),
                    format!("{what} is still running when the queue is quiet"),
                ));
            }
            if let Some(e) = &j.last_error {
                let locked = e.contains("database is locked")
                    || e.contains("(code: 5)")
                    || e.contains("code: 517");
                if locked {
                    bad.push((
                        format!("locked:{}", j.id),
                        format!("{what} ({}) failed for a locked database: {e}", j.state),
                    ));
                }
                let discord = [
                    "Unknown Channel",
                    "Cannot send messages",
                    "Missing Permissions",
                    "injected failure",
                ]
                .iter()
                .any(|w| e.contains(w));
                if discord && matches!(j.kind.as_str(), "sync_member" | "sort_and_write") {
                    bad.push((
                        format!("notify:{}", j.id),
                        format!(
                            "{what} ({}) failed because a message could not be posted: {e}",
                            j.state
                        ),
                    ));
                }
            }
        }
        for (k, t) in bad {
            self.checks.violate("I3", hour, k, t);
        }
    }

    /// I4 on the messages posted this hour: counts, digests, and internal text in public.
    async fn check_messages(&mut self) {
        let day = self.hour / 24;
        let hour = self.hour;
        let fresh = self.rig.discord.messages_after(self.checks.last_message);
        for msg in fresh {
            self.checks.last_message = self.checks.last_message.max(msg.id);
            let class = classify(&msg.content, &msg.components);
            let in_dm = member_index(msg.channel.wrapping_sub(DM_OFFSET));
            let mentioned = (0..MEMBERS).find(|i| {
                msg.content
                    .contains(&format!("<@{}>", super::model::member_id(*i)))
            });
            let Some(m) = in_dm.or(mentioned) else {
                continue;
            };
            if in_dm.is_none() {
                let lower = msg.content.to_lowercase();
                if let Some(w) = INTERNAL.iter().find(|w| lower.contains(&w.to_lowercase())) {
                    self.checks.violate(
                        "I4",
                        hour,
                        format!("internal:{}", msg.id),
                        format!(
                            "a public message carries internal error text (“{w}”): {}",
                            msg.content
                        ),
                    );
                }
            }
            let c = self.checks.per_day.entry((day, m)).or_default();
            match class {
                Class::Prompt => {
                    let pid = custom_ids(&msg.components)
                        .first()
                        .and_then(|c| prompt_of(c));
                    let requested = pid.is_some_and(|p| self.members[m].requested.contains(&p));
                    if requested {
                        c.requested += 1;
                    } else {
                        c.prompts += 1;
                    }
                    if let Some(p) = pid {
                        let layer: Option<i64> =
                            sqlx::query_scalar("SELECT layer_id FROM prompts WHERE id = ?")
                                .bind(p)
                                .fetch_optional(&self.rig.reader)
                                .await
                                .ok()
                                .flatten();
                        if let Some(l) = layer {
                            self.checks
                                .prompted_layers
                                .entry((day, m))
                                .or_default()
                                .insert(l);
                        }
                    }
                }
                Class::Digest => {
                    c.digests += 1;
                    let digests = c.digests;
                    if digests > 1 {
                        self.checks.violate(
                            "I4",
                            hour,
                            format!("digests:{m}:{day}"),
                            format!("member {m} got {digests} digests on day {day}"),
                        );
                    }
                    // Which tracks are "new" is the bot's bookkeeping (those its last digest
                    // did not count); that some track waited unasked is checked here: now, at
                    // the previous check, or liked since (a later sort in the hour may have
                    // placed what the digest counted).
                    let waited = self.checks.waited.get(&m).copied().unwrap_or(true)
                        || self.members[m].last_like >= self.hour_start();
                    if !waited && self.waiting(m).await.is_empty() {
                        // Tracks also start to wait within the hour (an answer taken back, a
                        // sublist or layer added, a guess dropped) and a later sort may place
                        // them: seen only at the hour's end, this is not proof of a stale
                        // digest, so it is reported, not failed.
                        self.note(format!(
                            "member {m} got a digest though no track waited unasked before or after the hour: {}",
                            msg.content
                        ));
                    }
                }
                Class::Refresh => c.refreshes += 1,
                Class::Failure => c.failures += 1,
                Class::Other => c.other += 1,
            }
        }
    }

    /// I4 at the end of a day: every layer with tracks waiting was asked about.
    async fn check_day(&mut self) {
        let day = self.hour / 24;
        for m in 0..MEMBERS {
            let member = &self.members[m];
            if !member.active() {
                continue;
            }
            let posted = self.checks.per_day.get(&(day, m)).map_or(0, |c| c.prompts);
            let asked = self
                .checks
                .prompted_layers
                .get(&(day, m))
                .cloned()
                .unwrap_or_default();
            let liked = self
                .rig
                .store()
                .liked_ids(MemberId(member.id))
                .await
                .unwrap_or_default();
            let mut waiting = Vec::new();
            for l in &member.layers {
                if l.subs.is_empty() {
                    continue;
                }
                let labelled: HashSet<TrackId> = self
                    .rig
                    .store()
                    .labels(l.id)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .map(|x| x.track)
                    .collect();
                let prompted: HashSet<String> =
                    sqlx::query_scalar("SELECT track_id FROM prompts WHERE layer_id = ?")
                        .bind(l.id.0)
                        .fetch_all(&self.rig.reader)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .collect();
                let n = liked
                    .iter()
                    .filter(|t| !labelled.contains(*t) && !prompted.contains(t.as_str()))
                    .count();
                if n > 0 {
                    waiting.push((l.id.0, l.name.clone(), n));
                }
            }
            self.checks.waiting_layers.insert((day, m), waiting.clone());
            // Over three days: enough prompts for every waiting layer, yet one never asked.
            if day < 2 || waiting.is_empty() {
                continue;
            }
            let posted: u32 = posted
                + (day - 2..day)
                    .map(|d| self.checks.per_day.get(&(d, m)).map_or(0, |c| c.prompts))
                    .sum::<u32>();
            let mut asked = asked;
            for d in day - 2..day {
                asked.extend(
                    self.checks
                        .prompted_layers
                        .get(&(d, m))
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            if (posted as usize) < 3 * waiting.len() {
                continue;
            }
            let waited_throughout = |id: i64| {
                (day - 2..=day).all(|d| {
                    self.checks
                        .waiting_layers
                        .get(&(d, m))
                        .is_some_and(|w| w.iter().any(|(l, _, _)| *l == id))
                })
            };
            let unasked: Vec<String> = waiting
                .iter()
                .filter(|(id, _, _)| !asked.contains(id) && waited_throughout(*id))
                .map(|(_, name, n)| format!("“{name}” ({n} waiting)"))
                .collect();
            if !unasked.is_empty() {
                self.checks.violate(
                    "I4",
                    self.hour,
                    format!("unasked:{m}:{day}"),
                    format!(
                        "member {m} got {posted} prompts on days {}-{day}, none about {}",
                        day - 2,
                        unasked.join(", ")
                    ),
                );
            }
        }
    }

    /// The (layer, track) pairs of member `m` that wait for an answer and are not being asked:
    /// liked, with no label and no open prompt.
    async fn waiting(&self, m: usize) -> HashSet<(i64, TrackId)> {
        let member = &self.members[m];
        let liked = self
            .rig
            .store()
            .liked_ids(MemberId(member.id))
            .await
            .unwrap_or_default();
        let mut out = HashSet::new();
        for l in &member.layers {
            let labelled: HashSet<TrackId> = self
                .rig
                .store()
                .labels(l.id)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|x| x.track)
                .collect();
            let asked: HashSet<String> = sqlx::query_scalar(
                "SELECT track_id FROM prompts WHERE layer_id = ? AND state IN ('pending', 'open')",
            )
            .bind(l.id.0)
            .fetch_all(&self.rig.reader)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
            out.extend(
                liked
                    .iter()
                    .filter(|t| !labelled.contains(*t) && !asked.contains(t.as_str()))
                    .map(|t| (l.id.0, t.clone())),
            );
        }
        out
    }

    /// I5: a forgotten member has no row and no message left.
    async fn check_forgotten(&mut self, m: usize) {
        let id = self.members[m].id as i64;
        let since = self.checks.forgotten.get(&m).copied();
        let tables = [
            ("members", "id"),
            ("spotify_links", "member_id"),
            ("oauth_states", "member_id"),
            ("layers", "member_id"),
            ("prompts", "member_id"),
            ("jobs", "member_id"),
            ("liked", "member_id"),
            ("sync_state", "member_id"),
            ("sort_revisions", "member_id"),
            ("member_messages", "member_id"),
            ("prompt_digests", "member_id"),
            ("train_replies", "member_id"),
            ("pending_links", "member_id"),
        ];
        let mut bad = Vec::new();
        for (table, column) in tables {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?");
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_one(&self.rig.reader)
                .await
                .unwrap_or(0);
            if n > 0 {
                bad.push((
                    format!("rows:{m}:{since:?}:{table}"),
                    format!(
                        "member {m} asked to be forgotten, yet {table} holds {n} row(s) of theirs"
                    ),
                ));
            }
        }
        let mention = format!("<@{id}>");
        let left = self.rig.discord.messages_where(|msg| {
            !msg.deleted && (msg.channel == id as u64 + DM_OFFSET || msg.content.contains(&mention))
        });
        if !left.is_empty() {
            let last = since.map_or(0, |(_, l)| l);
            let mut kinds: BTreeMap<String, u32> = BTreeMap::new();
            for msg in &left {
                let class = classify(&msg.content, &msg.components);
                let place = if msg.channel == id as u64 + DM_OFFSET {
                    "DM"
                } else {
                    "channel"
                };
                let when = if msg.id > last {
                    "posted after"
                } else if self
                    .checks
                    .known_at_forget
                    .get(&m)
                    .is_some_and(|k| k.contains(&msg.id))
                {
                    "known to the store"
                } else {
                    "no longer known to the store (re-asked prompt, removed layer, or unrecorded)"
                };
                *kinds
                    .entry(format!("{class:?} in {place}, {when}"))
                    .or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            let samples: Vec<String> = left
                .iter()
                .take(3)
                .map(|msg| {
                    let text: String = msg.content.chars().take(90).collect();
                    format!(
                        "#{} “{text}” {:?}",
                        msg.id,
                        custom_ids(&msg.components).first()
                    )
                })
                .collect();
            bad.push((
                format!("messages:{m}:{since:?}"),
                format!(
                    "member {m} asked to be forgotten, yet {} message(s) for them remain on Discord: {}; e.g. {}",
                    left.len(),
                    kinds.join(", "),
                    samples.join(" | ")
                ),
            ));
        }
        for (k, t) in bad {
            self.checks.violate("I5", self.hour, k, t);
        }
    }

    /// Keeps the latest text of each followed `/train` reply (before the log is cleared).
    fn follow_train_replies(&mut self) {
        let requests = self.rig.discord.requests();
        for (_, id, _) in &self.train_replies {
            let path = format!("/webhooks/{APP_ID}/{}/messages/@original", token(*id));
            if let Some(r) = requests.iter().rev().find(|r| r.path == path)
                && let Some(text) = r.body["content"].as_str()
            {
                self.checks.train_text.insert(*id, text.to_string());
            }
        }
    }

    /// Playlists that held a track at some point: an add answered with success this hour, or
    /// tracks in it now.
    fn note_filled(&mut self) {
        for r in self.rig.spotify.requests() {
            if r.method == "POST"
                && r.status < 300
                && let Some(id) = r
                    .path
                    .strip_prefix("/playlists/")
                    .and_then(|p| p.strip_suffix("/items"))
            {
                self.checks.filled.insert(id.to_string());
            }
        }
        for m in &self.members {
            for (id, _) in self.rig.spotify.library_playlists(&m.user) {
                if self
                    .rig
                    .spotify
                    .playlist_tracks(&id)
                    .is_some_and(|t| !t.is_empty())
                {
                    self.checks.filled.insert(id);
                }
            }
        }
    }

    fn count_quota_answers(&mut self) {
        let n = self
            .rig
            .spotify
            .requests()
            .iter()
            .filter(|r| {
                r.status == 429
                    && r.body
                        .as_ref()
                        .is_some_and(|b| b.to_string().contains("QUOTA_EXCEEDED"))
            })
            .count();
        self.checks.quota_answers += n as u32;
    }

    /// At the end of the run: every job ended or waits for a known time; every followed
    /// `/train` reply showed its end.
    pub async fn final_checks(&mut self) {
        self.jobs().await;
        let now = self.now();
        let stuck: Vec<String> = self
            .checks
            .jobs
            .values()
            .filter(|j| j.state == "queued" || j.state == "running")
            .map(|j| format!("{} ({}, {})", j.id, j.kind, j.state))
            .collect();
        if !stuck.is_empty() {
            self.note(format!(
                "{} job(s) had not ended when the run stopped at {now}: {}",
                stuck.len(),
                stuck.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut unfinished = 0;
        let mut example = None;
        for (m, id, hour) in &self.train_replies {
            let text = self
                .checks
                .train_text
                .get(id)
                .cloned()
                .unwrap_or_else(|| "its first answer".into());
            let ended = ["is done", "failed", "was cancelled"]
                .iter()
                .any(|w| text.contains(w));
            if !ended && hour + 24 < self.hour {
                unfinished += 1;
                example.get_or_insert(format!("member {m}, hour {hour}: “{text}”"));
            }
        }
        if unfinished > 0 {
            self.note(format!(
                "{unfinished} /train replies never showed their job's end (e.g. {})",
                example.unwrap_or_default()
            ));
        }
        if self.checks.quota_answers > self.checks.quota_windows * APPS_PER_WINDOW {
            self.note(format!(
                "Spotify answered QUOTA_EXCEEDED {} times for {} quota windows: the pause was not held",
                self.checks.quota_answers, self.checks.quota_windows
            ));
        }
    }

    /// How many jobs of each kind ended in each state.
    pub fn job_summary(&self) -> String {
        let mut by: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        for j in self.checks.jobs.values() {
            *by.entry((j.kind.as_str(), j.state.as_str())).or_default() += 1;
        }
        let parts: Vec<String> = by
            .iter()
            .map(|((k, s), n)| format!("{k} {s} {n}"))
            .collect();
        format!("  jobs: {}\n", parts.join(", "))
    }

    /// The per-day message table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "messages per member per day (prompts posted+asked-for / digests / refresh announcements / failure notices / other):"
        );
        let _ = write!(out, "day ");
        for m in 0..MEMBERS {
            let _ = write!(out, "| member {m}          ");
        }
        let _ = writeln!(out, "| total");
        let days = self.hour / 24 + 1;
        let mut sum = Counts::default();
        for day in 0..days {
            let _ = write!(out, "{day:>3} ");
            let mut total = 0;
            for m in 0..MEMBERS {
                let c = self
                    .checks
                    .per_day
                    .get(&(day, m))
                    .copied()
                    .unwrap_or_default();
                total += c.total();
                sum.prompts += c.prompts;
                sum.requested += c.requested;
                sum.digests += c.digests;
                sum.refreshes += c.refreshes;
                sum.failures += c.failures;
                sum.other += c.other;
                let _ = write!(
                    out,
                    "| {:>2}+{:<2}/{:>2}/{:>2}/{:>2}/{:>2} ",
                    c.prompts, c.requested, c.digests, c.refreshes, c.failures, c.other
                );
            }
            let _ = writeln!(out, "| {total}");
        }
        let _ = writeln!(
            out,
            "all: {} prompts posted, {} asked for, {} digests, {} refresh announcements, {} failure notices, {} other",
            sum.prompts, sum.requested, sum.digests, sum.refreshes, sum.failures, sum.other
        );
        out
    }
}

/// Quota answers one window may cost before the pause holds (one per app and member).
const APPS_PER_WINDOW: u32 = 5;

/// The layers whose playlists a sort job read, from its stored outcome.
fn layers_read(result: Option<String>) -> Vec<i64> {
    let Some(v) = result.and_then(|r| serde_json::from_str::<Value>(&r).ok()) else {
        return Vec::new();
    };
    v["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter(|l| l["playlists_read"].as_bool() == Some(true))
                .filter_map(|l| l["layer"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}
