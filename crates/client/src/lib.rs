//! `client`: an async (tokio) client of an Arakoon cluster, speaking
//! Arakoon's client protocol (`shared/spec/arakoon-protocol.md`), so it
//! talks to our nodes and to Arakoon's alike.
//!
//! What it does:
//! - connects to the nodes of a cluster config (or explicit addresses),
//!   sending the prologue with the cluster id;
//! - finds the master by asking `who_master` and caches it; looks again
//!   when the master answers `NotMaster` or cannot be reached;
//! - every command of the protocol as a typed method of [`Client`], with
//!   the three read consistencies (`Consistent`, `NoGuarantee`,
//!   `AtLeast(i)`);
//! - a timeout on every connect and every request, and one bounded
//!   [`RetryPolicy`].
//!
//! What it promises:
//! - an update (`set`, `delete`, `sequence`, …) is **never** sent twice
//!   once its bytes may have reached a node. If the answer does not come,
//!   the error says the outcome is unknown ([`Error::is_outcome_unknown`]);
//!   only a refusal that says the node did nothing (`NotMaster`,
//!   `E_MAX_CONNECTIONS`), or a failure before anything was sent (no
//!   connection, no master found), lets an update be sent again (to the new
//!   master);
//! - reads and other requests that change nothing are retried on
//!   `NotMaster`, lost connections and timeouts, within the policy;
//! - errors are typed, one line, and name the node (and the key, for
//!   `NotFound`).
//!
//! What it never does: talk to two clusters, resend an update blindly, or
//! retry without bound. It does not speak TLS yet (a config with
//! `tls_service = true` is refused).
//!
//! Feature `test-util`: the module `fake_node`, a scripted fake Arakoon node on
//! 127.0.0.1 for tests of code that uses this client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), client::Error> {
//! use client::{ClientBuilder, Consistency, Error};
//! let client = ClientBuilder::new("ricky")
//!     .node("arakoon_0", "127.0.0.1:4000")
//!     .node("arakoon_1", "127.0.0.1:4001")
//!     .node("arakoon_2", "127.0.0.1:4002")
//!     .build()?;
//! client.set(b"counter", b"1").await?;
//! // Read your writes on any node:
//! let txid = client.get_txid().await?;
//! let on_slave = client.node("arakoon_2")?.with_consistency(txid);
//! assert_eq!(on_slave.get(b"counter").await?, b"1");
//! match client.delete(b"missing").await {
//!     Err(Error::NotFound { key, .. }) => assert_eq!(key, b"missing"),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod builder;
mod client;
mod commands;
mod connection;
mod error;
mod retry;
mod sequence;

#[cfg(feature = "test-util")]
pub mod fake_node;

pub use builder::{
    ClientBuilder, TlsOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DISCOVERY_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
};
pub use client::Client;
pub use commands::NodeVersion;
pub use error::{Error, Escaped, NodeFailure};
pub use protocol::{
    Consistency, KeyRange, NamedField, NamedValue, RangeAssertion, Reply, Request, ResultCode,
    Update,
};
pub use retry::{RetryPolicy, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_MAX_ATTEMPTS};
pub use sequence::Sequence;
/// TLS types of [`TlsOptions`].
pub use tls::{Identity as TlsIdentity, MinVersion as TlsMinVersion};
