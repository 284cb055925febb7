//! Progress of long work, for whoever embeds the libraries. The stages
//! report what they are doing through [`Progress`] and draw nothing
//! themselves: the clintune binary draws bars on a terminal, another
//! program may log the events or ignore them ([`Silent`]).

/// Receives the progress of a stage's run, one phase at a time. Stages call
/// [`Progress::advance`] from worker threads, so implementations must be
/// cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// A phase of `total` units of `unit` ("bytes", "partitions",
    /// "examples") begins, named `phase` ("grouping", "tokenizing").
    fn begin(&self, phase: &str, total: u64, unit: &str);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The current phase is over.
    fn end(&self);
}

/// Reports nothing: what the stages' plain `run` functions use.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn begin(&self, _: &str, _: u64, _: &str) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records events, as a program embedding a stage might.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Progress for Log {
        fn begin(&self, phase: &str, total: u64, unit: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("{phase} {total} {unit}"));
        }
        fn advance(&self, n: u64) {
            self.0.lock().unwrap().push(format!("+{n}"));
        }
        fn end(&self) {
            self.0.lock().unwrap().push("end".into());
        }
    }

    #[test]
    fn a_stage_can_report_to_any_observer_from_threads() {
        let log = Log::default();
        let progress: &dyn Progress = &log;
        progress.begin("tokenizing", 2, "examples");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| progress.advance(1));
            }
        });
        progress.end();
        let events = log.0.into_inner().unwrap();
        assert_eq!(events, ["tokenizing 2 examples", "+1", "+1", "end"]);
        Silent.begin("x", 1, "y");
    }
}
