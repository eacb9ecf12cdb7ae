//! An incremental, spec-conformant SSE parser.
//!
//! Bytes go in, in any chunking (a chunk may end in the middle of a line, of a
//! CRLF pair, of a UTF-8 sequence or of the BOM); [`Frame`]s come out. It
//! follows the WHATWG HTML "Interpreting an event stream" algorithm:
//!
//! * one leading UTF-8 BOM is skipped (a second one is data);
//! * lines end in `\r\n`, `\n` or `\r`;
//! * a line starting with `:` is a comment; `field: value` drops exactly one
//!   space after the colon; a line without a colon is a field with an empty
//!   value; unknown fields are ignored;
//! * `data` lines are joined with `\n`; an empty line dispatches the event,
//!   unless no data was given; `event` sets the type (default `message`);
//! * `id` sets the last event id unless it contains NUL, and the id persists
//!   across events until the server changes it;
//! * `retry` is honoured only when it is all ASCII digits;
//! * invalid UTF-8 becomes U+FFFD; an event not ended by a blank line when the
//!   stream ends is discarded.
//!
//! Lines are scanned with `memchr`; a line that arrives whole inside one chunk
//! is processed in place without copying, and only a line split across chunks
//! is buffered. Allocation happens per event (its data and name), never per byte.

use std::borrow::Cow;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A dispatched event, as a browser's `MessageEvent` would see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// The event type: the last `event:` field of the block, or `message`.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last event id in force when the event was dispatched (`""` if none).
    pub last_event_id: String,
}

/// What the parser reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An event was dispatched.
    Event(MessageEvent),
    /// The server set the reconnection delay (milliseconds).
    Retry(u64),
    /// A comment line (heartbeats are comments); browsers never see these, but
    /// a native client uses them as a sign of life.
    Comment(String),
}

/// The incremental parser. One per connection; see [`Parser::with_last_event_id`]
/// to carry the id over a reconnect.
///
/// ```
/// use herald_shared::wire::{Frame, Parser};
///
/// let mut parser = Parser::new();
/// let mut frames = Vec::new();
/// parser.feed(b"event: greet\nid: 1\ndata: hel", |f| frames.push(f));
/// parser.feed(b"lo\r\n\r\n", |f| frames.push(f));
/// let Frame::Event(e) = &frames[0] else { panic!("expected an event") };
/// assert_eq!((e.event.as_str(), e.data.as_str(), e.last_event_id.as_str()), ("greet", "hello", "1"));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Parser {
    /// Bytes of a line that started in an earlier chunk.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF in the next one belongs to it.
    after_cr: bool,
    /// How many BOM bytes have been matched at the very start of the stream.
    bom_matched: usize,
    /// The BOM check is over (matched, or the stream started otherwise).
    bom_done: bool,
    data: String,
    event: String,
    last_event_id: String,
}

impl Parser {
    /// A parser for a new stream with no last event id.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser for a resumed stream: events that carry no `id:` report `id`.
    pub fn with_last_event_id(id: impl Into<String>) -> Self {
        Self {
            last_event_id: id.into(),
            ..Self::default()
        }
    }

    /// The last event id seen so far: what a client sends as `Last-Event-ID`
    /// when it reconnects.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Feeds the next chunk of the stream, calling `on` for each frame it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut on: impl FnMut(Frame)) {
        if !self.bom_done {
            while self.bom_matched < BOM.len() {
                match chunk.first() {
                    None => return, // still undecided: wait for more bytes
                    Some(&b) if b == BOM[self.bom_matched] => {
                        self.bom_matched += 1;
                        chunk = &chunk[1..];
                    }
                    Some(_) => {
                        // Not a BOM after all: the bytes matched so far are text.
                        self.line.extend_from_slice(&BOM[..self.bom_matched]);
                        break;
                    }
                }
            }
            self.bom_done = true;
        }

