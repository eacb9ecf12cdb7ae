//! The SSE encoder: one [`Event`] in, the exact bytes of one event block out.
//!
//! Rules follow the WHATWG HTML "Server-sent events" section:
//!
//! * `data` may hold any text. Every line ending in it (`\n`, `\r\n` or a lone
//!   `\r`) starts a new `data:` line, because the parser re-joins `data:` lines
//!   with `\n`. (An SSE stream cannot carry a CR inside data: line endings are
//!   normalised to `\n`, which is what every browser would see anyway.)
//! * `event` and `id` are single-line fields. A CR or LF in them would let a
//!   publisher inject extra fields (`id: 1\ndata: forged`), so they are
//!   rejected with a typed error and nothing is written. An `id` containing
//!   NUL is rejected too: browsers silently ignore such an id, which would
//!   break resume.
//! * Comments (`: text`) carry heartbeats; each line of a multi-line comment
//!   gets its own `:` so it can never turn into a field.
//!
//! Encoding validates first and writes second, so a failed encode leaves the
//! output buffer untouched.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// One server-sent event, before encoding.
///
/// `data: None` writes no `data:` line at all, so the block dispatches nothing
/// in a browser: that is how a pure comment (heartbeat), a bare `retry:` hint
/// or an id-only block is expressed. `data: Some(String::new())` is a real
/// event whose data is the empty string.
///
/// ```
/// use herald_shared::wire::Event;
///
/// let bytes = Event::data("hello\nworld").event("greeting").id("7").encode().unwrap();
/// assert_eq!(&bytes[..], b"event: greeting\nid: 7\ndata: hello\ndata: world\n\n");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `id:` field: becomes the client's last event id.
    pub id: Option<String>,
    /// The `event:` field (the event type). `None` means the default, `message`.
    pub event: Option<String>,
    /// The payload. `None` writes no `data:` line (nothing is dispatched).
    pub data: Option<String>,
    /// The `retry:` field: the client's reconnection delay in milliseconds.
    pub retry: Option<u64>,
    /// A comment, written before the fields (`: text`).
    pub comment: Option<String>,
}

/// Why an [`Event`] could not be encoded. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The event name contains CR or LF, which would inject fields.
    #[error("event name must not contain CR or LF")]
    InvalidEventName,
    /// The id contains CR, LF or NUL.
    #[error("event id must not contain CR, LF or NUL")]
    InvalidId,
}

impl Event {
    /// An event carrying `data`, with no name (a browser's `onmessage`).
    pub fn data(data: impl Into<String>) -> Self {
        Self {
            data: Some(data.into()),
            ..Self::default()
        }
    }

    /// A comment-only block, e.g. a heartbeat. Browsers dispatch nothing for it,
    /// but it keeps proxies and idle timers from closing the connection.
    ///
    /// ```
    /// use herald_shared::wire::Event;
    /// assert_eq!(&Event::comment("keep-alive").encode().unwrap()[..], b": keep-alive\n\n");
    /// ```
    pub fn comment(text: impl Into<String>) -> Self {
        Self {
            comment: Some(text.into()),
            ..Self::default()
        }
    }

    /// A `retry:`-only block: tells the client how long to wait before reconnecting.
    pub fn retry_hint(millis: u64) -> Self {
        Self {
            retry: Some(millis),
            ..Self::default()
        }
    }

