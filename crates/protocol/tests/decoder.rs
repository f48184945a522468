//! The per-connection decoders (`RequestDecoder`, `ResponseDecoder`) resume
//! list walks between calls; whatever the chunking, each call must answer
//! exactly what the stateless decoder answers for the same bytes.

mod common;

use proptest::prelude::*;
use protocol::{
    decode_request, decode_response, encode_request, encode_response, Decoded, Limits,
    RequestDecoder, ResponseDecoder,
};

/// Growing prefixes of `bytes`, cut at `cuts` (sorted, deduplicated), then
/// the whole.
fn prefixes(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<usize> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    ends.push(bytes.len());
    ends.sort_unstable();
    ends.dedup();
    ends
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_decoder_agrees_with_the_stateless_decoder(
        requests in proptest::collection::vec(common::request(), 1..3),
        garbage in proptest::collection::vec(any::<u8>(), 0..16),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut bytes = Vec::new();
        for request in &requests {
            encode_request(request, &mut bytes);
        }
        bytes.extend_from_slice(&garbage);
        let limits = Limits::default();
        let mut decoder = RequestDecoder::new(limits);
        let mut start = 0;
        for end in prefixes(&bytes, &cuts) {
            loop {
                if end < start {
                    break;
                }
                let buf = &bytes[start..end];
                let got = decoder.decode(buf);
                prop_assert_eq!(&got, &decode_request(buf, &limits));
                match got {
                    Ok(Decoded::Complete { consumed, .. }) => start += consumed,
                    Ok(Decoded::Incomplete { .. }) => break,
                    Err(_) => return Ok(()),
                }
            }
        }
    }

    #[test]
    fn response_decoder_agrees_with_the_stateless_decoder(
        (command, response) in common::response(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut bytes = Vec::new();
        encode_response(&response, &mut bytes);
        let limits = Limits::default();
        let mut decoder = ResponseDecoder::new(limits);
        for end in prefixes(&bytes, &cuts) {
            let buf = &bytes[..end];
            prop_assert_eq!(decoder.decode(buf, command), decode_response(buf, command, &limits));
        }
    }
}

/// A multi_get of many keys arriving a few bytes at a time: the decoder
/// resumes the key list and still returns the whole request.
#[test]
fn multi_get_in_small_pieces() {
    let keys: Vec<Vec<u8>> = (0..2_000u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let request = protocol::Request::MultiGet {
        consistency: protocol::Consistency::NoGuarantee,
        keys,
    };
    let mut bytes = Vec::new();
    encode_request(&request, &mut bytes);
    let mut decoder = RequestDecoder::new(Limits::default());
    let mut have = 0;
    let result = loop {
        have = (have + 7).min(bytes.len());
        match decoder.decode(&bytes[..have]) {
            Ok(Decoded::Complete { value, consumed }) => break (value, consumed),
            Ok(Decoded::Incomplete { needed }) => assert!(needed > have && needed <= bytes.len()),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(result, (protocol::Incoming::Request(request), bytes.len()));
}
