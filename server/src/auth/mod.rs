//! Authentication: who is asking, and which topics they may use.
//!
//! Tokens are JWTs: HS256 with a shared secret, or RS256 / ES256 verified
//! with a configured public key. `exp` and `nbf` are enforced. A token is
//! looked for, in order, in `Authorization: Bearer`, a cookie, and the
//! `token` / `access_token` query parameter (a browser's `EventSource`
//! cannot send headers).
//!
//! Claims: `sub` (the user id), `roles`, an optional `sessionId`, and the
//! topic claims `subscribe` / `publish` — lists of patterns where `*`
//! matches anything ([`crate::broker::pattern::topic_matches`]). What they allow is the topic
//! policy's to say (`broker::policy`): `subscribe` narrows what the token
//! may read, and only a `publish` claim lets it publish over HTTP.
//!
//! In dev mode only (`HERALD_DEV=1`), the multi-stream API's documented demo
//! token format is accepted too: base64 of `id:username:email:roles`.

mod session;

use axum::http::{header, HeaderMap};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use session::{
    CookieSecure, Session, SessionKey, Sessions, DEFAULT_SESSION_TTL_SECS, SESSION_COOKIE,
};

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    /// The user id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Topic patterns this token may subscribe to (absent: no limit of its
    /// own beyond the topic policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
    /// Topic patterns this token may publish to (absent: it publishes
    /// nothing over HTTP; see `broker::policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

impl Claims {
    /// Who the token says the caller is, as the topic policy reads it.
    pub fn principal(&self) -> crate::broker::policy::Principal {
        crate::broker::policy::Principal {
            user_id: Some(self.sub.clone()),
            session_id: self.session_id.clone(),
            roles: self.roles.clone(),
            subscribe: self.subscribe.clone(),
            publish: self.publish.clone(),
            peer: None,
        }
    }

    /// The display name (the `name` claim, else the user id).
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.sub)
    }
}

/// Why a request is not authenticated (always a 401).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("a token is required (Authorization: Bearer, cookie, or ?token=)")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// How tokens are verified.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// Only for HS256: lets the server mint tokens (`herald-server token`).
    signing: Option<EncodingKey>,
    dev: bool,
    cookie: String,
    /// Issues and checks session cookies.
    sessions: Sessions,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Verifier")
            .field("algorithms", &self.validation.algorithms)
            .field("dev", &self.dev)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

/// The cookie a token may come in unless configured otherwise.
pub const DEFAULT_COOKIE: &str = "herald_token";

/// Why a verifier could not be built.
#[derive(Debug, Error)]
#[error("invalid JWT key: {0}")]
pub struct KeyError(String);

