//! Ctrl-C, SIGTERM and SIGHUP. The first asks the running command to stop: a restore
//! finishes the files in flight and saves its progress, pre-flight ends its benchmarks and
//! removes its probe folder. A second one exits at once (code 130).
//!
//! SIGHUP is left alone when the command was started with it ignored: under `nohup` (which
//! the README suggests for long restores) closing the terminal must not stop the run.
//! Whether it was ignored is read from the kernel (`SigIgn` in `/proc/self/status`), which
//! needs no unsafe code. The signals are received on a thread of their own
//! (`signal-hook`), so the messages are printed outside a signal handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

/// What a command says on the first and on a second signal.
pub struct Messages {
    pub first: &'static str,
    pub second: &'static str,
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
                let say = |m: &str| {
                    use std::io::Write;
                    let _ = writeln!(std::io::stderr(), "\nmycloud-recover: {m}");
                };
                for _ in signals.forever() {
                    if STOP.swap(true, Ordering::SeqCst) {
                        say(messages.second);
                        std::process::exit(130);
                    }
                    say(messages.first);
                }
            });
    });
}

/// Whether a stop was asked for.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Forgets an earlier request (a new restore in the same process starts afresh).
pub fn clear() {
    STOP.store(false, Ordering::SeqCst);
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
