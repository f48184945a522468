//! `protocol`: Arakoon's client wire format, byte for byte
//! (`shared/spec/arakoon-protocol.md`, and `docs/protocol.md` for what we
//! implement and every deliberate difference), and the update vocabulary that
//! the store applies and the tlog records. Pure encode/decode: no IO, no
//! clock, no threads.
//!
//! # What a server calls
//!
//! ```
//! use protocol::{decode_prologue, encode_response, Decoded, Incoming, Limits, Reply, Request,
//!                RequestDecoder, Response};
//! let limits = Limits::default();
//! // Bytes as they arrived on the socket: the prologue, then a `who_master`.
//! let mut buf = Vec::new();
//! protocol::encode_prologue(b"arakoon", &mut buf);
//! protocol::encode_request(&Request::WhoMaster, &mut buf);
//!
//! let Decoded::Complete { value: prologue, consumed } = decode_prologue(&buf, &limits)? else {
//!     unreachable!("read more bytes and try again");
//! };
//! assert_eq!(prologue.cluster_id, b"arakoon");
//! let buf = &buf[consumed..];
//! let mut decoder = RequestDecoder::new(limits); // one per connection
//! match decoder.decode(buf)? {
//!     Decoded::Incomplete { needed } => { /* read until buf.len() >= needed, retry */ }
//!     Decoded::Complete { value: Incoming::Request(Request::WhoMaster), consumed } => {
//!         let mut out = Vec::new();
//!         encode_response(&Response::Ok(Reply::WhoMaster(Some(b"node_0".to_vec()))), &mut out);
//!         assert_eq!(consumed, 4);
//!     }
//!     Decoded::Complete { .. } => unreachable!(),
//! }
//! # Ok::<(), protocol::ProtocolError>(())
//! ```
//!
//! A decode error (`Err(ProtocolError)`) means the stream cannot be read any
//! further: answer [`ProtocolError::to_error_response`] and close. An
//! [`Incoming::Rejected`] request was consumed whole (the stream is still in
//! step): answer its error and go on. An [`Incoming::Unsupported`] command is
//! answered with its [`Unsupported::error_response`]; close afterwards unless
//! `stream_in_sync`. A server that calls [`RequestDecoder::next`] instead of
//! [`RequestDecoder::decode`] is also asked to drop a request string too
//! large for `max_buffer_size` from the stream ([`Step::Discard`]); the
//! request then comes back [`Incoming::Rejected`] (`E_BAD_INPUT`), as
//! Arakoon answers it, with the connection kept.
//!
//! # What a client calls
//!
//! [`encode_prologue`], [`encode_request`], and [`ResponseDecoder::decode`]
//! (or [`decode_response`]) with the [`Command`] of the request it sent.
//!
//! # Incremental decoding and its cost
//!
//! There is no frame length on Arakoon's wire, so decoders take the bytes
//! received so far and answer [`Decoded::Incomplete`] with the least total
//! length that could complete the frame (never more than the real frame). A
//! server keeps one buffer per connection and retries once the buffer holds
//! `needed` bytes. Nothing is allocated or copied until a whole frame is
//! present, and a string (a key, a value, a sequence) is waited for in O(1):
//! its length is read, its bytes are not walked.
//!
//! The stateless [`decode_request`] / [`decode_response`] re-walk the
//! frame's fields on every call, which is quadratic for a long list of small
//! elements arriving in pieces (a `multi_get` of 1M keys, 14 MB, in 64 KiB
//! reads: 6.7 s). [`RequestDecoder`] / [`ResponseDecoder`] keep a checkpoint
//! inside the list between calls and build the value once, at the end: the
//! same request takes 0.17 s (release build). Servers and clients should
//! use them; they answer exactly what the stateless functions answer.
//!
//! # Limits
//!
//! Every declared length and count is checked against [`Limits`] before
//! anything is allocated: negative (a "4 GiB" length is -1 as an int32),
//! above `max_buffer_size`, or a frame growing past `max_buffer_size` is an
//! error that names the field. Nesting of sequences (and of statistics lists)
//! is bounded by `max_nesting_depth`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod command;
mod decoder;
mod error;
mod request;
mod response;
mod result_code;
mod statistics;
pub mod update;
mod wire;

pub use command::{Command, Unsupported};
pub use decoder::{RequestDecoder, ResponseDecoder, DISCARD_BUDGET_FACTOR, MAX_DISCARDED_STRINGS};
pub use error::ProtocolError;
pub use request::{
    decode_prologue, decode_request, encode_prologue, encode_request, Consistency, Incoming,
    KeyRange, Prologue, Request, MAGIC, PROTOCOL_VERSION,
};
pub use response::{
    decode_collapse_progress, decode_response, encode_response, ErrorResponse, Reply, Response,
};
pub use result_code::ResultCode;
pub use statistics::{NamedField, NamedValue};
pub use update::{
    batch_update_count, decode_batch, encode_batch, RangeAssertion, Update, BATCH_FORMAT_VERSION,
};

