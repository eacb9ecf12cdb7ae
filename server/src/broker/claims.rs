//! Who a client id belongs to, beyond the life of its connection.
//!
//! A client id names a topic (`client:<id>`) that backends send to, and
//! a reconnecting client may ask for its id again. So an id has an owner:
//! whoever first connected with it, recorded as the connection's user
//! (from its token) and session (from its token or this server's signed
//! cookie), plus the per-connection secret the `connected` event handed
//! out. Its secret, or its user, continues the id (and gets the same
//! secret back); its session does only when no user holds it (an
//! anonymous owner's browser); anyone else is refused. The record lives while a
//! connection holds the id and for `keep_for` (the history's age) after
//! the last one left, so what was sent to the id in the meantime is never
//! read by a newcomer. A newcomer taking an id nobody holds starts fresh:
//! it is not shown the id's history either.
//!
//! This is the record of one log; [`MemoryBackplane`](super::MemoryBackplane)
//! keeps it in a [`ClaimTable`], the Redis backplane in a hash per id.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// A connection asking for a client id.
#[derive(Debug, Clone, Copy)]
pub struct ClientClaim<'a> {
    /// The connection's verified user, if any.
    pub user: Option<&'a str>,
    /// Its verified session, if any.
    pub session: Option<&'a str>,
    /// A secret it offers as proof (from an earlier `connected`).
    pub offered_secret: Option<&'a str>,
    /// The secret the id gets if nobody holds it.
    pub new_secret: &'a str,
    /// This connection, unique among all: a release by an older
    /// connection of the same id does not end a newer one's hold.
    pub holder: &'a str,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// Nobody held the id: it is this connection's, with the new secret
    /// (and none of its past).
    Fresh,
    /// The owner came back: its id, its secret, its history.
    Continued { secret: String },
    /// Someone else's.
    Refused,
}

/// One id's owner. Every connection has a record while it lives, so it is
/// kept small: the user, session and holder only need comparing, so they
/// are kept as keyed 64-bit hashes (no copies of the strings; nobody can
/// aim for a collision without the table's random key).
#[derive(Debug, Clone)]
struct Record {
    user: Option<u64>,
    session: Option<u64>,
    secret: Box<str>,
    holder: u64,
    /// `None` while a connection holds the id.
    expires: Option<Instant>,
}

/// Client-id records with time passed in.
///
/// ```
/// use std::time::{Duration, Instant};
/// use herald_server::broker::{ClaimTable, Claimed, ClientClaim};
///
/// let mut table = ClaimTable::default();
/// let t0 = Instant::now();
/// let keep = Duration::from_secs(300);
/// let alice = ClientClaim { user: None, session: Some("s-alice"), offered_secret: None, new_secret: "k1", holder: "conn-1" };
/// assert_eq!(table.claim("tab", &alice, t0), Claimed::Fresh);
///
/// // Mallory, with another session and no secret, cannot have it while
/// // alice holds it, nor for `keep` after she left.
/// let mallory = ClientClaim { session: Some("s-mallory"), new_secret: "k2", holder: "conn-2", ..alice };
/// assert_eq!(table.claim("tab", &mallory, t0), Claimed::Refused);
/// table.release("tab", "conn-1", keep, t0);
/// assert_eq!(table.claim("tab", &mallory, t0 + keep / 2), Claimed::Refused);
///
/// // Alice's browser (same session) or anyone with the secret continues it.
/// let back = ClientClaim { holder: "conn-3", ..alice };
/// assert_eq!(table.claim("tab", &back, t0 + keep / 2), Claimed::Continued { secret: "k1".into() });
/// let with_secret = ClientClaim { offered_secret: Some("k1"), holder: "conn-4", ..mallory };
/// assert!(matches!(table.claim("tab", &with_secret, t0 + keep / 2), Claimed::Continued { .. }));
///
/// // Long after the last holder left, the id is anyone's again.
/// table.release("tab", "conn-4", keep, t0 + keep / 2);
/// table.release("tab", "conn-3", keep, t0 + keep / 2); // not the holder any more: no effect
/// assert_eq!(table.claim("tab", &mallory, t0 + keep * 2), Claimed::Fresh);
/// ```
#[derive(Debug, Default)]
pub struct ClaimTable {
    records: HashMap<Box<str>, Record>,
    /// Keys the identity hashes.
    key: RandomState,
}

impl ClaimTable {
    fn hash(&self, s: &str) -> u64 {
        self.key.hash_one(s)
    }

