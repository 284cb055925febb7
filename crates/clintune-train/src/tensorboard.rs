//! TensorBoard event files for training metrics (scalars only).
//!
//! [`EventWriter`] writes what `tensorboard --logdir DIR` reads: a file named
//! like TensorBoard's own, `events.out.tfevents.{unix_seconds}.{hostname}.{pid}.clintune`,
//! in the log directory, holding `tensorflow.Event` protocol buffers in
//! TFRecord framing. The first event names the file version (`brain.Event:2`);
//! each later one holds a `Summary` of scalar values at one step.
//!
//! A writer never appends to an existing file. A resumed run creates a new
//! file in the same directory: TensorBoard reads all event files of a
//! directory, in name order (which is creation order), as one run. Points that
//! the interrupted run logged past the step it resumes from stay in the old
//! file; the new file's [`EventWriter::session_start`] event (a `SessionLog`
//! with status `START`) tells TensorBoard to drop them, as it does for
//! TensorFlow's restarted runs.
//!
//! [`read_scalars`] reads a file back, checking every record's CRCs, and
//! [`read_run`] a directory of them as TensorBoard shows it; both are meant
//! for tests and tools. The messages below are hand-written with only
//! the fields used here, numbered as in TensorFlow's
//! `tensorflow/core/util/event.proto` and `tensorflow/core/framework/summary.proto`;
//! other fields, as written by other tools, are skipped when decoding.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

/// The `file_version` of the first event of every file: TensorBoard's current one.
const FILE_VERSION: &str = "brain.Event:2";

/// The suffix of event file names, after the process id.
const FILE_SUFFIX: &str = "clintune";

/// How many names [`EventWriter::create`] tries (`NAME`, `NAME.1`, …) when
/// another writer of the same process created a file in the same second.
const NAME_TRIES: u32 = 1000;

/// The bytes before a record's data: its length (u64) and that length's CRC (u32).
const HEADER_LEN: usize = 12;

/// The bytes after a record's data: the data's CRC (u32).
const FOOTER_LEN: usize = 4;

/// Errors writing or reading TensorBoard event files.
#[derive(Debug, thiserror::Error)]
pub enum TensorboardError {
    /// I/O error on a log directory or event file.
    #[error("{path}: {action}: {err}")]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// What was being done, such as "writing the event file".
        action: &'static str,
        /// The error.
        err: io::Error,
    },
    /// A step does not fit TensorBoard's signed 64-bit step.
    #[error(
        "{path}: step {step} is beyond TensorBoard's largest step ({})",
        i64::MAX
    )]
    StepOutOfRange {
        /// The event file.
        path: PathBuf,
        /// The step.
        step: u64,
    },
    /// A record's stored CRC does not match its bytes: the file is damaged.
    #[error(
        "{path}: record {index}: {part} CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
    )]
    Crc {
        /// The event file.
        path: PathBuf,
        /// The record's index, counting from 0 (the file-version record).
        index: usize,
        /// Which CRC failed: `"length"` or `"data"`.
        part: &'static str,
        /// The CRC in the file.
        stored: u32,
        /// The CRC of the bytes it covers.
        computed: u32,
    },
    /// The file ends inside a record (or a record's length is impossibly large).
    #[error("{path}: record {index} at byte {offset} is truncated")]
    Truncated {
        /// The event file.
        path: PathBuf,
        /// The record's index, counting from 0.
        index: usize,
        /// The byte offset where the record starts.
        offset: usize,
    },
    /// A record's CRCs match but its data is not an `Event` message.
    #[error("{path}: record {index} is not a TensorBoard event: {err}")]
    Decode {
        /// The event file.
        path: PathBuf,
        /// The record's index, counting from 0.
        index: usize,
        /// The error.
        err: prost::DecodeError,
    },
}

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    wall_time: f64,
    /// The training step.
    #[prost(int64, tag = "2")]
    step: i64,
    /// The payload (the `what` oneof).
    #[prost(oneof = "What", tags = "3, 5, 7")]
    what: Option<What>,
}

