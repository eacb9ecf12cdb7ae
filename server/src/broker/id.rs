//! Event ids and stream positions.
//!
//! An event's id is `<epoch>-<seq>`, both decimal — the same form as a
//! Redis stream entry id, which is exactly what the Redis backplane stores
//! them as. `seq` numbers the events of one **shard** of the log: a single
//! log (in memory, one Redis) is one shard, so its `seq` grows by one for
//! every event on any topic and "everything after id N" is well defined
//! across all of a client's topics. A sharded log (Redis Cluster) numbers
//! each shard on its own, and a topic lives in one shard
//! ([`shard_of`]).
//!
//! What a stream writes as `id:` (and gets back as `Last-Event-ID`) is its
//! [`Position`]: for each shard it reads, the last seq it has. With one
//! shard that is just the last event's id, `<epoch>-<seq>`; with several it
//! is `3.<epoch>.<shards>.<shard>:<seq>.<shard>:<seq>…`, naming only the
//! shards the stream reads (the shards of its topics), in ascending order.
//! The leading `3` is the format's version; version `2`,
//! `2.<epoch>.<seq of shard 0>.<seq of shard 1>…` (every shard), is still
//! read.
//!
//! `epoch` is drawn at random when the log starts: an id minted by an
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
        let epoch = decimal(epoch).and_then(|e| u32::try_from(e).ok());
        match (epoch, decimal(seq)) {
            (Some(epoch), Some(seq)) => Ok(EventId {
                epoch: Epoch(epoch),
                seq,
            }),
            _ => Err(invalid()),
        }
    }
}

/// The most shards a log may have: bounds a position's length (about
/// 12 bytes per shard it names).
pub const MAX_SHARDS: usize = 64;

/// The shard of a `shards`-shard log that holds `topic` (FNV-1a: stable
/// across nodes and builds; 0 for a single log).
///
/// ```
/// use herald_server::broker::shard_of;
/// assert_eq!(shard_of("room:general", 8), shard_of("room:general", 8));
/// assert!(shard_of("anything", 8) < 8);
/// assert_eq!(shard_of("anything", 1), 0);
/// ```
pub fn shard_of(topic: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let hash = topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards as u64) as usize
}

/// Where a stream is in a log: per shard, the seq of the last event it
/// has (0: none), for the shards it knows of. See the module docs for its
/// text form.
///
/// ```
/// use herald_server::broker::{Epoch, EventId, Position};
///
/// let one: Position = "171-42".parse().unwrap();
/// assert_eq!(one, Position::from(EventId { epoch: Epoch(171), seq: 42 }));
/// assert_eq!(one.to_string(), "171-42");
///
/// let mut three = Position::start(Epoch(171), 3);
/// three.advance(1, 9);
/// assert_eq!(three.to_string(), "3.171.3.0:0.1:9.2:0");
/// // What a stream reading shards 1 and 2 (bits 0b110) writes.
/// assert_eq!(three.naming(0b110).to_string(), "3.171.3.1:9.2:0");
///
/// let read: Position = "3.171.3.1:9".parse().unwrap();
/// assert_eq!((read.knows(0), read.knows(1), read.seq(1)), (false, true, 9));
/// assert_eq!("2.171.0.9.0".parse::<Position>().unwrap(), three);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    pub epoch: Epoch,
    seqs: Vec<u64>,
    /// The shards it says anything of, bit `i` for shard `i`.
    known: u64,
}

/// The bits of every shard of a `shards`-shard log (see [`Position::naming`]).
pub fn every_shard(shards: usize) -> u64 {
    match shards {
        0 => 1,
        n if n >= MAX_SHARDS => u64::MAX,
        n => (1 << n) - 1,
    }
}

/// The bit of `shard` (see [`Position::naming`]).
pub fn shard_bit(shard: usize) -> u64 {
    1u64.checked_shl(shard as u32).unwrap_or(0)
}