    /// Sets the event name.
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the retry hint in milliseconds.
    pub fn retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// Checks the single-line fields without writing anything.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if let Some(name) = &self.event {
            if name.contains(['\r', '\n']) {
                return Err(EncodeError::InvalidEventName);
            }
        }
        if let Some(id) = &self.id {
            if id.contains(['\r', '\n', '\0']) {
                return Err(EncodeError::InvalidId);
            }
        }
        Ok(())
    }

    /// An upper bound of the encoded size, so one allocation suffices.
    fn size_hint(&self) -> usize {
        let field = |v: &Option<String>| v.as_ref().map_or(0, |s| s.len() + 8);
        // Each data line costs "data: " + "\n"; count lines cheaply as len/8 + 1
        // is wrong for long lines, so use the exact newline count instead.
        let data = self.data.as_ref().map_or(0, |d| {
            let lines = 1 + memchr::memchr2_iter(b'\n', b'\r', d.as_bytes()).count();
            d.len() + lines * 7
        });
        let comment = self.comment.as_ref().map_or(0, |c| {
            let lines = 1 + memchr::memchr2_iter(b'\n', b'\r', c.as_bytes()).count();
            c.len() + lines * 3
        });
        field(&self.event) + field(&self.id) + data + comment + self.retry.map_or(0, |_| 28) + 1
    }

    /// Encodes into a fresh, shareable buffer. Encode once, then clone the
    /// [`Bytes`] (a reference-count bump) for every subscriber.
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut buf = BytesMut::with_capacity(self.size_hint());
        self.encode_into(&mut buf)?;
        Ok(buf.freeze())
    }

    /// Appends the encoded block to `buf`. On error `buf` is unchanged.
    pub fn encode_into(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        self.validate()?;
        buf.reserve(self.size_hint());
        if let Some(comment) = &self.comment {
            for line in split_lines(comment) {
                buf.put_slice(b": ");
                buf.put_slice(line.as_bytes());
                buf.put_u8(b'\n');
            }
        }
        if let Some(name) = &self.event {
            put_field(buf, b"event", name);
        }
        if let Some(id) = &self.id {
            put_field(buf, b"id", id);
        }
        if let Some(retry) = self.retry {
            put_field(buf, b"retry", &retry.to_string());
        }
        if let Some(data) = &self.data {
            for line in split_lines(data) {
                put_field(buf, b"data", line);
            }
        }
        buf.put_u8(b'\n');
        Ok(())
    }
}

/// Writes `name: value\n`. The space after the colon is always written: the
/// parser strips exactly one leading space, so a value that itself starts
/// with a space survives the round trip.
fn put_field(buf: &mut BytesMut, name: &[u8], value: &str) {
    buf.put_slice(name);
    buf.put_slice(b": ");
    buf.put_slice(value.as_bytes());
    buf.put_u8(b'\n');
}

/// Splits on `\r\n`, `\r` or `\n`, as the SSE parser does. Always yields at
/// least one (possibly empty) line, so `""` still produces one `data:` line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr2(b'\n', b'\r', current.as_bytes()) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current.as_bytes()[at] == b'\r'
                    && current.as_bytes().get(at + 1) == Some(&b'\n')
                {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: &Event) -> String {
        String::from_utf8(e.encode().expect("valid event").to_vec()).expect("utf-8")
    }

    #[test]
    fn plain_data() {
        assert_eq!(enc(&Event::data("hi")), "data: hi\n\n");
    }

    #[test]
    fn empty_data_still_writes_one_line() {
        assert_eq!(enc(&Event::data("")), "data: \n\n");
    }

    #[test]
    fn every_kind_of_line_ending_splits_data() {
        assert_eq!(
            enc(&Event::data("a\nb\r\nc\rd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(enc(&Event::data("a\n")), "data: a\ndata: \n\n");
    }

    #[test]
    fn all_fields_in_order() {
        let e = Event {
            id: Some("42".into()),
            event: Some("update".into()),
            data: Some("{}".into()),
            retry: Some(1500),
            comment: Some("hello".into()),
        };
        assert_eq!(
            enc(&e),
            ": hello\nevent: update\nid: 42\nretry: 1500\ndata: {}\n\n"
        );
    }

    #[test]
    fn multi_line_comment_cannot_become_a_field() {
        assert_eq!(
            enc(&Event::comment("a\ndata: forged")),
            ": a\n: data: forged\n\n"
        );
    }

    #[test]
    fn injection_through_name_or_id_is_rejected_and_nothing_written() {
        let mut buf = BytesMut::from(&b"keep"[..]);
        for bad in ["a\nb", "a\rb", "\n"] {
            let e = Event::data("x").event(bad);
            assert_eq!(e.encode_into(&mut buf), Err(EncodeError::InvalidEventName));
        }
        for bad in ["1\ndata: forged", "1\r", "1\0"] {
            let e = Event::data("x").id(bad);
            assert_eq!(e.encode_into(&mut buf), Err(EncodeError::InvalidId));
        }
        assert_eq!(&buf[..], b"keep");
    }

    #[test]
    fn nul_is_allowed_in_event_names_and_data() {
        assert_eq!(
            enc(&Event::data("a\0b").event("n\0")),
            "event: n\0\ndata: a\0b\n\n"
        );
    }

    #[test]
    fn size_hint_is_an_upper_bound() {
        let e = Event {
            id: Some("1".into()),
            event: Some("e".into()),
            data: Some("\n\n\r\n\r".into()),
            retry: Some(u64::MAX),
            comment: Some("\r\r".into()),
        };
        assert!(e.encode().expect("valid").len() <= e.size_hint());
    }
}
