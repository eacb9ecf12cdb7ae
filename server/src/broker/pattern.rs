//! Topic patterns of the `subscribe` / `publish` claims, Mercure-style:
//! `*` matches any run of characters (including none, and `:` or `/`);
//! everything else matches itself.

/// Whether `topic` matches `pattern`.
///
/// ```
/// use herald_server::broker::pattern::topic_matches;
/// assert!(topic_matches("room:*", "room:general"));
/// assert!(topic_matches("*", "anything/at:all"));
/// assert!(topic_matches("job:*:progress", "job:42:progress"));
/// assert!(!topic_matches("room:*", "rooms:general"));
/// assert!(!topic_matches("room:general", "room:general2"));
/// ```
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), topic.as_bytes());
    // Iterative glob match with backtracking to the last `*` (linear time
    // for a single star, never exponential).
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether any of `patterns` matches `topic`.
pub fn any_matches(patterns: &[String], topic: &str) -> bool {
    patterns.iter().any(|p| topic_matches(p, topic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_corners() {
        for (p, t, want) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("**", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*:*", "room:x", true),
            ("*:*", "room", false),
            ("user:*", "user:", true),
            ("a*b*c", "aXbYbZc", true),
        ] {
            assert_eq!(topic_matches(p, t), want, "{p:?} ~ {t:?}");
        }
    }

    #[test]
    fn a_hostile_pattern_stays_fast() {
        let topic = "a".repeat(10_000);
        let pattern = format!("{}b", "*a".repeat(50));
        assert!(!topic_matches(&pattern, &topic));
    }
}
