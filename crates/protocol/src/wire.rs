//! The primitives of Arakoon's wire format (`llio.ml`), all little-endian:
//! int32, int64, bool, string, option, list, float; and the bounded reader
//! every decoder of this crate is built on.
//!
//! # The bounded reader
//!
//! A [`Reader`] walks a byte slice that starts at the beginning of one frame
//! (a request, a response, a payload). Before it allocates for a declared
//! length or count it checks, in this order:
//!
//! 1. the declared value is not negative ([`ProtocolError::NegativeLength`]);
//! 2. it is not above `max_buffer_size` ([`ProtocolError::LengthTooLarge`]);
//! 3. the frame would not grow past `max_buffer_size`
//!    ([`ProtocolError::FrameTooLarge`]);
//! 4. the bytes are there. If not, a [`Mode::Stream`] reader reports
//!    "incomplete, need at least N bytes" (the caller waits for more) and a
//!    [`Mode::Payload`] reader reports [`ProtocolError::Truncated`] (a
//!    length-delimited payload cannot grow).
//!
//! So allocation is bounded by bytes that are really in the caller's buffer:
//! a list of `n` elements is only allocated once `n * smallest element` bytes
//! are present.

use crate::error::ProtocolError;

/// Why a read stopped short.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fail {
    /// Stream mode only: the frame is not complete; at least `needed` bytes
    /// (counted from the start of the frame) are required.
    Incomplete { needed: usize },
    /// The bytes are not a valid frame.
    Invalid(ProtocolError),
    /// A reader with a discard budget met a string too large for the frame
    /// (`error` says why): its `bytes` bytes, from buffer position `at` on,
    /// are to be dropped from the stream (see [`crate::RequestDecoder::next`]).
    Discard {
        at: usize,
        bytes: usize,
        error: ProtocolError,
    },
}

impl From<ProtocolError> for Fail {
    fn from(e: ProtocolError) -> Self {
        Fail::Invalid(e)
    }
}

pub(crate) type ReadResult<T> = Result<T, Fail>;

/// What running out of bytes means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A stream without frame lengths: more bytes may arrive.
    Stream,
    /// A complete, length-delimited payload: running out is an error.
    Payload,
}

/// Where a skim stopped inside a list, to resume there when more bytes
/// have arrived (the buffer only grows, so what was walked stays valid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListCheckpoint {
    /// Position of the list's count field.
    count_pos: usize,
    count: usize,
    /// Elements walked completely.
    done: usize,
    /// Position after the last walked element.
    pos: usize,
}

