//! From the cluster config to what the node runs with: node ids, the
//! consensus config (timing derived from `lease_period`), and every limit.
//!
//! # Timing, from `lease_period` (L)
//!
//! | what | value | why |
//! |---|---|---|
//! | heartbeat interval | L / 10 | ten renewals per lease: a few lost heartbeats do not cost the lease |
//! | election timeout | random in [L, 1.5·L) | no slave campaigns while a lease it granted may run (the core's guard is L anyway); a spread of L/2 (hundreds of milliseconds) is ample against split votes, and keeps a failover within Arakoon's bound of about two lease periods (`crates/cli/tests/failover_timing.rs`) |
//! | max clock drift margin | L / 10 | the master trusts its lease for 0.9·L after the acknowledged send time |
//! | tick | heartbeat / 2 | the core asks for at least that |
//! | slave apply delay | `slave_apply_delay` (10 ms) | a slave applies committed entries in batches, at the latest then (at once for an `AtLeast` read): fewer store transactions, off the master's critical moments |
//! | commit announcement delay | 1 ms (the core's default) | a new commit index waits that long for an append to carry it before a heartbeat does: one slave wake-up per write saved; an `AtLeast(i)` read on a slave whose tlog holds `i` waits for the commit (up to one heartbeat interval) rather than failing |
//!
//! So a dead master is replaced after about L to 1.5·L (plus one pre-vote
//! and one vote round trip; a witness tries only after 2.5·L), and a master cut off from its quorum stops serving
//! `Consistent` reads within 0.9·L of its last acknowledged heartbeat.

use crate::error::NodeError;
use config::{ClusterConfig, MasterMode, NodeConfig};
use consensus::NodeId;
use std::time::Duration;

/// Most client connections served at once; one more is answered
/// `E_MAX_CONNECTIONS` and closed.
pub const MAX_CLIENT_CONNECTIONS: usize = 1024;
/// Target size of one group-commit batch (one tlog entry); a single update
/// larger than this still goes alone.
pub const BATCH_TARGET_BYTES: usize = 1 << 20;
/// Most updates in one batch.
pub const BATCH_MAX_UPDATES: usize = 10_000;
/// Update requests queued for the driver (all connections together); a full
/// queue makes connection tasks wait (back-pressure), never the driver.
pub const DRIVER_QUEUE_CAPACITY: usize = 4096;
/// Consensus messages received and not yet stepped.
pub const INBOUND_QUEUE_CAPACITY: usize = 4096;
/// Consensus messages queued for one peer; beyond it they are dropped
/// (consensus tolerates loss; the driver never waits on the network).
pub const PEER_QUEUE_CAPACITY: usize = 256;
/// Room in an entry's payload above the largest client request (batch header).
const ENTRY_OVERHEAD_BYTES: usize = 64 << 10;

/// One node's view of the cluster config, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cluster: ClusterConfig,
    /// This node's position in `cluster.nodes`.
    pub me: usize,
    pub consensus: consensus::Config,
    pub decode_limits: consensus::DecodeLimits,
    /// Limits of the client protocol decoder (requests) and of entry payloads.
    pub request_limits: protocol::Limits,
    pub payload_limits: protocol::Limits,
    pub tick_interval: Duration,
    /// TLS, when the config has `tls_ca_cert` (see [`NodeTls`]).
    pub tls: Option<NodeTls>,
}

