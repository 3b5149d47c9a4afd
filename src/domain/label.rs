//! Labels: where a track goes in one layer, and who said so.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{DomainError, Layer, SublistId, TrackId};

/// Where a track goes in one layer: the void, or a non-empty set of sublists.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// No sublist: the track is kept out of every playlist of the layer.
    Void,
    /// One or more sublists (exactly one in a mutual layer).
    Sublists(BTreeSet<SublistId>),
}

impl Label {
    /// The label for a set of sublists; an empty set is the void.
    pub fn from_set(set: BTreeSet<SublistId>) -> Label {
        if set.is_empty() {
            Label::Void
        } else {
            Label::Sublists(set)
        }
    }

    pub fn one(id: SublistId) -> Label {
        Label::Sublists(BTreeSet::from([id]))
    }

    pub fn is_void(&self) -> bool {
        matches!(self, Label::Void)
    }

    pub fn contains(&self, id: SublistId) -> bool {
        match self {
            Label::Void => false,
            Label::Sublists(s) => s.contains(&id),
        }
    }

    /// The sublists named by the label (empty for the void).
    pub fn sublists(&self) -> BTreeSet<SublistId> {
        match self {
            Label::Void => BTreeSet::new(),
            Label::Sublists(s) => s.clone(),
        }
    }

    /// Checks the label against the layer's rules: a mutual layer takes one sublist, a
    /// complete layer refuses the void, and every sublist must belong to the layer.
    pub fn validate(&self, layer: &Layer) -> Result<(), DomainError> {
        match self {
            Label::Void if layer.rules.complete => Err(DomainError::CompleteNeedsSublist {
                layer: layer.name.clone(),
            }),
            Label::Void => Ok(()),
            Label::Sublists(set) => {
                if set.iter().any(|id| layer.sublist(*id).is_none()) {
                    return Err(DomainError::UnknownSublist {
                        layer: layer.name.clone(),
                    });
                }
                if layer.rules.mutual && set.len() > 1 {
                    return Err(DomainError::MutualTakesOne {
                        layer: layer.name.clone(),
                    });
                }
                Ok(())
            }
        }
    }

    /// The label after a member toggles one sublist (a reaction added or removed, a button).
    /// In a mutual layer the latest choice wins; in a non-mutual one the set changes by one.
    pub fn toggled(&self, layer: &Layer, id: SublistId, on: bool) -> Label {
        let mut set = self.sublists();
        if layer.rules.mutual {
            if on {
                set = BTreeSet::from([id]);
            } else {
                set.remove(&id);
            }
        } else if on {
            set.insert(id);
        } else {
            set.remove(&id);
        }
        Label::from_set(set)
    }

    /// The label a track gets when the member adopts a playlist holding it as the playlist of
    /// `sublist`. The import is the member's latest word, so the track stays in that
    /// playlist: a model's guess (or no label) gives way to the sublist; a person's label
    /// gains it, or, in a mutual layer where a track has one sublist, is replaced by it.
    pub fn adopted(current: Option<&LabelledTrack>, layer: &Layer, sublist: SublistId) -> Label {
        match current {
            Some(l) if l.source.is_ground_truth() && !layer.rules.mutual => {
                let mut set = l.label.sublists();
                set.insert(sublist);
                Label::Sublists(set)
            }
            _ => Label::one(sublist),
        }
    }
}

/// Who decided a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LabelSource {
    /// The member, by a reaction, a button, or by editing a managed playlist by hand.
    Member,
    /// The model's prediction, applied because it was confident enough.
    Model,
    /// A playlist the member adopted as a sublist.
    Imported,
}

impl LabelSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LabelSource::Member => "member",
            LabelSource::Model => "model",
            LabelSource::Imported => "imported",
        }
    }

    pub fn parse(s: &str) -> Option<LabelSource> {
        match s {
            "member" => Some(LabelSource::Member),
            "model" => Some(LabelSource::Model),
            "imported" => Some(LabelSource::Imported),
            _ => None,
        }
    }

    /// Labels a model may learn from: what a person decided, not what a model guessed.
    pub fn is_ground_truth(self) -> bool {
        !matches!(self, LabelSource::Model)
    }
}

