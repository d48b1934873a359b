//! Calls a disk may hold for good.
//!
//! A share whose server hangs (an sshfs server stopped, an NFS hard mount, a NAS gone from
//! the network) does not fail the calls made to it: it holds them, and nothing in this
//! process can end such a call (not even SIGKILL, once the share's client has passed it
//! on). Whatever must not wait for good (a commit's flush, pre-flight's probes) therefore
//! makes its call on a thread of its own and waits for it with a limit: [`Call`]. A call
//! not back in time is left behind in the kernel; the process may then stay a zombie after
//! it ends, until the call returns or the share is unmounted with `umount -f`, which the
//! messages say.
//!
//! A zombie is still a process its parent waits for: the shell that started it gives no
//! prompt back. Where that matters and the calls can be made elsewhere (`status`, which a
//! person runs to see what is going on), they are made in a [`Helper`]: this program
//! started again as a process of its own, which says what it finds on a pipe. The process
//! the user started waits for it with a limit and, without an answer, leaves it behind
//! (killed: it ends once its call returns) and ends for good, its parent (the shell) given
//! its exit at once: no call of its own is out.
//!
//! The helper holds none of the caller's files either: no descriptor beyond 0-2 of the
//! process the user started reaches it ([`Helper::start`] marks them all close-on-exec in
//! the new process before it runs the program). A descriptor that is not close-on-exec
//! (a pipe a script gave `status` at fd 3 and waits to see closed, a job server's, a
//! socket) would otherwise be inherited, and held open by a helper left behind until its
//! call returns: the caller would wait for good although `status` had ended, as the shell
//! would for a zombie (round 23).

use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError};

/// A call running on a thread of its own ([`Call::start`]), waited for with a limit
/// ([`Call::wait`]).
pub struct Call<T> {
    answer: Receiver<T>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T: Send + 'static> Call<T> {
    /// Starts `f` on a thread named `name` (as `top -H` and `/proc/PID/task` show it). Err:
    /// the thread could not be spawned (a thread or address-space limit).
    pub fn start(name: &str, f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<Self> {
        let (tx, answer) = bounded(1);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ = tx.send(f());
            })?;
        Ok(Call {
            answer,
            thread: Some(thread),
        })
    }

    /// The call's result if it comes back within `limit`; None while it is still out (wait
    /// again, or give it up: its thread is left behind). A panic in the call (a bug) is
    /// raised again here, not taken for a disk that does not answer.
    pub fn wait(&mut self, limit: Duration) -> Option<T> {
        match self.answer.recv_timeout(limit) {
            Ok(r) => {
                // Its thread has only to end: joined, so that it is gone once the caller
                // goes on (`joined_a_call`).
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                    JOINED.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                Some(r)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                match self.thread.take().map(std::thread::JoinHandle::join) {
                    Some(Err(panic)) => std::panic::resume_unwind(panic),
                    _ => unreachable!("a call ended without sending its result"),
                }
            }
        }
    }
}

/// A [`Call`]'s thread came back and was joined ([`joined_a_call`]).
static JOINED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a [`Call`] that came back has ended its thread in this process. The C library
/// keeps the stack of a thread that ended for the next thread started (glibc caches up to
/// 40 MB of them), so the process's address space still counts it: the restore's check of
/// `ulimit -v` counts that stack as room for a worker (`restore::check_address_space`;
/// round 22: the planning steps on threads of their own left 2.3 MB more "in use", and 16
/// workers no longer fitted under 80 MB in a debug build).
pub fn joined_a_call() -> bool {
    JOINED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `f` on a thread of its own and waits up to `limit` for it. None: not back in time
/// (the thread is left behind in its call), or no thread could be spawned for it.
pub fn within<T: Send + 'static>(
    name: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    Call::start(name, f).ok()?.wait(limit)
}

