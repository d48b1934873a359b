//! The copy engine.
//!
//! One producer thread streams the plan, folder by folder in path order, into a bounded job
//! channel in chunks of consecutive files; N workers restore them ([`copy::restore_file`])
//! and send the results back per chunk; a counting thread makes the totals for the
//! percentages meanwhile (a full pass over the index, which nothing waits for but the first
//! progress line); the calling thread owns all bookkeeping: outcome counts, the progress
//! listener, the periodic JSON report, and the hand-over of group commits to a committer
//! thread (which records them in the checkpoint after a `syncfs` of the destination when
//! durability asks for it). Memory is bounded by the folder table, the
//! queues, the pending group commit and the done-set of the checkpoint, whatever the file
//! count. Shutdown is by dropping senders; a signal only stops new work from being handed out.
//! The workers, the planner and the count are not scoped (what they use is owned,
//! `CopyWork`): when calls are out (files, the planner's and the count's reads of the index)
//! and none comes back for `NO_ANSWER` (15 s) and a probe of the disks gets no answer either
//! (a share whose server hangs holds calls rather than failing them), the run stops without
//! the threads still in a call, which nothing can end; the process may then stay a zombie
//! until those calls return. A source disk that does not answer is waited for up to
//! `SOURCE_PATIENCE` (5 min: a failing disk retrying a bad sector), and while the disks
//! answer the files still out are named: each probe says what the run waits for. Before
//! the copy, planning's reads of the source (the database opened, its rows read, a sample
//! of objects looked for) are watched alike (`read_while_planning`): a source that does
//! not answer stops the run before anything is written. The writes to the state folder
//! (the checkpoint's opening and the run's start before the copy, the first report, the
//! committer's records, the periodic report, the end of the run) are watched as a
//! commit's flush of DEST is (`StateFolder`): a `--state-dir` on a share that stops
//! answering stops the run, the checkpoint left in the call that holds it.

pub mod copy;
pub mod watch;

pub use watch::config_watched;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use crossbeam_channel::{bounded, RecvTimeoutError, SendTimeoutError, TrySendError};

use crate::config::{Durability, RestoreConfig, Threads};
use crate::plan::names::NamePolicy;
use crate::plan::{Plan, PlanOptions, PlanTotals, PlannedFile, PlannedFolder};
use crate::report::{count, DestLoss, Listener, Problem, Report, Snapshot};
use crate::source::index::Index;
use crate::source::SourceLayout;
use crate::state::{
    done_key, path_key, KeyHashing, KeySet, Outcome, Record, StateLock, NAMES_KEY, RESTORED_SAMPLE,
};
use copy::{Copier, CopyContext, DirCache, Faults, FolderNotMade, NotRestored, Replaced, Restored};

/// Listens for Ctrl-C, SIGTERM and SIGHUP (see [`crate::signals`]): the first stops new
/// work, a second one exits at once.
pub fn install_signal_handler() {
    crate::signals::install(crate::signals::Messages {
        first: "interrupted; finishing files in flight and saving progress (press Ctrl-C again to exit at once)",
        second: "second interrupt, exiting now",
        settled: "interrupted after every file and folder was done; writing the report (the restore is complete)",
    });
}

pub fn interrupted() -> bool {
    crate::signals::stop_requested()
}

/// Threads to use when `--threads auto` and pre-flight has not measured anything: network
/// filesystems need many requests in flight to hide round trips; local disks gain little
/// past a few.
pub fn default_threads(cfg: &RestoreConfig) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    crate::preflight::model::default_threads(cfg.dest_fs.is_network(), cores)
}

/// Raises the open-file soft limit to the hard limit (capped), so many workers on a network
/// filesystem never hit "Too many open files".
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.unwrap_or(65536).min(65536);
    if lim.current.unwrap_or(0) < want {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(0)
}

/// Files travel to the workers in chunks of consecutive files of the plan (so mostly of one
/// folder), and their results come back per chunk: one channel operation and at most one
/// wake-up per chunk rather than per file. A chunk ends at this many files (fewer when there
/// are few files per worker) or bytes, so every worker gets work.
const CHUNK_FILES: u64 = 32;
const CHUNK_BYTES: u64 = 16 << 20;
/// A group commit is handed to the committer after this many records (or 2 s); while the
/// committer is busy, records keep gathering, up to the second bound (about 60 MB). Each
/// commit costs a `syncfs`, which on ext4 also stalls the writers while the journal commits:
/// at 4096 records, 100,000 small files took 6.45 s, at 65,536 (so in practice every 2 s)
/// 5.8 s (medians of 3, docs/PERFORMANCE.md). A crash costs at most the files since the last
/// commit, which the next run finds complete and adopts, or copies again.
const COMMIT_FILES: usize = 65_536;
const COMMIT_MAX_PENDING: usize = 262_144;
/// Checkpoint key: "1" while a run's folder dates are not all set (see `restore`).
const FOLDER_DATES_OWED: &str = "folder_dates_owed";
/// Checkpoint key: "1" from a run that found files recorded as done gone from DEST until a
/// run has looked for every such file ([`Job::CheckFirst`]).
const LOOK_FOR_DONE: &str = "look_for_done";
/// Files meeting errors that may mean a disk went away (I/O errors, timeouts, "not
/// connected") since the disks last answered a probe, at which the run probes them. A dead
/// source disk fails every read, and each file's retries take 5 s: round 11's loop-disk
/// trial counted such failures as results came back (per chunk of up to 32 files, each
/// 5 s) and stopped 90-115 s after the disk died, with 79-88 files listed as failed. Two:
/// a probe is one uncached page of the database and of one object and a listing of DEST,
/// nothing beside a file's 5 s of retries, so bad sectors of a disk that still answers
/// cost little.
const TROUBLED_FILES: u32 = 2;
/// How long a call to a disk may take before it counts as not answering: the probe's own
/// limit ([`disks_answer`]); in the copy, how long files may be out with none back before
/// the disks are probed ([`CopyWork::held`]), and a commit's look at DEST and flush
/// ([`dest_call`]); in the folder passes after the last file, the time a call to DEST may
/// stay out before DEST is probed (`in_parallel`). A share that stops answering
/// (its server hung, a NAS gone from the network) does not fail calls: it holds them.
pub(crate) const NO_ANSWER: Duration = Duration::from_secs(15);

/// How long the copy waits for a source disk that does not answer while a file's read of it
/// is out, before it stops ([`DiskWatch::disks_answer_now`]); faults' `source_patience_ms`
/// in tests. The source is usually the device's own disk attached by USB, often failing,
/// and Linux retries an unreadable sector for minutes before the read fails with EIO: a
/// command timeout of 30 s, up to 5 retries (2.5 min), then the error handler's resets of
/// the device; meanwhile the disk answers nothing else either. Stopping sooner would stop
/// every later run at the same file (left not processed), and the files after it would
/// never be restored. Five minutes covers the retries and a reset or two; a disk silent
/// longer is taken as hung. DEST gets no such wait: a share whose server hangs stops the run
/// at its first probe without an answer, and the next run resumes once it answers.
pub(crate) const SOURCE_PATIENCE: Duration = Duration::from_secs(300);

/// Why a run stopped because of its destination, found by whichever check met it first: a
/// worker's failed file, a commit's look at DEST, a probe of the disks, or a folder pass.
/// The first one found is the one said.
type DestLost = std::sync::Mutex<Option<Lost>>;

/// How DEST was lost and what the run met there. Said ([`Lost::text`]) once the run knows
/// where it was ([`LostDuring`]): a loss in the copy leaves files unrecorded, one in the
/// folder passes only folders.
struct Lost {
    loss: DestLoss,
    /// What was met: the error of an unreachable DEST, the failure (and its path) of a
    /// read-only one, ": the error" or nothing for a changed one.
    met: String,
    /// DEST held a call and did not answer a probe either (a share whose server hangs):
    /// the mount point whose calls `umount -f` ends. Nothing can end such a call from
    /// here, so the run may not end until it returns.
    held: Option<PathBuf>,
}

/// Where a run was when it found DEST lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LostDuring {
    /// The copy: the files placed since the last commit were not recorded.
    Files,
    /// The passes over the folders after the last file (making empty folders, setting
    /// folder dates): every file was recorded before; these folders were left.
    Folders { not_made: u64, not_dated: u64 },
}

/// Finds out, for the workers, whether the disks still answer when files keep failing in
/// a way that may mean they do not ([`copy::Watch`]). Not "so many in a row": what the page
/// cache still holds of a lost disk is read between the failures. The probe decides:
/// bad sectors of a disk that still answers fail their files one by one, listed (stopping
/// there would stop every later run at the same files); a disk gone stops the run, and
/// the files met meanwhile are not processed rather than failed. DEST found not answering
/// is a lost destination (`dest_lost`), said as a commit's look at it would say it: one
/// stop, one message, with no advice about a failing source disk.
///
/// Owned, as what the workers share ([`CopyWork`]): a worker whose call a disk never
/// answers is left behind when the run stops, and may outlive it.
struct DiskWatch {
    cfg: RestoreConfig,
    stop: Arc<AtomicBool>,
    dest_lost: Arc<DestLost>,
    /// Files that met such an error since the last probe that found the disks answering.
    troubled: std::sync::atomic::AtomicU32,
    /// Probes that found the disks answering (a file's ticket is the count when it met
    /// its first error).
    answered: AtomicU64,
    /// One probe at a time; the others wait for its verdict.
    probing: std::sync::Mutex<()>,
    /// An object this run read: the probe reads it again, so that a source whose database
    /// is elsewhere (`--db`) is probed too.
    good_object: std::sync::OnceLock<String>,
    /// Why the run stopped: which disk does not answer.
    lost: std::sync::OnceLock<Unanswered>,
    /// The probe was asked because calls did not come back ([`DiskWatch::disks_answer_now`]),
    /// not because files failed: said so if a disk does not answer, with how long no file
    /// had come back.
    calls_held: std::sync::OnceLock<Duration>,
    /// How long a source disk that does not answer while a file's read of it is out is
    /// waited for ([`SOURCE_PATIENCE`]).
    patience: Duration,
    /// Since when the probes asked because files failed ([`DiskWatch::probe`]) have found
    /// the source disk silent, none finding it answering since: what their patience counts
    /// from.
    silent_since: std::sync::Mutex<Option<Instant>>,
}

/// What a probe asked because no file came back found ([`DiskWatch::disks_answer_now`]).
#[derive(Debug, PartialEq)]
enum Answer {
    /// The disks answer.
    Yes,
    /// The source disk did not answer within [`NO_ANSWER`], and no file has come back for
    /// less than the patience yet: the run waits (a failing disk retrying a bad sector).
    /// What the probe read.
    Waiting(String),
    /// A disk does not answer: recorded, the run stops.
    No,
}

impl DiskWatch {
    fn new(
        cfg: &RestoreConfig,
        stop: &Arc<AtomicBool>,
        dest_lost: &Arc<DestLost>,
        patience: Duration,
    ) -> Self {
        DiskWatch {
            cfg: cfg.clone(),
            stop: Arc::clone(stop),
            dest_lost: Arc::clone(dest_lost),
            troubled: Default::default(),
            answered: AtomicU64::new(0),
            probing: Default::default(),
            good_object: Default::default(),
            lost: Default::default(),
            calls_held: Default::default(),
            patience,
            silent_since: Default::default(),
        }
    }

    /// A worker read this object (to be probed later).
    fn read_fine(&self, content_id: &str) {
        if self.good_object.get().is_none() {
            let _ = self.good_object.set(content_id.to_string());
        }
    }

