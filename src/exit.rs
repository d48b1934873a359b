//! The process exit codes: a small, documented set (also printed by `--help`).

/// What the process reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything planned was restored (or verified).
    Ok = 0,
    /// Finished, but some files are missing, failed, or differ (for `verify`: absent or
    /// different on DEST, or with no object in the source to check them against); or a
    /// restore stopped early by a full, changed, unreachable or read-only DEST or a disk
    /// that stopped answering; or a look of `status` at DEST, the source or the checkpoint
    /// folder that did not come back in time (what the checkpoint records was printed
    /// where it could be read).
    Incomplete = 1,
    /// Could not run: bad usage, unusable source or destination.
    CannotRun = 2,
    /// Interrupted by Ctrl-C / SIGTERM / SIGHUP; state was flushed, rerun to continue.
    Interrupted = 130,
    /// Stopped by an internal error (a panic: a bug). What the checkpoint recorded holds;
    /// rerun to continue (the run after it checks what this one left unfinished).
    InternalError = 101,
}

/// What `main` says after a panic (the panic's own message is printed above it).
pub const INTERNAL_ERROR_TEXT: &str = "internal error: stopped on a bug in mycloud-recover (the message above says where; please report it). A restore keeps what its checkpoint recorded: run the same command again to continue, and it checks what this run left unfinished";

/// What `main` says when the system would not start another thread (exit 2).
pub const THREAD_LIMIT_TEXT: &str = "error: the system would not start another thread (its limit on processes, `ulimit -u`, or on address space, `ulimit -v`): raise that limit, or ask for fewer --threads. A restore keeps what its checkpoint recorded: run the same command again to continue";

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Text for `--help` (the README's table says the same).
pub const EXIT_CODES_HELP: &str = "Exit codes:
  0    all planned files restored (or verified); preflight: nothing blocks the restore
  1    finished, but some files are missing, failed or differ (see the report);
       or a restore stopped early by a full, changed, unreachable (a share's
       connection lost) or read-only destination or a disk that stopped answering
       (rerun to continue);
       verify: some files are absent or differ on DEST, or have no object in the source
       that a restore can copy;
       preflight: the restore cannot succeed as things stand (for example the files do not fit);
       status: DEST, the source or the checkpoint folder did not answer within 15 s
       (what the checkpoint records was printed where it could be read)
  2    could not run: usage, source or destination problem (nothing was changed);
       or a restore stopped by an error after it began (the message says what to do)
  101  stopped by an internal error (a bug, please report it); progress is saved up to
       the last checkpoint commit, rerun to continue
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP); progress is saved, rerun to continue
A reader of the output that leaves early (`verify | head`) changes no code.";
