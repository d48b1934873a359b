//! Restoring one file: the only place that writes file data to the destination.
//!
//! A final name only ever holds complete content. On local Linux filesystems the data goes
//! into an unnamed file (`O_TMPFILE`) in the target folder, gets its dates, and is linked
//! to its final name when complete (`place_unnamed`): a kill at any moment leaves nothing
//! behind, and the link refuses a taken name. Where unnamed files are not supported (NFS,
//! SMB, FUSE) it goes to a hidden temporary name, is closed (checking close's result: NFS
//! reports write-back errors there) and renamed into place (`place_named`); a kill leaves
//! at most a `.mcr-*.part` file, which the next run removes. A folder on another
//! filesystem mounted inside DEST is found out by its refusal of the unnamed file and gets
//! the named way too (`restore_once`). Data moves inside the kernel
//! ([`Copier`]: `copy_file_range`, or `sendfile` across filesystems).
//!
//! Files are opened, created and linked relative to open folders, so the kernel does not walk
//! the whole path from `/` several times per file: the object store's folders are opened
//! once for all workers ([`ObjectFolders`]), and each worker keeps the destination folder of
//! its current file open ([`WorkerFolders`]).

use std::fs::{File, FileTimes, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::plan::PlannedFile;
use crate::source::SourceLayout;
use crate::state::{path_key, KeyHashing};
use std::collections::HashMap;

pub use crate::plan::names::{is_temp_name, temp_name};

/// Fault injection for tests that cannot produce a failure for real (CI runs as root, so a
/// chmod cannot make an object unreadable). Read once from `MYCLOUD_RECOVER_FAULTS`, e.g.
/// `unreadable=<contentID>;fail_close=<contentID>;abort_after_renames=5`. Unset in normal use.
#[derive(Debug, Default)]
pub struct Faults {
    pub unreadable: Vec<String>,
    pub fail_close: Vec<String>,
    /// Abort the process right after this many renames, before they are recorded.
    pub abort_after_renames: Option<u64>,
    /// Sleep this long before each file, so tests can interrupt a run mid-way.
    pub delay_ms: u64,
    /// Abort the process right after this many checkpoint commits.
    pub abort_after_commits: Option<u64>,
    /// Append the id of every file renamed into place to this file (to count copies).
    pub copy_log: Option<PathBuf>,
    /// Objects whose first read attempt times out (a stalled NAS), to exercise retries.
    pub flaky: Vec<String>,
    /// Objects that fail with EIO on every attempt while the disk answers otherwise (bad
    /// sectors of a failing disk).
    pub bad_sector: Vec<String>,
    /// Objects that open but whose data fails with EIO when the copy reads it (a bad sector
    /// inside the file; `bad_sector` fails the open). CI cannot make a disk fail a read.
    pub read_error: Vec<String>,
    /// Wait this long between retries instead of the real backoff (tests of many failures).
    pub backoff_ms: Option<u64>,
    /// Use named temporary files even where unnamed ones work (tests both ways locally).
    pub named_temps: bool,
    /// Hold back the count of the files this long (a slow count on a large index), so tests
    /// see the copy run ahead of it.
    pub count_delay_ms: u64,
    /// Sleep this long after the plan is built (a large database), so tests can interrupt
    /// a restore while it plans.
    pub plan_delay_ms: u64,
    /// Sleep this long just before a restore opens its checkpoint (the plan built, DEST
    /// made and tested), so tests can stop the state folder's share before the checkpoint's
    /// writes that precede the copy.
    pub open_delay_ms: u64,
    /// Commit the checkpoint this often instead of every 2 s, so a short test run makes
    /// many commits (the power-cut test cuts between them).
    pub commit_ms: Option<u64>,
    /// How far back of a crashed run's start a file's change time still counts as that
    /// run's (`changed_since`): tests set 0, having no ten minutes to wait.
    pub clock_slack_ms: Option<i64>,
    /// Objects whose copy panics once the file being written exists (a bug met on one
    /// file): the worker reports the file as failed and goes on.
    pub panic: Vec<String>,
    /// A thread of the pipeline that panics (`committer`, `planner`, `count`,
    /// `bookkeeper`, `folders`): the run stops with exit 101 and a resumable checkpoint.
    pub panic_in: Option<String>,
    /// Sleep this long before each folder of the passes after the files (making the empty
    /// folders, setting the folders' dates: a slow network destination), so tests can
    /// interrupt them or lose DEST during them.
    pub folder_delay_ms: u64,
    /// Sleep this long after each file `regen` looks at (a large destination), so tests can
    /// read the checkpoint and kill regen while it rebuilds.
    pub regen_delay_ms: u64,
    /// How long the source disk may not answer while a file's read of it is out, instead of
    /// the copy engine's `SOURCE_PATIENCE` (5 min), so that tests of a hung source do not
    /// wait that long.
    pub source_patience_ms: Option<u64>,
    flaky_hit: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Faults {
    pub fn from_env() -> Faults {
        let mut f = Faults::default();
        if let Ok(spec) = std::env::var("MYCLOUD_RECOVER_FAULTS") {
            for part in spec.split(';') {
                match part.split_once('=') {
                    Some(("unreadable", v)) => f.unreadable.push(v.to_string()),
                    Some(("fail_close", v)) => f.fail_close.push(v.to_string()),
                    Some(("abort_after_renames", v)) => f.abort_after_renames = v.parse().ok(),
                    Some(("delay_ms", v)) => f.delay_ms = v.parse().unwrap_or(0),
                    Some(("abort_after_commits", v)) => f.abort_after_commits = v.parse().ok(),
                    Some(("copy_log", v)) => f.copy_log = Some(PathBuf::from(v)),
                    Some(("flaky", v)) => f.flaky.push(v.to_string()),
                    Some(("bad_sector", v)) => f.bad_sector.push(v.to_string()),
                    Some(("read_error", v)) => f.read_error.push(v.to_string()),
                    Some(("backoff_ms", v)) => f.backoff_ms = v.parse().ok(),
                    Some(("named_temps", v)) => f.named_temps = v == "1",
                    Some(("count_delay_ms", v)) => f.count_delay_ms = v.parse().unwrap_or(0),
                    Some(("plan_delay_ms", v)) => f.plan_delay_ms = v.parse().unwrap_or(0),
                    Some(("open_delay_ms", v)) => f.open_delay_ms = v.parse().unwrap_or(0),
                    Some(("commit_ms", v)) => f.commit_ms = v.parse().ok(),
                    Some(("clock_slack_ms", v)) => f.clock_slack_ms = v.parse().ok(),
                    Some(("panic", v)) => f.panic.push(v.to_string()),
                    Some(("panic_in", v)) => f.panic_in = Some(v.to_string()),
                    Some(("folder_delay_ms", v)) => f.folder_delay_ms = v.parse().unwrap_or(0),
                    Some(("regen_delay_ms", v)) => f.regen_delay_ms = v.parse().unwrap_or(0),
                    Some(("source_patience_ms", v)) => f.source_patience_ms = v.parse().ok(),
                    _ => {}
                }
            }
        }
        f
    }

    /// Panics when the test asked for a panic in the thread `thread` (see `panic_in`).
    pub fn maybe_panic_in(&self, thread: &str) {
        if self.panic_in.as_deref() == Some(thread) {
            panic!("injected panic in the {thread} thread (MYCLOUD_RECOVER_FAULTS)");
        }
    }
}

/// How a file was restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Copied; `size_mismatch` when the object had another length than the database says;
    /// `replaced` when a file was at the final name and this copy replaced it (in a dry
    /// run, would have: only a [`Replaced::Differing`] is said there).
    Copied {
        bytes: u64,
        size_mismatch: bool,
        replaced: Option<Replaced>,
    },
    /// An identical file (same size, same date) was already at the final name;
    /// `object_bytes` when its size is the object's, which differs from the database's.
    Adopted { object_bytes: Option<u64> },
    /// The object's bytes were already at the final name under another date (`was_ms`):
    /// given the planned date, not copied.
    Redated { was_ms: i64 },
}

/// What a copy found at its final name and replaced. Known from the look at the name the copy
/// makes anyway (its size and date), so it costs nothing more, and only files where something
/// was in the way have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// What an interrupted run left there.
    Leftover(Leftover),
    /// A file that differed from the plan (`size` bytes, modified at `mtime_ms`), replaced
    /// because the run was asked to: `--overwrite`, or the file's `replace` (`regen` marked
    /// it, or its object now has the database's length).
    Differing { size: u64, mtime_ms: i64 },
}

/// What an interrupted run left at a final name, found by the next run and replaced: a power
/// cut can keep a file's name (and on ext4 its size and date) without all of its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// Shorter than planned, with the planned date: this many bytes.
    CutShort(u64),
    /// The planned size and date, other bytes (ext4 reads unwritten blocks as zeros).
    OtherBytes,
}

impl Leftover {
    /// The report's note for a file of `size` bytes that replaced this leftover.
    pub fn note(self, size: u64) -> String {
        match self {
            Leftover::CutShort(had) => format!(
                "replaced a cut-short copy ({had} of {size} bytes) that the interrupted run left at this name"
            ),
            Leftover::OtherBytes => "replaced a copy that the interrupted run left at this name with the right size and date but other bytes (its data had not reached the disk)".to_string(),
        }
    }
}

/// Why a file was not restored.
#[derive(Debug)]
pub enum NotRestored {
    /// No object for this row.
    Missing(String),
    /// The destination is full: stop the run.
    DestFull(String),
    /// The destination's filesystem turned read-only during the run (remounted so after a
    /// disk error): every file after this one would fail too, so the run stops.
    DestReadOnly(String),
    /// A disk or share did not answer: an error that says so (its FUSE daemon or its
    /// connection gone), or one worth retrying that lasted through every retry, while a
    /// probe made since found both disks answering ([`Watch::confirm`]): a failure of this
    /// file's own (a bad sector).
    NoAnswer(String),
    /// Anything else, with the path and the cause.
    Failed(String),
    /// Not tried to the end: the run stopped while this file was retried (a signal, or a
    /// disk found gone, which explains the file's errors). Nothing of it was placed; it
    /// counts as not processed, and the next run restores it.
    Abandoned,
}

/// What the copy of one file asks the run while the file keeps meeting errors that may
/// mean a disk went away (EIO, a timeout, "not connected"). A disk that died makes every
/// file fail that way, and each one's retries take seconds: the run, not each file,
/// finds out whether the disks still answer, and stops if not.
pub trait Watch: Sync {
    /// A file met such an error (said once per file); returns a ticket for
    /// [`Watch::confirm`]. Enough files meeting one make the run probe the disks.
    fn trouble(&self) -> u64;
    /// The file failed that way through every retry: whether its failure is its own (a
    /// probe made after its `trouble` found both disks answering; one is made now if
    /// none was). False: a disk is gone, the run stops, and the file is abandoned.
    fn confirm(&self, ticket: u64) -> bool;
    /// Whether the run is stopping: retries end and the file is abandoned.
    fn stopping(&self) -> bool;
}

