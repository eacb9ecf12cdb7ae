//! Parser conformance table.
//!
//! The `wpt_*` cases port the stream texts of the web-platform-tests
//! `eventsource/format-*.htm` files; every expected result was worked out by
//! hand from the WHATWG "Interpreting an event stream" algorithm. The other
//! cases cover corners those files leave implicit.
//!
//! Every case is run three ways: the whole stream in one chunk, one byte at a
//! time, and split in two at every possible position. All must agree.

use herald_shared::wire::{Frame, MessageEvent, Parser};

/// What a case expects the parser to report, in order.
#[derive(Debug)]
enum Want {
    /// (event type, data, last event id)
    Ev(&'static str, &'static str, &'static str),
    Retry(u64),
    Comment(&'static str),
}
use Want::*;

struct Case {
    name: &'static str,
    input: &'static [u8],
    want: &'static [Want],
}

/// A comment longer than any small read buffer.
macro_rules! long {
    () => {
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    };
}
const LONG: &str = long!();

const CASES: &[Case] = &[
    // --- ports of web-platform-tests eventsource/format-*.htm ---
    Case {
        name: "wpt_bom: one leading BOM is skipped, a later one makes an unknown field",
        input: b"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3\n\n",
        want: &[Ev("message", "1", ""), Ev("message", "3", "")],
    },
    Case {
        name: "wpt_bom_2: only the first of two BOMs is skipped",
        input: b"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3\n\n",
        want: &[Ev("message", "2", ""), Ev("message", "3", "")],
    },
    Case {
        name: "wpt_comments: comments of every length and ending are skipped",
        input: concat!(
            "data:1\r:\0\n:\r\ndata:2\n:",
            long!(),
            "\rdata:3\n:data:fail\r:",
            long!(),
            "\ndata:4\n\n"
        )
        .as_bytes(),
        want: &[
            Comment("\0"),
            Comment(""),
            Comment(LONG),
            Comment("data:fail"),
            Comment(LONG),
            Ev("message", "1\n2\n3\n4", ""),
        ],
    },
    Case {
        name: "wpt_data_before_final_empty_line: an unterminated event is never dispatched",
        input: b"retry:1000\ndata:test1\n\nid:test\ndata:test2",
        want: &[Retry(1000), Ev("message", "test1", "")],
    },
    Case {
        name: "wpt_field_data: empty and valueless data lines",
        input: b"data:\n\ndata\ndata\n\ndata:test\n\n",
        want: &[Ev("message", "", ""), Ev("message", "\n", ""), Ev("message", "test", "")],
    },
    Case {
        name: "wpt_field_event: the type applies to one event only",
        input: b"event:test\ndata:x\n\ndata:x\n\n",
        want: &[Ev("test", "x", ""), Ev("message", "x", "")],
    },
    Case {
        name: "wpt_field_event_empty: an empty type means message",
        input: b"event: \ndata:data\n\n",
        want: &[Ev("message", "data", "")],
    },
    Case {
        name: "wpt_field_id: the id persists until changed",
        input: b"id:1\ndata:a\n\ndata:b\n\nid:2\ndata:c\n\n",
        want: &[Ev("message", "a", "1"), Ev("message", "b", "1"), Ev("message", "c", "2")],
    },
    Case {
        name: "wpt_field_id_2: an empty id resets the last event id",
        input: b"id:1\n\ndata:a\n\nid\ndata:b\n\n",
        want: &[Ev("message", "a", "1"), Ev("message", "b", "")],
    },
    Case {
        name: "wpt_field_id_null: an id containing NUL is ignored",
        input: b"id:1\n\nid:2\0x\ndata:a\n\n",
        want: &[Ev("message", "a", "1")],
    },
    Case {
        name: "wpt_field_parsing: names are case-sensitive and exact",
        input: b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n",
        want: &[Ev("message", "\0\n 2\n1\n3\n\n4", "")],
    },
    Case {
        name: "wpt_field_retry: digits with a leading zero",
        input: b"retry:03000\ndata:x\n\n",
        want: &[Retry(3000), Ev("message", "x", "")],
    },
    Case {
        name: "wpt_field_retry_bogus: a non-digit value is ignored",
        input: b"retry:3000\nretry:1000x\ndata:x\n\n",
        want: &[Retry(3000), Ev("message", "x", "")],
    },
    Case {
        name: "wpt_field_retry_empty: an empty retry is ignored",
        input: b"retry\ndata:test\n\n",
        want: &[Ev("message", "test", "")],
    },
    Case {
        name: "wpt_field_unknown: unknown fields and bare text are ignored",
        input: b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n",
        want: &[Comment("thisisacommentyay"), Ev("message", "test\n\ntest", "")],
    },
    Case {
        name: "wpt_leading_space: only one space is stripped, tabs are kept",
        input: b"data:\ttest\rdata: \ndata:test\n\n",
        want: &[Ev("message", "\ttest\n\ntest", "")],
    },
    Case {
        name: "wpt_newlines: CRLF, LF and CR all end lines",
        input: b"data:test\r\ndata\ndata:test\r\n\r\n",
        want: &[Ev("message", "test\n\ntest", "")],
    },
    Case {
        name: "wpt_null_character: NUL is data",
        input: b"data:\0\n\n\n\n",
        want: &[Ev("message", "\0", "")],
    },
    Case {
        name: "wpt_utf_8: multi-byte text survives",
        input: b"data:ok\xE2\x80\xA6\n\n",
        want: &[Ev("message", "ok\u{2026}", "")],
    },
    // --- further corners of the algorithm ---
    Case {
        name: "empty stream",
        input: b"",
        want: &[],
    },
    Case {
        name: "CR-only line endings throughout",
        input: b"event:a\rid:7\rdata:x\r\rdata:y\r\r",
        want: &[Ev("a", "x", "7"), Ev("message", "y", "7")],
    },
    Case {
        name: "a blank line without data dispatches nothing and resets the type",
        input: b"event:ghost\n\ndata:x\n\n",
        want: &[Ev("message", "x", "")],
    },
    Case {
        name: "an id-only block changes the id of later events",
        input: b"id:5\n\ndata:x\n\n",
        want: &[Ev("message", "x", "5")],
    },
    Case {
        name: "invalid UTF-8 becomes U+FFFD",
        input: b"data:a\xFFb\xC3\n\n",
        want: &[Ev("message", "a\u{FFFD}b\u{FFFD}", "")],
    },
    Case {
        name: "retry with one leading space is valid, a trailing space is not",
        input: b"retry: 1500\nretry:2000 \ndata:x\n\n",
        want: &[Retry(1500), Ev("message", "x", "")],
    },
    Case {
        name: "retry too large for u64 is ignored",
        input: b"retry:99999999999999999999999\ndata:x\n\n",
        want: &[Ev("message", "x", "")],
    },
    Case {
        name: "a colon in the value is kept",
        input: b"data: {\"a\":1}\n\n",
        want: &[Ev("message", "{\"a\":1}", "")],
    },
    Case {
        name: "the last event/type field of a block wins",
        input: b"event:a\nevent:b\ndata:x\n\n",
        want: &[Ev("b", "x", "")],
    },
    Case {
        name: "a BOM that is not at the very start is text",
        input: b"data:x\n\n\xEF\xBB\xBFdata:y\n\n",
        want: &[Ev("message", "x", "")],
    },
    Case {
        name: "comment with a leading space has it stripped",
        input: b": heartbeat\n\n",
        want: &[Comment("heartbeat")],
    },
    Case {
        name: "many events in one chunk keep their order",
        input: b"id:1\ndata:a\n\nid:2\ndata:b\n\nid:3\ndata:c\n\n",
        want: &[Ev("message", "a", "1"), Ev("message", "b", "2"), Ev("message", "c", "3")],
    },
];

fn want_frames(want: &[Want]) -> Vec<Frame> {
    want.iter()
        .map(|w| match *w {
            Ev(event, data, id) => Frame::Event(MessageEvent {
                event: event.into(),
                data: data.into(),
                last_event_id: id.into(),
            }),
            Retry(ms) => Frame::Retry(ms),
            Comment(c) => Frame::Comment(c.into()),
        })
        .collect()
}

fn parse_in(chunks: &[&[u8]]) -> Vec<Frame> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |f| out.push(f));
    }
    out
}

#[test]
fn conformance_table() {
    assert!(CASES.len() >= 25, "the issue asks for at least 25 cases");
    for case in CASES {
        let want = want_frames(case.want);
        assert_eq!(parse_in(&[case.input]), want, "whole: {}", case.name);

        let bytes: Vec<&[u8]> = case.input.chunks(1).collect();
        assert_eq!(parse_in(&bytes), want, "byte by byte: {}", case.name);

        for at in 0..=case.input.len() {
            let (a, b) = case.input.split_at(at);
            assert_eq!(parse_in(&[a, b]), want, "split at {at}: {}", case.name);
        }
    }
}
