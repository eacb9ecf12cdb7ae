//! Any bytes, in any chunking: the parser never panics, and chunking never
//! changes what it reports.
#![no_main]

use herald_shared::wire::Parser;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    // The first byte picks a chunk size, the rest is the stream.
    let Some((&size, stream)) = input.split_first() else { return };
    let whole = Parser::parse_all(stream);
    let mut parser = Parser::new();
    let mut chunked = Vec::new();
    for chunk in stream.chunks(usize::from(size).max(1)) {
        parser.feed(chunk, |f| chunked.push(f));
    }
    assert_eq!(whole, chunked);
});