    /// Probes the disks unless a probe since `ticket` found them answering; true if
    /// they answer. Asked because files failed: a source disk that fails reads with I/O
    /// errors while it retries a bad sector also holds the probe's read for minutes, so a
    /// silent source is probed again until it answers or has been silent for the patience
    /// ([`SOURCE_PATIENCE`]), as the copy waits for calls that do not come back. Until round
    /// 22 two such files stopped the run at once (every later run at the same files). The
    /// worker asking waits here; its file is one of those out, which the bookkeeper names
    /// in its `waiting:` lines. A run stopping meanwhile (Ctrl-C, a disk found gone) ends
    /// the wait: false, the file is not processed.
    fn probe(&self, ticket: u64) -> bool {
        loop {
            match self.probe_disks(ticket, true, None) {
                Answer::Yes => return true,
                Answer::No => return false,
                Answer::Waiting(_) if copy::Watch::stopping(self) => return false,
                // A probe without an answer took `NO_ANSWER` itself.
                Answer::Waiting(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Probes DEST alone, now: the folder passes after the last file, whose calls go to
    /// DEST only, ask when one of them has not returned for [`NO_ANSWER`]. False: DEST does
    /// not answer, and is recorded as lost ([`dest_unreachable`]), as in the copy.
    fn dest_answers(&self) -> bool {
        let ticket = self.answered.load(Ordering::SeqCst);
        self.probe_disks(ticket, false, None) == Answer::Yes
    }

    /// Probes both disks, now: the copy asks when files are out and none has come back for
    /// [`NO_ANSWER`] (`held_calls`). A share that stops answering (its server hung, a NAS
    /// gone from the network) or a source disk that hangs holds calls rather than failing
    /// them, so no file fails and nothing else would ask. `quiet_since`: when the newest
    /// file still out began (none came back since). A source disk whose probe does not come
    /// back is waited for ([`Answer::Waiting`]) until no file has come back for the patience
    /// ([`SOURCE_PATIENCE`]): a failing disk holds every call for minutes while it retries a
    /// bad sector, then fails that read and answers again. No: a disk does not answer,
    /// recorded as the probe records it (DEST lost as unreachable at once, or the source
    /// stalled).
    fn disks_answer_now(&self, quiet_since: Instant) -> Answer {
        let ticket = self.answered.load(Ordering::SeqCst);
        self.probe_disks(ticket, true, Some(quiet_since))
    }

    /// [`DiskWatch::probe`], of the source disk too or (`source` false) of DEST alone;
    /// `quiet_since`: asked by the copy because no file came back since then, not because
    /// files failed ([`DiskWatch::disks_answer_now`]).
    fn probe_disks(&self, ticket: u64, source: bool, quiet_since: Option<Instant>) -> Answer {
        let _one = self.probing.lock().unwrap_or_else(|e| e.into_inner());
        if self.lost.get().is_some() {
            return Answer::No;
        }
        if self.answered.load(Ordering::SeqCst) > ticket {
            return Answer::Yes;
        }
        let object = self.good_object.get().map(String::as_str);
        let silent_since = || {
            let mut since = self.silent_since.lock().unwrap_or_else(|e| e.into_inner());
            *since.get_or_insert_with(Instant::now)
        };
        let disks = match source {
            true => Disks::Both,
            false => Disks::Dest,
        };
        match disks_answer(&self.cfg, object.filter(|_| source), disks) {
            Ok(()) => {
                self.troubled.store(0, Ordering::SeqCst);
                self.answered.fetch_add(1, Ordering::SeqCst);
                *self.silent_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Answer::Yes
            }
            // Asked because files failed (no `quiet_since`): the patience counts from the
            // first of these probes that found the source silent.
            Err(Unanswered::SourceSilent(why))
                if quiet_since.unwrap_or_else(silent_since).elapsed() < self.patience =>
            {
                Answer::Waiting(why)
            }
            Err(why) => {
                let quiet_since = match &why {
                    Unanswered::SourceSilent(_) => Some(quiet_since.unwrap_or_else(silent_since)),
                    _ => quiet_since,
                };
                let why = match why {
                    Unanswered::SourceSilent(why) => Unanswered::Source(why),
                    why => why,
                };
                if let Unanswered::Dest { cause, held } = &why {
                    let mut lost = self.dest_lost.lock().unwrap_or_else(|e| e.into_inner());
                    lost.get_or_insert_with(|| Lost {
                        held: held.then(|| self.cfg.dest_fs.mount_point.clone()),
                        ..dest_unreachable(cause)
                    });
                }
                if self.lost.set(why).is_ok() {
                    if let Some(since) = quiet_since {
                        let _ = self.calls_held.set(since.elapsed());
                    }
                }
                self.stop.store(true, Ordering::SeqCst);
                Answer::No
            }
        }
    }
}

impl copy::Watch for DiskWatch {
    fn trouble(&self) -> u64 {
        let ticket = self.answered.load(Ordering::SeqCst);
        if self.troubled.fetch_add(1, Ordering::SeqCst) + 1 >= TROUBLED_FILES {
            self.probe(ticket);
        }
        ticket
    }

    fn confirm(&self, ticket: u64) -> bool {
        self.lost.get().is_none() && self.probe(ticket)
    }

    fn stopping(&self) -> bool {
        interrupted() || self.stop.load(Ordering::SeqCst)
    }
}

/// Which disk a probe found not answering ([`disks_answer`]), and how.
#[derive(Debug)]
enum Unanswered {
    /// The source disk (what was read, and the error), or either one when the probe
    /// could not be made.
    Source(String),
    /// The source disk: the probe's read of it did not come back within [`NO_ANSWER`]
    /// (what was read). While files are out, a failing disk retrying a bad sector does
    /// this for minutes: waited for ([`SOURCE_PATIENCE`]).
    SourceSilent(String),
    /// DEST: listing it failed with this error, or (`held`) did not come back.
    Dest { cause: String, held: bool },
}

/// Reads the first page of `path` from its disk, not from the page cache, for a probe
/// ([`disks_answer`]). Only that page is dropped from the cache: the whole file's was (until
/// round 22), and for the database that is what the planner and the count were still
/// reading, read again from a failing disk after each probe.
fn read_first_page_uncached(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    use std::os::unix::fs::OpenOptionsExt;
    // Without blocking: a FIFO where an object should be (the restore fails its file) would
    // hold the probe in `open`, and the run would stop saying the source does not answer.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.is_file() {
        // The disk answered the open; nothing in it to read.
        return Ok(());
    }
    let _ = rustix::fs::fadvise(&f, 0, PAGE as u64, rustix::fs::Advice::DontNeed);
    f.read_at(&mut [0u8; PAGE], 0).map(drop)
}

/// Which disks [`disks_answer`] asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disks {
    /// The source (the database, and the object given) and DEST: the copy.
    Both,
    /// DEST alone: the folder passes after the last file.
    Dest,
    /// The source alone, while the run plans (DEST may not be made yet, and is not what
    /// the run waits for): the database, and a name never asked for looked up in the
    /// object folder ([`look_up_a_new_name`]: it reaches a share's server), as no object
    /// was read yet and a database given with `--db` may lie on another disk.
    Source,
}

/// Whether the source disk and DEST still answer: the first page of the database and of
/// `object`, an object this run read (its content ID, if any), read from the disk (their
/// cached pages dropped first), and DEST listed ([`Disks::Both`]); DEST alone
/// ([`Disks::Dest`]); or the source alone ([`Disks::Source`]). The object
/// is looked up by the probe's own thread: that look-up is a call to the source disk too,
/// which a disk that holds calls would hold the asker in (the bookkeeper, round 20). An error worth retrying (EIO, a
/// timeout) is asked again for about 5 s, as a file's copy is, so that a disk's brief stall
/// does not stop a long restore; all of it within [`NO_ANSWER`] (a dead NAS can hang a
/// call for good; the thread asking is then left behind). Err says which disk does not
/// answer, and how.
fn disks_answer(cfg: &RestoreConfig, object: Option<&str>, disks: Disks) -> Result<(), Unanswered> {
    let source = disks != Disks::Dest;
    let (db, dest) = (cfg.source.db.clone(), cfg.dest.clone());
    // A dry run's DEST may not exist yet.
    let list_dest = !cfg.dry_run && disks != Disks::Source;
    // Looked up in, where only the source is asked.
    let objects = (disks == Disks::Source).then(|| cfg.source.files.clone());
    let (tx, rx) = crossbeam_channel::bounded(1);
    // The object where the sharded layout puts it (no call to the disk): said if its
    // look-up does not come back; where it is found is read (`find_object`, below).
    let layout = cfg.source.clone();
    let object = object.and_then(|c| Some((c.to_string(), layout.sharded_object_path(c)?)));
    let read = [
        Some(db).filter(|_| source),
        object.as_ref().map(|(_, p)| p.clone()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    // Where the probe is: which of `read` it reads (its index), or (`read.len()`) that it
    // looks up a name in the object folder (`objects`) or lists DEST. Not back in time,
    // the call still out says which disk holds it.
    let at = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (paths, at_now, folder) = (read.clone(), Arc::clone(&at), objects.clone());
    let asked = std::thread::Builder::new()
        .name("mcr-disk-probe".into())
        .spawn(move || {
            // (the source's message, or None for DEST; the error)
            let ask = || -> Result<(), (Option<String>, std::io::Error)> {
                for (i, path) in paths.iter().enumerate() {
                    at_now.store(i, Ordering::SeqCst);
                    // The object found now; not found (an error, or gone from where it was
                    // read): read where it was, so that the probe says why.
                    let found = match &object {
                        Some((c, _)) if i + 1 == paths.len() => {
                            layout.find_object(c).ok().flatten()
                        }
                        _ => None,
                    };
                    let path = found.as_deref().unwrap_or(path);
                    read_first_page_uncached(path).map_err(|e| {
                        (
                            Some(format!(
                                "the source disk does not answer: reading {} fails",
                                path.display()
                            )),
                            e,
                        )
                    })?;
                }
                if let Some(folder) = &folder {
                    at_now.store(paths.len(), Ordering::SeqCst);
                    look_up_a_new_name(folder).map_err(|e| {
                        (
                            Some(format!(
                                "the source disk does not answer: looking up a name in {} fails",
                                folder.display()
                            )),
                            e,
                        )
                    })?;
                }
                if !list_dest {
                    return Ok(());
                }
                at_now.store(paths.len(), Ordering::SeqCst);
                std::fs::read_dir(&dest).map(drop).map_err(|e| (None, e))?;
                look_up_a_new_name(&dest).map_err(|e| (None, e))
            };
            let mut verdict = ask();
            for wait in [1000, 4000] {
                match &verdict {
                    Err((_, e)) if copy::is_transient(e) => {
                        std::thread::sleep(Duration::from_millis(wait));
                        verdict = ask();
                    }
                    _ => break,
                }
            }
            let _ = tx.send(verdict.map_err(|(what, e)| match what {
                Some(what) => Unanswered::Source(format!("{what} ({e})")),
                None => Unanswered::Dest {
                    cause: e.to_string(),
                    held: false,
                },
            }));
        });
    // Not probed (no thread to spare): said as a disk that does not answer, the one asked
    // about, so that a pass over DEST alone records DEST lost and does not count as done.
    if let Err(e) = asked {
        return Err(match source {
            true => Unanswered::Source(format!("the disks could not be probed ({e})")),
            false => Unanswered::Dest {
                cause: format!("it could not be probed: {e}"),
                held: false,
            },
        });
    }
    let limit = NO_ANSWER.as_secs();
    rx.recv_timeout(NO_ANSWER).unwrap_or_else(|_| {
        Err(match (read.get(at.load(Ordering::SeqCst)), &objects) {
            (Some(path), _) => Unanswered::SourceSilent(format!(
                "the source disk does not answer: reading {} took more than {limit} s",
                path.display()
            )),
            (None, Some(folder)) => Unanswered::SourceSilent(format!(
                "the source disk does not answer: looking up a name in {} took more than {limit} s",
                folder.display()
            )),
            (None, None) => Unanswered::Dest {
                cause: format!("a call there and listing it each took more than {limit} s"),
                held: true,
            },
        })
    })
}

/// Looks up in `dir` a name never asked for before: a share's client may answer a listing,
/// or a look-up of a name it knows, from its cache (sshfs does, for 20 s), not this one, so
/// it reaches the server. Not there is the answer expected; Err is any other error.
pub(crate) fn look_up_a_new_name(dir: &Path) -> std::io::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let fresh = dir.join(format!(
        ".mcr-answer-{}-{}",
        std::process::id(),
        now.map_or(0, |d| d.as_nanos())
    ));
    match std::fs::symlink_metadata(fresh) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What a run stopped by a disk that does not answer says: `why` (from [`disks_answer`]).
/// DEST found not answering is said by [`Lost::text`] instead.
/// `held`: the probe was asked because calls in the copy (files, the planner's and the
/// count's reads of the database) did not come back (for that long), not because they failed, and the run waited up to `patience` for the source: a
/// disk that hangs may keep the program from ending, said with what ends it.
fn stalled_text(why: &str, held: Option<Duration>, patience: Duration) -> String {
    let (after, wait) = match held {
        Some(quiet) => (
            format!(
                "while nothing asked of the disks (files being copied, the database being read) came back for {} (waited up to {} for the source disk: a failing disk can take minutes on a bad sector)",
                span(quiet),
                span(patience)
            ),
            " If this program does not end, a read it made there is still waiting for the disk: it ends once the disk answers or is detached.",
        ),
        None => ("after files met I/O errors, timeouts or lost connections".to_string(), ""),
    };
    format!(
        "{why}, {after}: stopped. The files not restored are left for the next run (not processed, not failed).{wait} Check the disks (`dmesg`), attach the one that went away again and run the same command. A source disk that is failing is best copied first (ddrescue), then restored from the copy"
    )
}

/// A wait as the copy's lines say it: "45 s", "5 min", "2 min 10 s".
fn span(d: Duration) -> String {
    match (d.as_secs() / 60, d.as_secs() % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// DEST does not answer any more (`cause`: the error met).
fn dest_unreachable(cause: &str) -> Lost {
    Lost {
        loss: DestLoss::Unreachable,
        met: cause.to_string(),
        held: None,
    }
}

/// DEST lost when writing there failed with "read-only file system" (`m`: what failed, and
/// on which path).
fn dest_read_only(m: &str) -> Lost {
    Lost {
        loss: DestLoss::ReadOnly,
        met: m.to_string(),
        held: None,
    }
}

/// DEST lost, when looking at it (`folder_identity_settled`) found another folder (`now`
/// None) or failed with `now`: an error that says it does not answer (its connection lost,
/// an I/O error that lasted through the retries) is an unreachable destination, not a
/// changed one.
fn dest_lost_as(now: Option<std::io::Error>) -> Lost {
    match now {
        Some(e)
            if copy::says_gone(&e)
                || matches!(e.raw_os_error(), Some(libc::EIO | libc::ETIMEDOUT)) =>
        {
            dest_unreachable(&e.to_string())
        }
        now => Lost {
            loss: DestLoss::Changed,
            met: now.map(|e| format!(": {e}")).unwrap_or_default(),
            held: None,
        },
    }
}

impl Lost {
    /// What a run stopped by a lost DEST says. In the copy, files reach their final names
    /// only complete (`copy`), so nothing is to be checked by hand, but those placed since
    /// the last commit were not recorded: the next run checks them. In the folder passes
    /// every file was recorded before: only folders are left, which the next run makes and
    /// dates. No advice about a failing source disk: the source is fine. A share that
    /// holds calls may keep the program from ending: said, with how to end them.
    /// `mount`: DEST's mount point when the run began (what `umount` and a new mount take;
    /// DEST may be a folder inside the share).
    fn text(&self, dest: &Path, mount: &Path, during: LostDuring) -> String {
        let mount = match mount.as_os_str().is_empty() {
            true => dest.display(),
            false => mount.display(),
        };
        let (dest, met) = (dest.display(), &self.met);
        let (cause, remedy) = match (self.loss, &self.held) {
            (DestLoss::Unreachable, Some(mount)) => (
                format!("the destination {dest} stopped answering ({met}): the server of its share hangs, or the connection to it does"),
                format!("If this program does not end, a call it made there is still waiting for the share: `umount -f {}` ends it (and cuts the share off). Mount the share again and run the same command", mount.display()),
            ),
            (DestLoss::Unreachable, None) => (
                format!("the destination {dest} cannot be reached any more ({met}): the connection to its share was lost, or the program serving it (sshfs, a FUSE driver) ended"),
                format!("Mount the share again at {mount} (if it still says \"Transport endpoint is not connected\", unmount it first: umount -l {mount}) and run the same command"),
            ),
            (DestLoss::ReadOnly, _) => (
                format!("{met}: the destination became read-only during the run (Linux remounts a disk read-only after an error; a NAS share can turn read-only)"),
                "See why (`dmesg`, the NAS's log), mount it read-write again and run the same command".to_string(),
            ),
            (DestLoss::Changed, _) => (
                format!("{dest} is no longer the folder this restore started writing to (its disk unmounted or replaced{met}, or the folder renamed or deleted)"),
                "Mount the destination again (or give the folder its name back) and run the same command".to_string(),
            ),
        };
        // What was written to a changed DEST went to the disk below its mount point.
        let below = |what: &str| {
            format!("{what} after the change may be in {dest} on the disk below the mount point, check and remove them")
        };
        match (during, self.loss) {
            (LostDuring::Files, DestLoss::Unreachable) => format!(
                "{cause}. Stopped; no file is partial under its final name (files are written under a temporary name and renamed once complete; the next run removes temporary ones left behind), and the files placed since the last commit were not recorded: the next run checks them. {remedy} to continue"
            ),
            (LostDuring::Files, DestLoss::ReadOnly) => format!(
                "{cause}: stopped, and the files placed since the last commit were not recorded. {remedy}: the next run checks the files placed since the last commit"
            ),
            (LostDuring::Files, DestLoss::Changed) => format!(
                "{cause}: stopped, and the files placed since the last commit were not recorded. {remedy}; {}",
                below("files placed")
            ),
            (
                LostDuring::Folders {
                    not_made,
                    not_dated,
                },
                loss,
            ) => {
                let (left, next) = folders_left_text(not_made, not_dated);
                let also = match loss {
                    DestLoss::Changed => format!("; {}", below("folders made")),
                    _ => String::new(),
                };
                format!(
                    "{cause}. It stopped after the last file, in the passes that make and date the folders: the files were all handled and recorded before, but {left}. {remedy}: it {next}{also}"
                )
            }
        }
    }
}

/// The folders a folder pass left when DEST was lost ("3 folders were not made and 40 were
/// not dated"), and what the next run does with them ("makes and dates them").
fn folders_left_text(not_made: u64, not_dated: u64) -> (String, &'static str) {
    use crate::report::plural;
    let were = |n: u64| if n == 1 { "was" } else { "were" };
    match (not_made, not_dated) {
        (0, 0) => (
            "some folders may not be made or dated yet".into(),
            "makes and dates them",
        ),
        (0, d) => (
            format!("{} {} not dated", plural(d, "folder", "folders"), were(d)),
            "dates them",
        ),
        (m, 0) => (
            format!("{} {} not made", plural(m, "folder", "folders"), were(m)),
            "makes them",
        ),
        (m, d) => (
            format!(
                "{} {} not made and {} {} not dated",
                plural(m, "folder", "folders"),
                were(m),
                count(d),
                were(d)
            ),
            "makes and dates them",
        ),
    }
}

/// Files settled without a worker (already done, not selected) are reported in chunks too:
/// of this many, or fewer when [`SETTLED_EVERY`] has passed since the last (a resume whose
/// planner waits on the copies between files found done moved its "already done before"
/// count, and the percentage, in steps of 1,024 files).
const SETTLED_CHUNK: usize = 1024;
/// How long files settled without a worker wait at most to be reported: a few display
/// refreshes a second. The clock is read once per file (tens of nanoseconds).
const SETTLED_EVERY: Duration = Duration::from_millis(20);

/// One worker result, sent to the bookkeeping thread.
struct Done {
    file: PlannedFile,
    outcome: Outcome,
    bytes: u64,
    error: Option<String>,
    note: Option<String>,
    /// The note is about the file itself (its object's length), not about this run: it
    /// is kept in the checkpoint, and later runs report it again.
    lasting_note: bool,
    /// Recorded as done by an earlier run, but not on DEST when this run looked
    /// ([`Job::CheckFirst`]): restored again.
    was_gone: bool,
    /// A different file was at its path and was replaced (said in its note): why.
    replaced: Option<ReplacedBy>,
}

/// Why a file that differed from the plan, found at a file's path, was replaced (each
/// counted in the report, and noted on the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplacedBy {
    /// `--overwrite`.
    Overwrite,
    /// The checkpoint marked it to be copied again (`regen` found it differing).
    Marked,
}

impl Done {
    /// `file` with `outcome` and nothing else to say yet.
    fn of(file: PlannedFile, outcome: Outcome) -> Done {
        Done {
            file,
            outcome,
            bytes: 0,
            error: None,
            note: None,
            lasting_note: false,
            was_gone: false,
            replaced: None,
        }
    }
}

/// A file the planner hands to the workers.
enum Job {
    /// To restore; `replace` a differing file found at its path, and why.
    Restore {
        file: PlannedFile,
        replace: Option<Redo>,
    },
    /// Recorded as done, in a run that found some recorded files gone from DEST
    /// ([`check_restored_are_there`]): the worker looks at its path first (on a NAS a round
    /// trip per file, so not on the planner's one thread). There, or not to be looked at:
    /// already done. Absent: restored again, like any file not done.
    CheckFirst(PlannedFile),
}

/// Why a file is restored over what is at its path, even without `--overwrite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Redo {
    /// The checkpoint marked it to be copied again: `regen` found it differing.
    Marked,
    /// An earlier run restored it from an object of another length than the database says,
    /// and the object now has the database's length (noted "copied again").
    Whole,
}

impl Job {
    fn file(&self) -> &PlannedFile {
        match self {
            Job::Restore { file, .. } | Job::CheckFirst(file) => file,
        }
    }
}

/// How a run ended, for the exit code.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunEnd {
    pub interrupted: bool,
    pub dest_full: Option<String>,
    pub problems: u64,
}

/// The note for an object of another length than the database says (a likely damaged
/// file), or for a file whose stored size is not a byte count: `how` it was restored.
fn length_note(object_bytes: u64, file: &PlannedFile, how: &str) -> String {
    match &file.size_unusable {
        Some(stored) => format!(
            "object has {object_bytes} bytes, the database's size ({stored}) is not a byte count; {how} as found"
        ),
        None => format!(
            "object has {object_bytes} bytes, the database says {}; {how} as found",
            file.size
        ),
    }
}

/// The note for a file that replaced a different one found at its path (`size` bytes,
/// modified at `mtime_ms`), as `by` asked.
fn replaced_note(by: ReplacedBy, size: u64, mtime_ms: i64, dry_run: bool) -> String {
    let (did, was) = match dry_run {
        true => ("would replace", "is"),
        false => ("replaced", "was"),
    };
    let why = match by {
        ReplacedBy::Overwrite => "as --overwrite asks",
        ReplacedBy::Marked => {
            "which `regen` found differing from the plan and marked to be copied again"
        }
    };
    let dry = if dry_run {
        " (dry run: not changed)"
    } else {
        ""
    };
    format!(
        "{did} the different file that {was} at this path ({}, dated {}), {why}{dry}",
        crate::report::plural(size, "byte", "bytes"),
        crate::report::human_ms(mtime_ms)
    )
}

/// Before a resume trusts its checkpoint: are the files it records as restored on DEST
/// ([`crate::state::look_for_restored`])? None of them there means the wrong disk, or a NAS
/// share not mounted (its mount point an empty folder): resuming would report every file
/// restored and copy nothing, so it stops before anything is written. Some of them gone
/// (removed or moved since) means others may be too: this run looks for every file the
/// checkpoint records as done before counting it done (`Job::CheckFirst`), and restores those
/// it finds missing; true is returned, with the warning. Without a sampled file gone, files
/// recorded as done are not looked at (a resume with nothing to do stays fast).
fn check_restored_are_there(
    found: crate::state::RestoredCheck,
    cfg: &RestoreConfig,
) -> anyhow::Result<Option<String>> {
    if found.none_there() {
        anyhow::bail!(
            "the checkpoint in {} records files as restored to {}, but none of the {} looked for is there (for example {}). Is the right disk or share mounted at {}? Nothing was changed. If the files were removed or moved on purpose, start over with --fresh (files already identical on the destination are adopted, not copied again)",
            cfg.state_dir.display(),
            cfg.dest.display(),
            found.looked_for,
            cfg.dest.join(&found.gone[0]).display(),
            cfg.dest.display()
        );
    }
    if !found.some_gone() {
        return Ok(None);
    }
    Ok(Some(format!(
        "{} of {} files the checkpoint records as restored are no longer on the destination (for example {}): this run looks for every file the checkpoint records as done and restores those it finds missing (listed in the report); run `verify` afterwards to find any that were changed rather than removed",
        found.gone.len(),
        found.looked_for,
        cfg.dest.join(&found.gone[0]).display()
    )))
}

/// Before a run writes: is DEST on the filesystem and mount point it was on when a run last
/// placed files there ([`crate::state::check_dest_on_same_mount`])? A share whose remount
/// failed leaves DEST on the system disk: stopped, nothing made or written. `--fresh`
/// accepts the change (a restore moved to another disk on purpose): the checkpoint's
/// records describe the other filesystem, and starting over adopts the files found there
/// by size and date.
fn check_dest_on_same_mount(recorded: Option<&str>, cfg: &RestoreConfig) -> anyhow::Result<()> {
    crate::state::check_dest_on_same_mount(
        recorded,
        &cfg.dest,
        &cfg.dest_fs,
        &format!(
            " and run the same command (the checkpoint is in {}). Nothing was changed. If the restore moved to another disk on purpose, run it with --fresh (files already there with the right size and date are kept, not copied again)",
            cfg.state_dir.display()
        ),
    )?;
    Ok(())
}

/// How many files spread over the database a first restore looks for in the object store.
pub const OBJECT_SAMPLE: usize = 64;
/// From this many files sampled, none found stops a restore (fewer say too little).
const OBJECT_SAMPLE_MIN: usize = 16;

/// What [`look_for_objects`] found.
#[derive(Debug, Default)]
pub struct ObjectLook {
    /// Few found, or some unreadable: said, the restore goes on.
    pub warnings: Vec<String>,
    /// None of the files sampled has its object: a restore would make only empty folders,
    /// and stops before it writes anything.
    pub blocking: Option<String>,
}

/// The look at the object store a first restore makes before it writes anything:
/// [`OBJECT_SAMPLE`] files spread over the database, looked for under the object folder.
/// `preflight` and `plan` make the same look, so that neither calls ready a restore that
/// would stop. An error is what a restore stops on too (every object found unreadable).
pub fn look_for_objects(source: &SourceLayout, index: &Index) -> anyhow::Result<ObjectLook> {
    let sample = index.sample_content_ids(OBJECT_SAMPLE)?;
    let (found, warnings) = source.sample_objects(&sample)?;
    let blocking = (sample.len() >= OBJECT_SAMPLE_MIN && found == 0).then(|| {
        format!(
            "none of {} files sampled from {} has its object under {}: a restore would make only empty folders. Check that SOURCE is the My Cloud data partition (or pass --files with the folder of objects); `mycloud-recover inspect` tells more",
            sample.len(),
            source.db.display(),
            source.files.display()
        )
    });
    Ok(ObjectLook {
        // "Few found" says less than what stops the restore.
        warnings: if blocking.is_some() {
            Vec::new()
        } else {
            warnings
        },
        blocking,
    })
}

/// DEST on the filesystem the objects are read from. Allowed (a dump copied onto the new
/// disk is restored there, beside it), but on the device's own disk every file restored
/// is written onto the disk being recovered from, which may be failing: said at the start
/// and in the report, as `preflight` says it.
fn same_filesystem_note(cfg: &RestoreConfig) -> Option<String> {
    // A dump `demo` wrote (its manifest beside `restsdk`) is no device's disk: the first
    // thing a new user runs warned about the disk it recovers from.
    let is_demo = (cfg.source.files.ancestors().take(4))
        .any(|d| d.join(crate::demo::MANIFEST_FILE).is_file());
    if is_demo {
        return None;
    }
    let device = |p: &Path| crate::fsinfo::identity(p).ok().map(|(dev, _)| dev);
    let dest = device(&crate::fsinfo::existing_ancestor(&cfg.dest))?;
    (device(&cfg.source.files)? == dest).then(|| {
        format!(
            "the destination {} is on the same filesystem as the source's objects ({}): the restore writes onto the disk it recovers from. If that is the My Cloud's own disk, prefer a destination on another disk; if the dump was copied onto the new disk, this is expected",
            cfg.dest.display(),
            cfg.source.files.display()
        )
    })
}

/// A restore stopped by a signal before it opened its checkpoint or made DEST
/// ([`restore`]'s error; exit 130).
#[derive(Debug)]
pub struct StoppedWhilePlanning;

impl std::fmt::Display for StoppedWhilePlanning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "interrupted while planning, before anything was restored; run the same command again",
        )
    }
}

impl std::error::Error for StoppedWhilePlanning {}

/// A command stopped before it wrote anything, because a disk did not answer: SOURCE or
/// DEST while their paths were checked or other work outside the copy read them
/// ([`watch::watched`]), or the source while a restore planned (`read_while_planning`).
/// A restore's is exit 1, as a run stopped by its disks; the other commands' exit 2 (they
/// could not run). The text says what does not answer and what to do.
#[derive(Debug)]
pub struct HeldBeforeWriting(String);

impl std::fmt::Display for HeldBeforeWriting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HeldBeforeWriting {}

/// Runs `work`, a step of planning that reads the source (`what`: opening the database,
/// reading its rows, looking for a sample of objects; `stopped`: what was written by then,
/// for the stop's text), on a thread of its own, and waits
/// for it as the copy waits for its calls (`stop_if_held` in [`restore`]).
///
/// Why: these steps come before any file is copied, and they ran on the main thread. A
/// source that holds calls rather than failing them (a share whose server hangs, a disk
/// that stops answering) held the run there for good, without a word, and nothing in this
/// process can end such a call ([`crate::held`]). Now the main thread waits with a limit
/// ([`crate::held::Call`]): a step not back within [`NO_ANSWER`] has the source probed
/// ([`Disks::Source`]). Answering, the step is only slow (a large database, a slow link):
/// said, and waited for. Not answering, it is waited for up to `patience`
/// ([`SOURCE_PATIENCE`]: a failing disk retrying a bad sector answers nothing for minutes,
/// then goes on), said once a probe, and probed again at once; still silent, the run stops
/// ([`HeldBeforeWriting`]) and leaves the step's thread behind in its call. So what a
/// step uses is owned: the index is moved into it and handed back with its result.
///
/// A signal meanwhile: the step is waited for while the source answers (it ends in seconds,
/// then the run stops as `StoppedWhilePlanning`, its private copy of the database removed);
/// once the source is found not answering, the run stops at once.
fn read_while_planning<T: Send + 'static>(
    cfg: &RestoreConfig,
    patience: Duration,
    ui: &mut dyn Listener,
    (what, stopped): (&str, &str),
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let mut call = crate::held::Call::start("mcr-planning", work)
        // The message std's own spawns give: `main` tells the user which limit.
        .expect("failed to spawn thread");
    let began = Instant::now();
    // Since when nothing is known to have answered: the step's start, or the last probe that
    // found the source answering.
    let mut quiet_since = began;
    let mut wait = NO_ANSWER;
    loop {
        if let Some(done) = call.wait(wait) {
            return Ok(done);
        }
        match disks_answer(cfg, None, Disks::Source) {
            Ok(()) => {
                ui.waiting(&format!(
                    "{what} has taken {} so far; the source answers, so the run waits for it (a large database, a slow link)",
                    span(began.elapsed())
                ));
                quiet_since = Instant::now();
                wait = NO_ANSWER;
            }
            Err(_) if interrupted() => return Err(StoppedWhilePlanning.into()),
            Err(Unanswered::SourceSilent(probe)) if quiet_since.elapsed() < patience => {
                ui.waiting(&format!(
                    "the source disk has not answered for {} ({what}; {probe}); a failing disk can take minutes on a bad sector: waiting up to {} before stopping (`dmesg` shows the disk's errors)",
                    span(quiet_since.elapsed()),
                    span(patience)
                ));
                // The probe took `NO_ANSWER` itself.
                wait = Duration::ZERO;
            }
            Err(Unanswered::Source(why) | Unanswered::SourceSilent(why))
            | Err(Unanswered::Dest { cause: why, .. }) => {
                return Err(HeldBeforeWriting(held_while_planning_text(
                    cfg,
                    &why,
                    (what, stopped),
                    quiet_since.elapsed(),
                    patience,
                ))
                .into())
            }
        }
    }
}

/// What a run stopped while it plans has written ([`held_while_planning_text`]): nothing,
/// until DEST is made and the checkpoint opened.
const NOTHING_WRITTEN: &str =
    "Stopped before anything was written: no file restored, no checkpoint opened";

