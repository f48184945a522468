//! `fuzzing`: one function per decoder of input from outside (the network,
//! the disk, the operator), each taking arbitrary bytes. A function returns
//! normally on any input; a panic is a bug: either a decoder that panics
//! instead of refusing, or one of the properties asserted here (what the
//! decoders promise on top of "no panic").
//!
//! Run three ways: by `fuzz/` (cargo-fuzz, coverage-guided, nightly; the
//! long runs), and in CI by `tests/corpus.rs` (every committed corpus file,
//! then random and mutated bytes with proptest).

#![forbid(unsafe_code)]

use consensus::DecodeLimits;
use disk::{OpenMode, SimDisk};
use protocol::{decode_prologue, Decoded, Limits, RequestDecoder};
use replica::PeerMessage;
use std::ops::ControlFlow;
use std::path::Path;

/// A target: arbitrary bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// The targets by name (the names of `fuzz/fuzz_targets/*.rs` and of the
/// corpus directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("client_request", client_request),
    ("peer_message", peer_message),
    ("tlog_segment", tlog_segment),
    ("snapshot_stream", snapshot_stream),
    ("config_text", config_text),
];

/// The node's client protocol decoder: the prologue, then requests fed as
/// a connection feeds them (growing prefixes, as far as the decoder asks).
/// The decoder never asks for fewer bytes than it has, and a complete
/// request consumes at least one byte and at most what it was given.
pub fn client_request(data: &[u8]) {
    let limits = Limits {
        max_buffer_size: 1 << 20,
        ..Limits::default()
    };
    let _ = decode_prologue(data, &limits);
    let mut decoder = RequestDecoder::new(limits);
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let mut end = 1;
        loop {
            match decoder.decode(&rest[..end]) {
                Ok(Decoded::Incomplete { needed }) => {
                    assert!(needed > end, "asked for {needed} bytes with {end} in hand");
                    if needed > rest.len() {
                        return;
                    }
                    end = needed;
                }
                Ok(Decoded::Complete { consumed, .. }) => {
                    assert!(
                        consumed > 0 && consumed <= end,
                        "consumed {consumed} of {end}"
                    );
                    at += consumed;
                    break;
                }
                Err(_) => return,
            }
        }
    }
}

/// Node-to-node messages: the consensus codec, and the peer envelope over
/// it (consensus messages, store snapshot transfer); a snapshot message
/// that decodes re-encodes to the same bytes (one encoding per message).
pub fn peer_message(data: &[u8]) {
    let limits = DecodeLimits {
        max_message_bytes: 1 << 20,
        max_entries: 1024,
        max_payload_bytes: 1 << 18,
    };
    let _ = consensus::decode(data, &limits);
    if let Ok(PeerMessage::Snapshot(m)) = replica::peer::decode(data, &limits) {
        assert_eq!(replica::peer::encode_snapshot(&m), data);
    }
}

/// The tlog reader on a damaged disk: the bytes are one segment file
/// (named plain and sealed in turn), walked by the offline reader and
/// opened by `Tlog::open` (recovery cuts a torn tail, refuses damage).
pub fn tlog_segment(data: &[u8]) {
    for name in [
        "00000000-00000000000000000001.tlog",
        "00000000-00000000000000000001.tlz",
    ] {
        let disk = SimDisk::new();
        let shared = disk.shared();
        let dir = Path::new("/n");
        shared
            .create_dir_all(dir)
            .expect("sim disk: create a directory");
        let path = dir.join(name);
        let file = shared
            .open(&path, OpenMode::Create)
            .expect("sim disk: create");
        file.write_all_at(0, data).expect("sim disk: write");
        file.sync_data().expect("sim disk: sync");
        drop(file);
        let _ =
            tlog::offline::walk_segment_file(&*shared, &path, |_, _, _| ControlFlow::Continue(()));
        let options = tlog::TlogOptions {
            max_entries: 100,
            max_size: 1 << 16,
            compression: tlog::Compression::Lz4,
        };
        if let Ok(log) = tlog::Tlog::open(shared, dir.to_path_buf(), options) {
            assert!(log.first_index() <= log.last_index() + 1);
        }
    }
}

/// The store's snapshot reader (what a node installs from its master): a
/// stream is imported whole or refused, and a refused one leaves nothing.
pub fn snapshot_stream(data: &[u8]) {
    let disk = SimDisk::new();
    let store = store::Store::open(
        disk.shared(),
        Path::new("/n/store.db"),
        &store::StoreOptions::default(),
    )
    .expect("a new store on the sim disk");
    let mut reader = data;
    if store.import(&mut reader).is_err() {
        assert_eq!(store.applied_index(), 0, "a refused snapshot left an index");
    }
}

/// The cluster config parser: any text is a config (with at least one
/// voter) or an error.
pub fn config_text(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(loaded) = config::parse(text) {
            assert!(loaded.config.voters().count() >= 1);
        }
    }
}