impl Verifier {
    /// HS256 with a shared secret.
    ///
    /// ```
    /// use herald_server::auth::Verifier;
    /// let v = Verifier::hs256(b"an example secret, at least 32 bytes!");
    /// let token = v.mint("alice", 3600, Some(vec!["room:*".into()]), None).unwrap();
    /// let claims = v.verify(&token).unwrap();
    /// assert_eq!(claims.sub, "alice");
    /// assert_eq!(claims.subscribe, Some(vec!["room:*".to_owned()]));
    /// ```
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with_key(
            DecodingKey::from_secret(secret),
            Algorithm::HS256,
            Some(EncodingKey::from_secret(secret)),
        )
        .session_key(SessionKey::derive(secret))
    }

    /// RS256 with a PEM public key.
    pub fn rs256(public_pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_rsa_pem(public_pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self::with_key(key, Algorithm::RS256, None))
    }

    /// ES256 with a PEM public key.
    pub fn es256(public_pem: &[u8]) -> Result<Self, KeyError> {
        let key = DecodingKey::from_ec_pem(public_pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self::with_key(key, Algorithm::ES256, None))
    }

    fn with_key(key: DecodingKey, alg: Algorithm, signing: Option<EncodingKey>) -> Self {
        let mut validation = Validation::new(alg);
        validation.validate_nbf = true;
        validation.leeway = 5;
        validation.required_spec_claims = ["exp", "sub"].iter().map(|s| (*s).to_owned()).collect();
        Verifier {
            key,
            validation,
            signing,
            dev: false,
            cookie: DEFAULT_COOKIE.to_owned(),
            sessions: Sessions::new(
                SessionKey::random(),
                std::time::Duration::from_secs(DEFAULT_SESSION_TTL_SECS),
                CookieSecure::Auto,
            ),
        }
    }

    /// The key session cookies are signed with (derived from the secret
    /// for HS256, random otherwise: give one that every node shares).
    pub fn session_key(mut self, key: SessionKey) -> Self {
        self.sessions = self.sessions.with_key(key);
        self
    }

    /// How long session cookies last and when they are `Secure`.
    pub fn session_rules(mut self, ttl: std::time::Duration, secure: CookieSecure) -> Self {
        self.sessions = self.sessions.with_rules(ttl, secure);
        self
    }

    /// Session cookies, to issue one.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The session a request's `herald_session` cookie proves to `user`
    /// (the caller's verified user, `None` when anonymous), if any.
    pub fn session_from(&self, headers: &HeaderMap, user: Option<&str>) -> Option<Session> {
        cookie(headers, SESSION_COOKIE)
            .and_then(|v| self.sessions.verify(&v, user, crate::clock::unix_secs()))
    }

    /// Also accept the documented base64 demo tokens (dev mode only).
    pub fn dev_mode(mut self, on: bool) -> Self {
        self.dev = on;
        self
    }

    /// The cookie a token may come in (`herald_token`).
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie = name.into();
        self
    }

    /// Accepts only tokens whose `aud` claim names `audience` (a token
    /// for another service is then refused here).
    ///
    /// ```
    /// use herald_server::auth::{Claims, Verifier};
    /// let v = Verifier::hs256(b"an example secret, at least 32 bytes!").audience("herald");
    /// let token = v.mint("alice", 60, None, None).unwrap();
    /// assert!(v.verify(&token).is_err(), "no aud claim");
    /// ```
    pub fn audience(mut self, audience: &str) -> Self {
        self.validation.set_audience(&[audience]);
        self.validation
            .required_spec_claims
            .insert("aud".to_owned());
        self
    }

    /// Accepts only tokens whose `iss` claim is `issuer`.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.validation.set_issuer(&[issuer]);
        self.validation
            .required_spec_claims
            .insert("iss".to_owned());
        self
    }

    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => {
                if self.dev {
                    if let Some(claims) = dev_token(token) {
                        return Ok(claims);
                    }
                }
                use jsonwebtoken::errors::ErrorKind;
                Err(match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    _ => AuthError::Invalid(e.to_string()),
                })
            }
        }
    }

    /// Mints an HS256 token (`herald-server token`, and tests).
    pub fn mint(
        &self,
        sub: &str,
        ttl_secs: u64,
        subscribe: Option<Vec<String>>,
        publish: Option<Vec<String>>,
    ) -> Result<String, AuthError> {
        let signing = self
            .signing
            .as_ref()
            .ok_or_else(|| AuthError::Invalid("only an HS256 secret can mint tokens".into()))?;
        let claims = Claims {
            sub: sub.to_owned(),
            name: None,
            roles: Vec::new(),
            session_id: None,
            subscribe,
            publish,
            exp: now_secs() + ttl_secs,
            nbf: None,
        };
        self.mint_claims(signing, &claims)
    }

    /// Signs arbitrary claims (tests use it for expired or future tokens).
    pub fn mint_claims_hs256(&self, claims: &Claims) -> Result<String, AuthError> {
        let signing = self
            .signing
            .as_ref()
            .ok_or_else(|| AuthError::Invalid("only an HS256 secret can mint tokens".into()))?;
        self.mint_claims(signing, claims)
    }

    fn mint_claims(&self, key: &EncodingKey, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| AuthError::Invalid(e.to_string()))
    }

    /// The token of a request, if it carries one: `Authorization: Bearer`,
    /// then the cookie, then `token` / `access_token` in the query.
    pub fn token_from(&self, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
        if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            // The scheme is case-insensitive (RFC 7235).
            if let Some((scheme, token)) = auth.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
                    return Some(token.trim().to_owned());
                }
            }
        }
        if let Some(token) = cookie(headers, &self.cookie) {
            return Some(token);
        }
        let query = query?;
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "token" || k == "access_token")
            .map(|(_, v)| v)
    }

    /// The claims of a request: `Ok(None)` when it carries no token,
    /// an error when it carries a bad one (never silently anonymous).
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Claims>, AuthError> {
        self.token_from(headers, query)
            .map(|t| self.verify(&t))
            .transpose()
    }
}