/// What a run stopped by a source that does not answer while it plans says
/// ([`read_while_planning`]): `why` (from [`disks_answer`]), during `what`, nothing back for
/// `quiet`; `stopped`: what was written by then. Before DEST is made, nothing
/// ([`NOTHING_WRITTEN`]: a first run's state folder goes with its lock, `StateLock`'s drop);
/// the second plan for a DEST that folds case comes after, and gives the checkpoint up as
/// found. The read still out may keep the program from ending: said, with what ends it.
fn held_while_planning_text(
    cfg: &RestoreConfig,
    why: &str,
    (what, stopped): (&str, &str),
    quiet: Duration,
    patience: Duration,
) -> String {
    // Mount points as the mount table names them (asking the disk may not come back).
    let mut mounts = [&cfg.source.db, &cfg.source.files]
        .into_iter()
        .filter_map(|p| crate::fsinfo::mount_point_as_named(p))
        .map(|m| format!("`umount -f {}`", crate::preflight::model::shell_path(&m)))
        .collect::<Vec<_>>();
    mounts.dedup();
    let end = match mounts.is_empty() {
        true => "it ends once the disk answers or is detached, or, on a share, once the share is unmounted with `umount -f`".to_string(),
        false => format!(
            "it ends once the disk answers or is detached, or, on a share, {} ends it (and cuts the share off)",
            mounts.join(" or ")
        ),
    };
    format!(
        "{why}, while the run was planning ({what}): nothing came back for {} (waited up to {} for the source disk: a failing disk can take minutes on a bad sector). {stopped}. If this program does not end, a read it made there is still waiting: {end}. Check the source {} (`dmesg`; for a share, its server and the network) and run the same command once it answers. A source disk that is failing is best copied first (ddrescue), then restored from the copy",
        span(quiet),
        span(patience),
        cfg.source.root.display()
    )
}