/// What a worker needs to restore files.
pub struct CopyContext<'a> {
    pub source: &'a SourceLayout,
    pub dest: &'a Path,
    pub overwrite: bool,
    pub fsync_each: bool,
    pub dry_run: bool,
    pub faults: &'a Faults,
    pub renames: &'a std::sync::atomic::AtomicU64,
    pub dirs: &'a DirCache,
    pub objects: &'a ObjectFolders,
    pub copier: &'a Copier,
    /// The destination keeps names exactly as given (no folding of case or Unicode form), so
    /// a folder this run created cannot already hold a file's final name.
    pub exact_names: bool,
    /// The destination supports unnamed files linked into place (`place_unnamed`).
    pub unnamed_temps: bool,
    /// Files placed with a named temporary file although the destination has unnamed ones
    /// (their folder is on another filesystem, mounted inside it).
    pub named_fallbacks: &'a std::sync::atomic::AtomicU64,
    /// Since when (DEST's clock, ms) a file at its final name that the checkpoint does not
    /// record may be a crashed run's copy (`Checkpoint::unsure_since`): compared with its
    /// object, and if shorter with the planned date, taken for a cut-short copy. `None`: no
    /// crash left any doubt.
    pub unsure_since: Option<i64>,
    /// The smallest whole size (bytes) of DEST's filesystem and of those mounted inside it,
    /// taken once for the run ([`smallest_disk`]): a file larger than that may be larger
    /// than the whole filesystem it goes to, which [`larger_than_its_disk`] confirms before
    /// anything is written. Files below it cost nothing more.
    pub smallest_disk: u64,
    /// Asked while a file keeps meeting errors that may mean a disk went away.
    pub watch: &'a dyn Watch,
    /// Called while a file's bytes move ([`Copier::copy`], every [`Copier::CHUNK`]): a
    /// large file copied over a slow link is no call held by a disk (the run's watch
    /// counts from the last move, `CopyWork::held`).
    pub moved: &'a dyn Fn(),
}

/// How far DEST's clock may have stepped back during a run (or how coarse its times are)
/// without a crashed run's copy passing for an older file. Tests that cannot wait ten
/// minutes between filling DEST and a crash set it with the fault `clock_slack_ms=N`.
fn clock_slack_ms() -> i64 {
    static SLACK: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *SLACK.get_or_init(|| Faults::from_env().clock_slack_ms.unwrap_or(10 * 60 * 1000))
}

impl CopyContext<'_> {
    /// Whether the file `m` describes may be a crashed run's copy (see `unsure_since`).
    fn unsure(&self, m: &std::fs::Metadata) -> bool {
        changed_since(ctime_ms(m), self.unsure_since)
    }
}

/// Whether a file that last changed at `ctime_ms` may be a crashed run's copy: the doubt
/// began (`since`, see `CopyContext::unsure_since`) and the file changed after it.
pub fn changed_since(ctime_ms: i64, since: Option<i64>) -> bool {
    since.is_some_and(|since| ctime_ms >= since.saturating_sub(clock_slack_ms()))
}

/// When the file last changed (its inode: name, length, dates), in ms on its filesystem's
/// clock. A copy placed by a run has a change time after the run began, whatever date the
/// run gave it.
pub fn ctime_ms(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.ctime().saturating_mul(1000) + m.ctime_nsec() / 1_000_000
}

/// Folders known to exist on the destination, so each is created (and checked) once, and
/// whether this run created them: a folder this run created holds only what this run put
/// there, so a file's final name in it needs no check before the rename (one lookup less per
/// file, a network round trip on NFS). Folders are known by an xxh3-128 hash of their path,
/// used as its own hash: hashing a `Path` (SipHash over its components) under the lock,
/// and growing the table, made this cache 8% of a small-file restore's user CPU.
///
/// Every folder between DEST and a file is checked to be a real folder when first met: a
/// symbolic link there is refused, not followed, as it could send the restore outside DEST
/// (its files counted as restored where `verify` and the next run would not find them).
#[derive(Default)]
pub struct DirCache {
    /// DEST: folders below it are checked; it and those above it are the user's.
    root: PathBuf,
    /// Folder key -> created by this run.
    known: std::sync::Mutex<HashMap<u128, bool, KeyHashing>>,
    /// The folders this run created, for their dates at the end.
    created: std::sync::Mutex<Vec<PathBuf>>,
}

fn dir_key(dir: &Path) -> u128 {
    path_key(dir.as_os_str().as_encoded_bytes())
}

impl DirCache {
    /// A cache for the folders below `root`, with room for `folders` folders.
    pub fn new(root: &Path, folders: usize) -> DirCache {
        DirCache {
            root: root.to_path_buf(),
            known: std::sync::Mutex::new(HashMap::with_capacity_and_hasher(
                folders,
                KeyHashing::default(),
            )),
            created: Default::default(),
        }
    }

    /// Makes sure `dir` exists (creating missing parents) and says whether this run created it.
    pub fn ensure(&self, dir: &Path) -> io::Result<bool> {
        if let Some(&new) = lock(&self.known).get(&dir_key(dir)) {
            return Ok(new);
        }
        // Longer than Linux takes: said before thousands of parents are made for nothing.
        if dir.as_os_str().len() >= 4096 {
            return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
        }
        // The folders between the nearest known one (or DEST) and `dir`, made or checked top
        // down, so that none is reached through a symbolic link; a loop, not recursion: a
        // chain of thousands of folders must not overflow a worker's stack.
        let mut chain = vec![dir];
        let mut at = dir;
        while let Some(parent) = at.parent() {
            if parent == self.root
                || !parent.starts_with(&self.root)
                || lock(&self.known).contains_key(&dir_key(parent))
            {
                break;
            }
            chain.push(parent);
            at = parent;
        }
        let mut new = false;
        for d in chain.into_iter().rev() {
            let key = dir_key(d);
            let made = self.create(d, key)?;
            new = *lock(&self.known).entry(key).or_insert(made);
        }
        Ok(new)
    }

    /// One `mkdir` (its parent exists); a folder already there is checked to be a folder.
    fn create(&self, dir: &Path, key: u128) -> io::Result<bool> {
        match std::fs::create_dir(dir) {
            Ok(()) => {
                lock(&self.known).insert(key, true);
                lock(&self.created).push(dir.to_path_buf());
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Named in the error: it may be a parent of the folder the caller asked for,
                // and every folder and file below it fails with the same cause.
                let m = std::fs::symlink_metadata(dir)?;
                if m.is_symlink() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} is a symbolic link, not a folder (not followed: it could lead outside the destination); move it away, then run the same command again",
                            dir.display()
                        ),
                    ));
                }
                if !m.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!(
                            "{} is a file, not a folder, and is in the way; move it away, then run the same command again",
                            dir.display()
                        ),
                    ));
                }
                // Another worker may have just made it; if it has not recorded it yet, the
                // folder counts as pre-existing, which only costs a check per file.
                Ok(lock(&self.known).get(&key) == Some(&true))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether this run has made or seen this folder.
    pub fn knows(&self, dir: &Path) -> bool {
        lock(&self.known).contains_key(&dir_key(dir))
    }

    /// Folders this run created.
    pub fn created(&self) -> Vec<PathBuf> {
        lock(&self.created).clone()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Whether an existing file's modification time matches the expected one (2 s tolerance:
/// FAT and exFAT keep even seconds). No expected date matches any.
pub fn mtime_matches_ms(have_ms: i64, expected_ms: Option<i64>) -> bool {
    expected_ms.is_none_or(|ms| (have_ms - ms).abs() <= 2000)
}

pub fn mtime_matches(meta: &std::fs::Metadata, expected_ms: Option<i64>) -> bool {
    mtime_matches_ms(crate::walk::mtime_ms(meta), expected_ms)
}

/// Closes a file and returns close()'s error, which `drop` would discard.
#[allow(unsafe_code)]
pub(crate) fn close_checked(f: File) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = f.into_raw_fd();
    // SAFETY: `fd` was just released from an owned `File`, so it is open and owned by us and
    // closed exactly once here.
    let r = unsafe { libc::close(fd) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A write refused for want of room: no space or inode left (ENOSPC), or a quota used up.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Errors that say a disk or share is gone: its FUSE program ended, its connection lost,
/// the device removed.
pub fn says_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOTCONN | libc::ECONNABORTED | libc::ENXIO | libc::ENODEV | libc::EHOSTDOWN)
    )
}

/// Errors worth a retry: the NAS stalled or the handle went stale.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIMEDOUT | libc::EIO | libc::ESTALE | libc::EAGAIN | libc::EINTR)
    ) || matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Opens the object: sharded path first, then the flat layout. Errors are classified like
/// every other I/O error, so a stalled source disk is retried rather than failed. What is
/// opened is looked at (`fstat`) before anything is read: only a regular file is an object
/// ([`only_a_file`]). `verify` and `regen` find objects as this does, without opening them
/// ([`ObjectFolders::usable_object`]), and say what this says ([`NoObject`]).
fn open_object(
    ctx: &CopyContext<'_>,
    folders: &mut WorkerFolders,
    content_id: &str,
) -> Result<(File, PathBuf), Attempt> {
    if !crate::source::is_safe_content_id(content_id) {
        return Err(Attempt::Final(NoObject::unusable_id(content_id).into()));
    }
    let injected = |errno| Err(io::Error::from_raw_os_error(errno));
    // (shard folder, path): `files/<c>/<id>` first, then the flat `files/<id>`.
    let candidates = [
        ctx.source
            .sharded_object_path(content_id)
            .map(|p| (SourceLayout::shard_of(content_id), p)),
        Some((None, ctx.source.files.join(content_id))),
    ];
    for (shard, p) in candidates.into_iter().flatten() {
        if let Some(t) = ctx.objects.outside(shard) {
            let folder = p.parent().unwrap_or(&p);
            return Err(Attempt::Final(NoObject::shard_linked_out(folder, t).into()));
        }
        let opened = if ctx.faults.unreadable.iter().any(|c| c == content_id) {
            injected(libc::EACCES)
        } else if ctx.faults.bad_sector.iter().any(|c| c == content_id) {
            injected(libc::EIO)
        } else if ctx.faults.flaky.iter().any(|c| c == content_id)
            && ctx
                .faults
                .flaky_hit
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(content_id.to_string())
        {
            injected(libc::ETIMEDOUT)
        } else if folders.by_path {
            open_object_by_path(&p)
        } else {
            ctx.objects.open_object(shard, content_id, &p)
        };
        match opened {
            Ok(f) => return only_a_file(f, &p).map(|f| (f, p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return open_linked_object(ctx, p),
            Err(e) => return Err(io_fail("cannot read object", &p, e)),
        }
    }
    Err(Attempt::Final(
        NoObject::not_found(content_id, &ctx.source.files).into(),
    ))
}

/// The object opened at `shown`, if it is a regular file. A FIFO (opened without blocking,
/// and never read), a folder or a device is none: the file fails, said so. Until round 24 a
/// FIFO was read as empty and the file restored with no bytes (and the copy of a FIFO
/// made the rest of the run leave `copy_file_range` and `sendfile` for plain reads: both
/// refuse a pipe), and a folder failed with "Is a directory".
fn only_a_file(f: File, shown: &Path) -> Result<File, Attempt> {
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        Ok(m) => Err(Attempt::Final(
            NoObject::not_a_file(shown, crate::source::not_a_file(m.file_type())).into(),
        )),
        Err(e) => Err(io_fail("cannot read object", shown, e)),
    }
}

/// Why a file has no object a restore can copy, in the words the restore's report uses,
/// and what the restore does with the file: `verify` and `regen` say the same
/// ([`NoObject::said`]), found the same way ([`ObjectFolders::usable_object`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoObject {
    /// Nothing to copy: the restore lists the file as missing.
    Missing(String),
    /// Something stands where the object should be that the restore does not read (a
    /// link out of the object store, a folder, a FIFO, a device): listed as failed.
    Failed(String),
}

