//! Sessions this server issues: a signed cookie that ends.
//!
//! A `session:<sid>` topic carries what is sent to one browser session, and
//! a session proves a client id's owner, so a session id must be proven,
//! never declared: it comes from a token's `sessionId` claim or from this
//! cookie, `herald_session=<sid>.<issued>.<holder>.<mac>`, where `issued`
//! is when it was signed (seconds since the Unix epoch), `holder` says
//! whom it was issued to (`-` for an anonymous caller, else a keyed hash of
//! the user id: the user's id never travels in the cookie) and the MAC is
//! HMAC-SHA256 of the rest under a key only the servers know. The key is
//! derived from the HS256 token secret (so every node of a cluster shares
//! it), or given on its own (`--session-secret`), or drawn at start
//! (sessions then last as long as the process).
//!
//! A cookie proves its session only to whom it was issued (a signed-in
//! user's cookie to that user, an anonymous one to anonymous callers: a
//! cookie planted in someone's browser proves nothing for their account),
//! and only for its lifetime (`--session-ttl`); past half of it a stream
//! that uses it gets the same session re-issued with a new time. A caller
//! whose cookie proves nothing is issued a new session.
//!
//! The cookie is `HttpOnly` (scripts cannot read it; an `EventSource`
//! sends it), `SameSite=Lax`, `Path=/`, `Max-Age` its lifetime, and
//! `Secure` as [`CookieSecure`] says.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "herald_session";
/// How long a session cookie proves its session (`--session-ttl-secs`).
pub const DEFAULT_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// The key session cookies are signed with.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)") // never print key material
    }
}

impl SessionKey {
    /// A key derived from a secret the servers share.
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"herald session cookie v1");
        SessionKey(mac.finalize().into_bytes().into())
    }

    /// A key for this process only.
    pub fn random() -> Self {
        SessionKey(rand::random())
    }

    fn mac(&self, parts: &[&str]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        for part in parts {
            // Length-prefixed: no two lists of parts sign the same bytes.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }

    /// Whom a cookie is issued to: `-` for anonymous, else a keyed hash
    /// of the user id.
    fn holder(&self, user: Option<&str>) -> String {
        match user {
            None => "-".to_owned(),
            Some(uid) => hex(&self.mac(&["holder", uid]).finalize().into_bytes()[..8]),
        }
    }
}

/// When a session cookie carries `Secure` (`--cookie-secure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSecure {
    /// When the request came over HTTPS: `X-Forwarded-Proto: https` from
    /// the proxy that terminated TLS (trusting it can only make a cookie
    /// stricter). Behind a proxy that does not say so, use `Always`.
    #[default]
    Auto,
    Always,
    Never,
}

/// A session a request's cookie proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// Past half its lifetime: worth re-issuing to a caller still using it.
    pub aging: bool,
}

/// Session cookies: their key, lifetime and `Secure` rule.
///
/// ```
/// use std::time::Duration;
/// use herald_server::auth::{CookieSecure, SessionKey, Sessions};
///
/// let sessions = Sessions::new(SessionKey::derive(b"a shared secret"), Duration::from_secs(3600), CookieSecure::Auto);
/// let t0 = 1_800_000_000;
/// let (sid, set_cookie) = sessions.issue(None, false, t0);
/// let value = set_cookie.split(';').next().unwrap().strip_prefix("herald_session=").unwrap();
///
/// // The anonymous caller it was issued to has it back, for its lifetime.
/// assert_eq!(sessions.verify(value, None, t0 + 60).map(|s| s.id), Some(sid.clone()));
/// assert!(sessions.verify(value, None, t0 + 3601).is_none()); // expired
/// // A signed-in user presenting it does not get that session.
/// assert!(sessions.verify(value, Some("alice"), t0 + 60).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Sessions {
    key: SessionKey,
    ttl: Duration,
    secure: CookieSecure,
}

impl Sessions {
    pub fn new(key: SessionKey, ttl: Duration, secure: CookieSecure) -> Self {
        Sessions {
            key,
            ttl: ttl.max(Duration::from_secs(1)),
            secure,
        }
    }

    /// The same rules under another key.
    pub fn with_key(self, key: SessionKey) -> Self {
        Sessions { key, ..self }
    }

    /// The same key under other rules.
    pub fn with_rules(self, ttl: Duration, secure: CookieSecure) -> Self {
        Sessions::new(self.key, ttl, secure)
    }

    /// The cookie value proving `sid`, issued to `user` at `now` (Unix
    /// seconds).
    fn sign(&self, sid: &str, user: Option<&str>, now: u64) -> String {
        let (issued, holder) = (now.to_string(), self.key.holder(user));
        let tag = self
            .key
            .mac(&[sid, &issued, &holder])
            .finalize()
            .into_bytes();
        format!("{sid}.{issued}.{holder}.{}", hex(&tag))
    }

