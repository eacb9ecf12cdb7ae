//! Client settings. Defaults are GoSPA's, which users already know.
//!
//! A config remembers which settings were set (by a builder method, or by
//! changing a field from its default), so that merging it over a
//! manager's defaults ([`SseConfig::over`]) keeps every explicit choice,
//! as GoSPA's `{...defaultConfig, ...config}` does.

use crate::runtime::backoff::Backoff;
use crate::runtime::machine::Settings;

/// How the client reads the stream.
///
/// ```
/// use herald_client::{SseConfig, Transport};
/// assert_eq!(SseConfig::new("/sse").transport, Transport::EventSource);
/// let fetch = SseConfig::new("/sse").transport(Transport::Fetch).header("X-Tenant", "acme");
/// assert_eq!(fetch.headers.len(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// The browser's `EventSource`: no custom headers (a token must go in
    /// the URL or a cookie; a client given headers reads with `fetch`
    /// instead, see [`SseConfig::header`]). A refusal's status is hidden
    /// from it, so when one fails before opening the client asks the URL
    /// once more with `fetch` to learn why (401, 403, 429, 204 then end
    /// as they do with [`Transport::Fetch`]).
    #[default]
    EventSource,
    /// `fetch` and a streamed body, parsed by the shared crate's parser:
    /// custom headers (`Authorization: Bearer`, so tokens stay out of
    /// URLs and logs), `Last-Event-ID` as a header, and the status of a
    /// refusal (401, 403, 429 with `Retry-After`, 503, 204) seen and acted
    /// on.
    Fetch,
}

/// How an [`crate::SSEClient`] connects and reconnects.
///
/// ```
/// use herald_client::SseConfig;
///
/// let config = SseConfig::new("/_sse/connect").max_retries(0).heartbeat_interval(15_000);
/// assert!(config.auto_reconnect);
/// assert_eq!((config.max_retries, config.reconnect_delay), (0, 1000));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SseConfig {
    /// The stream's URL (`/_sse/connect`, `/sse`, ...).
    pub url: String,
    /// Reconnect after failures (true).
    pub auto_reconnect: bool,
    /// Attempts before giving up and going to `Error` (5; 0 = unlimited).
    pub max_retries: u32,
    /// First reconnect delay in ms (1000); a server's `retry` hint replaces it.
    pub reconnect_delay: u64,
    /// Cap on the reconnect delay in ms (30 000).
    pub max_reconnect_delay: u64,
    /// Growth of the delay per attempt (2.0).
    pub backoff_multiplier: f64,
    /// Up to this fraction is taken off each delay at random (0.2; 0 = off).
    pub jitter: f64,
    /// Connection timeout in ms (0 = none).
    pub timeout: u64,
    /// How often the server sends heartbeats, in ms (30 000).
    pub heartbeat_interval: u64,
    /// Silent intervals before the connection counts as dead (3; 0 = never).
    pub missed_heartbeats_limit: u32,
    /// Send cookies cross-origin (false).
    pub with_credentials: bool,
    /// Resume after this id on the first connect (none).
    pub last_event_id: Option<String>,
    /// Log every transition and event to the console (false).
    pub debug: bool,
    /// How the stream is read ([`Transport::EventSource`]).
    pub transport: Transport,
    /// Extra request headers, sent by the fetch transport (an
    /// `EventSource` cannot send any).
    pub headers: Vec<(String, String)>,
    /// Open this long (ms), a connection counts as healthy and the retry
    /// count starts over, even without an event (30 000; 0: only an event
    /// of the app's proves it).
    pub stable_after: u64,
    /// Once the `max_retries` fast retries are spent (the state is then
    /// `Error`), the delay of each further try in ms (60 000; 0: stop for
    /// good). A try also comes at once when the browser goes back online or
    /// the tab is shown again.
    pub slow_retry: u64,
    /// Which settings were set explicitly (builder methods).
    set: u32,
}

/// Bits of [`SseConfig::set`], one per setting a builder method sets.
mod field {
    pub const AUTO_RECONNECT: u32 = 1 << 0;
    pub const MAX_RETRIES: u32 = 1 << 1;
    pub const RECONNECT_DELAY: u32 = 1 << 2;
    pub const MAX_RECONNECT_DELAY: u32 = 1 << 3;
    pub const BACKOFF_MULTIPLIER: u32 = 1 << 4;
    pub const JITTER: u32 = 1 << 5;
    pub const TIMEOUT: u32 = 1 << 6;
    pub const HEARTBEAT_INTERVAL: u32 = 1 << 7;
    pub const MISSED_HEARTBEATS_LIMIT: u32 = 1 << 8;
    pub const WITH_CREDENTIALS: u32 = 1 << 9;
    pub const LAST_EVENT_ID: u32 = 1 << 10;
    pub const DEBUG: u32 = 1 << 11;
    pub const TRANSPORT: u32 = 1 << 12;
    pub const STABLE_AFTER: u32 = 1 << 13;
    pub const SLOW_RETRY: u32 = 1 << 14;
}

