use super::*;
use crate::testing::TestCa;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A server on loopback that accepts one connection with `acceptor`,
/// echoes one line of 5 bytes, and reports how the accept went.
async fn serve_once(
    acceptor: TlsAcceptor,
) -> (String, tokio::task::JoinHandle<Result<(), String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut stream = accept(&acceptor, tcp)
            .await
            .map_err(|(e, _)| e.to_string())?;
        let mut buf = [0u8; 5];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(&buf).await.map_err(|e| e.to_string())?;
        stream.flush().await.map_err(|e| e.to_string())?;
        Ok(())
    });
    (address, task)
}

async fn echo(connector: &TlsConnector, address: &str) -> Result<[u8; 5], String> {
    let tcp = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let mut stream = connect(connector, "127.0.0.1", tcp)
        .await
        .map_err(|e| e.to_string())?;
    assert!(stream.is_tls() && stream.plain().is_none());
    stream
        .write_all(b"hello")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 5];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    Ok(buf)
}

#[tokio::test]
async fn nodes_of_one_ca_talk_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let (a, b) = (ca.issue("arakoon_0"), ca.issue("arakoon_1"));
    for version in [MinVersion::Tls12, MinVersion::Tls13] {
        let acceptor = node_acceptor(&ca.ca_cert(), &a, ClientAuth::Required, version).unwrap();
        let (address, server) = serve_once(acceptor).await;
        let connector = connector(&ca.ca_cert(), Some(&b), version).unwrap();
        assert_eq!(echo(&connector, &address).await.unwrap(), *b"hello");
        server.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_peer_without_a_certificate_of_the_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("ours"), "ca");
    let other = TestCa::new(&dir.path().join("theirs"), "other ca");
    let server_id = ca.issue("arakoon_0");
    let acceptor = || {
        node_acceptor(
            &ca.ca_cert(),
            &server_id,
            ClientAuth::Required,
            MinVersion::Tls12,
        )
        .unwrap()
    };

    // No client certificate at all.
    let (address, server) = serve_once(acceptor()).await;
    let bare = connector(&ca.ca_cert(), None, MinVersion::Tls12).unwrap();
    assert!(echo(&bare, &address).await.is_err());
    let refused = server.await.unwrap().unwrap_err();
    assert!(refused.contains("TLS handshake"), "{refused}");

    // A certificate from another CA (the client trusts the server's CA:
    // the refusal is the server's).
    let (address, server) = serve_once(acceptor()).await;
    let stranger = other.issue("arakoon_9");
    let foreign = connector(&ca.ca_cert(), Some(&stranger), MinVersion::Tls12).unwrap();
    assert!(echo(&foreign, &address).await.is_err());
    let refused = server.await.unwrap().unwrap_err();
    assert!(refused.contains("certificate"), "{refused}");
}

#[tokio::test]
async fn a_server_of_another_ca_is_refused_by_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&dir.path().join("ours"), "ca");
    let other = TestCa::new(&dir.path().join("theirs"), "other ca");
    let impostor = other.issue("arakoon_0");
    let acceptor = node_acceptor(
        &other.ca_cert(),
        &impostor,
        ClientAuth::None,
        MinVersion::Tls12,
    )
    .unwrap();
    let (address, _server) = serve_once(acceptor).await;
    let client = connector(&ca.ca_cert(), None, MinVersion::Tls12).unwrap();
    let error = echo(&client, &address).await.unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn without_client_auth_a_client_needs_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue("arakoon_0");
    let acceptor =
        node_acceptor(&ca.ca_cert(), &node, ClientAuth::None, MinVersion::Tls12).unwrap();
    let (address, server) = serve_once(acceptor).await;
    let client = connector(&ca.ca_cert(), None, MinVersion::Tls12).unwrap();
    assert_eq!(echo(&client, &address).await.unwrap(), *b"hello");
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn plaintext_to_a_tls_port_is_recognised_before_any_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue("arakoon_0");
    let acceptor =
        node_acceptor(&ca.ca_cert(), &node, ClientAuth::None, MinVersion::Tls12).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(address).await.unwrap();
    client.write_all(&[0xb1, 0xff, 0, 0]).await.unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    match accept(&acceptor, tcp).await {
        Err((AcceptError::Plaintext(0xb1), Some(mut tcp))) => {
            // Nothing was read: the plaintext bytes are still there.
            let mut first = [0u8; 4];
            tcp.read_exact(&mut first).await.unwrap();
            assert_eq!(first, [0xb1, 0xff, 0, 0]);
        }
        other => panic!("{:?}", other.map(|_| ()).map_err(|(e, _)| e)),
    }

    // And a plaintext port recognises a TLS client.
    let client_side = connector(&ca.ca_cert(), None, MinVersion::Tls12).unwrap();
    let dial = tokio::spawn(async move {
        let tcp = TcpStream::connect(address).await.unwrap();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            connect(&client_side, "localhost", tcp),
        )
        .await;
    });
    let (tcp, _) = listener.accept().await.unwrap();
    assert_eq!(looks_like_tls(&tcp).await.unwrap(), Some(true));
    drop(tcp);
    dial.await.unwrap();
}

