//! Calls a disk may hold for good.
//!
//! A share whose server hangs (an sshfs server stopped, an NFS hard mount, a NAS gone from
//! the network) does not fail the calls made to it: it holds them, and nothing in this
//! process can end such a call (not even SIGKILL, once the share's client has passed it
//! on). Whatever must not wait for good (a commit's flush, `status`'s looks, pre-flight's
//! probes) therefore makes its call on a thread of its own and waits for it with a limit:
//! [`Call`]. A call not back in time is left behind in the kernel; the process may then
//! stay a zombie after it ends, until the call returns or the share is unmounted with
//! `umount -f`, which the messages say.

use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

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
            Ok(r) => Some(r),
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

/// Runs `f` on a thread of its own and waits up to `limit` for it. None: not back in time
/// (the thread is left behind in its call), or no thread could be spawned for it.
pub fn within<T: Send + 'static>(
    name: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    Call::start(name, f).ok()?.wait(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

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
