//! The connection lifecycle as a pure state machine: no browser, no timers,
//! no clock of its own. The browser layer feeds it what happened and the
//! current time, and carries out the [`Action`]s it returns; tests do the same
//! with a fake clock.
//!
//! Decisions that differ from the GoSPA client, each covered by a test:
//! * the browser's own silent retry is not trusted: on any error the
//!   EventSource is closed and the machine reconnects with its own backoff;
//! * a connect timeout turns into a scheduled reconnect (it never cancels one);
//! * when retries run out the EventSource is closed, not left retrying;
//! * the attempt counter resets only after the connection proved healthy
//!   (an event arrived, or it stayed open for one heartbeat interval), so a
//!   server that accepts and drops at once cannot cause an endless fast loop.

use super::backoff::{Backoff, Jitter};

/// Where a connection is, as apps see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SseState {
    /// Opening, or waiting to retry after a failure.
    Connecting,
    /// The stream is open.
    Connected,
    /// Not connected, by choice (initially, or after `disconnect`).
    Disconnected,
    /// Gave up: retries exhausted (or reconnecting disabled).
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

/// What the browser layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a new EventSource (resuming from `last_event_id`, if any).
    Open { last_event_id: Option<String> },
    /// Close the current EventSource.
    Close,
    /// The state changed; tell the app (emitted once per transition).
    State(SseState),
    /// A reconnect is scheduled: failed attempt `attempt`, next try in
    /// `delay_ms`. The state stays `Connecting` meanwhile, so this is how an
    /// app shows "retrying in 4 s".
    RetryScheduled { attempt: u32, delay_ms: u64 },
}

