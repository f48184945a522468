//! The commands: what each request does (reads from the store under the
//! asked consistency, updates through the driver, the node's own state),
//! and the result codes of every failure.

use super::Service;
use crate::state::{Answered, DirectReply, DriverRequest, Refused};
use crate::stop::stopped;
use consensus::Role;
use protocol::{Command, Consistency, ErrorResponse, Reply, Request, Response, ResultCode, Update};
use replica::reads::{Gate, ReadConsistency, ReadGate, ReadRefusal, ReadTiming};
use replica::Published;
use std::sync::Arc;
use std::time::Instant;
use store::{Order, ReadView, StoreError, UpdateFailure, UpdateOk};
use tokio::sync::oneshot;

fn error(rc: ResultCode, message: impl Into<Vec<u8>>) -> ErrorResponse {
    ErrorResponse::new(rc, message)
}

fn internal(what: &str, e: impl std::fmt::Display) -> ErrorResponse {
    tracing::error!("{what}: {e}");
    error(
        ResultCode::UnknownFailure,
        format!("{what} failed on the node (see its log)"),
    )
}

fn store_error(e: StoreError) -> ErrorResponse {
    match e {
        StoreError::KeyNotFound { key } => error(ResultCode::NotFound, key),
        e @ StoreError::AnswerTooLarge { .. } => error(ResultCode::BadInput, e.to_string()),
        e => internal("store read", e),
    }
}

fn failure_response(f: UpdateFailure) -> ErrorResponse {
    match f {
        UpdateFailure::NotFound { key } => error(ResultCode::NotFound, key),
        UpdateFailure::AssertionFailed { key } => error(ResultCode::AssertionFailed, key),
        // Arakoon, inside a sequence: E_NOT_FOUND (its message: Not_found).
        f @ UpdateFailure::UserFunctionNotFound { .. } => {
            error(ResultCode::NotFound, f.to_string())
        }
        f @ UpdateFailure::RangeAssertionFailed { .. } => {
            error(ResultCode::AssertionFailed, f.to_string())
        }
    }
}

/// The largest value an update carries: what statistics average.
fn largest_value(update: &Update) -> usize {
    match update {
        Update::Sequence(inner) | Update::SyncedSequence(inner) => {
            inner.iter().map(largest_value).max().unwrap_or(0)
        }
        other => set_like_value(other).unwrap_or(0),
    }
}

/// The length of the value a `set`-like command writes, for
/// `max_value_size` (sequences are not checked, as in Arakoon).
fn set_like_value(update: &Update) -> Option<usize> {
    match update {
        Update::Set { value, .. } => Some(value.len()),
        Update::TestAndSet { wanted, .. } | Update::Replace { wanted, .. } => {
            wanted.as_ref().map(Vec::len)
        }
        _ => None,
    }
}

/// The Arakoon release line whose clients and tools this node serves:
/// `version` answers it (Arakoon's tools check the major), `ping` names it.
pub const ARAKOON_RELEASE: (i32, i32, i32) = (1, 9, 0);

/// `ping`'s answer, as Arakoon's: `Arakoon <version>`.
fn ping_greeting() -> String {
    let (major, minor, patch) = ARAKOON_RELEASE;
    format!("Arakoon {major}.{minor}.{patch}")
}

