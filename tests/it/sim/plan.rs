//! The seeded schedule: what members and the world do in each simulated hour. It is drawn
//! from the seed alone, hour by hour, whatever the system does; an event that makes no sense
//! at its time (answering with no open prompt) is skipped when it is acted out.

use rand::Rng;
use rand::rngs::StdRng;

/// How a member answers a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Way {
    Reaction,
    Button,
    Menu,
}

/// How the process is stopped and started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Restart {
    /// SIGTERM between two steps.
    Clean,
    /// The process dies between two steps.
    Crash,
    /// It dies a moment after a sync starts.
    MidSync,
    /// It dies while Spotify holds the answer to a playlist write it already applied.
    MidWrite,
    /// It dies a moment after a training starts.
    MidTraining,
}

/// One thing that happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Event {
    // What a member does (the member's index).
    Like(usize),
    Unlike(usize),
    Answer(usize, Way),
    Skip(usize),
    Change(usize),
    TakeBack(usize),
    AddSublist(usize),
    EditSublist(usize),
    RemoveSublist(usize),
    AddLayer(usize),
    RemoveLayer(usize),
    Import(usize),
    HandAdd(usize),
    HandRemove(usize),
    DeletePlaylist(usize),
    Train(usize),
    Refresh(usize),
    Label(usize),
    Status(usize),
    PromptPlace(usize),
    Relink(usize),
    Forget(usize),
    // What the world does.
    RateLimit,
    ServerError,
    TimeoutAfterWrite,
    ErrorAfterWrite,
    Quota,
    Revoke(usize),
    CloseDms(usize),
    DeleteChannel,
    Restart(Restart),
}

impl Event {
    pub fn name(&self) -> String {
        format!("{self:?}")
    }
}

/// An event of one member, by the member's index.
type MemberEvent = fn(usize) -> Event;

/// Per member and waking hour.
const MEMBER_RATES: [(f64, MemberEvent); 21] = [
    (0.08, Event::Like),
    (0.02, Event::Unlike),
    (0.10, |m| Event::Answer(m, Way::Reaction)),
    (0.10, |m| Event::Answer(m, Way::Button)),
    (0.06, |m| Event::Answer(m, Way::Menu)),
    (0.03, Event::Skip),
    (0.03, Event::Change),
    (0.02, Event::TakeBack),
    (0.004, Event::AddSublist),
    (0.004, Event::EditSublist),
    (0.003, Event::RemoveSublist),
    (0.002, Event::AddLayer),
    (0.0015, Event::RemoveLayer),
    (0.003, Event::Import),
    (0.01, Event::HandAdd),
    (0.01, Event::HandRemove),
    (0.002, Event::DeletePlaylist),
    (0.012, Event::Train),
    (0.012, Event::Refresh),
    (0.02, Event::Label),
    (0.004, Event::Status),
];

/// Rarer member events, per member and waking hour.
const RARE_RATES: [(f64, MemberEvent); 5] = [
    (0.003, Event::PromptPlace),
    (0.001, Event::Relink),
    (0.0006, Event::Forget),
    (0.0008, Event::Revoke),
    (0.001, Event::CloseDms),
];

/// Per hour, day and night.
const WORLD_RATES: [(f64, Event); 10] = [
    (0.02, Event::RateLimit),
    (0.01, Event::ServerError),
    (0.005, Event::TimeoutAfterWrite),
    (0.005, Event::ErrorAfterWrite),
    (0.002, Event::Quota),
    (0.001, Event::DeleteChannel),
    (0.004, Event::Restart(Restart::Clean)),
    (0.004, Event::Restart(Restart::Crash)),
    (0.003, Event::Restart(Restart::MidSync)),
    (0.003, Event::Restart(Restart::MidWrite)),
];

const MID_TRAINING: f64 = 0.003;

/// The events of one hour, in the order they happen.
pub(super) fn hour(rng: &mut StdRng, hour: u32, members: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let awake = (8..24).contains(&(hour % 24));
    for m in 0..members {
        for (rate, ev) in MEMBER_RATES.iter().chain(RARE_RATES.iter()) {
            // Always draw, so that the schedule does not depend on the time of day's branch.
            let hit = rng.random_bool(*rate);
            if hit && awake {
                out.push(ev(m));
            }
        }
    }
    for (rate, ev) in WORLD_RATES {
        if rng.random_bool(rate) {
            out.push(ev);
        }
    }
    if rng.random_bool(MID_TRAINING) {
        out.push(Event::Restart(Restart::MidTraining));
    }
    // Interleave members and the world.
    for i in (1..out.len()).rev() {
        let j = rng.random_range(0..=i);
        out.swap(i, j);
    }
    out
}
