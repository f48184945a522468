//! Spec "Order of lists (a compatibility trap)": Arakoon's server writes some
//! lists reversed and its clients reverse them back. Each test states, from
//! Arakoon's sources, what its server writes, checks our bytes against it
//! written out by hand, and checks that Arakoon's Python client
//! (`ArakoonProtocol.py`), modelled below, reads back the natural order.
//!
//! Python client decoders: `decodeStringListResult` and
//! `decodeStringPairListResult` *prepend* each element read (`retVal[:0] =
//! [x]`); `decodeStringOptionArrayResult` *appends*. The OCaml client's
//! `Llio.input_list` prepends too (and its `multi_get` reverses once more
//! after, because it wrote its keys reversed).

use protocol::{
    decode_request, decode_response, encode_response, Command, Decoded, Incoming, Limits, Reply,
    Request, Response,
};

fn ok_bytes(reply: Reply) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(&Response::Ok(reply), &mut out);
    out
}

fn s(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

fn list(count: u32, items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0, 0, 0, 0];
    out.extend_from_slice(&count.to_le_bytes());
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// Python's reader of string lists: prepends.
fn python_string_list(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut pos = 4; // rc
    let count = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
    pos += 4;
    let mut out = Vec::new();
    for _ in 0..count {
        let n = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += 4;
        out.insert(0, bytes[pos..pos + n].to_vec());
        pos += n;
    }
    out
}

/// Python's reader of pair lists: prepends.
fn python_pair_list(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pos = 4;
    let count = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap());
    pos += 4;
    let read = |pos: &mut usize| {
        let n = u32::from_le_bytes(bytes[*pos..*pos + 4].try_into().unwrap()) as usize;
        *pos += 4;
        let v = bytes[*pos..*pos + n].to_vec();
        *pos += n;
        v
    };
    let mut out = Vec::new();
    for _ in 0..count {
        let k = read(&mut pos);
        let v = read(&mut pos);
        out.insert(0, (k, v));
    }
    out
}

fn keys(names: &[&[u8]]) -> Vec<Vec<u8>> {
    names.iter().map(|k| k.to_vec()).collect()
}

fn decoded(command: Command, bytes: &[u8]) -> Reply {
    match decode_response(bytes, command, &Limits::default()) {
        Ok(Decoded::Complete {
            value: Response::Ok(reply),
            consumed,
        }) if consumed == bytes.len() => reply,
        other => panic!("{other:?}"),
    }
}

/// range: the store returns an ascending array (Tokyo Cabinet's
/// `tcbdbrange`); the server writes it with `output_array_reversed`:
/// descending on the wire.
#[test]
fn range_keys_are_descending_on_the_wire() {
    let ascending = keys(&[b"a", b"b", b"c"]);
    let bytes = ok_bytes(Reply::Range(ascending.clone()));
    assert_eq!(bytes, list(3, &[s(b"c"), s(b"b"), s(b"a")]));
    assert_eq!(python_string_list(&bytes), ascending);
    assert_eq!(decoded(Command::Range, &bytes), Reply::Range(ascending));
}

/// prefix_keys: `fold_range` ascending, prepending each key (a descending
/// list); `output_counted_list` writes it as is: descending on the wire.
#[test]
fn prefix_keys_are_descending_on_the_wire() {
    let ascending = keys(&[b"p1", b"p2"]);
    let bytes = ok_bytes(Reply::PrefixKeys(ascending.clone()));
    assert_eq!(bytes, list(2, &[s(b"p2"), s(b"p1")]));
    assert_eq!(python_string_list(&bytes), ascending);
    assert_eq!(
        decoded(Command::PrefixKeys, &bytes),
        Reply::PrefixKeys(ascending)
    );
}