/// Runs a restore and returns the final report.
pub fn restore(cfg: &RestoreConfig, ui: &mut dyn Listener) -> anyhow::Result<Report> {
    crate::signals::clear();
    let started = Instant::now();
    // Shared with the folder passes' threads, which may outlive the run (`in_parallel`).
    let faults = Arc::new(Faults::from_env());
    // How long a source that does not answer is waited for, while planning as in the copy.
    let patience = faults
        .source_patience_ms
        .map_or(SOURCE_PATIENCE, Duration::from_millis);
    // Planning's reads of the source (opening the database, its rows, a sample of objects)
    // are made on a thread of their own, watched: a source that holds calls stops the run
    // with a message, rather than holding it for good (`read_while_planning`).
    let (db, backup) = (cfg.source.db.clone(), cfg.source.backup_db.clone());
    let (index, rows) = read_while_planning(
        cfg,
        patience,
        ui,
        ("opening the database", NOTHING_WRITTEN),
        move || -> anyhow::Result<(Index, u64)> {
            let index = Index::open(&db, backup.as_deref())?;
            let rows = index.row_count()?;
            Ok((index, rows))
        },
    )??;
    // The state folder is locked first and what its checkpoint knows is read on its own
    // thread while the plan is built: both are serial work before a resume's first file
    // (0.8 s and 2.9 s at 1.35M files). The checkpoint is opened for writing only once the
    // plan is sound.
    // Until it opens the checkpoint, a run that ends (refused at planning, stopped by Ctrl-C,
    // a panic) drops the lock, which removes the state folder where taking it made one: a
    // refused first run leaves nothing behind (`StateLock`'s drop).
    let lock = if cfg.dry_run {
        None
    } else {
        Some(StateLock::take(&cfg.state_dir)?)
    };
    // A dry run takes no lock and writes nothing, but says what the real run would: it reads
    // the checkpoint as it is (files done, files `regen` marked) and refuses what that run
    // would refuse.
    let earlier = match cfg.dry_run && !cfg.fresh {
        true => crate::state::Earlier::open(&cfg.state_dir)?,
        false => None,
    };
    let source_db = cfg
        .source
        .db
        .canonicalize()
        .unwrap_or_else(|_| cfg.source.db.clone());
    // A checkpoint of another restore (another database, another DEST) is refused before
    // DEST is made or anything written: a resume makes and tests DEST before it opens the
    // checkpoint (below), which binds it. `--fresh` forgets it instead.
    match (&lock, &earlier) {
        (Some(l), _) if !cfg.fresh => l.check_binding(&source_db, &cfg.dest)?,
        (None, Some(e)) => e.check_binding(&source_db, &cfg.dest)?,
        _ => {}
    }
    // One restore at a time in a DEST, whatever its state folder: two would write the same
    // temporary names on a network destination and fail each other's files. A lock on the
    // folder itself, held until the end of the run (`_dest_lock` below); where the filesystem
    // has no such locks (some network filesystems), nothing is promised. A DEST that is there
    // already is locked here, before anything is planned, made or written: a run refused by
    // it has changed nothing (a first run leaves no state folder, a resume no run added, and
    // DEST is not probed). Until round 20's review it was taken once DEST had been probed
    // (probe files made and removed there while the other restore wrote into it, DEST's
    // date changed). A DEST this run makes is locked as soon as it is made
    // (`early_dest_lock` below), or, where it is made only after the checkpoint is opened (a
    // checkpoint from before the log), then.
    let held_dest_lock = match (&lock, cfg.dest.is_dir()) {
        (Some(_), true) => Some(lock_dest(&cfg.dest, Untouched::Yes)?),
        _ => None,
    };
    ui.preparing(&format!(
        "planning: reading {} rows of {} (folders and names)",
        count(rows),
        cfg.source.db.display()
    ));
    let (built, known) = std::thread::scope(|s| {
        let reader = lock
            .as_ref()
            .filter(|_| !cfg.fresh)
            .map(|l| spawn_named(s, "mcr-keys", move || l.read_keys()));
        // The index is moved to the planning thread and handed back (`read_while_planning`).
        let options = cfg.plan.clone();
        let built = read_while_planning(
            cfg,
            patience,
            &mut *ui,
            ("reading the database's rows", NOTHING_WRITTEN),
            move || {
                let plan = Plan::build(&index, options);
                (index, plan)
            },
        );
        if built.is_ok() {
            std::thread::sleep(Duration::from_millis(faults.plan_delay_ms));
        }
        // A panic there is a bug: raised again here, it ends the run with exit 101 (main).
        let known = reader.map(|r| {
            r.join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
                .map_err(anyhow::Error::from)
        });
        (built, known)
    });
    let (index, plan) = built?;
    let plan = plan?;
    // What the checkpoint records as done and to redo, read without opening it for
    // writing: `None` for a first run, `--fresh`, and a checkpoint from before the log
    // (opening converts it).
    let known = known.transpose()?.flatten();
    // Ctrl-C while planning (seconds at 1.7M rows): stopped before the checkpoint is opened
    // and DEST made. Past here the run opened both, counted and streamed every row before
    // it noticed.
    if crate::signals::stop_requested() {
        return Err(StoppedWhilePlanning.into());
    }
    // An object store holding none of the sampled objects (the wrong folder, a layout this
    // tool does not know) would give nothing but empty folders and a list of every file as
    // missing: refused before anything is made. Few found: said with the other start-up
    // warnings before the first file, and in the summary and the report.
    // Only where no run has restored anything yet: a resume, whose earlier runs found
    // objects there, never touches the object store for files already done.
    let resuming = matches!(&known, Some((done, _)) if !done.is_empty());
    let (mut index, look) = match resuming {
        true => (index, ObjectLook::default()),
        false => {
            let source = cfg.source.clone();
            let (index, look) = read_while_planning(
                cfg,
                patience,
                ui,
                (
                    &format!(
                        "looking for a sample of objects under {}",
                        cfg.source.files.display()
                    ),
                    NOTHING_WRITTEN,
                ),
                move || {
                    let look = look_for_objects(&source, &index);
                    (index, look)
                },
            )?;
            (index, look?)
        }
    };
    if let Some(why) = look.blocking {
        anyhow::bail!("{why}. Nothing was written");
    }
    let few_objects = look.warnings;
    let mut restored_sample = match (lock.as_ref().filter(|_| !cfg.fresh), &earlier) {
        (Some(l), _) => l.restored_sample(RESTORED_SAMPLE, &cfg.dest)?,
        (None, Some(e)) => e.restored_sample(RESTORED_SAMPLE, &cfg.dest)?,
        (None, None) => Vec::new(),
    };
    // Files this run leaves out (the Trash an earlier run restored, say) are not looked
    // for: gone, they would start a look this run cannot finish, and every later run again.
    restored_sample.retain(|p| !plan.leaves_out(p));
    let mut dest_warning = check_restored_are_there(
        crate::state::look_for_restored(restored_sample, &cfg.dest),
        cfg,
    )?;
    // DEST on another mount than when the last run placed files (a NAS share not mounted
    // again): refused before DEST is made, whether or not anything was recorded yet.
    if !cfg.fresh {
        let recorded = match (&lock, &earlier) {
            (Some(l), _) => l.meta(crate::state::DEST_ON_KEY)?,
            (None, Some(e)) => e.meta(crate::state::DEST_ON_KEY)?,
            (None, None) => None,
        };
        check_dest_on_same_mount(recorded.as_deref(), cfg)?;
    }
    // `--fresh` forgets the checkpoint when it opens it: the destination is checked first, so
    // a run that cannot write there (a read-only or missing disk) keeps the progress it had.
    // A destination full at start-up is said with what the restore needs there, which
    // only the plan knows (`full_at_start`).
    // Full, but with nothing left that needs room there (files without an object only):
    // the run goes on, with a warning, without what the probe would have learnt
    // (`DestFacts::default`: named temporary files, names looked at; it writes no file). Not where files recorded as done are known to be
    // gone from DEST (`all_done_there` false): the run writes them again.
    // (`all_done_there` is asked only of a full DEST: it may read the checkpoint.)
    let probe = |done: &KeySet,
                 all_done_there: &dyn Fn() -> bool|
     -> anyhow::Result<(DestFacts, Option<String>)> {
        match create_and_probe(&cfg.dest) {
            Ok(facts) => Ok((facts, None)),
            Err(e) => match e.downcast::<FullAtStart>() {
                Ok(full) => match full_at_start(cfg, &plan, &index, done, all_done_there(), full) {
                    FullAtStartNeeds::Room(e) => Err(e),
                    FullAtStartNeeds::Nothing(w) => Ok((DestFacts::default(), Some(w))),
                },
                Err(e) => Err(e),
            },
        }
    };
    // DEST is made and tested before the checkpoint is opened, whenever what the checkpoint
    // records as done is known without opening it (every checkpoint but one from before the
    // log): a first run that cannot make or write DEST (a folder below a read-only mount or
    // share, a full disk) opens no checkpoint, and so leaves no state folder (round 19); a
    // resume refused there (DEST gone and not made again, turned read-only, full) leaves the
    // checkpoint as it was, with no run added that did nothing (round 20).
    let early = lock
        .as_ref()
        .is_some_and(|l| cfg.fresh || !l.has_checkpoint() || known.is_some());
    // Whether every file the checkpoint records as done is still on DEST, as far as this
    // run knows before it opens the checkpoint: its sample found none gone, and no earlier
    // run left the look for them unfinished (see `check_done` below).
    let all_done_there = || {
        dest_warning.is_none()
            && (cfg.fresh
                || crate::state::recorded_meta(&cfg.state_dir, LOOK_FOR_DONE).as_deref()
                    != Some("1"))
    };
    let early_probe = match (early, &known) {
        (true, Some((done, _))) => Some(probe(done, &all_done_there)?),
        (true, None) => Some(probe(&KeySet::default(), &|| true)?),
        (false, _) => None,
    };
    // DEST's lock (see `held_dest_lock`), where this run made DEST: taken as soon as it is
    // made, before the checkpoint is opened. Before round 20 it was taken once the checkpoint
    // was open.
    let early_dest_lock = match (held_dest_lock, early) {
        (Some(held), _) => Some(held),
        (None, true) => Some(lock_dest(&cfg.dest, Untouched::No)?),
        (None, false) => None,
    };
    // A dry run writes nothing, so it cannot make the real run's test: it says what it can
    // learn without writing of what that test would refuse (exit 2, as the real run).
    if cfg.dry_run {
        would_make_and_write(&cfg.dest).map_err(|e| {
            e.context(
                "dry run (nothing was written): a real run would stop before it copies anything",
            )
        })?;
    }
    // The run's: set when a disk it needs stops answering (the checkpoint folder, below).
    let stop_local = Arc::new(AtomicBool::new(false));
    // The checkpoint's writes and the report's, watched from the checkpoint's opening on:
    // the state folder may be on a share of its own, whose silence stops the run (before
    // the copy: `StateFolder::before_copy`).
    let state = StateFolder::new(&cfg.state_dir, &stop_local);
    // Held here by a test (`MYCLOUD_RECOVER_FAULTS`), which stops the state folder's share.
    if lock.is_some() && faults.open_delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(faults.open_delay_ms));
    }
    let mut ckpt = match lock {
        None => None,
        Some(lock) => {
            // The checkpoint is checked before anything is created on the destination.
            let (fresh, command) = (cfg.fresh, cfg.command_line.clone());
            let (db, dest, files) = (
                source_db.clone(),
                cfg.dest.clone(),
                cfg.source.files.clone(),
            );
            let opened = state.call(&cfg.state_dir, move || {
                let c = lock.open(fresh, &command)?;
                c.bind(&db, &dest)?;
                c.record_objects(&files)?;
                Ok::<_, crate::state::StateError>(c)
            });
            Some(opened.ok_or_else(|| state.stopped_before_copy())??)
        }
    };
    let (done_keys, redo_keys): (KeySet, KeySet) = match (&ckpt, known) {
        (Some(_), Some(keys)) => keys,
        // A new checkpoint, one from before the log (converted on opening), or `--fresh`.
        (Some(_), None) => state
            .before_copy(&mut ckpt, |c| c.keys())?
            .transpose()?
            .unwrap_or_default(),
        (None, _) => match &earlier {
            Some(e) => e.keys()?,
            None => Default::default(),
        },
    };
    // The checkpoint's key-value table: the open one (watched), or for a dry run the one
    // read.
    let recorded = |ckpt: &mut Option<crate::state::Checkpoint>,
                    key: &'static str|
     -> anyhow::Result<Option<String>> {
        Ok(match (ckpt.is_some(), &earlier) {
            (true, _) => state
                .before_copy(ckpt, move |c| c.meta(key))?
                .transpose()?
                .flatten(),
            (false, Some(e)) => e.meta(key)?,
            (false, None) => None,
        })
    };
    // Some recorded files gone: every file recorded as done is looked for before it counts,
    // by this run and the next ones until one has looked at all of them (the sample may not
    // find the others gone once this run restored the sampled ones).
    let mut check_done = dest_warning.is_some();
    if !check_done && !cfg.fresh && recorded(&mut ckpt, LOOK_FOR_DONE)?.as_deref() == Some("1") {
        check_done = true;
        dest_warning = Some("an earlier run found files the checkpoint records as restored gone from the destination, and stopped before it had looked for every such file: this run looks for them and restores those it finds missing (listed in the report)".into());
    }
    if check_done {
        state
            .before_copy(&mut ckpt, |c| c.set_meta(LOOK_FOR_DONE, "1"))?
            .transpose()?;
    }
    let plan_time = started.elapsed();
    // Counting the files for the percentages is a full pass over the database, as long as
    // the sort that orders the copy, so the two run at the same time (below); until then the
    // row count bounds what there is to do.
    let files_bound = rows.saturating_sub(plan.folder_rows());
    ui.preparing(&format!(
        "planned {} folders in {:.1} s; counting and ordering up to {} files",
        count(plan.folder_rows()),
        plan_time.as_secs_f64(),
        count(files_bound)
    ));
    let (dest_facts, full_warning) = match (&ckpt, early_probe) {
        (_, Some(probed)) => probed,
        (Some(_), None) => probe(&done_keys, &|| !check_done)?,
        (None, _) => (DestFacts::default(), None),
    };
    // DEST's lock (see `early_dest_lock`), held from here to the end of the run.
    let _dest_lock = match (&ckpt, early_dest_lock) {
        (_, Some(held)) => held,
        (Some(_), None) => lock_dest(&cfg.dest, Untouched::No)?,
        (None, None) => None,
    };
    // A destination that folds case although its filesystem type did not say so (a FUSE
    // mount of NTFS, a network share): under Posix rules `Photo.jpg` and `photo.jpg` would
    // be one file there, the second replacing or adopting the first. With `--names auto`
    // the plan is made again with Windows rules; asked for Posix rules, the run stops.
    let mut names_note = None;
    let mut dates_note = None;
    // These refusals come once the checkpoint is open (they need what it records, and what
    // the probe found): it is given up as the run found it (`Checkpoint::discard`: no run
    // added, or a checkpoint this run created removed with the state folder it made).
    let refuse_with = |ckpt: &mut Option<crate::state::Checkpoint>, e: anyhow::Error| {
        if let Some(c) = ckpt.take() {
            c.discard();
        }
        e
    };
    let refuse = |ckpt: &mut Option<crate::state::Checkpoint>, why: String| {
        refuse_with(ckpt, anyhow::anyhow!(why))
    };
    let plan = if dest_facts.folds_case && plan.options().policy == NamePolicy::Posix {
        if !cfg.names_auto {
            return Err(refuse(&mut ckpt, format!(
                "{} does not tell names apart by case (Photo.jpg and photo.jpg are one file there), so --names posix would let files replace each other: use --names windows (or auto)",
                cfg.dest.display()
            )));
        }
        names_note = Some(format!(
            "{} does not tell names apart by case although its filesystem ({}) usually does: Windows name rules are used (names that differ only in case get a suffix; `plan --names windows` shows them)",
            cfg.dest.display(),
            cfg.dest_fs.fstype
        ));
        // Read again, watched as the first plan was (a large database's rows are not all
        // in memory); stopped, the checkpoint is given up as the run found it.
        let options = PlanOptions {
            policy: NamePolicy::Windows,
            ..cfg.plan.clone()
        };
        let replanned = read_while_planning(
            cfg,
            patience,
            &mut *ui,
            (
                "reading the database's rows again, for Windows name rules",
                "Stopped before any file was restored: the checkpoint is left as the run found it (DEST was made and its names tested, nothing written into it)",
            ),
            move || {
                let plan = Plan::build(&index, options);
                (index, plan)
            },
        );
        let (again, plan) = match replanned {
            Ok((again, Ok(plan))) => (again, plan),
            Ok((_, Err(e))) => return Err(refuse_with(&mut ckpt, e.into())),
            Err(e) => return Err(refuse_with(&mut ckpt, e)),
        };
        index = again;
        plan
    } else {
        plan
    };
    // Files are known to the checkpoint by their restored paths: other name rules than the
    // first run's would restore some files a second time under other names, or take another
    // file's copy for theirs.
    if ckpt.is_some() || earlier.is_some() {
        let names = plan.options().policy.as_str();
        let restored = !(done_keys.is_empty() && redo_keys.is_empty());
        // A checkpoint from before the rules were kept: the earlier runs used the rules the
        // filesystem's type gave (this version's first choice).
        let before = recorded(&mut ckpt, NAMES_KEY)?
            .or_else(|| restored.then(|| cfg.plan.policy.as_str().to_string()));
        match before {
            Some(before) if before == "posix" && dest_facts.folds_case && restored => {
                return Err(refuse(&mut ckpt, format!(
                    "{} was restored with Posix names so far, but it does not tell names apart by case: files whose names differ only in case may have replaced each other there. Restore again with --fresh --names windows (files already there with the right size and date are kept, not copied again), then run verify --content",
                    cfg.dest.display()
                )));
            }
            Some(before) if before != names && restored => {
                return Err(refuse(&mut ckpt, format!(
                    "{} was restored with --names {before} so far; this run would use {names} rules and name some files differently. Run it with --names {before}, or restore into an empty folder with --fresh",
                    cfg.dest.display()
                )));
            }
            _ => {}
        }
        // The date fields, kept so that a run without `--mtime-from` dates files as the
        // earlier ones did (`config::dates_from`). Other fields given: each file whose date
        // changes is not "done" under its new date, is found with the object's bytes and
        // only re-dated (`Found::Redated`), and said so.
        let dates = plan.options().dates.describe();
        if let Some(before) = recorded(&mut ckpt, crate::state::DATES_KEY)? {
            if before != dates && restored {
                dates_note = Some(format!(
                    "dates are now taken from {dates} (the runs before used {before}): files whose date changes are compared with their objects and given the new date, not copied again"
                ));
            }
        }
        state
            .before_copy(&mut ckpt, move |c| {
                c.set_meta(NAMES_KEY, names)?;
                c.set_meta(crate::state::DATES_KEY, &dates)
            })?
            .transpose()?;
    }

    // Files still to restore, as far as the checkpoint knows (at most: filtered files count).
    let left = files_bound.saturating_sub(done_keys.len() as u64);
    // Tune after the checkpoint is known: a resume with little left is not worth measuring.
    let fd_limit = raise_fd_limit();
    let mut threads_note = None;
    let (threads, tuning) = match cfg.threads {
        // Asked for more workers than open files allow: each would fail files with "too many
        // open files"; as many as fit, and a warning.
        Threads::Fixed(n) => {
            let (fit, _, warning) =
                crate::preflight::model::cap_threads(n, String::new(), 0, fd_limit);
            threads_note = warning.map(|w| format!("--threads {n} lowered to {fit}: {w}"));
            (fit, None)
        }
        Threads::Auto => {
            let t = crate::preflight::auto_threads(cfg, left);
            (t.threads, Some(t))
        }
    };

    check_address_space(threads)?;

    let mut report = Report::new(cfg, threads);
    report.warnings.extend(threads_note);
    report.warnings.extend(few_objects);
    report.warnings.extend(full_warning);
    report.names = plan.options().policy;
    report.warnings.extend(names_note);
    report.warnings.extend(dates_note);
    report.tuning = tuning;
    report.looks_for_done = check_done;
    report.phases.insert("plan".into(), plan_time.as_secs_f64());
    // Those of the folders restored only: the others are not on DEST to be renamed or
    // under `_unlinked/` (an `--only` run's summary said 7 were "restored under _unlinked/").
    for r in plan.kept_folder_renames() {
        report.add_rename(&r.original, &r.restored);
    }
    report
        .structure_problems
        .extend(plan.kept_problems().cloned());
    let after_crash = state
        .before_copy(&mut ckpt, |c| c.previous_run_unclean())?
        .transpose()?
        .unwrap_or(false);
    let unsure_since = match (ckpt.is_some(), &earlier) {
        (true, _) => unsure_since(
            state
                .before_copy(&mut ckpt, |c| c.unsure_since())?
                .transpose()?
                .flatten(),
            cfg,
        ),
        (false, Some(e)) => unsure_since(e.unsure_since()?, cfg),
        (false, None) => None,
    };
    if after_crash {
        let t = Instant::now();
        let n = copy::remove_stale_temps(&cfg.dest)
            .with_context(|| format!("cannot clean temporary files in {}", cfg.dest.display()))?;
        report.stale_temps_removed = n;
        report
            .phases
            .insert("temp_cleanup".into(), t.elapsed().as_secs_f64());
    }
    // What a batch's `syncfs` flushes: the destination's filesystem, and any filesystem
    // mounted inside it (a second disk mounted in DEST is not flushed by the first's). One
    // that cannot be opened cannot be written either: its files fail on their own. Under
    // `file` too: each file is flushed before it is linked into its folder, but its name is
    // only on the disk once the folder is (round 19: a DEST whose filesystem failed lost
    // the last recorded names).
    // Shared with the thread that flushes (`dest_call`), which a share that stops
    // answering may keep in its call beyond the run.
    let mut dest_sync: Vec<(PathBuf, std::fs::File)> = Vec::new();
    if ckpt.is_some() && cfg.durability != Durability::None {
        dest_sync.push((cfg.dest.clone(), std::fs::File::open(&cfg.dest)?));
        dest_sync.extend(
            crate::fsinfo::mounts_inside(&cfg.dest)
                .into_iter()
                .filter_map(|m| std::fs::File::open(&m).ok().map(|f| (m, f))),
        );
    }
    let dest_sync: Arc<[(PathBuf, std::fs::File)]> = dest_sync.into();

    // What DEST is when the copy starts. A destination unmounted during the run (a USB disk
    // pulled, a NAS share dropped) leaves its mount point, an ordinary folder of the system
    // disk, under the same path: the files that follow would land there and be recorded as
    // restored. Each commit first checks that DEST is still the same folder.
    let dest_id = match &ckpt {
        Some(_) => Some(crate::fsinfo::identity(&cfg.dest)?),
        None => None,
    };
    // Said apart in the headline and by `status`: read-only or unreachable is not "changed".
    // Shared with the folder passes' threads, which may outlive the run (`in_parallel`).
    let dest_lost: Arc<DestLost> = Arc::new(std::sync::Mutex::new(None));
    // Folder dates are owed from the start of a run until its folder phase ends: a run that
    // stopped before it (interrupted, killed, the destination full) leaves folders it wrote
    // in with the time of that run, which the next run does not know about (it dates only
    // the folders it writes in). So the run after one that owed them dates every folder.
    let dates_owed = state
        .before_copy(&mut ckpt, |c| {
            let owed = c.meta(FOLDER_DATES_OWED)?.as_deref() == Some("1");
            c.set_meta(FOLDER_DATES_OWED, "1")?;
            Ok::<_, crate::state::StateError>(owed)
        })?
        .transpose()?
        .unwrap_or(false);
    // The whole restore's count of files, for `status` from another terminal ("N of M")
    // while the run goes on: written with the first commit after the count is known.
    let selected_count = std::sync::OnceLock::<u64>::new();
    let commits = AtomicU64::new(0);
    // Shared with the folder passes' threads, which may outlive the run (`in_parallel`).
    let dirs = Arc::new(DirCache::new(&cfg.dest, plan.folder_rows() as usize));
    let watch = Arc::new(DiskWatch::new(cfg, &stop_local, &dest_lost, patience));
    // What the workers share, owned: a worker whose call a disk never answers is left
    // behind when the run stops on it, and may outlive the run.
    let copying = Arc::new(CopyWork {
        source: cfg.source.clone(),
        dest: cfg.dest.clone(),
        overwrite: cfg.overwrite,
        fsync_each: cfg.durability == Durability::File,
        dry_run: cfg.dry_run,
        faults: Arc::clone(&faults),
        renames: AtomicU64::new(0),
        dirs: Arc::clone(&dirs),
        objects: copy::ObjectFolders::open(&cfg.source.files),
        copier: Copier::default(),
        exact_names: dest_facts.exact_names,
        unnamed_temps: dest_facts.unnamed_temps,
        named_fallbacks: AtomicU64::new(0),
        unsure_since,
        smallest_disk: copy::smallest_disk(&cfg.dest),
        watch: Arc::clone(&watch),
        stop: Arc::clone(&stop_local),
        dest_lost: Arc::clone(&dest_lost),
        full: std::sync::Mutex::new(None),
        dest_id,
        dest_folders: crate::walk::DestFolders::default(),
        calls: (0..threads).map(|_| WorkerClock::default()).collect(),
        planner: WorkerClock::default(),
        count: WorkerClock::default(),
        start: Instant::now(),
        left: AtomicBool::new(false),
    });

    report.warnings.extend(plan.index_notes(&index));
    report.warnings.extend(dest_warning);
    report.warnings.extend(same_filesystem_note(cfg));
    // Watched as the checkpoint's calls (a look at its filesystem).
    let state_dir = cfg.state_dir.clone();
    let on_network = !cfg.dry_run
        && state
            .call(&cfg.state_dir, move || {
                crate::fsinfo::probe(&state_dir).is_network()
            })
            .ok_or_else(|| state.stopped_before_copy())?;
    if on_network {
        report.warnings.push(format!(
            "the checkpoint folder {} is on a network filesystem; if the connection drops, progress records may be lost. Prefer a local --state-dir",
            cfg.state_dir.display()
        ));
    }
    // Every warning known at start-up, said once now, before the first file: the start line
    // repeated them, and those said as they were found came three times.
    for w in &report.warnings {
        ui.warning(w);
    }
    // Outcomes are recorded from the first result; the totals arrive with the count.
    let mut snap = Snapshot::new(&PlanTotals::default());
    // The first files this run opens after its setup are the count's connection and the
    // report: out of descriptors there, the open-file limit is what to change, not the
    // report's path (the object store's folders held open take 32 of them).
    let too_few_files = || {
        format!(
            "nothing was copied: the open-file limit ({fd_limit}) is too low for a restore; raise it (ulimit -n 1024, or LimitNOFILE= for a service) and run the same command"
        )
    };
    // The count reads on its own connection (the planner's thread owns `index`), opened
    // before the report says the copy begins: past that, every read of the source is made
    // by a thread the run can stop without (`CopyWork::held`). SQLite does not say why it
    // could not open the file: a file this process cannot open either says it ran out.
    let count_index = index
        .reopen()
        .map_err(|e| match std::fs::File::open("/dev/null") {
            Err(n) if n.raw_os_error() == Some(libc::EMFILE) => {
                anyhow::Error::from(e).context(too_few_files())
            }
            _ => e.into(),
        })?;
    // The report is written once before the first file, so a report path that cannot be
    // written stops the run here (exit 2, nothing copied), not after hours of copying.
    // Watched as the later ones (`StateFolder::write_report`): in the checkpoint folder (by
    // default), silent, it stops the run; in another folder, silent, the run goes on
    // without it, as when it falls silent later (said at the end).
    if !cfg.dry_run {
        let written = state.write_report(&report, &cfg.report_path);
        if state.lost() {
            return Err(state.stopped_before_copy().into());
        }
        if let Some(Err(e)) = written {
            let emfile = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.raw_os_error() == Some(libc::EMFILE))
            });
            return Err(e.context(if emfile {
                too_few_files()
            } else {
                format!(
                    "nothing was copied; pass --report with a file in a folder that can be written (default: {})",
                    cfg.state_dir.join("report.json").display()
                )
            }));
        }
    }
    // What DEST lies on, for the next run to find it there again: the mount this run
    // checked (`check_dest_on_same_mount`); making DEST inside it does not change it.
    let dest_on = crate::state::DestOn::of(&cfg.dest_fs).value();
    let (clock_ms, options, durability) =
        (dest_facts.clock_ms, plan.options().clone(), cfg.durability);
    state
        .before_copy(&mut ckpt, move |c| {
            c.begin_placing(clock_ms, options.include_trash)?;
            c.add_selection(&options)?;
            c.set_meta(crate::state::DEST_ON_KEY, &dest_on)?;
            // How this run ends is written at its end; until then no earlier run's end
            // stands for it (a run killed after one that lost its destination is not
            // "stopped: the destination changed" for `status`).
            c.set_meta(crate::state::LAST_END_KEY, "")?;
            // Only now: that this run began placing files is on disk whatever the
            // durability.
            if durability == Durability::None {
                c.trust_the_os()?;
            }
            Ok::<_, crate::state::StateError>(())
        })?
        .transpose()?;
    let mut report_failed = false;
    let copy_start = Instant::now();
    let mut touched = Touched::default();
    // Notes earlier runs kept for files they finished (newest per file): reported again
    // for each file this run finds already done, as it does not look at them again.
    let mut earlier_notes: HashMap<String, String> = match (ckpt.is_some(), &earlier) {
        (true, _) => state
            .before_copy(&mut ckpt, |c| c.earlier_notes())?
            .transpose()?
            .unwrap_or_default()
            .into_iter()
            .collect(),
        (false, Some(e)) => e.earlier_notes()?.into_iter().collect(),
        (false, None) => HashMap::new(),
    };
    // Folders the empty-folder pass did not make when the destination was full.
    let mut folders_left = 0u64;
    // Files an earlier run restored from an object of another length than the database
    // says (each recorded with that note): one whose object has the database's length now
    // (a later `ddrescue` pass over a failing disk, say) is copied again, not left as done.
    let noted: HashSet<String> = earlier_notes.keys().cloned().collect();

    // Files the workers get: those left, and those to look at first.
    let to_hand_out = if check_done { files_bound } else { left };
    let chunk_files = (to_hand_out / (threads as u64 * 8)).clamp(1, CHUNK_FILES) as usize;
    let (job_tx, job_rx) = bounded::<Vec<Job>>(threads * 2);
    let (res_tx, res_rx) = bounded::<Vec<Done>>(threads * 4);

    // Shared with the planner and the count, which are not scoped either: a source disk
    // that hangs while they read the index holds them in a call that nothing can end, and
    // the run stops without them (`CopyWork::held`).
    let plan = Arc::new(plan);
    let (done_keys, redo_keys) = (Arc::new(done_keys), Arc::new(redo_keys));
    // The files copied and adopted that the committer recorded: a run that stops before
    // recording the rest (DEST lost, the checkpoint folder silent, an error) says how many
    // it placed after the last commit (`Report::not_recorded`), which `status` does not
    // count.
    let recorded = [AtomicU64::new(0), AtomicU64::new(0)];
    // A panic (a bug) on one of the pipeline's threads is caught here only to be recorded
    // like an error below, then raised again: main ends the run with exit 101.
    let copied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::thread::scope(|s| -> anyhow::Result<()> {
            let producer_tx = res_tx.clone();
            let (plan_ref, work) = (Arc::clone(&plan), Arc::clone(&copying));
            let (done_ref, redo_ref) = (Arc::clone(&done_keys), Arc::clone(&redo_keys));
            // Not scoped: a source disk that hangs while it reads the index (or DEST, while
            // it looks at a file there) holds it in a call for good; the run then stops
            // without it (its clock, `CopyWork::planner`, says it is held).
            let producer = spawn_owned("mcr-planner", move || -> anyhow::Result<()> {
                // Files an earlier run restored from an object of another length, whose
                // object has the database's length now (see `noted`).
                let whole_now = |file: &PlannedFile| {
                    file.size_unusable.is_none()
                        && file
                            .content_id
                            .as_deref()
                            .and_then(|c| work.source.find_object_len(c).ok().flatten())
                            .is_some_and(|(_, len)| len == file.size)
                        // Not once more when the copy on DEST has that length already.
                        && std::fs::symlink_metadata(work.dest.join(&file.rel_path))
                            .map_or(true, |m| m.len() != file.size)
                };
                // Hands a chunk to the workers, waiting while they are busy (no call out
                // meanwhile); given up once the run stopped without them (workers left in a
                // call that a disk does not answer never take it, and hold the queue open).
                let hand_out = |mut chunk: Vec<Job>| {
                    work.mark(&work.planner, false);
                    loop {
                        match job_tx.send_timeout(chunk, Duration::from_millis(200)) {
                            Err(SendTimeoutError::Timeout(c))
                                if !work.left.load(Ordering::SeqCst) =>
                            {
                                chunk = c
                            }
                            _ => break,
                        }
                    }
                    work.mark(&work.planner, true);
                };
                let mut chunk: Vec<Job> = Vec::new();
                let mut chunk_bytes = 0u64;
                let mut settled: Vec<Done> = Vec::new();
                let mut settled_sent = Instant::now();
                // Folder by folder when there is real copying to do. The sort costs about 3 s at
                // 1.35M files and the order saves 7-20% of the copy, so a resume with less than
                // half left (the count of what is left is only a bound here: filtered files are
                // in it) reads in the database's order instead.
                let by_folder = left > 0 && left * 2 >= files_bound;
                // Reading: the next row, or what its file asks of the disks.
                work.mark(&work.planner, true);
                let streamed = plan_ref.for_each_file_by(&index, by_folder, |file| {
                    work.mark(&work.planner, true);
                    work.faults.maybe_panic_in("planner");
                    let mut recopy = false;
                    let mut look_first = false;
                    let quick = if file.skip.is_some() {
                        Some(Outcome::Filtered)
                    } else if done_ref.contains(&done_key(
                        &file.id,
                        &file.rel_path,
                        file.size,
                        file.mtime_ms,
                    )) {
                        recopy = noted.contains(&file.id) && whole_now(&file);
                        // Once stopping, not looked at: done as recorded, as without the look.
                        look_first = !recopy && check_done && !work.stopping();
                        (!recopy && !look_first).then_some(Outcome::AlreadyDone)
                    } else {
                        None
                    };
                    if look_first {
                        // Most of them are there: their sizes would only make chunks small.
                        chunk.push(Job::CheckFirst(file));
                        if chunk.len() >= chunk_files {
                            chunk_bytes = 0;
                            hand_out(std::mem::take(&mut chunk));
                        }
                    } else if let Some(outcome) = quick {
                        settled.push(Done::of(file, outcome));
                        if settled.len() >= SETTLED_CHUNK || settled_sent.elapsed() >= SETTLED_EVERY
                        {
                            let _ = producer_tx.send(std::mem::take(&mut settled));
                            settled_sent = Instant::now();
                        }
                    } else if !work.stopping() {
                        let replace = if recopy {
                            Some(Redo::Whole)
                        } else if !redo_ref.is_empty()
                            && redo_ref.contains(&crate::state::redo_key(&file.id, &file.rel_path))
                        {
                            Some(Redo::Marked)
                        } else {
                            None
                        };
                        chunk_bytes = chunk_bytes.saturating_add(file.size);
                        chunk.push(Job::Restore { file, replace });
                        if chunk.len() >= chunk_files || chunk_bytes >= CHUNK_BYTES {
                            chunk_bytes = 0;
                            // The send may wait on the copies: the files settled so far
                            // are reported first, not after the wait.
                            if !settled.is_empty() {
                                let _ = producer_tx.send(std::mem::take(&mut settled));
                                settled_sent = Instant::now();
                            }
                            hand_out(std::mem::take(&mut chunk));
                        }
                    }
                });
                work.mark(&work.planner, false);
                streamed?;
                if !chunk.is_empty() && !work.stopping() {
                    hand_out(chunk);
                }
                work.mark(&work.planner, false);
                if !settled.is_empty() {
                    let _ = producer_tx.send(settled);
                }
                Ok(())
            });
            // The workers are not scoped: one whose call a disk never answers is left behind
            // when the run stops on it (`CopyWork::held`). What they use is owned.
            let mut workers = Vec::with_capacity(threads);
            for worker in 0..threads {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                let work = Arc::clone(&copying);
                let spawned = std::thread::Builder::new()
                    .name(format!("mcr-copy-{worker}"))
                    .spawn(move || {
                    let moved = || work.moved(worker);
                    let ctx = &work.ctx(&moved);
                    let mut folders = copy::WorkerFolders::default();
                    // One file: its result, or None for one not processed.
                    let mut one = |job: Job| -> Option<Done> {
                            let (file, replace, was_gone) = match job {
                                Job::Restore { file, replace } => (file, replace, false),
                                Job::CheckFirst(file) => {
                                    // Any answer but "not there" (a permission, an I/O
                                    // error) leaves it done: a copy would only fail it. A
                                    // file reached through a symbolic link standing for one
                                    // of its folders is not there either, as `verify` and
                                    // `regen` say (the copy then fails it, listed).
                                    let gone = !work.stopping()
                                        && (work
                                            .dest_folders
                                            .blocker_of_file(ctx.dest, &file.rel_path)
                                            .is_some()
                                            || std::fs::symlink_metadata(
                                                ctx.dest.join(&file.rel_path),
                                            )
                                            .is_err_and(|e| {
                                                e.kind() == std::io::ErrorKind::NotFound
                                            }));
                                    if !gone {
                                        return Some(Done::of(file, Outcome::AlreadyDone));
                                    }
                                    (file, None, true)
                                }
                            };
                            if work.stopping() {
                                return None; // drain: not attempted, counted as not processed
                            }
                            let r = copy::restore_file_caught(
                                ctx,
                                &mut folders,
                                &file,
                                replace.is_some(),
                            );
                            let mut d = Done {
                                was_gone,
                                ..Done::of(file, Outcome::Copied)
                            };
                            match r {
                                Ok(Restored::Copied {
                                    bytes,
                                    size_mismatch,
                                    replaced,
                                }) => {
                                    if let (Some(c), true) = (&d.file.content_id, bytes > 0) {
                                        work.watch.read_fine(c);
                                    }
                                    d.bytes = bytes;
                                    if size_mismatch {
                                        d.lasting_note = true;
                                        d.note = Some(length_note(bytes, &d.file, "restored"));
                                    }
                                    match replaced {
                                        Some(Replaced::Leftover(left)) => {
                                            d.lasting_note = false;
                                            d.note = Some(left.note(d.file.size));
                                        }
                                        // Copied again as planned: noted so by the
                                        // bookkeeper, "copied again".
                                        Some(Replaced::Differing { .. })
                                            if replace == Some(Redo::Whole) => {}
                                        Some(Replaced::Differing { size, mtime_ms }) => {
                                            let by = match replace {
                                                Some(_) => ReplacedBy::Marked,
                                                None => ReplacedBy::Overwrite,
                                            };
                                            d.lasting_note = false;
                                            d.replaced = Some(by);
                                            d.note = Some(replaced_note(
                                                by,
                                                size,
                                                mtime_ms,
                                                ctx.dry_run,
                                            ));
                                        }
                                        None => {}
                                    }
                                }
                                Ok(Restored::Adopted { object_bytes }) => {
                                    d.outcome = Outcome::Adopted;
                                    if let Some(n) = object_bytes {
                                        d.lasting_note = true;
                                        d.note = Some(length_note(
                                        n,
                                        &d.file,
                                        "already on the destination with the object's length and date, kept",
                                    ));
                                    }
                                }
                                Ok(Restored::Redated { was_ms }) => {
                                    d.outcome = Outcome::Adopted;
                                    d.note = Some(format!(
                                    "already on the destination with the object's bytes but dated {} ({was_ms} ms): {}",
                                    crate::report::human_ms(was_ms),
                                    if ctx.dry_run {
                                        "would be given the planned date (dry run: not changed)"
                                    } else {
                                        "given the planned date, not copied"
                                    }
                                ));
                                }
                                Err(NotRestored::Missing(m)) => {
                                    d.outcome = Outcome::Missing;
                                    d.error = Some(m);
                                }
                                // Not processed: the run stopped while the file was retried.
                                Err(NotRestored::Abandoned) => return None,
                                // A failure that DEST lost explains (renamed, deleted, unmounted
                                // since the run began) is not the file's: not processed, left to
                                // the next run (nothing after the loss is recorded). Round 11
                                // listed every file of the window before the next commit's
                                // check as failed (2,433 in a trial; 15,745 when DEST was
                                // renamed and each file failed at once).
                                Err(NotRestored::Failed(m) | NotRestored::NoAnswer(m)) => {
                                    if work.dest_gone() {
                                        work.stop.store(true, Ordering::SeqCst);
                                        return None;
                                    }
                                    d.outcome = Outcome::Failed;
                                    d.error = Some(m);
                                }
                                // DEST full: the run stops, and the file is not processed
                                // (the next run, with room made, copies it), as are the
                                // other workers' files the full disk refused meanwhile: they
                                // were listed as failed (2 on a small tmpfs). A file larger
                                // than the whole filesystem it goes to is its own failure,
                                // listed: no room freed makes it fit, and stopping there
                                // would stop every later run at it.
                                Err(NotRestored::DestFull(m)) => {
                                    let at = ctx.dest.join(&d.file.rel_path);
                                    match copy::larger_than_its_disk(ctx.dest, &at, d.file.size) {
                                        Some(why) => {
                                            d.outcome = Outcome::Failed;
                                            d.error = Some(format!("{m}: {why}"));
                                        }
                                        None => {
                                            (work.full.lock().unwrap_or_else(|e| e.into_inner()))
                                                .get_or_insert(m);
                                            work.stop.store(true, Ordering::SeqCst);
                                            return None;
                                        }
                                    }
                                }
                                // Like a destination unmounted: the files since the last commit
                                // may not have reached the disk (an error made it read-only), so
                                // nothing more is recorded and the next run checks them.
                                // Its file is not processed either: the next run restores it.
                                Err(NotRestored::DestReadOnly(m)) => {
                                    lock_lost(&work.dest_lost)
                                        .get_or_insert_with(|| dest_read_only(&m));
                                    work.stop.store(true, Ordering::SeqCst);
                                    return None;
                                }
                            }
                            Some(d)
                    };
                    for chunk in rx {
                        work.faults.maybe_panic_in("worker");
                        let mut results = Vec::with_capacity(chunk.len());
                        for job in chunk {
                            work.busy(worker, Some(job.file()));
                            results.extend(one(job));
                            work.busy(worker, None);
                        }
                        if tx.send(results).is_err() {
                            break;
                        }
                    }
                });
                // The message std's own spawns give: `main` tells the user which limit.
                workers.push(spawned.expect("failed to spawn thread"));
            }
            drop(res_tx);
            drop(job_rx);

            // Group commits run on their own thread: a `syncfs` can take seconds, and if the
            // bookkeeper waited for it, the result queue would fill and every worker would stall
            // behind the flush (measured: 2.2 s of a 3.6 s restore on a fresh disk). One batch
            // may wait while another is flushed, so memory stays bounded. A batch reaches the
            // committer only after its files were renamed, and is recorded only after a
            // `syncfs` that started later, so a record is still never ahead of the disk.
            let (batch_tx, batch_rx) = bounded::<Vec<Record>>(1);
            let selected_count_ref = &selected_count;
            let ckpt_ref = &mut ckpt;
            let (dest_sync, faults, commits) = (&dest_sync, &faults, &commits);
            let (dest_lost_ref, stop_ref, watch_ref) = (&dest_lost, &stop_local, &watch);
            let (state_ref, recorded_ref) = (&state, &recorded);
            let committer = spawn_named(
                s,
                "mcr-committer",
                move || -> anyhow::Result<(Duration, Duration)> {
                    let (mut flush, mut write) = (Duration::ZERO, Duration::ZERO);
                    let mut count_written = false;
                    for batch in batch_rx {
                        faults.maybe_panic_in("committer");
                        if ckpt_ref.is_none() {
                            continue; // none, or left in a write its folder did not answer
                        }
                        if lock_lost(dest_lost_ref).is_some() {
                            continue; // nothing more is recorded
                        }
                        // Adopted files too: a killed run may have placed them without flushing.
                        let placed =
                            |r: &Record| matches!(r.outcome, Outcome::Copied | Outcome::Adopted);
                        let (flush_now, sync) = (batch.iter().any(placed), Arc::clone(dest_sync));
                        // DEST looked at, then flushed, on a thread of its own: on a share
                        // that stops answering either call may never return. DEST not
                        // answering a probe then either, nothing more is recorded (and
                        // nothing flushed: that call would hang too).
                        let dest = cfg.dest.clone();
                        let looked = dest_call(
                            move || -> Result<anyhow::Result<Duration>, Option<std::io::Error>> {
                                match (dest_id, dest_id.map(|_| folder_identity_settled(&dest))) {
                                    (Some(id), Some(Ok(now))) if now == id => {}
                                    (_, Some(now)) => return Err(now.err()),
                                    (_, None) => {}
                                }
                                let t = Instant::now();
                                for (path, fd) in sync.iter().filter(|_| flush_now) {
                                    if let Err(e) = rustix::fs::syncfs(fd) {
                                        return Ok(Err(anyhow::Error::from(e).context(format!(
                                            "cannot flush the destination {}",
                                            path.display()
                                        ))));
                                    }
                                }
                                Ok(Ok(t.elapsed()))
                            },
                            &|| watch_ref.dest_answers(),
                        );
                        match looked {
                            Some(Ok(flushed)) => flush += flushed?,
                            Some(Err(now)) => {
                                lock_lost(dest_lost_ref).get_or_insert_with(|| dest_lost_as(now));
                                stop_ref.store(true, Ordering::SeqCst);
                                continue;
                            }
                            None => continue, // lost as unreachable by the probe
                        }
                        // Recorded on a thread of its own, as DEST's flush is: the
                        // checkpoint folder may be on a share that stops answering
                        // (`StateFolder`). Silent, nothing more is recorded and the run
                        // stops: the checkpoint stays in the call left behind.
                        let t = Instant::now();
                        let selected = selected_count_ref.get().copied().filter(|_| !count_written);
                        let of = |o: Outcome| batch.iter().filter(|r| r.outcome == o).count();
                        let in_batch = [of(Outcome::Copied), of(Outcome::Adopted)];
                        let recorded = state_ref.with_checkpoint(ckpt_ref, move |c| {
                            c.record(&batch)?;
                            if let Some(n) = selected {
                                c.set_meta(crate::state::SELECTED_KEY, &n.to_string())?;
                            }
                            Ok::<_, crate::state::StateError>(())
                        });
                        match recorded {
                            Some(done) => done?,
                            None => continue,
                        }
                        for (n, in_batch) in recorded_ref.iter().zip(in_batch) {
                            n.fetch_add(in_batch as u64, Ordering::SeqCst);
                        }
                        count_written |= selected.is_some();
                        write += t.elapsed();
                        if let Some(n) = faults.abort_after_commits {
                            if commits.fetch_add(1, Ordering::SeqCst) + 1 >= n {
                                // Simulates a crash right after a checkpoint commit.
                                std::process::abort();
                            }
                        }
                    }
                    Ok((flush, write))
                },
            );

            // The count of what there is to do is a full pass over the database. It runs on its
            // own thread, beside the planner's sort and the first copies: were the bookkeeper
            // to count first, the result queue would fill and stall every worker behind the
            // count (on a resume, which streams without a sort, the whole run: count, then
            // stream). Until it is known, results are counted but no progress is shown.
            // Not scoped, as the planner: a source disk that hangs while it counts holds it
            // in a call for good (its clock, `CopyWork::count`, says it is held).
            let count_delay = Duration::from_millis(faults.count_delay_ms);
            let (count_plan, count_done) = (Arc::clone(&plan), Arc::clone(&done_keys));
            let work = Arc::clone(&copying);
            let count = spawn_owned("mcr-count", move || -> anyhow::Result<PlanTotals> {
                work.mark(&work.count, true);
                std::thread::sleep(count_delay);
                work.faults.maybe_panic_in("count");
                let done_before = |id: &str, path: &str, size: u64, mtime: Option<i64>| {
                    !count_done.is_empty() && count_done.contains(&done_key(id, path, size, mtime))
                };
                let counted = count_plan.totals_knowing(&count_index, &done_before);
                work.mark(&work.count, false);
                Ok(counted?)
            });
            let mut count = Some(count);

            // Bookkeeping: this thread alone counts and reports, and hands batches to the
            // committer. It owns the result queue: if it stops on an error, the queue closes and
            // the workers stop instead of blocking on it.
            let res_rx = res_rx;
            let mut bookkeeping = || -> anyhow::Result<()> {
                // Takes the count once it is done, then shows the start line: every total is
                // known before the first progress line.
                let mut learn_totals =
                    |snap: &mut Snapshot, report: &mut Report, ui: &mut dyn Listener| {
                        match count.take() {
                            Some(c) if c.is_finished() => {
                                let totals = c
                                    .join()
                                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
                                    .context("cannot count the files to restore")?;
                                report.set_totals(&totals);
                                snap.set_totals(&totals);
                                // A selection's count would set "193 of 4" (the records
                                // cover every run): the whole restore's only.
                                if !plan.options().narrowed() {
                                    let _ = selected_count.set(totals.selected_files);
                                }
                                ui.started(report, fd_limit);
                            }
                            pending => count = pending,
                        }
                        anyhow::Ok(count.is_none())
                    };
                let mut batch: Vec<Record> = Vec::new();
                let mut next_commit = COMMIT_FILES;
                let mut last_commit = Instant::now();
                let commit_every = Duration::from_millis(faults.commit_ms.unwrap_or(2000));
                // Written as soon as the totals are known, then every 15 s: a run killed in its
                // first seconds leaves the totals, not the zeros of the report written before
                // the first file.
                let mut last_report: Option<Instant> = None;
                // When the disks were last probed because no call came back.
                let mut probed: Option<Instant> = None;
                // Calls out (files, the planner's read of the index, the count) and none
                // back for `NO_ANSWER`: the disks are probed, and again after as long while
                // that lasts (a big file over a slow link is no hang: while the disks
                // answer, the copy goes on, and the files waited for are said, once a
                // probe, so that the run is never silent). A source disk that does not
                // answer is waited for up to the patience (a failing disk retrying a bad
                // sector answers nothing for minutes, then fails that read and goes on),
                // said once a probe and probed again at once (a probe without an answer
                // took `NO_ANSWER` itself). True: a disk does not answer for good, and the
                // run stops as on a lost DEST or a stalled source, without the threads
                // still in a call (`CopyWork::left`): nothing can end it, and they cannot
                // be joined.
                let mut stop_if_held = |ui: &mut dyn Listener| -> bool {
                    let due = probed.is_none_or(|p| p.elapsed() >= NO_ANSWER);
                    let Some(quiet_since) = copying.held().filter(|_| due) else {
                        return false;
                    };
                    match watch.disks_answer_now(quiet_since) {
                        Answer::No => {
                            copying.left.store(true, Ordering::SeqCst);
                            return true;
                        }
                        Answer::Waiting(probe_read) => {
                            let held = copying.held_files();
                            let reading = match held.first() {
                                Some(HeldFile {
                                    object: Some(o), ..
                                }) => format!(
                                    "reading {} for {}",
                                    o.display(),
                                    held_files_text(&held)
                                ),
                                _ => probe_read,
                            };
                            ui.waiting(&format!(
                                "the source disk has not answered for {} ({reading}); a failing disk can take minutes on a bad sector: waiting up to {} before stopping (`dmesg` shows the disk's errors)",
                                span(quiet_since.elapsed()),
                                span(watch.patience)
                            ));
                            probed = None;
                        }
                        Answer::Yes => {
                            let held = copying.held_files();
                            if !held.is_empty() {
                                ui.waiting(&format!(
                                    "no file came back for {}: waiting for {}, while the disks answer (a large file over a slow link, or a call that does not return: a filesystem mounted inside DEST, one object the source disk is slow on); if it does not move, see `dmesg` and that file's folders",
                                    span(quiet_since.elapsed()),
                                    held_files_text(&held)
                                ));
                            }
                            probed = Some(Instant::now());
                        }
                    }
                    false
                };
                // Hands the batch to the committer. While it is busy flushing the previous one,
                // the batch keeps growing instead (waiting here would fill the result queue and
                // stall every worker behind the flush), up to a bound, or when `wait`ing at the
                // end. False once the committer has stopped (on an error, which its join reports).
                let commit = |batch: &mut Vec<Record>, wait: bool| -> bool {
                    if batch.is_empty() {
                        return true;
                    }
                    if wait || batch.len() >= COMMIT_MAX_PENDING {
                        return batch_tx.send(std::mem::take(batch)).is_ok();
                    }
                    match batch_tx.try_send(std::mem::take(batch)) {
                        Ok(()) => true,
                        Err(TrySendError::Full(b)) => {
                            *batch = b;
                            true
                        }
                        Err(TrySendError::Disconnected(_)) => false,
                    }
                };
                loop {
                    match res_rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(results) => {
                            faults.maybe_panic_in("bookkeeper");
                            // The time the outcomes are recorded at (the rates start there).
                            snap.elapsed = copy_start.elapsed();
                            for mut d in results {
                                if d.outcome == Outcome::AlreadyDone && !earlier_notes.is_empty() {
                                    d.note = earlier_notes.remove(&d.file.id);
                                }
                                // Kept in the record, so it replaces the earlier run's note.
                                if d.outcome == Outcome::Copied
                                    && d.note.is_none()
                                    && earlier_notes.remove(&d.file.id).is_some()
                                {
                                    d.lasting_note = true;
                                    d.note = Some(format!(
                                    "copied again: its object now has the {} bytes the database says (an earlier run had restored it from an object of another length)",
                                    d.file.size
                                ));
                                }
                                match d.replaced {
                                    Some(ReplacedBy::Overwrite) => report.replaced_overwrite += 1,
                                    Some(ReplacedBy::Marked) => report.replaced_marked += 1,
                                    None => {}
                                }
                                if d.was_gone {
                                    report.restored_again += 1;
                                    snap.record_was_done(d.file.size);
                                    if d.note.is_none() {
                                        let again = match d.outcome {
                                            Outcome::Copied | Outcome::Adopted if cfg.dry_run => {
                                                ": would be restored again (dry run)"
                                            }
                                            Outcome::Copied | Outcome::Adopted => {
                                                ": restored again"
                                            }
                                            _ => "",
                                        };
                                        d.note = Some(format!(
                                            "recorded as restored by an earlier run, but not on the destination{again}"
                                        ));
                                    }
                                }
                                if d.outcome.is_logged() {
                                    if let Some((dir, _)) = d.file.rel_path.rsplit_once('/') {
                                        touched.insert(dir);
                                    }
                                }
                                if d.file.skip.is_none() {
                                    if let Some(orig) = &d.file.renamed_from {
                                        report.add_rename(orig, &d.file.rel_path);
                                    }
                                }
                                snap.record(d.outcome, d.file.size, d.bytes);
                                if let Some(e) = &d.error {
                                    report.problems.push(Problem {
                                        id: d.file.id.clone(),
                                        path: d.file.rel_path.clone(),
                                        outcome: d.outcome,
                                        reason: e.clone(),
                                    });
                                }
                                if let Some(n) = &d.note {
                                    report.notes.push(Problem {
                                        id: d.file.id.clone(),
                                        path: d.file.rel_path.clone(),
                                        outcome: d.outcome,
                                        reason: n.clone(),
                                    });
                                }
                                if d.file.skip.is_some() {
                                    report.count_skip(d.file.skip);
                                }
                                if d.file.skip.is_none() {
                                    report.structure_problems.extend(d.file.problems());
                                }
                                // A resume's already-done files stay out of the batches: a
                                // million of them would only be carried to the committer. A done
                                // file's note is kept in its record, for later runs' reports.
                                if d.outcome.is_logged() {
                                    batch.push(Record {
                                        id: d.file.id,
                                        rel_path: d.file.rel_path,
                                        size: d.file.size,
                                        mtime_ms: d.file.mtime_ms,
                                        outcome: d.outcome,
                                        error: d.error.or(d.note.filter(|_| d.lasting_note)),
                                    });
                                }
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    if stop_if_held(&mut *ui) {
                        break;
                    }
                    if batch.len() >= next_commit || last_commit.elapsed() >= commit_every {
                        if !commit(&mut batch, false) {
                            // The committer stopped (its join says why): nothing more can be
                            // recorded, so nothing more is handed out.
                            stop_local.store(true, Ordering::SeqCst);
                            return Ok(());
                        }
                        next_commit = batch.len() + COMMIT_FILES;
                        last_commit = Instant::now();
                    }
                    if !learn_totals(&mut snap, &mut report, &mut *ui)? {
                        continue;
                    }
                    snap.elapsed = copy_start.elapsed();
                    ui.progress(&snap);
                    if !cfg.dry_run
                        && last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(15))
                    {
                        report.update(&snap, false);
                        // Not worth stopping the restore for: said once, at the end. Its
                        // folder silent (the state folder's, by default), it is not
                        // written again, said at the end; the state folder's stops the run.
                        report_failed |= state
                            .write_report(&report, &cfg.report_path)
                            .is_some_and(|written| written.is_err());
                        last_report = Some(Instant::now());
                    }
                }
                commit(&mut batch, true);
                // The count may end after the last file (a resume streams without a sort):
                // waited for as the copy's calls are. A source disk that hangs while it
                // counts stops the run without it; so does one the copy stopped on.
                let counted = loop {
                    if learn_totals(&mut snap, &mut report, &mut *ui)? {
                        break true;
                    }
                    if copying.left.load(Ordering::SeqCst) || stop_if_held(&mut *ui) {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                // Left behind: no total says what is left, which the summary says rather
                // than "0 files planned".
                report.uncounted = !counted;
                Ok(())
            };
            let kept = bookkeeping();
            // Whatever happened, nobody sends batches any more, and a stopped bookkeeper
            // releases the workers.
            drop(batch_tx);
            if kept.is_err() {
                stop_local.store(true, Ordering::SeqCst);
            }
            drop(res_rx);
            // A thread's panic is a bug: raised again here, it ends the run with exit 101 and
            // the advice to run again (main); the checkpoint holds what was committed. Joined
            // one by one so its own message is recorded, not the scope's "a scoped thread
            // panicked" (the workers are done: their results' queue is closed).
            for w in workers {
                // Left behind: still in a call that a disk does not answer.
                if copying.left.load(Ordering::SeqCst) && !w.is_finished() {
                    continue;
                }
                w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
            let committed = committer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            kept?;
            let (flush_time, record_time) = committed?;
            report
                .phases
                .insert("checkpoint_flush".into(), flush_time.as_secs_f64());
            report
                .phases
                .insert("checkpoint_write".into(), record_time.as_secs_f64());
            // Left behind, as the workers: still in a call that a disk does not answer.
            if !copying.left.load(Ordering::SeqCst) || producer.is_finished() {
                producer
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
            }
            Ok(())
        })
    }));
    snap.elapsed = copy_start.elapsed();
    state.leave_if_lost(&mut ckpt);
    // A dry run records nothing, and has nothing to record.
    if !cfg.dry_run {
        let [copied, adopted] = recorded.map(|n| n.load(Ordering::SeqCst));
        report.not_recorded = crate::report::NotRecorded {
            copied: snap.count(Outcome::Copied).saturating_sub(copied),
            adopted: snap.count(Outcome::Adopted).saturating_sub(adopted),
        };
    }
    // Why DEST was found full, if it was: the run stopped there.
    let mut dest_full = copying
        .full
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let copied = match copied {
        Ok(Err(e)) => {
            record_stop(&mut report, &snap, cfg, &mut ckpt, &state, Stop::Error(&e));
            Err(e)
        }
        Err(p) => panic_recorded(&mut report, &snap, cfg, &mut ckpt, &state, p),
        Ok(Ok(())) => Ok(()),
    };
    copied?;
    report
        .phases
        .insert("copy".into(), snap.elapsed.as_secs_f64());

    let interrupted = interrupted();
    // The folder passes below may find DEST lost too: read again after them.
    let lost_cell = &dest_lost;
    let dest_lost = dest_lost.lock().unwrap_or_else(|e| e.into_inner()).take();
    // One stop, one message: a lost destination explains the failures a probe met too.
    let stalled = match watch.lost.get() {
        Some(Unanswered::Source(why)) if dest_lost.is_none() => Some(stalled_text(
            why,
            watch.calls_held.get().copied(),
            watch.patience,
        )),
        _ => None,
    };
    // The checkpoint folder silent stopped the run: no folder pass either, the folders'
    // dates are owed. One stop, one message: a lost DEST (on the same share, most likely)
    // says that nothing more was recorded too.
    let stalled =
        stalled.or_else(|| (dest_lost.is_none() && state.lost()).then(|| state.stop_text()));
    // Folder dates last, and only where this run wrote something (creating a file changes
    // its folder's mtime), or all of them when an earlier run stopped before its folder dates;
    // a resume with nothing to do touches no folder. Not after a stop (full or lost
    // destination): the next run owes them. A signal during this phase stops it too (on a
    // network destination it is one round trip per folder: minutes for a real device's
    // 344K folders); the dates stay owed to the next run. So does DEST lost during it.
    // What the passes' threads share ([`FolderWork`]), owned: a thread whose call DEST never
    // answers is left behind when its pass stops (`in_parallel`), and may outlive the run.
    let work = Arc::new(FolderWork {
        dest: cfg.dest.clone(),
        dest_id,
        dest_lost: Arc::clone(lost_cell),
        dirs: Arc::clone(&dirs),
        faults: Arc::clone(&faults),
        cut: AtomicBool::new(false),
        lost: AtomicBool::new(false),
        full: AtomicBool::new(false),
    });
    // A call of a pass that has not returned for `NO_ANSWER`: DEST is probed as in the copy
    // (`DiskWatch`); not answering, it is lost like a DEST whose connection dropped (one
    // stop, one message, the same report and exit code) and the pass stops there.
    let dest_answers = || watch.dest_answers();
    let mut lost_in_passes = None;
    // The folders a lost DEST left to the next run, for its message.
    let (mut not_made, mut not_dated) = (0u64, 0u64);
    if !cfg.dry_run
        && !interrupted
        && dest_full.is_none()
        && dest_lost.is_none()
        && stalled.is_none()
    {
        let t = Instant::now();
        for d in dirs.created() {
            if let Ok(rel) = d.strip_prefix(&cfg.dest) {
                let rel = rel.to_string_lossy();
                if let Some((parent, _)) = rel.rsplit_once('/') {
                    touched.insert(parent);
                }
                touched.insert(&rel);
            }
        }
        // Empty folders are restored too, once per plan: the checkpoint remembers that this
        // selection's folders exist, so a resume does not stat every folder again.
        let folders: Arc<[PlannedFolder]> = plan.folders_deepest_first().into();
        let signature = format!("{:?}", plan.signature());
        let folders_known = state
            .with_checkpoint(&mut ckpt, |c| c.meta("folders_created"))
            .transpose()?
            .flatten()
            .is_some_and(|made| made == signature);
        if !folders_known && plan.options().limit.is_none() {
            // Folders this run already made or saw need no check; the others are checked in
            // parallel (each is a round trip on a network destination).
            let unknown: Arc<[usize]> = (0..folders.len())
                .filter(|&i| !dirs.knows(&cfg.dest.join(&folders[i].rel_path)))
                .collect();
            // A folder that cannot be made (a file in the way, say) is listed in the report
            // like a failed file; the others are still made and dated. A full or lost
            // destination stops the pass as it stops the copy (`FolderWork::make`): the
            // same stop, message and exit code, the folders not made left to the next run
            // (a lost DEST's failures are not the folders').
            let (w, all) = (Arc::clone(&work), Arc::clone(&folders));
            let made = in_parallel(
                Arc::clone(&unknown),
                threads,
                "making folders",
                &mut *ui,
                &dest_answers,
                move |&i| w.make(&all[i]),
            );
            work.note_lost();
            for (&i, made) in unknown.iter().zip(made) {
                let f = &folders[i];
                let to_make = || !dirs.knows(&cfg.dest.join(&f.rel_path));
                // Not done: left when the pass stopped on a DEST that does not answer.
                match made.unwrap_or(Ok(None)) {
                    Ok(Some(true)) => {
                        touched.insert(&f.rel_path);
                        if let Some((parent, _)) = f.rel_path.rsplit_once('/') {
                            touched.insert(parent);
                        }
                    }
                    Ok(Some(false)) => {}
                    Ok(None) => {
                        let left = u64::from(to_make());
                        folders_left += left;
                        not_made += left;
                    }
                    Err(FolderNotMade::DestFull(m)) => {
                        dest_full.get_or_insert(m);
                        folders_left += u64::from(to_make());
                    }
                    Err(FolderNotMade::Failed(m) | FolderNotMade::DestReadOnly(m)) => {
                        report.folders_failed.push(crate::report::FolderFailure {
                            path: f.rel_path.clone(),
                            error: m,
                        })
                    }
                }
            }
            // Remembered only once all exist, so the next run tries the failed ones again.
            let all_made = report.folders_failed.is_empty()
                && dest_full.is_none()
                && !work.lost.load(Ordering::SeqCst)
                && !work.cut.load(Ordering::SeqCst);
            if all_made {
                let signature = signature.clone();
                state
                    .with_checkpoint(&mut ckpt, move |c| {
                        c.set_meta("folders_created", &signature)
                    })
                    .transpose()?;
            }
        }
        // Dating a folder does not change its parent's mtime, so the folders can be dated in
        // any order and in parallel: on a network destination each one is a round trip, and
        // done one by one they were a visible tail after the copy (docs/PERFORMANCE.md).
        // In path order, so neighbours in the tree are dated together (sorted as strings:
        // sorting full paths component by component took 0.3 s at 337K folders).
        // A full or lost destination stopped the folders: their dates are owed to the next
        // run, which makes the rest.
        let mut dated: Vec<(usize, i64)> = (0..folders.len())
            .filter(|_| dest_full.is_none())
            .filter(|&i| dates_owed || touched.contains(&folders[i].rel_path))
            .filter_map(|i| folders[i].mtime_ms.map(|ms| (i, ms)))
            .collect();
        if work.note_lost() {
            not_dated = dated.len() as u64;
            dated.clear();
        }
        dated.sort_unstable_by(|a, b| folders[a.0].rel_path.cmp(&folders[b.0].rel_path));
        let (w, all) = (Arc::clone(&work), Arc::clone(&folders));
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_parallel(
                dated.into(),
                threads,
                "setting folder dates",
                &mut *ui,
                &dest_answers,
                move |&(i, ms)| w.date(&all[i].rel_path, ms),
            )
        }))
        .unwrap_or_else(|p| panic_recorded(&mut report, &snap, cfg, &mut ckpt, &state, p));
        // Some(failed), or None for a folder left to the next run (a signal, DEST lost).
        let failed: Vec<Option<bool>> = failed.into_iter().map(Option::flatten).collect();
        report.folder_dates_failed = failed.iter().filter(|f| **f == Some(true)).count() as u64;
        if work.note_lost() {
            not_dated += failed.iter().filter(|f| f.is_none()).count() as u64;
        }
        // Paid only by a run over every folder: one with --only, --user or --limit dated its
        // selection's. Folders whose date could not be set are in the report; they do not
        // keep every later run dating all folders again.
        if work.cut.load(Ordering::SeqCst) {
            report.warnings.push(
                "stopped while setting the folders' dates (the files are all handled): some folders keep the time of the restore for now; run the same command again to set them".into(),
            );
        } else if let (false, None, false) = (
            plan.options().narrowed(),
            &dest_full,
            work.lost.load(Ordering::SeqCst),
        ) {
            state
                .with_checkpoint(&mut ckpt, |c| c.set_meta(FOLDER_DATES_OWED, "0"))
                .transpose()?;
        }
        report
            .phases
            .insert("folder_dates".into(), t.elapsed().as_secs_f64());
        lost_in_passes = lost_cell.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
    // Where the run was when DEST was lost: in the copy, or in the folder passes after it.
    let dest_lost = match (dest_lost, lost_in_passes) {
        (Some(lost), _) => Some((lost, LostDuring::Files)),
        (None, Some(lost)) => Some((
            lost,
            LostDuring::Folders {
                not_made,
                not_dated,
            },
        )),
        (None, None) => None,
    };
    // A signal from here on stops nothing: the run finished (and the signal is told so).
    let interrupted = crate::signals::settle() || work.cut.load(Ordering::SeqCst);
    let how = if interrupted {
        "interrupted"
    } else if dest_full.is_some() {
        "stopped: the destination is full"
    } else if let Some((lost, _)) = &dest_lost {
        lost.loss.how()
    } else if stalled.is_some() {
        "stopped: a disk stopped answering"
    } else {
        "finished"
    };
    // Written on a thread of its own, watched as the commits are (`StateFolder`): the
    // checkpoint folder silent, nothing of it is written and the run says so.
    // For `status`: how the run ended, and how many files there are to restore. The whole
    // restore's count only: the checkpoint's records cover every run, so a selection's
    // count would set "193 of 4".
    let selected = (report.totals.files > 0 && !plan.options().narrowed())
        .then_some(report.totals.selected_files);
    // The Trash an earlier run restored with --include-trash is not among them.
    let left_out = match plan.trash_path() {
        Some(t) if !plan.options().include_trash => format!("{t}/"),
        _ => String::new(),
    };
    let include_trash = plan.options().include_trash;
    // Every file looked at, none failed (a failed comparison leaves its file as unsure
    // as it was): nothing a crash left is unsure any more.
    let settle_unsure =
        how == "finished" && !plan.options().narrowed() && snap.count(Outcome::Failed) == 0;
    // Every file recorded as done was looked for: none is gone unnoticed any more.
    let all_looked_for = how == "finished" && !plan.options().narrowed();
    // After a destination lost in the copy the files placed since the last commit were
    // neither flushed nor recorded: the next run looks at them as after a crash. Lost in
    // the folder passes, every file was flushed (`--durability batch` or `file`) and
    // recorded: the run ended as cleanly as one interrupted there (with `none` nothing
    // was flushed, and a DEST that failed may have lost what it held in memory).
    // Left behind in a call a disk did not answer, a worker may still place a file
    // (complete, under its final name) once the call returns: the next run checks.
    let clean = match &dest_lost {
        None => !copying.left.load(Ordering::SeqCst),
        Some((_, LostDuring::Files)) => false,
        Some((_, LostDuring::Folders { .. })) => cfg.durability != Durability::None,
    };
    state
        .with_checkpoint(&mut ckpt, move |c| {
            c.set_meta(crate::state::LAST_END_KEY, how)?;
            if let Some(n) = selected {
                c.set_meta(crate::state::SELECTED_KEY, &n.to_string())?;
                c.set_meta(crate::state::LEFT_OUT_KEY, &left_out)?;
            }
            if settle_unsure {
                c.settle_unsure(include_trash)?;
            }
            if all_looked_for {
                c.set_meta(LOOK_FOR_DONE, "0")?;
            }
            c.end_run(clean)
        })
        .transpose()?;
    report.interrupted = interrupted;
    report.dest_read_only = matches!(&dest_lost, Some((l, _)) if l.loss == DestLoss::ReadOnly);
    report.dest_unreachable = matches!(&dest_lost, Some((l, _)) if l.loss == DestLoss::Unreachable);
    report.dest_lost =
        dest_lost.map(|(lost, during)| lost.text(&cfg.dest, &cfg.dest_fs.mount_point, during));
    // The checkpoint folder may have stopped answering after the copy too.
    report.stalled =
        stalled.or_else(|| (report.dest_lost.is_none() && state.lost()).then(|| state.stop_text()));
    report.dest_full = dest_full.map(|m| {
        let files_left =
            snap.total_files.saturating_sub(snap.settled_files()) + snap.count(Outcome::Failed);
        let room = Room::of(&cfg.dest);
        let advice = room.what_to_free(snap.bytes_left(), files_left, folders_left);
        format!("{m}. {advice}, then run the same command again")
    });
    report.update(&snap, true);
    // The whole run, as the user waited for it: the plan, `--threads auto`'s measurement and
    // the folders' dates too (the snapshot's time is the copy's, which the rate is of).
    report.duration_s = started.elapsed().as_secs_f64();
    if !cfg.dry_run && report.bytes_copied > 0 {
        report.copy_method = Some(copying.copier.method());
        report.temp_files = Some(if copying.unnamed_temps && !faults.named_temps {
            "unnamed"
        } else {
            "named"
        });
    }
    if !cfg.plan.only.is_empty() && report.totals.selected_files == 0 && !interrupted {
        report.warnings.push(format!(
            "--only {} selected no file (paths are case-sensitive and start at the top of DEST; `plan` lists them)",
            cfg.plan.only.join(", ")
        ));
    }
    let fallbacks = copying.named_fallbacks.load(Ordering::Relaxed);
    if fallbacks > 0 {
        report.warnings.push(format!(
            "{} files went to folders on another filesystem mounted inside {}, which has no unnamed files: they were written under hidden temporary names (.mcr-*.part) and renamed into place. Names on that filesystem follow the rules chosen for {} ({:?}); files it refuses are listed as failed",
            count(fallbacks),
            cfg.dest.display(),
            cfg.dest.display(),
            cfg.plan.policy
        ));
    }
    if !cfg.dry_run {
        let written = state.write_report(&report, &cfg.report_path);
        if written.is_none() {
            report.warnings.push(format!(
                "the report {} was not written: its folder does not answer (this summary is the only report of the run)",
                cfg.report_path.display()
            ));
            // The summary's last line does not point at it.
            report.report_path = None;
        } else if let Some(Err(e)) = written {
            report
                .warnings
                .push(format!("{e:#}: this summary is the only report of the run"));
        } else if report_failed {
            report.warnings.push(format!(
                "the report {} could not be updated during the run (it is complete now)",
                cfg.report_path.display()
            ));
        }
    }
    state.leave_if_lost(&mut ckpt);
    ui.finished(&report);
    Ok(report)
}

