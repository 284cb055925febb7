//! Failures on a GPU that would otherwise pass unseen.
//!
//! burn-cuda runs each device's work on a service thread of cubecl's
//! (named `DSU-…` or `DSD-…`), and cubecl catches a panic there, logs
//! "Task failed" and carries on: a buffer that could not be allocated
//! (the GPU is out of memory) leaves every later kernel that reads it
//! without its input, yet the caller's step returns and a benchmark prints a
//! figure. The first GPU check on an H200 saw exactly that: `bench` at
//! llama-1b's shape ran out of memory in every step and reported tokens/s.
//!
//! [`watch`] adds a panic hook that keeps the first panic message of such a
//! thread; the trainer, `bench` and the inference commands call [`check`]
//! after each unit of work and stop with that message. Only cubecl's service
//! threads are watched: a panic anywhere else already reaches its caller.
//! The thread names are cubecl 0.10's, which burn 0.21.0 (pinned) uses.
//!
//! The previous hook prints the first such panic, and every other thread's;
//! later panics of the service threads are only counted. Out of memory,
//! every kernel of a step fails after the first: the second GPU check's log
//! held thousands of panic messages above clintune's one error.

use std::panic::PanicHookInfo;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// The thread-name prefixes of cubecl's device service threads.
const SERVICE_THREADS: [&str; 2] = ["DSU-", "DSD-"];

static INSTALL: Once = Once::new();
static FIRST: Mutex<Option<Fault>> = Mutex::new(None);
/// Service-thread panics after the first: counted, not printed.
static LATER: AtomicU64 = AtomicU64::new(0);

/// A panic on a device's service thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The service thread's name.
    pub thread: String,
    /// The panic's message (cubecl's own: sizes and handles, never data).
    pub message: String,
    /// How many service-thread panics followed it when it was read.
    pub later: u64,
    /// What to try, where the message says what went wrong.
    hint: &'static str,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (hint, thread, message) = (self.hint, &self.thread, &self.message);
        write!(
            f,
            "{hint}the GPU's work failed on cubecl's thread {thread}: {message}"
        )?;
        match self.later {
            0 => Ok(()),
            n => write!(f, " ({n} later failures of the device's work not shown)"),
        }
    }
}

impl std::error::Error for Fault {}

impl Fault {
    /// Whether the device ran out of memory.
    pub fn out_of_memory(&self) -> bool {
        out_of_memory(&self.message)
    }
}

/// cubecl's words for a failed allocation (`can't allocate buffer of size`)
/// and CUDA's (`CUDA_ERROR_OUT_OF_MEMORY`, "out of memory").
fn out_of_memory(message: &str) -> bool {
    message.contains("can't allocate")
        || message.to_lowercase().contains("out of memory")
        || message.contains("OUT_OF_MEMORY")
}

/// Starts keeping device threads' panics (once per process; later calls do
/// nothing).
pub fn watch() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if keep(info) == Shown::Yes {
                previous(info);
            }
        }));
    });
}

/// The first device fault since the process started, if any. Once a
/// device's work has failed, nothing computed after it can be trusted, so
/// the fault is never cleared.
pub fn check() -> Result<(), Fault> {
    let later = LATER.load(Ordering::Relaxed);
    first()
        .clone()
        .map_or(Ok(()), |fault| Err(Fault { later, ..fault }))
}

/// The kept fault; a panic while the lock was held leaves it readable.
fn first() -> std::sync::MutexGuard<'static, Option<Fault>> {
    FIRST
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the previous hook prints a panic.
#[derive(Debug, PartialEq, Eq)]
enum Shown {
    Yes,
    No,
}

/// Keeps the first service-thread panic and counts the later ones.
fn keep(info: &PanicHookInfo<'_>) -> Shown {
    let thread = std::thread::current();
    let Some(name) = thread.name() else {
        return Shown::Yes;
    };
    if !SERVICE_THREADS.iter().any(|p| name.starts_with(p)) {
        return Shown::Yes;
    }
    let mut first = first();
    if first.is_some() {
        LATER.fetch_add(1, Ordering::Relaxed);
        return Shown::No;
    }
    let message = panic_message(info);
    let hint = if out_of_memory(&message) {
        "out of GPU memory: lower data.micro_batch or data.seq_len (raise data.grad_accum to \
         keep the batch); "
    } else {
        ""
    };
    *first = Some(Fault {
        thread: name.to_string(),
        message,
        later: 0,
        hint,
    });
    Shown::Yes
}

fn panic_message(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    match info.location() {
        Some(at) => format!("{text} (at {}:{})", at.file(), at.line()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    /// Panics on a thread named `name`, caught there as cubecl catches it.
    fn panic_caught_on(name: &str, message: &'static str) {
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ = catch_unwind(|| panic!("{message}"));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    // One test: the fault is process-wide and never cleared.
    #[test]
    fn a_caught_panic_on_a_device_thread_is_kept_and_others_are_not() {
        watch();
        panic_caught_on("worker-7", "not a device thread");
        assert_eq!(
            check(),
            Ok(()),
            "another thread's panic is its caller's business"
        );

        panic_caught_on("DSD-0-0", "can't allocate buffer of size: 1050673152");
        let fault = check().unwrap_err();
        assert_eq!(fault.thread, "DSD-0-0");
        assert!(fault.out_of_memory());
        let text = fault.to_string();
        assert!(
            text.contains("can't allocate buffer of size: 1050673152"),
            "{text}"
        );
        assert!(text.contains("micro_batch"), "{text}");

        assert_eq!(fault.later, 0);

        panic_caught_on("DSU-0-0", "a later failure");
        panic_caught_on("DSD-0-0", "another");
        let fault = check().unwrap_err();
        assert_eq!(fault.thread, "DSD-0-0", "the first fault is kept");
        assert_eq!(fault.later, 2, "later faults are counted");
        let text = fault.to_string();
        assert!(
            text.ends_with("(2 later failures of the device's work not shown)"),
            "{text}"
        );
    }
}