/// range_entries: `fold_range` ascending, prepending: descending list,
/// written as is: descending on the wire.
#[test]
fn range_entries_are_descending_on_the_wire() {
    let ascending = vec![
        (b"a".to_vec(), b"1".to_vec()),
        (b"b".to_vec(), b"2".to_vec()),
    ];
    let bytes = ok_bytes(Reply::RangeEntries(ascending.clone()));
    assert_eq!(bytes, list(2, &[s(b"b"), s(b"2"), s(b"a"), s(b"1")]));
    assert_eq!(python_pair_list(&bytes), ascending);
    assert_eq!(
        decoded(Command::RangeEntries, &bytes),
        Reply::RangeEntries(ascending)
    );
}

/// rev_range_entries: `fold_rev_range` walks descending, prepending: an
/// ascending list, written as is: ascending on the wire; the client's
/// prepending gives it descending.
#[test]
fn rev_range_entries_are_ascending_on_the_wire() {
    let descending = vec![
        (b"b".to_vec(), b"2".to_vec()),
        (b"a".to_vec(), b"1".to_vec()),
    ];
    let bytes = ok_bytes(Reply::RevRangeEntries(descending.clone()));
    assert_eq!(bytes, list(2, &[s(b"a"), s(b"1"), s(b"b"), s(b"2")]));
    assert_eq!(python_pair_list(&bytes), descending);
    assert_eq!(
        decoded(Command::RevRangeEntries, &bytes),
        Reply::RevRangeEntries(descending)
    );
}

/// multi_get: the server reads the keys with `input_counted_list`
/// (prepending: reversed wire order), looks them up in that order and writes
/// the values with `output_list`: values in *reverse* of the wire's key
/// order. The Python client wrote keys x, y and reads back (prepending)
/// values for x, y.
#[test]
fn multi_get_values_are_reversed_against_the_request_keys() {
    let request = [
        0x11, 0x00, 0xff, 0xb1, 0x00, 2, 0, 0, 0, 1, 0, 0, 0, b'x', 1, 0, 0, 0, b'y',
    ];
    let Ok(Decoded::Complete {
        value: Incoming::Request(Request::MultiGet { keys: got, .. }),
        ..
    }) = decode_request(&request, &Limits::default())
    else {
        panic!("multi_get did not decode");
    };
    assert_eq!(got, keys(&[b"x", b"y"]));
    // The server answers values in the order of `got`.
    let values = keys(&[b"vx", b"vy"]);
    let bytes = ok_bytes(Reply::MultiGet(values.clone()));
    assert_eq!(bytes, list(2, &[s(b"vy"), s(b"vx")]));
    assert_eq!(python_string_list(&bytes), values);
    assert_eq!(decoded(Command::MultiGet, &bytes), Reply::MultiGet(values));
}

/// multi_get_option: same lookup order as multi_get, but the server writes
/// `output_list (List.rev vos)`: values in the wire's key order. The Python
/// client reads them appending.
#[test]
fn multi_get_option_values_follow_the_request_keys() {
    let values = vec![Some(b"vx".to_vec()), None];
    let bytes = ok_bytes(Reply::MultiGetOption(values.clone()));
    let mut expected = vec![0, 0, 0, 0, 2, 0, 0, 0, 1];
    expected.extend_from_slice(&s(b"vx"));
    expected.push(0);
    assert_eq!(bytes, expected);
    assert_eq!(
        decoded(Command::MultiGetOption, &bytes),
        Reply::MultiGetOption(values)
    );
}

/// A sequence keeps its order on the wire (`update.ml`: `to_buffer` writes
/// in order, `from_buffer` reverses its prepended accumulator); so do
/// statistics lists (`named_field_from` reverses its accumulator).
#[test]
fn sequences_keep_their_order() {
    use protocol::Update;
    let updates = vec![
        Update::Delete { key: b"1".to_vec() },
        Update::Delete { key: b"2".to_vec() },
    ];
    let mut out = Vec::new();
    Update::Sequence(updates.clone()).encode(&mut out);
    assert_eq!(
        out,
        [5, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'1', 2, 0, 0, 0, 1, 0, 0, 0, b'2']
    );
    assert_eq!(
        Update::decode(&out, &Limits::default()),
        Ok(Update::Sequence(updates))
    );
}