/// The folders (restored paths) this run wrote into, whose dates are set at the end. Kept as
/// xxh3-128 hashes of the path, 16 bytes a folder, and the previous one is remembered:
/// results come folder by folder, and hashing every file's folder path with SipHash into a
/// set of strings was a tenth of the main thread's work on small files.
#[derive(Default)]
struct Touched {
    set: HashSet<u128, KeyHashing>,
    last: Option<u128>,
}

impl Touched {
    fn insert(&mut self, rel: &str) {
        let key = path_key(rel.as_bytes());
        if self.last != Some(key) {
            self.set.insert(key);
            self.last = Some(key);
        }
    }

    fn contains(&self, rel: &str) -> bool {
        self.set.contains(&path_key(rel.as_bytes()))
    }
}

/// Why a run stopped after copying began, short of its end.
enum Stop<'a> {
    Error(&'a anyhow::Error),
    /// A panic's payload: a bug.
    Panic(&'a (dyn std::any::Any + Send)),
}

/// The sentence on space for a run stopped by a full destination, and how many bytes it
/// asks to free (0 when it gives no figure). What is still to restore is the files' bytes
/// (`file_bytes`) and the folders not made yet, each of which takes at least one `block`
/// of the destination's filesystem: a disk filling in the empty-folder pass, after the
/// last file, said "about 0 B is still to restore: free at least 0 B more". When the
/// figures fit in what the destination says is free, they cannot explain the stop, and
/// the sentence asks to free some space without a figure: a filesystem keeps part of its
/// free space for itself, and a user's quota (EDQUOT, a NAS share) can be below it.
fn space_still_needed(free: u64, file_bytes: u64, folders: u64, block: u64) -> (String, u64) {
    use crate::report::{human_bytes, plural};
    let folder_bytes = folders.saturating_mul(block);
    let short = file_bytes.saturating_add(folder_bytes).saturating_sub(free);
    let left = if folders == 0 {
        format!("about {} is", human_bytes(file_bytes))
    } else {
        format!(
            "about {} of files and {} (about {}) are",
            human_bytes(file_bytes),
            plural(folders, "folder", "folders"),
            human_bytes(folder_bytes)
        )
    };
    let ask = if short > 0 {
        format!("free at least {} more", human_bytes(short))
    } else {
        "free some space there, or have your quota there raised (by these figures it fits, but a filesystem keeps part of its free space for itself, and a user's quota on a NAS can be smaller than what is free)".to_string()
    };
    (
        format!(
            "The destination has {} free and {left} still to restore: {ask}",
            human_bytes(free)
        ),
        short,
    )
}

/// What a destination has room for: free bytes, its block size, and its free and total
/// inodes (`None` where its filesystem does not count them: some network filesystems).
#[derive(Debug, Clone, Copy, Default)]
pub struct Room {
    pub free_bytes: u64,
    pub block: u64,
    pub inodes: Option<(u64, u64)>,
}

impl Room {
    /// `statvfs` of `dest`, or of its nearest folder that exists (a DEST that could not be
    /// made): all 0 where none can be read. Inodes as [`crate::fsinfo::inodes`] counts them.
    pub fn of(dest: &Path) -> Room {
        let fs = dest.ancestors().find_map(|p| rustix::fs::statvfs(p).ok());
        fs.map_or(Room::default(), |s| Room {
            free_bytes: s.f_bavail.saturating_mul(s.f_frsize),
            block: s.f_frsize,
            inodes: crate::fsinfo::inodes(&s),
        })
    }

    /// No inode left: a file or folder cannot be made whatever the free bytes.
    pub fn out_of_inodes(&self) -> bool {
        matches!(self.inodes, Some((0, _)))
    }

    /// What a full destination is, for messages: out of inodes, or full.
    pub fn full_word(&self) -> &'static str {
        match self.out_of_inodes() {
            true => "is out of inodes",
            false => "is full",
        }
    }

    /// What to free for `file_bytes` in `files` files and `folders` folders still to
    /// restore: the inodes where fewer are free than items left, else the bytes. A
    /// filesystem can run out of inodes (room for files) with bytes to spare: a small ext4
    /// made with few, a tmpfs with nr_inodes. Then bytes are not what to free. Said by a
    /// run stopped by a full destination, by one that finds it full at start-up, and by
    /// pre-flight.
    pub fn what_to_free(&self, file_bytes: u64, files: u64, folders: u64) -> String {
        let (bytes, short) = space_still_needed(self.free_bytes, file_bytes, folders, self.block);
        let items = files.saturating_add(folders);
        match self.inodes {
            Some((free, total)) if free < items => format!(
                "The destination has room for only {} more files or folders (its filesystem has {} inodes in all) and about {} {} still to restore: remove files there, or restore onto a filesystem made with more inodes (mkfs.ext4 -N or -i){}",
                count(free),
                count(total),
                count(items),
                if folders > 0 { "files and folders are" } else { "files are" },
                if short > 0 { format!(". {bytes}") } else { String::new() }
            ),
            _ => bytes,
        }
    }
}