#[test]
fn file_problems_name_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue("arakoon_0");
    let other = ca.issue("arakoon_1");
    let missing = dir.path().join("nope.pem");
    let text = |r: Result<TlsConnector, Error>| r.err().map(|e| e.to_string()).unwrap_or_default();

    let e = text(connector(&missing, None, MinVersion::Tls12));
    assert!(
        e.starts_with("tls_ca_cert") && e.contains("nope.pem"),
        "{e}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let e = text(connector(&garbage, None, MinVersion::Tls12));
    assert!(
        e.contains("garbage.pem") && e.contains("no PEM certificate"),
        "{e}"
    );

    let mismatched = Identity {
        cert: node.cert.clone(),
        key: other.key.clone(),
    };
    let e = node_acceptor(
        &ca.ca_cert(),
        &mismatched,
        ClientAuth::None,
        MinVersion::Tls12,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("arakoon_1.key") && e.contains("does not go with"),
        "{e}"
    );

    let keyless = Identity {
        cert: node.cert.clone(),
        key: node.cert.clone(),
    };
    let e = text(connector(&ca.ca_cert(), Some(&keyless), MinVersion::Tls12));
    assert!(
        e.starts_with("tls_key") && e.contains("no PEM private key"),
        "{e}"
    );

    assert!(MinVersion::parse("1.1").is_err());
    assert_eq!(MinVersion::parse("1.3").unwrap(), MinVersion::Tls13);
}

/// `openssl x509 -req` without extensions makes X.509 v1 certificates,
/// which webpki does not accept: the error says so and what to do.
#[test]
fn a_v1_certificate_is_refused_with_what_to_do() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fixtures");
    let v1 = Identity {
        cert: fixtures.join("v1-node.pem"),
        key: fixtures.join("v1-node.key"),
    };
    let e = node_acceptor(
        &fixtures.join("v1-cacert.pem"),
        &v1,
        ClientAuth::Required,
        MinVersion::Tls12,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("X.509 v1") && e.contains("basicConstraints"),
        "{e}"
    );
}

/// `tls_version = 1.2` serves a peer that speaks TLS 1.2 only (an
/// Arakoon peer pinned to 1.2); `1.3` refuses it.
#[tokio::test]
async fn a_peer_pinned_to_tls_1_2_is_served_unless_1_3_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path(), "ca");
    let node = ca.issue("arakoon_0");
    let roots = roots(&ca.ca_cert()).unwrap();
    let provider = provider();
    let verifier = Arc::new(CaSigned {
        roots,
        provider: Arc::clone(&provider),
    });
    let only_12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let only_12 = TlsConnector::from(Arc::new(only_12));
    for (version, served) in [(MinVersion::Tls12, true), (MinVersion::Tls13, false)] {
        let acceptor = node_acceptor(&ca.ca_cert(), &node, ClientAuth::None, version).unwrap();
        let (address, server) = serve_once(acceptor).await;
        let tcp = TcpStream::connect(&address).await.unwrap();
        match connect(&only_12, "127.0.0.1", tcp).await {
            Ok(Stream::Tls(tls)) => {
                assert!(served, "a TLS 1.2 peer was served with tls_version = 1.3");
                let (_, session) = tls.get_ref();
                assert_eq!(
                    session.protocol_version(),
                    Some(rustls::ProtocolVersion::TLSv1_2)
                );
                drop(tls);
                let _ = server.await;
            }
            Ok(Stream::Plain(_)) => unreachable!("connect makes a TLS stream"),
            Err(e) => {
                assert!(
                    !served,
                    "a TLS 1.2 peer was refused with tls_version = 1.2: {e}"
                );
                assert!(server.await.unwrap().is_err());
            }
        }
    }
}
