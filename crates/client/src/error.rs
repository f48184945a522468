//! The client's errors: one variant per thing a caller may want to handle
//! differently, each naming the node (and key, command) it concerns. Every
//! message is one line.

use std::fmt;
use std::time::Duration;

use protocol::{ErrorResponse, ProtocolError, ResultCode};

/// What went wrong with a request.
///
/// ```no_run
/// # async fn demo(client: client::Client) -> Result<(), client::Error> {
/// use client::Error;
/// match client.set(b"k", b"v").await {
///     Ok(()) => {}
///     // Maybe applied, maybe not: read back before deciding anything.
///     Err(e) if e.is_outcome_unknown() => {
///         let now = client.get(b"k").await;
///         println!("set k: {e}; k is now {now:?}");
///     }
///     Err(Error::NoMaster { failures, .. }) => {
///         for f in failures {
///             eprintln!("{}: {}", f.node, f.reason);
///         }
///     }
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key (for `multi_get`, the first missing key) does not exist.
    #[error("key not found: {}", Escaped(key))]
    NotFound { node: String, key: Vec<u8> },

    /// The node is not the master (and the request went to one node on
    /// purpose, or retries ran out). `master` is the node's hint, if any.
    #[error("{node} is not the master ({})", match master {
        Some(m) => format!("it names {m} as master"),
        None => "it knows no master".to_string(),
    })]
    NotMaster {
        node: String,
        master: Option<String>,
    },

    /// An `assert`, `assert_exists`, or an assert inside a sequence, failed;
    /// nothing of the request was applied.
    #[error("assertion failed on {node}: {message}")]
    AssertionFailed { node: String, message: String },

    /// An `AtLeast(i)` read on a node that has not applied `i` yet.
    #[error("inconsistent read on {node}: {message}")]
    InconsistentRead { node: String, message: String },

    /// The master lost its mastership while handling an update: it may or
    /// may not have been applied (Arakoon's `NoLongerMaster`). Read back to
    /// find out; never blindly resend.
    #[error("{command} on {node}: outcome unknown, the node lost mastership while handling it ({message})")]
    NoLongerMaster {
        node: String,
        command: &'static str,
        message: String,
    },

    /// An update was (maybe partly) sent, and then the connection failed or
    /// no answer came in time: it may or may not have been applied. It is
    /// never resent by the client.
    #[error("{command} on {node}: outcome unknown, {reason}")]
    OutcomeUnknown {
        node: String,
        command: &'static str,
        reason: String,
    },

    /// No answer within the request timeout (reads: after the last retry).
    #[error("{command} on {node}: no answer within {after:?}")]
    Timeout {
        node: String,
        command: &'static str,
        after: Duration,
    },

    /// Connecting to, writing to or reading from a node failed.
    #[error("{node} ({address}): {context}: {source}")]
    Io {
        node: String,
        address: String,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The node's answer could not be decoded.
    #[error("{node}: bad answer to {command}: {source}")]
    Protocol {
        node: String,
        command: &'static str,
        #[source]
        source: ProtocolError,
    },

    /// The node serves another cluster than the one asked for (a config
    /// mistake: not retried).
    #[error("{node} refused cluster id {cluster_id:?}: {message}")]
    WrongCluster {
        node: String,
        cluster_id: String,
        message: String,
    },

    /// No node could name a master that confirms it is one.
    #[error(
        "no master found for cluster {cluster_id:?}: {}",
        DisplayFailures(failures)
    )]
    NoMaster {
        cluster_id: String,
        /// What each node answered or why it could not be asked.
        failures: Vec<NodeFailure>,
    },

    /// A node name that is not in the client's node list (an argument, or
    /// a master named by a node).
    #[error("unknown node {name:?} (known: {})", known.join(", "))]
    UnknownNode { name: String, known: Vec<String> },

    /// Any other failure answer of a node (`E_NOT_SUPPORTED`, `E_BAD_INPUT`,
    /// `E_GOING_DOWN`, `E_READ_ONLY`, …).
    #[error("{command} on {node}: {code}: {message}")]
    Server {
        node: String,
        command: &'static str,
        code: ResultCode,
        message: String,
    },

    /// The request is larger than the cluster accepts
    /// (`__tainted_max_buffer_size`); it was not sent.
    #[error(
        "{command}: the request is {bytes} bytes, above the limit of {limit} (max_request_size)"
    )]
    RequestTooLarge {
        command: &'static str,
        bytes: usize,
        limit: usize,
    },

    /// The client was built wrongly (no nodes, duplicate names, …).
    #[error("client configuration: {0}")]
    Config(String),

    /// Writing what a node streamed (`get_db`) to the caller's output
    /// failed.
    #[error("{context}: {source}")]
    Output {
        context: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Why one node did not give a master during discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFailure {
    pub node: String,
    pub reason: String,
}

struct DisplayFailures<'a>(&'a [NodeFailure]);

impl fmt::Display for DisplayFailures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no node asked");
        }
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", failure.node, failure.reason)?;
        }
        Ok(())
    }
}