/// This program started again, as a process of its own, with `args` (a hidden subcommand
/// that makes the calls and says what it finds, one JSON value of type `E` a line on its
/// stdout: [`Helper::said`]). Its stdout and stderr are pipes to this process alone (its
/// stderr passed on to ours as it comes), and its stdin is `/dev/null`: a helper left
/// behind in a call holds none of the caller's files open (`status | less`, or a test
/// reading our output to its end, ends with this process), nor any other descriptor this
/// process has (see the module doc). Its environment and working folder are ours (the
/// default state folder is found by `$XDG_STATE_HOME`/`$HOME`).
pub struct Helper<E> {
    /// What the helper says, in order; disconnected once its stdout is closed (it ended), or
    /// at a line that is not an `E` (a bug).
    pub said: Receiver<E>,
    child: std::process::Child,
    relay: Option<std::thread::JoinHandle<()>>,
}

impl<E: serde::de::DeserializeOwned + Send + 'static> Helper<E> {
    /// Starts this program again with `args`. Err: it could not be started (its file gone,
    /// a process or thread limit); the caller can make the calls itself instead.
    pub fn start(args: &[OsString]) -> std::io::Result<Self> {
        use std::process::{Command, Stdio};
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the new process between fork and exec, where only
        // async-signal-safe calls may be made: `close_at_exec_beyond_stdio` makes only
        // system calls (close_range, getrlimit, fcntl) and allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                close_at_exec_beyond_stdio();
                Ok(())
            });
        }
        let mut child = command.spawn()?;
        let (out, mut err) = (
            child.stdout.take().expect("piped"),
            child.stderr.take().expect("piped"),
        );
        let (tx, said) = unbounded();
        let reader = std::thread::Builder::new()
            .name("mcr-helper-out".into())
            .spawn(move || {
                for line in std::io::BufReader::new(out).lines() {
                    let Some(e) = line.ok().and_then(|l| serde_json::from_str::<E>(&l).ok()) else {
                        break;
                    };
                    if tx.send(e).is_err() {
                        break;
                    }
                }
            });
        // Its stderr read to its end even when ours is gone: a full pipe would stop it.
        let relay = reader.and_then(|_| {
            std::thread::Builder::new()
                .name("mcr-helper-err".into())
                .spawn(move || {
                    let mut buf = [0; 4096];
                    while let Ok(n @ 1..) = err.read(&mut buf) {
                        let mut ours = std::io::stderr().lock();
                        let _ = ours.write_all(&buf[..n]).and_then(|()| ours.flush());
                    }
                })
        });
        match relay {
            Ok(relay) => Ok(Helper {
                said,
                child,
                relay: Some(relay),
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }
}

/// Marks every descriptor from 3 on close-on-exec, in a [`Helper`] about to run the program
/// (between fork and exec: system calls only). Its own stdin, stdout and stderr are already
/// in place at 0-2. Marked, not closed: the standard library's own pipe that reports a
/// failed exec to the parent is among them, and must stay open until the exec.
/// close_range(2) does it in one call (Linux 5.11 and later); an older kernel refuses it
/// (ENOSYS, or EINVAL for the flag) and each descriptor below the open-files limit is
/// marked in turn instead.
fn close_at_exec_beyond_stdio() {
    // SAFETY: close_range takes no pointer; it changes only this process's descriptor flags.
    #[allow(unsafe_code)]
    let all = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if all != 0 {
        mark_close_at_exec_one_by_one();
    }
}

/// [`close_at_exec_beyond_stdio`] for a kernel without close_range(2): each descriptor from
/// 3 up to the open-files limit marked in turn (system calls only, nothing allocated).
fn mark_close_at_exec_one_by_one() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to write.
    #[allow(unsafe_code)]
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    // A limit above 2^20 (the kernel's default fs.nr_open, the most a limit can be unless
    // an administrator raised it) is taken as 2^20: marking more, one call each, would
    // take seconds.
    let end = if known {
        limit.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 20
    };
    for fd in 3..end {
        // SAFETY: fcntl on a number that is not an open descriptor fails with EBADF and
        // changes nothing; on one that is, it only sets its close-on-exec flag.
        #[allow(unsafe_code)]
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

impl<E> Helper<E> {
    /// The helper's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the helper to end (once it said all it says) and for what it said on
    /// stderr to be passed on: how it ended.
    pub fn wait(mut self) -> std::io::Result<std::process::ExitStatus> {
        let ended = self.child.wait();
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
        ended
    }

    /// Leaves the helper behind, held in a call: killed (SIGKILL), not waited for. It ends
    /// once its call returns (the disk answers again, or `umount -f` of the share), and,
    /// this process ended, init reaps it. Its pipes close with this process.
    pub fn leave(mut self) -> u32 {
        let _ = self.child.kill();
        self.child.id()
    }
}

/// A path passed to or from a [`Helper`] as its bytes (serde's own way fails on a path that
/// is not UTF-8, and the reports' lossy one changes it): `#[serde(with = "raw_path")]`.
pub mod raw_path {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    pub fn serialize<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(p.as_os_str().as_bytes())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(d)?;
        Ok(std::ffi::OsString::from_vec(bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_call_back_in_time_gives_its_result_and_one_still_out_gives_none() {
        assert_eq!(within("t", Duration::from_secs(10), || 7), Some(7));
        let (release, held) = bounded::<()>(0);
        let mut call = Call::start("t", move || held.recv().is_ok()).unwrap();
        assert_eq!(call.wait(Duration::from_millis(50)), None, "still out");
        release.send(()).unwrap();
        assert_eq!(
            call.wait(Duration::from_secs(10)),
            Some(true),
            "waited again"
        );
    }

    #[test]
    fn a_path_passed_to_a_helper_keeps_its_bytes() {
        use std::os::unix::ffi::OsStringExt;
        #[derive(serde::Serialize, serde::Deserialize)]
        struct P(#[serde(with = "raw_path")] std::path::PathBuf);
        let p = std::path::PathBuf::from(std::ffi::OsString::from_vec(b"/mnt/caf\xe9 x".to_vec()));
        let json = serde_json::to_string(&P(p.clone())).unwrap();
        assert_eq!(serde_json::from_str::<P>(&json).unwrap().0, p);
    }

    /// Round 24 (noticed in round 23): the fallback for kernels before 5.11, which marks
    /// each descriptor in turn, had been tried once, by hand. Here it marks a pipe opened
    /// without close-on-exec, at whatever numbers it got, and leaves 0-2 as they were.
    #[test]
    fn the_fallback_marks_each_descriptor_beyond_stdio_close_on_exec() {
        let flags = |fd: libc::c_int| {
            // SAFETY: fcntl F_GETFD takes no pointer and changes nothing.
            #[allow(unsafe_code)]
            unsafe {
                libc::fcntl(fd, libc::F_GETFD)
            }
        };
        let (read_end, write_end) = rustix::pipe::pipe().unwrap();
        let ends = [read_end.as_raw_fd(), write_end.as_raw_fd()];
        for fd in ends {
            assert_eq!(flags(fd) & libc::FD_CLOEXEC, 0, "fd {fd} opened without it");
        }
        let stdio = [0, 1, 2].map(flags);
        mark_close_at_exec_one_by_one();
        for fd in ends {
            assert_ne!(flags(fd) & libc::FD_CLOEXEC, 0, "fd {fd} not marked");
        }
        assert_eq!([0, 1, 2].map(flags), stdio, "0-2 changed");
    }

    /// Pre-flight's own version of this took a panic in the call for a disk that did not
    /// answer ("timed out"): a bug said as a hang.
    #[test]
    fn a_panic_in_the_call_is_raised_again_not_taken_for_a_hang() {
        let raised = std::panic::catch_unwind(|| {
            within("t", Duration::from_secs(10), || -> u8 { panic!("a bug") })
        });
        let panic = raised.expect_err("the panic was raised again");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"a bug"));
    }
}
