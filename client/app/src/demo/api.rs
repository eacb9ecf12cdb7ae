//! The demo's small helpers: the runtime's JSON POST, and clock formatting.

pub use herald_client::http::{post_json, Answer};

/// Milliseconds since the epoch, for event times.
pub fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        0.0
    }
}

/// `HH:MM:SS.mmm` (UTC) for a timestamp in ms.
pub fn clock(ms: f64) -> String {
    let total = ms.max(0.0) as u64;
    let (h, m, s, milli) = (
        total / 3_600_000 % 24,
        total / 60_000 % 60,
        total / 1000 % 60,
        total % 1000,
    );
    format!("{h:02}:{m:02}:{s:02}.{milli:03}")
}
