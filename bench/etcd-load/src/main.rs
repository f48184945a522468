//! `arakoon-bench-etcd`: `arakoon bench --target etcd://HOST:PORT,...`, the
//! same scenarios, load loop, measurement and report as `arakoon bench`
//! (the `bench` crate), against etcd's v3 API through `etcd-client`.
//!
//! How the operations map, so that both sides do the same work:
//! - `set` is a `put`; `sequence` a `txn` of puts (all or nothing, as
//!   Arakoon's sequence); the fill is `txn`s of `FILL_BATCH_KEYS` puts.
//! - `get` is a `get` of one key; `range` a `get` from a key with a range
//!   end past the bench's keys and a limit of `RANGE_MAX_KEYS`.
//! - Writes go to the leader (found once, from the members' status), as
//!   Arakoon's client sends updates to the master. `consistent` reads are
//!   linearizable and go to the leader too; `no-guarantee` and `at-least`
//!   reads are serializable and spread over the members (client `c` reads
//!   from endpoint `c mod n`), as `arakoon bench` spreads relaxed reads.
//! - Each bench client has its own connections (one to the leader, one
//!   to its read endpoint): one request in flight per client.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use bench::args::{self, Parsed, ReadConsistency, Target};
use bench::{Backend, Op, OpError, Outcome, Session};
use etcd_client::{Client, ConnectOptions, GetOptions, Txn, TxnOp};

/// Longest wait for one answer (as `arakoon bench`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait to connect to one member.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long finding the leader may keep trying (a cluster just started).
const LEADER_DEADLINE: Duration = Duration::from_secs(30);

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .with_timeout(REQUEST_TIMEOUT)
        .with_connect_timeout(CONNECT_TIMEOUT)
}

fn op_error(e: etcd_client::Error) -> OpError {
    let kind = match &e {
        etcd_client::Error::GRpcStatus(status) => format!("grpc {:?}", status.code()),
        etcd_client::Error::TransportError(_) => "transport".to_string(),
        etcd_client::Error::IoError(_) => "io".to_string(),
        _ => "etcd".to_string(),
    };
    OpError::new(kind, e.to_string())
}

async fn connect(endpoint: &str) -> Result<Client, OpError> {
    Client::connect([endpoint], Some(options()))
        .await
        .map_err(op_error)
}

