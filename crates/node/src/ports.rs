//! Free loopback ports for nodes started as separate processes (the demo,
//! tests): ports that the caller writes into a config and a node binds
//! later.
//!
//! A port found by binding port 0 comes from the kernel's *ephemeral*
//! range, the range it also draws from for the local end of every outgoing
//! connection. Between the moment such a port is released and the moment
//! the node binds it, any process on the machine that connects somewhere
//! may take it as its local port, and the node then fails with "address in
//! use" (seen: a test cluster whose own messaging connections took a port
//! picked for one of its nodes). So the ports come from below the
//! ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), where the
//! kernel never assigns ports by itself: only a process that asks for that
//! number can take it. Within this process a shared cursor hands out each
//! port at most once per pass; between processes the start of the search
//! depends on the process id, and every port is checked by binding it. All
//! ports of one call are held until the call has them all, so they are
//! distinct.

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out (well above the registered well-known ports).
const LOWEST: u16 = 10_000;
/// Used when the ephemeral range cannot be read (Linux's default start).
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// Fewer ports than this below the ephemeral range: use port 0 instead.
const SPAN_MIN: u32 = 1_000;

/// The next candidate, as an offset into the span; starts at a point that
/// depends on the process id (set on first use).
static CURSOR: AtomicU32 = AtomicU32::new(u32::MAX);

fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

/// `count` distinct free ports on 127.0.0.1, outside the kernel's ephemeral
/// range when it leaves room below it (else from port 0, as a fallback).
pub fn loopback_ports(count: usize) -> io::Result<Vec<u16>> {
    let start = ephemeral_start();
    let span = u32::from(start.saturating_sub(LOWEST));
    let mut held = Vec::with_capacity(count);
    if span < SPAN_MIN {
        for _ in 0..count {
            held.push(TcpListener::bind("127.0.0.1:0")?);
        }
    } else {
        let seed = std::process::id().wrapping_mul(2_654_435_761) % span;
        let _ = CURSOR.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
        let mut tried = 0u32;
        while held.len() < count {
            if tried >= span {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "no free loopback port between {LOWEST} and {start} (tried all {span})"
                    ),
                ));
            }
            tried += 1;
            let offset = CURSOR.fetch_add(1, Ordering::Relaxed) % span;
            let port = LOWEST + offset as u16;
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(listener);
            }
        }
    }
    held.iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let start = ephemeral_start();
        let ports = loopback_ports(40).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 40, "distinct: {ports:?}");
        for p in &ports {
            if start >= LOWEST + SPAN_MIN as u16 {
                assert!(
                    *p >= LOWEST && *p < start,
                    "port {p} outside {LOWEST}..{start}"
                );
            }
            // Free: it can be bound now that the call released it.
            TcpListener::bind(("127.0.0.1", *p)).unwrap();
        }
        // A second call does not hand out the same ports again.
        let again = loopback_ports(40).unwrap();
        assert!(
            again.iter().all(|p| !ports.contains(p)),
            "{ports:?} {again:?}"
        );
    }
}