    /// Claims `id` for `claim`'s connection at `now`.
    pub fn claim(&mut self, id: &str, claim: &ClientClaim<'_>, now: Instant) -> Claimed {
        let user = claim.user.map(|u| self.hash(u));
        let session = claim.session.map(|s| self.hash(s));
        let holder = self.hash(claim.holder);
        if let Some(record) = self.records.get_mut(id) {
            if record.expires.is_none_or(|at| at > now) {
                let same = |kept: Option<u64>, given: Option<u64>| kept.is_some() && kept == given;
                // A user's id is continued by that user: a session alone
                // (a cookie can end up in someone else's browser) proves
                // only an anonymous owner.
                let proven = same(record.user, user)
                    || (record.user.is_none() && same(record.session, session))
                    || claim
                        .offered_secret
                        .is_some_and(|s| constant_time_eq(s.as_bytes(), record.secret.as_bytes()));
                if !proven {
                    return Claimed::Refused;
                }
                record.holder = holder;
                record.expires = None;
                return Claimed::Continued {
                    secret: record.secret.to_string(),
                };
            }
        }
        self.records.insert(
            id.into(),
            Record {
                user,
                session,
                secret: claim.new_secret.into(),
                holder,
                expires: None,
            },
        );
        Claimed::Fresh
    }

    /// `holder` left: unless a newer connection holds the id, it stays
    /// its owner's for `keep_for`.
    pub fn release(&mut self, id: &str, holder: &str, keep_for: Duration, now: Instant) {
        let holder = self.hash(holder);
        if let Some(record) = self.records.get_mut(id) {
            if record.holder == holder {
                record.expires = Some(now + keep_for);
            }
        }
    }

    /// Forgets records whose time is up.
    pub fn sweep(&mut self, now: Instant) {
        self.records
            .retain(|_, r| r.expires.is_none_or(|at| at > now));
    }

    /// Ids on record (held or kept).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Compares without an early exit, so timing does not reveal a secret.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim<'a>(
        user: Option<&'a str>,
        session: Option<&'a str>,
        holder: &'a str,
    ) -> ClientClaim<'a> {
        ClientClaim {
            user,
            session,
            offered_secret: None,
            new_secret: "new",
            holder,
        }
    }

    #[test]
    fn the_same_user_continues_from_any_session_and_anonymous_never_takes_a_users_id() {
        let mut t = ClaimTable::default();
        let now = Instant::now();
        assert_eq!(
            t.claim("x", &claim(Some("alice"), Some("s1"), "c1"), now),
            Claimed::Fresh
        );
        assert!(matches!(
            t.claim("x", &claim(Some("alice"), Some("s2"), "c2"), now),
            Claimed::Continued { .. }
        ));
        assert_eq!(
            t.claim("x", &claim(None, None, "c3"), now),
            Claimed::Refused
        );
        assert_eq!(
            t.claim("x", &claim(Some("bob"), None, "c4"), now),
            Claimed::Refused
        );
    }

    #[test]
    fn a_users_id_is_not_continued_by_its_session_alone() {
        let mut t = ClaimTable::default();
        let now = Instant::now();
        assert_eq!(
            t.claim("tab-1", &claim(Some("alice"), Some("s1"), "c1"), now),
            Claimed::Fresh
        );
        // Mallory holds a cookie for s1 (planted in alice's browser).
        assert_eq!(
            t.claim("tab-1", &claim(Some("mallory"), Some("s1"), "c2"), now),
            Claimed::Refused
        );
        assert_eq!(
            t.claim("tab-1", &claim(None, Some("s1"), "c3"), now),
            Claimed::Refused
        );
        assert!(matches!(
            t.claim("tab-1", &claim(Some("alice"), None, "c4"), now),
            Claimed::Continued { .. }
        ));
    }

    #[test]
    fn an_empty_identity_proves_nothing() {
        let mut t = ClaimTable::default();
        let now = Instant::now();
        assert_eq!(t.claim("x", &claim(None, None, "c1"), now), Claimed::Fresh);
        assert_eq!(
            t.claim("x", &claim(None, None, "c2"), now),
            Claimed::Refused
        );
        let wrong = ClientClaim {
            offered_secret: Some("guess"),
            ..claim(None, None, "c3")
        };
        assert_eq!(t.claim("x", &wrong, now), Claimed::Refused);
    }

    #[test]
    fn expired_records_are_swept() {
        let mut t = ClaimTable::default();
        let now = Instant::now();
        t.claim("x", &claim(None, Some("s"), "c1"), now);
        t.claim("y", &claim(None, Some("s"), "c2"), now);
        t.release("x", "c1", Duration::from_secs(1), now);
        t.sweep(now + Duration::from_secs(2));
        assert_eq!(t.len(), 1, "y is still held");
    }
}