/// `version`'s info string, in Arakoon's three lines, naming this
/// implementation and its own version.
fn version_info() -> String {
    format!(
        "revision: arakoon-rs {}\ncompiled: arakoon-rs {}\nmachine: {}-{}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// `E_NOT_MASTER` naming the master, or `None` (Arakoon's message) when
/// none is known.
fn not_master_error(master: Option<String>) -> ErrorResponse {
    error(
        ResultCode::NotMaster,
        master.unwrap_or_else(|| "None".to_string()),
    )
}

impl Service {
    fn name(&self) -> &str {
        &self.settings.node().name
    }

    fn master_name(&self, p: &Published) -> Option<String> {
        if p.role == Role::Master {
            return Some(self.name().to_string());
        }
        p.master.map(|m| self.settings.name_of(m).to_string())
    }

    /// `expect_progress_possible`, as Arakoon computes it: this node is the
    /// master (holding its lease) and a quorum of voters, itself included,
    /// is at its last index or one short of it (a slave far behind, such as
    /// one just restarted empty, does not count). Any other node: false.
    fn progress_possible(&self, p: &Published) -> bool {
        if p.going_down || p.role != Role::Master || p.lease.is_none() {
            return false;
        }
        let consensus = &self.settings.consensus;
        let near = p.tlog_last_index.saturating_sub(1);
        let caught_up = p
            .peers_match
            .iter()
            .filter(|(id, matched)| consensus.voters.contains(id) && *matched >= near)
            .count();
        1 + caught_up >= consensus.quorum_size()
    }

    /// `drop_master`'s answer comes as Arakoon's does: once another node
    /// holds mastership, and half a lease period after that (Arakoon waits
    /// for the hand-over, then `0.5 × lease`). A node that was not master
    /// answers at once. If no other master is known within twice the
    /// longest election timeout, the answer is `E_UNKNOWN_FAILURE` saying so.
    /// (Asked of a node that is not master: the answer comes at once.)
    async fn await_hand_over(&self) -> Result<(), ErrorResponse> {
        let consensus = &self.settings.consensus;
        let limit = consensus.election_timeout_max * 2 + consensus.lease_period;
        let mut rx = self.published.clone();
        let handed = tokio::time::timeout(limit, async {
            loop {
                {
                    let p = rx.borrow_and_update();
                    if p.role != Role::Master && p.master.is_some_and(|m| m != self.settings.id()) {
                        return true;
                    }
                }
                if rx.changed().await.is_err() {
                    return false;
                }
            }
        })
        .await;
        match handed {
            Ok(true) => {
                tokio::time::sleep(consensus.lease_period / 2).await;
                Ok(())
            }
            Ok(false) => Err(Self::going_down()),
            Err(_) => Err(error(
                ResultCode::UnknownFailure,
                format!("drop_master: no other node took mastership within {limit:?}"),
            )),
        }
    }

    /// The most bytes of keys and values a range, prefix or multi-get
    /// answer may hold:
    /// `max_buffer_size`, beyond which no Arakoon client reads an answer
    /// (a larger one is refused, `E_BAD_INPUT`, without being built).
    fn answer_max_bytes(&self) -> usize {
        self.settings.cluster.max_buffer_size
    }

    fn not_master(&self, p: &Published) -> ErrorResponse {
        not_master_error(self.master_name(p))
    }

    pub(super) fn going_down() -> ErrorResponse {
        error(ResultCode::GoingDown, "the node is going down")
    }

    pub(super) async fn handle(&self, request: Request, direct: Direct<'_>) -> Handled {
        let command = request.command();
        let started = Instant::now();
        let mut delivered = None;
        let result = self.dispatch(request, direct, &mut delivered).await;
        match result {
            Ok((reply, size)) => {
                // An answer the driver wrote itself was the client's when
                // the driver handed it over (see `answer.rs`), not when
                // this task picked it up.
                let answered_at = delivered
                    .as_ref()
                    .and_then(|d: &Delivered| d.quiet_at)
                    .unwrap_or_else(Instant::now);
                let took = answered_at.saturating_duration_since(started);
                self.stats.record(command, took, size);
                self.metrics.request_done(command, took);
                Handled {
                    response: Response::Ok(reply),
                    by_driver: delivered.map(|d| (d.done, d.written)),
                }
            }
            Err(e) => {
                self.metrics.request_failed(command);
                Handled {
                    response: Response::Error(e),
                    by_driver: None,
                }
            }
        }
    }

    /// Serves one request; the size is what statistics average, if any.
    /// An update's success the driver wrote to the client's socket (part
    /// of it, or all) comes back in `delivered`.
    async fn dispatch(
        &self,
        request: Request,
        direct: Direct<'_>,
        delivered: &mut Option<Delivered>,
    ) -> Result<(Reply, Option<usize>), ErrorResponse> {
        let p = self.published.borrow().clone();
        let command = request.command();
        Ok(match request {
            Request::Ping { cluster_id, .. } => {
                if cluster_id != self.settings.cluster.cluster_id.as_bytes() {
                    // As Arakoon: 0xff (and the connection is closed).
                    return Err(error(
                        ResultCode::UnknownFailure,
                        format!(
                            "wrong cluster id {:?}: this node is in cluster {:?}",
                            String::from_utf8_lossy(&cluster_id),
                            self.settings.cluster.cluster_id
                        ),
                    ));
                }
                (Reply::Ping(ping_greeting().into_bytes()), None)
            }
            Request::WhoMaster => {
                // As Arakoon: a master whose lease has run out, as this node
                // sees it, is no master (`None`).
                let lease_gone =
                    p.role == Role::Master && p.lease.is_none_or(|l| self.clock.now() >= l.until);
                let master = if lease_gone {
                    None
                } else {
                    self.master_name(&p)
                };
                (Reply::WhoMaster(master.map(String::into_bytes)), None)
            }
            Request::ExpectProgressPossible => (
                Reply::ExpectProgressPossible(self.progress_possible(&p)),
                None,
            ),
            Request::Statistics => {
                let mut node_is = vec![(self.name().to_string(), p.tlog_last_index)];
                for (id, i) in &p.peers_match {
                    node_is.push((self.settings.name_of(*id).to_string(), *i));
                }
                (Reply::Statistics(self.stats.to_field(node_is)), None)
            }
            Request::Version => {
                let (major, minor, patch) = ARAKOON_RELEASE;
                (
                    Reply::Version {
                        major,
                        minor,
                        patch,
                        info: version_info().into_bytes(),
                    },
                    None,
                )
            }
            Request::CurrentState => {
                let mut catching_up = p
                    .catch_up
                    .map(|c| format!(", catching up {c}"))
                    .unwrap_or_default();
                if let Some(s) = p.snapshot {
                    catching_up.push_str(&format!(
                        ", receiving a store snapshot at i = {} from {}: {s}",
                        s.index,
                        self.settings.name_of(s.from)
                    ));
                }
                if p.snapshots_sending > 0 {
                    catching_up.push_str(&format!(
                        ", sending {} store snapshot(s)",
                        p.snapshots_sending
                    ));
                }
                let state = format!(
                    "node {}: {} ({}) in n = {}, master {}, tlog last i = {}, committed {}, applied {}, lease {}{catching_up}{}",
                    self.name(),
                    p.role,
                    p.standing,
                    p.term,
                    self.master_name(&p).unwrap_or_else(|| "unknown".into()),
                    p.tlog_last_index,
                    p.commit_index,
                    p.applied_index,
                    if p.lease.is_some() { "held" } else { "not held" },
                    if p.going_down { ", going down" } else { "" }
                );
                (Reply::CurrentState(state.into_bytes()), None)
            }
            Request::GetTxid => {
                // Answered as a `Consistent` read: only by a master that
                // holds its lease, once it applied its read index (a slave
                // answers `E_NOT_MASTER`). The index then covers every
                // update any master acknowledged before this request, not
                // only those answered here: read-your-writes with
                // `AtLeast` holds across a failover (a new master's
                // applied index can lag what its predecessor answered).
                self.read_gate(Consistency::Consistent).await?;
                let answered = self.published.borrow().answered_index;
                (
                    Reply::GetTxid(Consistency::AtLeast(
                        i64::try_from(self.store.applied_index().max(answered)).unwrap_or(i64::MAX),
                    )),
                    None,
                )
            }
            Request::GetKeyCount => {
                let n = self
                    // A `Consistent` read, as Arakoon's: a slave answers
                    // `E_NOT_MASTER`.
                    .read(Consistency::Consistent, ReadCost::Scan, |v| v.key_count())
                    .await?;
                (
                    Reply::GetKeyCount(i64::try_from(n).unwrap_or(i64::MAX)),
                    None,
                )
            }
            Request::DropMaster => {
                if self.settings.cluster.nodes.len() == 1 {
                    return Err(error(
                        ResultCode::NotSupported,
                        "drop_master is not supported for singletons",
                    ));
                }
                let was_master = self.published.borrow().role == Role::Master;
                let (tx, rx) = oneshot::channel();
                self.requests
                    .send(DriverRequest::DropMaster { reply: tx })
                    .await
                    .map_err(|_| Self::going_down())?;
                match rx.await {
                    Ok(Ok(())) => {
                        if was_master {
                            self.await_hand_over().await?;
                        }
                        (Reply::DropMaster, None)
                    }
                    Ok(Err(reason)) => return Err(error(ResultCode::UnknownFailure, reason)),
                    Err(_) => return Err(Self::going_down()),
                }
            }
            Request::Exists { consistency, key } => {
                let b = self
                    .read(consistency, ReadCost::Point, move |v| v.exists(&key))
                    .await?;
                (Reply::Exists(b), None)
            }
            Request::Get { consistency, key } => {
                let value = self
                    .read(consistency, ReadCost::Point, move |v| v.get(&key))
                    .await?
                    // Arakoon's message for a missing key on `get`.
                    .ok_or_else(|| error(ResultCode::NotFound, "Not_found"))?;
                let size = value.len();
                (Reply::Get(value), Some(size))
            }
            Request::Assert {
                consistency,
                key,
                value,
            } => {
                let (found, key) = self
                    .read(consistency, ReadCost::Point, move |v| {
                        Ok((v.get(&key)?, key))
                    })
                    .await?;
                if found != value {
                    return Err(error(ResultCode::AssertionFailed, key));
                }
                (Reply::Assert, None)
            }
            Request::AssertExists { consistency, key } => {
                let (found, key) = self
                    .read(consistency, ReadCost::Point, move |v| {
                        Ok((v.exists(&key)?, key))
                    })
                    .await?;
                if !found {
                    return Err(error(ResultCode::AssertionFailed, key));
                }
                (Reply::AssertExists, None)
            }
            Request::MultiGet { consistency, keys } => {
                let cost = ReadCost::of_keys(keys.len());
                let max_bytes = self.answer_max_bytes();
                let values = self
                    .read(consistency, cost, move |v| v.multi_get(&keys, max_bytes))
                    .await?;
                let n = values.len();
                (Reply::MultiGet(values), Some(n))
            }
            Request::MultiGetOption { consistency, keys } => {
                let cost = ReadCost::of_keys(keys.len());
                let max_bytes = self.answer_max_bytes();
                let values = self
                    .read(consistency, cost, move |v| {
                        v.multi_get_option(&keys, max_bytes)
                    })
                    .await?;
                let n = values.len();
                (Reply::MultiGetOption(values), Some(n))
            }
            Request::Range { consistency, range } => {
                let max_bytes = self.answer_max_bytes();
                let keys = self
                    .read(consistency, ReadCost::Scan, move |v| {
                        v.range(&range, max_bytes)
                    })
                    .await?;
                let n = keys.len();
                (Reply::Range(keys), Some(n))
            }
            Request::RangeEntries { consistency, range }
            | Request::RevRangeEntries { consistency, range } => {
                let order = if command == Command::RevRangeEntries {
                    Order::Descending
                } else {
                    Order::Ascending
                };
                let max_bytes = self.answer_max_bytes();
                let entries = self
                    .read(consistency, ReadCost::Scan, move |v| {
                        v.range_entries(&range, order, max_bytes)
                    })
                    .await?;
                let n = entries.len();
                let reply = match order {
                    Order::Ascending => Reply::RangeEntries(entries),
                    Order::Descending => Reply::RevRangeEntries(entries),
                };
                (reply, Some(n))
            }
            Request::PrefixKeys {
                consistency,
                prefix,
                max,
            } => {
                let max_bytes = self.answer_max_bytes();
                let keys = self
                    .read(consistency, ReadCost::Scan, move |v| {
                        v.prefix_keys(&prefix, i64::from(max), max_bytes)
                    })
                    .await?;
                let n = keys.len();
                (Reply::PrefixKeys(keys), Some(n))
            }
            Request::Confirm { key, value } => {
                // A set that skips consensus when the value is already there
                // (checked with a Consistent read, so it is linearizable).
                let (k, v) = (key.clone(), value.clone());
                let found = self
                    .read(Consistency::Consistent, ReadCost::Point, move |view| {
                        view.get(&k)
                    })
                    .await?;
                if found.as_deref() != Some(v.as_slice()) {
                    self.update(Update::Set { key, value }, None).await?;
                }
                (Reply::Confirm, None)
            }
            Request::FlushStore => (self.flush_store().await?, None),
            Request::OptimizeDb | Request::DefragDb => {
                return Err(self.compact_store(command));
            }
            Request::CopyDbToHead { tlogs_to_keep } => {
                (self.copy_db_to_head(tlogs_to_keep).await?, None)
            }
            Request::GetDb => {
                // Its answer is a stream: `serve_get_db` (admin.rs).
                return Err(internal(
                    "dispatch",
                    "get_db is served by the connection's stream",
                ));
            }
            Request::CollapseTlogs { .. } => {
                // Its answer is a stream: `serve_collapse` (collapse.rs).
                return Err(internal(
                    "dispatch",
                    "collapse_tlogs is served by the connection's stream",
                ));
            }
            Request::UserFunction { name, .. } => {
                // No user function is registered on this node, so every
                // name is unknown: Arakoon's answer, before consensus.
                return Err(error(
                    ResultCode::BadInput,
                    format!(
                        "User function \"{}\" could not be found",
                        name.escape_ascii()
                    ),
                ));
            }
            Request::Inspect {
                term_at,
                fingerprint,
            } => {
                let term_at = u64::try_from(term_at).ok();
                let state = self.inspect(&p, term_at, fingerprint).await?;
                (Reply::Inspect(state.into_bytes()), None)
            }
            Request::GetNurseryCfg => {
                return Err(error(
                    ResultCode::NotSupported,
                    format!("{} is not supported by this node", request_name(&request)),
                ))
            }
            request => {
                let name = request_name(&request);
                let update = match request.into_update() {
                    Ok(u) => u,
                    Err(other) => {
                        return Err(internal(
                            "dispatch",
                            format!("request {:?} has no handler", other.command()),
                        ))
                    }
                };
                let size = largest_value(&update);
                let (result, by_driver) = self.update(update, Some((command, direct))).await?;
                *delivered = by_driver;
                let reply = match result {
                    UpdateOk::Done => match done_reply(command) {
                        Some(reply) => reply,
                        None => {
                            return Err(internal("update", format!("{name}: unexpected answer")))
                        }
                    },
                    UpdateOk::Previous(v) => match command {
                        Command::TestAndSet => Reply::TestAndSet(v),
                        Command::Replace => Reply::Replace(v),
                        _ => return Err(internal("update", format!("{name}: unexpected answer"))),
                    },
                    UpdateOk::Count(n) => Reply::DeletePrefix(i32::try_from(n).unwrap_or(i32::MAX)),
                };
                (reply, Some(size))
            }
        })
    }

    /// Proposes one update through the driver and waits for its own result.
    /// With `direct` (the request's command and the connection's side), a
    /// plain success may be written to the client by the driver itself:
    /// what it wrote comes back as [`Delivered`].
    async fn update(
        &self,
        update: Update,
        direct: Option<(Command, Direct<'_>)>,
    ) -> Result<(UpdateOk, Option<Delivered>), ErrorResponse> {
        {
            let p = self.published.borrow();
            if p.going_down {
                return Err(Self::going_down());
            }
            if self.settings.read_only() {
                return Err(error(ResultCode::ReadOnly, "the cluster is read-only"));
            }
            if p.role != Role::Master {
                return Err(self.not_master(&p));
            }
        }
        if let Some(why) = self.disk_space.low() {
            return Err(error(ResultCode::ReadOnly, why));
        }
        // As Arakoon: a `set`-like command's value is refused from
        // `max_value_size` on (not above it); a sequence's values are bounded
        // by `max_buffer_size` and the entry limit only.
        let max_value = self.settings.cluster.max_value_size;
        if set_like_value(&update).is_some_and(|len| len >= max_value) {
            return Err(error(ResultCode::UnknownFailure, "value too large"));
        }
        let direct_reply = direct.and_then(|(command, d)| {
            let socket = d.socket?;
            let reply = done_reply(command)?;
            let mut done = Vec::new();
            protocol::encode_response(&Response::Ok(reply), &mut done);
            Some(DirectReply {
                socket: Arc::clone(socket),
                done,
            })
        });
        let (tx, rx) = crate::answer::channel();
        self.requests
            .send(DriverRequest::Update {
                update,
                reply: tx,
                direct: direct_reply,
            })
            .await
            .map_err(|_| Self::going_down())?;
        // A quiet answer (the driver wrote it whole to the client) is picked
        // up when the client's next request makes the socket readable, or
        // when the node stops.
        let mut stop = self.stop.clone();
        let answered = tokio::select! {
            biased;
            a = rx.recv(direct.and_then(|(_, d)| d.stream)) => a,
            () = stopped(&mut stop) => rx.recv(None).await,
        };
        let Answered {
            answer,
            written,
            quiet_at,
            done,
        } = answered.ok_or_else(Self::going_down)?;
        match answer {
            Ok(Ok(ok)) => {
                let delivered = done.map(|done| Delivered {
                    done,
                    written,
                    quiet_at,
                });
                Ok((ok, delivered))
            }
            Ok(Err(failure)) => Err(failure_response(failure)),
            Err(refused) => Err(self.refused(refused)),
        }
    }

    fn refused(&self, refused: Refused) -> ErrorResponse {
        match refused {
            Refused::NotMaster(m) => {
                not_master_error(m.map(|m| self.settings.name_of(m).to_string()))
            }
            Refused::NoLongerMaster => error(
                ResultCode::NoLongerMaster,
                "lost mastership while handling the request: the outcome is unknown",
            ),
            Refused::GoingDown { proposed: false } => Self::going_down(),
            Refused::GoingDown { proposed: true } => error(
                ResultCode::GoingDown,
                "the node is going down: the outcome of the update is unknown",
            ),
            Refused::ReadOnly => error(ResultCode::ReadOnly, "the cluster is read-only"),
            Refused::DiskFull(why) => error(ResultCode::ReadOnly, why),
            Refused::TooLarge { bytes, limit } => error(
                ResultCode::BadInput,
                format!("an update of {bytes} bytes exceeds the entry limit of {limit} bytes"),
            ),
        }
    }

    /// Waits at the read gate of `crates/replica` (the simulator's too)
    /// until a read at `consistency` may be served here, or says why not.
    async fn read_gate(&self, consistency: Consistency) -> Result<(), ErrorResponse> {
        let wanted = match consistency {
            Consistency::Consistent => ReadConsistency::Consistent,
            Consistency::NoGuarantee => ReadConsistency::NoGuarantee,
            Consistency::AtLeast(i) => ReadConsistency::AtLeast(u64::try_from(i).unwrap_or(0)),
        };
        let timing = ReadTiming {
            lease_period: self.settings.consensus.lease_period,
            heartbeat_interval: self.settings.consensus.heartbeat_interval,
        };
        let mut gate = ReadGate::new(wanted, timing, self.clock.now());
        let mut rx = self.published.clone();
        loop {
            let decision = {
                let p = rx.borrow_and_update();
                gate.check(&p, self.store.applied_index(), self.clock.now())
            };
            let until = match decision {
                Gate::Serve => return Ok(()),
                Gate::Refuse(refusal) => return Err(self.read_refused(refusal)),
                Gate::Wait {
                    until,
                    apply_wanted,
                } => {
                    if apply_wanted {
                        self.apply_wanted.notify_one();
                    }
                    until
                }
            };
            let deadline = tokio::time::Instant::from_std(self.clock.instant_at(until));
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) | Err(_) => {} // ask the gate again
                Ok(Err(_)) => return Err(Self::going_down()),
            }
        }
    }

    fn read_refused(&self, refusal: ReadRefusal) -> ErrorResponse {
        match refusal {
            ReadRefusal::GoingDown => Self::going_down(),
            ReadRefusal::NotMaster(m) => {
                not_master_error(m.map(|m| self.settings.name_of(m).to_string()))
            }
            // No master known that holds a lease.
            ReadRefusal::NoLease => not_master_error(None),
            // As Arakoon: a read never answers `E_NO_LONGER_MASTER` (its
            // Python client does not retry on it); this node is no master
            // any more, and does not know which one is.
            ReadRefusal::NoLongerMaster(why) => {
                tracing::debug!("read refused: {why}");
                not_master_error(None)
            }
            ReadRefusal::Inconsistent { applied, wanted } => error(
                ResultCode::InconsistentRead,
                format!("this node has applied up to {applied}, not yet {wanted}"),
            ),
        }
    }

    /// A read at `consistency` from one view of the store: a
    /// [`ReadCost::Point`] read on this task, a [`ReadCost::Scan`] on a
    /// blocking thread.
    async fn read<R: Send + 'static>(
        &self,
        consistency: Consistency,
        cost: ReadCost,
        f: impl FnOnce(&ReadView) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ErrorResponse> {
        self.read_gate(consistency).await?;
        let at_least = consistency.at_least_index();
        let store = Arc::clone(&self.store);
        let read = move || {
            let view = store.read().map_err(store_error)?;
            if let Some(i) = at_least {
                let applied = view.applied_index();
                if applied < i {
                    return Err(error(
                        ResultCode::InconsistentRead,
                        format!("this node has applied up to {applied}, not yet {i}"),
                    ));
                }
            }
            f(&view).map_err(store_error)
        };
        match cost {
            ReadCost::Point => read(),
            ReadCost::Scan => match tokio::task::spawn_blocking(read).await {
                Ok(r) => r,
                Err(e) => Err(internal("read task", e)),
            },
        }
    }
}

/// The reply to an update request of `command` that succeeded with
/// [`UpdateOk::Done`]; `None` for commands that answer something else.
fn done_reply(command: Command) -> Option<Reply> {
    Some(match command {
        Command::Set => Reply::Set,
        Command::Delete => Reply::Delete,
        Command::Sequence => Reply::Sequence,
        Command::SyncedSequence => Reply::SyncedSequence,
        Command::Nop => Reply::Nop,
        _ => return None,
    })
}

/// A request's answer, as its connection writes it.
pub(super) struct Handled {
    pub response: Response,
    /// The success answer as the driver encoded it for the client's socket,
    /// and how many of its bytes the driver wrote already: the connection
    /// writes the rest (the answer is encoded once).
    pub by_driver: Option<(Vec<u8>, usize)>,
}

/// What the driver did with an update's success on the client's socket.
pub(super) struct Delivered {
    /// The encoded success answer.
    pub done: Vec<u8>,
    /// How many of its bytes the driver wrote.
    pub written: usize,
    /// When it handed over an answer it wrote whole (quietly, `answer.rs`).
    pub quiet_at: Option<Instant>,
}

/// What a request's handler gets of its connection for direct answers: a
/// duplicate of its socket for the driver (`None` if `dup` failed: the
/// connection then answers everything itself), and the client's socket,
/// through which the client's next request picks up a quiet answer (see
/// `answer.rs`); `stream` is `None` when the connection already holds
/// bytes of a next request (a pipelining client): the socket may then stay
/// quiet while the client waits for its answers, so every answer wakes the
/// connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Direct<'a> {
    pub socket: Option<&'a Arc<std::net::TcpStream>>,
    pub stream: Option<&'a tokio::net::TcpStream>,
}

/// Most keys of a `multi_get` served as a point read.
const POINT_READ_KEYS_MAX: usize = 16;

/// Where a read runs. A point read (a few keys: tens of microseconds from
/// the store's cache) runs on the connection's task: handing it to a
/// blocking thread and back cost more than the read (a `get` took 78 µs
/// p50 that way and 61 µs inline, and 64 clients read 2.2 times as much
/// per second, on the 2-core test machine). A scan, whose size the client
/// chooses, runs on a blocking thread so that it never holds up the
/// runtime's workers and the other connections on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadCost {
    Point,
    Scan,
}

impl ReadCost {
    fn of_keys(n: usize) -> ReadCost {
        if n <= POINT_READ_KEYS_MAX {
            ReadCost::Point
        } else {
            ReadCost::Scan
        }
    }
}

fn request_name(request: &Request) -> &'static str {
    request.command().name()
}
