//! Every command of the protocol as a typed method of [`Client`]. Reads use
//! the handle's consistency ([`Client::with_consistency`]); keys and values
//! are byte strings.

use protocol::{Consistency, KeyRange, NamedField, Reply, Request, Update};

use crate::client::Client;
use crate::error::Error;

/// A node's `version` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVersion {
    pub major: i32,
    pub minor: i32,
    pub patch: i32,
    /// Free text: build, revision.
    pub info: String,
}

/// Sends `$request` and takes the payload out of the expected reply variant.
macro_rules! call {
    ($client:expr, $request:expr, $pattern:pat => $value:expr) => {{
        let (node, reply) = $client.call($request).await?;
        match reply {
            $pattern => Ok($value),
            // `call` checks that the reply answers the request's command.
            _ => Err($client.mismatch(node)),
        }
    }};
}

/// `max` as the wire's int: `None` (no limit) is -1.
fn wire_max(max: Option<usize>) -> i32 {
    match max {
        Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
        None => -1,
    }
}

impl Client {
    fn mismatch(&self, node: usize) -> Error {
        Error::Protocol {
            node: self.node_name(node).to_string(),
            command: "request",
            source: protocol::ProtocolError::UnexpectedResponse {
                reason: "the reply does not fit the request",
            },
        }
    }

    fn count(&self, node: usize, count: i64, command: &'static str) -> Result<u64, Error> {
        u64::try_from(count).map_err(|_| Error::Protocol {
            node: self.node_name(node).to_string(),
            command,
            source: protocol::ProtocolError::UnexpectedResponse {
                reason: "a negative count",
            },
        })
    }