impl NoObject {
    fn unusable_id(content_id: &str) -> NoObject {
        NoObject::Missing(format!(
            "contentID {content_id:?} is not a usable object name"
        ))
    }

    fn not_found(content_id: &str, files: &Path) -> NoObject {
        NoObject::Missing(format!(
            "object {content_id} not found in {}",
            files.display()
        ))
    }

    fn shard_linked_out(folder: &Path, to: &Path) -> NoObject {
        NoObject::Failed(format!(
            "the object folder {} is a symbolic link to {}, outside the object store: not followed (on the device's disk mounted here it would read this computer's files)",
            folder.display(),
            to.display()
        ))
    }

    /// `what`: as [`crate::source::not_a_file`] says it.
    fn not_a_file(object: &Path, what: &str) -> NoObject {
        NoObject::Failed(format!(
            "object {} is {what}, not a file: it holds no bytes to copy (not read)",
            object.display()
        ))
    }

    /// Why, then what a restore does with the file: as `verify` and `regen` say it.
    pub fn said(&self) -> String {
        match self {
            NoObject::Missing(why) => format!("{why}: a restore lists this file as missing"),
            NoObject::Failed(why) => {
                format!("{why}: a restore cannot copy it and lists this file as failed")
            }
        }
    }
}

impl From<NoObject> for NotRestored {
    fn from(n: NoObject) -> NotRestored {
        match n {
            NoObject::Missing(why) => NotRestored::Missing(why),
            NoObject::Failed(why) => NotRestored::Failed(why),
        }
    }
}

/// Where the object `link` (a symbolic link) leads, followed as the restore follows it:
/// only into the object store `files`. On the device's disk mounted here, an absolute link
/// names a file of this computer, whose bytes would be restored as the user's file.
fn follow_object_link(files: &Path, link: &Path) -> Result<PathBuf, NoObject> {
    match (std::fs::canonicalize(link), std::fs::canonicalize(files)) {
        (Ok(t), Ok(store)) if t.starts_with(&store) => Ok(t),
        (Ok(t), _) => Err(NoObject::Failed(format!(
            "object {} is a symbolic link to {}, outside the object store: not followed (on the device's disk mounted here it would read this computer's file)",
            link.display(),
            t.display()
        ))),
        (Err(e), _) => Err(NoObject::Missing(format!(
            "object {} is a symbolic link that leads nowhere: {e}",
            link.display()
        ))),
    }
}

/// Restores one planned file, retrying transient errors with backoff.
/// `replace` allows replacing a differing file at the final name (regen marked it).
pub fn restore_file(
    ctx: &CopyContext<'_>,
    folders: &mut WorkerFolders,
    job: &PlannedFile,
    replace: bool,
) -> Result<Restored, NotRestored> {
    const BACKOFF_MS: [u64; 3] = [200, 1000, 4000];
    if ctx.faults.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(ctx.faults.delay_ms));
    }
    let mut attempt = 0;
    folders.by_path = false;
    // Set at this file's first error that may mean a disk went away.
    let mut ticket = None;
    // A failure that may be the disk's: the file's own only if the disks still answer.
    let no_answer = |ticket: Option<u64>, msg: String| {
        let ticket = ticket.unwrap_or_else(|| ctx.watch.trouble());
        Err(if ctx.watch.confirm(ticket) {
            NotRestored::NoAnswer(msg)
        } else {
            NotRestored::Abandoned
        })
    };
    loop {
        let result = restore_once(ctx, folders, job, replace).map_err(|a| match a {
            Attempt::Written(msg, e) => weigh_write_error(ctx, job, msg, e),
            a => a,
        });
        match result {
            Err(Attempt::Transient(_)) if attempt < BACKOFF_MS.len() => {
                ticket.get_or_insert_with(|| ctx.watch.trouble());
                // A folder kept open may be what went stale (a disk unplugged and mounted
                // again, an NFS handle): the retries of this file go by path.
                folders.forget();
                let wait = ctx.faults.backoff_ms.unwrap_or(BACKOFF_MS[attempt]);
                let until = std::time::Instant::now() + Duration::from_millis(wait);
                loop {
                    // A run stopping (a disk found gone, a signal) does not wait for retries.
                    if ctx.watch.stopping() {
                        return Err(NotRestored::Abandoned);
                    }
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(50)));
                }
                attempt += 1;
            }
            Err(Attempt::Transient(msg)) => {
                return no_answer(ticket, format!("{msg} (after {} tries)", attempt + 1))
            }
            Err(Attempt::Final(NotRestored::NoAnswer(msg))) => return no_answer(ticket, msg),
            Err(Attempt::Final(n)) => return Err(n),
            Err(Attempt::Written(..)) => unreachable!("weighed above"),
            Ok(r) => return Ok(r),
        }
    }
}

/// [`restore_file`], with a panic (a bug met on this one file) made a failure of the file:
/// the worker goes on with the next one, the file is listed with the panic's message, and
/// the next run tries it again. Without this, the worker's thread ended, the files of its
/// chunk went unreported and the run ended with exit 101 after copying everything else.
/// The file's temporary name (network destinations) is removed, and the worker's open
/// folders closed: either may have been left half-done.
pub fn restore_file_caught(
    ctx: &CopyContext<'_>,
    folders: &mut WorkerFolders,
    job: &PlannedFile,
    replace: bool,
) -> Result<Restored, NotRestored> {
    let run = std::panic::AssertUnwindSafe(|| restore_file(ctx, folders, job, replace));
    std::panic::catch_unwind(run).unwrap_or_else(|payload| {
        folders.forget();
        if !ctx.dry_run {
            let target = ctx.dest.join(&job.rel_path);
            let dir = target.parent().unwrap_or(ctx.dest);
            let _ = std::fs::remove_file(dir.join(temp_name(&job.id)));
        }
        Err(NotRestored::Failed(format!(
            "internal error (a bug in mycloud-recover; please report it): {}. Not restored; the next run tries it again",
            panic_text(payload.as_ref())
        )))
    })
}

/// The message a panic was raised with.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

enum Attempt {
    Transient(String),
    Final(NotRestored),
    /// Writing to DEST failed (`write_fail`): weighed against DEST's free space by
    /// [`restore_file`] once the attempt is over, then classified like any error.
    Written(String, io::Error),
}

fn io_fail(what: &str, path: &Path, e: io::Error) -> Attempt {
    let msg = fail_text(what, path, &e);
    classify(msg, e)
}

/// A failed write to DEST (a folder made, a file created, filled, closed, named): may
/// stand for a full disk that said "Input/output error" ([`weigh_write_error`]).
fn write_fail(what: &str, path: &Path, e: io::Error) -> Attempt {
    Attempt::Written(fail_text(what, path, &e), e)
}

/// Below this much free space, a write error on DEST is taken for a full disk whatever the
/// file's size: another worker's file in flight may hold the last blocks for a moment, and
/// a file needs blocks beyond its length (its folder's entry, metadata).
const ALMOST_NO_BYTES: u64 = 1 << 20;
/// The same for free inodes (room for files and folders).
const ALMOST_NO_INODES: u64 = 16;

/// Why a file of `needed` bytes does not fit on a filesystem with `free_bytes` and
/// `free_inodes` (`None`: it does not count them) left, or `None` if it fits.
fn no_room(free_bytes: u64, free_inodes: Option<u64>, needed: u64) -> Option<String> {
    use crate::report::human_bytes;
    if let Some(n) = free_inodes.filter(|n| *n < ALMOST_NO_INODES) {
        return Some(format!(
            "the destination has room for only {n} more files or folders"
        ));
    }
    (free_bytes < needed.max(ALMOST_NO_BYTES)).then(|| {
        format!(
            "the destination has {} free for a file of {}",
            human_bytes(free_bytes),
            human_bytes(needed)
        )
    })
}

/// A write error on DEST that does not say "full" (ENOSPC) is weighed against DEST's free
/// space: a share over SSH (sshfs) turns a full disk into "Input/output error", as SFTP has
/// no status for it, and some NAS do alike. With no room left for the file (or almost none
/// at all), it is a full destination: the run stops, as for ENOSPC, rather than retry and
/// fail every file left as a disk fault. With room, it is the error it says. Weighed once
/// the attempt is over, when its partial file is gone and no longer counts against the
/// file. The space is the file's own filesystem's (`statvfs` of its nearest folder that
/// exists: DEST may hold another filesystem mounted inside it); network filesystems
/// (NFS, SMB, sshfs) report their server's. Only DEST's errors come here: a read error of
/// the source met while copying is told apart ([`Copier::copy`]) and is the source's.
fn weigh_write_error(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    msg: String,
    e: io::Error,
) -> Attempt {
    weigh_dest_error(ctx.dest, &ctx.dest.join(&job.rel_path), job.size, msg, e)
}

/// A folder below `dest` that could not be made (`e`), weighed as a file's write is
/// (`weigh_write_error`): a full destination (ENOSPC, or an I/O error with no room left)
/// is `DestFull` and a read-only one `DestReadOnly`, and either stops the run as it does
/// during the copy; anything else fails the folder (unless the caller finds DEST gone).
/// The empty folders are made in a pass of their own after the files, and a full or
/// read-only disk there was listed folder by folder as "cannot create".
pub fn weigh_folder_error(dest: &Path, folder: &Path, e: io::Error) -> FolderNotMade {
    let msg = fail_text("cannot create the folder", folder, &e);
    match weigh_dest_error(dest, folder, 0, msg.clone(), e) {
        Attempt::Final(NotRestored::DestFull(m)) => FolderNotMade::DestFull(m),
        Attempt::Final(NotRestored::DestReadOnly(m)) => FolderNotMade::DestReadOnly(m),
        Attempt::Final(
            NotRestored::Failed(m) | NotRestored::NoAnswer(m) | NotRestored::Missing(m),
        )
        | Attempt::Transient(m)
        | Attempt::Written(m, _) => FolderNotMade::Failed(m),
        Attempt::Final(NotRestored::Abandoned) => FolderNotMade::Failed(msg),
    }
}

/// Why a folder of the empty-folder pass was not made ([`weigh_folder_error`]).
#[derive(Debug)]
pub enum FolderNotMade {
    /// The destination is full: the pass stops, as the copy does.
    DestFull(String),
    /// The destination turned read-only: the pass stops, as the copy does.
    DestReadOnly(String),
    /// This folder's own failure (a file in the way, say), with the path and the cause.
    Failed(String),
}

/// [`weigh_write_error`] for a write at `target` (below `dest`) that needed `needed` bytes.
fn weigh_dest_error(dest: &Path, target: &Path, needed: u64, msg: String, e: io::Error) -> Attempt {
    let fs = || filesystem_of(dest, target).map(|(_, fs)| fs);
    match full_by_room(&e, target, fs, needed) {
        Some(room) => Attempt::Final(NotRestored::DestFull(format!("{msg}, {room}"))),
        None => classify(msg, e),
    }
}

