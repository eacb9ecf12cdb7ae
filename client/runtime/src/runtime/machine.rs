//! The connection lifecycle as a pure state machine: no browser, no timers,
//! no clock of its own. The browser layer feeds it what happened and the
//! current time, and carries out the [`Action`]s it returns; tests do the same
//! with a fake clock.
//!
//! Decisions that differ from the GoSPA client, each covered by a test:
//! * the browser's own silent retry is not trusted: on any error the
//!   connection is closed and the machine reconnects with its own backoff;
//! * a connect timeout turns into a scheduled reconnect (it never cancels one);
//! * when the fast retries run out the connection is closed and the state
//!   is `Error` (GoSPA's `maxRetries`), but the page is not stranded: a
//!   slow retry (`slow_retry_ms`, a minute by default) keeps going, and
//!   comes at once when the browser says it is back online or the tab is
//!   shown again ([`Machine::nudge`]); only `slow_retry_ms = 0` stops for
//!   good;
//! * the attempt counter resets only after the connection proved healthy:
//!   an event of the app's arrived, or it stayed open for `stable_after_ms`.
//!   The server's own lifecycle events (`connected`, `heartbeat`, `reset`,
//!   `ping`) prove it is alive, not that it works: a server that greets and
//!   closes runs out of retries instead of looping forever;
//! * a refusal that will not change by retrying (401, 403) ends in `Error`
//!   at once; a 429 waits at least the server's `Retry-After`; a `204 No
//!   Content` means "nothing more to say": `Disconnected`, no retry;
//! * every failure is reported with its cause and the attempt number,
//!   including the ones the machine notices itself (timeout, lost heartbeat);
//! * heartbeats the server declares invisible (comments, which an
//!   `EventSource` never shows) or off do not count as missed; when it
//!   sends visible ones, the interval it announces replaces the configured
//!   one (`missed_heartbeats_limit` of them is the margin): a server with
//!   100 s heartbeats is not taken for dead after 90 s.

use super::backoff::{Backoff, Jitter};

/// Where a connection is, as apps see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SseState {
    /// Opening, or waiting to retry after a failure.
    Connecting,
    /// The stream is open.
    Connected,
    /// Not connected, by choice (initially, after `disconnect`), or because
    /// the server said there is nothing more (`204 No Content`).
    Disconnected,
    /// Gave up: retries exhausted, reconnecting disabled, or refused for good.
    Error,
}

impl SseState {
    /// Lower-case name, as GoSPA's client reports it.
    pub fn as_str(self) -> &'static str {
        match self {
            SseState::Connecting => "connecting",
            SseState::Connected => "connected",
            SseState::Disconnected => "disconnected",
            SseState::Error => "error",
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The network failed or the stream dropped (an `EventSource` says no
    /// more than that).
    Network,
    /// 401: the token is missing or bad. Retrying will not help.
    Unauthorized,
    /// 403: not this caller's. Retrying will not help.
    Forbidden,
    /// 429: a limit; the next try waits at least `retry_after_ms`.
    TooManyRequests {
        /// The server's `Retry-After`, in ms.
        retry_after_ms: Option<u64>,
    },
    /// 503: the server (or its backplane) is unavailable for now.
    Unavailable,
    /// Any other refusal.
    Status(u16),
    /// Not open within the connect timeout.
    Timeout,
    /// No sign of life for `missed_heartbeats_limit` heartbeat intervals.
    HeartbeatLost,
    /// A 200 whose body is not `text/event-stream` (a proxy's page, a
    /// wrong route): worth another try.
    NotAStream,
    /// The request could not even be made (a malformed URL): retrying the
    /// same request cannot help.
    Invalid,
}

impl Failure {
    /// A failure another try cannot fix.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Failure::Unauthorized | Failure::Forbidden | Failure::Invalid
        )
    }

    /// The failure an HTTP status means (`None` for a success).
    ///
    /// ```
    /// use herald_client::runtime::machine::Failure;
    /// assert_eq!(Failure::from_status(401, None), Some(Failure::Unauthorized));
    /// assert_eq!(Failure::from_status(429, Some(5000)), Some(Failure::TooManyRequests { retry_after_ms: Some(5000) }));
    /// assert_eq!(Failure::from_status(200, None), None);
    /// ```
    pub fn from_status(status: u16, retry_after_ms: Option<u64>) -> Option<Failure> {
        Some(match status {
            200..=299 => return None,
            401 => Failure::Unauthorized,
            403 => Failure::Forbidden,
            429 => Failure::TooManyRequests { retry_after_ms },
            503 => Failure::Unavailable,
            other => Failure::Status(other),
        })
    }
}

