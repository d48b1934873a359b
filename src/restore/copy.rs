//! Restoring one file: the only place that writes file data to the destination.
//!
//! Order matters for crash safety: write to a hidden temporary name in the target folder,
//! set the dates, close (checking close's result: NFS reports write-back errors there),
//! then rename into place. A final name therefore only ever holds complete content; a kill
//! at any moment leaves at most a `.mcr-*.part` file, which the next run removes. Copying
//! goes through `std::io::copy` between two `File`s so Linux uses copy_file_range.

use std::fs::{File, FileTimes, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::plan::PlannedFile;
use crate::source::SourceLayout;

/// Prefix and suffix of temporary files; nothing else we write looks like this.
pub const TEMP_PREFIX: &str = ".mcr-";
pub const TEMP_SUFFIX: &str = ".part";

/// The temporary name for a file id (fixed length, so it fits any folder).
pub fn temp_name(id: &str) -> String {
    format!(
        "{TEMP_PREFIX}{:016x}{TEMP_SUFFIX}",
        xxhash_rust::xxh3::xxh3_64(id.as_bytes())
    )
}

pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

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
                    _ => {}
                }
            }
        }
        f
    }
}

/// How a file was restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Copied; `actual` differs from the database size when the object had another length.
    Copied { bytes: u64, size_mismatch: bool },
    /// An identical file (same size, same date) was already at the final name.
    Adopted,
}

/// Why a file was not restored.
#[derive(Debug)]
pub enum NotRestored {
    /// No object for this row.
    Missing(String),
    /// The destination is full: stop the run.
    DestFull(String),
    /// Anything else, with the path and the cause.
    Failed(String),
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
}

/// Folders known to exist on the destination, so each is created (and checked) once.
#[derive(Default)]
pub struct DirCache {
    known: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    created: std::sync::Mutex<Vec<PathBuf>>,
}

impl DirCache {
    pub fn ensure(&self, dir: &Path) -> io::Result<()> {
        if self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(dir)
        {
            return Ok(());
        }
        // Record the folders that did not exist before, for setting their dates later.
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.is_dir() {
                break;
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        std::fs::create_dir_all(dir)?;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(missing);
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf());
        Ok(())
    }

    /// Folders this run created.
    pub fn created(&self) -> Vec<PathBuf> {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
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
fn close_checked(f: File) -> io::Result<()> {
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

fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
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
/// every other I/O error, so a stalled source disk is retried rather than failed.
fn open_object(ctx: &CopyContext<'_>, content_id: &str) -> Result<(File, PathBuf), Attempt> {
    if !crate::source::is_safe_content_id(content_id) {
        return Err(Attempt::Final(NotRestored::Missing(format!(
            "contentID {content_id:?} is not a usable object name"
        ))));
    }
    let injected = |errno| Err(io::Error::from_raw_os_error(errno));
    let candidates = [
        ctx.source.sharded_object_path(content_id),
        Some(ctx.source.files.join(content_id)),
    ];
    for p in candidates.into_iter().flatten() {
        let opened = if ctx.faults.unreadable.iter().any(|c| c == content_id) {
            injected(libc::EACCES)
        } else if ctx.faults.flaky.iter().any(|c| c == content_id)
            && ctx
                .faults
                .flaky_hit
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(content_id.to_string())
        {
            injected(libc::ETIMEDOUT)
        } else {
            File::open(&p)
        };
        match opened {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_fail("cannot read object", &p, e)),
        }
    }
    Err(Attempt::Final(NotRestored::Missing(format!(
        "object {content_id} not found in {}",
        ctx.source.files.display()
    ))))
}

/// Restores one planned file, retrying transient errors with backoff.
/// `replace` allows replacing a differing file at the final name (regen marked it).
pub fn restore_file(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    replace: bool,
) -> Result<Restored, NotRestored> {
    const BACKOFF_MS: [u64; 3] = [200, 1000, 4000];
    if ctx.faults.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(ctx.faults.delay_ms));
    }
    let mut attempt = 0;
    loop {
        match restore_once(ctx, job, replace) {
            Err(Attempt::Transient(_)) if attempt < BACKOFF_MS.len() => {
                std::thread::sleep(Duration::from_millis(BACKOFF_MS[attempt]));
                attempt += 1;
            }
            Err(Attempt::Transient(msg)) => {
                return Err(NotRestored::Failed(format!(
                    "{msg} (after {} tries)",
                    attempt + 1
                )))
            }
            Err(Attempt::Final(n)) => return Err(n),
            Ok(r) => return Ok(r),
        }
    }
}

