//! A deterministic simulation of a server's month: five members on two Spotify apps use the
//! real bot for thirty simulated days, hour by hour, while the world fails around it; after
//! every hour the five invariants are checked.
//!
//! What runs is the real thing: the app, the job runner and device worker with burn training,
//! the store on a SQLite file, and a poise bot, against the local Spotify
//! (`spotify::local`) and the local Discord (`discord_fake`). Time is a manual
//! [`sublist::clock::Clock`] that the store, the app, the limiter and the local Spotify all
//! read; the simulation moves it. Sleeps and time limits stay real (and small here).
//!
//! Each hour: the seeded schedule (`plan`) says what happens; members act through Discord
//! (slash commands, buttons, menus, reactions) and Spotify (likes, hand edits), and the world
//! injects faults (429, quota, 5xx, time-outs after a write was applied, revoked tokens,
//! closed DMs, a deleted channel) and restarts the process, also in the middle of a sync, of a
//! Spotify write and of a training. The scheduler's tick queues the due syncs, the harness
//! waits until the queue is quiet (no job running or ready), and checks, against the store,
//! the local Spotify's playlists and the fake Discord's messages:
//!
//! - **I1 answers stand**: every answer a member gave (by prompt, hand edit or import) is the
//!   stored label until they change it; no ground-truth label appears that they never gave
//!   (the bot's own writes, a removed sublist); a track taken out of a playlist by hand stays
//!   out; removing a sublist drops exactly the labels that named only it.
//! - **I2 playlists true**: after a quiet refresh (the last sort of the layer succeeded and
//!   started after the member's last change), each managed playlist holds exactly the layer's
//!   placements (labels naming its sublist, for liked or adopted tracks), once each, and is in
//!   the member's library; no playlist is made empty (one emptied by the member's answers is
//!   fine); no playlist the bot made is left unrecorded.
//! - **I3 jobs exact**: at quiet, no job is running; a job that ended never changes again; no
//!   job attempt failed for "database is locked"; no data job failed because a message could
//!   not be posted; the queue goes quiet.
//! - **I4 messages bounded and useful**: at most one digest per member and day (one sent
//!   when no track waited unasked before or after its hour is reported as an observation:
//!   an hour's end cannot prove it stale); open prompts the bot asked (not `/label` ones, not
//!   ones the member reopened by taking an answer back) within the member's budget; no prompt
//!   left pending; no open prompt for a track that left, was answered or was sorted once a
//!   whole successful refresh ran after it was settled (a `/label` question about a guess
//!   excepted); over three days with at least three prompts per waiting layer, every layer
//!   that waited throughout was asked about; no public message carries internal error text.
//! - **I5 forgotten means gone**: after `/forget-me`, no row of the member's is left and no
//!   message for them (in their DMs, or mentioning them) remains on Discord.
//!
//! Hand edits count from the refresh that reads them; an answer given before that refresh
//! leaves either standing. A reaction the bot never acknowledges leaves the answer unknown
//! until the member answers again (reported as an observation).
//!
//! The schedule and the fakes' behaviour are a function of the seed; the system's own
//! concurrency is real, so the harness waits for quiescence rather than sleeping. A run
//! prints its violations, its observations and a per-day table of messages per member, and a
//! failing seed prints the one command that replays it:
//!
//! ```sh
//! SUBLIST_SIM_SEED=3 cargo test --release --test it sim::replay -- --ignored --nocapture
//! SUBLIST_SIM_SEEDS=100 SUBLIST_SIM_DAYS=365 cargo test --release --test it sim::long -- --ignored --nocapture
//! ```

mod act;
mod check;
mod model;
mod plan;
mod rig;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use act::Sim;
use check::{INVARIANTS, KINDS};
use model::MEMBERS;
use plan::Restart;
use rig::{Stop, start_time};

/// A simulated month.
const DAYS: u32 = 30;

/// What one seed's run found.
struct Outcome {
    seed: u64,
    days: u32,
    found: Vec<(&'static str, usize)>,
    report: String,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.found.is_empty()
    }
}

/// The command that replays a seed.
fn replay_command(seed: u64, days: u32) -> String {
    format!(
        "SUBLIST_SIM_SEED={seed} SUBLIST_SIM_DAYS={days} cargo test --release --test it sim::replay -- --ignored --nocapture"
    )
}

fn when(hour: u32) -> String {
    format!("day {} {:02}:00", hour / 24, hour % 24)
}

