//! A private network for a test cluster: each node in its own network
//! namespace, joined by a veth pair to a bridge in a hub namespace, and
//! the test process (the clients) joined to the same bridge by one more
//! veth pair. Addresses are only on those links (`10.201.S.x/24`, `S`
//! picked per network), so no traffic leaves the machine.
//!
//! Cuts are nftables `drop` rules at a node's input (packets from the
//! given peers never reach it): a two-way cut is a drop on both sides, a
//! one-way cut a drop on one. The clients' address is never cut: a node
//! cut off from its peers is still asked by the clients, which is what
//! shows whether a deposed master answers.
//!
//! Everything is made by [`Net::create`] and removed when the [`Net`] is
//! dropped (deleting a namespace removes its ends of the veth pairs, and
//! with them the other ends); namespaces left by a test process that was
//! killed are removed by the next one (their names carry the pid).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The port every node's client service listens on (each node has its own
/// namespace, so the ports do not collide).
pub const CLIENT_PORT: u16 = 4000;
/// The port every node's messaging listens on.
pub const MESSAGING_PORT: u16 = 4010;

const PREFIX: &str = "arakoon-";

/// The drops (see [`Net::cut`]) that make node `i` of `n` hear none of
/// the nodes in `from`, and, if `both`, none of them hear it.
pub fn cut_off(n: usize, i: usize, from: &[usize], both: bool) -> Vec<Vec<usize>> {
    let mut drops = vec![Vec::new(); n];
    drops[i] = from.to_vec();
    if both {
        for &j in from {
            drops[j].push(i);
        }
    }
    drops
}

/// Every node of `n` but `i`.
pub fn others(n: usize, i: usize) -> Vec<usize> {
    (0..n).filter(|&j| j != i).collect()
}

pub struct Net {
    /// `arakoon-PID-K`: the namespaces are `TAG-hub` and `TAG-nI`.
    tag: String,
    subnet: u8,
    nodes: usize,
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn output(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Removes the namespaces of test processes that no longer run.
fn remove_stale() {
    for line in output(&["ip", "netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

impl Net {
    /// Makes the namespaces and links of `nodes` nodes, or says why it
    /// cannot (not root, no `ip` or `nft`, no namespaces in this kernel).
    pub fn create(nodes: usize) -> Result<Net, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(nodes > 0 && nodes < 200);
        for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
            if Command::new(tool)
                .arg("-V")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
            {
                return Err(format!("`{tool}` is not installed ({package})"));
            }
        }
        remove_stale();
        let pid = std::process::id();
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let taken = output(&["ip", "-4", "-o", "addr"]);
        let subnet = (0..250u32)
            .map(|j| ((pid + 61 * k + 7 * j) % 250 + 1) as u8)
            .find(|s| !taken.contains(&format!("10.201.{s}.")))
            .ok_or("no free 10.201.S.0/24 subnet")?;
        let net = Net {
            tag: format!("{PREFIX}{pid}-{k}"),
            subnet,
            nodes,
        };
        // From here on, Drop removes whatever was made.
        net.build()?;
        Ok(net)
    }

    fn build(&self) -> Result<(), String> {
        let hub = self.hub();
        run(&["ip", "netns", "add", &hub])?;
        run(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &hub, "link", "set", "br0", "up"])?;
        for i in 0..self.nodes {
            let ns = self.ns(i);
            let port = format!("p{i}");
            run(&["ip", "netns", "add", &ns])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
            run(&[
                "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &hub,
            ])?;
            let addr = format!("{}/24", self.addr(i));
            run(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &hub, "link", "set", &port, "master", "br0"])?;
            run(&["ip", "-n", &hub, "link", "set", &port, "up"])?;
        }
        // The clients' link, from this (the root) namespace.
        let link = self.client_link();
        run(&[
            "ip", "link", "add", &link, "type", "veth", "peer", "name", "pc", "netns", &hub,
        ])?;
        let addr = format!("10.201.{}.250/24", self.subnet);
        run(&["ip", "addr", "add", &addr, "dev", &link])?;
        run(&["ip", "link", "set", &link, "up"])?;
        run(&["ip", "-n", &hub, "link", "set", "pc", "master", "br0"])?;
        run(&["ip", "-n", &hub, "link", "set", "pc", "up"])?;
        for i in 0..self.nodes {
            self.set_drops(i, &[])?;
        }
        Ok(())
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    /// The name of node `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.tag)
    }

    /// The root namespace's end of the clients' link (at most 15 bytes).
    fn client_link(&self) -> String {
        let name = format!("ak{}", &self.tag[PREFIX.len()..]).replace('-', "c");
        assert!(name.len() <= 15, "interface name {name}");
        name
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> String {
        format!("10.201.{}.{}", self.subnet, i + 1)
    }

    /// Node `i` drops every packet from the nodes in `from` (and keeps
    /// everything else, the clients' included).
    pub fn set_drops(&self, i: usize, from: &[usize]) -> Result<(), String> {
        let mut rules = String::from("flush ruleset\n");
        if !from.is_empty() {
            let addrs: Vec<String> = from.iter().map(|&j| self.addr(j)).collect();
            rules.push_str(&format!(
                "table inet nemesis {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    ip saddr {{ {} }} drop\n  }}\n}}\n",
                addrs.join(", ")
            ));
        }
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(i), "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft in {}: {e}", self.ns(i)))?;
        child
            .stdin
            .take()
            .ok_or("nft's stdin")?
            .write_all(rules.as_bytes())
            .map_err(|e| format!("nft in {}: {e}", self.ns(i)))?;
        let out = child
            .wait_with_output()
            .map_err(|e| format!("nft in {}: {e}", self.ns(i)))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nft in {}: {}\n{rules}",
                self.ns(i),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Applies a cut: `drops[i]` are the nodes node `i` stops hearing.
    pub fn cut(&self, drops: &[Vec<usize>]) {
        assert_eq!(drops.len(), self.nodes);
        for (i, from) in drops.iter().enumerate() {
            assert!(!from.contains(&i), "node {i} cut from itself");
            self.set_drops(i, from).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Every node hears every node again.
    pub fn heal(&self) {
        for i in 0..self.nodes {
            self.set_drops(i, &[]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = run(&["ip", "netns", "del", &self.ns(i)]);
        }
        let _ = run(&["ip", "netns", "del", &self.hub()]);
        // Gone with its peer in the hub; removed here if the hub never was.
        let _ = run(&["ip", "link", "del", &self.client_link()]);
    }
}