    /// The value of `key`; [`Error::NotFound`] if it has none.
    ///
    /// ```no_run
    /// # async fn demo(client: client::Client) -> Result<(), client::Error> {
    /// match client.get(b"user/42").await {
    ///     Ok(value) => println!("{}", String::from_utf8_lossy(&value)),
    ///     Err(client::Error::NotFound { .. }) => println!("no such user"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get(&self, key: &[u8]) -> Result<Vec<u8>, Error> {
        let request = Request::Get {
            consistency: self.read_consistency(),
            key: key.to_vec(),
        };
        // Arakoon's nodes (and ours) say only `Not_found`: name the key.
        let answer: Result<Vec<u8>, Error> =
            async { call!(self, request, Reply::Get(value) => value) }.await;
        answer.map_err(|e| match e {
            Error::NotFound { node, .. } => Error::NotFound {
                node,
                key: key.to_vec(),
            },
            e => e,
        })
    }

    /// Whether `key` has a value.
    pub async fn exists(&self, key: &[u8]) -> Result<bool, Error> {
        let request = Request::Exists {
            consistency: self.read_consistency(),
            key: key.to_vec(),
        };
        call!(self, request, Reply::Exists(found) => found)
    }

    /// Sets `key` to `value`.
    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let request = Request::Set {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        call!(self, request, Reply::Set => ())
    }

    /// Deletes `key`; [`Error::NotFound`] if it has no value.
    pub async fn delete(&self, key: &[u8]) -> Result<(), Error> {
        let request = Request::Delete { key: key.to_vec() };
        call!(self, request, Reply::Delete => ())
    }

    /// The values of `keys`, in their order; [`Error::NotFound`] naming a
    /// missing key if any is missing.
    pub async fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
        let request = Request::MultiGet {
            consistency: self.read_consistency(),
            keys: keys.iter().map(|k| k.to_vec()).collect(),
        };
        call!(self, request, Reply::MultiGet(values) => values)
    }

    /// The values of `keys`, in their order, `None` for a missing one.
    pub async fn multi_get_option(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let request = Request::MultiGetOption {
            consistency: self.read_consistency(),
            keys: keys.iter().map(|k| k.to_vec()).collect(),
        };
        call!(self, request, Reply::MultiGetOption(values) => values)
    }

    /// Keys in `range`, ascending.
    ///
    /// ```no_run
    /// # async fn demo(client: client::Client) -> Result<(), client::Error> {
    /// use client::KeyRange;
    /// // Keys from "a" (included) to "b" (excluded), at most 100.
    /// let range = KeyRange {
    ///     first: Some(b"a".to_vec()),
    ///     first_inclusive: true,
    ///     last: Some(b"b".to_vec()),
    ///     last_inclusive: false,
    ///     max: 100,
    /// };
    /// for key in client.range(&range).await? {
    ///     println!("{}", String::from_utf8_lossy(&key));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn range(&self, range: &KeyRange) -> Result<Vec<Vec<u8>>, Error> {
        let request = Request::Range {
            consistency: self.read_consistency(),
            range: range.clone(),
        };
        call!(self, request, Reply::Range(keys) => keys)
    }

    /// Entries in `range`, ascending by key.
    pub async fn range_entries(&self, range: &KeyRange) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Error> {
        let request = Request::RangeEntries {
            consistency: self.read_consistency(),
            range: range.clone(),
        };
        call!(self, request, Reply::RangeEntries(entries) => entries)
    }

    /// Entries in `range`, descending by key: `range.first` is the high end.
    pub async fn rev_range_entries(
        &self,
        range: &KeyRange,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Error> {
        let request = Request::RevRangeEntries {
            consistency: self.read_consistency(),
            range: range.clone(),
        };
        call!(self, request, Reply::RevRangeEntries(entries) => entries)
    }

    /// Keys starting with `prefix`, ascending, at most `max` (`None`: all).
    pub async fn prefix_keys(
        &self,
        prefix: &[u8],
        max: Option<usize>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let request = Request::PrefixKeys {
            consistency: self.read_consistency(),
            prefix: prefix.to_vec(),
            max: wire_max(max),
        };
        call!(self, request, Reply::PrefixKeys(keys) => keys)
    }

    /// If `key`'s value is `expected` (`None`: absent), sets it to `wanted`
    /// (`None`: deletes it). Returns the value found before: the update
    /// happened if and only if it equals `expected`.
    ///
    /// ```no_run
    /// # async fn demo(client: client::Client) -> Result<(), client::Error> {
    /// // Take a lock only if nobody holds it.
    /// let before = client.test_and_set(b"lock", None, Some(b"me")).await?;
    /// let taken = before.is_none();
    /// # Ok(()) }
    /// ```
    pub async fn test_and_set(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        wanted: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let request = Request::TestAndSet {
            key: key.to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            wanted: wanted.map(<[u8]>::to_vec),
        };
        call!(self, request, Reply::TestAndSet(before) => before)
    }

    /// Sets `key` to `wanted` (`None`: deletes it); returns the value before.
    pub async fn replace(
        &self,
        key: &[u8],
        wanted: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let request = Request::Replace {
            key: key.to_vec(),
            wanted: wanted.map(<[u8]>::to_vec),
        };
        call!(self, request, Reply::Replace(before) => before)
    }

    /// Deletes every key starting with `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &[u8]) -> Result<u64, Error> {
        let request = Request::DeletePrefix {
            prefix: prefix.to_vec(),
        };
        let (node, reply) = self.call(request).await?;
        match reply {
            Reply::DeletePrefix(count) => self.count(node, i64::from(count), "delete_prefix"),
            _ => Err(self.mismatch(node)),
        }
    }

    /// Applies `updates` (a `Vec<Update>` or a [`crate::Sequence`])
    /// atomically: all of them, or (when an assert or a delete fails) none,
    /// with that failure's error.
    ///
    /// ```no_run
    /// # async fn demo(client: client::Client) -> Result<(), client::Error> {
    /// use client::Update;
    /// client.sequence(vec![
    ///     Update::Assert { key: b"version".to_vec(), value: Some(b"1".to_vec()) },
    ///     Update::Set { key: b"version".to_vec(), value: b"2".to_vec() },
    ///     Update::Set { key: b"data".to_vec(), value: b"new".to_vec() },
    /// ]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn sequence(&self, updates: impl Into<Vec<Update>>) -> Result<(), Error> {
        let updates = updates.into();
        call!(self, Request::Sequence { updates }, Reply::Sequence => ())
    }

    /// As [`Client::sequence`], and the tlog is fsynced before the answer
    /// whatever the node's fsync setting.
    pub async fn synced_sequence(&self, updates: impl Into<Vec<Update>>) -> Result<(), Error> {
        let updates = updates.into();
        call!(self, Request::SyncedSequence { updates }, Reply::SyncedSequence => ())
    }

    /// Fails with [`Error::AssertionFailed`] unless `key`'s value is `value`
    /// (`None`: absent).
    pub async fn assert(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), Error> {
        let request = Request::Assert {
            consistency: self.read_consistency(),
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        };
        call!(self, request, Reply::Assert => ())
    }

    /// Fails with [`Error::AssertionFailed`] unless `key` exists.
    pub async fn assert_exists(&self, key: &[u8]) -> Result<(), Error> {
        let request = Request::AssertExists {
            consistency: self.read_consistency(),
            key: key.to_vec(),
        };
        call!(self, request, Reply::AssertExists => ())
    }

    /// Sets `key` to `value`, skipping consensus if it already has it.
    pub async fn confirm(&self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let request = Request::Confirm {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        call!(self, request, Reply::Confirm => ())
    }

    /// The master named by the node this handle talks to (for the cluster
    /// handle: by the master itself, so its own name). To find the master,
    /// use [`Client::master`].
    pub async fn who_master(&self) -> Result<Option<String>, Error> {
        call!(self, Request::WhoMaster, Reply::WhoMaster(master) =>
            master.map(|m| String::from_utf8_lossy(&m).into_owned()))
    }

    /// Whether the master thinks a majority is reachable.
    pub async fn expect_progress_possible(&self) -> Result<bool, Error> {
        call!(self, Request::ExpectProgressPossible, Reply::ExpectProgressPossible(b) => b)
    }

    /// The node's statistics (the `arakoon_stats` field).
    pub async fn statistics(&self) -> Result<NamedField, Error> {
        call!(self, Request::Statistics, Reply::Statistics(stats) => stats)
    }

    /// The node's software version.
    pub async fn version(&self) -> Result<NodeVersion, Error> {
        call!(self, Request::Version, Reply::Version { major, minor, patch, info } =>
            NodeVersion { major, minor, patch, info: String::from_utf8_lossy(&info).into_owned() })
    }

    /// The consistency that reads one's own writes so far on any node:
    /// `AtLeast(i)` (use with [`Client::with_consistency`]).
    pub async fn get_txid(&self) -> Result<Consistency, Error> {
        call!(self, Request::GetTxid, Reply::GetTxid(consistency) => consistency)
    }

    /// An update that changes nothing but goes through consensus.
    pub async fn nop(&self) -> Result<(), Error> {
        call!(self, Request::Nop, Reply::Nop => ())
    }

    /// How many keys the store holds.
    pub async fn get_key_count(&self) -> Result<u64, Error> {
        let (node, reply) = self.call(Request::GetKeyCount).await?;
        match reply {
            Reply::GetKeyCount(count) => self.count(node, count, "get_key_count"),
            _ => Err(self.mismatch(node)),
        }
    }

    /// The node's state, human-readable.
    pub async fn current_state(&self) -> Result<String, Error> {
        call!(self, Request::CurrentState, Reply::CurrentState(state) =>
            String::from_utf8_lossy(&state).into_owned())
    }

    /// The node's state as `key=value` lines (ours, not Arakoon's: what
    /// `arakoon --inspect-cluster` shows), with the term of its tlog entry
    /// `term_at` if asked (`term_at=I:TERM`, `none` if it does not hold
    /// it). Usually sent to one node: `client.node(name)?.inspect(None)`.
    ///
    /// With `fingerprint`, the node also gives a checksum of its whole
    /// store, `fingerprint=I:CRC32C:PAIRS` (I its applied index then): a
    /// scan of the store, so for a tool, not for a loop.
    pub async fn inspect(&self, term_at: Option<u64>, fingerprint: bool) -> Result<String, Error> {
        let term_at = term_at.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX));
        call!(self, Request::Inspect { term_at, fingerprint }, Reply::Inspect(state) =>
            String::from_utf8_lossy(&state).into_owned())
    }

    /// Asks the node (if master) to give up mastership. Usually sent to one
    /// node: `client.node(name)?.drop_master()`.
    pub async fn drop_master(&self) -> Result<(), Error> {
        call!(self, Request::DropMaster, Reply::DropMaster => ())
    }

    /// `get_db`: a consistent copy of the node's store (usually a slave's:
    /// `client.node(name)?.get_db(..)`; a master refuses, as Arakoon's
    /// does), written to `out` as it arrives, never whole in memory;
    /// `on_progress(bytes_done, bytes_total)` after each chunk. Returns the
    /// length. Not retried. On arakoon-rs the bytes are a redb store file.
    pub async fn get_db(
        &self,
        out: &mut (dyn std::io::Write + Send),
        mut on_progress: impl FnMut(u64, u64) + Send,
    ) -> Result<u64, Error> {
        self.download_db(out, &mut on_progress).await
    }

    /// `flush_store`: the node makes its store durable now.
    pub async fn flush_store(&self) -> Result<(), Error> {
        call!(self, Request::FlushStore, Reply::FlushStore => ())
    }

    /// `optimize_db` (Arakoon: the store rebuilt to reclaim space; a
    /// master refuses; arakoon-rs refuses on every node, naming the
    /// offline tool).
    pub async fn optimize_db(&self) -> Result<(), Error> {
        call!(self, Request::OptimizeDb, Reply::OptimizeDb => ())
    }

    /// `defrag_db`: as [`Self::optimize_db`].
    pub async fn defrag_db(&self) -> Result<(), Error> {
        call!(self, Request::DefragDb, Reply::DefragDb => ())
    }

    /// `copy_db_to_head n`: on a slave, the tlogs but the newest `n` are
    /// dropped once the store holds them (on arakoon-rs: the collapse
    /// keeping `n`); answered when done. A master refuses.
    pub async fn copy_db_to_head(&self, tlogs_to_keep: i32) -> Result<(), Error> {
        call!(self, Request::CopyDbToHead { tlogs_to_keep }, Reply::CopyDbToHead => ())
    }

    /// `collapse_tlogs`: asks the node (usually one on purpose:
    /// `client.node(name)?.collapse_tlogs(..)`; else the master) to collapse
    /// its tlog, keeping the newest `tlogs_to_keep` full tlogs (Arakoon's
    /// `n`, at least 1). The node first says how many it will remove, then
    /// reports each: `on_removed(done, total, elapsed)`, `elapsed` being
    /// the node's opaque progress value (microseconds since the start on
    /// arakoon-rs). Returns the count. Never retried; `n < 1` or a collapse
    /// already running is the node's [`Error::Server`] (`E_UNKNOWN_FAILURE`).
    ///
    /// ```no_run
    /// # async fn demo(client: client::Client) -> Result<(), client::Error> {
    /// let removed = client
    ///     .node("arakoon_0")?
    ///     .collapse_tlogs(5, |done, total, _| println!("{done}/{total}"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn collapse_tlogs(
        &self,
        tlogs_to_keep: i32,
        mut on_removed: impl FnMut(u32, u32, i64),
    ) -> Result<u32, Error> {
        self.collapse(tlogs_to_keep, &mut on_removed).await
    }

    /// Sends any request and returns its reply, with the same routing and
    /// retry rules as the typed methods (for tools that build requests
    /// themselves). `collapse_tlogs`, whose answer is a stream of frames, is
    /// refused: use [`Client::collapse_tlogs`].
    ///
    /// ```no_run
    /// # async fn demo(client: client::Client) -> Result<(), client::Error> {
    /// use client::{Reply, Request};
    /// let reply = client.request(Request::GetKeyCount).await?;
    /// assert!(matches!(reply, Reply::GetKeyCount(_)));
    /// # Ok(()) }
    /// ```
    pub async fn request(&self, request: Request) -> Result<Reply, Error> {
        if request.command() == protocol::Command::CollapseTlogs {
            return Err(Error::Config(
                "collapse_tlogs answers with a stream of frames; this client does not read it"
                    .to_string(),
            ));
        }
        let (_, reply) = self.call(request).await?;
        Ok(reply)
    }

    /// The node's greeting (it names its version); `client_id` is free text.
    pub async fn ping(&self, client_id: &str) -> Result<String, Error> {
        let request = Request::Ping {
            client_id: client_id.as_bytes().to_vec(),
            cluster_id: self.cluster_id().as_bytes().to_vec(),
        };
        call!(self, request, Reply::Ping(greeting) =>
            String::from_utf8_lossy(&greeting).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limit_is_minus_one_and_big_limits_saturate() {
        assert_eq!(wire_max(None), -1);
        assert_eq!(wire_max(Some(100)), 100);
        assert_eq!(wire_max(Some(usize::MAX)), i32::MAX);
    }
}
