//! `arakoon migrate -from OLD.ini -to NEW.ini`: copies every key of a
//! running cluster to another over the client protocol (so the source can
//! be any server that speaks Arakoon's protocol: an OCaml Arakoon cluster,
//! or ours), then verifies both sides.
//!
//! - Paged: `range_entries` from the last copied key (exclusive), `-page`
//!   keys at a time (halved while an answer is refused as too large); each
//!   page is written to the destination as `sequence`s of sets (at most
//!   [`SEQUENCE_BYTES`] each).
//! - Resumable: after each page the last copied key is written to the
//!   state file (`-state`, default `NEW.ini.migrate-state`; a new file
//!   then a rename, so it is always whole); a run that finds it goes on
//!   after that key. Sets are idempotent, so a page copied twice is harmless.
//!   The state file is removed once the verification passes.
//! - Verified: both sides are scanned in full, counting keys and folding
//!   every pair into a CRC32C (key and value, length-prefixed, in key
//!   order); equal counts and checksums are success, anything else is
//!   status 1 with both figures.
//!
//! Writes to the source during the copy are not seen by it: stop writers
//! (or make the old cluster read-only) first, as `docs/operations.md`
//! says.

use crate::actions::client_from_config;
use client::{Client, Error};
use protocol::{KeyRange, Update};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Most bytes of keys and values in one `sequence` written to the destination.
pub const SEQUENCE_BYTES: usize = 4 << 20;
/// Default keys per page.
pub const DEFAULT_PAGE: usize = 1000;

#[derive(Debug, clap::Parser)]
#[command(
    name = "arakoon migrate",
    about = "Copy every key of a running cluster (any server of Arakoon's protocol) to another, resumably, then verify both sides",
    after_help = "Stop writers to the source (or make it read-only) first. Exit status: 0 copied and verified, \
                  1 a failure or a verification difference, 2 usage, 3 a cluster unreachable."
)]
struct Args {
    /// The source cluster's config (Arakoon spells it -from)
    #[arg(long = "from", value_name = "OLD.ini")]
    from: PathBuf,
    /// The destination cluster's config (-to)
    #[arg(long = "to", value_name = "NEW.ini")]
    to: PathBuf,
    /// Keys per page (-page)
    #[arg(long = "page", value_name = "N", default_value_t = DEFAULT_PAGE)]
    page: usize,
    /// Where the last copied key is kept between runs (-state; default NEW.ini.migrate-state)
    #[arg(long = "state", value_name = "FILE")]
    state: Option<PathBuf>,
    /// Only compare both sides (-verify-only)
    #[arg(long = "verify-only")]
    verify_only: bool,
}

/// `arakoon migrate ARGS`.
pub fn main(args: &[String]) -> ExitCode {
    use clap::Parser;
    let argv =
        std::iter::once("arakoon migrate".to_string()).chain(args.iter().map(
            |a| match a.as_str() {
                "-from" | "-to" | "-page" | "-state" | "-verify-only" => format!("-{a}"),
                _ => a.clone(),
            },
        ));
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return crate::print_out(e.render().to_string().as_bytes());
        }
        Err(e) => {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad command line");
            eprintln!(
                "arakoon migrate: {} (try arakoon migrate --help)",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    if args.page == 0 {
        eprintln!("arakoon migrate: -page 0: at least 1 key per page");
        return ExitCode::from(crate::EXIT_USAGE);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arakoon migrate: cannot start the async runtime: {e}");
            return ExitCode::from(crate::EXIT_FAILED);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("arakoon migrate: {e}");
            ExitCode::from(e.kind.exit_code())
        }
    }
}

type Failure = crate::actions::ActionError;

fn failure(what: &str, e: &Error) -> Failure {
    crate::actions::client_failure(what, e)
}

fn local(what: &str, reason: impl std::fmt::Display) -> Failure {
    crate::actions::ActionError::new(what, reason)
}

async fn run(args: &Args) -> Result<ExitCode, Failure> {
    let source = client_from_config(&args.from)?;
    let destination = client_from_config(&args.to)?;
    let state = args.state.clone().unwrap_or_else(|| {
        let mut s = args.to.clone().into_os_string();
        s.push(".migrate-state");
        PathBuf::from(s)
    });
    if !args.verify_only {
        copy(&source, &destination, args.page, &state).await?;
    }
    let from = scan(&source, args.page, "source").await?;
    let to = scan(&destination, args.page, "destination").await?;
    println!(
        "source: {} keys, checksum {:08x}; destination: {} keys, checksum {:08x}",
        from.0, from.1, to.0, to.1
    );
    if from == to {
        println!("verified: both sides hold the same {} keys", from.0);
        if state.exists() {
            std::fs::remove_file(&state).map_err(|e| local(&state.display().to_string(), e))?;
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "arakoon migrate: the destination differs from the source (were there writes to either side during the copy?)"
        );
        Ok(ExitCode::from(crate::EXIT_FAILED))
    }
}

