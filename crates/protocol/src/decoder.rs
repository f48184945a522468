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
use crate::wire::{Fail, ListCheckpoint, Reader};
use crate::{decode_request, decode_response, Decoded, Limits, ProtocolError};

/// Decodes the requests of one connection, one frame at a time.
///
/// Call [`RequestDecoder::decode`] with the connection's buffer, which must
/// start at the current frame and only grow between calls until the frame is
/// complete; then drop the `consumed` bytes and go on.
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    resume_at: Option<ListCheckpoint>,
}

impl RequestDecoder {
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            resume_at: None,
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
            Err(Fail::Invalid(e)) => Err(e),
        }
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
            Err(Fail::Invalid(e)) => Err(e),
        }
    }
}