impl Position {
    /// Before every event of a `shards`-shard log (at least one shard).
    pub fn start(epoch: Epoch, shards: usize) -> Self {
        Position::new(epoch, vec![0; shards])
    }

    /// From each shard's seq (clamped to 1 ..= [`MAX_SHARDS`] shards).
    pub fn new(epoch: Epoch, mut seqs: Vec<u64>) -> Self {
        seqs.truncate(MAX_SHARDS);
        if seqs.is_empty() {
            seqs.push(0);
        }
        let known = every_shard(seqs.len());
        Position { epoch, seqs, known }
    }

    pub fn shards(&self) -> usize {
        self.seqs.len()
    }

    /// Whether it says where it is in `shard`.
    pub fn knows(&self, shard: usize) -> bool {
        self.known & shard_bit(shard) != 0
    }

    /// The last seq had of `shard` (0 for a shard it does not know).
    pub fn seq(&self, shard: usize) -> u64 {
        self.seqs.get(shard).copied().unwrap_or(0)
    }

    pub fn seqs(&self) -> &[u64] {
        &self.seqs
    }

    /// Has nothing of `shard`.
    pub fn rewind(&mut self, shard: usize) {
        if let Some(s) = self.seqs.get_mut(shard) {
            *s = 0;
        }
    }

    /// Has the event `seq` of `shard` (and every one before it there).
    pub fn advance(&mut self, shard: usize, seq: u64) {
        if let Some(s) = self.seqs.get_mut(shard) {
            *s = (*s).max(seq);
            self.known |= shard_bit(shard);
        }
    }

    /// Is at `seq` in `shard` (which it now knows), wherever it was.
    pub fn set(&mut self, shard: usize, seq: u64) {
        if let Some(s) = self.seqs.get_mut(shard) {
            *s = seq;
            self.known |= shard_bit(shard);
        }
    }

    /// Forgets every shard but `shards` (bits, as [`shard_bit`]).
    pub fn keep_only(&mut self, shards: u64) {
        self.known &= shards;
    }

    /// Its text form naming only the shards among `shards` (bits, as
    /// [`shard_bit`]) that it knows: what a stream reading those writes.
    pub fn naming(&self, shards: u64) -> Naming<'_> {
        Naming {
            at: self,
            shards: self.known & shards,
        }
    }
}

impl From<EventId> for Position {
    fn from(id: EventId) -> Self {
        Position::new(id.epoch, vec![id.seq])
    }
}

/// The version of the several-shard form that names shards.
const SHARDED: &str = "3";
/// The earlier several-shard form, every shard's seq in order (read only).
const SHARDED_V2: &str = "2";

/// A [`Position`]'s text naming some of its shards ([`Position::naming`]).
#[derive(Debug, Clone, Copy)]
pub struct Naming<'a> {
    at: &'a Position,
    shards: u64,
}

impl fmt::Display for Naming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at;
        if let [seq] = at.seqs.as_slice() {
            return write!(f, "{}-{seq}", at.epoch.0);
        }
        write!(f, "{SHARDED}.{}.{}", at.epoch.0, at.seqs.len())?;
        for (shard, seq) in at.seqs.iter().enumerate() {
            if self.shards & shard_bit(shard) != 0 {
                write!(f, ".{shard}:{seq}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.naming(u64::MAX).fmt(f)
    }
}

impl FromStr for Position {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEventId(s.chars().take(64).collect());
        let versioned = |v: &str| s.strip_prefix(v).and_then(|r| r.strip_prefix('.'));
        let (named, rest) = match (versioned(SHARDED), versioned(SHARDED_V2)) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => return s.parse::<EventId>().map(Position::from),
        };
        let mut parts = rest.split('.');
        let epoch = parts.next().and_then(decimal).ok_or_else(invalid)?;
        let epoch = Epoch(u32::try_from(epoch).map_err(|_| invalid())?);
        if !named {
            let seqs = parts
                .map(|p| decimal(p).ok_or_else(invalid))
                .collect::<Result<Vec<u64>, _>>()?;
            if seqs.len() < 2 || seqs.len() > MAX_SHARDS {
                return Err(invalid());
            }
            return Ok(Position::new(epoch, seqs));
        }
        let shards = parts.next().and_then(decimal).ok_or_else(invalid)? as usize;
        if !(2..=MAX_SHARDS).contains(&shards) {
            return Err(invalid());
        }
        let mut at = Position::new(epoch, vec![0; shards]);
        at.known = 0;
        let mut next = 0;
        for part in parts {
            let (shard, seq) = part.split_once(':').ok_or_else(invalid)?;
            let (Some(shard), Some(seq)) = (decimal(shard), decimal(seq)) else {
                return Err(invalid());
            };
            // Ascending, each once, within the log.
            let shard = usize::try_from(shard).map_err(|_| invalid())?;
            if shard < next || shard >= shards {
                return Err(invalid());
            }
            next = shard + 1;
            at.set(shard, seq);
        }
        Ok(at)
    }
}

