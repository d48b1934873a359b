//! Thin entry point: parse, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    one_arena_under_an_address_space_limit();
    let cli = mycloud_recover::cli::Cli::parse();
    // A panic is a bug. Without this the process ended with Rust's exit code 101 and only
    // "a scoped thread panicked" (or, for a panic on the checkpoint writer's or planner's
    // thread, exit 2, which says nothing was changed); now with 101, documented, and what
    // to do. Panics on other threads are raised again on this one (`restore`).
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mycloud_recover::run(cli)));
    let code = match ran {
        // A reader of stdout that left early (`verify | head`) changes no verdict: each
        // command prints through `commands::print_verdict`, which returns its exit status.
        Ok(Ok(exit)) => exit.code(),
        Ok(Err(e)) => {
            say(&format!("error: {}", mycloud_recover::error_text(&e)));
            mycloud_recover::Exit::CannotRun.code()
        }
        // A thread the system would not start (std's scoped spawns and ours panic so) is
        // the machine's limit, not a bug.
        Err(p)
            if mycloud_recover::restore::copy::panic_text(p.as_ref())
                .starts_with("failed to spawn thread") =>
        {
            say(mycloud_recover::exit::THREAD_LIMIT_TEXT);
            mycloud_recover::Exit::CannotRun.code()
        }
        Err(_) => {
            say(mycloud_recover::exit::INTERNAL_ERROR_TEXT);
            mycloud_recover::Exit::InternalError.code()
        }
    };
    // What a thread left behind in a call to a disk that does not answer cannot remove.
    mycloud_recover::source::index::remove_private_copies();
    mycloud_recover::state::remove_left_behind();
    std::process::exit(code);
}

/// Under an address-space limit (`ulimit -v`, as some NAS shells and shared hosts set),
/// glibc gives each thread that allocates an arena of its own, each reserving 64 MB of
/// address space: with a dozen threads a restore needing 40 MB of memory aborted at 200 MB
/// ("memory allocation of 1 bytes failed", exit 134). With such a limit, one arena; without
/// one (the usual case) nothing changes.
fn one_arena_under_an_address_space_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::As);
    if limit.current.is_none() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; called before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// One line on stderr; a closed stderr is not worth a panic.
fn say(what: &str) {
    mycloud_recover::commands::print_err(&format!("mycloud-recover: {what}\n"));
}
