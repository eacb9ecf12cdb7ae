//! Random tokens: client ids, secrets, session and job ids.

use std::fmt::Write;

/// A lowercase hex token of `bytes` random bytes.
///
/// ```
/// let t = herald_server::random::token(8);
/// assert_eq!(t.len(), 16);
/// assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
/// ```
pub fn token(bytes: usize) -> String {
    (0..bytes).fold(String::with_capacity(bytes * 2), |mut s, _| {
        let _ = write!(s, "{:02x}", rand::random::<u8>());
        s
    })
}
