//! Building a [`Client`]: the cluster id, the node list (explicit, or a
//! cluster config's), the timeouts, the retry policy and the frame limits.
//!
//! [`ClientBuilder::build`] checks the settings once and turns every problem
//! into an [`Error::Config`]; the running client (`client.rs`) relies on
//! what it checked: at least one node, node names unique, every node with at
//! least one address, and TLS files that can be used.
//!
//! TLS: a cluster config with `tls_service = true` turns TLS on, with the
//! config's `tls_ca_cert` and `tls_version` ([`ClientBuilder::from_config`]);
//! [`ClientBuilder::tls`] sets or changes it (Arakoon's `-tls-ca-cert`,
//! `-tls-cert`, `-tls-key`). The node's certificate must chain to the CA
//! (its names are not checked, as Arakoon does not).

use std::path::PathBuf;
use std::time::Duration;

use protocol::{Consistency, Limits};

use crate::client::Client;
use crate::error::Error;
use crate::retry::RetryPolicy;

/// Longest wait for a TCP connection (and the prologue) to one node.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for the answer to one request, from its first byte sent.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for one node's answer to `who_master` during discovery.
pub const DEFAULT_DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// What a client is made of. Checked by [`ClientBuilder::build`] before
/// [`Client::new`] gets it (see the module docs for what is checked).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Sent in the prologue.
    pub(crate) cluster_id: String,
    /// Every node's name and client addresses (`host:port`), in config order.
    pub(crate) nodes: Vec<(String, Vec<String>)>,
    pub(crate) consistency: Consistency,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) discovery_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    /// Bounds on the answers decoded.
    pub(crate) limits: Limits,
    /// Largest request sent, in bytes.
    pub(crate) max_request_size: usize,
    pub(crate) tls: Option<TlsOptions>,
}

/// TLS on the connections to the nodes' client port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// The CA every node's certificate must chain to (`tls_ca_cert`).
    pub ca_cert: PathBuf,
    /// A client certificate and key, for a cluster with
    /// `tls_service_validate_peer = true`.
    pub identity: Option<tls::Identity>,
    /// `tls_version`: 1.2 offers TLS 1.2 and 1.3, 1.3 only 1.3.
    pub min_version: tls::MinVersion,
}

/// A connector made from checked [`TlsOptions`].
#[derive(Clone)]
pub(crate) struct Connector(pub(crate) tls::TlsConnector);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector")
    }
}

/// Builds a [`Client`] from explicit node addresses, or from a cluster
/// config with some settings changed.
///
/// ```
/// use client::{ClientBuilder, RetryPolicy};
/// use std::time::Duration;
/// let client = ClientBuilder::new("ricky")
///     .node("arakoon_0", "127.0.0.1:4000")
///     .node("arakoon_1", "127.0.0.1:4001")
///     .request_timeout(Duration::from_secs(5))
///     .retry_policy(RetryPolicy { max_attempts: 3, ..RetryPolicy::default() })
///     .build()?;
/// assert_eq!(client.cluster_id(), "ricky");
/// # Ok::<(), client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    settings: Settings,
}

impl ClientBuilder {
    /// A client of the cluster called `cluster_id` (sent in the prologue).
    pub fn new(cluster_id: impl Into<String>) -> Self {
        ClientBuilder {
            settings: Settings {
                cluster_id: cluster_id.into(),
                nodes: Vec::new(),
                consistency: Consistency::Consistent,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                discovery_timeout: DEFAULT_DISCOVERY_TIMEOUT,
                retry: RetryPolicy::default(),
                limits: Limits::default(),
                max_request_size: protocol::DEFAULT_MAX_BUFFER_SIZE,
                tls: None,
            },
        }
    }

    /// The cluster's id and every node (voters and learners, in config
    /// order, all of a node's addresses), and its frame limit.
    pub fn from_config(config: &config::ClusterConfig) -> Self {
        let mut builder = ClientBuilder::new(config.cluster_id.clone());
        let settings = &mut builder.settings;
        for node in &config.nodes {
            let addresses = node
                .ips
                .iter()
                .map(|ip| address_of(ip, node.client_port))
                .collect();
            settings.nodes.push((node.name.clone(), addresses));
        }
        settings.limits.max_buffer_size =
            settings.limits.max_buffer_size.max(config.max_buffer_size);
        settings.max_request_size = config.max_buffer_size;
        if let Some(tls) = config.tls.as_ref().filter(|tls| tls.service) {
            settings.tls = Some(TlsOptions {
                ca_cert: tls.ca_cert.clone(),
                identity: None,
                // The config crate allows only 1.2 and 1.3; `build` checks.
                min_version: match tls.version.as_str() {
                    "1.3" => tls::MinVersion::Tls13,
                    _ => tls::MinVersion::Tls12,
                },
            });
        }
        builder
    }

    /// TLS on the client connections (`None`: plaintext), in place of what
    /// the config said.
    pub fn tls(mut self, tls: Option<TlsOptions>) -> Self {
        self.settings.tls = tls;
        self
    }

    /// The TLS options so far (from the config, or [`ClientBuilder::tls`]).
    pub fn tls_options(&self) -> Option<&TlsOptions> {
        self.settings.tls.as_ref()
    }

    /// Adds a node and its client address (`host:port`).
    pub fn node(mut self, name: impl Into<String>, address: impl Into<String>) -> Self {
        self.settings
            .nodes
            .push((name.into(), vec![address.into()]));
        self
    }