/// The endpoint of the member that is leader now.
async fn find_leader(endpoints: &[String]) -> Result<String, OpError> {
    let start = std::time::Instant::now();
    loop {
        let mut last_error = OpError::new("no_leader", "no member names itself leader");
        for endpoint in endpoints {
            let status = match connect(endpoint).await {
                Ok(mut client) => client.status().await.map_err(op_error),
                Err(e) => Err(e),
            };
            match status {
                Ok(status) => {
                    let me = status.header().map(|h| h.member_id());
                    if status.leader() != 0 && me == Some(status.leader()) {
                        return Ok(endpoint.clone());
                    }
                }
                Err(e) => last_error = e,
            }
        }
        if start.elapsed() >= LEADER_DEADLINE {
            return Err(last_error);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct EtcdBackend {
    leader: String,
    endpoints: Vec<String>,
    consistency: ReadConsistency,
    /// The end of the bench's key range (for `range`).
    range_end: Vec<u8>,
}

struct EtcdSession {
    writer: Client,
    reader: Client,
    serializable: bool,
    range_end: Vec<u8>,
}

impl Backend for EtcdBackend {
    type Session = EtcdSession;

    fn name(&self) -> &'static str {
        "etcd"
    }

    async fn open(&self, client: usize) -> Result<EtcdSession, OpError> {
        let writer = connect(&self.leader).await?;
        let (reader, serializable) = match self.consistency {
            ReadConsistency::Consistent => (connect(&self.leader).await?, false),
            ReadConsistency::AtLeast | ReadConsistency::NoGuarantee => {
                let endpoint = &self.endpoints[client % self.endpoints.len().max(1)];
                (connect(endpoint).await?, true)
            }
        };
        let mut session = EtcdSession {
            writer,
            reader,
            serializable,
            range_end: self.range_end.clone(),
        };
        // Open the connections now, outside the measurement.
        session
            .reader
            .get("warm-up", Some(session.read_options()))
            .await
            .map_err(op_error)?;
        session.writer.status().await.map_err(op_error)?;
        Ok(session)
    }
}

impl EtcdSession {
    fn read_options(&self) -> GetOptions {
        let options = GetOptions::new();
        if self.serializable {
            options.with_serializable()
        } else {
            options
        }
    }
}

impl Session for EtcdSession {
    async fn execute(&mut self, op: &Op) -> Result<Outcome, OpError> {
        match op {
            Op::Set { key, value } => {
                self.writer
                    .put(key.clone(), value.to_vec(), None)
                    .await
                    .map_err(op_error)?;
                Ok(Outcome::Done)
            }
            Op::Get { key } => {
                let options = self.read_options();
                let response = self
                    .reader
                    .get(key.clone(), Some(options))
                    .await
                    .map_err(op_error)?;
                Ok(if response.kvs().is_empty() {
                    Outcome::Missing
                } else {
                    Outcome::Done
                })
            }
            Op::Range { first, max } => {
                let options = self
                    .read_options()
                    .with_range(self.range_end.clone())
                    .with_limit(i64::try_from(*max).unwrap_or(i64::MAX));
                let response = self
                    .reader
                    .get(first.clone(), Some(options))
                    .await
                    .map_err(op_error)?;
                Ok(if response.kvs().is_empty() {
                    Outcome::Missing
                } else {
                    Outcome::Done
                })
            }
            Op::Sequence { keys, value } => {
                let puts: Vec<TxnOp> = keys
                    .iter()
                    .map(|key| TxnOp::put(key.clone(), value.to_vec(), None))
                    .collect();
                self.writer
                    .txn(Txn::new().and_then(puts))
                    .await
                    .map_err(op_error)?;
                Ok(Outcome::Done)
            }
        }
    }
}

/// Most fdatasyncs of one probe.
const FDATASYNC_PROBE_MAX: u64 = 1_000_000;
/// Bytes written before each fdatasync of the probe (one small tlog entry).
const FDATASYNC_PROBE_BYTES: usize = 128;

/// `fdatasync DIR COUNT`: the physical limit of the comparison. Writes
/// `FDATASYNC_PROBE_BYTES` at the end of a file in `DIR` and fdatasyncs,
/// `COUNT` times, and reports it as a scenario (target "disk") in JSON.
fn fdatasync_probe(argv: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let (dir, count) = match argv {
        [dir, count] => {
            match count.parse::<u64>() {
                Ok(n) if (1..=FDATASYNC_PROBE_MAX).contains(&n) => (std::path::Path::new(dir), n),
                _ => {
                    let _ = writeln!(err, "fdatasync: COUNT {count:?}: a whole number from 1 to {FDATASYNC_PROBE_MAX}");
                    return bench::EXIT_USAGE;
                }
            }
        }
        _ => {
            let _ = writeln!(err, "usage: arakoon-bench-etcd fdatasync DIR COUNT");
            return bench::EXIT_USAGE;
        }
    };
    let path = dir.join("fdatasync-probe");
    let result = (|| -> std::io::Result<(bench::report::Tally, Duration)> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let block = vec![b'x'; FDATASYNC_PROBE_BYTES];
        let mut tally = bench::report::Tally::new();
        let start = std::time::Instant::now();
        for _ in 0..count {
            let sent = std::time::Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            tally.record_ok(sent.elapsed(), false);
        }
        Ok((tally, start.elapsed()))
    })();
    let _ = std::fs::remove_file(&path);
    let (tally, elapsed) = match result {
        Ok(measured) => measured,
        Err(e) => {
            let _ = writeln!(err, "fdatasync probe in {}: {e}", dir.display());
            return bench::EXIT_FAILED;
        }
    };
    print_probe(
        "disk",
        "fdatasync",
        FDATASYNC_PROBE_BYTES,
        &tally,
        elapsed,
        out,
    )
}

/// Prints one probe's measurements as a scenario report (JSON).
fn print_probe(
    target: &str,
    scenario: &str,
    bytes: usize,
    tally: &bench::report::Tally,
    elapsed: Duration,
    out: &mut dyn Write,
) -> i32 {
    let seconds = elapsed.as_secs_f64();
    let report = bench::ScenarioReport {
        target: target.into(),
        scenario: scenario.into(),
        consistency: String::new(),
        clients: 1,
        ops: tally.ok,
        ok: tally.ok,
        errors: 0,
        missing: 0,
        seconds,
        ops_per_sec: if seconds > 0.0 {
            tally.ok as f64 / seconds
        } else {
            0.0
        },
        latency_us: tally.latency(),
        value_size: bytes,
        key_size: 0,
        keys: 0,
        error_kinds: Default::default(),
        error_samples: Vec::new(),
    };
    match bench::report::print_json(&report, out) {
        Ok(()) => 0,
        Err(_) => bench::EXIT_FAILED,
    }
}

/// Most round trips of one probe.
const RTT_PROBE_MAX: u64 = 10_000_000;
/// Bytes sent each way per round trip (about one small request).
const RTT_PROBE_BYTES: usize = 128;

/// `rtt COUNT`: the loopback round trip of the comparison's bound. A
/// thread echoes `RTT_PROBE_BYTES` over a TCP connection on 127.0.0.1
/// (`TCP_NODELAY` on both ends, blocking sockets, two processes' worth of
/// kernel work but no async runtime), COUNT times; prints one JSON report.
fn rtt_probe(argv: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    use std::io::Read;
    let count = match argv {
        [count] => match count.parse::<u64>() {
            Ok(n) if (1..=RTT_PROBE_MAX).contains(&n) => n,
            _ => {
                let _ = writeln!(
                    err,
                    "rtt: COUNT {count:?}: a whole number from 1 to {RTT_PROBE_MAX}"
                );
                return bench::EXIT_USAGE;
            }
        },
        _ => {
            let _ = writeln!(err, "usage: arakoon-bench-etcd rtt COUNT");
            return bench::EXIT_USAGE;
        }
    };
    let result = (|| -> std::io::Result<(bench::report::Tally, Duration)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let echo = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = listener.accept()?;
            stream.set_nodelay(true)?;
            let mut buf = [0u8; RTT_PROBE_BYTES];
            loop {
                match stream.read_exact(&mut buf) {
                    Ok(()) => stream.write_all(&buf)?,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        });
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let mut buf = [b'x'; RTT_PROBE_BYTES];
        let mut tally = bench::report::Tally::new();
        let start = std::time::Instant::now();
        for _ in 0..count {
            let sent = std::time::Instant::now();
            stream.write_all(&buf)?;
            stream.read_exact(&mut buf)?;
            tally.record_ok(sent.elapsed(), false);
        }
        let elapsed = start.elapsed();
        drop(stream);
        echo.join()
            .map_err(|_| std::io::Error::other("the echo thread panicked"))??;
        Ok((tally, elapsed))
    })();
    match result {
        Ok((tally, elapsed)) => {
            print_probe("loopback", "rtt", RTT_PROBE_BYTES, &tally, elapsed, out)
        }
        Err(e) => {
            let _ = writeln!(err, "rtt probe: {e}");
            bench::EXIT_FAILED
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Unlocked handles: the progress bar draws on stderr from other threads.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = match argv.split_first() {
        Some((first, rest)) if first == "fdatasync" => fdatasync_probe(rest, &mut out, &mut err),
        Some((first, rest)) if first == "rtt" => rtt_probe(rest, &mut out, &mut err),
        _ => run(&argv, &mut out, &mut err),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(argv: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let options = match args::parse(argv) {
        Ok(Parsed::Help) => {
            let _ = out.write_all(args::USAGE.as_bytes());
            return 0;
        }
        Ok(Parsed::Run(options)) => options,
        Err(e) => {
            let _ = writeln!(err, "arakoon bench: {e}");
            return bench::EXIT_USAGE;
        }
    };
    let endpoints = match &options.target {
        Target::Etcd { endpoints } => endpoints.clone(),
        Target::Arakoon { .. } => {
            let _ = writeln!(
                err,
                "arakoon-bench-etcd: loads etcd only: give --target etcd://HOST:PORT,... (for Arakoon, run arakoon bench -config FILE)"
            );
            return bench::EXIT_USAGE;
        }
    };
    let leader = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| OpError::new("runtime", e.to_string()))
        .and_then(|runtime| runtime.block_on(find_leader(&endpoints)))
    {
        Ok(leader) => leader,
        Err(e) => {
            let _ = writeln!(
                err,
                "arakoon bench: etcd at {}: no leader: {e}",
                endpoints.join(",")
            );
            return bench::EXIT_FAILED;
        }
    };
    let workload = bench::Workload::new(&options);
    let backend = EtcdBackend {
        leader,
        endpoints,
        consistency: options.consistency,
        range_end: workload.end_key(),
    };
    bench::run_with(backend, &options, out, err)
}
