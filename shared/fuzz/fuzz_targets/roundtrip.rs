//! Any event the encoder accepts parses back to itself (see tests/roundtrip.rs
//! for the spec's equivalences); anything it rejects writes nothing.
#![no_main]

use herald_shared::wire::{Event, Frame, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Option<String>, Option<String>, String, Option<u64>)| {
    let (id, name, data, retry) = input;
    let event = Event { id: id.clone(), event: name.clone(), data: Some(data.clone()), retry, comment: None };
    let Ok(bytes) = event.encode() else {
        let bad = |s: &Option<String>, nul: bool| {
            s.as_deref().is_some_and(|s| s.contains(['\r', '\n']) || (nul && s.contains('\0')))
        };
        assert!(bad(&name, false) || bad(&id, true), "rejected a valid event");
        return;
    };
    let frames = Parser::parse_all(&bytes);
    let Some(Frame::Event(got)) = frames.last() else { panic!("no event dispatched") };
    assert_eq!(got.data, data.replace("\r\n", "\n").replace('\r', "\n"));
    assert_eq!(got.last_event_id, id.unwrap_or_default());
    let want_name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| "message".into());
    assert_eq!(got.event, want_name);
});