/// A node's TLS, made once at start from the config's files (Arakoon's
/// rules: `tls_ca_cert` turns on mutual TLS between nodes, and every node
/// then needs `tls_cert` and `tls_key`; `tls_service` adds TLS on the
/// client port, `tls_service_validate_peer` client certificates there).
#[derive(Clone)]
pub struct NodeTls {
    /// Incoming messaging connections: a peer's certificate is required.
    pub messaging_acceptor: tls::TlsAcceptor,
    /// Outgoing messaging connections, with this node's certificate.
    pub messaging_connector: tls::TlsConnector,
    /// The client port's, with `tls_service`.
    pub service: Option<tls::TlsAcceptor>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("service", &self.service.is_some())
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// `None` without `tls_ca_cert`. Refused: a node with `tls_cert` but
    /// no `tls_ca_cert` (plaintext where a certificate shows TLS was
    /// meant), a TLS cluster whose node has no certificate, and any file
    /// that cannot be read or used (the error names key and file).
    fn from_config(
        cluster: &ClusterConfig,
        node: &NodeConfig,
    ) -> Result<Option<NodeTls>, NodeError> {
        let identity = match (&node.tls_cert, &node.tls_key) {
            (Some(cert), Some(key)) => Some(tls::Identity {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        let Some(global) = &cluster.tls else {
            if identity.is_some() {
                return Err(NodeError::Config(format!(
                    "[{}] tls_cert is set but [global] tls_ca_cert is not: set tls_ca_cert \
                     (the CA that signed every node) to use TLS, or remove tls_cert and tls_key",
                    node.name
                )));
            }
            return Ok(None);
        };
        let Some(identity) = identity else {
            return Err(NodeError::Config(format!(
                "[{}] tls_cert and tls_key are needed: [global] tls_ca_cert is set, and nodes \
                 talk to each other over mutual TLS",
                node.name
            )));
        };
        let tls_error = |e: tls::Error| NodeError::Config(format!("TLS: {e}"));
        let version = tls::MinVersion::parse(&global.version).map_err(tls_error)?;
        let ca = &global.ca_cert;
        let messaging_acceptor =
            tls::node_acceptor(ca, &identity, tls::ClientAuth::Required, version)
                .map_err(tls_error)?;
        let messaging_connector =
            tls::connector(ca, Some(&identity), version).map_err(tls_error)?;
        let service = if global.service {
            let auth = if global.service_validate_peer {
                tls::ClientAuth::Required
            } else {
                tls::ClientAuth::None
            };
            Some(tls::node_acceptor(ca, &identity, auth, version).map_err(tls_error)?)
        } else {
            None
        };
        Ok(Some(NodeTls {
            messaging_acceptor,
            messaging_connector,
            service,
        }))
    }
}

impl Settings {
    /// Resolves `name` in `cluster` and derives the consensus config.
    pub fn new(cluster: ClusterConfig, name: &str) -> Result<Settings, NodeError> {
        let me = cluster
            .nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| NodeError::UnknownNode {
                name: name.to_string(),
                known: cluster.nodes.iter().map(|n| n.name.clone()).collect(),
            })?;
        let id_of = |name: &str| -> Result<NodeId, NodeError> {
            cluster
                .nodes
                .iter()
                .position(|n| n.name == name)
                .map(|p| NodeId(p as u64))
                .ok_or_else(|| NodeError::Config(format!("[global] names unknown node {name}")))
        };
        let voters: Vec<NodeId> = (0..cluster.nodes.len())
            .filter(|&p| !cluster.nodes[p].learner)
            .map(|p| NodeId(p as u64))
            .collect();
        let learners: Vec<NodeId> = (0..cluster.nodes.len())
            .filter(|&p| cluster.nodes[p].learner)
            .map(|p| NodeId(p as u64))
            .collect();
        let lease = cluster.lease_period;
        if lease < Duration::from_millis(100) {
            return Err(NodeError::Config(format!(
                "[global] lease_period = {lease:?}: at least 100 ms is needed"
            )));
        }
        let heartbeat = lease / 10;
        let mut c = consensus::Config::new(NodeId(me as u64), voters);
        c.learners = learners;
        c.witnesses = (0..cluster.nodes.len())
            .filter(|&p| cluster.nodes[p].witness)
            .map(|p| NodeId(p as u64))
            .collect();
        c.lease_period = lease;
        c.heartbeat_interval = heartbeat;
        c.election_timeout_min = lease;
        c.election_timeout_max = lease * 3 / 2;
        c.max_clock_drift = lease / 10;
        let max_entry_bytes =
            (cluster.max_buffer_size + ENTRY_OVERHEAD_BYTES).min(tlog::PAYLOAD_LEN_MAX as usize);
        c.max_entry_bytes = max_entry_bytes as u64;
        c.quorum = cluster.quorum;
        c.seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id());
        match &cluster.master {
            MasterMode::Elected | MasterMode::ReadOnly => {}
            MasterMode::Forced(name) => c.forced_master = Some(id_of(name)?),
            MasterMode::Preferred(names) => {
                c.preferred_masters = names.iter().map(|n| id_of(n)).collect::<Result<_, _>>()?
            }
        }
        if let Some(q) = cluster.quorum {
            tracing::warn!(
                quorum = q,
                voters = c.voters.len(),
                "quorum is overridden in the config: below a majority, two masters may exist at once"
            );
        }
        c.validate()
            .map_err(|e| NodeError::Config(format!("consensus: {e}")))?;
        let decode_limits = consensus::DecodeLimits {
            max_message_bytes: max_entry_bytes + c.max_append_bytes as usize + (64 << 10),
            max_entries: consensus::DecodeLimits::default().max_entries,
            max_payload_bytes: max_entry_bytes as u32,
        };
        let request_limits = protocol::Limits {
            max_buffer_size: cluster.max_buffer_size,
            ..protocol::Limits::default()
        };
        let payload_limits = protocol::Limits {
            max_buffer_size: max_entry_bytes,
            ..protocol::Limits::default()
        };
        let tls = NodeTls::from_config(&cluster, &cluster.nodes[me])?;
        Ok(Settings {
            tls,
            me,
            consensus: c,
            decode_limits,
            request_limits,
            payload_limits,
            tick_interval: heartbeat / 2,
            cluster,
        })
    }

    /// What the replica takes from the config (see `replica::Settings`).
    pub fn replica_settings(&self) -> replica::Settings {
        // Arakoon's `batched_transaction_config` bounds how many updates
        // (and bytes) go into one store transaction; here that is one
        // group-commit batch (a tlog entry, applied in one transaction).
        let batch = self
            .node()
            .batched_transaction_config
            .as_ref()
            .and_then(|name| self.cluster.batch_configs.get(name))
            .copied()
            .unwrap_or_default();
        let batch_target_bytes = batch.max_size.map_or(BATCH_TARGET_BYTES, |b| {
            b.clamp(1, BATCH_TARGET_BYTES as u64) as usize
        });
        let batch_max_updates = batch.max_entries.map_or(BATCH_MAX_UPDATES, |n| {
            n.clamp(1, BATCH_MAX_UPDATES as u64) as usize
        });
        replica::Settings {
            fsync: self.node().fsync,
            relaxed_fsync_interval: self.node().fsync_interval,
            relaxed_fsync_entries: self.node().fsync_entries,
            slave_apply_delay: self.node().slave_apply_delay,
            read_only: self.read_only(),
            payload_limits: self.payload_limits,
            batch_target_bytes,
            batch_max_updates,
            auto_collapse_keep: self.node().auto_collapse_keep,
            collapse_slowdown: self.node().collapse_slowdown,
            ..replica::Settings::default()
        }
    }

    pub fn node(&self) -> &NodeConfig {
        &self.cluster.nodes[self.me]
    }

    pub fn id(&self) -> NodeId {
        NodeId(self.me as u64)
    }

    /// The name of node `id` (its config section).
    pub fn name_of(&self, id: NodeId) -> &str {
        self.cluster
            .nodes
            .get(id.0 as usize)
            .map(|n| n.name.as_str())
            .unwrap_or("?")
    }

    pub fn id_of(&self, name: &str) -> Option<NodeId> {
        self.cluster
            .nodes
            .iter()
            .position(|n| n.name == name)
            .map(|p| NodeId(p as u64))
    }

    pub fn read_only(&self) -> bool {
        self.cluster.master == MasterMode::ReadOnly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra_global: &str) -> ClusterConfig {
        let mut text = format!(
            "[global]\ncluster = a, b, c\ncluster_id = t\nlease_period = 2\n{extra_global}\n"
        );
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            text.push_str(&format!(
                "[{n}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = /tmp/{n}\nlog_level = info\n",
                4000 + i,
                4100 + i
            ));
        }
        config::parse(&text).expect("config").config
    }