impl Sim {
    /// Waits until the hour's work is done: interactions sent without waiting are answered,
    /// the due syncs are queued, and no job runs or is ready (jobs waiting to retry before
    /// `end` are let run by moving the clock to them). A staged restart happens on the way.
    async fn settle(&mut self, end: chrono::DateTime<chrono::Utc>) {
        for id in std::mem::take(&mut self.inflight) {
            if self
                .rig
                .completion(id, Duration::from_secs(20))
                .await
                .is_none()
            {
                let prefix = format!("/interactions/{id}/");
                let answered = self.rig.discord.count(|r| r.path.starts_with(&prefix)) > 0;
                if !answered {
                    self.note("an interaction sent during /forget-me was never answered");
                }
            }
        }
        let trigger = self.trigger.take();
        let fired = self.rig.spotify.failures_fired();
        match trigger {
            Some((Restart::MidWrite, _)) => {
                self.rig.spotify.clear_failures();
                self.rig.spotify.inject(
                    Some("POST"),
                    "/items",
                    sublist::spotify::local::Failure::AppliedThenSlow(Duration::from_secs(3)),
                    1,
                );
            }
            Some((Restart::MidTraining, salt)) => {
                let active: Vec<usize> = (0..MEMBERS)
                    .filter(|m| self.members[*m].active() && self.members[*m].linked)
                    .collect();
                if !active.is_empty() {
                    let m = active[(salt as usize) % active.len()];
                    let mut rng = StdRng::seed_from_u64(salt);
                    self.train(m, &mut rng).await;
                }
            }
            _ => {}
        }
        self.rig.tick().await;
        let mut armed = trigger;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some((kind, salt)) = armed {
                let hit = match kind {
                    Restart::MidSync => self.rig.running("sync_member").await,
                    Restart::MidTraining => self.rig.running("train").await,
                    Restart::MidWrite => self.rig.spotify.failures_fired() > fired,
                    Restart::Clean | Restart::Crash => false,
                };
                if hit {
                    if kind != Restart::MidWrite {
                        tokio::time::sleep(Duration::from_millis(salt % 25)).await;
                    }
                    self.rig.restart(Stop::Crash).await;
                    self.log.push(format!("(restarted during {kind:?})"));
                    let at = rig::sim_time(self.rig.clock.now());
                    self.checks
                        .trail(format!("at {at}: restarted during {kind:?}"));
                    armed = None;
                    continue;
                }
            }
            if self.rig.busy().await == 0 {
                match self.rig.next_ready().await {
                    Some(t) if t <= end => {
                        self.rig.advance_to(t);
                        continue;
                    }
                    _ => break,
                }
            }
            if Instant::now() > deadline {
                let hour = self.hour;
                self.checks.violate(
                    "I3",
                    hour,
                    format!("noisy:{hour}"),
                    format!("the queue did not go quiet within 90 s at {}", when(hour)),
                );
                break;
            }
            let pause = if armed.is_some() { 1 } else { 10 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        if matches!(armed, Some((Restart::MidWrite, _))) {
            self.rig.spotify.clear_failures();
        }
        // Messages posted as the last jobs ended (failure notices) arrive.
        let mut last = self.rig.discord.count(|_| true);
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let n = self.rig.discord.count(|_| true);
            if n == last {
                break;
            }
            last = n;
        }
    }
}