/// The filesystem a write at `target` (below `dest`) goes to: `statvfs` of its nearest
/// folder that exists, below `dest` or `dest` itself (DEST may hold another filesystem
/// mounted inside it), and that folder.
fn filesystem_of<'a>(dest: &Path, target: &'a Path) -> Option<(&'a Path, rustix::fs::StatVfs)> {
    (target.ancestors().skip(1))
        .take_while(|p| p.starts_with(dest))
        .find_map(|p| rustix::fs::statvfs(p).ok().map(|fs| (p, fs)))
}

/// The smallest whole size (bytes) of `dest`'s filesystem and of those mounted inside it
/// (`u64::MAX` where none can be looked at): a file at most that large fits on whichever
/// of them it goes to, once room is made. Taken once for a run.
pub fn smallest_disk(dest: &Path) -> u64 {
    std::iter::once(dest.to_path_buf())
        .chain(crate::fsinfo::mounts_inside(dest))
        .filter_map(|p| rustix::fs::statvfs(&p).ok())
        .map(|fs| fs.f_blocks.saturating_mul(fs.f_frsize))
        .min()
        .unwrap_or(u64::MAX)
}

/// Why the file whose object is `src`, to be written at `target`, is a failure before
/// anything is written, or `None`: its object larger than the whole filesystem it goes to
/// ([`larger_than_its_disk`]). Said as when DEST refused its bytes as full: "cannot write
/// ...: No space left on device: the file ... is larger than the whole filesystem". Asked
/// only of a file larger than [`CopyContext::smallest_disk`] (its length and that
/// filesystem looked at then).
fn too_large_for_its_disk(
    ctx: &CopyContext<'_>,
    src: Option<&(File, PathBuf)>,
    target: &Path,
) -> Option<String> {
    let len = src?.0.metadata().ok()?.len();
    let why = larger_than_its_disk(ctx.dest, target, len)?;
    let full = io::Error::from_raw_os_error(libc::ENOSPC);
    Some(format!("cannot write {}: {full}: {why}", target.display()))
}

/// Why a file of `size` bytes that DEST refused as full at `target` (below `dest`) is a
/// failure of its own, or `None`: larger than the whole filesystem it goes to, it never
/// fits, whatever is freed there. Only such a file is failed; any other that a full DEST
/// refuses is not processed, and the run stops for room to be made (the files
/// a full DEST refused as the run stopped were listed as failed).
pub fn larger_than_its_disk(dest: &Path, target: &Path, size: u64) -> Option<String> {
    use crate::report::human_bytes;
    let (folder, fs) = filesystem_of(dest, target)?;
    let whole = fs.f_blocks.saturating_mul(fs.f_frsize);
    (size > whole).then(|| {
        format!(
            "the file ({}) is larger than the whole filesystem it goes to, that of {} ({} in all): no space freed there makes it fit; restore it onto a bigger disk (`--only` with its folder)",
            human_bytes(size),
            folder.display(),
            human_bytes(whole)
        )
    })
}

/// Whether DEST's error `e` writing `at` that does not say "full" (not ENOSPC) is taken
/// for a full destination all the same, by the room left on its filesystem (`fs`, its
/// `statvfs`, looked at only for such an error): why ("and the destination has ..."), or
/// `None`. Errors that say what else they are (a name too long, a read-only filesystem, a
/// name taken where something is there, or where a file stands in the way of one of its
/// folders: round 20's review saw that one taken for a full disk) are never weighed. Used by the copy
/// (`weigh_write_error`, [`weigh_folder_error`]) and by the start-up probe of DEST
/// (`restore::FullAtStart`): a full disk behind an sshfs share answered the probe file's
/// close with "Input/output error", and the making of a folder with "File exists" with
/// nothing there (round 20).
///
/// The room is what this process may write ([`crate::fsinfo::writable_blocks`], which
/// pre-flight counts too): as root on a filesystem of this machine, the blocks it keeps for
/// root (ext4's 5%) too, which `f_bavail` leaves out (round 21: as root on an ext4 filled
/// up to them, one file's failed close stopped the run as "full" with megabytes left for
/// it). A local filesystem says "full" as such (ENOSPC), so this only keeps its other
/// errors from being taken for one. On a share, `f_bavail`, also as root.
pub fn full_by_room(
    e: &io::Error,
    at: &Path,
    fs: impl FnOnce() -> Option<rustix::fs::StatVfs>,
    needed: u64,
) -> Option<String> {
    // A name taken: something at `at`, or a file (or a link) where one of its folders goes,
    // which this program's own error says without an OS code ("... is in the way").
    let taken = || {
        e.raw_os_error().is_none()
            || at.symlink_metadata().is_ok()
            || (at.ancestors().skip(1)).any(|p| p.symlink_metadata().is_ok_and(|m| !m.is_dir()))
    };
    let says_what_else = (e.kind() == io::ErrorKind::AlreadyExists && taken())
        || matches!(
            e.raw_os_error(),
            Some(libc::ENAMETOOLONG | libc::EROFS | libc::ENOSPC | libc::EDQUOT)
        );
    if says_what_else {
        return None;
    }
    let fs = fs()?;
    let blocks = crate::fsinfo::writable_blocks(&fs, &crate::fsinfo::probe(at)).blocks;
    let free_inodes = crate::fsinfo::inodes(&fs).map(|(free, _)| free);
    let room = no_room(blocks.saturating_mul(fs.f_frsize), free_inodes, needed)?;
    Some(format!(
        "and {room}: taken for a full destination (a share over the network, such as sshfs or some NAS, reports a full disk as an I/O error)"
    ))
}

/// The message for `what` failing on `path` with `e`.
fn fail_text(what: &str, path: &Path, e: &io::Error) -> String {
    let mut msg = format!("{what} {}: {e}", path.display());
    if e.raw_os_error() == Some(libc::ENAMETOOLONG) {
        // Each name is at most 255 bytes (the plan sees to it); the whole path is too long.
        msg.push_str(&format!(
            " (the whole path is {} bytes; Linux allows 4,096: restore this folder with --only into a destination with a shorter path, or copy it by hand)",
            path.as_os_str().len()
        ));
    }
    msg
}

/// What an I/O error means for the file: a full or read-only destination stops the run,
/// a stall or a handle gone stale is retried, a disk or share gone is asked about.
fn classify(msg: String, e: io::Error) -> Attempt {
    if is_full(&e) {
        Attempt::Final(NotRestored::DestFull(msg))
    } else if e.raw_os_error() == Some(libc::EROFS) {
        Attempt::Final(NotRestored::DestReadOnly(msg))
    } else if is_transient(&e) {
        Attempt::Transient(msg)
    } else if says_gone(&e) {
        Attempt::Final(NotRestored::NoAnswer(msg))
    } else {
        Attempt::Final(NotRestored::Failed(msg))
    }
}

fn restore_once(
    ctx: &CopyContext<'_>,
    folders: &mut WorkerFolders,
    job: &PlannedFile,
    replace: bool,
) -> Result<Restored, Attempt> {
    let target = ctx.dest.join(&job.rel_path);
    let dir = target.parent().unwrap_or(ctx.dest);
    // Longer than Linux takes: the file could be made relative to its open folder, but
    // nothing would find it by its path afterwards (`verify`, the resume's look at DEST,
    // `regen`, this check after a crash). It fails, said so, as its folder would
    // (`DirCache::ensure`).
    if target.as_os_str().len() >= crate::plan::MAX_PATH_BYTES {
        let too_long = io::Error::from_raw_os_error(libc::ENAMETOOLONG);
        return Err(io_fail("cannot create", &target, too_long));
    }

    let new_dir = if ctx.dry_run {
        false
    } else {
        folders
            .ensure(ctx.dirs, dir)
            .map_err(|e| write_fail("cannot create folder", dir, e))?
    };
    // In a folder this run created, nothing can be at the final name yet (the planner gives
    // every file its own name) if the destination keeps names exactly; linking an unnamed
    // file refuses a taken name anyway.
    let unnamed = ctx.unnamed_temps && !ctx.faults.named_temps;
    let mut replace = replace;
    let mut replaced = None;
    let checked = !(new_dir && (ctx.exact_names || unnamed));
    let mut object = || {
        let cid = job.content_id.as_deref()?;
        open_object(ctx, folders, cid).ok().map(|(f, _)| f)
    };
    if checked {
        match check_existing(ctx, job, &target, replace, &mut object)? {
            Found::Nothing => {}
            Found::Identical(object_bytes) => return Ok(Restored::Adopted { object_bytes }),
            Found::Redated(was_ms) => return Ok(Restored::Redated { was_ms }),
            Found::Replace(r) => {
                replace = true;
                replaced = Some(r);
            }
        }
    }

    let src = match &job.content_id {
        Some(cid) => Some(open_object(ctx, folders, cid)?),
        None if job.size == 0 => None,
        None => {
            return Err(Attempt::Final(NotRestored::Missing(
                "the database row has no contentID (no object was ever stored)".into(),
            )))
        }
    };
    if ctx.dry_run {
        return Ok(Restored::Copied {
            bytes: job.size,
            size_mismatch: false,
            replaced: replaced.filter(|r| matches!(r, Replaced::Differing { .. })),
        });
    }

    // Larger than the whole filesystem it goes to: it never fits, failed before anything is
    // written (`too_large_for_its_disk`). Until round 24 it was written until that disk was
    // full, then removed, by every run again (a 10 GB video onto a 4 GB stick: 4 GB each
    // time).
    if job.size > ctx.smallest_disk {
        if let Some(why) = too_large_for_its_disk(ctx, src.as_ref(), &target) {
            return Err(Attempt::Final(NotRestored::Failed(why)));
        }
    }

    let placed = if unnamed {
        let folder = folders
            .dest(dir)
            .map_err(|e| io_fail("cannot open folder", dir, e))?;
        match folder.create_unnamed() {
            Ok(out) => place_unnamed(ctx, job, src, folder, out, &target, replace)?,
            // A folder on another filesystem mounted inside DEST (a FUSE or exFAT disk, say)
            // may have no unnamed files: a named temporary file there, as on NFS. That
            // filesystem's naming rules were not probed, so the final name is checked first.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
                if !checked {
                    let mut object = || src.as_ref().and_then(|(f, _)| f.try_clone().ok());
                    match check_existing(ctx, job, &target, replace, &mut object)? {
                        Found::Nothing => {}
                        Found::Identical(object_bytes) => {
                            return Ok(Restored::Adopted { object_bytes })
                        }
                        Found::Redated(was_ms) => return Ok(Restored::Redated { was_ms }),
                        Found::Replace(r) => replaced = Some(r),
                    }
                }
                ctx.named_fallbacks.fetch_add(1, Relaxed);
                place_named(ctx, job, src, dir, &target)?
            }
            Err(e) => return Err(write_fail("cannot create a file in", dir, e)),
        }
    } else {
        place_named(ctx, job, src, dir, &target)?
    };
    let bytes = match placed {
        Placed::Copied(bytes, found) => {
            replaced = found.or(replaced);
            bytes
        }
        Placed::Found(r) => return Ok(r),
    };
    if let Some(log) = &ctx.faults.copy_log {
        use std::io::Write;
        let line = format!("{}\n", job.id);
        let _ = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
    if let Some(n) = ctx.faults.abort_after_renames {
        let done = ctx
            .renames
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if done >= n {
            // Simulates a crash between rename and checkpoint record.
            std::process::abort();
        }
    }
    Ok(Restored::Copied {
        bytes,
        size_mismatch: bytes != job.size || job.size_unusable.is_some(),
        replaced,
    })
}

