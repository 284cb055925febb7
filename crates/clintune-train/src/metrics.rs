//! Metrics of a run: one JSON object per line in `metrics.jsonl`, and the
//! same scalars as TensorBoard events under `tensorboard/`.

use crate::error::TrainError;
use crate::tensorboard::EventWriter;
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The metrics file of a run directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// The TensorBoard folder of a run directory.
pub const TENSORBOARD_DIR: &str = "tensorboard";

/// Where a run's metrics go.
pub struct Metrics {
    path: PathBuf,
    file: File,
    events: EventWriter,
}

impl Metrics {
    /// Opens the run's metrics. When resuming from `resume_step`, lines of
    /// later steps (written after that checkpoint, by the interrupted run)
    /// are dropped first, and the new event file starts with a session start
    /// at the next step, so both read as one uninterrupted run.
    pub fn open(run_dir: &Path, resume_step: Option<u64>) -> Result<Self, TrainError> {
        let path = run_dir.join(METRICS_FILE);
        if let Some(step) = resume_step {
            truncate_after(&path, step)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(TrainError::io(&path))?;
        let tb = run_dir.join(TENSORBOARD_DIR);
        let mut events = EventWriter::create(&tb)?;
        if let Some(step) = resume_step {
            // TensorBoard then drops what the interrupted run logged after
            // its last checkpoint, as `truncate_after` does here.
            events.session_start(step + 1)?;
        }
        Ok(Self { path, file, events })
    }

    /// Records `values` at `step` under `prefix/` (`train`, `eval`).
    pub fn log(
        &mut self,
        prefix: &str,
        step: u64,
        values: &[(&str, f64)],
    ) -> Result<(), TrainError> {
        let mut line = Map::new();
        line.insert("step".into(), step.into());
        line.insert("split".into(), prefix.into());
        for (k, v) in values {
            line.insert((*k).into(), Value::from(*v));
        }
        let text = Value::Object(line).to_string() + "\n";
        self.file
            .write_all(text.as_bytes())
            .map_err(TrainError::io(&self.path))?;
        let tagged: Vec<(String, f64)> = values
            .iter()
            .map(|(k, v)| (format!("{prefix}/{k}"), *v))
            .collect();
        let refs: Vec<(&str, f64)> = tagged.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        Ok(self.events.scalars(step, &refs)?)
    }

    /// Flushes both files to disk (at checkpoints and at the end).
    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.file.sync_data().map_err(TrainError::io(&self.path))?;
        Ok(self.events.flush()?)
    }
}

/// Keeps only the lines of `path` whose step is at most `step`.
fn truncate_after(path: &Path, step: u64) -> Result<(), TrainError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    clintune_core::staging::write_atomic(path, kept.as_bytes()).map_err(TrainError::io(path))
}
