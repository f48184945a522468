//! Socket options the config asks for on every TCP connection the node
//! accepts or opens: TCP keepalive (`[global] enable_tcp_keepalive`,
//! `tcp_keepalive_time`, `tcp_keepalive_intvl`, `tcp_keepalive_probes`,
//! Arakoon's keys and defaults: on, 20 s, 20 s, 3 probes). A peer or client
//! that vanished without a FIN (a host gone, a cut cable) is then noticed
//! by the kernel after `time + intvl × probes` of silence, and the
//! connection's task ends instead of holding its slot for good.
//!
//! Setting an option can fail only on a socket that is already dead; the
//! failure is logged at debug level and the connection goes on (its next
//! read or write reports the real error).

use config::TcpKeepalive;

/// Applies `keepalive` to `stream`.
pub fn set_keepalive(stream: &tokio::net::TcpStream, keepalive: &TcpKeepalive) {
    let socket = socket2::SockRef::from(stream);
    let result = if keepalive.enabled {
        let params = socket2::TcpKeepalive::new()
            .with_time(keepalive.time)
            .with_interval(keepalive.interval)
            .with_retries(keepalive.probes);
        socket.set_tcp_keepalive(&params)
    } else {
        socket.set_keepalive(false)
    };
    if let Err(e) = result {
        tracing::debug!("cannot set TCP keepalive on a connection: {e}");
    }
}

/// Sets `TCP_USER_TIMEOUT` on `stream`: data sent and not acknowledged by
/// the peer for longer than `timeout` aborts the connection (Linux only;
/// elsewhere a no-op). On a node-to-node connection this turns a peer cut
/// off (packets dropped, no RST) into an error within `timeout`, so the
/// sender redials at once when the network heals instead of waiting out
/// TCP's retransmission back-off, which after a long cut reaches tens of
/// seconds between tries.
pub fn set_user_timeout(stream: &tokio::net::TcpStream, timeout: std::time::Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
        tracing::debug!("cannot set TCP_USER_TIMEOUT on a connection: {e}");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (stream, timeout);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The options the config gives are the ones the kernel reports.
    #[tokio::test]
    async fn keepalive_options_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let keepalive = TcpKeepalive {
            enabled: true,
            time: Duration::from_secs(7),
            interval: Duration::from_secs(3),
            probes: 5,
        };
        set_keepalive(&server, &keepalive);
        let s = socket2::SockRef::from(&server);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(s.tcp_keepalive_interval().unwrap(), Duration::from_secs(3));
        assert_eq!(s.tcp_keepalive_retries().unwrap(), 5);
        set_keepalive(
            &server,
            &TcpKeepalive {
                enabled: false,
                ..keepalive
            },
        );
        assert!(!s.keepalive().unwrap());
        drop(client);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn user_timeout_reaches_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        set_user_timeout(&client, Duration::from_millis(1500));
        let s = socket2::SockRef::from(&client);
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );
    }
}
