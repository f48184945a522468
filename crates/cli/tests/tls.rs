//! TLS on real processes, with certificates made at test time (laid out
//! as Arakoon's `mkcerts.sh` does: `cacert.pem`, `NAME.pem`, `NAME.key`):
//! nodes replicate over mutual TLS; clients connect with TLS and, with
//! `tls_service_validate_peer`, only with a certificate of the cluster's
//! CA; a node whose certificate comes from another CA cannot join; a
//! plaintext client on a TLS port, and a TLS client on a plaintext port,
//! fail with an error that says so, on both sides.

mod common;

use client::{Error, TlsIdentity, TlsMinVersion, TlsOptions};
use common::*;
use std::path::Path;
use std::time::Duration;
use tls::testing::TestCa;

/// The `[global]` TLS keys and each node's `tls_cert`/`tls_key`, the
/// certificates of `node_cas[i]`'s making (the cluster's CA is `ca`).
fn tls_config(ca: &TestCa, node_cas: &[&TestCa], service: &str) -> (String, Vec<String>) {
    let global = format!("tls_ca_cert = {}\n{service}", ca.ca_cert().display());
    let nodes = node_cas
        .iter()
        .enumerate()
        .map(|(i, issuer)| {
            let id = issuer.issue(&format!("arakoon_{i}"));
            format!(
                "tls_cert = {}\ntls_key = {}\n",
                id.cert.display(),
                id.key.display()
            )
        })
        .collect();
    (global, nodes)
}