/// DEST refused the start-up probe's writes as full (ENOSPC, EDQUOT: no space, no inode
/// left, or the user's quota used up; or another error, such as the "Input/output error" of
/// an sshfs share, with no room left by its `statvfs`: `room` says so, as a run stopped while
/// copying does): said with what the restore needs by [`full_at_start`].
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}{}", path.display(), room.as_ref().map(|r| format!(", {r}")).unwrap_or_default())]
struct FullAtStart {
    what: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
    room: Option<String>,
}

impl FullAtStart {
    /// DEST's refusal `e` of `what` at `path`: full where it says so, or where its
    /// filesystem (that of `path`'s nearest folder that exists) has no room left
    /// ([`copy::full_by_room`]); else `other`'s error.
    fn or(
        what: &'static str,
        path: &Path,
        e: std::io::Error,
        other: impl FnOnce(std::io::Error) -> crate::config::ConfigError,
    ) -> anyhow::Error {
        let fs = || path.ancestors().find_map(|p| rustix::fs::statvfs(p).ok());
        let room = match copy::is_full(&e) {
            true => None,
            false => match copy::full_by_room(&e, path, fs, PROBE.len() as u64) {
                Some(room) => Some(room),
                None => return other(e).into(),
            },
        };
        FullAtStart {
            what,
            path: path.to_path_buf(),
            source: e,
            room,
        }
        .into()
    }
}

/// What [`full_at_start`] found a full destination needs.
enum FullAtStartNeeds {
    /// Room: the error that refuses the run, saying so.
    Room(anyhow::Error),
    /// None: every file left has no object (no run writes it) and every planned folder is
    /// there already, so the run goes on (and lists those files as missing), with this
    /// warning. A resume with only such files left was told to free room for them (round 20).
    Nothing(String),
}

/// The error for a destination found full at start-up: which one, what is free (bytes, or
/// inodes where none is left), what the restore still needs there (the files the plan
/// selects that no earlier run finished, `done`, and whose object is in the source, and the
/// planned folders not there yet), and that nothing was written. It was "cannot write to
/// destination", and the probe's empty file was left in DEST. Counting the files is a pass
/// over the index, made only here. Where nothing needs room, not an error
/// ([`FullAtStartNeeds::Nothing`]), unless some files in `done` are known to be gone from
/// DEST (`all_done_there` false: the run writes them again, and which ones it does not know
/// yet).
fn full_at_start(
    cfg: &RestoreConfig,
    plan: &Plan,
    index: &Index,
    done: &KeySet,
    all_done_there: bool,
    full: FullAtStart,
) -> FullAtStartNeeds {
    let (files, bytes, exact) = files_to_write(cfg, plan, index, done, LOOK_BUDGET);
    let started = Instant::now();
    let folders = folders_not_there(&plan.folders_deepest_first(), LOOK_BUDGET, |rel| {
        matches!(cfg.dest.join(rel).symlink_metadata(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    });
    let looked_at_all = exact && started.elapsed() < LOOK_BUDGET && all_done_there;
    if files == 0 && folders == 0 && looked_at_all && cfg.dest.is_dir() {
        return FullAtStartNeeds::Nothing(format!(
            "the destination {} {} ({full}), but nothing this run restores needs room there: the files left have no object in the source (they are listed as missing) and the folders are there",
            cfg.dest.display(),
            Room::of(&cfg.dest).full_word()
        ));
    }
    let room = Room::of(&cfg.dest);
    let advice = room.what_to_free(bytes, files, folders);
    // `--fresh` forgets what the checkpoint knows (`done` is empty) but keeps the files
    // already there unchanged: the figure counts them. Without saying so, it asked to free
    // the whole restore's size on a DEST filled by an earlier restore (round 19's review).
    let fresh = match cfg.fresh {
        true => " (with --fresh, every file the plan selects is counted: those already there unchanged are kept and need no room)",
        false => "",
    };
    FullAtStartNeeds::Room(anyhow::anyhow!(
        "the destination {} {}: {full}. Nothing was written there. {advice}{fresh}, or choose another disk, then run the same command again",
        cfg.dest.display(),
        room.full_word()
    ))
}

/// The files a restore will write to DEST, and their bytes: those the plan selects that no
/// earlier run finished (`done`) and that have something to write (an object in the
/// source, or no content at all: an empty file). A file whose object is missing is never
/// written and needs neither room nor an inode. Each object is a `stat` on the source;
/// past `budget` the files not looked at count as written (`false`: the count is not
/// exact). A file whose object cannot be looked at (permission denied) counts as written.
fn files_to_write(
    cfg: &RestoreConfig,
    plan: &Plan,
    index: &Index,
    done: &KeySet,
    budget: Duration,
) -> (u64, u64, bool) {
    let started = Instant::now();
    let (mut files, mut bytes, mut exact) = (0u64, 0u64, true);
    let counted = plan.for_each_file_any_order(index, |f| {
        if f.skip.is_some()
            || (!done.is_empty()
                && done.contains(&done_key(&f.id, &f.rel_path, f.size, f.mtime_ms)))
        {
            return;
        }
        let written = match &f.content_id {
            None => f.size == 0,
            Some(_) if !exact => true,
            Some(cid) => {
                exact = started.elapsed() < budget;
                !matches!(cfg.source.find_object_len(cid), Ok(None))
            }
        };
        if written {
            files += 1;
            bytes = bytes.saturating_add(f.size);
        }
    });
    match counted {
        Ok(()) => (files, bytes, exact),
        Err(_) => (0, 0, false),
    }
}

/// How long a restore refused by a full destination looks for the planned folders there.
const LOOK_BUDGET: Duration = Duration::from_secs(5);

/// About how many of `folders` (deepest first, as planned) are not at DEST yet, by
/// `absent` (an `lstat`, a round trip on a network destination). Looked at shallowest
/// first: a folder below one that is not there is not there either, without a look (an
/// empty DEST costs a look per top folder). Past `budget` the look stops, and the folders
/// not looked at count in the proportion of those seen: it walked every planned folder, one
/// `lstat` after the other with nothing printed, before a refused run said why.
fn folders_not_there(
    folders: &[PlannedFolder],
    budget: Duration,
    mut absent: impl FnMut(&str) -> bool,
) -> u64 {
    let started = Instant::now();
    let mut missing: std::collections::HashSet<&str> = Default::default();
    let (mut looked, mut found_absent, mut unknown) = (0u64, 0u64, 0u64);
    for f in folders.iter().rev() {
        let rel = f.rel_path.as_str();
        let below_missing = rel
            .rsplit_once('/')
            .is_some_and(|(parent, _)| missing.contains(parent));
        if !below_missing {
            if started.elapsed() >= budget {
                unknown += 1;
                continue;
            }
            looked += 1;
            if !absent(rel) {
                continue;
            }
            found_absent += 1;
        }
        missing.insert(rel);
    }
    let unknown_absent = match looked {
        0 => unknown,
        n => (u128::from(unknown) * u128::from(found_absent) / u128::from(n)) as u64,
    };
    missing.len() as u64 + unknown_absent
}

/// Records a run stopped by an error or a panic after copying began (the checkpoint's disk
/// full, the index unreadable midway, a bug): without it the report stayed the last periodic
/// one ("not complete", no reason) and `status` said "killed or still starting". Both now say
/// why, as far as the state folder still takes writes; what was placed since the last commit
/// is checked by the next run, as after a crash.
fn record_stop(
    report: &mut Report,
    snap: &Snapshot,
    cfg: &RestoreConfig,
    ckpt: &mut Option<crate::state::Checkpoint>,
    state: &StateFolder,
    stop: Stop,
) {
    let (why, how) = match stop {
        Stop::Error(e) => (crate::error_text(e), "stopped by an error"),
        Stop::Panic(p) => (
            format!("a bug in mycloud-recover: {}", copy::panic_text(p)),
            "stopped by an internal error",
        ),
    };
    report.error = Some(why.clone());
    report.update(snap, true);
    // Watched, as the run's writes there (`StateFolder`).
    if !cfg.dry_run {
        let _ = state.write_report(report, &cfg.report_path);
    }
    let end = format!("{how} ({why})");
    let _ = state.with_checkpoint(ckpt, move |c| {
        let _ = c.set_meta(crate::state::LAST_END_KEY, &end);
        let _ = c.end_run(false);
    });
}

/// A panic (a bug) caught after copying began, recorded ([`record_stop`]) and raised again:
/// `main` ends the run with exit 101.
fn panic_recorded(
    report: &mut Report,
    snap: &Snapshot,
    cfg: &RestoreConfig,
    ckpt: &mut Option<crate::state::Checkpoint>,
    state: &StateFolder,
    panic: Box<dyn std::any::Any + Send>,
) -> ! {
    record_stop(report, snap, cfg, ckpt, state, Stop::Panic(panic.as_ref()));
    std::panic::resume_unwind(panic)
}

/// What the copy workers share, owned by them and the run alike: a worker whose call a disk
/// never answers (a share whose server hangs, a source disk that hangs) cannot be joined,
/// so the run stops without it ([`CopyWork::held`]) and it may outlive the run.
struct CopyWork {
    source: SourceLayout,
    dest: PathBuf,
    overwrite: bool,
    fsync_each: bool,
    dry_run: bool,
    faults: Arc<Faults>,
    renames: AtomicU64,
    dirs: Arc<DirCache>,
    objects: copy::ObjectFolders,
    copier: Copier,
    exact_names: bool,
    unnamed_temps: bool,
    named_fallbacks: AtomicU64,
    unsure_since: Option<i64>,
    /// The smallest whole size of DEST's filesystem and those mounted inside it
    /// ([`copy::CopyContext::smallest_disk`]).
    smallest_disk: u64,
    watch: Arc<DiskWatch>,
    /// The run stops: no more files are begun.
    stop: Arc<AtomicBool>,
    dest_lost: Arc<DestLost>,
    /// Why DEST was found full (the first file it refused so): the run stops, and that
    /// file and those refused meanwhile are not processed.
    full: std::sync::Mutex<Option<String>>,
    /// DEST's folder when the copy started (`None`: no checkpoint, a dry run).
    dest_id: Option<(u64, u64)>,
    /// DEST's folders as `Job::CheckFirst` looks at them (without following links).
    dest_folders: crate::walk::DestFolders,
    /// Per worker: when its file began (ms since `start`, plus 1), 0 between files.
    calls: Vec<WorkerClock>,
    /// The planner's: when it began to wait for the next file row (reading the index on
    /// the source disk) or began with that file (whose look at DEST or at its object may
    /// take a call too), 0 while it waits for the workers or is done.
    planner: WorkerClock,
    /// The count's: when it began its pass over the index, 0 once done.
    count: WorkerClock,
    start: Instant,
    /// The run stopped without the threads still in a call (the workers, the planner, the
    /// count): a disk held their calls and did not answer a probe either.
    left: AtomicBool,
}

/// When a worker's file began ([`CopyWork::busy`]), and which file it is (its path under
/// DEST and its content ID, in buffers kept from file to file), alone on its cache line:
/// each worker writes its own twice a file, and sharing a line would make the cores pass it
/// back and forth. The file is read only when no file came back for [`NO_ANSWER`], to say
/// which one the run waits for ([`CopyWork::held_files`]).
#[derive(Default)]
#[repr(align(128))]
struct WorkerClock(AtomicU64, std::sync::Mutex<(String, String)>);

/// A file out for [`NO_ANSWER`] or more ([`CopyWork::held_files`]): for how long (since it
/// began, or its bytes last moved: [`CopyWork::moved`]), its path under DEST, and where its
/// object is on the source if known.
struct HeldFile {
    out_for: Duration,
    rel_path: String,
    object: Option<PathBuf>,
}

/// Which files the run waits for, for its lines: "a/b.jpg (object files/a/abc..., 45 s)",
/// the one out longest first, then how many more.
fn held_files_text(held: &[HeldFile]) -> String {
    let mut text = match held.first() {
        Some(f) => format!(
            "{} ({}{})",
            f.rel_path,
            f.object
                .as_ref()
                .map_or(String::new(), |o| format!("object {}, ", o.display())),
            span(f.out_for)
        ),
        None => return "a file".into(),
    };
    if held.len() > 1 {
        text += &format!(" and {} more", held.len() - 1);
    }
    text
}

impl CopyWork {
    /// What [`copy`] needs to restore a file.
    fn ctx<'a>(&'a self, moved: &'a dyn Fn()) -> CopyContext<'a> {
        CopyContext {
            source: &self.source,
            dest: &self.dest,
            overwrite: self.overwrite,
            fsync_each: self.fsync_each,
            dry_run: self.dry_run,
            faults: &self.faults,
            renames: &self.renames,
            dirs: &self.dirs,
            objects: &self.objects,
            copier: &self.copier,
            exact_names: self.exact_names,
            unnamed_temps: self.unnamed_temps,
            named_fallbacks: &self.named_fallbacks,
            unsure_since: self.unsure_since,
            smallest_disk: self.smallest_disk,
            watch: &*self.watch,
            moved,
        }
    }

    fn stopping(&self) -> bool {
        interrupted() || self.stop.load(Ordering::SeqCst)
    }

    /// Whether DEST is lost: known already, or found now. Asked when a file fails: DEST
    /// renamed or deleted makes every file fail at once, before the next commit's check.
    fn dest_gone(&self) -> bool {
        dest_gone_now(&self.dest, self.dest_id, &self.dest_lost)
    }

    /// The worker `w` begins `file` (`Some`) or is done with its file: one clock read a
    /// file, and the file's names copied into the worker's buffers.
    fn busy(&self, w: usize, file: Option<&PlannedFile>) {
        let clock = &self.calls[w];
        match file {
            // The clock set under the lock: whoever reads the names under it reads the
            // clock of the same file.
            Some(file) => {
                let mut what = clock.1.lock().unwrap_or_else(|e| e.into_inner());
                what.0.clear();
                what.0.push_str(&file.rel_path);
                what.1.clear();
                what.1.push_str(file.content_id.as_deref().unwrap_or(""));
                let now = self.start.elapsed().as_millis() as u64 + 1;
                clock.0.store(now, Ordering::Relaxed);
            }
            None => clock.0.store(0, Ordering::Relaxed),
        }
    }

    /// The worker `w`'s file is moving (its bytes copied so far, [`copy::Copier::copy`]):
    /// its clock starts again, so that only a file whose bytes stop is held (`held`).
    fn moved(&self, w: usize) {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        self.calls[w].0.store(now, Ordering::Relaxed);
    }

    /// The planner's or the count's clock (`clock`): its thread begins a call to a disk
    /// (`true`), or waits for nothing on a disk. Their names are not kept: the stop and the
    /// probe say which disk does not answer.
    fn mark(&self, clock: &WorkerClock, busy: bool) {
        let now = match busy {
            true => self.start.elapsed().as_millis() as u64 + 1,
            false => 0,
        };
        clock.0.store(now, Ordering::Relaxed);
    }

    /// When the newest call still out began, if calls are out and none has come back for
    /// [`NO_ANSWER`]: each worker still in a file began it that long ago, and so did the
    /// planner still reading and the count still counting. A disk that stops answering
    /// holds calls rather than failing them (a share whose server hangs, a NAS gone from
    /// the network, a source disk that hangs or retries a bad sector): no file fails, and
    /// the run would wait without a word. The planner and the count read the index on the
    /// source disk: with no file out (the workers waiting for the planner) only their
    /// clocks say it.
    fn held(&self) -> Option<Instant> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let newest = (self.calls.iter())
            .chain([&self.planner, &self.count])
            .map(|c| c.0.load(Ordering::Relaxed))
            .filter(|&began| began > 0)
            .max()?;
        let out_for = Duration::from_millis(now.saturating_sub(newest));
        (out_for >= NO_ANSWER).then(|| self.start + Duration::from_millis(newest - 1))
    }

    /// The files out for [`NO_ANSWER`] or more, the one out longest first: what the run
    /// waits for, said to the user while no file comes back.
    fn held_files(&self) -> Vec<HeldFile> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let mut held = Vec::new();
        for clock in &self.calls {
            let what = clock.1.lock().unwrap_or_else(|e| e.into_inner());
            let began = clock.0.load(Ordering::Relaxed);
            let out_for = Duration::from_millis(now.saturating_sub(began));
            if began == 0 || out_for < NO_ANSWER {
                continue;
            }
            held.push(HeldFile {
                out_for,
                rel_path: what.0.clone(),
                object: self.source.sharded_object_path(&what.1),
            });
        }
        held.sort_by_key(|f| std::cmp::Reverse(f.out_for));
        held
    }
}