/// What putting a file in place found.
enum Placed {
    /// Written and in place: this many bytes, and what it replaced when the name turned out
    /// to be taken after the copy.
    Copied(u64, Option<Replaced>),
    /// The final name turned out to be taken after the copy (see `place_unnamed`).
    Found(Restored),
}

/// A hidden temporary name in the target folder, renamed into place once complete and
/// closed (NFS reports write-back errors at close). Used where unnamed files are not
/// supported (NFS, SMB, FUSE); a crash can leave the temporary file, which the next run
/// removes.
fn place_named(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    src: Option<(File, PathBuf)>,
    dir: &Path,
    target: &Path,
) -> Result<Placed, Attempt> {
    let tmp = dir.join(temp_name(&job.id));
    let result = (|| {
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| write_fail("cannot create", &tmp, e))?;
        let bytes = fill(ctx, job, src.as_ref(), &out, &tmp)?;
        check_close(ctx, job, out, &tmp)?;
        std::fs::rename(&tmp, target).map_err(|e| write_fail("cannot rename into", target, e))?;
        Ok(Placed::Copied(bytes, None))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An unnamed file (`O_TMPFILE`) in the target folder, linked to its final name once
/// complete. One directory operation per file instead of two (create and rename), which on
/// ext4 measured 25-30% faster at 100,000 files (docs/PERFORMANCE.md); a crash leaves
/// nothing behind (the kernel frees an unlinked file); and the link never replaces an
/// existing name, so a name taken in the meantime (or a second spelling on a destination
/// that folds names) is found, not overwritten.
fn place_unnamed(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    src: Option<(File, PathBuf)>,
    folder: &Folder,
    out: File,
    target: &Path,
    replace: bool,
) -> Result<Placed, Attempt> {
    let dir = folder.path();
    let name = target.file_name().unwrap_or_default();
    let bytes = fill(ctx, job, src.as_ref(), &out, target)?;
    // Where the close would fail, the test fault fails before the file gets its name.
    injected_close_failure(ctx, job, target)?;
    let mut replaced = None;
    match folder.link(&out, name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Taken since the check (or never checked, in a folder this run made). Asked
            // to replace it (`replace`), the caller knows what was there from its check.
            if !replace {
                match check_existing(ctx, job, target, false, &mut || {
                    src.as_ref().and_then(|(f, _)| f.try_clone().ok())
                })? {
                    Found::Identical(object_bytes) => {
                        return Ok(Placed::Found(Restored::Adopted { object_bytes }))
                    }
                    Found::Redated(was_ms) => {
                        return Ok(Placed::Found(Restored::Redated { was_ms }))
                    }
                    Found::Replace(r) => replaced = Some(r),
                    Found::Nothing => {
                        return Err(Attempt::Transient(format!(
                            "{} appeared and vanished during the copy",
                            target.display()
                        )))
                    }
                }
            }
            // Replace in one step: link under the temporary name, rename over the file.
            let tmp = dir.join(temp_name(&job.id));
            let _ = std::fs::remove_file(&tmp);
            folder
                .link(&out, tmp.file_name().unwrap_or_default())
                .map_err(|e| write_fail("cannot link", &tmp, e))?;
            if let Err(e) = std::fs::rename(&tmp, target) {
                let _ = std::fs::remove_file(&tmp);
                return Err(write_fail("cannot rename into", target, e));
            }
        }
        Err(e) => return Err(write_fail("cannot link into", target, e)),
    }
    if let Err(e) = check_close(ctx, job, out, target) {
        // Local filesystems report nothing at close, but if one ever does, the name goes.
        let _ = std::fs::remove_file(target);
        return Err(e);
    }
    Ok(Placed::Copied(bytes, replaced))
}

/// An open folder (`O_PATH`): files in it are opened, created and named relative to it.
pub struct Folder {
    path: PathBuf,
    fd: std::os::fd::OwnedFd,
}

/// `linkat(AT_EMPTY_PATH)` was refused (before Linux 6.10 it needs CAP_DAC_READ_SEARCH), so
/// links go through `/proc/self/fd`, which costs a lookup of that path per file.
static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);

impl Folder {
    pub fn open(path: &Path) -> io::Result<Folder> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Folder {
            path: path.to_path_buf(),
            fd,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the object `name` in this folder for reading, not blocking (see
    /// `open_object_by_path`).
    pub fn open_file(&self, name: &std::ffi::OsStr) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(File::from(fd))
    }

    /// An unnamed file (`O_TMPFILE`) for writing in this folder.
    pub fn create_unnamed(&self) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )?;
        Ok(File::from(fd))
    }

    /// Gives an unnamed file the name `name` in this folder; fails with `AlreadyExists`
    /// rather than replace one. By the open file itself where the kernel allows it, else
    /// through `/proc/self/fd`, which needs no privilege.
    pub fn link(&self, f: &File, name: &std::ffi::OsStr) -> io::Result<()> {
        if !EMPTY_PATH_REFUSED.load(Relaxed) {
            match rustix::fs::linkat(f, "", &self.fd, name, rustix::fs::AtFlags::EMPTY_PATH) {
                Ok(()) => return Ok(()),
                // Refused for lack of privilege (ENOENT is what the kernel says then).
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.link_by_proc(f, name)?;
        // The same link worked by path, so it was the empty path that was refused.
        EMPTY_PATH_REFUSED.store(true, Relaxed);
        Ok(())
    }

    /// [`Folder::link`] through `/proc/self/fd/N`.
    fn link_by_proc(&self, f: &File, name: &std::ffi::OsStr) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
        rustix::fs::linkat(
            rustix::fs::CWD,
            proc_path.as_str(),
            &self.fd,
            name,
            rustix::fs::AtFlags::SYMLINK_FOLLOW,
        )?;
        Ok(())
    }
}

/// Opens an object for reading without blocking: a FIFO in the object store (it has no
/// writer) would otherwise hang its worker in `open` for good; opened so it reads as empty
/// and the file is restored with a note on its length. On regular files the flag changes
/// nothing. A symbolic link is not followed here (`ELOOP`): see `open_linked_object`.
fn open_object_by_path(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}

/// An object that is a symbolic link: followed only when it leads to a file inside the
/// object store ([`follow_object_link`]).
fn open_linked_object(ctx: &CopyContext<'_>, link: PathBuf) -> Result<(File, PathBuf), Attempt> {
    use std::os::unix::fs::OpenOptionsExt;
    let t = follow_object_link(&ctx.source.files, &link).map_err(|n| Attempt::Final(n.into()))?;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&t)
        .map_err(|e| io_fail("cannot read object", &link, e))?;
    only_a_file(f, &link).map(|f| (f, link))
}

/// The object store's folders (`files/` and its shard folders `files/<c>/`), opened once
/// and shared by every worker: an object is opened relative to its folder. At most 33
/// descriptors whatever the number of workers (`preflight::model::FDS_RESERVED`).
pub struct ObjectFolders {
    /// `files/` itself (the flat layout), when it could be opened.
    files: Option<Folder>,
    /// The shard folders, indexed by their one-character (ASCII) name.
    shards: Vec<Option<Folder>>,
    /// Shard folders that are symbolic links leading outside the object store, with where
    /// they lead: not followed (see `open_linked_object`).
    outside: Vec<Option<PathBuf>>,
}

impl ObjectFolders {
    /// The shard folder names tried: the contentID alphabet a real device uses (base32:
    /// `a`-`z`, `2`-`7`); any other shard is opened by path.
    pub const SHARD_NAMES: &str = "abcdefghijklmnopqrstuvwxyz234567";
    pub const MAX_SHARDS: usize = Self::SHARD_NAMES.len();

    /// Opens `files` and its shard folders (one open per expected name: listing `files/`
    /// would read every object's name in the flat layout).
    pub fn open(files: &Path) -> ObjectFolders {
        let mut shards: Vec<Option<Folder>> = (0..128).map(|_| None).collect();
        let mut outside: Vec<Option<PathBuf>> = (0..128).map(|_| None).collect();
        let store = std::fs::canonicalize(files).ok();
        for c in Self::SHARD_NAMES.chars() {
            let shard = files.join(c.to_string());
            if std::fs::symlink_metadata(&shard).is_ok_and(|m| m.is_symlink()) {
                match (std::fs::canonicalize(&shard), &store) {
                    (Ok(t), Some(store)) if t.starts_with(store) => {}
                    (Ok(t), _) => {
                        outside[c as usize] = Some(t);
                        continue;
                    }
                    (Err(_), _) => continue,
                }
            }
            shards[c as usize] = Folder::open(&shard).ok();
        }
        ObjectFolders {
            files: Folder::open(files).ok(),
            shards,
            outside,
        }
    }

    /// The shard folders of `files` that are symbolic links out of the object store, as
    /// [`ObjectFolders::open`] finds them, and no folder opened: for [`ObjectFolders::outside`]
    /// alone (`verify`). One `lstat` per shard name; the store resolved only when a shard
    /// is a link.
    pub fn links_out_of(files: &Path) -> ObjectFolders {
        let mut outside: Vec<Option<PathBuf>> = (0..128).map(|_| None).collect();
        let mut store = None;
        for c in Self::SHARD_NAMES.chars() {
            let shard = files.join(c.to_string());
            if !std::fs::symlink_metadata(&shard).is_ok_and(|m| m.is_symlink()) {
                continue;
            }
            let store = store.get_or_insert_with(|| std::fs::canonicalize(files).ok());
            match (std::fs::canonicalize(&shard), &*store) {
                (Ok(t), Some(store)) if t.starts_with(store) => {}
                (Ok(t), _) => outside[c as usize] = Some(t),
                (Err(_), _) => {}
            }
        }
        ObjectFolders {
            files: None,
            shards: (0..128).map(|_| None).collect(),
            outside,
        }
    }

    /// Where the shard folder `shard` leads when it is a symbolic link out of the store.
    pub fn outside(&self, shard: Option<char>) -> Option<&Path> {
        let c = shard.filter(char::is_ascii)?;
        self.outside.get(c as usize)?.as_deref()
    }

    /// The object a restore copies the file of `content_id` from, found as the restore
    /// finds it (`open_object`), without opening anything: the path to read (a link inside
    /// the object store followed) and its length. `Ok(Err(_))`: none a restore can copy,
    /// with why and what the restore does with the file, in its words. One `lstat` for an
    /// object in its place (`SourceLayout::object_entry`). For `verify` and `regen`, which
    /// until round 24 followed a link out of the store (and a shard folder linked out of
    /// it), counting a file the restore fails as one to copy, and reading this computer's
    /// file as the object; a FIFO was "not found" for `verify`, while the restore made an
    /// empty file of it. A place that cannot be looked at is an error.
    pub fn usable_object(
        &self,
        source: &SourceLayout,
        content_id: &str,
    ) -> Result<Result<(PathBuf, u64), NoObject>, crate::source::SourceError> {
        use crate::source::ObjectEntry;
        if !crate::source::is_safe_content_id(content_id) {
            return Ok(Err(NoObject::unusable_id(content_id)));
        }
        let shard = SourceLayout::shard_of(content_id);
        if let Some(t) = self.outside(shard) {
            let folder = source.files.join(shard.unwrap_or_default().to_string());
            return Ok(Err(NoObject::shard_linked_out(&folder, t)));
        }
        Ok(match source.object_entry(content_id)? {
            ObjectEntry::File(p, len) => Ok((p, len)),
            ObjectEntry::NotAFile(p, what) => Err(NoObject::not_a_file(&p, what)),
            ObjectEntry::Missing => Err(NoObject::not_found(content_id, &source.files)),
            ObjectEntry::Link(link) => {
                follow_object_link(&source.files, &link).and_then(|t| match std::fs::metadata(&t) {
                    Ok(m) if m.is_file() => Ok((t, m.len())),
                    Ok(m) => Err(NoObject::not_a_file(
                        &link,
                        crate::source::not_a_file(m.file_type()),
                    )),
                    Err(_) => Err(NoObject::not_found(content_id, &source.files)),
                })
            }
        })
    }