impl Error {
    /// The result code of a node's failure answer this error came from, if
    /// it came from one.
    pub fn result_code(&self) -> Option<ResultCode> {
        match self {
            Error::NotFound { .. } => Some(ResultCode::NotFound),
            Error::NotMaster { .. } => Some(ResultCode::NotMaster),
            Error::AssertionFailed { .. } => Some(ResultCode::AssertionFailed),
            Error::InconsistentRead { .. } => Some(ResultCode::InconsistentRead),
            Error::NoLongerMaster { .. } => Some(ResultCode::NoLongerMaster),
            Error::WrongCluster { .. } => Some(ResultCode::WrongCluster),
            Error::Server { code, .. } => Some(*code),
            Error::OutcomeUnknown { .. }
            | Error::Timeout { .. }
            | Error::Io { .. }
            | Error::Protocol { .. }
            | Error::NoMaster { .. }
            | Error::UnknownNode { .. }
            | Error::RequestTooLarge { .. }
            | Error::Output { .. }
            | Error::Config(_) => None,
        }
    }

    /// Whether an update that failed with this error may have been applied
    /// all the same (the caller must read back to know).
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::NoLongerMaster { .. } | Error::OutcomeUnknown { .. }
        )
    }

    /// What happened, for a message that names the node already: an IO
    /// error or a timeout without the node in front.
    pub(crate) fn cause(&self) -> String {
        match self {
            Error::Io {
                address,
                context,
                source,
                ..
            } => format!("{context} {address}: {source}"),
            Error::Timeout { after, .. } => format!("no answer within {after:?}"),
            other => other.to_string(),
        }
    }

    /// The error for a node's failure answer to `command`.
    pub(crate) fn from_response(
        node: &str,
        command: &'static str,
        response: ErrorResponse,
    ) -> Error {
        let node = node.to_string();
        let message = response.message_lossy().into_owned();
        match response.result_code() {
            ResultCode::NotFound => Error::NotFound {
                node,
                key: response.message().to_vec(),
            },
            // Arakoon says `None` when it knows no master.
            ResultCode::NotMaster => Error::NotMaster {
                node,
                master: (!message.is_empty() && message != "None").then_some(message),
            },
            ResultCode::AssertionFailed => Error::AssertionFailed { node, message },
            ResultCode::InconsistentRead => Error::InconsistentRead { node, message },
            ResultCode::NoLongerMaster => Error::NoLongerMaster {
                node,
                command,
                message,
            },
            code => Error::Server {
                node,
                command,
                code,
                message,
            },
        }
    }
}

/// Bytes shown as Arakoon's CLI shows them: printable ASCII as is, the rest
/// escaped, inside double quotes (OCaml's `%S`).
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for &byte in self.0 {
            match byte {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                b'\n' => f.write_str("\\n")?,
                b'\t' => f.write_str("\\t")?,
                b'\r' => f.write_str("\\r")?,
                0x08 => f.write_str("\\b")?,
                0x20..=0x7e => write!(f, "{}", byte as char)?,
                _ => write!(f, "\\{byte:03}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Arakoon's CLI prints values with OCaml's `%S`: quotes, backslash
    /// escapes, other non-printables as three decimal digits.
    #[test]
    fn escaped_matches_ocaml_percent_s() {
        let shown = Escaped(b"a \"b\"\\\n\t\r\x08\x00\xff~").to_string();
        assert_eq!(shown, r#""a \"b\"\\\n\t\r\b\000\255~""#);
    }

    #[test]
    fn not_found_names_the_key() {
        let e = Error::from_response(
            "arakoon_0",
            "get",
            ErrorResponse::new(ResultCode::NotFound, b"foo".to_vec()),
        );
        assert_eq!(e.to_string(), "key not found: \"foo\"");
        assert_eq!(e.result_code(), Some(ResultCode::NotFound));
    }

    #[test]
    fn not_master_carries_the_hint() {
        let e = Error::from_response(
            "n1",
            "set",
            ErrorResponse::new(ResultCode::NotMaster, b"n0".to_vec()),
        );
        assert!(matches!(&e, Error::NotMaster { master: Some(m), .. } if m == "n0"));
        let e = Error::from_response(
            "n1",
            "set",
            ErrorResponse::new(ResultCode::NotMaster, Vec::new()),
        );
        assert!(matches!(&e, Error::NotMaster { master: None, .. }));
        assert_eq!(e.to_string(), "n1 is not the master (it knows no master)");
        let e = Error::from_response(
            "n1",
            "set",
            ErrorResponse::new(ResultCode::NotMaster, b"None".to_vec()),
        );
        assert!(matches!(&e, Error::NotMaster { master: None, .. }));
    }

    #[test]
    fn no_master_lists_every_node_on_one_line() {
        let e = Error::NoMaster {
            cluster_id: "ricky".into(),
            failures: vec![
                NodeFailure {
                    node: "n0".into(),
                    reason: "knows no master".into(),
                },
                NodeFailure {
                    node: "n1".into(),
                    reason: "connection refused".into(),
                },
            ],
        };
        let shown = e.to_string();
        assert_eq!(
            shown,
            "no master found for cluster \"ricky\": n0: knows no master; n1: connection refused"
        );
        assert!(!shown.contains('\n'));
    }
}