/// Runs one seed for `days` simulated days.
async fn simulate(seed: u64, days: u32) -> Outcome {
    let began = Instant::now();
    let mut sim = Sim::new(seed).await;
    let mut plan_rng = StdRng::seed_from_u64(seed);
    let mut events = 0usize;
    let mut profile: std::collections::BTreeMap<String, Duration> = Default::default();
    for hour in 0..days * 24 {
        sim.hour = hour;
        sim.log.clear();
        sim.rig
            .advance_to(start_time() + chrono::Duration::hours(i64::from(hour)));
        if hour == 0 {
            sim.setup().await;
        }
        let planned = plan::hour(&mut plan_rng, hour, MEMBERS);
        events += planned.len();
        sim.due().await;
        let step =
            Duration::from_secs(50 * 60 / (planned.len() as u64 + 1)).min(Duration::from_secs(120));
        let t0 = Instant::now();
        for (i, ev) in planned.into_iter().enumerate() {
            sim.rig.clock.advance(step);
            let t = Instant::now();
            sim.act(ev, i as u64 + 1_000).await;
            *profile
                .entry(
                    format!("{ev:?}")
                        .split('(')
                        .next()
                        .unwrap_or("")
                        .to_string(),
                )
                .or_default() += t.elapsed();
        }
        let t1 = Instant::now();
        let end = start_time() + chrono::Duration::hours(i64::from(hour) + 1)
            - chrono::Duration::minutes(1);
        sim.settle(end).await;
        let t2 = Instant::now();
        let before = sim.checks.violations();
        sim.check().await;
        *profile.entry("~act".into()).or_default() += t1 - t0;
        *profile.entry("~settle".into()).or_default() += t2 - t1;
        *profile.entry("~check".into()).or_default() += t2.elapsed();
        if std::env::var_os("SUBLIST_SIM_TRACE").is_some() {
            let new = sim.checks.violations() - before;
            println!(
                "{}: {} [{new} new violations]",
                when(hour),
                sim.log.join(", ")
            );
        }
    }
    sim.final_checks().await;
    sim.rig.stop(Stop::Clean).await;

    let found: Vec<(&'static str, usize)> = sim
        .checks
        .found
        .iter()
        .map(|(k, v)| (*k, v.values().map(|f| f.count).sum()))
        .collect();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "simulation seed {seed}: {days} days, {events} scheduled events, {} restarts, {:.1} s",
        sim.rig.restarts,
        began.elapsed().as_secs_f64()
    );
    for (inv, name) in INVARIANTS {
        match sim.checks.found.get(inv) {
            None => {
                let _ = writeln!(report, "  {inv} {name}: held");
            }
            Some(kinds) => {
                let n: usize = kinds.values().map(|f| f.count).sum();
                let _ = writeln!(report, "  {inv} {name}: VIOLATED {n} time(s)");
                for (kind, f) in kinds {
                    let meaning = KINDS
                        .iter()
                        .find(|(k, _)| k == kind)
                        .map_or(kind.as_str(), |(_, m)| m);
                    let _ = writeln!(report, "    {} x {meaning}, e.g.", f.count);
                    for (hour, text) in &f.examples {
                        let _ = writeln!(report, "      {}: {text}", when(*hour));
                    }
                }
            }
        }
    }
    if !sim.checks.notes.is_empty() {
        let _ = writeln!(report, "  observations:");
        for (text, (count, hour)) in &sim.checks.notes {
            let _ = writeln!(report, "    {count} x (first {}) {text}", when(*hour));
        }
    }
    if !found.is_empty() {
        let _ = writeln!(report, "  replay: {}", replay_command(seed, days));
    }
    report.push_str(&sim.job_summary());
    report.push_str(&sim.table());
    if std::env::var_os("SUBLIST_SIM_PROFILE").is_some() {
        for (k, v) in &profile {
            let _ = writeln!(report, "  time in {k}: {:.1} s", v.as_secs_f64());
        }
    }
    Outcome {
        seed,
        days,
        found,
        report,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Fails, naming each seed that broke an invariant and the command that replays it.
fn assert_passed(outcomes: &[Outcome]) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.passed())
        .map(|o| {
            format!(
                "seed {} broke {}; replay it with:\n  {}",
                o.seed,
                o.found
                    .iter()
                    .map(|(i, n)| format!("{i} ({n}x)"))
                    .collect::<Vec<_>>()
                    .join(", "),
                replay_command(o.seed, o.days)
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "the simulation broke an invariant:\n{}",
        failed.join("\n")
    );
}

/// Five seeds, a simulated month each, run side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_five_members_keeps_every_invariant() {
    let outcomes = futures::future::join_all((1..=5).map(|seed| simulate(seed, DAYS))).await;
    for o in &outcomes {
        println!("{}", o.report);
    }
    assert_passed(&outcomes);
}

/// Replays one seed: `SUBLIST_SIM_SEED` (and `SUBLIST_SIM_DAYS`, 30 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "replays the seed in SUBLIST_SIM_SEED"]
async fn replay() {
    let seed = env_u64("SUBLIST_SIM_SEED").expect("set SUBLIST_SIM_SEED to the seed to replay");
    let days = env_u64("SUBLIST_SIM_DAYS").map_or(DAYS, |d| d as u32);
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let outcome = simulate(seed, days).await;
    println!("{}", outcome.report);
    assert_passed(&[outcome]);
}

/// The seeds of the long run: `SUBLIST_SIM_SEEDS` is a count (`100`: seeds 1,000 to 1,099) or
/// a range (`7..12` or `7-11`, both ends inclusive for `-`, the end excluded for `..`).
fn long_seeds() -> std::ops::Range<u64> {
    let spec = std::env::var("SUBLIST_SIM_SEEDS").unwrap_or_else(|_| "100".into());
    let spec = spec.trim();
    let parse = |s: &str| -> u64 {
        s.trim()
            .parse()
            .unwrap_or_else(|_| panic!("SUBLIST_SIM_SEEDS: “{spec}” is not a count or a range"))
    };
    if let Some((a, b)) = spec.split_once("..") {
        parse(a)..parse(b)
    } else if let Some((a, b)) = spec.split_once('-') {
        parse(a)..parse(b) + 1
    } else {
        1_000..1_000 + parse(spec)
    }
}

/// The long run, not in CI: the seeds of `SUBLIST_SIM_SEEDS` (a count from 1,000, or a range),
/// `SUBLIST_SIM_DAYS` days each (30 by default), one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the long run: SUBLIST_SIM_SEEDS seeds of SUBLIST_SIM_DAYS days"]
async fn long() {
    let days = env_u64("SUBLIST_SIM_DAYS").map_or(DAYS, |d| d as u32);
    let mut outcomes = Vec::new();
    for seed in long_seeds() {
        let outcome = simulate(seed, days).await;
        println!("{}", outcome.report);
        outcomes.push(outcome);
    }
    assert_passed(&outcomes);
}