/// The machine's settings (milliseconds throughout).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub auto_reconnect: bool,
    /// 0 means unlimited.
    pub max_retries: u32,
    pub backoff: Backoff,
    /// 0 means no connect timeout.
    pub connect_timeout_ms: u64,
    /// How often the server promises a sign of life.
    pub heartbeat_interval_ms: u64,
    /// Intervals of silence after which the connection counts as dead (0 = never).
    pub missed_heartbeats_limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Nothing open, nothing scheduled.
    Idle,
    /// An EventSource is opening.
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
/// use herald_client::runtime::machine::{Action, Machine, Settings, SseState};
/// use herald_client::runtime::backoff::Backoff;
///
/// let settings = Settings {
///     auto_reconnect: true, max_retries: 5,
///     backoff: Backoff { base_ms: 1000, max_ms: 30_000, multiplier: 2.0, jitter: 0.0 },
///     connect_timeout_ms: 0, heartbeat_interval_ms: 30_000, missed_heartbeats_limit: 3,
/// };
/// let mut m = Machine::new(settings, 1);
/// assert_eq!(m.connect(0), vec![Action::Open { last_event_id: None }, Action::State(SseState::Connecting)]);
/// assert_eq!(m.opened(10), vec![Action::State(SseState::Connected)]);
/// m.event(20, Some("e1-1"));
/// // The stream drops: close, and retry in 1 s.
/// assert_eq!(
///     m.error(30),
///     vec![Action::Close, Action::State(SseState::Connecting), Action::RetryScheduled { attempt: 1, delay_ms: 1000 }]
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
            next_delay_ms: None,
            rng: Jitter::new(seed),
        }
    }

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
                let proven = (!healthy && s.heartbeat_interval_ms > 0)
                    .then(|| since + s.heartbeat_interval_ms);
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

    /// The EventSource fired `open`.
    pub fn opened(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if let Phase::Opening { .. } = self.phase {
            self.phase = Phase::Open {
                since: now,
                last_activity: now,
                healthy: false,
            };
            self.next_delay_ms = None;
            self.set_state(SseState::Connected, &mut out);
        }
        out
    }

    /// An event (of any name) arrived; `id` is its last event id, if any.
    pub fn event(&mut self, now: u64, id: Option<&str>) {
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            self.last_event_id = Some(id.to_owned());
        }
        self.activity(now);
    }

    /// A sign of life without an event (e.g. a `heartbeat`).
    pub fn activity(&mut self, now: u64) {
        if let Phase::Open {
            last_activity,
            healthy,
            ..
        } = &mut self.phase
        {
            *last_activity = now;
            *healthy = true;
            self.attempt = 0;
        }
    }

    /// The server sent `retry: <ms>`: it becomes the base delay.
    pub fn retry_hint(&mut self, millis: u64) {
        self.retry_hint_ms = Some(millis);
    }

    /// The EventSource fired `error` (connect failure or a dropped stream).
    pub fn error(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Opening { .. } | Phase::Open { .. }) {
            out.push(Action::Close);
            self.fail(now, &mut out);
        }
        out
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
                    self.fail(now, &mut out);
                }
            }
            Phase::Open {
                since,
                last_activity,
                healthy,
            } => {
                if self.dead_after().is_some_and(|d| now >= last_activity + d) {
                    out.push(Action::Close);
                    self.fail(now, &mut out);
                } else if !healthy && now >= since + self.settings.heartbeat_interval_ms {
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

    fn dead_after(&self) -> Option<u64> {
        let s = &self.settings;
        (s.missed_heartbeats_limit > 0 && s.heartbeat_interval_ms > 0)
            .then(|| s.heartbeat_interval_ms * u64::from(s.missed_heartbeats_limit))
    }

    fn open(&mut self, now: u64, out: &mut Vec<Action>) {
        self.phase = Phase::Opening { since: now };
        self.next_delay_ms = None;
        out.push(Action::Open {
            last_event_id: self.last_event_id.clone(),
        });
        self.set_state(SseState::Connecting, out);
    }

    /// After a failure (the source is already closed): retry later, or give up.
    fn fail(&mut self, now: u64, out: &mut Vec<Action>) {
        let s = &self.settings;
        self.attempt = self.attempt.saturating_add(1);
        let exhausted = s.max_retries != 0 && self.attempt > s.max_retries;
        if !s.auto_reconnect || exhausted {
            self.phase = Phase::Idle;
            self.next_delay_ms = None;
            self.set_state(SseState::Error, out);
            return;
        }
        let backoff = Backoff {
            base_ms: self.retry_hint_ms.unwrap_or(s.backoff.base_ms),
            ..s.backoff
        };
        let delay = backoff.delay(self.attempt, self.rng.next_f64());
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
            sim.run(|m, now| m.error(now));
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
        sim.run(|m, now| m.error(now));
        assert_eq!(sim.m.next_delay_ms(), Some(100));
        sim.m.retry_hint(700); // a later hint wins again
        sim.wake_next();
        sim.run(|m, now| m.error(now));
        assert_eq!(sim.m.next_delay_ms(), Some(1400));
    }

    #[test]
    fn the_servers_retry_hint_sets_the_base_delay() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        sim.m.retry_hint(250);
        sim.run(|m, now| m.error(now));
        assert_eq!(sim.m.next_delay_ms(), Some(250));
        sim.wake_next();
        sim.run(|m, now| m.error(now));
        assert_eq!(sim.m.next_delay_ms(), Some(500));
    }

    #[test]
    fn exhausting_max_retries_closes_the_source_and_ends_in_error() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for attempt in 1..=5 {
            let delay_ms = 1000 << (attempt - 1);
            assert_eq!(
                sim.run(|m, now| m.error(now)),
                vec![Close, RetryScheduled { attempt, delay_ms }]
            );
            assert_eq!(
                sim.wake_next(),
                vec![Open {
                    last_event_id: None
                }]
            );
        }
        // The sixth failure is one too many.
        assert_eq!(sim.run(|m, now| m.error(now)), vec![Close, State(Error)]);
        assert_eq!(
            sim.m.next_wake(),
            None,
            "nothing may be scheduled after giving up"
        );
        assert_eq!(sim.m.wake(sim.now + 1_000_000), vec![]);
        // A stray error from the closed source changes nothing.
        assert_eq!(sim.m.error(sim.now + 5), vec![]);
        assert_eq!(sim.m.state(), Error);
    }

    #[test]
    fn a_bare_open_does_not_reset_the_attempt_counter() {
        // A server that accepts and drops at once must still run out of retries.
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for _ in 0..5 {
            sim.run(|m, now| m.opened(now));
            sim.now += 5;
            sim.run(|m, now| m.error(now));
            sim.wake_next();
        }
        sim.run(|m, now| m.opened(now));
        sim.run(|m, now| m.error(now));
        assert_eq!(sim.m.state(), Error);
    }

    #[test]
    fn the_counter_resets_after_an_event_or_one_healthy_interval() {
        let mut sim = Sim::new(settings());
        sim.run(|m, now| m.connect(now));
        for _ in 0..3 {
            sim.run(|m, now| m.error(now));
            sim.wake_next();
        }
        assert_eq!(sim.m.attempt(), 3);
        sim.run(|m, now| m.opened(now));
        sim.now += 10;
        sim.m.event(sim.now, Some("e-1"));
        assert_eq!(sim.m.attempt(), 0, "an event proves health");

        sim.run(|m, now| m.error(now));
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
                                 // Nothing for 3 intervals after the last sign of life:
        assert_eq!(sim.m.next_wake(), Some(20_000 + 90_000));
        sim.now = 109_999;
        assert_eq!(sim.run(|m, now| m.wake(now)), vec![]);
        assert_eq!(
            sim.wake_next(),
            vec![
                Close,
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
        sim.m.event(sim.now + 1, None);
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
            sim.run(|m, now| m.error(now)),
            vec![],
            "a late error from the old source is ignored"
        );
        assert_eq!(sim.m.wake(u64::MAX / 2), vec![]);
        // Disconnecting while waiting to retry cancels the retry.
        sim.run(|m, now| m.connect(now));
        sim.run(|m, now| m.error(now));
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
        assert_eq!(sim.run(|m, now| m.error(now)), vec![Close, State(Error)]);
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
        sim.run(|m, now| m.error(now));
        sim.wake_next();
        sim.run(|m, now| m.error(now));
        sim.wake_next();
        sim.run(|m, now| m.error(now));
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
        sim.m.event(1, Some("a-7"));
        sim.m.event(2, None); // no id: keeps the last one
        sim.run(|m, now| m.error(now));
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
}
