//! Ctrl-C, SIGTERM and SIGHUP. The first asks the running command to stop: a restore
//! finishes the files in flight and saves its progress, pre-flight ends its benchmarks and
//! removes its probe folder. A second one exits at once (code 130).
//!
//! SIGHUP is left alone when the command was started with it ignored: under `nohup` (which
//! the README suggests for long restores) closing the terminal must not stop the run.
//! Whether it was ignored is read from the kernel (`SigIgn` in `/proc/self/status`), which
//! needs no unsafe code. The signals are received on a thread of their own
//! (`signal-hook`), so the messages are printed outside a signal handler.
//!
//! A command past the point where a stop changes anything ([`settle`]: a restore with every
//! file and folder done, writing its report) says so on the first signal instead of promising
//! to stop, since it ends as finished: it said "finishing files in flight" and then ended
//! "finished", exit 0. One atomic holds both the request and that point, so the message and
//! the end always agree, whichever comes first.
//!
//! A second signal ends the process with `process::exit` on the signal thread: no destructor
//! of the command's own thread runs, so what a command cleans up when it ends (a first
//! restore's state folder holding only its lock, [`crate::state::StateLock`]) would stay.
//! Such work is registered with [`before_exit`] and done on the signal thread, a normal
//! thread (not a signal handler), just before the exit.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Where the command is: running, asked to stop, settled, settled and signalled since.
static PHASE: AtomicU8 = AtomicU8::new(RUNNING);
const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const SETTLED: u8 = 2;
const SETTLED_SIGNALLED: u8 = 3;
static INSTALLED: OnceLock<()> = OnceLock::new();
/// What a second signal does before it exits ([`before_exit`]).
static BEFORE_EXIT: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

/// What a command says on the first and on a second signal.
pub struct Messages {
    pub first: &'static str,
    pub second: &'static str,
    /// The first signal after [`settle`]: the work is complete, the end is near.
    pub settled: &'static str,
}

/// What a signal means, given where the command is.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    /// Stop new work.
    First,
    /// Too late to stop anything: the command ends as it would have.
    Settled,
    /// A second signal: exit at once.
    Second,
}

fn on_signal(phase: &AtomicU8) -> Heard {
    let to = |from, to| phase.compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst);
    match to(RUNNING, STOPPING) {
        Ok(_) => Heard::First,
        Err(SETTLED) if to(SETTLED, SETTLED_SIGNALLED).is_ok() => Heard::Settled,
        Err(_) => Heard::Second,
    }
}

fn settle_in(phase: &AtomicU8) -> bool {
    phase
        .compare_exchange(RUNNING, SETTLED, Ordering::SeqCst, Ordering::SeqCst)
        .is_err_and(|p| p == STOPPING)
}

/// Starts listening, once per process (later calls keep the first messages).
pub fn install(messages: Messages) {
    INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut wanted = vec![SIGINT, SIGTERM];
        if !ignored_at_start(SIGHUP) {
            wanted.push(SIGHUP);
        }
        // Without the listener the default dispositions stay: a signal ends the process,
        // and the next run resumes from the last commit as after a crash.
        let Ok(mut signals) = signal_hook::iterator::Signals::new(&wanted) else {
            return;
        };
        let _ = std::thread::Builder::new()
            .name("mcr-signals".into())
            .spawn(move || {
                // Not `eprintln!`, which panics when stderr is gone: `restore ... | tee log`
                // loses its reader to the same Ctrl-C, and this thread died with the first
                // message, so a second Ctrl-C did nothing.
                let say =
                    |m: &str| crate::commands::print_err(&format!("\nmycloud-recover: {m}\n"));
                for _ in signals.forever() {
                    match on_signal(&PHASE) {
                        Heard::First => say(messages.first),
                        Heard::Settled => say(messages.settled),
                        Heard::Second => {
                            say(messages.second);
                            let hooks = BEFORE_EXIT
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .clone();
                            for hook in hooks {
                                hook();
                            }
                            std::process::exit(130);
                        }
                    }
                }
            });
    });
}

/// Registers `hook`, called on the signal thread when a second signal ends the process,
/// before it exits (once per registration: register it once). It must return quickly and
/// never wait for the command's own thread, which may be anywhere: the user asked to end now.
pub fn before_exit(hook: fn()) {
    BEFORE_EXIT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(hook);
}

/// Whether a stop was asked for.
pub fn stop_requested() -> bool {
    PHASE.load(Ordering::SeqCst) == STOPPING
}

/// Marks the point past which a stop changes nothing, and says whether one was asked for
/// before it: a signal from here on is told the work is complete ([`Messages::settled`]).
pub fn settle() -> bool {
    settle_in(&PHASE)
}

/// Forgets an earlier request (a new restore in the same process starts afresh).
pub fn clear() {
    PHASE.store(RUNNING, Ordering::SeqCst);
}

/// Whether `signal` was ignored when this process started (inherited from its parent, as
/// `nohup` does for SIGHUP): bit `signal - 1` of the `SigIgn` mask.
fn ignored_at_start(signal: i32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first signal's message and the command's end agree, whichever comes first (a
    /// Ctrl-C while the report was written printed "finishing files in flight" and the run
    /// ended "finished", exit 0: round 16).
    #[test]
    fn a_signal_after_the_work_is_settled_is_told_so_regression_round_16() {
        // Before the point: told to stop, and the command ends interrupted.
        let p = AtomicU8::new(RUNNING);
        assert_eq!(on_signal(&p), Heard::First);
        assert!(settle_in(&p), "interrupted");
        assert_eq!(on_signal(&p), Heard::Second);
        // After it: told the work is complete, and the command ends as it would have.
        let p = AtomicU8::new(RUNNING);
        assert!(!settle_in(&p), "not interrupted");
        assert_eq!(on_signal(&p), Heard::Settled);
        assert_eq!(on_signal(&p), Heard::Second);
    }
}