/// A bounded little-endian reader over one frame.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    max_buffer_size: usize,
    mode: Mode,
    /// Skim: validate and measure the frame without building values
    /// (strings come back empty, lists empty); lists resume at `resume_at`.
    skim: bool,
    resume_at: Option<ListCheckpoint>,
    /// Where the skim stopped, if it stopped inside a list.
    stopped_at: Option<ListCheckpoint>,
    /// Request streams only: the strings already dropped from the buffer,
    /// by the buffer position where their bytes would start (ascending).
    discarded: &'a [usize],
    /// Request streams only: how many more bytes of oversized strings may
    /// be dropped; `None`: an oversized string is an error.
    discard_budget: Option<usize>,
    /// Whether a dropped string was passed over.
    passed_discarded: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], max_buffer_size: usize, mode: Mode) -> Self {
        Reader {
            buf,
            pos: 0,
            max_buffer_size,
            mode,
            skim: false,
            resume_at: None,
            stopped_at: None,
            discarded: &[],
            discard_budget: None,
            passed_discarded: false,
        }
    }

    /// Lets this (stream) reader ask for oversized strings to be dropped,
    /// up to `budget` bytes, and pass over the strings at `discarded`
    /// (buffer positions of their missing bytes) as dropped.
    pub(crate) fn discarding(mut self, discarded: &'a [usize], budget: usize) -> Self {
        debug_assert!(self.mode == Mode::Stream);
        self.discarded = discarded;
        self.discard_budget = Some(budget);
        self
    }

    /// Whether a string dropped earlier was passed over: the request was
    /// read to its end but cannot be served.
    pub(crate) fn passed_discarded(&self) -> bool {
        self.passed_discarded
    }

    /// A stream reader that only validates and measures the frame, resuming
    /// a list walk at `resume_at` (see [`crate::RequestDecoder`]).
    pub(crate) fn skimmer(
        buf: &'a [u8],
        max_buffer_size: usize,
        resume_at: Option<ListCheckpoint>,
    ) -> Self {
        Reader {
            skim: true,
            resume_at,
            ..Reader::new(buf, max_buffer_size, Mode::Stream)
        }
    }

    /// Whether values are being skipped rather than built.
    pub(crate) fn skimming(&self) -> bool {
        self.skim
    }

    /// Where a skim stopped inside a list, if it did.
    pub(crate) fn stopped_at(&self) -> Option<ListCheckpoint> {
        self.stopped_at
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Checks that `n` more bytes fit in the frame and are present.
    fn require(&self, field: &'static str, n: usize) -> ReadResult<()> {
        let end = self.pos.saturating_add(n);
        if end > self.max_buffer_size {
            return Err(ProtocolError::FrameTooLarge {
                field,
                frame_bytes: end,
                limit: self.max_buffer_size,
            }
            .into());
        }
        if end > self.buf.len() {
            return Err(match self.mode {
                Mode::Stream => Fail::Incomplete { needed: end },
                Mode::Payload => ProtocolError::Truncated {
                    field,
                    needed: end,
                    available: self.buf.len(),
                }
                .into(),
            });
        }
        Ok(())
    }

    fn take(&mut self, field: &'static str, n: usize) -> ReadResult<&'a [u8]> {
        self.require(field, n)?;
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self, field: &'static str) -> ReadResult<[u8; N]> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> ReadResult<u8> {
        Ok(self.take_array::<1>(field)?[0])
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> ReadResult<i32> {
        Ok(i32::from_le_bytes(self.take_array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> ReadResult<u32> {
        Ok(u32::from_le_bytes(self.take_array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> ReadResult<i64> {
        Ok(i64::from_le_bytes(self.take_array(field)?))
    }

    /// A float: the IEEE 754 bits as an int64.
    pub(crate) fn f64(&mut self, field: &'static str) -> ReadResult<f64> {
        Ok(f64::from_bits(u64::from_le_bytes(self.take_array(field)?)))
    }

    /// A bool: exactly 0x00 or 0x01, as Arakoon's `input_bool`.
    pub(crate) fn bool(&mut self, field: &'static str) -> ReadResult<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(ProtocolError::InvalidBool { field, byte }.into()),
        }
    }

    /// A declared length or count, not negative.
    fn declared(&mut self, field: &'static str) -> ReadResult<usize> {
        let declared = self.i32(field)?;
        if declared < 0 {
            return Err(ProtocolError::NegativeLength { field, declared }.into());
        }
        // Non-negative i32 always fits a usize on the platforms we build for
        // (at least 32 bits).
        Ok(declared as usize)
    }

    /// A string's bytes: `None` when the string was dropped (see
    /// [`Reader::discarding`]). An oversized string is an error, or, on a
    /// reader with a discard budget that covers it, a [`Fail::Discard`].
    fn string(&mut self, field: &'static str) -> ReadResult<Option<&'a [u8]>> {
        let length = self.declared(field)?;
        if self.discarded.binary_search(&self.pos).is_ok() {
            self.passed_discarded = true;
            return Ok(None);
        }
        let frame_bytes = self.pos.saturating_add(length);
        if let Some(budget) = self.discard_budget {
            if frame_bytes > self.max_buffer_size && length <= budget {
                return Err(Fail::Discard {
                    at: self.pos,
                    bytes: length,
                    error: ProtocolError::OversizedString {
                        field,
                        declared: length,
                        frame_bytes,
                        limit: self.max_buffer_size,
                    },
                });
            }
        }
        self.check_length(field, length)?;
        self.take(field, length).map(Some)
    }

    /// A declared length or count, checked against the limits (not yet
    /// against the bytes present).
    fn length(&mut self, field: &'static str) -> ReadResult<usize> {
        let length = self.declared(field)?;
        self.check_length(field, length)?;
        Ok(length)
    }

    fn check_length(&self, field: &'static str, length: usize) -> ReadResult<()> {
        if length > self.max_buffer_size {
            return Err(ProtocolError::LengthTooLarge {
                field,
                declared: length,
                limit: self.max_buffer_size,
            }
            .into());
        }
        Ok(())
    }

    /// A string: int32 length, then the bytes. Nothing is allocated until all
    /// the bytes are present. (A dropped string reads as empty: the caller
    /// of a discarding reader rejects the request.)
    pub(crate) fn bytes(&mut self, field: &'static str) -> ReadResult<Vec<u8>> {
        let bytes = self.string(field)?.unwrap_or_default();
        if self.skim {
            return Ok(Vec::new());
        }
        Ok(bytes.to_vec())
    }

    /// A string that is skipped, not kept (bounded all the same).
    pub(crate) fn skip_bytes(&mut self, field: &'static str) -> ReadResult<()> {
        self.string(field).map(|_| ())
    }

    /// A string whose bytes must themselves be decoded: returns the slice
    /// (empty if the string was dropped).
    pub(crate) fn slice(&mut self, field: &'static str) -> ReadResult<&'a [u8]> {
        Ok(self.string(field)?.unwrap_or_default())
    }

    pub(crate) fn option_bytes(&mut self, field: &'static str) -> ReadResult<Option<Vec<u8>>> {
        if self.bool(field)? {
            Ok(Some(self.bytes(field)?))
        } else {
            Ok(None)
        }
    }

    /// A list count, with `min_element_size` the smallest encoding of one
    /// element: the whole list's minimum size must fit in the frame and be
    /// present before the caller allocates `count` elements.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        min_element_size: usize,
    ) -> ReadResult<usize> {
        let count = self.length(field)?;
        self.require(field, count.saturating_mul(min_element_size))?;
        Ok(count)
    }

    /// A list, elements in wire order.
    pub(crate) fn list<T>(
        &mut self,
        field: &'static str,
        min_element_size: usize,
        mut element: impl FnMut(&mut Self) -> ReadResult<T>,
    ) -> ReadResult<Vec<T>> {
        let count_pos = self.pos;
        let count = self.count(field, min_element_size)?;
        if self.skim {
            return self.skim_list(count_pos, count, element);
        }
        // Bounded: `count * min_element_size` bytes are present (checked by
        // `count`), and the minimum element size is at least one byte.
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(element(self)?);
        }
        Ok(out)
    }

    /// Walks a list's elements without keeping them, from the checkpoint if
    /// it is this list's; records where it stops if the bytes run out.
    fn skim_list<T>(
        &mut self,
        count_pos: usize,
        count: usize,
        mut element: impl FnMut(&mut Self) -> ReadResult<T>,
    ) -> ReadResult<Vec<T>> {
        let mut start = 0;
        if let Some(at) = self.resume_at {
            if at.count_pos == count_pos
                && at.count == count
                && at.done <= count
                && at.pos >= self.pos
                && at.pos <= self.buf.len()
            {
                self.pos = at.pos;
                start = at.done;
            }
        }
        for done in start..count {
            let pos = self.pos;
            match element(self) {
                Ok(_) => {}
                Err(Fail::Incomplete { needed }) => {
                    // The innermost list records first; outer lists keep it.
                    if self.stopped_at.is_none() {
                        self.stopped_at = Some(ListCheckpoint {
                            count_pos,
                            count,
                            done,
                            pos,
                        });
                    }
                    return Err(Fail::Incomplete { needed });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Vec::new())
    }

    /// Fails unless every byte was consumed (for length-delimited payloads).
    pub(crate) fn finish(&self, field: &'static str) -> Result<(), ProtocolError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes {
                field,
                count: self.remaining(),
            })
        }
    }
}

/// Smallest encodings, for list pre-checks.
pub(crate) const MIN_STRING_SIZE: usize = 4;
pub(crate) const MIN_OPTION_SIZE: usize = 1;
pub(crate) const MIN_PAIR_SIZE: usize = 8;

// ---- writing -------------------------------------------------------------

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}

pub(crate) fn put_bool(out: &mut Vec<u8>, v: bool) {
    out.push(u8::from(v));
}

/// A length or count as the wire's int32.
///
/// Panics if `n` does not fit: the wire cannot express it, and every size we
/// encode is bounded far below (by `max_buffer_size`), so this is a bug in the
/// caller, never a reaction to input.
pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    let n = i32::try_from(n).unwrap_or_else(|_| {
        panic!("length {n} does not fit Arakoon's int32 length field");
    });
    put_i32(out, n);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, v: &[u8]) {
    put_len(out, v.len());
    out.extend_from_slice(v);
}

pub(crate) fn put_option_bytes(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => put_bool(out, false),
        Some(v) => {
            put_bool(out, true);
            put_bytes(out, v);
        }
    }
}

/// Writes a length-delimited payload: reserves the int32 length, lets `body`
/// write, then fills the length in.
pub(crate) fn put_nested(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    put_i32(out, 0);
    body(out);
    let length = out.len() - at - 4;
    let length = i32::try_from(length).unwrap_or_else(|_| {
        panic!("payload of {length} bytes does not fit Arakoon's int32 length field");
    });
    out[at..at + 4].copy_from_slice(&length.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_little_endian() {
        let mut out = Vec::new();
        put_i32(&mut out, 1);
        put_i64(&mut out, -2);
        put_bool(&mut out, true);
        put_bytes(&mut out, b"ab");
        put_option_bytes(&mut out, None);
        put_f64(&mut out, 1.0);
        assert_eq!(
            out,
            [
                1, 0, 0, 0, //
                0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
                1,    //
                2, 0, 0, 0, b'a', b'b', //
                0,    //
                0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
            ]
        );
        let mut r = Reader::new(&out, 1024, Mode::Payload);
        assert_eq!(r.i32("a"), Ok(1));
        assert_eq!(r.i64("b"), Ok(-2));
        assert_eq!(r.bool("c"), Ok(true));
        assert_eq!(r.bytes("d"), Ok(b"ab".to_vec()));
        assert_eq!(r.option_bytes("e"), Ok(None));
        assert_eq!(r.f64("f"), Ok(1.0));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn a_declared_length_is_checked_before_the_bytes() {
        // 0x40000000 = 1 GiB, with 3 bytes behind it.
        let buf = [0, 0, 0, 0x40, 1, 2, 3];
        let mut r = Reader::new(&buf, 1 << 20, Mode::Stream);
        assert_eq!(
            r.bytes("value"),
            Err(Fail::Invalid(ProtocolError::LengthTooLarge {
                field: "value",
                declared: 1 << 30,
                limit: 1 << 20,
            }))
        );
        // 0xffffffff: "4 GiB", which is -1 as Arakoon's int32.
        let buf = [0xff, 0xff, 0xff, 0xff];
        let mut r = Reader::new(&buf, 1 << 20, Mode::Stream);
        assert_eq!(
            r.bytes("key"),
            Err(Fail::Invalid(ProtocolError::NegativeLength {
                field: "key",
                declared: -1,
            }))
        );
    }

    #[test]
    fn a_short_stream_asks_for_more_and_a_short_payload_is_an_error() {
        let buf = [5, 0, 0, 0, b'a'];
        let mut r = Reader::new(&buf, 1024, Mode::Stream);
        assert_eq!(r.bytes("key"), Err(Fail::Incomplete { needed: 9 }));
        let mut r = Reader::new(&buf, 1024, Mode::Payload);
        assert_eq!(
            r.bytes("key"),
            Err(Fail::Invalid(ProtocolError::Truncated {
                field: "key",
                needed: 9,
                available: 5,
            }))
        );
    }

    #[test]
    fn a_list_count_needs_its_minimum_bytes_before_allocating() {
        // A million strings declared, none present.
        let mut buf = Vec::new();
        put_i32(&mut buf, 1_000_000);
        let mut r = Reader::new(&buf, 1 << 25, Mode::Stream);
        assert_eq!(
            r.list("keys", MIN_STRING_SIZE, |r| r.bytes("key")),
            Err(Fail::Incomplete {
                needed: 4 + 4_000_000
            })
        );
        let mut r = Reader::new(&buf, 1 << 20, Mode::Stream);
        assert!(matches!(
            r.list("keys", MIN_STRING_SIZE, |r| r.bytes("key")),
            Err(Fail::Invalid(ProtocolError::FrameTooLarge { .. }))
        ));
    }

    #[test]
    fn a_bool_is_zero_or_one() {
        let mut r = Reader::new(&[2], 16, Mode::Payload);
        assert_eq!(
            r.bool("first_inclusive"),
            Err(Fail::Invalid(ProtocolError::InvalidBool {
                field: "first_inclusive",
                byte: 2
            }))
        );
    }
}
