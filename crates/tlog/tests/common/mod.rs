//! Helpers shared by the tlog's integration tests.
#![allow(dead_code)]

use disk::{DiskRef, SimDisk};
use std::path::PathBuf;
use tlog::{Compression, Entry, Tlog, TlogOptions};

pub fn dir() -> PathBuf {
    PathBuf::from("/node0/tlog")
}

/// An entry whose payload starts with `tag` (so entries re-appended after a
/// truncation differ from the ones they replace) and is `len` bytes long.
pub fn entry(index: u64, term: u64, tag: u64, len: usize) -> Entry {
    let mut payload = tag.to_le_bytes().to_vec();
    payload.resize(len.max(8), (tag % 251) as u8);
    Entry {
        index,
        term,
        payload,
    }
}

pub fn small_options(max_entries: u64, max_size: u64) -> TlogOptions {
    TlogOptions {
        max_entries,
        max_size,
        compression: Compression::Lz4,
    }
}

pub fn open_sim(disk: &SimDisk, options: TlogOptions) -> Tlog {
    match Tlog::open(disk.shared(), dir(), options) {
        Ok(tlog) => tlog,
        Err(err) => panic!("open failed: {err}"),
    }
}

pub fn open_on(disk: DiskRef, dir: PathBuf, options: TlogOptions) -> Tlog {
    match Tlog::open(disk, dir, options) {
        Ok(tlog) => tlog,
        Err(err) => panic!("open failed: {err}"),
    }
}

/// Every entry the tlog holds, read in one go.
pub fn all_entries(tlog: &Tlog) -> Vec<Entry> {
    match tlog.read(tlog.first_index(), tlog.last_index() + 1, u64::MAX) {
        Ok(entries) => entries,
        Err(err) => panic!("read failed: {err}"),
    }
}

/// A deterministic `choose(n)` for `SimDisk::crash`.
pub fn chooser(seed: u64) -> impl FnMut(u64) -> u64 {
    disk::splitmix_chooser(seed)
}

/// Runs `f` and returns what it returned with the warnings the tlog logged
/// meanwhile on this thread (each as `field=value` pairs). The collector is
/// the process's global subscriber (installed once): a scoped one can miss
/// events when tests on other threads race on tracing's callsite cache.
pub fn warnings_during<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        if let Err(err) = tracing::subscriber::set_global_default(WarnCollector) {
            panic!("install the warning collector: {err}");
        }
    });
    WARNINGS.with(|w| *w.borrow_mut() = Some(Vec::new()));
    let result = f();
    let warnings = WARNINGS.with(|w| w.borrow_mut().take()).unwrap_or_default();
    (result, warnings)
}

thread_local! {
    /// The warnings of this thread, while `warnings_during` collects them.
    static WARNINGS: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// A minimal `tracing` subscriber that keeps WARN events per thread.
struct WarnCollector;

struct FieldText<'a>(&'a mut String);

impl tracing::field::Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for WarnCollector {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = String::new();
            event.record(&mut FieldText(&mut text));
            WARNINGS.with(|w| {
                if let Some(warnings) = w.borrow_mut().as_mut() {
                    warnings.push(text);
                }
            });
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}