    /// Timing is derived from lease_period as the module doc's table says.
    #[test]
    fn timing_follows_the_lease_period() {
        let s = Settings::new(cluster(""), "b").unwrap();
        assert_eq!(s.id(), NodeId(1));
        let c = &s.consensus;
        assert_eq!(c.voters, vec![NodeId(0), NodeId(1), NodeId(2)]);
        assert_eq!(c.lease_period, Duration::from_secs(2));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(c.election_timeout_min, Duration::from_secs(2));
        assert_eq!(c.election_timeout_max, Duration::from_secs(3));
        assert_eq!(c.max_clock_drift, Duration::from_millis(200));
        assert_eq!(s.tick_interval, Duration::from_millis(100));
        assert!(c.max_entry_bytes as usize > s.cluster.max_buffer_size);
        assert!(s.decode_limits.max_message_bytes as u64 > c.max_entry_bytes);
    }

    #[test]
    fn master_modes_map_to_node_ids() {
        let s = Settings::new(cluster("master = c"), "a").unwrap();
        assert_eq!(s.consensus.forced_master, Some(NodeId(2)));
        let s = Settings::new(cluster("preferred_masters = c, b"), "a").unwrap();
        assert_eq!(s.consensus.preferred_masters, vec![NodeId(2), NodeId(1)]);
    }

