//! Sessions this server issues: a signed cookie.
//!
//! A `session:<sid>` topic carries what is sent to one browser session, so
//! a session id must be proven, never declared: it comes from a token's
//! `sessionId` claim or from this cookie, `herald_session=<sid>.<mac>`,
//! where the MAC is HMAC-SHA256 of the id under a key only the servers
//! know. The key is derived from the HS256 token secret (so every node of
//! a cluster shares it), or given on its own (`--session-secret`), or
//! drawn at start (sessions then last as long as the process).
//!
//! The cookie is `HttpOnly` (scripts cannot read it; an `EventSource`
//! sends it), `SameSite=Lax`, `Path=/`, and `Secure` when the request came
//! over HTTPS through a proxy.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "herald_session";

type HmacSha256 = Hmac<Sha256>;

/// The key session cookies are signed with.
///
/// ```
/// use herald_server::auth::SessionKey;
/// let key = SessionKey::derive(b"the server's HS256 secret, 32 bytes or more");
/// let cookie = key.sign("s-4f2a");
/// assert_eq!(key.verify(&cookie).as_deref(), Some("s-4f2a"));
/// assert_eq!(key.verify("s-4f2a.forged"), None);
/// assert_eq!(SessionKey::random().verify(&cookie), None);
/// ```
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

    fn mac(&self, sid: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(sid.as_bytes());
        mac
    }

    /// The cookie value for session `sid`.
    pub fn sign(&self, sid: &str) -> String {
        let tag = self.mac(sid).finalize().into_bytes();
        let mut value = String::with_capacity(sid.len() + 65);
        value.push_str(sid);
        value.push('.');
        for b in tag {
            value.push_str(&format!("{b:02x}"));
        }
        value
    }

    /// The session a cookie value proves, if it was signed with this key.
    pub fn verify(&self, value: &str) -> Option<String> {
        let (sid, tag) = value.rsplit_once('.')?;
        if sid.is_empty() || tag.len() != 64 {
            return None;
        }
        let tag: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(tag.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<_>>()?;
        // `verify_slice` compares in constant time.
        self.mac(sid).verify_slice(&tag).ok()?;
        Some(sid.to_owned())
    }

    /// A new session: its id and the `Set-Cookie` value that proves it.
    pub fn issue(&self, secure: bool) -> (String, String) {
        let sid = format!("s{}", crate::random::token(12));
        let secure = if secure { "; Secure" } else { "" };
        let cookie = format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            self.sign(&sid)
        );
        (sid, cookie)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tampered_cookie_proves_nothing() {
        let key = SessionKey::derive(b"secret");
        let good = key.sign("s1");
        assert_eq!(key.verify(&good).as_deref(), Some("s1"));
        // Another id under the same tag, a truncated tag, garbage.
        let (_, tag) = good.rsplit_once('.').expect("tag");
        for bad in [
            format!("s2.{tag}"),
            good[..good.len() - 2].to_owned(),
            "x".into(),
            ".".into(),
            format!(".{tag}"),
        ] {
            assert_eq!(key.verify(&bad), None, "{bad}");
        }
        // Ids may contain dots: the tag is after the last one.
        assert_eq!(key.verify(&key.sign("a.b")).as_deref(), Some("a.b"));
    }

    #[test]
    fn issued_cookies_carry_their_attributes() {
        let key = SessionKey::random();
        let (sid, cookie) = key.issue(true);
        assert!(cookie.starts_with(&format!("{SESSION_COOKIE}={sid}.")));
        assert!(cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"));
        assert!(!key.issue(false).1.contains("Secure"));
    }
}
