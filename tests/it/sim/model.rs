//! The simulation's own record of the server: what each member liked, which layers and
//! sublists they made, and every answer they gave (by prompt, hand edit or import), with its
//! changes and the removals that drop it. The checks hold the store to this record.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};

use sublist::domain::{Label, LabelSource, LayerId, SublistId, Track, TrackId};
use sublist::tools::demo::SAMPLE_CSV;
use sublist::tools::eval::load_playlists;

/// How many members the server has.
pub(super) const MEMBERS: usize = 5;

pub(super) fn member_id(i: usize) -> u64 {
    600_000_000_000_000_201 + i as u64
}

/// The index of the member with this Discord id.
pub(super) fn member_index(id: u64) -> Option<usize> {
    let i = id.checked_sub(member_id(0))? as usize;
    (i < MEMBERS).then_some(i)
}

/// The bundled sample: real tracks, each with the real playlist it came from.
pub(super) struct Sample {
    pub tracks: Vec<Track>,
    /// The index of the first playlist holding each track.
    pub playlist: Vec<usize>,
}

impl Sample {
    pub fn load() -> Sample {
        let data = load_playlists(SAMPLE_CSV.as_bytes()).expect("the bundled sample reads");
        let mut playlist = vec![0; data.tracks.len()];
        for (p, (_, members)) in data.playlists.iter().enumerate().rev() {
            for &i in members {
                playlist[i] = p;
            }
        }
        Sample {
            tracks: data.tracks.into_iter().map(|l| l.track).collect(),
            playlist,
        }
    }

    pub fn id(&self, i: usize) -> TrackId {
        self.tracks[i].id.clone()
    }
}

/// What the store must hold for one (layer, track), by the member's word.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expect {
    /// Exactly this label, from this source (the member's, or an import's).
    Is(Label, LabelSource),
    /// A label of the member's that holds this sublist (they added the track to its
    /// playlist by hand).
    Has(SublistId),
    /// No ground-truth label holding this sublist (they took the track out by hand).
    Lacks(SublistId),
    /// The bot never confirmed the answer: not checked until the member answers again.
    Unknown,
}

impl Expect {
    /// Whether the store's label (if any) satisfies the expectation.
    pub fn admits(&self, stored: Option<&(Label, LabelSource)>) -> bool {
        let truth = stored.filter(|(_, s)| s.is_ground_truth());
        match self {
            Expect::Is(l, src) => truth.is_some_and(|(sl, ss)| sl == l && ss == src),
            Expect::Has(s) => {
                truth.is_some_and(|(l, src)| *src == LabelSource::Member && l.contains(*s))
            }
            Expect::Lacks(s) => truth.is_none_or(|(l, _)| !l.contains(*s)),
            Expect::Unknown => true,
        }
    }

