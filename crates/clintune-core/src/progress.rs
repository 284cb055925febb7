//! Progress reporting: a bar on a terminal, periodic plain lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

/// Creates a progress bar over `len` units of `unit` (e.g. "bytes", "patients").
///
/// On a terminal the bar is drawn to stderr; when stderr is not a terminal (CI,
/// log files) it stays hidden so logs hold only the stage's summary lines.
pub fn bar(len: u64, message: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), draw_target());
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

fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