/// The value of cookie `name`, if the request has it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The multi-stream API's demo token: base64 of `id:username:email:roles`.
fn dev_token(token: &str) -> Option<Claims> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.splitn(4, ':');
    let (id, username, _email, roles) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if id.is_empty() {
        return None;
    }
    Some(Claims {
        sub: id.to_owned(),
        name: Some(username.to_owned()),
        roles: roles
            .split(',')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        session_id: None,
        subscribe: None,
        publish: None,
        exp: u64::MAX,
        nbf: None,
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Query parameters whose values are credentials.
const SECRET_PARAMS: [&str; 3] = ["token", "access_token", "secret"];

/// Redacts `token`, `access_token` and `secret` values from a query
/// string for logs, however their names are spelled: the server decodes
/// `tok%65n` to `token` when it reads one, so the log must too.
///
/// ```
/// use herald_server::auth::redact_query;
/// assert_eq!(redact_query("topics=a&token=secret.jwt"), "topics=a&token=REDACTED");
/// assert_eq!(redact_query("tok%65n=secret.jwt&x=1"), "tok%65n=REDACTED&x=1");
/// assert_eq!(redact_query("access%5Ftoken=a.b"), "access%5Ftoken=REDACTED");
/// ```
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if SECRET_PARAMS.contains(&percent_decoded(key).as_str()) {
                format!("{key}=REDACTED")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A query component as `application/x-www-form-urlencoded` decodes it
/// (`%XX` escapes and `+`); malformed escapes stay as written.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"test secret that is long enough for HS256";

    fn claims(exp: u64, nbf: Option<u64>) -> Claims {
        Claims {
            sub: "alice".into(),
            name: None,
            roles: vec![],
            session_id: Some("s1".into()),
            subscribe: None,
            publish: Some(vec!["room:*".into()]),
            exp,
            nbf,
        }
    }

    #[test]
    fn expiry_and_not_before_are_enforced() {
        let v = Verifier::hs256(SECRET);
        let now = now_secs();
        let ok = v.mint_claims_hs256(&claims(now + 60, None)).expect("mint");
        assert_eq!(
            v.verify(&ok).expect("valid").session_id.as_deref(),
            Some("s1")
        );
        let expired = v.mint_claims_hs256(&claims(now - 60, None)).expect("mint");
        assert_eq!(v.verify(&expired), Err(AuthError::Expired));
        let early = v
            .mint_claims_hs256(&claims(now + 600, Some(now + 300)))
            .expect("mint");
        assert_eq!(v.verify(&early), Err(AuthError::NotYetValid));
    }

    #[test]
    fn a_token_signed_with_another_key_is_invalid() {
        let theirs = Verifier::hs256(b"some other secret, also long enough!!")
            .mint("mallory", 60, None, None);
        let verdict = Verifier::hs256(SECRET).verify(&theirs.expect("mint"));
        assert!(matches!(verdict, Err(AuthError::Invalid(_))), "{verdict:?}");
        assert!(matches!(
            Verifier::hs256(SECRET).verify("garbage"),
            Err(AuthError::Invalid(_))
        ));
    }

    #[test]
    fn the_demo_token_is_accepted_in_dev_mode_only() {
        let demo = "dGVzdDEyMzp0ZXN0dXNlcjp0ZXN0QGV4YW1wbGUuY29tOnVzZXIsYWRtaW4=";
        assert!(Verifier::hs256(SECRET).verify(demo).is_err());
        let c = Verifier::hs256(SECRET)
            .dev_mode(true)
            .verify(demo)
            .expect("dev token");
        assert_eq!((c.sub.as_str(), c.display_name()), ("test123", "testuser"));
        assert_eq!(c.roles, ["user", "admin"]);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let v = Verifier::hs256(SECRET);
        for value in ["Bearer t", "bearer t", "BEARER  t", "bEaReR t "] {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).expect("ascii"),
            );
            assert_eq!(v.token_from(&h, None).as_deref(), Some("t"), "{value:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic dXNlcg=="),
        );
        assert_eq!(v.token_from(&h, None), None);
    }

    #[test]
    fn audience_and_issuer_are_checked_when_configured() {
        #[derive(serde::Serialize)]
        struct WithAudience<'a> {
            sub: &'a str,
            exp: u64,
            aud: &'a str,
            iss: &'a str,
        }
        let sign = |aud, iss| {
            let claims = WithAudience {
                sub: "alice",
                exp: now_secs() + 60,
                aud,
                iss,
            };
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET),
            )
            .expect("sign")
        };
        let v = Verifier::hs256(SECRET)
            .audience("herald")
            .issuer("https://id.example");
        assert!(v.verify(&sign("herald", "https://id.example")).is_ok());
        assert!(v.verify(&sign("billing", "https://id.example")).is_err());
        assert!(v.verify(&sign("herald", "https://evil.example")).is_err());
    }

    #[test]
    fn percent_decoding_of_keys() {
        assert_eq!(percent_decoded("tok%65n"), "token");
        assert_eq!(percent_decoded("a+b%2"), "a b%2");
        assert_eq!(percent_decoded("%zz%"), "%zz%");
    }

    #[test]
    fn tokens_are_found_in_header_then_cookie_then_query() {
        let v = Verifier::hs256(SECRET).cookie_name("tk");
        let mut h = HeaderMap::new();
        assert_eq!(
            v.token_from(&h, Some("a=1&access_token=q")),
            Some("q".into())
        );
        h.insert(header::COOKIE, HeaderValue::from_static("x=1; tk=c"));
        assert_eq!(v.token_from(&h, Some("token=q")), Some("c".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer b"));
        assert_eq!(v.token_from(&h, Some("token=q")), Some("b".into()));
        assert_eq!(v.token_from(&HeaderMap::new(), None), None);
    }
}
