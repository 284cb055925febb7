//! A watchdog over the exchanges between workers.
//!
//! burn-collective's calls block until every worker takes part. A worker or
//! node that died without closing its connections, hangs, or never started
//! would leave the others waiting forever, holding their GPUs; and a blocked
//! call cannot be cancelled. So, like PyTorch's NCCL watchdog, this one ends
//! the process, with a message saying what it was waiting for, when an
//! exchange takes longer than the recipe's `hardware.exchange_timeout_s`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The exit status of a process the watchdog ended.
pub const EXIT_TIMED_OUT: i32 = 3;

/// The exchange being waited on, and until when.
type Waiting = Option<(Instant, String)>;

/// Watches one worker's exchanges; its thread ends with it.
pub struct Watchdog {
    timeout: Duration,
    waiting: Arc<Mutex<Waiting>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    /// Starts watching, with exchanges allowed `timeout` each.
    pub fn start(timeout: Duration) -> Self {
        let waiting: Arc<Mutex<Waiting>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (w, d) = (waiting.clone(), done.clone());
        std::thread::spawn(move || watch(&w, &d, timeout));
        Self {
            timeout,
            waiting,
            done,
        }
    }

    /// Runs `exchange`, described as `what` (e.g. "the gradients of step
    /// 12"), ending the process if it takes longer than the timeout.
    pub fn exchange<T>(&self, what: impl FnOnce() -> String, exchange: impl FnOnce() -> T) -> T {
        self.set(Some((Instant::now() + self.timeout, what())));
        let out = exchange();
        self.set(None);
        out
    }

    fn set(&self, waiting: Waiting) {
        if let Ok(mut w) = self.waiting.lock() {
            *w = waiting;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// The watchdog's thread: checks the deadline twice a second.
fn watch(waiting: &Mutex<Waiting>, done: &AtomicBool, timeout: Duration) {
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(w) = waiting.lock() else { return };
        if let Some((deadline, what)) = w.as_ref()
            && Instant::now() > *deadline
        {
            eprintln!(
                "error: waited {} s for the other workers to exchange {what}, longer than \
                 hardware.exchange_timeout_s: a worker or node has stopped, hangs, or never \
                 started. Stop them all, then start every node again with --resume (the \
                 orchestrator can stay up).",
                timeout.as_secs()
            );
            std::process::exit(EXIT_TIMED_OUT);
        }
    }
}
