//! Event ids: `<epoch>-<seq>`, both decimal — the same form as a Redis
//! stream entry id, which is exactly what the Redis backplane stores them as.
//!
//! `seq` grows by one for every event the broker publishes, on any topic, so
//! "everything after id N" is well defined across all of a client's topics.
//! `epoch` is drawn at random when the broker starts: an id minted by an
//! earlier run (or by another broker) carries a different epoch and is
//! recognised as foreign instead of being mistaken for a position in this
//! broker's history.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A broker's identity for the lifetime of its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u32);

impl Epoch {
    /// A fresh random epoch.
    pub fn random() -> Self {
        Epoch(rand::random())
    }
}

/// A position in one broker's event sequence.
///
/// ```
/// use herald_server::broker::{Epoch, EventId};
///
/// let id = EventId { epoch: Epoch(171), seq: 42 };
/// assert_eq!(id.to_string(), "171-42");
/// assert_eq!("171-42".parse::<EventId>().unwrap(), id);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId {
    pub epoch: Epoch,
    pub seq: u64,
}

/// A `Last-Event-ID` that is not of the `<epoch>-<seq>` form.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not a Herald event id: {0:?}")]
pub struct InvalidEventId(pub String);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch.0, self.seq)
    }
}

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEventId(s.chars().take(64).collect());
        let (epoch, seq) = s.split_once('-').ok_or_else(invalid)?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(epoch) || !digits(seq) {
            return Err(invalid());
        }
        Ok(EventId {
            epoch: Epoch(epoch.parse().map_err(|_| invalid())?),
            seq: seq.parse().map_err(|_| invalid())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "42",
            "abc-1",
            "ab-1",
            "-1",
            "171-",
            "171-x",
            "171--1",
            "+171-1",
            "4294967296-1",
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?} accepted");
        }
    }
}