    /// Opens the object `usable_object` found at `path`, for reading its bytes (`verify
    /// --content`, `regen --content`): without blocking and without following a link (a
    /// FIFO put there since would otherwise hold the reader for good), and only if it is
    /// (still) a regular file.
    pub fn open_found(path: &Path) -> io::Result<File> {
        let f = open_object_by_path(path)?;
        if f.metadata()?.is_file() {
            Ok(f)
        } else {
            Err(io::Error::other(format!(
                "{} is no longer a regular file",
                path.display()
            )))
        }
    }

    /// Opens the object `content_id` for reading, relative to its open folder: the shard
    /// folder `shard`, or `files/` itself for `None`. Where that folder is not open (not a
    /// folder when the run started, or not a shard name), by its `path`.
    pub fn open_object(
        &self,
        shard: Option<char>,
        content_id: &str,
        path: &Path,
    ) -> io::Result<File> {
        let folder = match shard {
            Some(c) if c.is_ascii() => self.shards.get(c as usize).and_then(Option::as_ref),
            Some(_) => None,
            None => self.files.as_ref(),
        };
        match folder {
            Some(f) => f.open_file(std::ffi::OsStr::new(content_id)),
            None => open_object_by_path(path),
        }
    }
}

/// What one worker keeps between files: the destination folder of its current file, open,
/// and what the shared [`DirCache`] said about it (files come folder by folder, so
/// consecutive files mostly share it, and the next one needs neither the cache's lock nor a
/// hash of its folder's path).
#[derive(Default)]
pub struct WorkerFolders {
    dest: Option<Folder>,
    /// The folder of the previous file and whether this run created it.
    ensured: Option<(PathBuf, bool)>,
    /// Retrying a file after a transient error: open everything by path again.
    by_path: bool,
}

impl WorkerFolders {
    /// Closes the destination folder and opens by path until the next file.
    fn forget(&mut self) {
        self.dest = None;
        self.ensured = None;
        self.by_path = true;
    }

    /// [`DirCache::ensure`], answered without it for the folder of the previous file.
    fn ensure(&mut self, dirs: &DirCache, dir: &Path) -> io::Result<bool> {
        if let Some((last, new)) = &self.ensured {
            if last.as_os_str() == dir.as_os_str() {
                return Ok(*new);
            }
        }
        let new = dirs.ensure(dir)?;
        self.ensured = Some((dir.to_path_buf(), new));
        Ok(new)
    }

    /// The open destination folder `dir`.
    fn dest(&mut self, dir: &Path) -> io::Result<&Folder> {
        if self.dest.as_ref().is_none_or(|f| f.path != dir) {
            self.dest = Some(Folder::open(dir)?);
        }
        Ok(self.dest.as_ref().expect("just opened"))
    }
}

/// Copies the data, flushes it when durability asks for each file, and sets the dates.
fn fill(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    src: Option<&(File, PathBuf)>,
    out: &File,
    shown: &Path,
) -> Result<u64, Attempt> {
    if let Some(cid) = job.content_id.as_deref() {
        if ctx.faults.panic.iter().any(|c| c == cid) {
            panic!("injected panic while copying {cid} (MYCLOUD_RECOVER_FAULTS)");
        }
    }
    let bytes = match src {
        Some((f, path)) => {
            let failing = job
                .content_id
                .as_ref()
                .filter(|c| ctx.faults.read_error.contains(c));
            let copied = match failing {
                Some(_) => Err(CopyFailed::Read(io::Error::from_raw_os_error(libc::EIO))),
                None => ctx.copier.copy(f, out, ctx.moved),
            };
            copied.map_err(|failed| match failed {
                // The source's error: retried, and asked about as a disk's ([`Watch`]),
                // never weighed against DEST's free space (a bad sector of the object is
                // no full destination, however little room DEST has).
                CopyFailed::Read(e) => io_fail("cannot read object", path, e),
                CopyFailed::Write(e) if is_full(&e) => Attempt::Final(NotRestored::DestFull(
                    format!("cannot write {}: {e}", shown.display()),
                )),
                CopyFailed::Write(e) => {
                    write_fail(&format!("cannot copy {} to", path.display()), shown, e)
                }
            })?
        }
        None => 0,
    };
    if ctx.fsync_each {
        out.sync_all()
            .map_err(|e| write_fail("cannot sync", shown, e))?;
    }
    if let Some(ms) = job.mtime_ms {
        let t = system_time(ms);
        out.set_times(FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(|e| write_fail("cannot set dates on", shown, e))?;
    }
    Ok(bytes)
}

/// Closes the file, checking the result (and the injected `fail_close` fault).
fn check_close(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    out: File,
    shown: &Path,
) -> Result<(), Attempt> {
    injected_close_failure(ctx, job, shown)?;
    close_checked(out).map_err(|e| write_fail("cannot close", shown, e))
}

/// The `fail_close` test fault: close's failure, which cannot be produced for real here.
fn injected_close_failure(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    shown: &Path,
) -> Result<(), Attempt> {
    match &job.content_id {
        Some(c) if ctx.faults.fail_close.contains(c) => Err(write_fail(
            "cannot close",
            shown,
            io::Error::from_raw_os_error(libc::EBADF),
        )),
        _ => Ok(()),
    }
}

/// What is at a file's final name.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Nothing,
    /// The same size and date: adopt it. The size is the object's when that differs from
    /// the database's (`Some`): a copy of an object the database has the wrong length for.
    Identical(Option<u64>),
    /// The planned size and the object's bytes under another date (`was_ms`, e.g. from
    /// another `--mtime-from`): now dated as planned.
    Redated(i64),
    /// Replace it: asked for (`--overwrite`, or `regen` marked it), or, after an interrupted
    /// run, a file with exactly the planned date that is shorter or holds other bytes: our
    /// own copy, whose name reached the disk before all its data did (a power cut).
    Replace(Replaced),
}

/// Looks at the final name; a differing file that may not be replaced is an error (kept and
/// reported). `object` opens the object, asked only when needed: when a file with the planned
/// date has another size than the database says (our own copy of an object whose length the
/// database has wrong is identical, not a conflict), and after an interrupted run, when the
/// file's bytes are compared with the object's before it is adopted. A power cut can leave a
/// name with the planned size and date and without the data (seen on ext4, whose unwritten
/// blocks read as zeros), and a file adopted is never looked at again. Only files the
/// checkpoint does not record reach here, and only those changed since the crashed run began
/// are compared (`CopyContext::unsure`): the last commit's window, not the files of a DEST
/// filled before the restore (by the tool it replaces, say), which are adopted by size and
/// date as on a first run.
fn check_existing(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    target: &Path,
    replace: bool,
    object: &mut dyn FnMut() -> Option<File>,
) -> Result<Found, Attempt> {
    match std::fs::symlink_metadata(target) {
        // Marked to be copied again by `regen`, which found it wrong (its size, its date, or
        // after a crash its bytes): replaced, unless it has the planned size and the object's
        // bytes (only its date was wrong: a DEST restored with other `--mtime-from`, or by a
        // tool that did not keep dates), then only re-dated, as without `regen`.
        Ok(m) if m.is_file() && replace => match redate_if_same(ctx, job, target, &m, object)? {
            Some(found) => Ok(found),
            None => Ok(Found::Replace(differing(&m))),
        },
        Ok(m) if m.is_file() => {
            if mtime_matches(&m, job.mtime_ms) {
                // Opened once, when first needed.
                let mut opened: Option<Option<File>> = None;
                // A size not stored as a byte count is unknown: only the object's length can
                // say the file is whole.
                let object_bytes = if m.len() == job.size && job.size_unusable.is_none() {
                    Some(None)
                } else if job.mtime_ms.is_some()
                    && opened
                        .get_or_insert_with(&mut *object)
                        .as_ref()
                        .and_then(|f| f.metadata().ok())
                        .map(|o| o.len())
                        == Some(m.len())
                {
                    Some(Some(m.len()))
                } else {
                    None
                };
                if let Some(object_bytes) = object_bytes {
                    let garbled = ctx.unsure(&m)
                        && match opened.get_or_insert_with(&mut *object) {
                            Some(o) => !same_bytes(o, target, m.len()).map_err(|e| {
                                io_fail("cannot compare with its object", target, e)
                            })?,
                            // Nothing to compare with: kept, as before the crash.
                            None => false,
                        };
                    if !garbled {
                        return Ok(Found::Identical(object_bytes));
                    }
                    return Ok(Found::Replace(Replaced::Leftover(Leftover::OtherBytes)));
                }
            }
            // The planned size under another date (restored before with another
            // `--mtime-from`, or copied by a tool that did not keep dates): with the
            // object's bytes it only needs the planned date, not a copy.
            if !ctx.overwrite {
                if let Some(found) = redate_if_same(ctx, job, target, &m, object)? {
                    return Ok(found);
                }
            }
            if ctx.overwrite {
                return Ok(Found::Replace(differing(&m)));
            }
            if ctx.unsure(&m)
                && m.len() < job.size
                && job.mtime_ms.is_some()
                && mtime_matches(&m, job.mtime_ms)
            {
                return Ok(Found::Replace(Replaced::Leftover(Leftover::CutShort(
                    m.len(),
                ))));
            }
            Err(Attempt::Final(NotRestored::Failed(format!(
                "{} already exists and differs (size {} vs {} expected, or another date); kept it. Use --overwrite to replace it",
                target.display(),
                m.len(),
                job.size
            ))))
        }
        Ok(_) => Err(Attempt::Final(NotRestored::Failed(format!(
            "{} exists and is not a regular file; left it alone",
            target.display()
        )))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) => Err(io_fail("cannot check", target, e)),
    }
}

/// The file `m` describes, at a final name, replaced as asked.
fn differing(m: &std::fs::Metadata) -> Replaced {
    Replaced::Differing {
        size: m.len(),
        mtime_ms: crate::walk::mtime_ms(m),
    }
}