/// Arakoon's default `__tainted_max_buffer_size`: the largest request frame
/// accepted, in bytes.
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 33_554_432;

/// How deep sequences may nest inside a sequence (the request's own sequence
/// is level 1), and statistics lists inside statistics lists. Arakoon has no
/// limit; real clients nest one or two levels.
pub const DEFAULT_MAX_NESTING_DEPTH: usize = 32;

/// Bounds on what a decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (request, response, payload), and so largest declared
    /// length or count, in bytes. From the config's `__tainted_max_buffer_size`.
    pub max_buffer_size: usize,
    /// Deepest nesting of sequences (and statistics lists).
    pub max_nesting_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
            max_nesting_depth: DEFAULT_MAX_NESTING_DEPTH,
        }
    }
}

/// The outcome of decoding from a buffer that may hold only part of a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<T> {
    /// A whole frame: its value and how many bytes of the buffer it used.
    Complete { value: T, consumed: usize },
    /// The frame is not complete: at least `needed` bytes (counted from the
    /// start of the buffer) are required before decoding can succeed.
    /// Always more than the buffer's length.
    Incomplete { needed: usize },
}

impl<T> Decoded<T> {
    /// The value and the bytes consumed, or `None` if more bytes are needed.
    pub fn complete(self) -> Option<(T, usize)> {
        match self {
            Decoded::Complete { value, consumed } => Some((value, consumed)),
            Decoded::Incomplete { .. } => None,
        }
    }
}

/// What [`RequestDecoder::next`] asks of the caller: [`Decoded`]'s two
/// outcomes, and one more.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<T> {
    /// A whole frame: its value and how many bytes of the buffer it used.
    Complete { value: T, consumed: usize },
    /// At least `needed` bytes (from the start of the buffer) are required.
    Incomplete { needed: usize },
    /// A string of the request is too large for the frame: drop its `bytes`
    /// bytes, which start at buffer position `at`, from the stream. Remove
    /// those already in the buffer (`at..` up to `bytes` of them, so that
    /// what follows the string moves up to `at`), read the rest from the
    /// stream and throw it away, then call again. The request is still read
    /// to its end; it then comes back [`Incoming::Rejected`] with
    /// [`ProtocolError::OversizedString`].
    Discard { at: usize, bytes: usize },
}

impl<T> From<Decoded<T>> for Step<T> {
    fn from(decoded: Decoded<T>) -> Self {
        match decoded {
            Decoded::Complete { value, consumed } => Step::Complete { value, consumed },
            Decoded::Incomplete { needed } => Step::Incomplete { needed },
        }
    }
}

/// Runs a stream decoder over `buf`, turning its outcome into the public
/// shape.
pub(crate) fn decode_stream<T>(
    buf: &[u8],
    limits: &Limits,
    read: impl FnOnce(&mut wire::Reader<'_>) -> wire::ReadResult<T>,
) -> Result<Decoded<T>, ProtocolError> {
    let mut reader = wire::Reader::new(buf, limits.max_buffer_size, wire::Mode::Stream);
    match read(&mut reader) {
        Ok(value) => Ok(Decoded::Complete {
            value,
            consumed: reader.position(),
        }),
        Err(wire::Fail::Incomplete { needed }) => {
            // Invariant of the reader: it asks for more only past the end.
            assert!(needed > buf.len(), "needed {needed} <= {}", buf.len());
            Ok(Decoded::Incomplete { needed })
        }
        // Only a request decoder's reader has a discard budget.
        Err(wire::Fail::Invalid(e) | wire::Fail::Discard { error: e, .. }) => Err(e),
    }
}

/// Runs a payload decoder over all of `buf` (running out of bytes, or bytes
/// left over, is an error).
pub(crate) fn decode_payload<T>(
    buf: &[u8],
    limits: &Limits,
    field: &'static str,
    read: impl FnOnce(&mut wire::Reader<'_>) -> wire::ReadResult<T>,
) -> Result<T, ProtocolError> {
    let mut reader = wire::Reader::new(buf, limits.max_buffer_size, wire::Mode::Payload);
    match read(&mut reader) {
        Ok(value) => {
            reader.finish(field)?;
            Ok(value)
        }
        Err(wire::Fail::Invalid(e) | wire::Fail::Discard { error: e, .. }) => Err(e),
        // A payload reader reports running out as `Truncated`, never this.
        Err(wire::Fail::Incomplete { needed }) => Err(ProtocolError::Truncated {
            field,
            needed,
            available: buf.len(),
        }),
    }
}