/// What the passes over the folders after the last file (making the empty folders, setting
/// the folders' dates) share with their threads. Owned, not borrowed from the run: a thread
/// whose call DEST never answers is left behind when its pass stops ([`in_parallel`]), and
/// may outlive the run.
struct FolderWork {
    dest: PathBuf,
    /// DEST's folder when the copy started (`None`: a dry run).
    dest_id: Option<(u64, u64)>,
    dest_lost: Arc<DestLost>,
    dirs: Arc<DirCache>,
    faults: Arc<Faults>,
    /// A signal stopped a pass: the rest is left to the next run (on a network destination
    /// each folder is a round trip: minutes for a real device's 344K folders).
    cut: AtomicBool,
    /// DEST was lost: the rest is left to the next run.
    lost: AtomicBool,
    /// DEST is full: the folders are still looked at, not made.
    full: AtomicBool,
}

impl FolderWork {
    /// Whether the pass stops before its next folder: a signal (remembered), or DEST lost.
    fn stopping(&self) -> bool {
        if crate::signals::stop_requested() {
            self.cut.store(true, Ordering::SeqCst);
            return true;
        }
        self.lost.load(Ordering::SeqCst)
    }

    /// Whether DEST was found lost, also by a probe of the run's [`DiskWatch`].
    fn note_lost(&self) -> bool {
        if lock_lost(&self.dest_lost).is_some() {
            self.lost.store(true, Ordering::SeqCst);
        }
        self.lost.load(Ordering::SeqCst)
    }

    /// Finds DEST lost as the copy does, after a folder failed: with "read-only file
    /// system" (`read_only`: its message), or with an error that says DEST is gone (`gone`:
    /// "not connected" and the like, [`gone_by`]), or with any other error after which the
    /// look the copy takes at DEST after a failed file ([`dest_gone_now`]) finds it gone or
    /// not answering. The error is believed first: on a share whose program died, that look
    /// can be answered from the kernel's cache of attributes and find DEST as it was. The
    /// loss is recorded as the copy's (one stop, one message, the same report and exit
    /// code) and the pass stops: round 17's passes listed every folder as failed on a
    /// read-only DEST, and on a share whose connection dropped while folders were dated the
    /// run "finished" and the dates left were never set.
    fn lost_in_pass(&self, read_only: Option<&str>, gone: Option<std::io::Error>) -> bool {
        let lost = match (read_only, gone) {
            (Some(m), _) => {
                lock_lost(&self.dest_lost).get_or_insert_with(|| dest_read_only(m));
                true
            }
            (None, Some(e)) => {
                lock_lost(&self.dest_lost).get_or_insert_with(|| dest_lost_as(Some(e)));
                true
            }
            (None, None) => dest_gone_now(&self.dest, self.dest_id, &self.dest_lost),
        };
        if lost {
            self.lost.store(true, Ordering::SeqCst);
        }
        lost
    }

    /// Makes one folder of the empty-folder pass: `Some(true)` made, `Some(false)` found
    /// there already, `None` left to the next run (a signal, DEST lost or full: after a full
    /// stop the folders are still looked at, not made, and with the one the destination
    /// refused, those missing are the folders still to make that the message counts).
    fn make(&self, f: &PlannedFolder) -> Result<Option<bool>, FolderNotMade> {
        if self.stopping() {
            return Ok(None);
        }
        if self.faults.folder_delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.faults.folder_delay_ms));
        }
        let path = self.dest.join(&f.rel_path);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            return Ok(Some(false));
        }
        if self.full.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let Err(e) = self.dirs.ensure(&path) else {
            return Ok(Some(true));
        };
        let gone = gone_by(&e);
        let why = copy::weigh_folder_error(&self.dest, &path, e);
        let dest_lost = match &why {
            FolderNotMade::DestFull(_) => {
                self.full.store(true, Ordering::SeqCst);
                false
            }
            FolderNotMade::DestReadOnly(m) => self.lost_in_pass(Some(m), None),
            FolderNotMade::Failed(_) => self.lost_in_pass(None, gone),
        };
        match dest_lost {
            true => Ok(None),
            false => Err(why),
        }
    }

    /// Sets the date of the folder `rel` to `ms`: `Some(failed)`, or `None` for a folder
    /// left to the next run (a signal, DEST lost).
    fn date(&self, rel: &str, ms: i64) -> Option<bool> {
        self.faults.maybe_panic_in("folders");
        if self.stopping() {
            return None;
        }
        if self.faults.folder_delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.faults.folder_delay_ms));
        }
        let path = self.dest.join(rel);
        let Err(e) = set_dir_mtime(&path, ms) else {
            return Some(false);
        };
        let read_only = (e.raw_os_error() == Some(libc::EROFS))
            .then(|| format!("cannot set the date of the folder {}: {e}", path.display()));
        if self.lost_in_pass(read_only.as_deref(), gone_by(&e)) {
            return None;
        }
        // A folder gone meanwhile (removed by hand) is not a failure.
        Some(path.is_dir())
    }
}

/// The error of a folder that failed, kept when it says DEST is gone
/// ([`copy::says_gone`]).
fn gone_by(e: &std::io::Error) -> Option<std::io::Error> {
    copy::says_gone(e)
        .then(|| e.raw_os_error().map(std::io::Error::from_raw_os_error))
        .flatten()
}

fn lock_lost(lost: &DestLost) -> std::sync::MutexGuard<'_, Option<Lost>> {
    lost.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on every item with up to `threads` threads and returns the results in item
/// order: for the per-folder work after the copy, where each item is a round trip on a
/// network destination. Meanwhile the calling thread tells `ui` how far the pass is, a few
/// times a second; it wakes when the last thread ends, so a short pass waits for no tick.
///
/// A share that stops answering holds calls rather than failing them: a call that has not
/// returned for [`NO_ANSWER`] makes the calling thread ask `answers` (a probe of DEST;
/// asked again after as long if the call is still out). False: the pass stops there and
/// returns at once, leaving behind the threads still in a call (nothing can end a call to
/// a share that does not answer, so `f` and the items are owned). An item not done is
/// `None`. Round 18 noticed the passes, without a limit, hang the run for good.
fn in_parallel<T, R>(
    items: Arc<[T]>,
    threads: usize,
    what: &'static str,
    ui: &mut dyn Listener,
    answers: &dyn Fn() -> bool,
    f: impl Fn(&T) -> R + Send + Sync + 'static,
) -> Vec<Option<R>>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
{
    /// What the threads share, owned by them and the caller alike.
    struct Pass<T, R, F> {
        items: Arc<[T]>,
        f: F,
        next: AtomicU64,
        finished: AtomicU64,
        results: std::sync::Mutex<Vec<Option<R>>>,
        /// Per thread: when its call began (ms since `start`, plus 1), 0 between calls.
        calls: Vec<AtomicU64>,
        /// The pass stopped on a DEST that does not answer: no more items are taken.
        given_up: AtomicBool,
        start: Instant,
    }
    let total = items.len();
    let workers = threads.clamp(1, total.max(1));
    let pass = Arc::new(Pass {
        items,
        f,
        next: AtomicU64::new(0),
        finished: AtomicU64::new(0),
        results: std::sync::Mutex::new((0..total).map(|_| None).collect()),
        calls: (0..workers).map(|_| AtomicU64::new(0)).collect(),
        given_up: AtomicBool::new(false),
        start: Instant::now(),
    });
    let results = |pass: &Pass<T, R, _>| {
        std::mem::take(&mut *pass.results.lock().unwrap_or_else(|e| e.into_inner()))
    };
    let (ended_tx, ended_rx) = crossbeam_channel::unbounded::<()>();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (pass, ended) = (Arc::clone(&pass), ended_tx.clone());
            std::thread::Builder::new()
                .name("mcr-folders".into())
                .spawn(move || {
                    // Dropped however the thread ends (a panic too), which wakes the caller.
                    let _ended = ended;
                    let since_start = || pass.start.elapsed().as_millis() as u64 + 1;
                    while !pass.given_up.load(Ordering::SeqCst) {
                        let i = pass.next.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(item) = pass.items.get(i) else {
                            return;
                        };
                        pass.calls[w].store(since_start(), Ordering::SeqCst);
                        let r = (pass.f)(item);
                        pass.calls[w].store(0, Ordering::SeqCst);
                        // Gone once the pass gave up: a call that came back late.
                        let mut results = pass.results.lock().unwrap_or_else(|e| e.into_inner());
                        if let Some(slot) = results.get_mut(i) {
                            *slot = Some(r);
                        }
                        drop(results);
                        pass.finished.fetch_add(1, Ordering::Relaxed);
                    }
                })
                // The message std's own spawns give: `main` tells the user which limit.
                .expect("failed to spawn thread")
        })
        .collect();
    drop(ended_tx);
    let mut probed: Option<Instant> = None;
    while let Err(RecvTimeoutError::Timeout) = ended_rx.recv_timeout(Duration::from_millis(200)) {
        ui.folders(&crate::report::FolderPass {
            what,
            done: pass.finished.load(Ordering::Relaxed),
            total: total as u64,
            elapsed: pass.start.elapsed(),
        });
        let now = pass.start.elapsed().as_millis() as u64 + 1;
        let out_longest = (pass.calls.iter())
            .map(|c| c.load(Ordering::SeqCst))
            .filter(|&began| began > 0)
            .map(|began| Duration::from_millis(now.saturating_sub(began)))
            .max();
        let held = out_longest.is_some_and(|d| d >= NO_ANSWER)
            && probed.is_none_or(|p| p.elapsed() >= NO_ANSWER);
        if held {
            if !answers() {
                pass.given_up.store(true, Ordering::SeqCst);
                return results(&pass);
            }
            probed = Some(Instant::now());
        }
    }
    for h in handles {
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    }
    results(&pass)
}

/// Threads besides the copy workers: the planner, the count, the bookkeeping, the
/// committer, the progress and the disk watch, with one to spare.
const OTHER_THREADS: u64 = 7;
/// The address space a thread takes: its 2 MiB stack, a guard page and its signal stack.
const THREAD_ADDRESS_SPACE: u64 = (2 << 20) + (128 << 10);
/// Room left for the heap under an address-space limit once the stacks are counted (a
/// restore of 4,000 files with 16 workers ran under 80 MB: stacks about 48 MB, 16 MB in use
/// before them).
const HEAP_ROOM: u64 = 8 << 20;

/// Refuses, before any worker starts, a thread count whose stacks do not fit under the
/// address-space limit (`ulimit -v`). Found by trying, the limit struck at a random thread:
/// one that failed to start was reported (exit 2), but one that started and could not get
/// its signal stack aborted the process (SIGABRT, no message; round 15, 1 run in 4 under
/// `ulimit -v 100000` with 64 threads). Without a limit, nothing to check.
fn check_address_space(workers: usize) -> anyhow::Result<()> {
    let Some(limit) = rustix::process::getrlimit(rustix::process::Resource::As).current else {
        return Ok(());
    };
    // SAFETY: sysconf only reads a system constant.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let used = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page);
    // The stack of the threads that checked the paths and planned, which the C library
    // keeps for the next thread started: a worker's (`held::joined_a_call`).
    let kept = match crate::held::joined_a_call() {
        true => THREAD_ADDRESS_SPACE,
        false => 0,
    };
    let room = (limit + kept)
        .saturating_sub(used)
        .saturating_sub(HEAP_ROOM);
    let fit = (room / THREAD_ADDRESS_SPACE).saturating_sub(OTHER_THREADS);
    if (workers as u64) <= fit {
        return Ok(());
    }
    anyhow::bail!(
        "the address-space limit (`ulimit -v` {} kB, {} in use) leaves room for the stacks of about {fit} workers, not {workers}: raise that limit, or run with --threads {}. Nothing was copied by this run",
        limit / 1024,
        crate::report::human_bytes(used),
        fit.max(1)
    )
}

/// Runs `call`, a call to DEST, on a thread of its own and waits for it: on a share that
/// stops answering it may never return. Not back within [`NO_ANSWER`], DEST is probed
/// (`answers`), and the call waited for as long again while DEST answers. None: DEST does
/// not answer (the probe recorded it lost); the thread is left behind in its call. One
/// thread per call: for the commits (a few a second at most), not for files. (`status`
/// makes its looks in a process of its own instead, `crate::commands::status`: the
/// process a person started must end.)
pub(crate) fn dest_call<R: Send + 'static>(
    call: impl FnOnce() -> R + Send + 'static,
    answers: &dyn Fn() -> bool,
) -> Option<R> {
    let mut call = crate::held::Call::start("mcr-dest-call", call)
        // The message std's own spawns give: `main` tells the user which limit.
        .expect("failed to spawn thread");
    loop {
        match call.wait(NO_ANSWER) {
            Some(r) => return Some(r),
            None if answers() => {}
            None => return None,
        }
    }
}

/// The run's writes to the checkpoint folder (`--state-dir`, which may be on a share of its
/// own) and to the report's folder (the same by default), each made on a thread of its own
/// and waited for as a commit's flush of DEST is ([`dest_call`]): not back within
/// [`NO_ANSWER`], the folder is asked for a name never asked for ([`look_up_a_new_name`]:
/// it reaches a share's server); silent, nothing more is written there (the call is left
/// behind), and the checkpoint folder silent stops the run, said with
/// [`StateFolder::stop_text`]. Until round 24 the committer's record and the bookkeeper's
/// report were written on unwatched calls: a state folder on a share whose server hung
/// mid-copy held the committer, then the bookkeeper (on its report, or handing the committer
/// a batch), then the workers, for good without a word.
struct StateFolder {
    dir: PathBuf,
    /// The run's: set when the checkpoint folder does not answer.
    stop: Arc<AtomicBool>,
    /// The folders found silent.
    silent: std::sync::Mutex<Vec<PathBuf>>,
}

impl StateFolder {
    fn new(dir: &Path, stop: &Arc<AtomicBool>) -> Self {
        StateFolder {
            dir: dir.to_path_buf(),
            stop: Arc::clone(stop),
            silent: Default::default(),
        }
    }

    /// Whether `folder` was found silent: nothing more is written there.
    fn is_silent(&self, folder: &Path) -> bool {
        let silent = self.silent.lock().unwrap_or_else(|e| e.into_inner());
        silent.iter().any(|f| f == folder)
    }

    /// Whether the checkpoint folder was found silent: the checkpoint is not written again,
    /// and the run stops.
    fn lost(&self) -> bool {
        self.is_silent(&self.dir)
    }

    /// Runs `call`, a write to `folder`, watched (see the type). None: `folder` does not
    /// answer (found now or before); the call is left behind.
    fn call<R: Send + 'static>(
        &self,
        folder: &Path,
        call: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        if self.is_silent(folder) {
            return None;
        }
        let asked = folder.to_path_buf();
        let answers = || {
            let f = asked.clone();
            crate::held::within("mcr-state-probe", NO_ANSWER, move || look_up_a_new_name(&f))
                .is_some()
        };
        let done = dest_call(call, &answers);
        if done.is_none() {
            let mut silent = self.silent.lock().unwrap_or_else(|e| e.into_inner());
            silent.push(folder.to_path_buf());
            if folder == self.dir {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
        done
    }

    /// Runs `f` on the checkpoint `ckpt`, watched ([`StateFolder::call`]): the checkpoint
    /// is moved to the call's thread and back. None: no checkpoint, or its folder does not
    /// answer; a checkpoint in a call left behind is gone (`ckpt` None from then on).
    fn with_checkpoint<R: Send + 'static>(
        &self,
        ckpt: &mut Option<crate::state::Checkpoint>,
        f: impl FnOnce(&mut crate::state::Checkpoint) -> R + Send + 'static,
    ) -> Option<R> {
        if self.lost() {
            return None;
        }
        let mut c = ckpt.take()?;
        let (c, done) = self.call(&self.dir.clone(), move || {
            let done = f(&mut c);
            (c, done)
        })?;
        *ckpt = Some(c);
        Some(done)
    }

