//! Decoding errors. Each names the field and the offending value, and maps to
//! the result code a server answers with ([`ProtocolError::result_code`]).

use crate::result_code::ResultCode;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A request word without the magic `0xb1ff` in its upper half.
    #[error("request word {word:#010x} has no magic (expected 0xb1ff____)")]
    NoMagic { word: u32 },

    /// The prologue does not start with the magic `0xb1ff0000`.
    #[error("prologue magic {word:#010x} is not 0xb1ff0000")]
    BadPrologueMagic { word: u32 },

    /// The prologue's protocol version is not 1.
    #[error("protocol version {version} is not supported (expected 1)")]
    BadProtocolVersion { version: i32 },

    /// A declared length or count below zero (a length of "4 GiB", 0xffffffff,
    /// is -1 as Arakoon's int32).
    #[error("{field}: declared length {declared} ({:#010x}) is negative", *declared as u32)]
    NegativeLength { field: &'static str, declared: i32 },

    /// A declared length or count above `max_buffer_size`.
    #[error(
        "{field}: declared length {declared} is above the limit of {limit} bytes (max_buffer_size)"
    )]
    LengthTooLarge {
        field: &'static str,
        declared: usize,
        limit: usize,
    },

    /// The frame, read up to `field`, would exceed `max_buffer_size`.
    #[error("{field}: the frame would be {frame_bytes} bytes, above the limit of {limit} (max_buffer_size)")]
    FrameTooLarge {
        field: &'static str,
        frame_bytes: usize,
        limit: usize,
    },

    /// A request string that does not fit the frame limit: the node read
    /// its bytes and dropped them, and answers this with the connection
    /// kept (Arakoon: `E_BAD_INPUT`, "update … has size … > …").
    #[error(
        "{field}: a string of {declared} bytes makes the request at least {frame_bytes} bytes, \
         above the limit of {limit} (max_buffer_size); it was read and dropped"
    )]
    OversizedString {
        field: &'static str,
        declared: usize,
        frame_bytes: usize,
        limit: usize,
    },

    /// A length-delimited payload ends inside `field`.
    #[error("{field}: truncated, needs {needed} bytes but the payload has {available}")]
    Truncated {
        field: &'static str,
        needed: usize,
        available: usize,
    },

    /// A length-delimited payload has bytes after its content.
    #[error("{field}: {count} unexpected bytes after the content")]
    TrailingBytes { field: &'static str, count: usize },

    /// A bool that is neither 0x00 nor 0x01.
    #[error("{field}: byte {byte:#04x} is not a bool (0x00 or 0x01)")]
    InvalidBool { field: &'static str, byte: u8 },

    /// A consistency byte that is not 0x00, 0x01 or 0x02.
    #[error("consistency: byte {byte:#04x} is not 0x00 (Consistent), 0x01 (NoGuarantee) or 0x02 (AtLeast)")]
    InvalidConsistency { byte: u8 },

    /// An update tag that Arakoon does not define.
    #[error("update: tag {tag} is not an update")]
    UnknownUpdateTag { tag: i32 },

    /// An AssertRange whose assertion kind is not 1 (ContainsExactly), the
    /// only one Arakoon defines.
    #[error("update: AssertRange assertion kind {kind} is not 1 (ContainsExactly)")]
    UnknownRangeAssertion { kind: i32 },

    /// An update that Arakoon defines but we do not accept (the internal
    /// MasterSet, AdminSet, interval and routing updates).
    #[error("update: {name} (tag {tag}) is not supported")]
    UnsupportedUpdate { tag: i32, name: &'static str },

    /// Updates nested deeper than the limit.
    #[error("update: sequences nested deeper than {limit} levels")]
    NestingTooDeep { limit: usize },

    /// The payload of a sequence request is not a Sequence update (tag 5).
    #[error("sequence: the payload must be a Sequence update (tag 5), found tag {tag}")]
    NotASequence { tag: i32 },

    /// A statistics named field of an unknown type.
    #[error("statistics: named field {name:?} has unknown type {kind}")]
    UnknownNamedFieldType { name: String, kind: i32 },

    /// A batch (tlog entry payload) of an unknown format version.
    #[error("update batch: format version {version} is not supported (expected 1)")]
    UnknownBatchVersion { version: u8 },

    /// A response code that does not fit the command (e.g. a streamed frame).
    #[error("response: {reason}")]
    UnexpectedResponse { reason: &'static str },
}

impl ProtocolError {
    /// The result code a server answers with before closing (or, for a
    /// [`crate::Incoming::Rejected`], before reading the next request).
    pub fn result_code(&self) -> ResultCode {
        match self {
            ProtocolError::NoMagic { .. }
            | ProtocolError::BadPrologueMagic { .. }
            | ProtocolError::BadProtocolVersion { .. } => ResultCode::NoMagic,
            ProtocolError::UnsupportedUpdate { .. } => ResultCode::NotSupported,
            ProtocolError::NegativeLength { .. }
            | ProtocolError::LengthTooLarge { .. }
            | ProtocolError::FrameTooLarge { .. }
            | ProtocolError::OversizedString { .. }
            | ProtocolError::UnknownRangeAssertion { .. }
            | ProtocolError::Truncated { .. }
            | ProtocolError::TrailingBytes { .. }
            | ProtocolError::InvalidBool { .. }
            | ProtocolError::InvalidConsistency { .. }
            | ProtocolError::UnknownUpdateTag { .. }
            | ProtocolError::NestingTooDeep { .. }
            | ProtocolError::NotASequence { .. }
            | ProtocolError::UnknownNamedFieldType { .. }
            | ProtocolError::UnknownBatchVersion { .. }
            | ProtocolError::UnexpectedResponse { .. } => ResultCode::BadInput,
        }
    }

    /// The error response a server writes for this error.
    pub fn to_error_response(&self) -> crate::ErrorResponse {
        crate::ErrorResponse::new(self.result_code(), self.to_string().into_bytes())
    }
}