fn options(ca: &Path, identity: Option<TlsIdentity>) -> Option<TlsOptions> {
    Some(TlsOptions {
        ca_cert: ca.to_path_buf(),
        identity,
        min_version: TlsMinVersion::Tls12,
    })
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_only_clients_with_a_certificate_of_its_ca() {
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(&certs.path().join("ca"), "cluster ca");
    let other = TestCa::new(&certs.path().join("other"), "another ca");
    let (global, nodes) = tls_config(
        &ca,
        &[&ca, &ca, &ca],
        "tls_service = true\ntls_service_validate_peer = true\n",
    );
    let node_extras: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let p = Processes::start_with_node_extras(LEASE_SECS, &global, &node_extras);

    // A client with a certificate of the cluster's CA: every node is
    // reached over TLS, and a write commits (replicated over mutual TLS
    // between the nodes: a majority of three needs a peer).
    let me = ca.issue("client");
    let c = p
        .builder()
        .tls(options(&ca.ca_cert(), Some(me.clone())))
        .build()
        .expect("a TLS client");
    let master = wait_for_master(&c, &p).await;
    c.set(b"secret", b"42").await.expect("a write over TLS");
    let i = txid(c.get_txid().await.expect("txid"));
    for slave in (0..3).filter(|&s| p.names[s] != master) {
        read_at_least(&c, &p, slave, i, b"secret").await;
    }

    // No client certificate: refused by the node.
    let bare = p
        .builder()
        .tls(options(&ca.ca_cert(), None))
        .build()
        .expect("a client");
    let refused = bare.get(b"secret").await;
    assert!(
        refused.is_err(),
        "served without a certificate: {refused:?}"
    );
    // A certificate of another CA: refused too.
    let stranger = other.issue("client");
    let foreign = p
        .builder()
        .tls(options(&ca.ca_cert(), Some(stranger)))
        .build()
        .expect("a client");
    let refused = foreign.get(b"secret").await;
    assert!(
        refused.is_err(),
        "served a foreign certificate: {refused:?}"
    );
    let m = index_of(&p, &master);
    wait_for_log(&p, m, "TLS handshake").await;

    // Plaintext to the TLS port: the node answers, in plaintext, why.
    let plain = p.client();
    let error = plain
        .node(&master)
        .expect("a node")
        .get(b"secret")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("speaks TLS"), "{error}");
    wait_for_log(&p, m, "plaintext").await;

    // The CLI, with Arakoon's flags.
    let (ca_cert, cert, key) = (ca.ca_cert(), me.cert, me.key);
    let (ok, out, err) = p.cli(&[
        "-tls-ca-cert",
        path(&ca_cert),
        "-tls-cert",
        path(&cert),
        "-tls-key",
        path(&key),
        "--get",
        "secret",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "\"42\"\n");
    let (ok, _, err) = p.cli(&["-tls-ca-cert", path(&ca_cert), "--get", "secret"]);
    assert!(!ok, "the CLI was served without a client certificate");
    assert!(err.contains("secret"), "{err}");
    let (ok, _, err) = p.cli(&["-tls-cert", path(&cert), "--get", "secret"]);
    assert!(!ok && err.contains("-tls-key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_of_another_ca_cannot_join() {
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(&certs.path().join("ca"), "cluster ca");
    let other = TestCa::new(&certs.path().join("other"), "another ca");
    // Messaging over TLS only; the client port stays plaintext. A new
    // cluster starts with every node (see ARCHITECTURE.md, a node that
    // lost its disk): all three begin with certificates of the CA.
    let (global, nodes) = tls_config(&ca, &[&ca, &ca, &ca], "");
    let node_extras: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut p = Processes::start_with_node_extras(LEASE_SECS, &global, &node_extras);
    let c = p.client();
    wait_for_master(&c, &p).await;
    c.set(b"before", b"1").await.expect("a write");
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, 2, i, b"before").await;

    // arakoon_2 restarted with a certificate of another CA (its files
    // replaced in place): the others refuse it both ways.
    p.kill(2);
    let intruder_id = other.issue("arakoon_2");
    let own = ca.issue("arakoon_2");
    for (from, to) in [(&intruder_id.cert, &own.cert), (&intruder_id.key, &own.key)] {
        std::fs::copy(from, to).expect("replace the node's certificate");
    }
    p.spawn(2);
    let master = wait_for_master(&c, &p).await;
    assert_ne!(master, p.names[2], "the node of another CA is master");
    c.set(b"after", b"2")
        .await
        .expect("a write by the two nodes");

    // Both sides say why: the others refuse its certificate when it dials
    // them, and as a server when they dial it.
    for i in [0, 1] {
        wait_for_log(&p, i, "UnknownIssuer").await;
    }
    wait_for_log(&p, 2, "TLS handshake failed").await;

    // It has nothing written since, and follows no master.
    let intruder = c
        .node(&p.names[2])
        .expect("a node")
        .with_consistency(client::Consistency::NoGuarantee);
    assert!(
        matches!(intruder.get(b"after").await, Err(Error::NotFound { .. })),
        "the node of another CA received a write"
    );
    let named = intruder.who_master().await.expect("who_master");
    assert_ne!(
        named,
        Some(master.clone()),
        "the intruder follows the master"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_on_a_plaintext_port_is_told_so() {
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(certs.path(), "cluster ca");
    let (global, nodes) = tls_config(&ca, &[&ca], "");
    let p = Processes::start_with_node_extras(LEASE_SECS, &global, &[nodes[0].as_str()]);
    let c = p.client();
    wait_for_master(&c, &p).await;
    let tls_client = p
        .builder()
        .tls(options(&ca.ca_cert(), None))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("a client");
    let error = tls_client
        .node(&p.names[0])
        .expect("a node")
        .nop()
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains("tls_service"), "{error}");
    wait_for_log(&p, 0, "began a TLS handshake").await;
}

/// A node started without TLS in a TLS cluster (its config lost the
/// `tls_*` keys): each side of each connection says what is wrong, in
/// the messaging handshake's own terms where the peer can read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_node_in_a_tls_cluster_is_told_why_on_both_sides() {
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(certs.path(), "cluster ca");
    let (global, nodes) = tls_config(&ca, &[&ca, &ca, &ca], "");
    let node_extras: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let mut p = Processes::start_with_node_extras(LEASE_SECS, &global, &node_extras);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    // A slave goes plaintext (the master stays: no failover to wait for).
    let x = (index_of(&p, &master) + 1) % 3;
    let others: Vec<usize> = (0..3).filter(|&i| i != x).collect();

    p.kill(x);
    let text = std::fs::read_to_string(&p.config_path).expect("the config");
    let plain: String = text
        .lines()
        .filter(|l| !l.starts_with("tls_"))
        .map(|l| format!("{l}\n"))
        .collect();
    let plain_config = p.dir.path().join("plaintext.ini");
    std::fs::write(&plain_config, plain).expect("write the plaintext config");
    p.spawn_with_config(x, &plain_config);

    // It dials the others in plaintext: refused in its own protocol.
    wait_for_log(&p, x, "this node's messaging port speaks TLS").await;
    // The others dial it with TLS: it names that.
    let no_tls = "the peer began a TLS handshake and this node has no TLS";
    wait_for_log(&p, x, no_tls).await;
    // And the others say it does not speak TLS.
    for &i in &others {
        wait_for_log(&p, i, "the peer speaks plaintext").await;
    }
    // The two TLS nodes go on committing.
    wait_for_master(&c, &p).await;
    c.set(b"k", b"v").await.expect("a write by the TLS nodes");
}