/// A file at `target` with the planned size and the object's bytes needs only the planned
/// date: set (not in a dry run) and `Found::Redated`, or `Found::Identical` when it already
/// has it. `None` when its size or bytes differ, or there is no date or object to go by.
fn redate_if_same(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    target: &Path,
    m: &std::fs::Metadata,
    object: &mut dyn FnMut() -> Option<File>,
) -> Result<Option<Found>, Attempt> {
    let Some(ms) = job
        .mtime_ms
        .filter(|_| m.len() == job.size && job.size_unusable.is_none())
    else {
        return Ok(None);
    };
    let Some(o) = object() else {
        return Ok(None);
    };
    let same = same_bytes(&o, target, m.len())
        .map_err(|e| io_fail("cannot compare with its object", target, e))?;
    if !same {
        return Ok(None);
    }
    if mtime_matches(m, job.mtime_ms) {
        return Ok(Some(Found::Identical(None)));
    }
    if !ctx.dry_run {
        File::open(target)
            .and_then(|f| f.set_times(FileTimes::new().set_modified(system_time(ms))))
            .map_err(|e| io_fail("cannot set the date of", target, e))?;
    }
    Ok(Some(Found::Redated(crate::walk::mtime_ms(m))))
}

/// Whether the first `len` bytes of `object` and the file at `path` are the same (read at
/// offsets: the object's position, which a copy may use next, does not move).
pub(crate) fn same_bytes(object: &File, path: &Path, len: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if object.metadata()?.len() != len {
        return Ok(false);
    }
    let file = File::open(path)?;
    let (mut a, mut b) = (vec![0u8; 1 << 18], vec![0u8; 1 << 18]);
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(a.len() as u64) as usize;
        object.read_exact_at(&mut a[..n], at)?;
        file.read_exact_at(&mut b[..n], at)?;
        if a[..n] != b[..n] {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Moves bytes from an object to a temporary file inside the kernel. `copy_file_range`
/// works within one filesystem; between two (the usual case: a USB disk to a NAS) it fails
/// with `EXDEV` and `sendfile` does the same in-kernel copy. Which one works is learnt on the
/// first file and remembered, so each file costs only the calls that move data (plus one
/// that sees the end), where `std::io::copy` adds two `statx` and, across filesystems, a
/// failing `copy_file_range` per file. Filesystems that support neither get a plain
/// read/write loop.
#[derive(Debug)]
pub struct Copier {
    no_copy_file_range: AtomicBool,
    no_sendfile: AtomicBool,
    /// What one call moves now ([`Copier::CHUNK`]), learnt from how long calls take: shared
    /// by the workers, as the link they share is.
    chunk: AtomicUsize,
}

impl Default for Copier {
    fn default() -> Copier {
        Copier {
            no_copy_file_range: AtomicBool::new(false),
            no_sendfile: AtomicBool::new(false),
            chunk: AtomicUsize::new(Copier::FIRST_CHUNK),
        }
    }
}

/// Which side of a copy failed ([`Copier::copy`]).
#[derive(Debug)]
pub enum CopyFailed {
    /// Reading the object: the source's problem.
    Read(io::Error),
    /// Writing DEST.
    Write(io::Error),
}

/// `copy_file_range` and `sendfile` do not say which file their error came from. The object
/// is read where the copy stopped (one page, from the disk if it is not cached, as a bad
/// sector is not): an error there is the source's; otherwise `e` was DEST's.
fn blame(src: &File, e: io::Error) -> CopyFailed {
    use std::os::unix::fs::FileExt;
    let at = rustix::fs::seek(src, rustix::fs::SeekFrom::Current(0)).unwrap_or(0);
    match src.read_at(&mut [0u8; 4096], at) {
        Err(read) => CopyFailed::Read(read),
        Ok(_) => CopyFailed::Write(e),
    }
}

impl Copier {
    /// The most one call moves: `moved` is called after each, so that a large file's copy
    /// over a slow link says it is moving. Until round 22 one call could move 1 GiB, and
    /// the run took a 4 GB video copied to a NAS for a call the disks held, saying "no file
    /// came back" every 15 s. Round 22 capped a call at 8 MiB, which still took more than
    /// 15 s below about 0.6 MB/s (a VPN, an upload link); so since round 23 what a call
    /// moves is learnt (`Copier::learn`): it starts at [`Copier::FIRST_CHUNK`], shrinks
    /// down to [`Copier::LEAST_CHUNK`] towards calls of [`Copier::CALL_TIME`], and doubles
    /// up to this while a full one takes under a quarter of that. A local copy reaches 8 MiB
    /// in its first few calls of the run.
    pub const CHUNK: usize = 8 << 20;
    /// What the first calls of a run move: under 15 s down to about 17 KB/s, a link shared
    /// by 16 workers at 0.3 MB/s.
    pub const FIRST_CHUNK: usize = 256 << 10;
    /// The least a call moves: 15 s is then about 4 KB/s.
    pub const LEAST_CHUNK: usize = 64 << 10;
    /// What a call should take at most.
    pub const CALL_TIME: Duration = Duration::from_secs(2);

    /// Learns from a call that moved `n` bytes of `asked` in `took`: slower than
    /// [`Copier::CALL_TIME`], the next calls move what this one would have moved in that
    /// time; a full call in under a quarter of it, twice as much. The workers share what is
    /// learnt, and their calls overlap: a shrink keeps the smaller of its size and what is
    /// there, and a doubling applies only if nobody changed the size since its call asked
    /// (a fast call that began before another's slow one must not undo what that one found).
    fn learn(&self, asked: usize, n: usize, took: Duration) {
        if took > Copier::CALL_TIME {
            let per_call = n as f64 * Copier::CALL_TIME.as_secs_f64() / took.as_secs_f64();
            let next = (per_call as usize).clamp(Copier::LEAST_CHUNK, asked);
            self.chunk.fetch_min(next, Relaxed);
        } else if n == asked && took < Copier::CALL_TIME / 4 {
            let next = (asked * 2).min(Copier::CHUNK);
            let _ = self.chunk.compare_exchange(asked, next, Relaxed, Relaxed);
        }
    }

    /// Copies from the current position of `src` to the end, calling `moved` after each
    /// call that moved bytes (at most [`Copier::CHUNK`]); returns the bytes copied, or which
    /// side failed.
    pub fn copy(&self, src: &File, dst: &File, moved: &dyn Fn()) -> Result<u64, CopyFailed> {
        use rustix::io::Errno;
        let unsupported = |e: Errno| {
            matches!(
                e,
                Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP | Errno::PERM
            )
        };
        let mut total = 0u64;
        loop {
            let chunk = self.chunk.load(Relaxed);
            let began = Instant::now();
            let n = if !self.no_copy_file_range.load(Relaxed) {
                match rustix::fs::copy_file_range(src, None, dst, None, chunk) {
                    Ok(n) => n,
                    Err(e) if total == 0 && unsupported(e) => {
                        self.no_copy_file_range.store(true, Relaxed);
                        continue;
                    }
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(blame(src, e.into())),
                }
            } else if !self.no_sendfile.load(Relaxed) {
                match rustix::fs::sendfile(dst, src, None, chunk) {
                    Ok(n) => n,
                    Err(e) if total == 0 && unsupported(e) => {
                        self.no_sendfile.store(true, Relaxed);
                        continue;
                    }
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(blame(src, e.into())),
                }
            } else {
                return Ok(total + self.read_write(src, dst, moved)?);
            };
            if n == 0 {
                return Ok(total);
            }
            self.learn(chunk, n, began.elapsed());
            total += n as u64;
            moved();
        }
    }

    /// The last resort: reads and writes of at most 1 MiB (64 KB-1 MB buffers were the
    /// fastest measured, see docs/PERFORMANCE.md), or what a call moves now if less.
    fn read_write(
        &self,
        mut src: &File,
        mut dst: &File,
        moved: &dyn Fn(),
    ) -> Result<u64, CopyFailed> {
        use std::io::{Read, Write};
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let chunk = self.chunk.load(Relaxed).min(buf.len());
            let began = Instant::now();
            let n = match src.read(&mut buf[..chunk]) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyFailed::Read(e)),
            };
            dst.write_all(&buf[..n]).map_err(CopyFailed::Write)?;
            self.learn(chunk, n, began.elapsed());
            total += n as u64;
            moved();
        }
    }

    /// A copier that starts from a later method, to test each one.
    #[cfg(test)]
    fn forced(no_copy_file_range: bool, no_sendfile: bool) -> Copier {
        Copier {
            no_copy_file_range: AtomicBool::new(no_copy_file_range),
            no_sendfile: AtomicBool::new(no_sendfile),
            ..Copier::default()
        }
    }

    /// Which method the copies use (for the report).
    pub fn method(&self) -> &'static str {
        if !self.no_copy_file_range.load(Relaxed) {
            "copy_file_range"
        } else if !self.no_sendfile.load(Relaxed) {
            "sendfile"
        } else {
            "read/write"
        }
    }
}

