//! Property: for any events the encoder accepts, parsing the encoded bytes,
//! under any chunking, gives back exactly those events.
//!
//! "Exactly" per the spec's own equivalences, which the model below applies:
//! line endings in data arrive as `\n` (SSE cannot carry a CR); no name (or an
//! empty one) arrives as `message`; the id of an event is the last id sent so
//! far; a block without data dispatches nothing.

use herald_shared::wire::{Event, Frame, MessageEvent, Parser};
use proptest::prelude::*;

fn normalise_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Text that may contain anything, line breaks and NUL included.
fn any_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("(?s)[a-z é\u{2026}:\r\n\0\u{FEFF}]{0,24}").expect("valid regex")
}

/// An event name or id the encoder accepts (no CR/LF; ids also no NUL).
fn single_line(nul_ok: bool) -> impl Strategy<Value = String> {
    let re = if nul_ok {
        "[a-z :\0é-]{0,12}"
    } else {
        "[a-z :é-]{0,12}"
    };
    proptest::string::string_regex(re).expect("valid regex")
}

fn any_event() -> impl Strategy<Value = Event> {
    (
        proptest::option::of(single_line(false)),
        proptest::option::of(single_line(true)),
        proptest::option::of(any_text()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any_text()),
    )
        .prop_map(|(id, event, data, retry, comment)| Event {
            id,
            event,
            data,
            retry,
            comment,
        })
}

/// What a spec-conformant parser must report for these events.
fn model(events: &[Event]) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut last_id = String::new();
    for e in events {
        if let Some(c) = &e.comment {
            for line in normalise_newlines(c).split('\n') {
                frames.push(Frame::Comment(line.to_owned()));
            }
        }
        if let Some(id) = &e.id {
            last_id = id.clone();
        }
        if let Some(ms) = e.retry {
            frames.push(Frame::Retry(ms));
        }
        if let Some(data) = &e.data {
            let name = e
                .event
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "message".into());
            frames.push(Frame::Event(MessageEvent {
                event: name,
                data: normalise_newlines(data),
                last_event_id: last_id.clone(),
            }));
        }
    }
    frames
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_of_encode_is_identity(
        events in proptest::collection::vec(any_event(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for e in &events {
            stream.extend_from_slice(&e.encode().expect("generated events are valid"));
        }
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        at.sort_unstable();
        let mut parser = Parser::new();
        let mut frames = Vec::new();
        let mut start = 0;
        for cut in at.into_iter().chain([stream.len()]) {
            parser.feed(&stream[start..cut], |f| frames.push(f));
            start = cut;
        }
        prop_assert_eq!(frames, model(&events));
    }

    #[test]
    fn names_and_ids_with_line_breaks_are_always_rejected(
        prefix in "[a-z]{0,4}", brk in prop::sample::select(vec!["\r", "\n", "\r\n"]), suffix in "[a-z]{0,4}",
    ) {
        let bad = format!("{prefix}{brk}{suffix}");
        prop_assert!(Event::data("x").event(bad.clone()).encode().is_err());
        prop_assert!(Event::data("x").id(bad).encode().is_err());
    }
}
