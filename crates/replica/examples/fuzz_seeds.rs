//! Writes the seed corpora of the fuzz targets (`fuzz/`): valid inputs of
//! each decoder, made by this code's own encoders, so that libFuzzer starts
//! from the real formats. `cargo run -p replica --example fuzz_seeds -- fuzz/corpus`
//! (run again when a format changes; the files are committed).

use bytes::Bytes;
use consensus::NodeId;
use disk::SimDisk;
use protocol::{encode_prologue, encode_request, Request, Update};
use replica::{AckStatus, SnapshotMessage};
use std::path::{Path, PathBuf};

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: fuzz_seeds DIR")?);

    // Client requests: a prologue, then requests back to back.
    let requests = [
        Request::WhoMaster,
        Request::Set {
            key: b"key".to_vec(),
            value: b"value".to_vec(),
        },
        Request::Delete {
            key: b"key".to_vec(),
        },
        Request::Sequence {
            updates: vec![
                Update::Set {
                    key: b"a".to_vec(),
                    value: b"1".to_vec(),
                },
                Update::Delete { key: b"b".to_vec() },
            ],
        },
        Request::Statistics,
        Request::CollapseTlogs { tlogs_to_keep: 3 },
    ];
    let mut stream = Vec::new();
    encode_prologue(b"ricky", &mut stream);
    for (n, request) in requests.iter().enumerate() {
        let mut one = Vec::new();
        encode_request(request, &mut one);
        write(&out, "client_request", &format!("request-{n}"), &one)?;
        stream.extend_from_slice(&one);
    }
    write(&out, "client_request", "prologue-and-requests", &stream)?;

    // Peer messages: snapshot transfer messages.
    let snapshot_messages = [
        SnapshotMessage::Chunk {
            from: NodeId(0),
            to: NodeId(1),
            transfer: 1,
            index: 100,
            term: 2,
            seq: 0,
            pairs_sent: 2,
            pairs_total: 4,
            crc: 0x1234_5678,
            bytes: Bytes::from_static(b"some frames"),
        },
        SnapshotMessage::End {
            from: NodeId(0),
            to: NodeId(1),
            transfer: 1,
            seq: 1,
            total_bytes: 11,
            total_crc: 7,
        },
        SnapshotMessage::Ack {
            from: NodeId(1),
            to: NodeId(0),
            transfer: 1,
            next: 1,
            status: AckStatus::Receiving,
        },
    ];
    for (n, m) in snapshot_messages.iter().enumerate() {
        write(
            &out,
            "peer_message",
            &format!("snapshot-{n}"),
            &replica::peer::encode_snapshot(m),
        )?;
    }

    // Tlog segments: one sealed (lz4) and one plain, from a real tlog.
    let disk = SimDisk::new();
    let dir = PathBuf::from("/n/tlog");
    let options = tlog::TlogOptions {
        max_entries: 20,
        max_size: 1 << 16,
        compression: tlog::Compression::Lz4,
    };
    let mut log = tlog::Tlog::open(disk.shared(), dir.clone(), options)?;
    let entries: Vec<tlog::Entry> = (1..=30)
        .map(|index| {
            let mut payload = Vec::new();
            protocol::encode_batch(
                &[Update::Set {
                    key: format!("k{index}").into_bytes(),
                    value: vec![b'v'; 8],
                }],
                &mut payload,
            );
            tlog::Entry {
                index,
                term: 1,
                payload,
            }
        })
        .collect();
    log.append(&entries)?;
    log.sync()?;
    while log.seal_pending()? > 0 {}
    for name in disk.shared().list(&dir)? {
        if name.ends_with(".tlog") || name.ends_with(".tlz") {
            let bytes = disk::read_all(&*disk.shared(), &dir.join(&name))?;
            // Plain segments are preallocated: keep the frames and a few zeros.
            let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |e| e + 1);
            let kind = if name.ends_with(".tlz") {
                "sealed"
            } else {
                "plain"
            };
            write(
                &out,
                "tlog_segment",
                kind,
                &bytes[..(end + 8).min(bytes.len())],
            )?;
        }
    }

    // A store snapshot stream.
    let store = store::Store::open(
        disk.shared(),
        Path::new("/n/store.db"),
        &store::StoreOptions::default(),
    )?;
    store.apply(
        1,
        &[
            Update::Set {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
            },
            Update::Set {
                key: b"b".to_vec(),
                value: vec![7; 100],
            },
        ],
    )?;
    let mut snapshot = Vec::new();
    store.export()?.write_to(&mut snapshot)?;
    write(&out, "snapshot_stream", "two-pairs", &snapshot)?;

    // Config files.
    let quickstart = "[global]\ncluster = arakoon_0, arakoon_1, arakoon_2\ncluster_id = ricky\n\n\
        [arakoon_0]\nip = 127.0.0.1\nclient_port = 4000\nmessaging_port = 4010\nhome = /tmp/a0\nlog_level = info\n\n\
        [arakoon_1]\nip = 127.0.0.1\nclient_port = 4001\nmessaging_port = 4011\nhome = /tmp/a1\nlog_level = info\n\n\
        [arakoon_2]\nip = 127.0.0.1\nclient_port = 4002\nmessaging_port = 4012\nhome = /tmp/a2\nlog_level = info\n";
    write(&out, "config_text", "quickstart.ini", quickstart.as_bytes())?;
    let rich = format!(
        "{quickstart}\n[learner_0]\nip = 127.0.0.1 127.0.0.2\nclient_port = 0xfa3\nmessaging_port = 4013\n\
         home = /tmp/l0\nlog_level = debug\nlearner = true\nlog_config = lc\nlog_sinks = console:, file:///tmp/l.log\n\
         fsync_interval = 0.5\nbatched_transaction_config = btc\n\n[lc]\npaxos = debug\n\n[btc]\nmax_entries = 100\nmax_size = 0x10000\n"
    );
    write(&out, "config_text", "rich.ini", rich.as_bytes())?;
    println!("seeds written under {}", out.display());
    Ok(())
}