/// The payloads of `Event.what` used here.
#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    /// The format version, in the first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Values logged at a step.
    #[prost(message, tag = "5")]
    Summary(Summary),
    /// A session event: a (re)start of logging.
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorflow.SessionLog`, with the one field used here.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    /// `SessionLog.SessionStatus`: 1 is `START`.
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `SessionLog.SessionStatus.START`.
const SESSION_START: i32 = 1;

/// `tensorflow.Summary`: the values of one event.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: one tagged value.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    /// The series name, such as `train/loss`.
    #[prost(string, tag = "1")]
    tag: String,
    /// The value (the `value` oneof).
    #[prost(oneof = "ValueKind", tags = "2")]
    value: Option<ValueKind>,
}

/// The kinds of `Summary.Value.value` used here.
#[derive(Clone, PartialEq, prost::Oneof)]
enum ValueKind {
    /// A scalar.
    #[prost(float, tag = "2")]
    SimpleValue(f32),
}

/// Writes scalar metrics to a new TensorBoard event file.
///
/// Writes are buffered: call [`EventWriter::flush`] at checkpoints and at the
/// end of training to make them visible to TensorBoard and durable. Dropping
/// the writer flushes what is buffered but ignores errors.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
    clock: fn() -> f64,
}

impl EventWriter {
    /// Creates `dir` if needed and a new event file in it, named
    /// `events.out.tfevents.{unix_seconds}.{hostname}.{pid}.clintune`, and
    /// writes the file-version event.
    ///
    /// The host name is read from `/etc/hostname`, else `$HOSTNAME`, else it
    /// is `localhost`. An existing file is never overwritten: should the name
    /// be taken (a second writer of this process within the same second), `.1`,
    /// `.2`, … is appended.
    pub fn create(dir: &Path) -> Result<Self, TensorboardError> {
        Self::create_with_clock(dir, system_clock)
    }

    /// [`EventWriter::create`], with `clock` giving every wall time (seconds
    /// since the Unix epoch), the file name's included.
    fn create_with_clock(dir: &Path, clock: fn() -> f64) -> Result<Self, TensorboardError> {
        fs::create_dir_all(dir).map_err(|err| io_error(dir, "creating the log directory", err))?;
        let name = file_name(clock(), &hostname(), std::process::id());
        let (path, file) = create_new_file(dir, &name)?;
        let mut writer = Self {
            path,
            out: BufWriter::new(file),
            clock,
        };
        writer.write_event(0, What::FileVersion(FILE_VERSION.to_string()))?;
        writer
            .out
            .flush()
            .map_err(|err| io_error(&writer.path, "writing the event file", err))?;
        Ok(writer)
    }

    /// Logs `value` as the scalar `tag` (such as `train/loss`) at `step`.
    ///
    /// TensorBoard stores scalars as 32-bit floats: `value` is rounded to the
    /// nearest `f32`, and magnitudes beyond `f32::MAX` become infinite.
    /// Fails if `step` exceeds `i64::MAX` or the write fails.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<(), TensorboardError> {
        self.scalars(step, &[(tag, value)])
    }

    /// Logs several scalars, as `(tag, value)` pairs, at one `step`, in one
    /// event; nothing is written for an empty slice. See [`EventWriter::scalar`].
    pub fn scalars(&mut self, step: u64, values: &[(&str, f64)]) -> Result<(), TensorboardError> {
        if values.is_empty() {
            return Ok(());
        }
        let step = i64::try_from(step).map_err(|_| TensorboardError::StepOutOfRange {
            path: self.path.clone(),
            step,
        })?;
        let value = values
            .iter()
            .map(|&(tag, value)| SummaryValue {
                tag: tag.to_string(),
                value: Some(ValueKind::SimpleValue(value as f32)),
            })
            .collect();
        self.write_event(step, What::Summary(Summary { value }))
    }

    /// Marks a restart at `step`: TensorBoard drops every point at `step` or
    /// later that it read before this event (from this run's earlier files),
    /// which is what an interrupted run logged past the checkpoint it is
    /// resumed from. Write it before the resumed run's first point.
    pub fn session_start(&mut self, step: u64) -> Result<(), TensorboardError> {
        let step = i64::try_from(step).map_err(|_| TensorboardError::StepOutOfRange {
            path: self.path.clone(),
            step,
        })?;
        let log = SessionLog {
            status: SESSION_START,
        };
        self.write_event(step, What::SessionLog(log))
    }

    /// Writes out everything buffered and syncs the file's data to disk.
    pub fn flush(&mut self) -> Result<(), TensorboardError> {
        self.out
            .flush()
            .map_err(|err| io_error(&self.path, "writing the event file", err))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|err| io_error(&self.path, "syncing the event file", err))
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event with payload `what` at `step`, stamped with the clock.
    fn write_event(&mut self, step: i64, what: What) -> Result<(), TensorboardError> {
        let event = Event {
            wall_time: (self.clock)(),
            step,
            what: Some(what),
        };
        write_record(&mut self.out, &event.encode_to_vec())
            .map_err(|err| io_error(&self.path, "writing the event file", err))
    }
}

/// Reads the scalars of the event file at `path` as `(tag, step, value)`, in
/// file order, checking both CRCs of every record.
///
/// Events other than scalar summaries (the file version, images, …) are
/// skipped. The whole file is read into memory. Fails, naming the file and
/// the record's index (from 0), on a CRC mismatch, a truncated record or a
/// record that is not an event.
pub fn read_scalars(path: &Path) -> Result<Vec<(String, i64, f32)>, TensorboardError> {
    let mut scalars = Vec::new();
    for event in read_events(path)? {
        push_scalars(event, &mut scalars);
    }
    Ok(scalars)
}

/// Reads the scalars of every event file in `dir` (names containing
/// `tfevents`), in name order, as TensorBoard shows them: a session start
/// event at step `s` drops the points read so far at step `s` or later.
/// Checks CRCs as [`read_scalars`] does.
pub fn read_run(dir: &Path) -> Result<Vec<(String, i64, f32)>, TensorboardError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|err| io_error(dir, "listing the log directory", err))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            p.is_file() && name.is_some_and(|n| n.contains("tfevents"))
        })
        .collect();
    files.sort();
    let mut scalars = Vec::new();
    for file in files {
        for event in read_events(&file)? {
            if let Some(What::SessionLog(log)) = &event.what
                && log.status == SESSION_START
            {
                scalars.retain(|(_, step, _)| *step < event.step);
            }
            push_scalars(event, &mut scalars);
        }
    }
    Ok(scalars)
}

/// The events of the file at `path`, in order, CRCs checked.
fn read_events(path: &Path) -> Result<Vec<Event>, TensorboardError> {
    let bytes = fs::read(path).map_err(|err| io_error(path, "reading the event file", err))?;
    let mut events = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let index = events.len();
        let (data, next) = split_record(&bytes, offset, path, index)?;
        let event = Event::decode(data).map_err(|err| TensorboardError::Decode {
            path: path.to_path_buf(),
            index,
            err,
        })?;
        events.push(event);
        offset = next;
    }
    Ok(events)
}

/// Appends the scalars of `event`, if it holds a summary, to `scalars`.
fn push_scalars(event: Event, scalars: &mut Vec<(String, i64, f32)>) {
    let Some(What::Summary(summary)) = event.what else {
        return;
    };
    for value in summary.value {
        if let Some(ValueKind::SimpleValue(x)) = value.value {
            scalars.push((value.tag, event.step, x));
        }
    }
}

/// Splits off record `index` of `path`, which starts at `offset` of `bytes`,
/// after checking both its CRCs; returns its data and the offset after it.
fn split_record<'a>(
    bytes: &'a [u8],
    offset: usize,
    path: &Path,
    index: usize,
) -> Result<(&'a [u8], usize), TensorboardError> {
    let truncated = || TensorboardError::Truncated {
        path: path.to_path_buf(),
        index,
        offset,
    };
    let rest = bytes.get(offset..).ok_or_else(truncated)?;
    let (len_bytes, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
    let (len_crc, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    check_crc(len_bytes, len_crc, "length", path, index)?;
    let len = usize::try_from(u64::from_le_bytes(*len_bytes)).map_err(|_| truncated())?;
    let (data, rest) = rest.split_at_checked(len).ok_or_else(truncated)?;
    let (data_crc, _) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
    check_crc(data, data_crc, "data", path, index)?;
    Ok((data, offset + HEADER_LEN + len + FOOTER_LEN))
}

/// Checks that `stored` (little-endian) is the masked CRC of `bytes`, the
/// `part` of record `index` of `path`.
fn check_crc(
    bytes: &[u8],
    stored: &[u8; 4],
    part: &'static str,
    path: &Path,
    index: usize,
) -> Result<(), TensorboardError> {
    let stored = u32::from_le_bytes(*stored);
    let computed = masked_crc32c(bytes);
    if stored == computed {
        return Ok(());
    }
    Err(TensorboardError::Crc {
        path: path.to_path_buf(),
        index,
        part,
        stored,
        computed,
    })
}

/// Writes `data` as one TFRecord: its length (u64, little-endian), the masked
/// CRC of those 8 bytes, the data, and the masked CRC of the data (u32s,
/// little-endian).
fn write_record(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc32c(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc32c(data).to_le_bytes())
}

/// The CRC-32C of `data`, masked as TFRecord does:
/// `((crc >> 15) | (crc << 17)) + 0xa282ead8`, wrapping.
fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// The event file name for a file created at `wall_time` by process `pid` of `host`.
fn file_name(wall_time: f64, host: &str, pid: u32) -> String {
    // Zero-padded like TensorBoard's own names, so that names sort by time.
    let seconds = wall_time as u64;
    format!("events.out.tfevents.{seconds:010}.{host}.{pid}.{FILE_SUFFIX}")
}

/// Creates the new file `name` in `dir`, else `name.1`, `name.2`, … when the
/// name is taken; never opens an existing file.
fn create_new_file(dir: &Path, name: &str) -> Result<(PathBuf, File), TensorboardError> {
    let mut path = dir.join(name);
    for n in 1..=NAME_TRIES {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                path = dir.join(format!("{name}.{n}"));
            }
            Err(err) => return Err(io_error(&path, "creating the event file", err)),
        }
    }
    let err = io::Error::new(
        io::ErrorKind::AlreadyExists,
        "every candidate name is taken",
    );
    Err(io_error(&path, "creating the event file", err))
}

/// This machine's name: `/etc/hostname`, else `$HOSTNAME`, else `localhost`,
/// with any character other than an ASCII letter, digit, `-`, `_` or `.`
/// replaced by `_` so that it is safe in a file name.
fn hostname() -> String {
    let nonempty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let name = fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(nonempty)
        .or_else(|| std::env::var("HOSTNAME").ok().and_then(nonempty))
        .unwrap_or_else(|| "localhost".to_string());
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect()
}

/// Seconds since the Unix epoch, or 0 for a clock set before it.
fn system_clock() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// A [`TensorboardError::Io`] for `action` on `path`.
fn io_error(path: &Path, action: &'static str, err: io::Error) -> TensorboardError {
    TensorboardError::Io {
        path: path.to_path_buf(),
        action,
        err,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::process::Command;

    use serde_json::Value;

    use super::*;

    /// The wall time of every event of the golden file: 2026-01-01T00:00:00.25Z.
    const GOLDEN_WALL_TIME: f64 = 1_767_225_600.25;

    fn golden_clock() -> f64 {
        GOLDEN_WALL_TIME
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/tensorboard")
            .join(name)
    }

    /// The events of `golden.tfevents`: step 0 (which protobuf leaves out),
    /// a step beyond 32 bits, one and several values per event, and values
    /// that test the f32 conversion (1e-8, 0.1, -0.0, a subnormal, an f64
    /// beyond f32, NaN).
    fn write_golden_events(writer: &mut EventWriter) -> Result<(), TensorboardError> {
        writer.scalars(0, &[("train/loss", 3.5), ("train/lr", 1e-8)])?;
        writer.scalars(1, &[("train/loss", 2.25), ("train/lr", 2e-5)])?;
        writer.scalar("eval/loss", 1, -0.0)?;
        writer.scalars(2, &[("train/loss", 0.1), ("train/lr", 1.5e-5)])?;
        writer.scalar("eval/loss", 2, 1e-40)?;
        writer.scalar("train/loss", 1 << 40, 1e300)?;
        writer.scalar("eval/loss", 1 << 40, f64::NAN)?;
        writer.flush()
    }

    /// An f32 compared bit for bit, except that all NaNs are equal.
    #[derive(Debug, Clone, Copy)]
    struct Exact(f32);

    impl PartialEq for Exact {
        fn eq(&self, other: &Self) -> bool {
            self.0.to_bits() == other.0.to_bits() || (self.0.is_nan() && other.0.is_nan())
        }
    }

    type ByTag = BTreeMap<String, Vec<(i64, Exact)>>;

    /// `scalars` grouped by tag, keeping their order within a tag.
    fn by_tag(scalars: Vec<(String, i64, f32)>) -> ByTag {
        let mut out = ByTag::new();
        for (tag, step, value) in scalars {
            out.entry(tag).or_default().push((step, Exact(value)));
        }
        out
    }

    /// The `scalars` of `read_events.py`'s JSON, grouped by tag.
    fn json_by_tag(json: &Value) -> ByTag {
        let tags = json["scalars"].as_object().expect("scalars is an object");
        tags.iter()
            .map(|(tag, points)| {
                let points = points.as_array().expect("points are an array");
                (tag.clone(), points.iter().map(json_point).collect())
            })
            .collect()
    }

    fn json_point(point: &Value) -> (i64, Exact) {
        let step = point[0].as_i64().expect("step is an integer");
        let value = match &point[1] {
            Value::String(s) if s == "nan" => f32::NAN,
            Value::String(s) if s == "inf" => f32::INFINITY,
            Value::String(s) if s == "-inf" => f32::NEG_INFINITY,
            // A float widened from f32, so narrowing is exact.
            v => v.as_f64().expect("value is a number") as f32,
        };
        (step, Exact(value))
    }

    fn flip_byte(path: &Path, offset: usize) {
        let mut bytes = fs::read(path).expect("reading");
        bytes[offset] ^= 0x40;
        fs::write(path, bytes).expect("writing");
    }

    /// The record starts of the file at `path`.
    fn record_offsets(path: &Path) -> Vec<usize> {
        let bytes = fs::read(path).expect("reading");
        let mut offsets = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            offsets.push(offset);
            let len = u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
            offset += HEADER_LEN + len as usize + FOOTER_LEN;
        }
        offsets
    }

    #[test]
    fn masked_crc32c_matches_tensorboard() {
        // From tensorboard 2.21.0:
        // tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(b"brain.Event:2"), 0x7c06_01ee);
        assert_eq!(masked_crc32c(&24u64.to_le_bytes()), 0x224b_7fa3);
    }

    #[test]
    fn records_match_tensorboards_record_writer() {
        // tensorboard.summary.writer.record_writer.RecordWriter.write of
        // Event(wall_time=1.5, file_version="brain.Event:2").SerializeToString()
        let expected = "1800000000000000a37f4b2209000000000000f83f\
                        1a0d627261696e2e4576656e743a322a28646c";
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = EventWriter::create_with_clock(dir.path(), || 1.5).expect("create");
        let bytes = fs::read(writer.path()).expect("reading");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);

        // Event(wall_time=1.5, step=7, summary=Summary(value=[
        //     Summary.Value(tag="train/loss", simple_value=3.5)])).SerializeToString()
        let event = Event {
            wall_time: 1.5,
            step: 7,
            what: Some(What::Summary(Summary {
                value: vec![SummaryValue {
                    tag: "train/loss".to_string(),
                    value: Some(ValueKind::SimpleValue(3.5)),
                }],
            })),
        };
        let hex: String = event
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "09000000000000f83f10072a130a110a0a747261696e2f6c6f73731500006040"
        );
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logdir = dir.path().join("runs/a");
        let mut writer = EventWriter::create(&logdir).expect("create");
        writer.scalar("train/loss", 1, 3.5).expect("scalar");
        writer
            .scalars(2, &[("train/loss", 1.25), ("train/lr", 1e-8)])
            .expect("scalars");
        writer.scalars(3, &[]).expect("no scalars");
        writer.flush().expect("flush");
        let expected = vec![
            ("train/loss".to_string(), 1, 3.5),
            ("train/loss".to_string(), 2, 1.25),
            ("train/lr".to_string(), 2, 1e-8_f32),
        ];
        assert_eq!(read_scalars(writer.path()).expect("read"), expected);
        assert_eq!(writer.path().parent(), Some(logdir.as_path()));
    }

    #[test]
    fn file_is_named_like_tensorboards() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = EventWriter::create_with_clock(dir.path(), golden_clock).expect("create");
        let name = writer.path().file_name().unwrap().to_str().unwrap();
        let expected = format!(
            "events.out.tfevents.1767225600.{}.{}.clintune",
            hostname(),
            std::process::id()
        );
        assert_eq!(name, expected);
    }

    #[test]
    fn a_second_writer_in_the_same_second_gets_a_new_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = EventWriter::create_with_clock(dir.path(), golden_clock).expect("create");
        first.scalar("a", 1, 1.0).expect("scalar");
        first.flush().expect("flush");
        let second = EventWriter::create_with_clock(dir.path(), golden_clock).expect("create");
        assert_ne!(first.path(), second.path());
        assert!(second.path().to_str().unwrap().ends_with(".clintune.1"));
        assert_eq!(read_scalars(first.path()).expect("read").len(), 1);
    }

    #[test]
    fn step_beyond_i64_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::create(dir.path()).expect("create");
        let err = writer.scalar("a", u64::MAX, 1.0).unwrap_err();
        assert!(matches!(
            err,
            TensorboardError::StepOutOfRange { step: u64::MAX, .. }
        ));
        assert!(err.to_string().contains("events.out.tfevents."), "{err}");
    }

    #[test]
    fn a_flipped_data_byte_is_a_crc_error_naming_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::create(dir.path()).expect("create");
        for step in 1..=3 {
            writer.scalar("train/loss", step, 1.0).expect("scalar");
        }
        writer.flush().expect("flush");
        let offsets = record_offsets(writer.path());
        assert_eq!(offsets.len(), 4);
        // The last data byte of record 2 (the value of step 2).
        flip_byte(writer.path(), offsets[3] - FOOTER_LEN - 1);

        let err = read_scalars(writer.path()).unwrap_err();
        assert!(
            matches!(
                err,
                TensorboardError::Crc {
                    index: 2,
                    part: "data",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(writer.path().to_str().unwrap()),
            "{message}"
        );
        assert!(message.contains("record 2: data CRC mismatch"), "{message}");
    }

    #[test]
    fn a_flipped_length_byte_is_a_crc_error_naming_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::create(dir.path()).expect("create");
        writer.scalar("train/loss", 1, 1.0).expect("scalar");
        writer.flush().expect("flush");
        let offsets = record_offsets(writer.path());
        flip_byte(writer.path(), offsets[1] + 7);

        let err = read_scalars(writer.path()).unwrap_err();
        assert!(
            matches!(
                err,
                TensorboardError::Crc {
                    index: 1,
                    part: "length",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_truncated_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::create(dir.path()).expect("create");
        writer.scalar("train/loss", 1, 1.0).expect("scalar");
        writer.flush().expect("flush");
        let bytes = fs::read(writer.path()).expect("reading");
        fs::write(writer.path(), &bytes[..bytes.len() - 1]).expect("writing");

        let err = read_scalars(writer.path()).unwrap_err();
        assert!(
            matches!(err, TensorboardError::Truncated { index: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.out.tfevents.missing");
        let err = read_scalars(&path).unwrap_err();
        assert!(err.to_string().starts_with(path.to_str().unwrap()), "{err}");
    }

    #[test]
    fn golden_file_is_reproduced_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = EventWriter::create_with_clock(dir.path(), golden_clock).expect("create");
        write_golden_events(&mut writer).expect("writing");
        let fresh = fs::read(writer.path()).expect("reading");
        if std::env::var("CLINTUNE_UPDATE_FIXTURES").as_deref() == Ok("1") {
            fs::write(fixture("golden.tfevents"), &fresh).expect("writing the fixture");
            return;
        }
        let golden = fs::read(fixture("golden.tfevents")).expect("reading golden.tfevents");
        assert!(
            fresh == golden,
            "the writer no longer reproduces golden.tfevents; if the format changed on \
             purpose, rerun with CLINTUNE_UPDATE_FIXTURES=1 and regenerate golden.json \
             (see tests/fixtures/tensorboard/README.md)"
        );
    }

    /// The golden resumed run: written with the golden clock into two files
    /// named as in `tests/fixtures/tensorboard/resumed/`. The first run
    /// logged steps 1–3 and was interrupted; its last checkpoint was at
    /// step 2, so the resumed run starts over at step 3.
    fn write_resumed_run(dir: &Path) -> Result<[PathBuf; 2], TensorboardError> {
        let mut first = EventWriter::create_with_clock(dir, golden_clock)?;
        for step in 1..=3 {
            first.scalars(step, &[("train/loss", 4.0 - step as f64 / 2.0)])?;
        }
        first.scalar("eval/loss", 2, 3.0)?;
        first.flush()?;
        let mut resumed = EventWriter::create_with_clock(dir, golden_clock)?;
        resumed.session_start(3)?;
        for step in 3..=4 {
            resumed.scalars(step, &[("train/loss", 1.0 / step as f64)])?;
        }
        resumed.flush()?;
        Ok([first.path().to_path_buf(), resumed.path().to_path_buf()])
    }

    /// The names of the golden resumed run's files.
    const RESUMED_FILES: [&str; 2] = [
        "events.out.tfevents.1767225600.golden.1.clintune",
        "events.out.tfevents.1767225600.golden.2.clintune",
    ];

    #[test]
    fn golden_resumed_run_is_reproduced_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_resumed_run(dir.path()).expect("writing");
        let update = std::env::var("CLINTUNE_UPDATE_FIXTURES").as_deref() == Ok("1");
        for (path, name) in written.iter().zip(RESUMED_FILES) {
            let fresh = fs::read(path).expect("reading");
            let golden = fixture("resumed").join(name);
            if update {
                fs::create_dir_all(fixture("resumed")).expect("creating the fixture folder");
                fs::write(&golden, &fresh).expect("writing the fixture");
                continue;
            }
            assert!(
                fresh == fs::read(&golden).expect("reading the fixture"),
                "{name} is no longer reproduced; see tests/fixtures/tensorboard/README.md"
            );
        }
    }

    #[test]
    fn a_resumed_run_reads_as_tensorboard_read_it() {
        let json = fs::read(fixture("resumed.json")).expect("reading resumed.json");
        let json: Value = serde_json::from_slice(&json).expect("resumed.json is JSON");
        let ours = read_run(&fixture("resumed")).expect("reading the resumed run");
        assert_eq!(by_tag(ours.clone()), json_by_tag(&json));
        // The interrupted run's step 3 is gone, its step 2 stays.
        let loss: Vec<(i64, f32)> = ours
            .iter()
            .filter(|(tag, ..)| tag == "train/loss")
            .map(|(_, step, v)| (*step, *v))
            .collect();
        assert_eq!(loss, [(1, 3.5), (2, 3.0), (3, 1.0 / 3.0), (4, 0.25)]);
        assert!(
            ours.iter()
                .any(|(tag, step, _)| tag == "eval/loss" && *step == 2)
        );
    }

    #[test]
    fn golden_file_reads_as_tensorboard_read_it() {
        let json = fs::read(fixture("golden.json")).expect("reading golden.json");
        let json: Value = serde_json::from_slice(&json).expect("golden.json is JSON");
        assert_eq!(json["file_version"], FILE_VERSION);
        let ours = read_scalars(&fixture("golden.tfevents")).expect("reading golden.tfevents");
        assert_eq!(by_tag(ours), json_by_tag(&json));
    }

    /// The Python that runs `read_events.py`: `$CLINTUNE_PYTHON`, else
    /// `python3`; `None` when it cannot import tensorboard.
    fn python_with_tensorboard() -> Option<OsString> {
        let python = std::env::var_os("CLINTUNE_PYTHON").unwrap_or_else(|| "python3".into());
        let ok = Command::new(&python)
            .args(["-c", "import tensorboard"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !ok {
            eprintln!("no python with tensorboard: the golden file test stands in");
        }
        ok.then_some(python)
    }

    #[test]
    fn tensorboard_reads_a_resumed_run_as_written() {
        let Some(python) = python_with_tensorboard() else {
            return;
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = EventWriter::create(dir.path()).expect("create");
        write_golden_events(&mut first).expect("writing");
        // A resumed run: a new file in the same directory, starting over at
        // a step the first file logged.
        let mut resumed = EventWriter::create(dir.path()).expect("create");
        resumed.session_start(1 << 40).expect("session start");
        resumed.scalar("train/loss", 1 << 40, 0.5).expect("scalar");
        resumed
            .scalars(
                5 << 40,
                &[("train/loss", f64::INFINITY), ("eval/loss", -1.0)],
            )
            .expect("scalars");
        resumed.flush().expect("flush");

        let out = Command::new(&python)
            .arg(fixture("read_events.py"))
            .arg(dir.path())
            .output()
            .expect("running read_events.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: Value = serde_json::from_slice(&out.stdout).expect("read_events.py prints JSON");
        assert_eq!(json["file_version"], FILE_VERSION);
        let ours = read_run(dir.path()).expect("reading");
        assert_eq!(by_tag(ours), json_by_tag(&json));
    }
}