        while !chunk.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                    continue;
                }
            }
            let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) else {
                self.line.extend_from_slice(chunk);
                return;
            };
            self.after_cr = chunk[end] == b'\r';
            if self.line.is_empty() {
                self.process_line(&chunk[..end], &mut on);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.process_line(&line, &mut on);
                line.clear();
                self.line = line; // keep the capacity for the next split line
            }
            chunk = &chunk[end + 1..];
        }
    }

    /// Parses a whole stream at once; a convenience for tests and tools.
    ///
    /// ```
    /// use herald_shared::wire::{Frame, Parser};
    /// let frames = Parser::parse_all(b": hb\ndata: 1\n\n");
    /// assert_eq!(frames.len(), 2);
    /// assert!(matches!(&frames[0], Frame::Comment(c) if c == "hb"));
    /// ```
    pub fn parse_all(bytes: &[u8]) -> Vec<Frame> {
        let mut frames = Vec::new();
        Parser::new().feed(bytes, |f| frames.push(f));
        frames
    }

    fn process_line(&mut self, line: &[u8], on: &mut impl FnMut(Frame)) {
        if line.is_empty() {
            self.dispatch(on);
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"" => on(Frame::Comment(text(value).into_owned())),
            b"event" => {
                self.event.clear();
                self.event.push_str(&text(value));
            }
            b"data" => {
                self.data.push_str(&text(value));
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            b"id" if !value.contains(&0) => {
                self.last_event_id.clear();
                self.last_event_id.push_str(&text(value));
            }
            // Only all-digit values count; one too large for u64 has no sane meaning.
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                if let Ok(millis) = text(value).parse::<u64>() {
                    on(Frame::Retry(millis));
                }
            }
            _ => {} // unknown fields (and rejected id/retry values) are ignored
        }
    }

    fn dispatch(&mut self, on: &mut impl FnMut(Frame)) {
        if self.data.is_empty() {
            self.event.clear();
            return;
        }
        self.data.pop(); // the trailing '\n' added after the last data line
        let event = if self.event.is_empty() {
            String::from("message")
        } else {
            std::mem::take(&mut self.event)
        };
        on(Frame::Event(MessageEvent {
            event,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        }));
    }
}

/// Decodes a complete field or value. CR, LF and `:` are ASCII, so a complete
/// line never ends inside a multi-byte sequence; anything invalid is replaced
/// by U+FFFD as the spec's UTF-8 decode does.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(frames: &[Frame]) -> Vec<(String, String, String)> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Event(e) => Some((e.event.clone(), e.data.clone(), e.last_event_id.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let stream = b"\xEF\xBB\xBFid: 1\r\nevent: a\r\ndata: x\r\n\r\ndata: \xC3\xA9\r\r: c\n\n";
        let whole = Parser::parse_all(stream);
        let mut parser = Parser::new();
        let mut split = Vec::new();
        for b in stream {
            parser.feed(std::slice::from_ref(b), |f| split.push(f));
        }
        assert_eq!(whole, split);
        assert_eq!(
            events(&whole),
            vec![
                ("a".into(), "x".into(), "1".into()),
                ("message".into(), "é".into(), "1".into())
            ]
        );
    }

    #[test]
    fn partial_bom_is_text() {
        // EF BB then 'd': not a BOM, so the line is "\u{FFFD}data: x" -> unknown field.
        let frames = Parser::parse_all(b"\xEF\xBBdata: x\n\ndata: y\n\n");
        assert_eq!(
            events(&frames),
            vec![("message".into(), "y".into(), "".into())]
        );
    }

    #[test]
    fn resumed_parser_reports_the_carried_id() {
        let mut p = Parser::with_last_event_id("9");
        let mut out = Vec::new();
        p.feed(b"data: a\n\n", |f| out.push(f));
        assert_eq!(
            events(&out),
            vec![("message".into(), "a".into(), "9".into())]
        );
    }

    #[test]
    fn id_only_block_updates_last_event_id_without_dispatch() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.feed(b"id: 5\n\n", |f| out.push(f));
        assert!(out.is_empty());
        assert_eq!(p.last_event_id(), "5");
    }
}