impl SseConfig {
    /// GoSPA's defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SseConfig {
            url: url.into(),
            auto_reconnect: true,
            max_retries: 5,
            reconnect_delay: 1000,
            max_reconnect_delay: 30_000,
            backoff_multiplier: 2.0,
            jitter: 0.2,
            timeout: 0,
            heartbeat_interval: 30_000,
            missed_heartbeats_limit: 3,
            with_credentials: false,
            last_event_id: None,
            debug: false,
            transport: Transport::EventSource,
            headers: Vec::new(),
            stable_after: 30_000,
            slow_retry: 60_000,
            set: 0,
        }
    }

    /// Reconnect after failures (default true).
    pub fn auto_reconnect(mut self, on: bool) -> Self {
        self.auto_reconnect = on;
        self.set |= field::AUTO_RECONNECT;
        self
    }
    /// Fast retries before the state is `Error` (default 5; 0 = unlimited).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self.set |= field::MAX_RETRIES;
        self
    }
    /// The first reconnect delay in ms (default 1000).
    pub fn reconnect_delay(mut self, ms: u64) -> Self {
        self.reconnect_delay = ms;
        self.set |= field::RECONNECT_DELAY;
        self
    }
    /// The cap on the reconnect delay in ms (default 30 000).
    pub fn max_reconnect_delay(mut self, ms: u64) -> Self {
        self.max_reconnect_delay = ms;
        self.set |= field::MAX_RECONNECT_DELAY;
        self
    }
    /// How much the delay grows per attempt (default 2.0).
    pub fn backoff_multiplier(mut self, m: f64) -> Self {
        self.backoff_multiplier = m;
        self.set |= field::BACKOFF_MULTIPLIER;
        self
    }
    /// Up to this fraction is taken off each delay at random (default 0.2).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self.set |= field::JITTER;
        self
    }
    /// The connect timeout in ms (default 0: none).
    pub fn timeout(mut self, ms: u64) -> Self {
        self.timeout = ms;
        self.set |= field::TIMEOUT;
        self
    }
    /// The heartbeat interval to expect in ms until the server announces
    /// its own (default 30 000).
    pub fn heartbeat_interval(mut self, ms: u64) -> Self {
        self.heartbeat_interval = ms;
        self.set |= field::HEARTBEAT_INTERVAL;
        self
    }
    /// Silent intervals before the connection counts as dead (default 3;
    /// 0 = never).
    pub fn missed_heartbeats_limit(mut self, n: u32) -> Self {
        self.missed_heartbeats_limit = n;
        self.set |= field::MISSED_HEARTBEATS_LIMIT;
        self
    }
    /// Send cookies cross-origin (default false).
    pub fn with_credentials(mut self, on: bool) -> Self {
        self.with_credentials = on;
        self.set |= field::WITH_CREDENTIALS;
        self
    }
    /// Resume after this id on the first connect.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self.set |= field::LAST_EVENT_ID;
        self
    }
    /// Log every transition and event to the console (default false).
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = on;
        self.set |= field::DEBUG;
        self
    }
    /// The delay of each try once the fast retries are spent, in ms
    /// (default 60 000; 0: stop for good).
    ///
    /// ```
    /// use herald_client::SseConfig;
    /// let give_up = SseConfig::new("/_sse/connect").slow_retry(0);
    /// assert_eq!(give_up.settings().slow_retry_ms, 0);
    /// ```
    pub fn slow_retry(mut self, ms: u64) -> Self {
        self.slow_retry = ms;
        self.set |= field::SLOW_RETRY;
        self
    }

    /// Reads the stream with `transport`.
    ///
    /// ```
    /// use herald_client::{SseConfig, Transport};
    /// let config = SseConfig::new("/notifications/stream")
    ///     .transport(Transport::Fetch)
    ///     .bearer("eyJhbGciOi...");
    /// assert_eq!(config.headers, [("Authorization".to_owned(), "Bearer eyJhbGciOi...".to_owned())]);
    /// ```
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self.set |= field::TRANSPORT;
        self
    }

    /// Adds a request header, replacing one of the same name. Only `fetch`
    /// can send headers, so a client with any reads with
    /// [`Transport::Fetch`] whatever its transport says
    /// ([`effective_transport`](Self::effective_transport)): a header is
    /// never silently dropped.
    ///
    /// ```
    /// use herald_client::{SseConfig, Transport};
    /// let c = SseConfig::new("/s").header("X-Tenant", "a").header("x-tenant", "b");
    /// assert_eq!(c.headers, [("x-tenant".to_owned(), "b".to_owned())]);
    /// assert_eq!((c.transport, c.effective_transport()), (Transport::EventSource, Transport::Fetch));
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// `Authorization: Bearer <token>` (read with `fetch`, see
    /// [`header`](Self::header)).
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    /// How long (ms) a quiet connection must stay open to count as
    /// healthy (default 30 000; 0: only an event of the app's proves it).
    pub fn stable_after(mut self, ms: u64) -> Self {
        self.stable_after = ms;
        self.set |= field::STABLE_AFTER;
        self
    }

    /// The transport a connection actually uses: `fetch` when there are
    /// headers to send (an `EventSource` cannot), else [`Self::transport`].
    pub fn effective_transport(&self) -> Transport {
        if self.headers.is_empty() {
            self.transport
        } else {
            Transport::Fetch
        }
    }

    /// `self` over `defaults`: each setting `self` set explicitly (a
    /// builder method, or a field changed from its default) is `self`'s,
    /// every other one `defaults`'; headers are merged by name, `self`'s
    /// winning; the URL is always `self`'s. What
    /// [`SSEManager::client`](crate::SSEManager::client) makes of a config
    /// and the manager's defaults, like GoSPA's `{...defaultConfig,
    /// ...config}`.
    ///
    /// ```
    /// use herald_client::{SseConfig, Transport};
    /// let defaults = SseConfig::new("").max_retries(10).debug(true).transport(Transport::Fetch).bearer("t");
    /// let mine = SseConfig::new("/logs")
    ///     .max_retries(5) // the crate's default, but chosen: it stays
    ///     .transport(Transport::EventSource)
    ///     .header("X-Tenant", "acme");
    /// let merged = mine.over(&defaults);
    /// assert_eq!((merged.url.as_str(), merged.max_retries), ("/logs", 5));
    /// assert!(merged.debug, "not set here: the manager's");
    /// assert_eq!(merged.transport, Transport::EventSource);
    /// assert_eq!(merged.headers.len(), 2, "the manager's token and the tenant");
    /// ```
    pub fn over(&self, defaults: &SseConfig) -> SseConfig {
        let base = SseConfig::new("");
        macro_rules! pick {
            ($($field:ident: $bit:ident),*) => {
                SseConfig {
                    url: self.url.clone(),
                    headers: merge_headers(&defaults.headers, &self.headers),
                    set: self.set | defaults.set,
                    $($field: if self.set & field::$bit != 0 || self.$field != base.$field {
                        self.$field.clone()
                    } else {
                        defaults.$field.clone()
                    },)*
                }
            };
        }
        pick!(
            auto_reconnect: AUTO_RECONNECT,
            max_retries: MAX_RETRIES,
            reconnect_delay: RECONNECT_DELAY,
            max_reconnect_delay: MAX_RECONNECT_DELAY,
            backoff_multiplier: BACKOFF_MULTIPLIER,
            jitter: JITTER,
            timeout: TIMEOUT,
            heartbeat_interval: HEARTBEAT_INTERVAL,
            missed_heartbeats_limit: MISSED_HEARTBEATS_LIMIT,
            with_credentials: WITH_CREDENTIALS,
            last_event_id: LAST_EVENT_ID,
            debug: DEBUG,
            transport: TRANSPORT,
            stable_after: STABLE_AFTER,
            slow_retry: SLOW_RETRY
        )
    }

    /// The state machine's view of these settings.
    pub fn settings(&self) -> Settings {
        Settings {
            auto_reconnect: self.auto_reconnect,
            max_retries: self.max_retries,
            backoff: Backoff {
                base_ms: self.reconnect_delay,
                max_ms: self.max_reconnect_delay,
                multiplier: self.backoff_multiplier,
                jitter: self.jitter,
            },
            connect_timeout_ms: self.timeout,
            heartbeat_interval_ms: self.heartbeat_interval,
            missed_heartbeats_limit: self.missed_heartbeats_limit,
            stable_after_ms: self.stable_after,
            slow_retry_ms: self.slow_retry,
        }
    }

    /// The URL for an attempt: a new EventSource starts with no id, so the
    /// id to resume from travels as the `lastEventId` query parameter —
    /// one of it, replacing any the URL already carries.
    ///
    /// ```
    /// use herald_client::SseConfig;
    /// let c = SseConfig::new("/_sse/connect?topics=a");
    /// assert_eq!(c.url_for(Some("00ab-7")), "/_sse/connect?topics=a&lastEventId=00ab-7");
    /// assert_eq!(c.url_for(None), "/_sse/connect?topics=a");
    /// let stale = SseConfig::new("/s?lastEventId=old-1&x=1");
    /// assert_eq!(stale.url_for(Some("new-9")), "/s?x=1&lastEventId=new-9");
    /// ```
    pub fn url_for(&self, last_event_id: Option<&str>) -> String {
        with_resume(&self.url, last_event_id)
    }
}