/// The page after `after` (exclusive), at most `max` entries.
fn page_after(after: &Option<Vec<u8>>, max: usize) -> KeyRange {
    KeyRange {
        first: after.clone(),
        first_inclusive: after.is_none(),
        last: None,
        last_inclusive: false,
        max: i32::try_from(max).unwrap_or(i32::MAX),
    }
}

/// One page from `client`, halving the page while the node refuses the
/// answer as too large (values larger than the page size expected).
async fn read_page(
    client: &Client,
    after: &Option<Vec<u8>>,
    page: &mut usize,
    side: &str,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, Failure> {
    loop {
        match client.range_entries(&page_after(after, *page)).await {
            Ok(entries) => return Ok(entries),
            Err(Error::Server {
                code: protocol::ResultCode::BadInput,
                ..
            }) if *page > 1 => {
                *page /= 2;
            }
            Err(e) => return Err(failure(&format!("range_entries on the {side}"), &e)),
        }
    }
}

fn read_state(path: &Path) -> Result<Option<Vec<u8>>, Failure> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let hex = text.trim();
            decode_hex(hex).map(Some).ok_or_else(|| {
                local(
                    &path.display().to_string(),
                    "not a migration state file (one hex key expected)",
                )
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(local(&path.display().to_string(), e)),
    }
}

fn write_state(path: &Path, key: &[u8]) -> Result<(), Failure> {
    let what = path.display().to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(|e| local(&what, e))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(file, "{hex}")
        .and_then(|()| file.sync_all())
        .map_err(|e| local(&what, e))?;
    std::fs::rename(&tmp, path).map_err(|e| local(&what, e))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn copy(
    source: &Client,
    destination: &Client,
    page: usize,
    state: &Path,
) -> Result<(), Failure> {
    let mut after = read_state(state)?;
    let total = source
        .get_key_count()
        .await
        .map_err(|e| failure("get_key_count on the source", &e))?;
    match &after {
        Some(key) => println!(
            "resuming after key {:?} (state file {})",
            String::from_utf8_lossy(key),
            state.display()
        ),
        None => println!("copying {total} keys"),
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "[{bar:40}] {pos}/{len} keys ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut page = page;
    let mut copied = 0u64;
    loop {
        let entries = read_page(source, &after, &mut page, "source").await?;
        let Some((last, _)) = entries.last() else {
            break;
        };
        let last = last.clone();
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        for (key, value) in entries.iter() {
            if bytes + key.len() + value.len() > SEQUENCE_BYTES && !batch.is_empty() {
                write_batch(destination, std::mem::take(&mut batch)).await?;
                bytes = 0;
            }
            bytes += key.len() + value.len();
            batch.push(Update::Set {
                key: key.clone(),
                value: value.clone(),
            });
        }
        write_batch(destination, batch).await?;
        write_state(state, &last)?;
        copied += entries.len() as u64;
        match &bar {
            Some(bar) => bar.inc(entries.len() as u64),
            None => println!("copied {copied} keys"),
        }
        after = Some(last);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!("copied {copied} keys in this run");
    Ok(())
}

async fn write_batch(destination: &Client, batch: Vec<Update>) -> Result<(), Failure> {
    if batch.is_empty() {
        return Ok(());
    }
    destination
        .sequence(batch)
        .await
        .map_err(|e| failure("sequence on the destination", &e))
}

/// Every pair of `client`'s cluster: the count and a CRC32C of the pairs
/// in key order (each as key length, key, value length, value; lengths as
/// u32 little endian).
async fn scan(client: &Client, page: usize, side: &str) -> Result<(u64, u32), Failure> {
    let mut after = None;
    let mut page = page;
    let (mut count, mut crc) = (0u64, 0u32);
    loop {
        let entries = read_page(client, &after, &mut page, side).await?;
        let Some((last, _)) = entries.last() else {
            break;
        };
        let last = last.clone();
        for (key, value) in &entries {
            for part in [key, value] {
                let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
                crc = crc32c::crc32c_append(crc, &len.to_le_bytes());
                crc = crc32c::crc32c_append(crc, part);
            }
        }
        count += entries.len() as u64;
        after = Some(last);
    }
    Ok((count, crc))
}