    /// The expectation after sublist `s` is removed; None when nothing of it is left (the
    /// label named only `s`, so it is dropped).
    pub fn without(&self, s: SublistId) -> Option<Expect> {
        match self {
            Expect::Is(Label::Sublists(set), src) if set.contains(&s) => {
                let rest: BTreeSet<SublistId> = set.iter().copied().filter(|x| *x != s).collect();
                (!rest.is_empty()).then_some(Expect::Is(Label::Sublists(rest), *src))
            }
            Expect::Has(x) if *x == s => Some(Expect::Unknown),
            // No label holds a removed sublist: nothing is left to check.
            Expect::Lacks(x) if *x == s => Some(Expect::Unknown),
            other => Some(other.clone()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Expect::Is(l, s) => format!("{} ({})", show(l), s.as_str()),
            Expect::Has(s) => format!("a member label holding sublist {}", s.0),
            Expect::Lacks(s) => format!("no ground-truth label holding sublist {}", s.0),
            Expect::Unknown => "anything".into(),
        }
    }
}

/// An expectation in words, "no answer" for none.
pub(super) fn describe(e: &Option<Expect>) -> String {
    e.as_ref().map_or("no answer".to_string(), Expect::describe)
}

pub(super) fn show(l: &Label) -> String {
    match l {
        Label::Void => "the void".into(),
        Label::Sublists(s) => format!(
            "{{{}}}",
            s.iter()
                .map(|x| x.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// One (layer, track) answer: what stands now, and a hand edit the bot reads at its next
/// refresh (either is accepted until a refresh that started after it succeeded).
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub now: Option<Expect>,
    pub pending: Option<(Option<Expect>, DateTime<Utc>)>,
    /// A hand edit the bot had not read when the member answered again: read later, it may
    /// land after the answer, so either stands until the member answers again.
    pub alt: Option<(Option<Expect>, DateTime<Utc>)>,
    /// What the member did about the track, latest last (for the report).
    pub history: Vec<String>,
}

impl Entry {
    fn log(&mut self, what: String) {
        self.history.push(what);
        if self.history.len() > 6 {
            self.history.remove(0);
        }
    }
}

impl Entry {
    pub fn admits(&self, stored: Option<&(Label, LabelSource)>) -> bool {
        let ok = |e: &Option<Expect>| match e {
            Some(e) => e.admits(stored),
            // No answer: no ground-truth label.
            None => stored.is_none_or(|(_, s)| !s.is_ground_truth()),
        };
        ok(&self.now)
            || self.pending.as_ref().is_some_and(|(p, _)| ok(p))
            || self.alt.as_ref().is_some_and(|(a, _)| ok(a))
    }
}

pub(super) struct SubM {
    pub id: SublistId,
    pub name: String,
    pub emoji: String,
}

pub(super) struct LayerM {
    pub id: LayerId,
    pub name: String,
    pub mutual: bool,
    pub complete: bool,
    /// Shapes the member's taste in this layer.
    pub salt: u64,
    pub subs: Vec<SubM>,
    pub answers: HashMap<TrackId, Entry>,
    /// Tracks the member took out of a sublist's playlist by hand ("not here"), until they
    /// answer for the track again.
    pub taken_out: HashSet<(TrackId, SublistId)>,
}

impl LayerM {
    pub fn new(id: LayerId, name: String, mutual: bool, complete: bool, salt: u64) -> LayerM {
        LayerM {
            id,
            name,
            mutual,
            complete,
            salt,
            subs: Vec::new(),
            answers: HashMap::new(),
            taken_out: HashSet::new(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match (self.mutual, self.complete) {
            (true, true) => "mutual/complete",
            (true, false) => "mutual/incomplete",
            (false, true) => "non-mutual/complete",
            (false, false) => "non-mutual/incomplete",
        }
    }

    fn entry(&mut self, track: &TrackId) -> &mut Entry {
        self.answers.entry(track.clone()).or_insert(Entry {
            now: None,
            pending: None,
            alt: None,
            history: Vec::new(),
        })
    }

    /// Records an answer that stands from now on; `why` says what the member did.
    pub fn set(&mut self, track: &TrackId, e: Option<Expect>, why: String) {
        self.taken_out.retain(|(t, _)| t != track);
        let entry = self.entry(track);
        entry.log(format!("{why} → {}", describe(&e)));
        if let Some(p) = entry.pending.take() {
            entry.alt = Some(p);
        }
        entry.now = e;
    }

    /// Records a hand edit: it stands once a refresh read it.
    pub fn set_pending(
        &mut self,
        track: &TrackId,
        e: Option<Expect>,
        at: DateTime<Utc>,
        why: String,
    ) {
        let entry = self.entry(track);
        entry.log(format!("{why} → {} once read", describe(&e)));
        entry.pending = Some((e, at));
    }

    /// Hand edits read by a refresh that started at `started` stand from now on.
    pub fn settle(&mut self, started: DateTime<Utc>) {
        for e in self.answers.values_mut() {
            if e.alt.as_ref().is_some_and(|(_, at)| *at < started) {
                // A hand edit read after a newer answer: which one stands is the bot's call.
                e.alt = None;
                e.now = Some(Expect::Unknown);
                e.log("an older hand edit read after a newer answer".into());
            }
            if let Some((p, at)) = &e.pending
                && *at < started
            {
                e.now = p.clone();
                e.pending = None;
                e.log(format!(
                    "read by the refresh of {}",
                    super::rig::sim_time(started)
                ));
            }
        }
    }

    /// A sublist is removed: labels naming only it go, the others lose it.
    pub fn remove_sublist(&mut self, s: SublistId, why: String) {
        self.subs.retain(|x| x.id != s);
        self.taken_out.retain(|(_, x)| *x != s);
        for e in self.answers.values_mut() {
            let before = e.now.clone();
            e.now = e.now.as_ref().and_then(|x| x.without(s));
            if let Some((p, _)) = &mut e.pending {
                *p = p.as_ref().and_then(|x| x.without(s));
            }
            if e.now != before {
                e.log(format!("{why} → {}", describe(&e.now)));
            }
        }
    }
}

/// Where a member stands with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presence {
    /// Linked and using the bot.
    Active,
    /// Asked to be forgotten; comes back (links again) at this hour.
    Forgotten { back: u32 },
    /// Could not link; tries again at this hour.
    Away { back: u32 },
}

pub(super) struct Member {
    pub id: u64,
    /// The Spotify user id on the local Spotify.
    pub user: String,
    pub presence: Presence,
    /// The sim believes the link works (it does not know of a revocation until told).
    pub linked: bool,
    /// Links again at this hour (after a revoked or unlinked account).
    pub relink_at: Option<u32>,
    /// Sample tracks not liked yet.
    pub pool: Vec<usize>,
    /// Sample tracks liked now, oldest first.
    pub liked: Vec<usize>,
    pub layers: Vec<LayerM>,
    /// Playlists the bot no longer keeps (their sublist or layer was removed); they stay on
    /// Spotify.
    pub released: HashSet<String>,
    /// Playlists the member made by hand (to import).
    pub own_playlists: Vec<String>,
    /// DMs closed until this hour.
    pub dms_closed_until: Option<u32>,
    pub prompts_in_dm: bool,
    /// Reactions the member added and has not taken back: (message, emoji).
    pub reactions: HashSet<(u64, String)>,
    /// When the member last changed something a refresh must reflect.
    pub last_change: DateTime<Utc>,
    /// When the member last edited a managed playlist on Spotify (the bot sees it at the next
    /// sort that reads the playlists).
    pub last_hand_edit: DateTime<Utc>,
    /// When the member last liked a track.
    pub last_like: DateTime<Utc>,
    /// Prompts the member asked for with `/label` (they may exceed the budget).
    pub requested: HashSet<i64>,
    /// Prompts the member opened again by taking back their answer (they may exceed the
    /// budget too: the budget bounds what the bot asks).
    pub reopened: HashSet<i64>,
}

impl Member {
    pub fn new(i: usize, pool: Vec<usize>) -> Member {
        Member {
            id: member_id(i),
            user: format!("user{i}"),
            presence: Presence::Active,
            linked: false,
            relink_at: None,
            pool,
            liked: Vec::new(),
            layers: Vec::new(),
            released: HashSet::new(),
            own_playlists: Vec::new(),
            dms_closed_until: None,
            prompts_in_dm: true,
            reactions: HashSet::new(),
            last_change: super::rig::start_time(),
            last_hand_edit: super::rig::start_time(),
            last_like: super::rig::start_time(),
            requested: HashSet::new(),
            reopened: HashSet::new(),
        }
    }

    pub fn active(&self) -> bool {
        self.presence == Presence::Active
    }

    pub fn layer(&self, id: LayerId) -> Option<&LayerM> {
        self.layers.iter().find(|l| l.id == id)
    }

    pub fn layer_mut(&mut self, id: LayerId) -> Option<&mut LayerM> {
        self.layers.iter_mut().find(|l| l.id == id)
    }

    /// What the member thinks `track` (a sample index) is in `layer`: a rule of their own over
    /// the playlist the track came from, with a little noise.
    pub fn taste(&self, layer: &LayerM, sample: &Sample, track: usize) -> Label {
        let k = layer.subs.len();
        if k == 0 {
            return Label::Void;
        }
        let h = mix(layer.salt, track as u64);
        let p = sample.playlist[track] as u64;
        if !layer.complete && (p + layer.salt).is_multiple_of(5) {
            return Label::Void;
        }
        let first = ((p * 7 + layer.salt) % k as u64) as usize;
        let first = if h.is_multiple_of(10) {
            (first + 1) % k
        } else {
            first
        };
        let mut set = BTreeSet::from([layer.subs[first].id]);
        if !layer.mutual && k > 1 && (h >> 8).is_multiple_of(3) {
            set.insert(layer.subs[(first + 1) % k].id);
        }
        Label::Sublists(set)
    }
}

/// A 64-bit mix of two numbers (splitmix).
pub(super) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) const LAYER_NAMES: [&str; 10] = [
    "Mood", "Genre", "Energy", "Decade", "Scene", "Vibe", "Tempo", "Place", "Crowd", "Season",
];
pub(super) const SUBLIST_NAMES: [&str; 16] = [
    "Calm", "Loud", "Focus", "Party", "Night", "Sun", "Rock", "Pop", "Jazz", "Latin", "Trap",
    "Chill", "Road", "Rain", "Gym", "Cook",
];
pub(super) const EMOJIS: [&str; 16] = [
    "🌙", "🔥", "🎧", "🎉", "🌊", "🌞", "🎸", "🎤", "🎷", "💃", "🚗", "🧊", "🌿", "⚡", "🎹", "🥁",
];