    /// The session a cookie value proves to `user` at `now`: signed with
    /// this key, issued to that user (or to anonymous when `user` is
    /// `None`) and within its lifetime.
    pub fn verify(&self, value: &str, user: Option<&str>, now: u64) -> Option<Session> {
        let (rest, tag) = value.rsplit_once('.')?;
        let (rest, holder) = rest.rsplit_once('.')?;
        let (sid, issued) = rest.rsplit_once('.')?;
        if sid.is_empty() || tag.len() != 64 {
            return None;
        }
        let tag: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(tag.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        // `verify_slice` compares in constant time.
        self.key
            .mac(&[sid, issued, holder])
            .verify_slice(&tag)
            .ok()?;
        if holder != self.key.holder(user) {
            return None;
        }
        let age = now.checked_sub(issued.parse().ok()?)?;
        let ttl = self.ttl.as_secs();
        (age < ttl).then(|| Session {
            id: sid.to_owned(),
            aging: age >= ttl / 2,
        })
    }

    /// A new session for `user`: its id and the `Set-Cookie` value.
    pub fn issue(&self, user: Option<&str>, https: bool, now: u64) -> (String, String) {
        let sid = format!("s{}", crate::random::token(12));
        let cookie = self.set_cookie(&sid, user, https, now);
        (sid, cookie)
    }

    /// The `Set-Cookie` value proving `sid` to `user` from `now` (a new
    /// session, or one re-issued as it ages).
    pub fn set_cookie(&self, sid: &str, user: Option<&str>, https: bool, now: u64) -> String {
        let secure = match self.secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => https,
        };
        format!(
            "{SESSION_COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{}",
            self.sign(sid, user, now),
            self.ttl.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_800_000_000;

    fn sessions(secure: CookieSecure) -> Sessions {
        Sessions::new(
            SessionKey::derive(b"secret"),
            Duration::from_secs(100),
            secure,
        )
    }

    fn value(set_cookie: &str) -> &str {
        set_cookie
            .split(';')
            .next()
            .and_then(|v| v.strip_prefix("herald_session="))
            .expect("a session cookie")
    }

    #[test]
    fn a_tampered_cookie_proves_nothing() {
        let s = sessions(CookieSecure::Auto);
        let (_, cookie) = s.issue(Some("alice"), false, T0);
        let good = value(&cookie);
        assert!(s.verify(good, Some("alice"), T0).is_some());
        let (rest, tag) = good.rsplit_once('.').expect("tag");
        let (_, holder) = rest.rsplit_once('.').expect("holder");
        for bad in [
            good.replacen('s', "t", 1),                                  // another id
            good.replace(&format!(".{T0}."), &format!(".{}.", T0 + 50)), // a younger age
            format!(
                "{}.{T0}.-.{tag}",
                good.split('.').next().unwrap_or_default()
            ), // anonymous
            good[..good.len() - 2].to_owned(),
            "x".into(),
            format!("..{holder}.{tag}"),
        ] {
            assert_eq!(s.verify(&bad, Some("alice"), T0), None, "{bad}");
            assert_eq!(s.verify(&bad, None, T0), None, "{bad}");
        }
        let other = Sessions::new(
            SessionKey::random(),
            Duration::from_secs(100),
            CookieSecure::Auto,
        );
        assert_eq!(other.verify(good, Some("alice"), T0), None);
    }

    #[test]
    fn a_cookie_proves_its_session_only_to_whom_it_was_issued() {
        let s = sessions(CookieSecure::Auto);
        let (sid, anonymous) = s.issue(None, false, T0);
        let (_, alices) = s.issue(Some("alice"), false, T0);
        assert_eq!(
            s.verify(value(&anonymous), None, T0).map(|x| x.id),
            Some(sid)
        );
        for user in [Some("alice"), Some("bob")] {
            assert_eq!(s.verify(value(&anonymous), user, T0), None);
        }
        assert!(s.verify(value(&alices), Some("alice"), T0).is_some());
        assert_eq!(s.verify(value(&alices), Some("bob"), T0), None);
        assert_eq!(s.verify(value(&alices), None, T0), None);
    }

    #[test]
    fn cookies_age_and_end() {
        let s = sessions(CookieSecure::Auto);
        let (sid, cookie) = s.issue(None, false, T0);
        let v = value(&cookie);
        let at = |t| s.verify(v, None, t);
        assert_eq!(at(T0 + 49).map(|x| x.aging), Some(false));
        assert_eq!(at(T0 + 50).map(|x| x.aging), Some(true));
        assert_eq!(at(T0 + 100), None, "expired");
        assert_eq!(at(T0 - 1), None, "issued in the future");
        // Re-issued: the same session, a new life.
        let again = s.set_cookie(&sid, None, false, T0 + 60);
        assert_eq!(
            s.verify(value(&again), None, T0 + 150).map(|x| x.id),
            Some(sid)
        );
    }

    #[test]
    fn issued_cookies_carry_their_attributes() {
        let (sid, cookie) = sessions(CookieSecure::Auto).issue(None, true, T0);
        assert!(cookie.starts_with(&format!("{SESSION_COOKIE}={sid}.")));
        assert!(cookie.ends_with("; Path=/; Max-Age=100; HttpOnly; SameSite=Lax; Secure"));
        assert!(!sessions(CookieSecure::Auto)
            .issue(None, false, T0)
            .1
            .contains("Secure"));
        assert!(sessions(CookieSecure::Always)
            .issue(None, false, T0)
            .1
            .ends_with("; Secure"));
        assert!(!sessions(CookieSecure::Never)
            .issue(None, true, T0)
            .1
            .contains("Secure"));
    }
}