    /// Read consistency of reads (default `Consistent`).
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.settings.consistency = consistency;
        self
    }

    /// Longest wait for one request's answer (default
    /// [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.request_timeout = timeout;
        self
    }

    /// Longest wait to connect to one node (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// Longest wait for one node's `who_master` answer during discovery
    /// (default [`DEFAULT_DISCOVERY_TIMEOUT`]).
    pub fn discovery_timeout(mut self, timeout: Duration) -> Self {
        self.settings.discovery_timeout = timeout;
        self
    }

    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.settings.retry = retry;
        self
    }

    /// Largest answer accepted, in bytes (default
    /// [`protocol::DEFAULT_MAX_BUFFER_SIZE`], or the config's
    /// `__tainted_max_buffer_size` if larger).
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.settings.limits.max_buffer_size = bytes;
        self
    }

    /// Largest request sent, in bytes: a larger one fails at once with
    /// [`Error::RequestTooLarge`], without touching the network (default
    /// [`protocol::DEFAULT_MAX_BUFFER_SIZE`], or the config's
    /// `__tainted_max_buffer_size`, which the nodes enforce).
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.settings.max_request_size = bytes;
        self
    }

    /// The client. Nothing is connected yet: that happens on the first
    /// request. Fails if there is no node, two nodes share a name, a node
    /// has no address, or a TLS file cannot be read or used (the error
    /// names the key and the file).
    pub fn build(self) -> Result<Client, Error> {
        check_nodes(&self.settings)?;
        let connector = match &self.settings.tls {
            None => None,
            Some(options) => Some(Connector(
                tls::connector(
                    &options.ca_cert,
                    options.identity.as_ref(),
                    options.min_version,
                )
                .map_err(|e| Error::Config(format!("TLS: {e}")))?,
            )),
        };
        Ok(Client::new(self.settings, connector))
    }
}

/// The node list's part of what `build` promises the client.
fn check_nodes(settings: &Settings) -> Result<(), Error> {
    let nodes = &settings.nodes;
    if nodes.is_empty() {
        return Err(Error::Config(format!(
            "cluster {:?}: no node to connect to",
            settings.cluster_id
        )));
    }
    for (i, (name, addresses)) in nodes.iter().enumerate() {
        if nodes[..i].iter().any(|(other, _)| other == name) {
            return Err(Error::Config(format!("node {name:?} is listed twice")));
        }
        if addresses.is_empty() {
            return Err(Error::Config(format!("node {name:?} has no address")));
        }
    }
    Ok(())
}

/// `ip:port`, with brackets around an IPv6 address.
fn address_of(ip: &str, port: u16) -> String {
    if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[global]\ncluster = a, b\ncluster_id = ricky\n\
        [a]\nip = 127.0.0.1\nclient_port = 4000\nmessaging_port = 4010\nhome = /tmp/a\nlog_level = info\n\
        [b]\nip = ::1, 10.0.0.2\nclient_port = 4001\nmessaging_port = 4011\nhome = /tmp/b\nlog_level = info\n";

    fn parse(text: &str) -> config::ClusterConfig {
        match config::parse(text) {
            Ok(loaded) => loaded.config,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn builder_refuses_no_nodes_and_duplicates() {
        let e = ClientBuilder::new("c").build().err();
        assert!(matches!(e, Some(Error::Config(m)) if m.contains("no node")));
        let e = ClientBuilder::new("c")
            .node("a", "127.0.0.1:1")
            .node("a", "127.0.0.1:2")
            .build()
            .err();
        assert!(matches!(e, Some(Error::Config(m)) if m.contains("twice")));
    }

    #[test]
    fn ipv6_addresses_get_brackets() {
        assert_eq!(address_of("::1", 4000), "[::1]:4000");
        assert_eq!(address_of("127.0.0.1", 4000), "127.0.0.1:4000");
    }

    #[test]
    fn from_config_takes_every_node_and_address() {
        let builder = ClientBuilder::from_config(&parse(CONFIG));
        assert_eq!(builder.settings.cluster_id, "ricky");
        assert_eq!(
            builder.settings.nodes,
            [
                ("a".to_string(), vec!["127.0.0.1:4000".to_string()]),
                (
                    "b".to_string(),
                    vec!["[::1]:4001".to_string(), "10.0.0.2:4001".to_string()]
                ),
            ]
        );
    }

    /// Rule: never send plaintext to a cluster that expects TLS: the
    /// config's `tls_service` turns TLS on, with its CA; a CA that cannot
    /// be read fails the build, naming the file.
    #[test]
    fn tls_service_turns_tls_on_with_the_configs_ca() {
        let text = CONFIG.replace(
            "cluster_id = ricky\n",
            "cluster_id = ricky\ntls_ca_cert = /nonexistent/ca.pem\ntls_service = true\ntls_version = 1.3\n",
        );
        let builder = ClientBuilder::from_config(&parse(&text));
        assert_eq!(
            builder.tls_options(),
            Some(&TlsOptions {
                ca_cert: PathBuf::from("/nonexistent/ca.pem"),
                identity: None,
                min_version: tls::MinVersion::Tls13,
            })
        );
        let error = builder.build().err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("tls_ca_cert") && e.contains("/nonexistent/ca.pem")),
            "{error:?}"
        );
        // Without tls_service, the client port is plaintext.
        let text = CONFIG.replace(
            "cluster_id = ricky\n",
            "cluster_id = ricky\ntls_ca_cert = /nonexistent/ca.pem\n",
        );
        assert_eq!(
            ClientBuilder::from_config(&parse(&text)).tls_options(),
            None
        );
    }
}