/// Plain decimal digits (no sign, no spaces) that fit a `u64`.
fn decimal(t: &str) -> Option<u64> {
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
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
            assert!(bad.parse::<Position>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn rejects_malformed_positions() {
        for bad in [
            "2.",
            "2.171",
            "2.171.5",
            "2.171.5.",
            "2..5.6",
            "2.171.5.x",
            "2.171.-5.6",
            "2.4294967296.1.2",
            "4.171.1.2",
            "3.171",
            "3.171.1.0:5",
            "3.171.65",
            "3.171.3.0-5",
            "3.171.3.3:5",
            "3.171.3.1:5.0:4",
            "3.171.3.1:5.1:6",
            "3.171.3.1:x",
            "3.171.3.:5",
            "3.171.3.1:5.",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} accepted");
        }
        let too_long = format!("2.1{}", ".0".repeat(MAX_SHARDS + 1));
        assert!(too_long.parse::<Position>().is_err());
        let longest = format!("2.1{}", ".0".repeat(MAX_SHARDS));
        assert_eq!(
            longest.parse::<Position>().map(|p| p.shards()),
            Ok(MAX_SHARDS)
        );
    }

    #[test]
    fn a_position_names_the_shards_it_knows() {
        let at: Position = "3.9.8".parse().expect("no shard named");
        assert_eq!((at.shards(), at.knows(0)), (8, false));
        assert_eq!(at.to_string(), "3.9.8");
        let mut at: Position = "3.9.8.2:40.7:3".parse().expect("two shards");
        assert_eq!((at.seq(2), at.seq(7), at.knows(5)), (40, 3, false));
        at.advance(5, 1);
        assert_eq!(at.to_string(), "3.9.8.2:40.5:1.7:3");
        at.keep_only(shard_bit(2) | shard_bit(5));
        assert_eq!(at.to_string(), "3.9.8.2:40.5:1");
        assert_eq!(at.naming(shard_bit(5)).to_string(), "3.9.8.5:1");
        assert_eq!(every_shard(3), 0b111);
        assert_eq!(every_shard(MAX_SHARDS), u64::MAX);
        // The longest: every shard named, each with the largest seq.
        let longest = Position::new(Epoch(u32::MAX), vec![u64::MAX; MAX_SHARDS]).to_string();
        assert!(longest.len() < 64 * 25, "{}", longest.len());
        assert_eq!(
            longest.parse::<Position>().map(|p| p.shards()),
            Ok(MAX_SHARDS)
        );
    }

    #[test]
    fn shards_spread_topics() {
        let seen: std::collections::HashSet<usize> = (0..100)
            .map(|i| shard_of(&format!("topic-{i}"), 8))
            .collect();
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn a_position_only_moves_forward() {
        let mut p = Position::start(Epoch(1), 2);
        p.advance(0, 5);
        p.advance(0, 3);
        p.advance(7, 1);
        assert_eq!(p.seqs(), [5, 0]);
        p.rewind(0);
        assert_eq!(p.seqs(), [0, 0]);
    }
}