/// Removes temporary files left by a killed run, walking `dest` in parallel-free fashion
/// (only done after an unclean end). Returns how many were removed.
pub fn remove_stale_temps(dest: &Path) -> io::Result<u64> {
    let mut removed = 0;
    let mut stack = vec![dest.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() && is_temp_name(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_short_hidden_and_recognised() {
        let n = temp_name("abc");
        assert!(n.len() < 40 && n.starts_with('.'));
        assert!(is_temp_name(&n));
        assert!(!is_temp_name("photo.part"));
        // A user's file that merely starts and ends like one is not ours (the run after a
        // crash deletes ours).
        assert!(!is_temp_name(".mcr-notes.part"));
        assert!(!is_temp_name(".mcr-0123456789ABCDEF.part"));
        assert!(is_temp_name(".mcr-probe-4242-ab.part"));
        assert!(!is_temp_name(".mcr-probe--ab.part"));
    }

    #[test]
    fn transient_errors_are_classified() {
        assert!(is_transient(&io::Error::from_raw_os_error(libc::ESTALE)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(is_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
    }

    /// A write error on DEST that does not say "full" is taken for a full disk only when the
    /// file has no room there (or DEST almost none at all, or almost no inodes left): an I/O
    /// error with space to spare stays the error it is.
    #[test]
    fn a_write_error_counts_as_full_only_without_room() {
        let gb = 1u64 << 30;
        assert_eq!(no_room(gb, Some(100_000), 5 << 20), None);
        assert_eq!(no_room(gb, None, 0), None);
        let short = no_room(4 << 20, Some(100_000), 5 << 20).expect("no room for the file");
        assert!(
            short.contains("4.2 MB free for a file of 5.2 MB"),
            "{short}"
        );
        assert!(
            no_room(512 << 10, None, 10).is_some(),
            "almost no room at all"
        );
        let inodes = no_room(gb, Some(3), 10).expect("almost no inodes");
        assert!(inodes.contains("only 3 more files or folders"), "{inodes}");
    }

    /// A copy's error is the source's only when the object cannot be read where the copy
    /// stopped: here `/proc/self/mem`, whose first page (never mapped) fails with EIO as a
    /// bad sector does. Readable, the error was DEST's.
    #[test]
    fn a_copy_error_is_the_sources_only_when_the_object_cannot_be_read() {
        let eio = || io::Error::from_raw_os_error(libc::EIO);
        let unreadable = File::open("/proc/self/mem").unwrap();
        assert!(matches!(blame(&unreadable, eio()), CopyFailed::Read(_)));
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("object"), b"bytes").unwrap();
        let readable = File::open(t.path().join("object")).unwrap();
        assert!(matches!(blame(&readable, eio()), CopyFailed::Write(_)));
    }

    /// Every way of moving data gives the same bytes, whatever the size, and says it moved
    /// at least once a [`Copier::CHUNK`] (round 22: the run's watch took a large file over a
    /// slow link for a held call).
    #[test]
    fn each_copy_method_copies_every_byte() {
        let t = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 4096, (1 << 20) + 3, 2 * Copier::CHUNK + 3] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let src = t.path().join(format!("src-{size}"));
            std::fs::write(&src, &data).unwrap();
            for (name, copier) in [
                ("copy_file_range", Copier::default()),
                ("sendfile", Copier::forced(true, false)),
                ("read/write", Copier::forced(true, true)),
            ] {
                let dst = t
                    .path()
                    .join(format!("dst-{size}-{}", name.replace('/', "")));
                let moves = std::cell::Cell::new(0);
                let n = copier
                    .copy(
                        &File::open(&src).unwrap(),
                        &File::create(&dst).unwrap(),
                        &|| moves.set(moves.get() + 1),
                    )
                    .unwrap();
                assert_eq!(n, size as u64, "{name}");
                assert!(
                    moves.get() >= size.div_ceil(Copier::CHUNK),
                    "{name}, {size} bytes: {} moves",
                    moves.get()
                );
                assert_eq!(std::fs::read(&dst).unwrap(), data, "{name}, {size} bytes");
                assert_eq!(copier.method(), name);
            }
        }
    }

    /// Round 23: what a call moves is learnt from how long calls take. Slow calls (a link
    /// below 0.6 MB/s) make the next ones move what takes about 2 s, never less than 64 KiB;
    /// fast full calls double it up to 8 MiB; short or partial calls change nothing. A
    /// local copy reaches 8 MiB in five fast calls from the first 256 KiB.
    #[test]
    fn what_a_call_moves_follows_how_long_calls_take_regression_round_23() {
        let c = Copier::default();
        let now = || c.chunk.load(Relaxed);
        assert_eq!(now(), Copier::FIRST_CHUNK);
        let fast = Duration::from_millis(5);
        for _ in 0..5 {
            c.learn(now(), now(), fast);
        }
        assert_eq!(now(), Copier::CHUNK);
        c.learn(now(), now(), fast);
        assert_eq!(now(), Copier::CHUNK, "never more than CHUNK");
        // 8 MiB in 20 s (0.42 MB/s): 2 s moves a tenth of it.
        c.learn(Copier::CHUNK, Copier::CHUNK, Duration::from_secs(20));
        assert_eq!(now(), Copier::CHUNK / 10);
        // The end of a file (a partial call), fast: nothing learnt.
        c.learn(now(), 1000, fast);
        assert_eq!(now(), Copier::CHUNK / 10);
        // A link all but stopped: never under the least.
        c.learn(now(), 10, Duration::from_secs(14));
        assert_eq!(now(), Copier::LEAST_CHUNK);
        // A call between a quarter of the time and the time: kept.
        c.learn(now(), now(), Duration::from_secs(1));
        assert_eq!(now(), Copier::LEAST_CHUNK);
    }

    /// Round 24 (noticed in round 23): what a call moves is shared by the workers, whose
    /// calls overlap, and each stored what it learnt: a fast call that had asked for 1 MiB,
    /// ending after another's call of 1 MiB had taken 10 s, doubled the size to 2 MiB and
    /// undid the shrink to 200 KiB; a slow call that asked for more than is there now raised
    /// it. A doubling now applies only to the size its call asked for, and a shrink keeps
    /// the smaller.
    #[test]
    fn what_workers_learn_at_once_is_merged_not_overwritten_regression_round_24() {
        let c = Copier::default();
        let now = || c.chunk.load(Relaxed);
        let mib = 1 << 20;
        c.chunk.store(mib, Relaxed);
        // Both asked for 1 MiB; the slow one ends first.
        c.learn(mib, mib, Duration::from_secs(10));
        assert_eq!(now(), mib / 5);
        c.learn(mib, mib, Duration::from_millis(5));
        assert_eq!(now(), mib / 5, "a stale doubling undid the shrink");
        // A slow call that had asked for 1 MiB, moving 1 MiB in 5 s (400 KiB in 2 s).
        c.learn(mib, mib, Duration::from_secs(5));
        assert_eq!(now(), mib / 5, "a smaller shrink raised the size");
        // Fast calls at the size there now still double it.
        c.learn(now(), now(), Duration::from_millis(5));
        assert_eq!(now(), 2 * (mib / 5));
    }

    #[test]
    fn a_deep_chain_of_folders_is_made_without_recursion() {
        // 3,000 levels: each made in turn, on a thread with a small stack (recursion per
        // level overflowed a worker's 2 MiB at about 5,000).
        let t = tempfile::tempdir().unwrap();
        let root = t.path().to_path_buf();
        let made = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let cache = DirCache::new(&root, 16);
                let mut deep = root.clone();
                let mut levels = 0;
                while deep.as_os_str().len() < 4000 {
                    deep.push("d");
                    levels += 1;
                }
                (cache.ensure(&deep).map(|_| levels), deep)
            })
            .unwrap()
            .join()
            .unwrap();
        let (levels, deep) = made;
        assert!(levels.unwrap() > 1_900);
        assert!(deep.is_dir());
    }

    #[test]
    fn a_path_too_long_for_linux_says_so() {
        // A real one: 20 folders of 243 bytes each pass 4,096 bytes.
        let t = tempfile::tempdir().unwrap();
        let deep = (0..20).fold(t.path().to_path_buf(), |p, i| {
            p.join(format!("{i:02}{}", "x".repeat(241)))
        });
        let e = DirCache::new(t.path(), 32).ensure(&deep).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENAMETOOLONG));
        let Attempt::Final(NotRestored::Failed(msg)) = io_fail("cannot create folder", &deep, e)
        else {
            panic!("a final failure");
        };
        assert!(
            msg.contains("the whole path is") && msg.contains("--only"),
            "{msg}"
        );
    }

    #[test]
    fn dir_cache_says_which_folders_this_run_created() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("old");
        std::fs::create_dir(&old).unwrap();
        let cache = DirCache::default();
        assert!(!cache.ensure(&old).unwrap(), "existed before");
        let deep = t.path().join("a/b/c");
        assert!(cache.ensure(&deep).unwrap(), "made now, parents too");
        assert!(deep.is_dir());
        assert!(
            cache.ensure(&t.path().join("a/b")).unwrap(),
            "made by this run"
        );
        let mut made = cache.created();
        made.sort();
        assert_eq!(
            made,
            ["a", "a/b", "a/b/c"].map(|p| t.path().join(p)).to_vec()
        );
        std::fs::write(t.path().join("file"), b"x").unwrap();
        assert!(
            cache.ensure(&t.path().join("file")).is_err(),
            "a file is in the way"
        );
    }

    #[test]
    fn a_worker_answers_for_its_previous_folder_as_the_shared_cache_did() {
        let t = tempfile::tempdir().unwrap();
        let old = t.path().join("old");
        std::fs::create_dir(&old).unwrap();
        let new = t.path().join("new");
        let cache = DirCache::default();
        let mut w = WorkerFolders::default();
        for (dir, made) in [(&old, false), (&old, false), (&new, true), (&new, true)] {
            assert_eq!(w.ensure(&cache, dir).unwrap(), made, "{}", dir.display());
        }
        assert!(new.is_dir());
        // The same folder again is answered from the worker's memory: a cache that never saw
        // it (and would call it pre-existing now) is not asked.
        let other = DirCache::default();
        assert!(w.ensure(&other, &new).unwrap());
        assert!(!other.knows(&new));
        // A retry forgets, and asks the cache.
        w.forget();
        assert!(!w.ensure(&other, &new).unwrap());
        assert!(other.knows(&new));
    }

    #[test]
    fn an_unnamed_file_is_linked_into_place_but_never_over_a_taken_name() {
        let t = tempfile::tempdir().unwrap();
        let folder = Folder::open(t.path()).unwrap();
        let taken = t.path().join("taken");
        std::fs::write(&taken, b"keep me").unwrap();
        // Both ways of naming the file: by the open file itself, and through /proc.
        for (i, by_proc) in [false, true].into_iter().enumerate() {
            let mut f = match folder.create_unnamed() {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("skipped: this filesystem has no unnamed files ({e})");
                    return;
                }
            };
            std::io::Write::write_all(&mut f, b"complete").unwrap();
            assert_eq!(
                std::fs::read_dir(t.path()).unwrap().count(),
                1 + i,
                "no name yet"
            );
            let link = |name: &str| {
                let name = std::ffi::OsStr::new(name);
                if by_proc {
                    folder.link_by_proc(&f, name)
                } else {
                    folder.link(&f, name)
                }
            };
            let e = link("taken").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "by_proc {by_proc}");
            assert_eq!(std::fs::read(&taken).unwrap(), b"keep me");
            link(&format!("free{i}")).unwrap();
            let named = t.path().join(format!("free{i}"));
            assert_eq!(std::fs::read(named).unwrap(), b"complete");
        }
    }

    /// A worker reopens its destination folder only when the folder changes; objects open
    /// through the shared store folders (sharded and flat), and a missing folder or object
    /// is `NotFound`, as by path.
    #[test]
    fn objects_and_destination_folders_open_relative_to_open_folders() {
        let t = tempfile::tempdir().unwrap();
        for d in ["a", "b", "files/x", "files/long"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(t.path().join("files/x/xobj"), b"sharded").unwrap();
        std::fs::write(t.path().join("files/flat"), b"flat").unwrap();
        std::fs::write(t.path().join("files/long/lobj"), b"other").unwrap();
        let mut w = WorkerFolders::default();
        assert_eq!(
            w.dest(&t.path().join("a")).unwrap().path(),
            t.path().join("a")
        );
        assert_eq!(
            w.dest(&t.path().join("b")).unwrap().path(),
            t.path().join("b")
        );
        assert!(w.dest(&t.path().join("none")).is_err());
        w.forget();
        assert!(w.dest.is_none() && w.by_path);

        let files = t.path().join("files");
        let objects = ObjectFolders::open(&files);
        assert_eq!(
            objects.shards.iter().flatten().count(),
            1,
            "single-character folders only"
        );
        let open = |objects: &ObjectFolders, p: &str| {
            let (shard, id) = match p.split_once('/') {
                Some((dir, id)) => (dir.chars().next(), id),
                None => (None, p),
            };
            objects.open_object(shard, id, &files.join(p))
        };
        let read = |p: &str| {
            let mut data = String::new();
            let mut f = open(&objects, p)?;
            std::io::Read::read_to_string(&mut f, &mut data)?;
            Ok::<_, io::Error>(data)
        };
        assert_eq!(read("x/xobj").unwrap(), "sharded");
        assert_eq!(read("flat").unwrap(), "flat");
        assert_eq!(read("long/lobj").unwrap(), "other", "by path");
        for missing in ["x/gone", "y/yobj", "gone"] {
            let e = read(missing).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{missing}");
        }
        let none = ObjectFolders::open(&t.path().join("no-such-store"));
        assert!(none.files.is_none());
        let mut data = String::new();
        let mut f = open(&none, "x/xobj").unwrap();
        std::io::Read::read_to_string(&mut f, &mut data).unwrap();
        assert_eq!(data, "sharded", "no folder kept open: by path");
    }

    #[test]
    fn close_checked_reports_success() {
        let t = tempfile::tempdir().unwrap();
        let f = File::create(t.path().join("x")).unwrap();
        close_checked(f).unwrap();
    }
}
