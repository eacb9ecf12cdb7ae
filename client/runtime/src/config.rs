//! Client settings. Defaults are GoSPA's, which users already know.

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
    /// the URL or a cookie), and the HTTP status of a refusal is hidden.
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
        }
    }

    pub fn auto_reconnect(mut self, on: bool) -> Self {
        self.auto_reconnect = on;
        self
    }
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }
    pub fn reconnect_delay(mut self, ms: u64) -> Self {
        self.reconnect_delay = ms;
        self
    }
    pub fn max_reconnect_delay(mut self, ms: u64) -> Self {
        self.max_reconnect_delay = ms;
        self
    }
    pub fn backoff_multiplier(mut self, m: f64) -> Self {
        self.backoff_multiplier = m;
        self
    }
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }
    pub fn timeout(mut self, ms: u64) -> Self {
        self.timeout = ms;
        self
    }
    pub fn heartbeat_interval(mut self, ms: u64) -> Self {
        self.heartbeat_interval = ms;
        self
    }
    pub fn missed_heartbeats_limit(mut self, n: u32) -> Self {
        self.missed_heartbeats_limit = n;
        self
    }
    pub fn with_credentials(mut self, on: bool) -> Self {
        self.with_credentials = on;
        self
    }
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = on;
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
        self
    }

    /// Adds a request header (fetch transport).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>` (fetch transport).
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    pub fn stable_after(mut self, ms: u64) -> Self {
        self.stable_after = ms;
        self
    }

    /// `self`, with each field still at its default replaced by
    /// `defaults`' (the URL is always `self`'s): what
    /// [`SSEManager::client`](crate::SSEManager::client) makes of a
    /// config and the manager's defaults, like GoSPA's
    /// `{...defaultConfig, ...config}`.
    ///
    /// ```
    /// use herald_client::SseConfig;
    /// let defaults = SseConfig::new("").max_retries(10).debug(true);
    /// let mine = SseConfig::new("/logs").debug(false).reconnect_delay(250);
    /// let merged = mine.over(&defaults);
    /// assert_eq!((merged.url.as_str(), merged.max_retries, merged.reconnect_delay), ("/logs", 10, 250));
    /// assert!(merged.debug, "false is the default: the manager's true applies");
    /// ```
    pub fn over(&self, defaults: &SseConfig) -> SseConfig {
        let base = SseConfig::new("");
        macro_rules! pick {
            ($($field:ident),*) => {
                SseConfig {
                    url: self.url.clone(),
                    $($field: if self.$field == base.$field { defaults.$field.clone() } else { self.$field.clone() },)*
                }
            };
        }
        pick!(
            auto_reconnect,
            max_retries,
            reconnect_delay,
            max_reconnect_delay,
            backoff_multiplier,
            jitter,
            timeout,
            heartbeat_interval,
            missed_heartbeats_limit,
            with_credentials,
            last_event_id,
            debug,
            transport,
            headers,
            stable_after
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
        }
    }

    /// The URL for an attempt: a new EventSource starts with no id, so the
    /// id to resume from travels as the `lastEventId` query parameter.
    ///
    /// ```
    /// use herald_client::SseConfig;
    /// let c = SseConfig::new("/_sse/connect?topics=a");
    /// assert_eq!(c.url_for(Some("00ab-7")), "/_sse/connect?topics=a&lastEventId=00ab-7");
    /// assert_eq!(c.url_for(None), "/_sse/connect?topics=a");
    /// ```
    pub fn url_for(&self, last_event_id: Option<&str>) -> String {
        match last_event_id {
            None => self.url.clone(),
            Some(id) => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{}lastEventId={}", self.url, sep, encode_component(id))
            }
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
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
    fn resume_ids_are_url_encoded() {
        assert_eq!(
            SseConfig::new("/s").url_for(Some("a b&c")),
            "/s?lastEventId=a%20b%26c"
        );
    }
}
