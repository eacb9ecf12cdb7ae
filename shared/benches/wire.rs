//! Encode and parse throughput of the wire format, in bytes per second.
//!
//! `cargo bench -p herald-shared --bench wire` (criterion prints MiB/s).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald_shared::wire::{Event, Parser};

/// A realistic notification-sized event (~200 bytes of JSON).
fn sample_event(i: u64) -> Event {
    Event::data(format!(
        r#"{{"id":"n{i}","title":"Build finished","message":"Deployment {i} is live on all nodes","type":"success","timestamp":"2025-01-24T10:00:00Z","userId":"user-42"}}"#
    ))
    .event("notification")
    .id(format!("e1a2b3c4-{i}"))
}

fn encode(c: &mut Criterion) {
    let event = sample_event(12345);
    let size = event.encode().expect("valid").len() as u64;
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(size));
    group.bench_function("notification", |b| b.iter(|| black_box(&event).encode()));
    let multiline = Event::data("line\n".repeat(40)).event("log");
    group.throughput(Throughput::Bytes(
        multiline.encode().expect("valid").len() as u64
    ));
    group.bench_function("multiline_40", |b| {
        b.iter(|| black_box(&multiline).encode())
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut stream = Vec::new();
    for i in 0..1000 {
        stream.extend_from_slice(&sample_event(i).encode().expect("valid"));
        if i % 10 == 0 {
            stream.extend_from_slice(b": heartbeat\n\n");
        }
    }
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for chunk in [16 * 1024, 1500, 64] {
        group.bench_function(format!("chunks_of_{chunk}"), |b| {
            b.iter(|| {
                let mut parser = Parser::new();
                let mut n = 0usize;
                for part in stream.chunks(chunk) {
                    parser.feed(part, |_| n += 1);
                }
                black_box(n)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, parse);
criterion_main!(benches);
