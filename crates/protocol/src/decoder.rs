//! Per-connection decoders that keep what they learnt between calls, so that
//! a frame arriving in many pieces costs linear time in total.
//!
//! Each call first *skims* the buffer: it validates and measures the frame
//! without building values, and when it runs out of bytes inside a list
//! (the keys of a `multi_get`, the entries of a `range_entries` answer) it
//! remembers how far it got; the next call resumes the list there. Only when
//! the skim finds the whole frame does a full decode build the value, once.
//! Correctness never depends on the checkpoint: the full decode validates
//! everything again.

use crate::command::Command;
use crate::request::{read_request, Incoming};
use crate::response::{read_reply, read_response, Response};
use crate::wire::{Fail, ListCheckpoint, Mode, Reader};
use crate::{decode_request, decode_response, Decoded, Limits, ProtocolError, Step};

/// Most strings of one request that [`RequestDecoder::next`] drops; one
/// more is an error (the connection is closed).
pub const MAX_DISCARDED_STRINGS: usize = 8;
/// [`RequestDecoder::next`] drops at most this many times
/// `max_buffer_size` bytes of one request; a string beyond that is an
/// error (the connection is closed), so a client cannot keep a node
/// reading one request for ever.
pub const DISCARD_BUDGET_FACTOR: usize = 4;

/// Decodes the requests of one connection, one frame at a time.
///
/// Call [`RequestDecoder::decode`] with the connection's buffer, which must
/// start at the current frame and only grow between calls until the frame is
/// complete; then drop the `consumed` bytes and go on.
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    resume_at: Option<ListCheckpoint>,
    /// The strings of the current request dropped so far ([`Self::next`]).
    dropped: Dropped,
}

/// Strings of the current request dropped from the stream.
#[derive(Debug, Clone, Default)]
struct Dropped {
    /// Buffer positions where their bytes would start, ascending.
    at: Vec<usize>,
    /// Their bytes, in all.
    bytes: usize,
    /// Why the first one was dropped: the request's answer.
    first: Option<ProtocolError>,
}

impl RequestDecoder {
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            resume_at: None,
            dropped: Dropped::default(),
        }
    }

    /// As [`RequestDecoder::decode`], except that a string too large for
    /// the frame (above `max_buffer_size`, or making the request so) is not
    /// an error that ends the stream: the caller is asked to drop its bytes
    /// ([`Step::Discard`]), never holding them, and the request, read to its
    /// end, comes back [`Incoming::Rejected`] with
    /// [`ProtocolError::OversizedString`] (`E_BAD_INPUT`, the connection
    /// kept, as Arakoon does). Bounded: at most [`MAX_DISCARDED_STRINGS`]
    /// strings and [`DISCARD_BUDGET_FACTOR`] × `max_buffer_size` bytes per
    /// request; past either, the oversized string is an error as in
    /// [`RequestDecoder::decode`].
    pub fn next(&mut self, buf: &[u8]) -> Result<Step<Incoming>, ProtocolError> {
        let limits = self.limits;
        let budget = if self.dropped.at.len() < MAX_DISCARDED_STRINGS {
            limits
                .max_buffer_size
                .saturating_mul(DISCARD_BUDGET_FACTOR)
                .saturating_sub(self.dropped.bytes)
        } else {
            0
        };
        let dropped_at = std::mem::take(&mut self.dropped.at);
        let outcome = {
            let mut skim = Reader::skimmer(buf, limits.max_buffer_size, self.resume_at.take())
                .discarding(&dropped_at, budget);
            match read_request(&mut skim, &limits) {
                Ok(_) => {
                    let mut full = Reader::new(buf, limits.max_buffer_size, Mode::Stream)
                        .discarding(&dropped_at, budget);
                    read_request(&mut full, &limits)
                        .map(|incoming| (incoming, full.position(), full.passed_discarded()))
                }
                Err(Fail::Incomplete { needed }) => {
                    self.resume_at = skim.stopped_at();
                    Err(Fail::Incomplete { needed })
                }
                Err(e) => Err(e),
            }
        };
        self.dropped.at = dropped_at;
        match outcome {
            Ok((incoming, consumed, passed_dropped)) => {
                let dropped = std::mem::take(&mut self.dropped);
                let incoming = match (passed_dropped, incoming) {
                    (false, incoming) | (true, incoming @ Incoming::Unsupported(_)) => incoming,
                    (true, Incoming::Request(request)) => Incoming::Rejected {
                        command: request.command(),
                        error: dropped.reason(limits),
                    },
                    (true, Incoming::Rejected { command, .. }) => Incoming::Rejected {
                        command,
                        error: dropped.reason(limits),
                    },
                };
                Ok(Step::Complete {
                    value: incoming,
                    consumed,
                })
            }
            Err(Fail::Incomplete { needed }) => Ok(Step::Incomplete { needed }),
            Err(Fail::Discard { at, bytes, error }) => {
                // The bytes of strings before `at` are all in the buffer, so
                // positions only grow within one request.
                debug_assert!(self.dropped.at.last().is_none_or(|&last| last < at));
                self.dropped.at.push(at);
                self.dropped.bytes = self.dropped.bytes.saturating_add(bytes);
                self.dropped.first.get_or_insert(error);
                // The buffer changes below `at`'s end: walk lists afresh.
                self.resume_at = None;
                Ok(Step::Discard { at, bytes })
            }
            Err(Fail::Invalid(e)) => {
                self.dropped = Dropped::default();
                Err(e)
            }
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// As [`decode_request`], in linear total time over the calls for one
    /// frame.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<Incoming>, ProtocolError> {
        let limits = self.limits;
        let mut skim = Reader::skimmer(buf, limits.max_buffer_size, self.resume_at.take());
        match read_request(&mut skim, &limits) {
            Ok(_) => decode_request(buf, &limits),
            Err(Fail::Incomplete { needed }) => {
                self.resume_at = skim.stopped_at();
                Ok(Decoded::Incomplete { needed })
            }
            Err(Fail::Invalid(e) | Fail::Discard { error: e, .. }) => Err(e),
        }
    }
}

impl Dropped {
    /// The answer to a request some of whose strings were dropped.
    fn reason(self, limits: Limits) -> ProtocolError {
        self.first.unwrap_or(ProtocolError::OversizedString {
            field: "request",
            declared: self.bytes,
            frame_bytes: self.bytes,
            limit: limits.max_buffer_size,
        })
    }
}

/// Decodes the answers on one connection (the client side), one frame at a
/// time; the same contract as [`RequestDecoder`].
#[derive(Debug, Clone)]
pub struct ResponseDecoder {
    limits: Limits,
    resume_at: Option<ListCheckpoint>,
}

impl ResponseDecoder {
    pub fn new(limits: Limits) -> Self {
        ResponseDecoder {
            limits,
            resume_at: None,
        }
    }

    /// As [`decode_response`], in linear total time over the calls for one
    /// frame. `command` must be the same on every call for one frame.
    pub fn decode(
        &mut self,
        buf: &[u8],
        command: Command,
    ) -> Result<Decoded<Response>, ProtocolError> {
        let limits = self.limits;
        let mut skim = Reader::skimmer(buf, limits.max_buffer_size, self.resume_at.take());
        match read_response(&mut skim, |r| read_reply(r, command, &limits)) {
            Ok(_) => decode_response(buf, command, &limits),
            Err(Fail::Incomplete { needed }) => {
                self.resume_at = skim.stopped_at();
                Ok(Decoded::Incomplete { needed })
            }
            Err(Fail::Invalid(e) | Fail::Discard { error: e, .. }) => Err(e),
        }
    }
}
