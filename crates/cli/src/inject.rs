//! `arakoon --inject-as-head FILE NODE -config CFG [--force] [--inplace]`:
//! a backup (`--backup-db`) made a stopped node's store
//! (`node::inject_as_head`, which says what is refused and why). Progress
//! of the copy: a bar on standard error when it is a terminal, otherwise a
//! plain line per 10 % on standard output; then one line per step.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::actions::{ActionError, FailureKind};

/// Runs `--inject-as-head`, writing its lines to `out`.
pub fn run(
    file: &Path,
    name: &str,
    config_path: &Path,
    options: node::InjectOptions,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let what = format!("--inject-as-head {} {name}", file.display());
    let loaded = config::load(config_path).map_err(|e| ActionError::new(&what, e))?;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut tenths_shown = None;
    let mut write_error = None;
    let mut write = |out: &mut dyn Write, line: String| {
        if write_error.is_none() {
            if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                write_error = Some(e);
            }
        }
    };
    let result = node::inject_as_head(
        loaded.config,
        name,
        file,
        options,
        &mut |event| match event {
            node::Injection::Copying { done, total } => {
                if bar.is_none() && tenths_shown.is_none() && std::io::stderr().is_terminal() {
                    let b = indicatif::ProgressBar::new(total);
                    let style = indicatif::ProgressStyle::with_template(
                        "inject-as-head [{bar:40}] {bytes}/{total_bytes} ({eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                    b.set_style(style.progress_chars("=> "));
                    bar = Some(b);
                }
                match &bar {
                    Some(b) => b.set_position(done),
                    None => {
                        let tenths = (done * 10).checked_div(total).unwrap_or(10);
                        if tenths_shown != Some(tenths) {
                            tenths_shown = Some(tenths);
                            write(out, format!("copied {done} of {total} bytes\n"));
                        }
                    }
                }
            }
            node::Injection::Checked {
                backup_index,
                backup_term,
                store_index,
                tlog_first,
                tlog_last,
            } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                let term =
                    backup_term.map_or_else(|| "not recorded".to_string(), |t| t.to_string());
                write(
                    out,
                    format!(
                        "backup: i = {backup_index} (term {term}); node {name}: store i = {store_index}, tlog i = {tlog_first}..={tlog_last}\n"
                    ),
                );
            }
            node::Injection::Done { rebased } => {
                let tlog = if rebased {
                    "its tlog now starts after the backup's last entry".to_string()
                } else {
                    "its tlog is kept as it was".to_string()
                };
                write(
                    out,
                    format!("done: the backup is node {name}'s store; {tlog}; start the node to catch up\n"),
                );
            }
        },
    );
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    result.map_err(|e| {
        let kind = match &e {
            node::NodeError::Tlog {
                source: tlog::TlogError::Corrupt { .. },
                ..
            }
            | node::NodeError::Store(store::StoreError::CorruptMetadata { .. }) => {
                FailureKind::Damaged
            }
            _ => FailureKind::Refused,
        };
        ActionError::of_kind(kind, &what, e)
    })?;
    if let Some(e) = write_error {
        return Err(ActionError::write_failed(&what, &e));
    }
    Ok(())
}