/// One track's label in one layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelledTrack {
    pub track: TrackId,
    pub label: Label,
    pub source: LabelSource,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::layer::tests::layer;

    fn set(ids: &[i64]) -> Label {
        Label::from_set(ids.iter().map(|i| SublistId(*i)).collect())
    }

    #[test]
    fn mutual_layer_takes_at_most_one() {
        let l = layer(true, false, 3);
        assert!(set(&[1]).validate(&l).is_ok());
        let err = set(&[1, 2]).validate(&l).unwrap_err();
        assert_eq!(
            err.to_string(),
            "The layer “Mood” is mutual: a track can go to only one of its sublists."
        );
    }

    #[test]
    fn complete_layer_refuses_the_void() {
        for mutual in [true, false] {
            let l = layer(mutual, true, 3);
            let err = Label::Void.validate(&l).unwrap_err();
            assert_eq!(
                err.to_string(),
                "The layer “Mood” is complete: every track must go to at least one sublist."
            );
            assert!(Label::Void.validate(&layer(mutual, false, 3)).is_ok());
        }
    }

    #[test]
    fn non_mutual_takes_many_but_only_its_own() {
        let l = layer(false, true, 3);
        assert!(set(&[1, 2, 3]).validate(&l).is_ok());
        assert!(matches!(
            set(&[1, 9]).validate(&l),
            Err(DomainError::UnknownSublist { .. })
        ));
    }

    #[test]
    fn empty_set_is_the_void() {
        assert_eq!(set(&[]), Label::Void);
        assert!(set(&[]).is_void());
        assert!(set(&[2]).contains(SublistId(2)));
    }

    #[test]
    fn toggling_follows_the_layer() {
        let mutual = layer(true, false, 3);
        let l = set(&[1]).toggled(&mutual, SublistId(2), true);
        assert_eq!(l, set(&[2]), "latest reaction wins in a mutual layer");
        assert_eq!(l.toggled(&mutual, SublistId(2), false), Label::Void);

        let multi = layer(false, false, 3);
        let l = set(&[1]).toggled(&multi, SublistId(2), true);
        assert_eq!(l, set(&[1, 2]));
        assert_eq!(l.toggled(&multi, SublistId(1), false), set(&[2]));
    }

    #[test]
    fn adopting_outranks_the_model_and_keeps_the_track_in_the_playlist() {
        let labelled = |label: Label, source: LabelSource| LabelledTrack {
            track: TrackId::parse("0000000000000000000001").unwrap(),
            label,
            source,
        };
        let (mutual, multi) = (layer(true, false, 3), layer(false, false, 3));
        let s = SublistId(1);
        for l in [&mutual, &multi] {
            assert_eq!(Label::adopted(None, l, s), set(&[1]));
            let guess = labelled(set(&[2]), LabelSource::Model);
            assert_eq!(
                Label::adopted(Some(&guess), l, s),
                set(&[1]),
                "a guess gives way"
            );
            let void = labelled(Label::Void, LabelSource::Member);
            assert_eq!(Label::adopted(Some(&void), l, s), set(&[1]));
        }
        let answer = labelled(set(&[2]), LabelSource::Member);
        assert_eq!(Label::adopted(Some(&answer), &mutual, s), set(&[1]));
        assert_eq!(Label::adopted(Some(&answer), &multi, s), set(&[1, 2]));
        assert!(
            Label::adopted(Some(&answer), &multi, s)
                .validate(&multi)
                .is_ok()
        );
    }

    #[test]
    fn sources_round_trip_and_model_is_not_truth() {
        for s in [
            LabelSource::Member,
            LabelSource::Model,
            LabelSource::Imported,
        ] {
            assert_eq!(LabelSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(LabelSource::parse("robot"), None);
        assert!(!LabelSource::Model.is_ground_truth());
        assert!(LabelSource::Imported.is_ground_truth());
    }
}