/// `url` resuming after `last_event_id` (one `lastEventId` parameter).
pub(crate) fn with_resume(url: &str, last_event_id: Option<&str>) -> String {
    let Some(id) = last_event_id else {
        return url.to_owned();
    };
    let resume = format!("lastEventId={}", encode_component(id));
    with_param(url, "lastEventId", Some(&resume))
}

/// `defaults` with `mine` over them, by header name (case-insensitive).
fn merge_headers(
    defaults: &[(String, String)],
    mine: &[(String, String)],
) -> Vec<(String, String)> {
    let mut merged: Vec<(String, String)> = defaults
        .iter()
        .filter(|(n, _)| !mine.iter().any(|(m, _)| m.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    merged.extend(mine.iter().cloned());
    merged
}

/// `url` without its `name` query parameters, and with `pair` (already
/// encoded, `name=value`) appended when given.
///
/// ```
/// # use herald_client::SseConfig;
/// // Through `url_for`, which replaces the resume point:
/// assert_eq!(SseConfig::new("/s?lastEventId=a").url_for(Some("b")), "/s?lastEventId=b");
/// ```
pub(crate) fn with_param(url: &str, name: &str, pair: Option<&str>) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .collect();
    params.extend(pair);
    if params.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a
/// query value an app puts in a stream URL (a room, a token).
///
/// ```
/// use herald_client::http::encode_component;
/// assert_eq!(encode_component("room:a b"), "room%3Aa%20b");
/// assert_eq!(encode_component("dG9r+/="), "dG9r%2B%2F%3D");
/// ```
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_gospa() {
        let c = SseConfig::new("/x");
        assert!(c.auto_reconnect);
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.reconnect_delay, 1000);
        assert_eq!(c.max_reconnect_delay, 30_000);
        assert_eq!(c.backoff_multiplier, 2.0);
        assert_eq!(c.heartbeat_interval, 30_000);
        assert_eq!(c.missed_heartbeats_limit, 3);
        assert_eq!(c.timeout, 0);
        assert!(!c.debug && !c.with_credentials);
    }

    #[test]
    fn explicit_settings_win_over_a_managers_defaults_even_when_they_equal_the_crates() {
        let defaults = SseConfig::new("")
            .max_retries(10)
            .auto_reconnect(false)
            .transport(Transport::Fetch)
            .slow_retry(5000)
            .bearer("manager-token");
        let mine = SseConfig::new("/a")
            .max_retries(5)
            .auto_reconnect(true)
            .transport(Transport::EventSource)
            .header("X-Trace", "1");
        let merged = mine.over(&defaults);
        assert_eq!(merged.max_retries, 5);
        assert!(merged.auto_reconnect);
        assert_eq!(merged.transport, Transport::EventSource);
        assert_eq!(merged.slow_retry, 5000, "not set here");
        assert_eq!(
            merged.headers,
            [
                (
                    "Authorization".to_owned(),
                    "Bearer manager-token".to_owned()
                ),
                ("X-Trace".to_owned(), "1".to_owned())
            ]
        );
        // A field changed in place (not through a builder) counts as set.
        let mut edited = SseConfig::new("/b");
        edited.debug = true;
        assert!(edited.over(&SseConfig::new("").debug(false)).debug);
        // Merging twice (a manager's defaults over earlier defaults) keeps
        // what each set.
        let later = SseConfig::new("").debug(true).over(&defaults);
        assert_eq!((later.max_retries, later.debug), (10, true));
    }

    #[test]
    fn resume_ids_are_url_encoded() {
        assert_eq!(
            SseConfig::new("/s").url_for(Some("a b&c")),
            "/s?lastEventId=a%20b%26c"
        );
    }
}
