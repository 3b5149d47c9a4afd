//! The time the program reads: the system's, or a manual clock that only moves when told to
//! (the simulation moves it hour by hour). Every wall-clock reading goes through a [`Clock`]
//! (the store carries one: [`crate::store::Store::now`]); sleeps and time limits stay on real
//! time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// A source of the current time. Cheap to clone; clones of a manual clock share its time.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// A clock that stands still until [`Clock::advance`] moves it (microseconds since the
    /// Unix epoch).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock::System
    }

    /// A manual clock that starts at `start`.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start.timestamp_micros())))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Manual(micros) => Utc
                .timestamp_micros(micros.load(Ordering::SeqCst))
                .single()
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }

    /// Moves a manual clock forward by `d`; the system clock moves by itself and ignores it.
    pub fn advance(&self, d: Duration) {
        if let Clock::Manual(micros) = self {
            let step = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            micros.fetch_add(step, Ordering::SeqCst);
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap();
        let clock = Clock::manual(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(other.now(), start + chrono::Duration::hours(1));
        other.advance(Duration::from_millis(1));
        assert_eq!(
            clock.now(),
            start + chrono::Duration::hours(1) + chrono::Duration::milliseconds(1)
        );
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let clock = Clock::system();
        let before = Utc::now();
        clock.advance(Duration::from_secs(3600));
        let now = clock.now();
        assert!(now >= before && now - before < chrono::Duration::minutes(1));
    }
}