    #[test]
    fn an_unknown_node_name_is_refused_with_the_known_ones() {
        let e = Settings::new(cluster(""), "zz").unwrap_err().to_string();
        assert!(e.contains("\"zz\"") && e.contains("a, b, c"), "{e}");
    }

    /// TLS as Arakoon sets it up: `tls_ca_cert` makes messaging mutual TLS
    /// (every node needs its certificate), `tls_service` adds the client
    /// port; half a set-up is refused, naming what is missing.
    #[test]
    fn tls_settings_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ca = tls::testing::TestCa::new(dir.path(), "ca");
        let a = ca.issue("a");
        let ca_line = format!("tls_ca_cert = {}", ca.ca_cert().display());
        let with_cert = |mut c: ClusterConfig| {
            c.nodes[0].tls_cert = Some(a.cert.clone());
            c.nodes[0].tls_key = Some(a.key.clone());
            c
        };

        assert!(Settings::new(cluster(""), "a").unwrap().tls.is_none());
        let e = Settings::new(with_cert(cluster("")), "a")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[a] tls_cert") && e.contains("tls_ca_cert is not"),
            "{e}"
        );
        let e = Settings::new(cluster(&ca_line), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[a] tls_cert and tls_key are needed"), "{e}");

        let messaging_only = Settings::new(with_cert(cluster(&ca_line)), "a").unwrap();
        assert!(messaging_only
            .tls
            .as_ref()
            .is_some_and(|t| t.service.is_none()));
        let service = format!("{ca_line}\ntls_service = true");
        let both = Settings::new(with_cert(cluster(&service)), "a").unwrap();
        assert!(both.tls.as_ref().is_some_and(|t| t.service.is_some()));

        let missing = format!("tls_ca_cert = {}", dir.path().join("gone.pem").display());
        let e = Settings::new(with_cert(cluster(&missing)), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("tls_ca_cert") && e.contains("gone.pem"), "{e}");
    }
}