    /// Runs `f` on the checkpoint `ckpt` before the copy begins, watched
    /// ([`StateFolder::with_checkpoint`]): `Ok(None)` without a checkpoint (a dry run); its
    /// folder silent, the run stops there ([`HeldBeforeWriting`], said with
    /// [`StateFolder::stop_text`]), no file restored. Until round 24 the checkpoint's
    /// writes and reads between its opening and the copy (the run's start, its selection,
    /// its metadata, the notes of earlier runs) and the first report were made on unwatched
    /// calls: a state folder on a share whose server hung there held the run for good
    /// without a word.
    fn before_copy<R: Send + 'static>(
        &self,
        ckpt: &mut Option<crate::state::Checkpoint>,
        f: impl FnOnce(&mut crate::state::Checkpoint) -> R + Send + 'static,
    ) -> Result<Option<R>, HeldBeforeWriting> {
        if ckpt.is_none() {
            return Ok(None);
        }
        match self.with_checkpoint(ckpt, f) {
            Some(r) => Ok(Some(r)),
            None => Err(self.stopped_before_copy()),
        }
    }

    /// The stop of a run whose checkpoint folder was found silent before the copy began.
    fn stopped_before_copy(&self) -> HeldBeforeWriting {
        HeldBeforeWriting(self.text(false))
    }

    /// Leaves the checkpoint `ckpt` unclosed once its folder was found silent: closing it
    /// writes there (SQLite folds its log into the database), a call that would not return
    /// either. The process ends without it; what the checkpoint holds is as last committed.
    fn leave_if_lost(&self, ckpt: &mut Option<crate::state::Checkpoint>) {
        if self.lost() {
            std::mem::forget(ckpt.take());
        }
    }

    /// Writes `report` to `path` ([`Report::write`]), watched ([`StateFolder::call`]): made
    /// into JSON here, written on a thread of its own. None: its folder does not answer.
    fn write_report(&self, report: &Report, path: &Path) -> Option<anyhow::Result<()>> {
        let body = match report.json() {
            Ok(body) => body,
            Err(e) => return Some(Err(e)),
        };
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let path = path.to_path_buf();
        self.call(folder, move || crate::report::write_json(&path, &body))
    }

    /// What a run stopped by a checkpoint folder that does not answer says.
    fn stop_text(&self) -> String {
        self.text(true)
    }

    /// [`StateFolder::stop_text`], said of a stop in the copy (`copying`) or before it,
    /// where no file was restored.
    fn text(&self, copying: bool) -> String {
        let recorded = match copying {
            true => "Nothing more was recorded: the files placed since its last commit are on the destination but not recorded, and the next run finds them there (kept, or copied again)",
            false => "Stopped before the copy began: this run restored no file and recorded none as done",
        };
        format!(
            "the checkpoint folder {} does not answer: a write there did not come back within {} s, nor a look there within {} s more (a share whose server hangs, or a disk that stops answering, holds calls rather than failing them): stopped. {recorded}. If this program does not end, a call it made there is still waiting: {}. Check the share (its server, the network; mount it again if it was cut off) and run the same command once it answers",
            self.dir.display(),
            NO_ANSWER.as_secs(),
            NO_ANSWER.as_secs(),
            watch::what_ends_a_held_call(&self.dir)
        )
    }
}

/// Spawns a scoped thread with a name, so `top -H`, `perf` and `/proc/PID/task` say which
/// part of the pipeline is busy or waiting.
fn spawn_named<'scope, 'env, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, 'env>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(s, f)
        // The message std's own scoped spawns give: `main` tells the user which limit.
        .expect("failed to spawn thread")
}

/// Spawns a thread of the pipeline that is not scoped, with a name (as [`spawn_named`]):
/// one that reads a disk which may hold its call for good (the planner, the count), so
/// that the run can stop without joining it. What it uses is owned.
fn spawn_owned<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        // The message std's own spawns give: `main` tells the user which limit.
        .expect("failed to spawn thread")
}

/// Whether DEST is lost (`lost`): known already, or found now, `dest` being another folder
/// than `id` (the one the copy started in) or not answering. Nothing to compare without
/// `id` (a dry run). The look is taken without holding `lost`: on a share that stopped
/// answering it may never return, and the run must still read what others found.
fn dest_gone_now(dest: &Path, id: Option<(u64, u64)>, lost: &DestLost) -> bool {
    let Some(id) = id else {
        return false;
    };
    let found = |lost: &DestLost| lost.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    if found(lost) {
        return true;
    }
    let now = folder_identity_settled(dest);
    let mut lost = lost.lock().unwrap_or_else(|e| e.into_inner());
    match now {
        Ok(now) if now == id => {}
        now => {
            lost.get_or_insert_with(|| dest_lost_as(now.err()));
        }
    }
    lost.is_some()
}

/// Which folder `path` is ([`crate::fsinfo::identity`]), to notice it was replaced; asked
/// again for 5 s on an error that does not say DEST is gone (a soft network mount's
/// timeout), so that one hiccup does not stop a long restore.
fn folder_identity_settled(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut tries = 0;
    loop {
        match crate::fsinfo::identity(path) {
            Err(e)
                if tries < 5
                    && !matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ESTALE | libc::ENOTCONN | libc::ENOTDIR)
                    ) =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

/// Sets a folder's dates by path: one call (one round trip on a network filesystem), where
/// open + set + close would be three. Dates a folder: only a real folder, never a file or a symlink that stands where the
/// folder should be (a user's file in the way keeps its own date; a symlink's target, maybe
/// outside DEST, is not touched). The `lstat` before makes the lookup the `utimensat` needs,
/// so on a network destination it should cost no extra round trip (not measured; round 8's
/// profile of this phase is in docs/PERFORMANCE.md).
fn set_dir_mtime(path: &Path, ms: i64) -> std::io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    if !std::fs::symlink_metadata(path)?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a folder",
        ));
    }
    let ts = Timespec {
        tv_sec: ms.div_euclid(1000),
        tv_nsec: ms.rem_euclid(1000) * 1_000_000,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// What the restore learns about the destination before copying.
#[derive(Debug, Default)]
struct DestFacts {
    /// Another spelling of a name (other case, other Unicode normalization) does not find it.
    exact_names: bool,
    /// Another case of an ASCII name finds it.
    folds_case: bool,
    /// Unnamed files can be created and linked into place (local Linux filesystems).
    unnamed_temps: bool,
    /// DEST's clock when the probe ran (the change time of its probe file, ms).
    clock_ms: Option<i64>,
}

/// Since when files on `dest` the checkpoint does not record may be a crashed run's copies
/// (`Checkpoint::unsure_since`). Every such file is unsure where change times cannot be
/// trusted to say so: a filesystem without real ones (FAT, exFAT, FUSE, SMB; see
/// `FsInfo::keeps_change_times`), or one mounted inside DEST (another disk or NAS, whose
/// clock DEST's time says nothing about).
pub(crate) fn unsure_since(recorded: Option<i64>, cfg: &RestoreConfig) -> Option<i64> {
    recorded.map(|since| {
        let trusted =
            cfg.dest_fs.keeps_change_times() && crate::fsinfo::mounts_inside(&cfg.dest).is_empty();
        if trusted {
            since
        } else {
            i64::MIN
        }
    })
}

/// What a run refused by DEST's lock ([`lock_dest`]) has done by then, which its message
/// says.
#[derive(Clone, Copy)]
enum Untouched {
    /// Nothing: no checkpoint opened, no state folder left, DEST neither made nor written.
    Yes,
    /// DEST was made (and probed) by this run, or its checkpoint opened: another restore
    /// took a DEST that was not there when this run started (a race), or this run's
    /// checkpoint is from before the log.
    No,
}

/// Takes the lock on DEST (see `restore`); `None` where the filesystem has no locks.
fn lock_dest(dest: &Path, untouched: Untouched) -> anyhow::Result<Option<std::fs::File>> {
    use rustix::fs::{flock, FlockOperation};
    let f = std::fs::File::open(dest)
        .with_context(|| format!("cannot open destination {}", dest.display()))?;
    match flock(&f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => anyhow::bail!(
            "another restore is writing into {} now (with another state folder); {}. Wait for it to finish or stop it, then run the same command again",
            dest.display(),
            match untouched {
                Untouched::Yes => "nothing was changed by this run",
                Untouched::No => "this run stopped before it copied anything",
            }
        ),
        Err(_) => Ok(None),
    }
}

/// Creates DEST if needed (one that cannot be made says why: [`ConfigError::DestNotMade`]),
/// then [`probe_destination`].
///
/// Where DEST then refuses the run (full, read-only), the folders this run made (DEST and
/// those above it that were not there) are removed again, so that the refused run leaves
/// nothing: it left them on a full disk where a folder takes no block (a tmpfs, a btrfs),
/// having said "Nothing was written there" (round 19's review).
///
/// [`ConfigError::DestNotMade`]: crate::config::ConfigError::DestNotMade
fn create_and_probe(dest: &Path) -> anyhow::Result<DestFacts> {
    let absent = |p: &Path| {
        matches!(p.symlink_metadata(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    };
    // Deepest first, the order they are removed in.
    let made: Vec<&Path> = (dest.ancestors())
        .take_while(|p| !p.as_os_str().is_empty() && absent(p))
        .collect();
    let undo = || {
        for p in &made {
            let _ = std::fs::remove_dir(p);
        }
    };
    std::fs::create_dir_all(dest).map_err(|e| {
        undo();
        FullAtStart::or("cannot create the folder", dest, e, |source| {
            crate::config::ConfigError::DestNotMade {
                path: dest.to_path_buf(),
                source,
            }
        })
    })?;
    probe_destination(dest).inspect_err(|_| undo())
}

/// What a dry run, which writes nothing, can tell of [`create_and_probe`]'s verdict: whether
/// this process may write DEST or, where DEST is still to be made, the nearest folder above
/// it (`access(2)`: a disk mounted read-only, a folder this user may not write, a file in
/// the way, a symbolic link to nothing, which the real run's `mkdir` answers "File
/// exists"). A refusal is said as the real run says it ([`ConfigError::DestNotMade`],
/// [`ConfigError::DestUnwritable`]). Only the real run's writes find a share that refuses
/// them its own way (sshfs answering "File exists") or a full disk. `plan` says it too.
///
/// [`ConfigError::DestNotMade`]: crate::config::ConfigError::DestNotMade
/// [`ConfigError::DestUnwritable`]: crate::config::ConfigError::DestUnwritable
pub(crate) fn would_make_and_write(dest: &Path) -> anyhow::Result<()> {
    use crate::config::ConfigError;
    use rustix::fs::{access, Access};
    let Some(there) = (dest.ancestors()).find(|p| p.symlink_metadata().is_ok()) else {
        return Ok(());
    };
    let refused = match there.metadata() {
        Ok(m) if m.is_dir() => access(there, Access::WRITE_OK | Access::EXEC_OK)
            .err()
            .map(std::io::Error::from),
        Ok(_) => Some(std::io::Error::from_raw_os_error(libc::ENOTDIR)),
        Err(_) => Some(std::io::Error::from_raw_os_error(libc::EEXIST)),
    };
    let Some(source) = refused else {
        return Ok(());
    };
    let path = dest.to_path_buf();
    Err(match there == dest && there.exists() {
        true => ConfigError::DestUnwritable { path, source },
        false => ConfigError::DestNotMade { path, source },
    }
    .into())
}

/// Writes a probe file; where that fails, removes what was made of it (a full disk makes
/// the file, then refuses its bytes: the empty file was left in DEST).
///
/// Its close is checked: an sshfs share writes late, and answered the write of a full disk
/// with success and its close with "Input/output error", which a dropped file does not say
/// (the probe passed, and the run failed its first files; round 20).
fn write_probe(p: &Path) -> std::io::Result<()> {
    std::fs::File::create(p)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, PROBE)?;
            copy::close_checked(f)
        })
        .inspect_err(|_| {
            let _ = std::fs::remove_file(p);
        })
}

/// What [`write_probe`] writes.
const PROBE: &[u8] = b"probe";

/// Creates and removes probe files, so an unwritable destination fails before any copying,
/// and learns [`DestFacts`]. A full one ([`FullAtStart`]) is told apart from one that
/// refuses writes (read-only, permissions), and no probe file is left either way.
fn probe_destination(dest: &Path) -> anyhow::Result<DestFacts> {
    let refused = |p: &Path, e: std::io::Error| {
        FullAtStart::or("cannot write the probe file", p, e, |source| {
            crate::config::ConfigError::DestUnwritable {
                path: dest.to_path_buf(),
                source,
            }
        })
    };
    let pid = std::process::id();
    let absent = |name: &str| {
        matches!(std::fs::symlink_metadata(dest.join(name)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    };
    let ascii = format!(".mcr-probe-{pid}-ab.part");
    let p = dest.join(&ascii);
    write_probe(&p).map_err(|e| refused(&p, e))?;
    let clock_ms = std::fs::symlink_metadata(&p)
        .ok()
        .map(|m| copy::ctime_ms(&m));
    let folds_case = !absent(&ascii.to_uppercase());
    let mut exact_names = !folds_case;
    std::fs::remove_file(&p).map_err(|e| refused(&p, e))?;
    // A destination that refuses the non-ASCII name is treated as folding names.
    let composed = format!(".mcr-probe-{pid}-\u{e9}.part");
    let p = dest.join(&composed);
    match write_probe(&p) {
        Ok(()) => {
            exact_names &= absent(&composed.replace('\u{e9}', "e\u{301}"));
            std::fs::remove_file(&p).map_err(|e| refused(&p, e))?;
        }
        Err(_) => exact_names = false,
    }
    // Unnamed files: create one, write, link it, remove it. Any failure means named ones.
    let linked = dest.join(format!(".mcr-probe-{pid}-unnamed.part"));
    let unnamed_temps = copy::Folder::open(dest)
        .and_then(|folder| {
            let mut f = folder.create_unnamed()?;
            std::io::Write::write_all(&mut f, PROBE)?;
            folder.link(&f, linked.file_name().unwrap_or_default())
        })
        .is_ok();
    if unnamed_temps {
        std::fs::remove_file(&linked).map_err(|e| refused(&linked, e))?;
    }
    Ok(DestFacts {
        exact_names,
        folds_case,
        unnamed_temps,
        clock_ms,
    })
}

/// Counts per outcome, for summaries.
pub type OutcomeCounts = BTreeMap<Outcome, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages of the file at `path` held in the page cache (`fincore`, util-linux).
    fn cached_pages(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--noheadings", "--output", "PAGES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux)");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Round 22 (noticed in round 21): a probe dropped the whole database from the page
    /// cache to read its first page from the disk, while the planner and the count were
    /// reading it (again from a failing disk after each probe). Only the first page is
    /// dropped now. Needs a disk-backed temporary folder (tmpfs keeps every page).
    #[test]
    fn a_probe_drops_only_the_page_it_reads_from_the_cache_regression_round_22() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        // Written back, so that its pages can be dropped; then read into the cache.
        f.sync_all().unwrap();
        std::io::copy(&mut (&mut f).take(1 << 20), &mut std::io::sink()).unwrap();
        let before = cached_pages(&path);
        assert_eq!(before, 256, "the file is in the page cache");
        read_first_page_uncached(&path).unwrap();
        let after = cached_pages(&path);
        assert!(after >= 255, "{after} of 256 pages still cached");
    }

    /// Round 18's review: a DEST lost in the folder passes after the last file (read-only,
    /// unreachable, unmounted) was said as in the copy: "the files placed since the last
    /// commit were not recorded", when every file was. Said now: the files were all
    /// recorded, which folders were left, and that the next run makes and dates them. In the
    /// copy the message is as it was.
    #[test]
    fn a_destination_lost_after_the_last_file_says_only_folders_are_left_regression_round_18() {
        let (dest, mount) = (Path::new("/mnt/nas/restored"), Path::new("/mnt/nas"));
        let losses = [
            dest_read_only(
                "cannot create the folder /mnt/nas/restored/a: Read-only file system (os error 30)",
            ),
            dest_unreachable("Transport endpoint is not connected (os error 107)"),
            dest_lost_as(None),
        ];
        // In the copy, word for word as before.
        let copy: Vec<String> = losses
            .iter()
            .map(|l| l.text(dest, mount, LostDuring::Files))
            .collect();
        assert_eq!(copy, [
            "cannot create the folder /mnt/nas/restored/a: Read-only file system (os error 30): the destination became read-only during the run (Linux remounts a disk read-only after an error; a NAS share can turn read-only): stopped, and the files placed since the last commit were not recorded. See why (`dmesg`, the NAS's log), mount it read-write again and run the same command: the next run checks the files placed since the last commit",
            "the destination /mnt/nas/restored cannot be reached any more (Transport endpoint is not connected (os error 107)): the connection to its share was lost, or the program serving it (sshfs, a FUSE driver) ended. Stopped; no file is partial under its final name (files are written under a temporary name and renamed once complete; the next run removes temporary ones left behind), and the files placed since the last commit were not recorded: the next run checks them. Mount the share again at /mnt/nas (if it still says \"Transport endpoint is not connected\", unmount it first: umount -l /mnt/nas) and run the same command to continue",
            "/mnt/nas/restored is no longer the folder this restore started writing to (its disk unmounted or replaced, or the folder renamed or deleted): stopped, and the files placed since the last commit were not recorded. Mount the destination again (or give the folder its name back) and run the same command; files placed after the change may be in /mnt/nas/restored on the disk below the mount point, check and remove them",
        ]);
        for lost in &losses {
            let copy = lost.text(dest, mount, LostDuring::Files);
            assert!(
                copy.contains("the files placed since the last commit were not recorded"),
                "{copy}"
            );
            for (not_made, not_dated, left, next) in [
                (
                    0,
                    24_997,
                    "24,997 folders were not dated",
                    "run the same command: it dates them",
                ),
                (
                    1,
                    1_200,
                    "1 folder was not made and 1,200 were not dated",
                    "it makes and dates them",
                ),
                (3, 0, "3 folders were not made", "it makes them"),
            ] {
                let said = lost.text(
                    dest,
                    mount,
                    LostDuring::Folders {
                        not_made,
                        not_dated,
                    },
                );
                assert!(
                    said.contains("stopped after the last file")
                        && said.contains("the files were all handled and recorded before")
                        && said.contains(left)
                        && said.contains(next),
                    "{said}"
                );
                assert!(!said.contains("since the last commit"), "{said}");
                assert!(!said.contains("the next run checks"), "{said}");
            }
        }
    }

    /// Round 19's review: a restore refused by a full destination looked for every planned
    /// folder at DEST (one `lstat` each, one after the other, with nothing printed), to say
    /// how many are still to make: 337K round trips to a NAS, minutes, for a run that
    /// refuses to start. A folder below one that is not there is not there either, and the
    /// look stops after its budget, the rest counted in the proportion seen.
    #[test]
    fn a_full_destination_looks_for_few_folders_regression_round_19() {
        use crate::plan::{Origin, PlannedFolder};
        use std::time::{Duration, Instant};
        let dest = tempfile::tempdir().unwrap();
        let folder = |rel: String| PlannedFolder {
            depth: rel.matches('/').count(),
            rel_path: rel,
            mtime_ms: None,
            origin: Origin::User(0),
        };
        let mut folders = vec![folder("there".into()), folder("new".into())];
        for i in 0..200 {
            std::fs::create_dir_all(dest.path().join(format!("there/{i}"))).unwrap();
            folders.push(folder(format!("there/{i}")));
            folders.push(folder(format!("new/{i}")));
            folders.push(folder(format!("new/{i}/deeper")));
        }
        folders.sort_by(|a, b| b.depth.cmp(&a.depth).then(a.rel_path.cmp(&b.rel_path)));
        let mut looks = 0;
        let absent = |rel: &str, looks: &mut u64| {
            *looks += 1;
            matches!(dest.path().join(rel).symlink_metadata(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound)
        };
        let n = super::folders_not_there(&folders, Duration::from_secs(60), |rel| {
            absent(rel, &mut looks)
        });
        assert_eq!(n, 401, "new and the 400 folders below it");
        assert_eq!(looks, 202, "there, its 200 folders, and new");

        // A slow destination (every look a 2 ms round trip): the look stops at its budget,
        // and the folders not looked at count as those seen did.
        let started = Instant::now();
        let mut looks = 0;
        let n = super::folders_not_there(&folders, Duration::from_millis(100), |rel| {
            std::thread::sleep(Duration::from_millis(2));
            absent(rel, &mut looks)
        });
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(looks < 100, "{looks} looks");
        // `new`'s 400 need no look; of the 200 in `there` not looked at, few count.
        assert!((401..=450).contains(&n), "{n}");
    }

    #[test]
    fn space_still_needed_counts_the_folders_and_never_asks_for_0_bytes() {
        // Files only: as before.
        let (s, short) = space_still_needed(1_000, 5_000, 0, 4096);
        assert_eq!(short, 4_000);
        assert_eq!(
            s,
            "The destination has 1.0 kB free and about 5.0 kB is still to restore: free at least 4.0 kB more"
        );
        // Only folders left: their blocks are what to free.
        let (s, short) = space_still_needed(0, 0, 1_234, 4096);
        assert_eq!(short, 1_234 * 4096);
        assert_eq!(
            s,
            "The destination has 0 B free and about 0 B of files and 1,234 folders (about 5.1 MB) are still to restore: free at least 5.1 MB more"
        );
        let (s, _) = space_still_needed(0, 0, 1, 4096);
        assert!(s.contains("and 1 folder (about 4.1 kB) are"), "{s}");
        // Figures that fit in the free space: no "0 B more", a reason instead.
        for (free, files, folders) in [(8192, 0, 2), (10_000, 0, 0), (10_000, 5_000, 1)] {
            let (s, short) = space_still_needed(free, files, folders, 4096);
            assert_eq!(short, 0, "{s}");
            assert!(!s.contains("at least"), "{s}");
            assert!(
                s.contains("keeps part of its free space for itself")
                    && s.ends_with("quota on a NAS can be smaller than what is free)"),
                "{s}"
            );
        }
    }
}