enum Attempt {
    Transient(String),
    Final(NotRestored),
}

fn io_fail(what: &str, path: &Path, e: io::Error) -> Attempt {
    let msg = format!("{what} {}: {e}", path.display());
    if is_full(&e) {
        Attempt::Final(NotRestored::DestFull(msg))
    } else if is_transient(&e) {
        Attempt::Transient(msg)
    } else {
        Attempt::Final(NotRestored::Failed(msg))
    }
}

fn restore_once(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    replace: bool,
) -> Result<Restored, Attempt> {
    let target = ctx.dest.join(&job.rel_path);
    let dir = target.parent().unwrap_or(ctx.dest);

    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_file() => {
            if m.len() == job.size && mtime_matches(&m, job.mtime_ms) {
                return Ok(Restored::Adopted);
            }
            if !ctx.overwrite && !replace {
                return Err(Attempt::Final(NotRestored::Failed(format!(
                    "{} already exists and differs (size {} vs {} expected, or another date); kept it. Use --overwrite to replace it",
                    target.display(),
                    m.len(),
                    job.size
                ))));
            }
        }
        Ok(_) => {
            return Err(Attempt::Final(NotRestored::Failed(format!(
                "{} exists and is not a regular file; left it alone",
                target.display()
            ))))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_fail("cannot check", &target, e)),
    }

    let src = match &job.content_id {
        Some(cid) => Some(open_object(ctx, cid)?),
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
        });
    }

    ctx.dirs
        .ensure(dir)
        .map_err(|e| io_fail("cannot create folder", dir, e))?;
    let tmp = dir.join(temp_name(&job.id));
    let result = write_temp(ctx, job, src, &tmp).and_then(|bytes| {
        std::fs::rename(&tmp, &target).map_err(|e| io_fail("cannot rename into", &target, e))?;
        Ok(bytes)
    });
    match result {
        Ok(bytes) => {
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
                size_mismatch: bytes != job.size,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn write_temp(
    ctx: &CopyContext<'_>,
    job: &PlannedFile,
    src: Option<(File, PathBuf)>,
    tmp: &Path,
) -> Result<u64, Attempt> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)
        .map_err(|e| io_fail("cannot create", tmp, e))?;
    let bytes = match src {
        Some((mut f, path)) => io::copy(&mut f, &mut out).map_err(|e| {
            if is_full(&e) {
                Attempt::Final(NotRestored::DestFull(format!(
                    "cannot write {}: {e}",
                    tmp.display()
                )))
            } else {
                io_fail(&format!("cannot copy {} to", path.display()), tmp, e)
            }
        })?,
        None => 0,
    };
    if ctx.fsync_each {
        out.sync_all().map_err(|e| io_fail("cannot sync", tmp, e))?;
    }
    if let Some(ms) = job.mtime_ms {
        let t = system_time(ms);
        out.set_times(FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(|e| io_fail("cannot set dates on", tmp, e))?;
    }
    if job
        .content_id
        .as_ref()
        .is_some_and(|c| ctx.faults.fail_close.contains(c))
    {
        drop(out);
        return Err(io_fail(
            "cannot close",
            tmp,
            io::Error::from_raw_os_error(libc::EBADF),
        ));
    }
    close_checked(out).map_err(|e| io_fail("cannot close", tmp, e))?;
    Ok(bytes)
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
    }

    #[test]
    fn transient_errors_are_classified() {
        assert!(is_transient(&io::Error::from_raw_os_error(libc::ESTALE)));
        assert!(is_transient(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_transient(&io::Error::from_raw_os_error(libc::ENOENT)));
        assert!(is_full(&io::Error::from_raw_os_error(libc::ENOSPC)));
    }

    #[test]
    fn close_checked_reports_success() {
        let t = tempfile::tempdir().unwrap();
        let f = File::create(t.path().join("x")).unwrap();
        close_checked(f).unwrap();
    }
}
