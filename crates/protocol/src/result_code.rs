//! Arakoon's result codes (`arakoon_exc.ml`): the int32 that starts every
//! response.

/// A result code. The discriminant is the exact wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ResultCode {
    /// Success: the command's payload follows.
    Ok = 0x00,
    /// A request word without the magic in its upper half.
    NoMagic = 0x01,
    NoHello = 0x03,
    /// An update or a `Consistent` read on a node that is not master; the
    /// message is the master's name when known.
    NotMaster = 0x04,
    /// A missing key; the message is the key.
    NotFound = 0x05,
    /// The cluster id of the prologue or ping is not this node's.
    WrongCluster = 0x06,
    /// An assert, assert_exists or test failed.
    AssertionFailed = 0x07,
    /// An update on a readonly cluster.
    ReadOnly = 0x08,
    /// A key outside this cluster's interval (sharding).
    OutsideInterval = 0x09,
    /// The node is shutting down.
    GoingDown = 0x10,
    /// The command is not implemented.
    NotSupported = 0x20,
    /// Mastership was lost while handling the request: the outcome is unknown.
    NoLongerMaster = 0x21,
    /// A malformed or oversized request.
    BadInput = 0x26,
    /// `AtLeast(i)` on a node that has not applied `i`.
    InconsistentRead = 0x80,
    UserFunctionFailure = 0x81,
    UserHookNotFound = 0x82,
    /// The node's connection limit is reached.
    MaxConnections = 0xfe,
    /// Anything else (never leaks internals).
    UnknownFailure = 0xff,
}

impl ResultCode {
    /// Every code, in wire-value order.
    pub const ALL: [ResultCode; 18] = [
        ResultCode::Ok,
        ResultCode::NoMagic,
        ResultCode::NoHello,
        ResultCode::NotMaster,
        ResultCode::NotFound,
        ResultCode::WrongCluster,
        ResultCode::AssertionFailed,
        ResultCode::ReadOnly,
        ResultCode::OutsideInterval,
        ResultCode::GoingDown,
        ResultCode::NotSupported,
        ResultCode::NoLongerMaster,
        ResultCode::BadInput,
        ResultCode::InconsistentRead,
        ResultCode::UserFunctionFailure,
        ResultCode::UserHookNotFound,
        ResultCode::MaxConnections,
        ResultCode::UnknownFailure,
    ];

    /// The wire value.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The code with this wire value, if Arakoon defines one.
    pub fn from_code(code: u32) -> Option<ResultCode> {
        ResultCode::ALL.iter().copied().find(|rc| rc.code() == code)
    }

    /// Whether a node closes the connection after answering a request with
    /// this code, as Arakoon's do: a client sends nothing more on it. Kept
    /// open after `E_NOT_FOUND`, `E_ASSERTION_FAILED`, `E_NO_LONGER_MASTER`,
    /// `E_BAD_INPUT` and `E_INCONSISTENT_READ` (and success).
    pub fn closes_connection(self) -> bool {
        !matches!(
            self,
            ResultCode::Ok
                | ResultCode::NotFound
                | ResultCode::AssertionFailed
                | ResultCode::NoLongerMaster
                | ResultCode::BadInput
                | ResultCode::InconsistentRead
        )
    }

    /// Arakoon's name for the code (`E_NOT_FOUND`, …).
    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Ok => "E_OK",
            ResultCode::NoMagic => "E_NO_MAGIC",
            ResultCode::NoHello => "E_NO_HELLO",
            ResultCode::NotMaster => "E_NOT_MASTER",
            ResultCode::NotFound => "E_NOT_FOUND",
            ResultCode::WrongCluster => "E_WRONG_CLUSTER",
            ResultCode::AssertionFailed => "E_ASSERTION_FAILED",
            ResultCode::ReadOnly => "E_READ_ONLY",
            ResultCode::OutsideInterval => "E_OUTSIDE_INTERVAL",
            ResultCode::GoingDown => "E_GOING_DOWN",
            ResultCode::NotSupported => "E_NOT_SUPPORTED",
            ResultCode::NoLongerMaster => "E_NO_LONGER_MASTER",
            ResultCode::BadInput => "E_BAD_INPUT",
            ResultCode::InconsistentRead => "E_INCONSISTENT_READ",
            ResultCode::UserFunctionFailure => "E_USERFUNCTION_FAILURE",
            ResultCode::UserHookNotFound => "E_USERHOOK_NOT_FOUND",
            ResultCode::MaxConnections => "E_MAX_CONNECTIONS",
            ResultCode::UnknownFailure => "E_UNKNOWN_FAILURE",
        }
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of the spec's result code table, verbatim.
    #[test]
    fn wire_values_match_the_spec_table() {
        let expected: [(ResultCode, u32); 18] = [
            (ResultCode::Ok, 0x00),
            (ResultCode::NoMagic, 0x01),
            (ResultCode::NoHello, 0x03),
            (ResultCode::NotMaster, 0x04),
            (ResultCode::NotFound, 0x05),
            (ResultCode::WrongCluster, 0x06),
            (ResultCode::AssertionFailed, 0x07),
            (ResultCode::ReadOnly, 0x08),
            (ResultCode::OutsideInterval, 0x09),
            (ResultCode::GoingDown, 0x10),
            (ResultCode::NotSupported, 0x20),
            (ResultCode::NoLongerMaster, 0x21),
            (ResultCode::BadInput, 0x26),
            (ResultCode::InconsistentRead, 0x80),
            (ResultCode::UserFunctionFailure, 0x81),
            (ResultCode::UserHookNotFound, 0x82),
            (ResultCode::MaxConnections, 0xfe),
            (ResultCode::UnknownFailure, 0xff),
        ];
        for (rc, code) in expected {
            assert_eq!(rc.code(), code, "{rc:?}");
            assert_eq!(ResultCode::from_code(code), Some(rc));
        }
        assert_eq!(ResultCode::from_code(0x02), None);
    }
}