/// What the browser layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new connection (resuming from `last_event_id`, if any).
    Open {
        /// Where to resume.
        last_event_id: Option<String>,
    },
    /// Close the current connection.
    Close,
    /// The state changed; tell the app (emitted once per transition).
    State(SseState),
    /// Attempt `attempt` failed (tell the app's error handlers).
    Failed {
        /// Why.
        failure: Failure,
        /// Failed attempts since the connection was last healthy.
        attempt: u32,
    },
    /// A reconnect is scheduled: failed attempt `attempt`, next try in
    /// `delay_ms`. The state stays `Connecting` meanwhile (`Error` once the
    /// fast retries are spent), so this is how an app shows "retrying in
    /// 4 s".
    RetryScheduled {
        /// Failed attempts so far.
        attempt: u32,
        /// When the next attempt starts.
        delay_ms: u64,
    },
}

/// The machine's settings (milliseconds throughout).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Reconnect after failures at all.
    pub auto_reconnect: bool,
    /// Fast retries before the state is `Error`; 0 means unlimited.
    pub max_retries: u32,
    /// The delays of the fast retries.
    pub backoff: Backoff,
    /// 0 means no connect timeout.
    pub connect_timeout_ms: u64,
    /// How often the server promises a sign of life (until it says).
    pub heartbeat_interval_ms: u64,
    /// Intervals of silence after which the connection counts as dead (0 = never).
    pub missed_heartbeats_limit: u32,
    /// Open this long, a connection counts as healthy even without an
    /// event (0: only an event proves it).
    pub stable_after_ms: u64,
    /// Once `max_retries` are spent, the delay of each further try (0:
    /// stop for good).
    pub slow_retry_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Nothing open, nothing scheduled.
    Idle,
    /// A connection is opening.
    Opening { since: u64 },
    /// Open; `healthy` once it proved itself.
    Open {
        since: u64,
        last_activity: u64,
        healthy: bool,
    },
    /// Closed after a failure; reopen at `until`.
    Waiting { until: u64 },
}

/// See the module docs.
///
/// ```
/// use herald_client::runtime::machine::{Action, Failure, Machine, Settings, SseState};
/// use herald_client::runtime::backoff::Backoff;
///
/// let settings = Settings {
///     auto_reconnect: true, max_retries: 5,
///     backoff: Backoff { base_ms: 1000, max_ms: 30_000, multiplier: 2.0, jitter: 0.0 },
///     connect_timeout_ms: 0, heartbeat_interval_ms: 30_000, missed_heartbeats_limit: 3,
///     stable_after_ms: 30_000, slow_retry_ms: 60_000,
/// };
/// let mut m = Machine::new(settings, 1);
/// assert_eq!(m.connect(0), vec![Action::Open { last_event_id: None }, Action::State(SseState::Connecting)]);
/// assert_eq!(m.opened(10), vec![Action::State(SseState::Connected)]);
/// m.event(20, Some("e1-1"), false);
/// // The stream drops: close, report, and retry in 1 s.
/// assert_eq!(
///     m.error(30, Failure::Network),
///     vec![
///         Action::Close,
///         Action::Failed { failure: Failure::Network, attempt: 1 },
///         Action::State(SseState::Connecting),
///         Action::RetryScheduled { attempt: 1, delay_ms: 1000 },
///     ]
/// );
/// assert_eq!(m.next_wake(), Some(1030));
/// assert_eq!(m.wake(1030), vec![Action::Open { last_event_id: Some("e1-1".into()) }]);
/// ```
#[derive(Debug, Clone)]
pub struct Machine {
    settings: Settings,
    state: SseState,
    phase: Phase,
    /// Consecutive failed attempts since the last healthy connection.
    attempt: u32,
    last_event_id: Option<String>,
    /// The server's `retry:` hint replaces the base delay.
    retry_hint_ms: Option<u64>,
    /// The server said this connection will see no heartbeats (they are
    /// off, or comments an `EventSource` never shows).
    no_heartbeats: bool,
    /// The heartbeat interval the server announced for this connection.
    announced_interval_ms: Option<u64>,
    next_delay_ms: Option<u64>,
    rng: Jitter,
}

