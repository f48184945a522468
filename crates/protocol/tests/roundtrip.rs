//! Encode then decode is the identity (requests, responses, updates,
//! batches, statistics), also when frames arrive back to back.

mod common;

use proptest::prelude::*;
use protocol::{
    decode_batch, decode_request, decode_response, encode_batch, encode_request, encode_response,
    Decoded, Incoming, Limits, NamedField, Update,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_round_trips(request in common::request()) {
        let mut bytes = Vec::new();
        encode_request(&request, &mut bytes);
        prop_assert_eq!(
            decode_request(&bytes, &Limits::default()),
            Ok(Decoded::Complete { value: Incoming::Request(request), consumed: bytes.len() })
        );
    }

    /// Pipelined requests: each decodes from where the previous one ended.
    #[test]
    fn back_to_back_requests_decode_one_at_a_time(
        requests in proptest::collection::vec(common::request(), 1..5)
    ) {
        let mut bytes = Vec::new();
        for request in &requests {
            encode_request(request, &mut bytes);
        }
        let mut at = 0;
        for request in requests {
            let (value, consumed) = decode_request(&bytes[at..], &Limits::default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .complete()
                .ok_or_else(|| TestCaseError::fail("incomplete"))?;
            prop_assert_eq!(value, Incoming::Request(request));
            at += consumed;
        }
        prop_assert_eq!(at, bytes.len());
    }

    #[test]
    fn response_round_trips((command, response) in common::response()) {
        let mut bytes = Vec::new();
        encode_response(&response, &mut bytes);
        prop_assert_eq!(
            decode_response(&bytes, command, &Limits::default()),
            Ok(Decoded::Complete { value: response, consumed: bytes.len() })
        );
    }

    #[test]
    fn update_round_trips(update in common::update()) {
        let mut bytes = Vec::new();
        update.encode(&mut bytes);
        prop_assert_eq!(Update::decode(&bytes, &Limits::default()), Ok(update));
    }

    #[test]
    fn encoded_len_is_the_encoding_length(update in common::update()) {
        let mut bytes = Vec::new();
        update.encode(&mut bytes);
        prop_assert_eq!(update.encoded_len(), bytes.len());
    }

    /// Update requests become the update they propose, and back: the fields
    /// carry over unchanged.
    #[test]
    fn update_requests_carry_their_fields(request in common::request()) {
        let is_update = request.is_update();
        match request.clone().into_update() {
            Ok(update) => {
                prop_assert!(is_update);
                prop_assert!(request.consistency().is_none());
                let tag = match &request {
                    protocol::Request::Confirm { .. } => 1,
                    _ => update.tag(),
                };
                prop_assert_eq!(update.tag(), tag);
            }
            Err(back) => {
                prop_assert!(!is_update);
                prop_assert_eq!(back, request);
            }
        }
    }

    #[test]
    fn batch_round_trips(updates in common::updates()) {
        let mut bytes = Vec::new();
        encode_batch(&updates, &mut bytes);
        prop_assert_eq!(decode_batch(&bytes, &Limits::default()), Ok(updates));
    }

    #[test]
    fn statistics_round_trip(field in common::named_field()) {
        let mut bytes = Vec::new();
        field.encode(&mut bytes);
        prop_assert_eq!(NamedField::decode(&bytes, &Limits::default()), Ok(field));
    }

    /// Floats are their IEEE 754 bits: any 8 bytes, NaNs included, come back
    /// as they were.
    #[test]
    fn float_bits_round_trip(bits in any::<u64>()) {
        let mut bytes = vec![3, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend_from_slice(&bits.to_le_bytes());
        let field = NamedField::decode(&bytes, &Limits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut again = Vec::new();
        field.encode(&mut again);
        prop_assert_eq!(again, bytes);
    }
}
