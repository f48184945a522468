//! `arakoon --collapse-local NODE N -config FILE`: collapses a stopped
//! node's tlog on its files (`node::collapse_local`: the running node's
//! plan, keeping the newest N full tlogs and nothing the store has not made
//! durable). Progress: a bar on standard error when it is a terminal,
//! otherwise one plain line per removed tlog on standard output.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::actions::{ActionError, FailureKind};

/// Runs `--collapse-local`, writing its lines to `out`.
pub fn run(
    name: &str,
    tlogs_to_keep: u32,
    config_path: &Path,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let what = format!("--collapse-local {name} {tlogs_to_keep}");
    let loaded = config::load(config_path).map_err(|e| ActionError::new(&what, e))?;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut write_error = None;
    let mut write = |out: &mut dyn Write, line: String| {
        if write_error.is_none() {
            if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                write_error = Some(e);
            }
        }
    };
    let result = node::collapse_local(
        loaded.config,
        name,
        tlogs_to_keep,
        &mut |event| match event {
            node::LocalCollapse::Planned {
                total,
                below,
                tlog_first,
                tlog_last,
                store_durable,
            } => {
                let plan = if total == 0 {
                    "nothing to collapse".to_string()
                } else {
                    format!("removing {total} tlogs (the tlog will start at i = {below})")
                };
                write(
                    out,
                    format!(
                        "node {name}: tlog i = {tlog_first}..={tlog_last}, store durable at i = {store_durable}, keeping {tlogs_to_keep} tlogs: {plan}\n"
                    ),
                );
                if total > 0 && std::io::stderr().is_terminal() {
                    let b = indicatif::ProgressBar::new(u64::from(total));
                    let style = indicatif::ProgressStyle::with_template(
                        "collapse-local [{bar:40}] {pos}/{len} tlogs ({eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                    b.set_style(style.progress_chars("=> "));
                    bar = Some(b);
                }
            }
            node::LocalCollapse::Removed { done, total } => match &bar {
                Some(b) => b.set_position(u64::from(done)),
                None => write(out, format!("collapsed {done} of {total} tlogs\n")),
            },
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let count = result.map_err(|e| {
        let kind = match &e {
            node::NodeError::Tlog {
                source: tlog::TlogError::Corrupt { .. },
                ..
            } => FailureKind::Damaged,
            _ => FailureKind::Refused,
        };
        ActionError::of_kind(kind, &what, e)
    })?;
    if let Some(e) = write_error {
        return Err(ActionError::write_failed(&what, &e));
    }
    if count > 0 {
        out.write_all(format!("done: {count} tlogs collapsed\n").as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ActionError::write_failed(&what, &e))?;
    }
    Ok(())
}