impl Machine {
    /// A disconnected machine. `seed` drives the jitter.
    pub fn new(settings: Settings, seed: u64) -> Self {
        Machine {
            settings,
            state: SseState::Disconnected,
            phase: Phase::Idle,
            attempt: 0,
            last_event_id: None,
            retry_hint_ms: None,
            no_heartbeats: false,
            announced_interval_ms: None,
            next_delay_ms: None,
            rng: Jitter::new(seed),
        }
    }

    /// Where the connection is.
    pub fn state(&self) -> SseState {
        self.state
    }

    /// New settings; they apply from the next decision on (a pending retry
    /// keeps its time). The most recent choice wins: explicit settings drop
    /// an earlier `retry` hint from the server (a later hint replaces them).
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
        self.retry_hint_ms = None;
    }

    /// Failed attempts since the connection was last healthy.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay chosen for the pending retry, if one is scheduled.
    pub fn next_delay_ms(&self) -> Option<u64> {
        self.next_delay_ms
    }

    /// The id the next connection resumes after.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// Where to resume from on the next open.
    pub fn set_last_event_id(&mut self, id: Option<String>) {
        self.last_event_id = id.filter(|s| !s.is_empty());
    }

    /// When the browser layer must call [`Machine::wake`] next, if ever.
    pub fn next_wake(&self) -> Option<u64> {
        let s = &self.settings;
        match self.phase {
            Phase::Idle => None,
            Phase::Opening { since } => {
                (s.connect_timeout_ms > 0).then(|| since + s.connect_timeout_ms)
            }
            Phase::Waiting { until } => Some(until),
            Phase::Open {
                since,
                last_activity,
                healthy,
            } => {
                let dead = self.dead_after().map(|d| last_activity + d);
                let proven = (!healthy && s.stable_after_ms > 0).then(|| since + s.stable_after_ms);
                match (dead, proven) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// Start connecting (also from `Error` or after `disconnect`).
    pub fn connect(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Opening { .. } | Phase::Open { .. }) {
            return out; // already on it
        }
        self.attempt = 0;
        self.open(now, &mut out);
        out
    }

    /// Intentional: close and do not come back.
    pub fn disconnect(&mut self, _now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Opening { .. } | Phase::Open { .. }) {
            out.push(Action::Close);
        }
        self.phase = Phase::Idle;
        self.next_delay_ms = None;
        self.set_state(SseState::Disconnected, &mut out);
        out
    }

    /// Close whatever is open and open again now, with a fresh attempt count.
    pub fn reconnect(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Opening { .. } | Phase::Open { .. }) {
            out.push(Action::Close);
        }
        self.attempt = 0;
        self.open(now, &mut out);
        out
    }

    /// The connection opened.
    pub fn opened(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Phase::Opening { .. } = self.phase {
            self.phase = Phase::Open {
                since: now,
                last_activity: now,
                healthy: false,
            };
            self.no_heartbeats = false;
            self.announced_interval_ms = None;
            self.next_delay_ms = None;
            self.set_state(SseState::Connected, &mut out);
        }
        out
    }

    /// An event arrived; `id` is its last event id, if any. `lifecycle`:
    /// one of the server's own (`connected`, `heartbeat`, ...), which keeps
    /// the connection alive but does not prove it works.
    pub fn event(&mut self, now: u64, id: Option<&str>, lifecycle: bool) {
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            self.last_event_id = Some(id.to_owned());
        }
        self.activity(now);
        if !lifecycle {
            if let Phase::Open { healthy, .. } = &mut self.phase {
                *healthy = true;
                self.attempt = 0;
            }
        }
    }

    /// A sign of life that is not an app's event (a heartbeat, a comment).
    pub fn activity(&mut self, now: u64) {
        if let Phase::Open { last_activity, .. } = &mut self.phase {
            *last_activity = now;
        }
    }

    /// The server sent `retry: <ms>`: it becomes the base delay.
    pub fn retry_hint(&mut self, millis: u64) {
        self.retry_hint_ms = Some(millis);
    }

    /// What the server says of its heartbeats on this connection: whether
    /// the client will see any, and how often they come. When it will not
    /// (they are off, or comments an `EventSource` never shows), silence
    /// is not a sign of death; when it will, `interval_ms` replaces the
    /// configured interval.
    pub fn server_heartbeats(&mut self, visible: bool, interval_ms: u64) {
        self.no_heartbeats = !visible || interval_ms == 0;
        self.announced_interval_ms = Some(interval_ms).filter(|&ms| ms > 0);
    }

    /// The browser says it is back (online again, or the tab shown again):
    /// a pending retry, fast or slow, happens now.
    pub fn nudge(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Phase::Waiting { .. } = self.phase {
            self.open(now, &mut out);
        }
        out
    }

    /// The attempt failed (a refused or dropped connection).
    pub fn error(&mut self, now: u64, failure: Failure) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Opening { .. } | Phase::Open { .. }) {
            out.push(Action::Close);
            self.fail(now, failure, &mut out);
        }
        out
    }

    /// The server has nothing more to say (`204 No Content`): close, and
    /// stay disconnected.
    pub fn done(&mut self, now: u64) -> Vec<Action> {
        self.disconnect(now)
    }

    /// Time passed: fire whatever deadline is due.
    pub fn wake(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Idle => {}
            Phase::Waiting { until } if now >= until => self.open(now, &mut out),
            Phase::Waiting { .. } => {}
            Phase::Opening { since } => {
                let t = self.settings.connect_timeout_ms;
                if t > 0 && now >= since + t {
                    out.push(Action::Close);
                    self.fail(now, Failure::Timeout, &mut out);
                }
            }
            Phase::Open {
                since,
                last_activity,
                healthy,
            } => {
                let stable = self.settings.stable_after_ms;
                if self.dead_after().is_some_and(|d| now >= last_activity + d) {
                    out.push(Action::Close);
                    self.fail(now, Failure::HeartbeatLost, &mut out);
                } else if !healthy && stable > 0 && now >= since + stable {
                    self.phase = Phase::Open {
                        since,
                        last_activity,
                        healthy: true,
                    };
                    self.attempt = 0;
                }
            }
        }
        out
    }

    /// How long a silence kills the connection, if one can.
    fn dead_after(&self) -> Option<u64> {
        let s = &self.settings;
        let interval = self
            .announced_interval_ms
            .unwrap_or(s.heartbeat_interval_ms);
        (!self.no_heartbeats && s.missed_heartbeats_limit > 0 && interval > 0)
            .then(|| interval.saturating_mul(u64::from(s.missed_heartbeats_limit)))
    }

    fn open(&mut self, now: u64, out: &mut Vec<Action>) {
        self.phase = Phase::Opening { since: now };
        self.next_delay_ms = None;
        out.push(Action::Open {
            last_event_id: self.last_event_id.clone(),
        });
        self.set_state(SseState::Connecting, out);
    }

    /// After a failure (the connection is already closed): report it, then
    /// retry later or give up.
    fn fail(&mut self, now: u64, failure: Failure, out: &mut Vec<Action>) {
        let s = &self.settings;
        self.attempt = self.attempt.saturating_add(1);
        out.push(Action::Failed {
            failure,
            attempt: self.attempt,
        });
        let exhausted = s.max_retries != 0 && self.attempt > s.max_retries;
        if !s.auto_reconnect || failure.is_final() || (exhausted && s.slow_retry_ms == 0) {
            self.phase = Phase::Idle;
            self.next_delay_ms = None;
            self.set_state(SseState::Error, out);
            return;
        }
        if exhausted {
            // Said (`Error`), but not given up: a slow retry goes on.
            let delay = s.slow_retry_ms;
            self.next_delay_ms = Some(delay);
            self.phase = Phase::Waiting { until: now + delay };
            self.set_state(SseState::Error, out);
            out.push(Action::RetryScheduled {
                attempt: self.attempt,
                delay_ms: delay,
            });
            return;
        }
        let backoff = Backoff {
            base_ms: self.retry_hint_ms.unwrap_or(s.backoff.base_ms),
            ..s.backoff
        };
        let mut delay = backoff.delay(self.attempt, self.rng.next_f64());
        if let Failure::TooManyRequests {
            retry_after_ms: Some(wait),
        } = failure
        {
            delay = delay.max(wait);
        }
        self.next_delay_ms = Some(delay);
        self.phase = Phase::Waiting { until: now + delay };
        self.set_state(SseState::Connecting, out);
        out.push(Action::RetryScheduled {
            attempt: self.attempt,
            delay_ms: delay,
        });
    }

    fn set_state(&mut self, state: SseState, out: &mut Vec<Action>) {
        if self.state != state {
            self.state = state;
            out.push(Action::State(state));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use SseState::*;

    fn settings() -> Settings {
        Settings {
            auto_reconnect: true,
            max_retries: 5,
            backoff: Backoff {
                base_ms: 1000,
                max_ms: 30_000,
                multiplier: 2.0,
                jitter: 0.0,
            },
            connect_timeout_ms: 0,
            heartbeat_interval_ms: 30_000,
            missed_heartbeats_limit: 3,
            stable_after_ms: 30_000,
            slow_retry_ms: 60_000,
        }
    }

    fn failed(attempt: u32) -> Action {
        Failed {
            failure: Failure::Network,
            attempt,
        }
    }

    /// Drives a machine with a fake clock and records every action.
    struct Sim {
        m: Machine,
        now: u64,
        log: Vec<Action>,
    }

    impl Sim {
        fn new(s: Settings) -> Self {
            Sim {
                m: Machine::new(s, 99),
                now: 0,
                log: Vec::new(),
            }
        }
        fn run(&mut self, f: impl FnOnce(&mut Machine, u64) -> Vec<Action>) -> Vec<Action> {
            let out = f(&mut self.m, self.now);
            self.log.extend(out.clone());
            out
        }
        /// Advances the clock to the next deadline and fires it.
        fn wake_next(&mut self) -> Vec<Action> {
            let at = self.m.next_wake().expect("a deadline is pending");
            assert!(at >= self.now, "deadline in the past");
            self.now = at;
            self.run(|m, now| m.wake(now))
        }
        fn states(&self) -> Vec<SseState> {
            self.log
                .iter()
                .filter_map(|a| if let State(s) = a { Some(*s) } else { None })
                .collect()
        }
    }

    #[test]
    fn backoff_sequence_grows_and_is_capped() {
        let mut sim = Sim::new(Settings {
            max_retries: 0,
            ..settings()
        });
        sim.run(|m, now| m.connect(now));
        let mut delays = Vec::new();
        for _ in 0..8 {
            sim.run(|m, now| m.error(now, Failure::Network));
            delays.push(sim.m.next_delay_ms().expect("scheduled"));
            assert_eq!(
                sim.wake_next(),
                vec![Open {
                    last_event_id: None
                }]
            );
        }
        assert_eq!(
            delays,
            [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn explicit_settings_replace_an_earlier_server_hint() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.m.retry_hint(5000);
        sim.m.set_settings(Settings {
            backoff: Backoff {
                base_ms: 100,
                ..settings().backoff
            },
            ..settings()
        });
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.next_delay_ms(), Some(100));
        sim.m.retry_hint(700); // a later hint wins again
        sim.wake_next();
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.next_delay_ms(), Some(1400));
    }

    #[test]
    fn the_servers_retry_hint_sets_the_base_delay() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.m.retry_hint(250);
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.next_delay_ms(), Some(250));
        sim.wake_next();
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.next_delay_ms(), Some(500));
    }

    #[test]
    fn exhausting_max_retries_closes_the_source_and_ends_in_error() {
        let mut sim = Sim::new(Settings {
            slow_retry_ms: 0,
            ..settings()
        });
        sim.run(|m, now| m.connect(now));
        for attempt in 1..=5 {
            let delay_ms = 1000 << (attempt - 1);
            assert_eq!(
                sim.run(|m, now| m.error(now, Failure::Network)),
                vec![Close, failed(attempt), RetryScheduled { attempt, delay_ms }]
            );
            assert_eq!(
                sim.wake_next(),
                vec![Open {
                    last_event_id: None
                }]
            );
        }
        // The sixth failure is one too many.
        assert_eq!(
            sim.run(|m, now| m.error(now, Failure::Network)),
            vec![Close, failed(6), State(Error)]
        );
        assert_eq!(
            sim.m.next_wake(),
            None,
            "nothing may be scheduled after giving up"
        );
        assert_eq!(sim.m.wake(sim.now + 1_000_000), vec![]);
        // A stray error from the closed source changes nothing.
        assert_eq!(sim.m.error(sim.now + 5, Failure::Network), vec![]);
        assert_eq!(sim.m.state(), Error);
    }

    #[test]
    fn past_its_fast_retries_a_client_says_so_and_retries_slowly_until_it_gets_through() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for _ in 1..=5 {
            sim.run(|m, now| m.error(now, Failure::Network));
            sim.wake_next();
        }
        // The sixth failure: `Error` says the fast retries are spent, and a
        // slow retry is scheduled.
        assert_eq!(
            sim.run(|m, now| m.error(now, Failure::Network)),
            vec![
                Close,
                failed(6),
                State(Error),
                RetryScheduled {
                    attempt: 6,
                    delay_ms: 60_000
                }
            ]
        );
        let t = sim.now;
        assert_eq!(sim.m.next_wake(), Some(t + 60_000));
        // A minute later it tries again (and again after, while down).
        assert_eq!(
            sim.wake_next(),
            vec![
                Open {
                    last_event_id: None
                },
                State(Connecting)
            ]
        );
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.state(), Error);
        assert_eq!(sim.m.next_delay_ms(), Some(60_000));
        // The browser comes back online: at once, not in a minute.
        sim.now += 1500;
        assert_eq!(
            sim.run(|m, now| m.nudge(now)),
            vec![
                Open {
                    last_event_id: None
                },
                State(Connecting)
            ]
        );
        // Through: connected, and a healthy connection starts over.
        sim.run(|m, now| m.opened(now));
        sim.m.event(sim.now + 1, Some("e-9"), false);
        assert_eq!((sim.m.state(), sim.m.attempt()), (Connected, 0));
        // Nudging an open connection does nothing.
        assert_eq!(sim.run(|m, now| m.nudge(now)), vec![]);
    }

    #[test]
    fn a_request_that_cannot_be_made_is_not_retried() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        assert_eq!(
            sim.run(|m, now| m.error(now, Failure::Invalid)),
            vec![
                Close,
                Failed {
                    failure: Failure::Invalid,
                    attempt: 1
                },
                State(Error)
            ]
        );
        assert_eq!(sim.m.next_wake(), None);
    }

    #[test]
    fn a_bare_open_does_not_reset_the_attempt_counter() {
        // A server that accepts and drops at once must still run out of retries.
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for _ in 0..5 {
            sim.run(|m, now| m.opened(now));
            sim.now += 5;
            sim.run(|m, now| m.error(now, Failure::Network));
            sim.wake_next();
        }
        sim.run(|m, now| m.opened(now));
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.state(), Error);
    }

    #[test]
    fn the_counter_resets_after_an_event_or_one_healthy_interval() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for _ in 0..3 {
            sim.run(|m, now| m.error(now, Failure::Network));
            sim.wake_next();
        }
        assert_eq!(sim.m.attempt(), 3);
        sim.run(|m, now| m.opened(now));
        sim.now += 10;
        sim.m.event(sim.now, Some("e-1"), false);
        assert_eq!(sim.m.attempt(), 0, "an event proves health");

        sim.run(|m, now| m.error(now, Failure::Network));
        sim.wake_next();
        sim.run(|m, now| m.opened(now));
        assert_eq!(sim.m.attempt(), 1);
        // Open and quiet for one heartbeat interval also proves health.
        sim.wake_next();
        assert_eq!(sim.m.attempt(), 0);
        assert_eq!(sim.m.state(), Connected);
    }

    #[test]
    fn heartbeat_silence_counts_as_a_dead_connection() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.opened(now));
        sim.now = 20_000;
        sim.m.activity(sim.now); // a heartbeat
        sim.m.event(sim.now, None, false); // healthy: only death is left to watch
                                           // Nothing for 3 intervals after the last sign of life:
        assert_eq!(sim.m.next_wake(), Some(20_000 + 90_000));
        sim.now = 109_999;
        assert_eq!(sim.run(|m, now| m.wake(now)), vec![]);
        assert_eq!(
            sim.wake_next(),
            vec![
                Close,
                Failed {
                    failure: Failure::HeartbeatLost,
                    attempt: 1
                },
                State(Connecting),
                RetryScheduled {
                    attempt: 1,
                    delay_ms: 1000
                }
            ]
        );
        assert_eq!(
            sim.wake_next(),
            vec![Open {
                last_event_id: None
            }]
        );
    }

    #[test]
    fn a_connect_timeout_schedules_a_reconnect_instead_of_cancelling_one() {
        let mut sim = Sim::new(Settings {
            connect_timeout_ms: 5000,
            ..settings()
        });
        sim.run(|m, now| m.connect(now));
        assert_eq!(sim.m.next_wake(), Some(5000));
        assert_eq!(
            sim.wake_next(),
            vec![
                Close,
                Failed {
                    failure: Failure::Timeout,
                    attempt: 1
                },
                RetryScheduled {
                    attempt: 1,
                    delay_ms: 1000
                }
            ]
        );
        assert_eq!(sim.m.state(), Connecting);
        assert_eq!(
            sim.m.next_wake(),
            Some(5000 + 1000),
            "the retry is scheduled"
        );
        assert_eq!(
            sim.wake_next(),
            vec![Open {
                last_event_id: None
            }]
        );
        // Opening in time clears the timeout.
        sim.run(|m, now| m.opened(now));
        sim.m.event(sim.now + 1, None, false);
        assert!(sim.m.next_wake().is_some_and(|t| t > sim.now + 5000));
    }

    #[test]
    fn intentional_disconnect_never_reconnects() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.opened(now));
        assert_eq!(
            sim.run(|m, now| m.disconnect(now)),
            vec![Close, State(Disconnected)]
        );
        assert_eq!(sim.m.next_wake(), None);
        assert_eq!(
            sim.run(|m, now| m.error(now, Failure::Network)),
            vec![],
            "a late error from the old source is ignored"
        );
        assert_eq!(sim.m.wake(u64::MAX / 2), vec![]);
        // Disconnecting while waiting to retry cancels the retry.
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.error(now, Failure::Network));
        sim.run(|m, now| m.disconnect(now));
        assert_eq!(sim.m.next_wake(), None);
    }

    #[test]
    fn without_auto_reconnect_an_error_is_final() {
        let mut sim = Sim::new(Settings {
            auto_reconnect: false,
            ..settings()
        });
        sim.run(|m, now| m.connect(now));
        assert_eq!(
            sim.run(|m, now| m.error(now, Failure::Network)),
            vec![Close, failed(1), State(Error)]
        );
        assert_eq!(sim.m.next_wake(), None);
    }

    #[test]
    fn each_state_transition_is_reported_exactly_once_in_order() {
        let mut sim = Sim::new(Settings {
            max_retries: 2,
            ..settings()
        });
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.opened(now));
        sim.run(|m, now| m.error(now, Failure::Network));
        sim.wake_next();
        sim.run(|m, now| m.error(now, Failure::Network));
        sim.wake_next();
        sim.run(|m, now| m.error(now, Failure::Network));
        sim.run(|m, now| m.connect(now)); // manual retry after Error
        sim.run(|m, now| m.opened(now));
        sim.run(|m, now| m.disconnect(now));
        assert_eq!(
            sim.states(),
            [
                Connecting,
                Connected,
                Connecting,
                Error,
                Connecting,
                Connected,
                Disconnected
            ]
        );
    }

    #[test]
    fn resumes_from_the_last_event_id() {
        let mut sim = Sim::new(settings());
        sim.m.set_last_event_id(Some("start".into()));
        assert_eq!(
            sim.run(|m, now| m.connect(now))[0],
            Open {
                last_event_id: Some("start".into())
            }
        );
        sim.run(|m, now| m.opened(now));
        sim.m.event(1, Some("a-7"), false);
        sim.m.event(2, None, false); // no id: keeps the last one
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(
            sim.wake_next(),
            vec![Open {
                last_event_id: Some("a-7".into())
            }]
        );
        assert_eq!(
            sim.run(|m, now| m.reconnect(now))[..2],
            [
                Close,
                Open {
                    last_event_id: Some("a-7".into())
                }
            ]
        );
    }

    #[test]
    fn a_server_that_greets_and_closes_runs_out_of_retries() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for _ in 0..5 {
            sim.run(|m, now| m.opened(now));
            sim.now += 5;
            // `connected`, then a heartbeat: alive, but not proof it works.
            sim.m.event(sim.now, None, true);
            sim.m.event(sim.now, None, true);
            sim.run(|m, now| m.error(now, Failure::Network));
            sim.wake_next();
        }
        sim.run(|m, now| m.opened(now));
        sim.m.event(sim.now, None, true);
        sim.run(|m, now| m.error(now, Failure::Network));
        assert_eq!(sim.m.state(), Error);
    }

    #[test]
    fn refusals_that_retrying_cannot_fix_end_at_once() {
        for failure in [Failure::Unauthorized, Failure::Forbidden] {
            let mut sim = Sim::new(settings());
            sim.run(|m, now| m.connect(now));
            assert_eq!(
                sim.run(|m, now| m.error(now, failure)),
                vec![
                    Close,
                    Failed {
                        failure,
                        attempt: 1
                    },
                    State(Error)
                ]
            );
            assert_eq!(sim.m.next_wake(), None);
        }
    }

    #[test]
    fn too_many_requests_waits_at_least_retry_after() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        let busy = Failure::TooManyRequests {
            retry_after_ms: Some(5000),
        };
        sim.run(|m, now| m.error(now, busy));
        assert_eq!(sim.m.next_delay_ms(), Some(5000), "not the 1 s backoff");
        sim.wake_next();
        let soon = Failure::TooManyRequests {
            retry_after_ms: Some(10),
        };
        sim.run(|m, now| m.error(now, soon));
        assert_eq!(sim.m.next_delay_ms(), Some(2000), "the backoff when longer");
        sim.wake_next();
        sim.run(|m, now| m.error(now, Failure::Unavailable));
        assert_eq!(sim.m.state(), Connecting, "503 is worth retrying");
    }

    #[test]
    fn nothing_more_to_say_is_disconnected_for_good() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        assert_eq!(
            sim.run(|m, now| m.done(now)),
            vec![Close, State(Disconnected)]
        );
        assert_eq!(sim.m.next_wake(), None);
        assert_eq!(sim.m.wake(u64::MAX / 2), vec![]);
    }

    #[test]
    fn heartbeats_the_client_cannot_see_are_never_missed() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.opened(now));
        sim.m.server_heartbeats(false, 30_000); // comments, or off
        sim.m.event(sim.now, None, false);
        assert_eq!(sim.m.next_wake(), None, "a quiet stream is not a dead one");
        // Visible ones: the configured expectation (3 × 30 s) stands, on
        // this connection and the next.
        sim.run(|m, now| m.reconnect(now));
        sim.run(|m, now| m.opened(now));
        sim.m.server_heartbeats(true, 30_000);
        sim.m.event(sim.now, None, false);
        assert_eq!(sim.m.next_wake(), Some(sim.now + 90_000));
    }

    #[test]
    fn the_announced_heartbeat_interval_sets_the_timeout() {
        // The app expects 30 s heartbeats; this server sends one every 100 s.
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.opened(now));
        sim.m.server_heartbeats(true, 100_000);
        sim.m.event(sim.now, None, false);
        // Three of its intervals of silence, not three of the app's.
        assert_eq!(sim.m.next_wake(), Some(sim.now + 300_000));
        for _ in 0..10 {
            sim.now += 100_000; // each heartbeat on time
            sim.m.activity(sim.now);
            assert_eq!(sim.run(|m, now| m.wake(now)), vec![]);
        }
        assert_eq!(sim.m.state(), Connected, "one connection all along");
        // A server announcing 5 s heartbeats is watched more closely.
        sim.run(|m, now| m.reconnect(now));
        sim.run(|m, now| m.opened(now));
        sim.m.server_heartbeats(true, 5000);
        assert_eq!(sim.m.next_wake(), Some(sim.now + 15_000));
        // A server announcing none (interval 0) is never missed.
        sim.run(|m, now| m.reconnect(now));
        sim.run(|m, now| m.opened(now));
        sim.m.server_heartbeats(true, 0);
        sim.m.event(sim.now, None, false);
        assert_eq!(sim.m.next_wake(), None);
    }
}
