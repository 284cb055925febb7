//! The binary's side of the libraries' progress reports: a bar on a
//! terminal (stderr), nothing otherwise, so that logs hold only the stages'
//! summary lines.

use clintune_core::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

/// Draws each phase a stage reports as a progress bar.
#[derive(Debug, Default)]
pub struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Progress for Bars {
    fn begin(&self, phase: &str, total: u64, unit: &str) {
        let bar = bar(total, phase, unit);
        if let Some(old) = self.lock().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = self.lock().as_ref() {
            bar.inc(n);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.lock().take() {
            bar.finish_and_clear();
        }
    }
}

impl Bars {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        // A panic while drawing leaves the bar usable: take it back.
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bar over `len` units of `unit` (e.g. "bytes", "patients"), drawn on
/// stderr when it is a terminal and hidden otherwise.
pub fn bar(len: u64, message: &str, unit: &str) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    let template = if unit == "bytes" {
        "{msg:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})"
    } else {
        "{msg:>12} [{bar:30}] {pos}/{len} {prefix} (eta {eta})"
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(unit.to_string());
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
