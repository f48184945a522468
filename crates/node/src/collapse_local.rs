//! `arakoon --collapse-local NODE N -config FILE`: the collapse of a
//! *stopped* node's tlog, on its files. The same plan as the running node's
//! (`replica::collapse::plan`): keep the newest `N` full segments beside
//! the active one, never an entry above the store's durable applied index
//! (the store is opened, which recovers it as a start would, and
//! checkpointed first); no peer is asked, so nothing is held back for one.
//! Segments go the oldest first, each removal durable before the next
//! (the tlog's base file is the commit point), so an interrupted run leaves
//! a tlog that opens, with fewer segments removed.
//!
//! The node must not run meanwhile: the store file takes no lock of its
//! own, so the tool refuses when the node's client port is in use on this
//! machine (the node is running), and the operator stops the node first.

use crate::error::NodeError;
use crate::settings::Settings;
use crate::{store_path, tlog_options, tlog_path};
use config::ClusterConfig;
use replica::collapse::{plan, SegmentSpan};
use store::{Store, StoreOptions};
use tlog::Tlog;

/// What `--collapse-local` reports as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalCollapse {
    /// The plan: `total` segments go; the tlog then starts at `below`
    /// (when `total > 0`); the store is durable up to `store_durable`.
    Planned {
        total: u32,
        below: u64,
        tlog_first: u64,
        tlog_last: u64,
        store_durable: u64,
    },
    /// `done` of `total` segments removed.
    Removed { done: u32, total: u32 },
}

/// Collapses node `name`'s tlog keeping `tlogs_to_keep` (≥ 1) full
/// segments; returns how many were removed.
pub fn collapse_local(
    cluster: ClusterConfig,
    name: &str,
    tlogs_to_keep: u32,
    report: &mut dyn FnMut(LocalCollapse),
) -> Result<u32, NodeError> {
    if tlogs_to_keep < 1 {
        return Err(NodeError::Config(format!(
            "{tlogs_to_keep} is not acceptable: keep at least 1 tlog"
        )));
    }
    let settings = Settings::new(cluster, name)?;
    let node = settings.node();
    refuse_if_running(node)?;
    let store_file = store_path(node);
    crate::adopt_legacy_tlog_dir(node)?;
    let dir = tlog_path(node);
    for (what, path) in [("store", &store_file), ("tlog directory", &dir)] {
        if !path.exists() {
            return Err(NodeError::Config(format!(
                "node {name} has no {what} at {} (has it ever run with this config?)",
                path.display()
            )));
        }
    }
    let disk = disk::RealDisk::shared();
    let store = Store::open(disk.clone(), &store_file, &StoreOptions::default())?;
    let durable = store.checkpoint()?;
    let mut tlog =
        Tlog::open(disk, dir.clone(), tlog_options(&settings.cluster, node)).map_err(|source| {
            NodeError::Tlog {
                dir: dir.clone(),
                source,
            }
        })?;
    let mut full: Vec<SegmentSpan> = tlog
        .segments()
        .iter()
        .map(|s| SegmentSpan {
            first_index: s.first_index,
            next_index: s.first_index + s.entry_count,
        })
        .collect();
    full.pop(); // the active segment stays
    let decided = plan(&full, tlogs_to_keep as usize, durable, &[]);
    let total = u32::try_from(decided.count).unwrap_or(u32::MAX);
    tracing::info!(
        node = name,
        tlogs_to_keep,
        total,
        below = decided.below,
        store_durable = durable,
        "collapse-local"
    );
    report(LocalCollapse::Planned {
        total,
        below: decided.below,
        tlog_first: tlog.first_index(),
        tlog_last: tlog.last_index(),
        store_durable: durable,
    });
    for (k, segment) in full.iter().take(decided.count).enumerate() {
        // The durability contract: only what the store holds durably.
        assert!(segment.next_index - 1 <= durable);
        tlog.collapse(segment.next_index)
            .map_err(|source| NodeError::Tlog {
                dir: dir.clone(),
                source,
            })?;
        report(LocalCollapse::Removed {
            done: k as u32 + 1,
            total,
        });
    }
    store.close()?;
    Ok(total)
}

/// A node whose client port is taken on this machine is running (or
/// something else holds its port): either way, not a stopped node.
pub(crate) fn refuse_if_running(node: &config::NodeConfig) -> Result<(), NodeError> {
    let address = node.client_address();
    match std::net::TcpListener::bind(&address) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(NodeError::Config(format!(
            "node {} seems to be running (its client address {address} is in use): stop it first",
            node.name
        ))),
        // Bound (and closed again), or an address this machine does not
        // have (the node is elsewhere): its files are the operator's call.
        _ => Ok(()),
    }
}
