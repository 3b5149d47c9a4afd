//! What a job does (its kind and payload), which lane runs it, and how urgent it is.

use serde::{Deserialize, Serialize};

use crate::domain::{LayerId, MemberId};

/// The work a job does. Stored as JSON in the job's payload; the `kind` column holds
/// [`JobKind::name`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobKind {
    /// Read the member's motherlist from Spotify and store what changed.
    SyncMember { member: MemberId },
    /// Ask the audio-descriptor provider about the member's tracks that lack descriptors.
    FetchAudio { member: MemberId },
    /// Train the model of one layer on the member's labels (runs on a device worker).
    Train { member: MemberId, layer: LayerId },
    /// Sort the member's tracks with their models and write the sublists to Spotify; one layer,
    /// or every layer when `layer` is `None`.
    SortAndWrite {
        member: MemberId,
        layer: Option<LayerId>,
    },
    /// Post prompts for the tracks the member's models are least sure about.
    PostPrompts { member: MemberId },
    /// Announce what a refresh changed; `details` is what the announcement renders.
    Announce {
        member: MemberId,
        details: serde_json::Value,
    },
}

/// Which pool of slots runs a job: device jobs on the device workers, network jobs on the async
/// runtime. The two never wait for each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Device,
    Network,
}

impl Lane {
    /// The job kind names (see [`JobKind::name`]) this lane runs.
    pub fn kinds(self) -> &'static [&'static str] {
        match self {
            Lane::Device => &["train"],
            Lane::Network => &[
                "sync_member",
                "fetch_audio",
                "sort_and_write",
                "post_prompts",
                "announce",
            ],
        }
    }

    /// Whether a member runs at most one job of this lane at a time. Network jobs all take the
    /// member's lock on Spotify, so a second one would only hold a slot while it waits.
    pub fn one_per_member(self) -> bool {
        matches!(self, Lane::Network)
    }
}

/// How urgent a request is. Within the queue, manual requests run before automatic ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Scheduled work and retraining the pipeline decided on.
    Automatic,
    /// A member asked for it (`/train`).
    Manual,
}

impl Priority {
    pub(crate) fn value(self) -> i64 {
        match self {
            Priority::Automatic => 0,
            Priority::Manual => 10,
        }
    }

    pub(crate) fn from_value(value: i64) -> Self {
        if value >= Priority::Manual.value() {
            Priority::Manual
        } else {
            Priority::Automatic
        }
    }
}

impl JobKind {
    /// The stable name stored in the `kind` column.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::SyncMember { .. } => "sync_member",
            JobKind::FetchAudio { .. } => "fetch_audio",
            JobKind::Train { .. } => "train",
            JobKind::SortAndWrite { .. } => "sort_and_write",
            JobKind::PostPrompts { .. } => "post_prompts",
            JobKind::Announce { .. } => "announce",
        }
    }

    /// The member the job works for.
    pub fn member(&self) -> MemberId {
        match self {
            JobKind::SyncMember { member }
            | JobKind::FetchAudio { member }
            | JobKind::Train { member, .. }
            | JobKind::SortAndWrite { member, .. }
            | JobKind::PostPrompts { member }
            | JobKind::Announce { member, .. } => *member,
        }
    }

    pub fn lane(&self) -> Lane {
        match self {
            JobKind::Train { .. } => Lane::Device,
            _ => Lane::Network,
        }
    }

    /// Whether a request made while an equal job runs queues one follow-up behind it instead of
    /// joining it: a member's own `/train` must train on the labels given since the running
    /// training read them. Automatic retraining joins the running one; it counts the labels
    /// that one used, and asks again once enough new ones arrive.
    pub fn follows_running(&self, priority: Priority) -> bool {
        matches!(self, JobKind::Train { .. }) && priority == Priority::Manual
    }

    /// Requests with the same key coalesce while one is queued or running: at most one
    /// training per (member, layer), one sync per member, and so on. Announcements never
    /// coalesce.
    pub fn dedupe_key(&self) -> Option<String> {
        match self {
            JobKind::SyncMember { member } => Some(format!("sync:{member}")),
            JobKind::FetchAudio { member } => Some(format!("audio:{member}")),
            JobKind::Train { member, layer } => Some(format!("train:{member}:{}", layer.0)),
            JobKind::SortAndWrite { member, layer } => Some(match layer {
                Some(layer) => format!("sort:{member}:{}", layer.0),
                None => format!("sort:{member}:all"),
            }),
            JobKind::PostPrompts { member } => Some(format!("prompts:{member}")),
            JobKind::Announce { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<JobKind> {
        let member = MemberId(7);
        vec![
            JobKind::SyncMember { member },
            JobKind::FetchAudio { member },
            JobKind::Train {
                member,
                layer: LayerId(3),
            },
            JobKind::SortAndWrite {
                member,
                layer: None,
            },
            JobKind::PostPrompts { member },
            JobKind::Announce {
                member,
                details: serde_json::json!({"added": 2}),
            },
        ]
    }

    #[test]
    fn payload_round_trips_and_names_its_kind() {
        for kind in all() {
            let json = serde_json::to_value(&kind).unwrap();
            assert_eq!(json["kind"], kind.name());
            let back: JobKind = serde_json::from_value(json).unwrap();
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn every_kind_is_in_exactly_one_lane() {
        for kind in all() {
            let lanes: Vec<Lane> = [Lane::Device, Lane::Network]
                .into_iter()
                .filter(|lane| lane.kinds().contains(&kind.name()))
                .collect();
            assert_eq!(lanes, vec![kind.lane()], "{}", kind.name());
        }
    }

    #[test]
    fn trainings_coalesce_per_member_and_layer() {
        let a = JobKind::Train {
            member: MemberId(1),
            layer: LayerId(1),
        };
        let b = JobKind::Train {
            member: MemberId(1),
            layer: LayerId(2),
        };
        let c = JobKind::Train {
            member: MemberId(2),
            layer: LayerId(1),
        };
        assert_ne!(a.dedupe_key(), b.dedupe_key());
        assert_ne!(a.dedupe_key(), c.dedupe_key());
        assert_eq!(a.dedupe_key(), a.clone().dedupe_key());
    }
}
