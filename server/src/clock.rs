//! Wall-clock timestamps for event payloads (RFC 3339, UTC, millisecond
//! precision), without pulling in a date library for one format.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as `2025-01-24T10:00:05.123Z`.
pub fn now_rfc3339() -> String {
    format_unix_millis(unix_ms() as i64)
}

/// Now, in milliseconds since the Unix epoch (0 before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Now, in seconds since the Unix epoch (0 before it).
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC.
///
/// ```
/// assert_eq!(herald_server::clock::format_unix_millis(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(herald_server::clock::format_unix_millis(1_737_712_805_123), "2025-01-24T10:00:05.123Z");
/// ```
pub fn format_unix_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_days_and_century_rules() {
        assert_eq!(
            format_unix_millis(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_unix_millis(4_107_542_400_000),
            "2100-03-01T00:00:00.000Z"
        );
        assert_eq!(format_unix_millis(-1), "1969-12-31T23:59:59.999Z");
    }
}
