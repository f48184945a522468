//! Client wire codec benchmarks: encode and decode of the requests a
//! loaded node sees most (`set` and `get` with a 16-byte key and a 100-byte
//! value) and of a `range_entries` answer of 100 such entries, through the
//! stream decoders a server and a client use.
//!
//! Run: `cargo bench -p protocol --bench codec`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use protocol::{
    encode_request, encode_response, Command, Consistency, Decoded, Incoming, Limits, Reply,
    Request, RequestDecoder, Response, ResponseDecoder,
};
use std::hint::black_box;

const KEY_BYTES: usize = 16;
const VALUE_BYTES: usize = 100;
/// Entries in the benchmarked `range_entries` answer.
const RANGE_ENTRIES: usize = 100;

fn key(i: usize) -> Vec<u8> {
    format!("k{:0width$}", i, width = KEY_BYTES - 1).into_bytes()
}

fn set_request() -> Request {
    Request::Set {
        key: key(42),
        value: vec![b'v'; VALUE_BYTES],
    }
}

fn get_request() -> Request {
    Request::Get {
        consistency: Consistency::Consistent,
        key: key(42),
    }
}

fn range_response() -> Response {
    Response::Ok(Reply::RangeEntries(
        (0..RANGE_ENTRIES)
            .map(|i| (key(i), vec![b'v'; VALUE_BYTES]))
            .collect(),
    ))
}

fn encoded_request(request: &Request) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_request(request, &mut buf);
    buf
}

fn requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    for (name, request) in [("set", set_request()), ("get", get_request())] {
        let mut buf = Vec::with_capacity(256);
        group.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                buf.clear();
                encode_request(black_box(&request), &mut buf);
                black_box(buf.len())
            })
        });
        let bytes = encoded_request(&request);
        let mut decoder = RequestDecoder::new(Limits::default());
        group.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| match decoder.decode(black_box(&bytes)) {
                Ok(Decoded::Complete {
                    value: Incoming::Request(request),
                    consumed,
                }) => black_box((request, consumed)),
                other => panic!("the frame decodes whole: {other:?}"),
            })
        });
    }
    group.finish();
}

fn range_entries_response(c: &mut Criterion) {
    let response = range_response();
    let mut bytes = Vec::new();
    encode_response(&response, &mut bytes);
    let mut group = c.benchmark_group("response");
    group.throughput(Throughput::Elements(RANGE_ENTRIES as u64));
    let mut buf = Vec::with_capacity(bytes.len());
    group.bench_function("encode_range_entries_100", |b| {
        b.iter(|| {
            buf.clear();
            encode_response(black_box(&response), &mut buf);
            black_box(buf.len())
        })
    });
    let mut decoder = ResponseDecoder::new(Limits::default());
    group.bench_function("decode_range_entries_100", |b| {
        b.iter(
            || match decoder.decode(black_box(&bytes), Command::RangeEntries) {
                Ok(Decoded::Complete { value, consumed }) => black_box((value, consumed)),
                other => panic!("the frame decodes whole: {other:?}"),
            },
        )
    });
    group.finish();
}

criterion_group!(benches, requests, range_entries_response);
criterion_main!(benches);
