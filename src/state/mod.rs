//! The checkpoint: what has been restored, kept outside the source and the destination.
//!
//! A separate SQLite database (WAL, batched transactions, one writer thread) in a per-user
//! state folder keyed by the destination ([`default_state_dir`]; the source's database is
//! recognised by its content, so the disk mounted elsewhere is the same restore). A file is
//! recorded only after it was placed under its final name (and synced, per the durability
//! policy), so a record is never ahead of the disk: after kill -9 or a power cut the worst
//! case is a file on the destination that the checkpoint does not know yet. Until a run has
//! looked at every file again, the runs after such a crash compare those of them that changed
//! since it began byte for byte with their objects before adopting them (a power cut can leave
//! the right size and date without the data); other files are adopted by size and date.
//!
//! Resume does not walk the destination: the "done" set is loaded as 128-bit hashes of
//! (id, restored path, size, mtime), so memory stays small and a changed plan (another
//! name policy, a new date field) never skips a file whose target changed.
//!
//! The file records are an append-only log (`log`, ordered by `seq`); the latest record of
//! an id is its state. A table keyed by id was the first design: its inserts land at random
//! places in the B-tree (ids are random), so each group commit rewrote thousands of pages,
//! and at 1.35M files the checkpoint cost about 25 us per file (most of a `regen`). Appends
//! touch only the last pages. The price is paid by the rare readers that need the latest
//! state per id (`status`), which group by id.
//!
//! A file that every run finds missing or failing would add a record per run (a thousand
//! missing objects, a thousand records a run, for ever). Such a record replaces the file's
//! earlier records of the same outcome instead (found through a small index of those
//! outcomes only) and counts the runs that found it so (`times`); a checkpoint from before
//! the count has one record per run, each counted once.
//!
//! One run at a time uses a state folder: it holds an advisory lock (`flock`) on the
//! folder's `lock` file, which the kernel drops when the process dies ([`StateLock`]). A
//! first run that ends before it opens its checkpoint (refused at planning, stopped) removes
//! the state folder it made, `lock` included, so that it leaves nothing behind (a `regen`
//! refused after it opened one removes the checkpoint it created first, then the same:
//! [`Checkpoint::discard`]); it removes `lock` while holding it, so another run that opened
//! `lock` just before could lock a file no longer there, and a third one a new `lock`. A
//! run therefore holds the lock only once the path `lock` still names the file it locked
//! (same device and inode), opening it again if not. A second Ctrl-C exits at once, without
//! that cleanup: the signal thread does it before the exit (`signals::before_exit`).

pub mod regen;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

/// What happened to one planned file. Every planned file ends in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Copied in this run.
    Copied,
    /// Recorded as done by an earlier run; not touched.
    AlreadyDone,
    /// Found on the destination with the expected size and date; kept, not copied.
    Adopted,
    /// The object is not in the object store (or the row has no contentID).
    Missing,
    /// Could not be restored; the error says why. Retried on the next run.
    Failed,
    /// Not selected (Trash, --only, --user, --limit).
    Filtered,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Copied,
        Outcome::AlreadyDone,
        Outcome::Adopted,
        Outcome::Missing,
        Outcome::Failed,
        Outcome::Filtered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Copied => "copied",
            Outcome::AlreadyDone => "already_done",
            Outcome::Adopted => "adopted",
            Outcome::Missing => "missing",
            Outcome::Failed => "failed",
            Outcome::Filtered => "filtered",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// This run learned something about the file that the checkpoint keeps: not for a file
    /// an earlier run finished, nor for one outside the selection.
    pub fn is_logged(self) -> bool {
        !matches!(self, Outcome::AlreadyDone | Outcome::Filtered)
    }

    /// The file is fully on the destination.
    pub fn is_done(self) -> bool {
        matches!(
            self,
            Outcome::Copied | Outcome::AlreadyDone | Outcome::Adopted
        )
    }
}

/// One file's result, as the writer thread records it.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub rel_path: String,
    pub size: u64,
    pub mtime_ms: Option<i64>,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// The key a done file is remembered by: it changes when the target changes.
pub fn done_key(id: &str, rel_path: &str, size: u64, mtime_ms: Option<i64>) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(id.as_bytes());
    h.update(&[0]);
    h.update(rel_path.as_bytes());
    h.update(&[0]);
    h.update(&size.to_le_bytes());
    h.update(&mtime_ms.unwrap_or(i64::MIN).to_le_bytes());
    h.digest128()
}

/// The key a path is known by in memory (regen's files found, the restore's folders): an
/// xxh3-128 hash of its bytes, 16 bytes whatever the path's length, used as its own hash
/// ([`KeyHashing`]).
pub fn path_key(path: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(path)
}

/// A set of [`done_key`]s or [`redo_key`]s.
pub type KeySet = HashSet<u128, KeyHashing>;

/// Hashing for keys that are already xxh3 hashes: they are used as they are (folded to 64
/// bits) instead of being hashed again with SipHash, which cost more than the lookups in a
/// resume's checks of 1.35M files.
pub type KeyHashing = std::hash::BuildHasherDefault<KeyHasher>;

#[derive(Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only integers are hashed here; anything else still gets a real hash.
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn write_u128(&mut self, n: u128) {
        self.0 ^= n as u64 ^ (n >> 64) as u64;
    }
}

/// The key a file marked "redo" is remembered by.
pub fn redo_key(id: &str, rel_path: &str) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(id.as_bytes());
    h.update(&[1]);
    h.update(rel_path.as_bytes());
    h.digest128()
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("another restore is using the checkpoint in {0}; wait for it to finish (or stop it) and run again")]
    Locked(PathBuf),
    #[error("cannot use the state folder {path}: {source}; pass --state-dir to use another")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {source}{hint}", hint = sqlite_hint(source))]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("no checkpoint in {0}; has a restore been started with these paths? (a restore given --state-dir needs the same --state-dir here)")]
    NoCheckpoint(PathBuf),
    #[error(
        "the checkpoint in {dir} belongs to another restore ({key} was {was}, now {now}): {}",
        mismatch_hint(key)
    )]
    Mismatch {
        dir: PathBuf,
        key: &'static str,
        was: String,
        now: String,
    },
}

/// What to do about a checkpoint error, where there is something to do.
fn sqlite_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        _ if damage(e) => ". The checkpoint is damaged: rebuild it with `regen` (same SOURCE and DEST), or run the restore with --fresh; either way the files already on the destination are compared with their objects and kept, not copied again",
        Some(C::DiskFull) => ". The disk of the state folder is full: free space there, or pass --state-dir with a folder on another disk, then run the same command again",
        Some(C::CannotOpen | C::PermissionDenied | C::ReadOnly) => ". Check that the state folder can be written (run with sudo?), or pass --state-dir with another folder",
        _ => "",
    }
}

/// What to do about a checkpoint bound to another database or destination.
fn mismatch_hint(key: &str) -> &'static str {
    if key == "source_db" {
        "this destination was restored from another database, and two devices' files in one folder could be taken for each other. Restore into another folder; or, if it is the same device's database (copied, or the backup copy), pass --fresh to start over here (files already there with the right size and date are kept, not copied again)"
    } else {
        "pass --fresh to start it anew, or another --state-dir"
    }
}

/// The checkpoint file itself is damaged (not a database, or corrupt), as opposed to
/// unusable for a reason outside it (permissions, a full disk).
fn damage(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(C::NotADatabase | C::DatabaseCorrupt)
    )
}

impl StateError {
    /// The checkpoint file is damaged (not a database, or corrupt): `regen` rebuilds it,
    /// `--fresh` replaces it.
    pub fn is_damaged(&self) -> bool {
        matches!(self, StateError::Sqlite { source, .. } if damage(source))
    }
}

/// The default state folder: `$XDG_STATE_HOME` (or `~/.local/state`)`/mycloud-recover/
/// <dest name>-<hash of dest>`. DEST is taken as the path it resolves to, so `out`, `out/`
/// (as tab completion writes it) and `x/../out` find the same checkpoint. Keyed by DEST
/// alone: the device's disk mounted at another path the next day is the same restore (its
/// database is recognised by content, [`Checkpoint::bind`]), and another device restored
/// into the same folder is refused rather than mixed in. Checkpoints begun before round 10
/// were keyed by the database's path too, and are still found.
pub fn default_state_dir(source_db: &Path, dest: &Path) -> PathBuf {
    state_dir_in(&state_base(), source_db, dest)
}

/// [`default_state_dir`] found without a call to DEST's disk, for `status` when DEST does
/// not answer (resolving DEST asks that disk): the folder of DEST as named (made absolute,
/// not resolved), if it holds a checkpoint. DEST named as the restore took it (no symlink,
/// `..` or trailing `/` on the way, as usual) finds its checkpoint; otherwise none.
pub fn default_state_dir_as_named(dest: &Path) -> Option<PathBuf> {
    let named = std::path::absolute(dest).ok()?;
    let dir = folder_for(&state_base(), None, &named);
    dir.join("checkpoint.db").is_file().then_some(dir)
}

/// Where the default state folders are: `$XDG_STATE_HOME`, else `~/.local/state`.
fn state_base() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

/// The state folder under `base` keyed by `dest` (and, before round 10, `db`).
fn folder_for(base: &Path, db: Option<&Path>, dest: &Path) -> PathBuf {
    let mut key = match db {
        Some(db) => db.as_os_str().as_encoded_bytes().to_vec(),
        None => b"dest".to_vec(),
    };
    key.push(0);
    key.extend_from_slice(dest.as_os_str().as_encoded_bytes());
    let hash = xxhash_rust::xxh3::xxh3_64(&key);
    let name: String = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    base.join("mycloud-recover")
        .join(format!("{name}-{hash:016x}"))
}

/// [`default_state_dir`] under `base`.
fn state_dir_in(base: &Path, source_db: &Path, dest: &Path) -> PathBuf {
    let db = source_db
        .canonicalize()
        .unwrap_or_else(|_| source_db.to_path_buf());
    let folder = |db: Option<&Path>, dest: &Path| folder_for(base, db, dest);
    let resolved = crate::fsinfo::resolved_path(dest);
    let dir = folder(None, &resolved);
    if dir.exists() {
        return dir;
    }
    // Before round 10 the key held the database's path too; before round 8 it held DEST as
    // given. A restore begun then continues there.
    let given = std::path::absolute(dest).unwrap_or_else(|_| dest.to_path_buf());
    [folder(Some(&db), &resolved), folder(Some(&db), &given)]
        .into_iter()
        .find(|old| old.exists())
        .unwrap_or(dir)
}

/// What tells one database from another whatever path it is mounted at: its size and a
/// hash of its first and last MiB (the device is dead, so its database does not change).
pub fn fingerprint(db: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let f = File::open(db)?;
    let len = f.metadata()?.len();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    for at in [0, len.saturating_sub(1 << 20)] {
        let n = f.read_at(&mut buf, at)?;
        h.update(&buf[..n]);
    }
    Ok(format!("{len}:{:032x}", h.digest128()))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    run INTEGER PRIMARY KEY, started INTEGER NOT NULL, ended INTEGER, clean INTEGER NOT NULL DEFAULT 0,
    command TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS log(
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL,
    mtime INTEGER, outcome TEXT NOT NULL, error TEXT, run INTEGER NOT NULL,
    updated INTEGER NOT NULL, times INTEGER NOT NULL DEFAULT 1);
-- Done files that carry a note (an object of another length than the database says): few,
-- so the index costs nothing for the others, and later runs find them without a scan.
CREATE INDEX IF NOT EXISTS log_notes ON log(seq)
    WHERE error IS NOT NULL AND outcome IN ('copied', 'adopted');
";

/// Outcomes that runs keep finding the same way ([`Checkpoint::record`] keeps one record of
/// them per file, counting the runs), and their index, made after the log has `times`.
const REPEATED: &str = "('missing', 'failed')";
const REPEATED_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS log_repeated ON log(id) WHERE outcome IN ('missing', 'failed');";

/// How many runs a log record stands for: `times`, or 1 in a checkpoint from before it.
fn times_column(conn: &Connection) -> rusqlite::Result<&'static str> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('log') WHERE name = 'times'",
        [],
        |r| r.get(0),
    )?;
    Ok(if n > 0 { "times" } else { "1" })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether the checkpoint has table `name`.
fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type='table' AND name=?1",
        [name],
        |r| r.get(0),
    )
}

/// A text column of the log read in place (the log's texts are written from Rust strings).
fn log_text(v: rusqlite::types::ValueRef<'_>) -> &str {
    match v {
        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
        _ => "",
    }
}

/// [`Checkpoint::keys`] on a connection to the checkpoint.
fn read_keys(conn: &Connection) -> rusqlite::Result<(KeySet, KeySet)> {
    let mut stmt = conn.prepare("SELECT id, path, size, mtime, outcome FROM log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    // Latest state per id, keyed by a 64-bit hash of the id to keep memory small.
    let mut done: HashMap<u64, u128, KeyHashing> = HashMap::default();
    let mut redo: HashMap<u64, u128, KeyHashing> = HashMap::default();
    while let Some(r) = rows.next()? {
        let id = log_text(r.get_ref(0)?);
        let path = log_text(r.get_ref(1)?);
        let size = r.get_ref(2)?.as_i64()?;
        let mtime = r.get_ref(3)?.as_i64_or_null()?;
        let outcome = log_text(r.get_ref(4)?);
        let h = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
        if outcome == "redo" {
            done.remove(&h);
            redo.insert(h, redo_key(id, path));
        } else if Outcome::parse(outcome).is_some_and(Outcome::is_done) {
            redo.remove(&h);
            done.insert(h, done_key(id, path, size as u64, mtime));
        } else {
            done.remove(&h);
            redo.remove(&h);
        }
    }
    Ok((done.into_values().collect(), redo.into_values().collect()))
}

/// Opens the checkpoint at `path` to read it, writing nothing into its folder (`status`, a
/// dry run, the notes of a finished run). SQLite's read-only mode still creates the WAL's
/// `-wal` and `-shm` files where they are missing, and leaves them. With no `-wal` file
/// (the last run ended and folded its log in) the main file is all there is: it is opened
/// immutable, without locks or side files (a run starting meanwhile writes to a new `-wal`;
/// a read overlapping its first fold into the main file may fail, and says which file). With
/// a `-wal` (a run is writing, or one was killed) it is read through the files already there.
fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if Path::new(&wal).exists() {
        return Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY);
    }
    // An URI names the file: every byte but the unreserved ones and `/` percent-encoded.
    // An absolute path follows an empty authority (`file:///x`): after `file:` alone, one
    // given as `//x/...` (POSIX allows it; `$BASE/state` with BASE=/ makes it) read as the
    // host `x`, refused ("invalid uri authority").
    let mut uri = String::from("file:");
    if path.is_absolute() {
        uri.push_str("//");
    }
    for &b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                uri.push(b as char)
            }
            _ => uri.push_str(&format!("%{b:02X}")),
        }
    }
    uri.push_str("?immutable=1");
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
}

/// [`Earlier::restored_sample`] on a connection to the checkpoint.
fn restored_sample(conn: &Connection, n: usize, dest: &Path) -> rusqlite::Result<Vec<String>> {
    let bound = meta_value(conn, "dest")?;
    if bound.is_some_and(|b| crate::fsinfo::resolved_path(Path::new(&b)) != dest) {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT path FROM log WHERE seq IN
           (SELECT seq FROM log WHERE outcome IN ('copied', 'adopted') ORDER BY seq LIMIT ?1)
         OR seq IN
           (SELECT seq FROM log WHERE outcome IN ('copied', 'adopted') ORDER BY seq DESC LIMIT ?1)
         ORDER BY seq",
    )?;
    let rows = stmt.query_map([n as i64], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Under `--durability none`, the checkpoint's log is folded into its main file (a flush)
/// only past this many pages: 64 MiB (see [`Checkpoint::trust_the_os`]).
pub const TRUSTED_LOG_PAGES: u32 = 16_384;

/// How many of the first and of the last files a checkpoint records as restored are looked
/// for on DEST ([`look_for_restored`]) before a resume, and by `status` and `regen`.
pub const RESTORED_SAMPLE: usize = 8;

/// What a look on DEST for a checkpoint's sample of restored files found.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RestoredCheck {
    pub looked_for: usize,
    /// The sampled paths (relative to DEST) not there.
    pub gone: Vec<String>,
}

impl RestoredCheck {
    /// None of the files looked for is there: the wrong disk, or a NAS share not mounted
    /// (its mount point an empty folder).
    pub fn none_there(&self) -> bool {
        !self.gone.is_empty() && self.gone.len() == self.looked_for
    }

    /// Some of them, not all, are gone: removed or moved since they were recorded.
    pub fn some_gone(&self) -> bool {
        !self.gone.is_empty() && self.gone.len() < self.looked_for
    }
}

/// Looks on `dest` for a sample of files a checkpoint records as restored there
/// ([`Earlier::restored_sample`]): the one check a resume and `status` make before trusting
/// the checkpoint's counts. Only an lstat each: nothing is read or written.
pub fn look_for_restored(sample: Vec<String>, dest: &Path) -> RestoredCheck {
    RestoredCheck {
        looked_for: sample.len(),
        gone: sample
            .into_iter()
            .filter(|p| dest.join(p).symlink_metadata().is_err())
            .collect(),
    }
}

/// Checkpoint key: what DEST lay on when the latest run began placing files there, as
/// `"<filesystem type> <mount point>"` ([`DestOn`]).
pub const DEST_ON_KEY: &str = "dest_on";

/// What DEST lies on: the type of its filesystem and the mount point it lies below. A NAS
/// share that is not mounted (a remount that failed after the connection dropped) leaves its
/// mount point an ordinary folder of the system disk, under the same path: a restore run
/// then would write the whole device's files onto the system disk, and with nothing
/// recorded yet ([`look_for_restored`] has no sample to look for) nothing else notices. The
/// checkpoint keeps what DEST lay on when a run began placing files, and a run finding DEST
/// on something else stops before it writes. The device number is left out: the same
/// share mounted again gets a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestOn {
    pub fstype: String,
    pub mount_point: String,
}

impl DestOn {
    pub fn of(fs: &crate::fsinfo::FsInfo) -> DestOn {
        DestOn {
            fstype: fs.fstype.clone(),
            mount_point: fs.mount_point.display().to_string(),
        }
    }

    /// The value kept under [`DEST_ON_KEY`] (a type holds no space: mountinfo separates its
    /// fields with spaces).
    pub fn value(&self) -> String {
        format!("{} {}", self.fstype, self.mount_point)
    }

    /// A value kept under [`DEST_ON_KEY`]; `None` for one that is not such a value.
    pub fn parse(value: &str) -> Option<DestOn> {
        let (fstype, mount_point) = value.split_once(' ')?;
        Some(DestOn {
            fstype: fstype.to_string(),
            mount_point: mount_point.to_string(),
        })
    }

    /// What DEST was on before (`recorded`, the kept value) when it differs from `self`.
    pub fn changed_from(&self, recorded: Option<&str>) -> Option<DestOn> {
        recorded.and_then(DestOn::parse).filter(|was| was != self)
    }
}

impl std::fmt::Display for DestOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} mounted at {}", self.fstype, self.mount_point)
    }
}

/// DEST found on another mount than the one the last run placed files on: what every
/// command that reads DEST against the checkpoint (`restore`, a dry run, `status`, `regen`,
/// `verify`) says before it refuses, from [`check_dest_on_same_mount`]. Its text names DEST,
/// both mounts and where to mount it again, followed by what the command adds (`then`).
#[derive(Debug)]
pub struct MountChanged {
    pub dest: PathBuf,
    pub was: DestOn,
    pub now: DestOn,
    then: String,
}

impl std::fmt::Display for MountChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} was on {} when the last run placed files there, but it is now on {}: is the disk or share mounted? Mount it again at {}{}",
            self.dest.display(),
            self.was,
            self.now,
            self.was.mount_point,
            self.then
        )
    }
}

impl std::error::Error for MountChanged {}

/// Is `dest`, lying on `fs` now, on the mount recorded under [`DEST_ON_KEY`] (`recorded`)?
/// The one check of [`DestOn`] for every command: a NAS share not mounted again leaves a
/// bare folder under the same path, which a restore would fill, a regen would record as
/// holding nothing, a verify would report as missing everything, and whose checkpoint
/// counts `status` would pass for what DEST holds. `then` ends the message with what to
/// do besides mounting it again (it follows "Mount it again at MOUNT POINT").
pub fn check_dest_on_same_mount(
    recorded: Option<&str>,
    dest: &Path,
    fs: &crate::fsinfo::FsInfo,
    then: &str,
) -> Result<(), Box<MountChanged>> {
    let now = DestOn::of(fs);
    match now.changed_from(recorded) {
        None => Ok(()),
        Some(was) => Err(Box::new(MountChanged {
            dest: dest.to_path_buf(),
            was,
            now,
            then: then.to_string(),
        })),
    }
}

/// The notes runs before `run` kept for files they finished (see
/// [`Checkpoint::earlier_notes`]), oldest first.
fn notes_before(conn: &Connection, run: i64) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT id, error FROM log
         WHERE error IS NOT NULL AND outcome IN ('copied', 'adopted') AND run < ?1
         ORDER BY seq",
    )?;
    let rows = stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// What the earlier runs left in a state folder, read without its lock and without writing
/// anything (SQLite read-only): what a dry run knows. A dry run that ignored the checkpoint
/// called files "already on destination" that a real run counts as done, and files `regen`
/// marked wrong would have looked adopted; it also refuses what a real run refuses (another
/// DEST, other name rules). It may read while a run writes: WAL readers see the last commit.
pub struct Earlier {
    conn: Connection,
    path: PathBuf,
}

impl Earlier {
    /// `None` when `dir` holds no checkpoint with a log (none yet, or one from before the log,
    /// which only a real run converts).
    pub fn open(dir: &Path) -> Result<Option<Earlier>, StateError> {
        Earlier::open_with(dir, None)
    }

    /// With `flags`, a plain open; without, [`open_read_only`].
    fn open_with(dir: &Path, flags: Option<OpenFlags>) -> Result<Option<Earlier>, StateError> {
        let path = dir.join("checkpoint.db");
        if !path.exists() {
            return Ok(None);
        }
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = match flags {
            Some(flags) => Connection::open_with_flags(&path, flags),
            None => open_read_only(&path),
        }
        .map_err(sq)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sq)?;
        if !has_table(&conn, "log").map_err(sq)? || has_table(&conn, "files").map_err(sq)? {
            return Ok(None);
        }
        Ok(Some(Earlier { conn, path }))
    }

    fn sq(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// What [`Checkpoint::keys`] returns.
    pub fn keys(&self) -> Result<(KeySet, KeySet), StateError> {
        read_keys(&self.conn).map_err(|e| self.sq(e))
    }

    /// Paths (relative to `dest`) of files the checkpoint records as restored there: up to
    /// `n` of the first recorded and `n` of the last. Empty when the checkpoint is bound to
    /// another destination (which [`Checkpoint::bind`] refuses with its own message).
    pub fn restored_sample(&self, n: usize, dest: &Path) -> Result<Vec<String>, StateError> {
        restored_sample(&self.conn, n, dest).map_err(|e| self.sq(e))
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        meta_value(&self.conn, key).map_err(|e| self.sq(e))
    }

    /// What [`Checkpoint::earlier_notes`] returns: the notes of every run so far (a file
    /// restored from an object of another length, which the real run copies again once its
    /// object has the database's length).
    pub fn earlier_notes(&self) -> Result<Vec<(String, String)>, StateError> {
        notes_before(&self.conn, i64::MAX).map_err(|e| self.sq(e))
    }

    /// What [`Checkpoint::unsure_since`] returns once the real run has opened the
    /// checkpoint: the doubt kept, with a last run that died taken in (opening takes it in;
    /// the meta value alone missed a crash no run has opened the checkpoint since).
    pub fn unsure_since(&self) -> Result<Option<i64>, StateError> {
        doubt_of(&self.conn).map_err(|e| self.sq(e))
    }

    /// Refuses what [`Checkpoint::bind`] would refuse, storing nothing.
    pub fn check_binding(&self, source_db: &Path, dest: &Path) -> Result<(), StateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        binding(&self.conn, dir, source_db, dest).map(drop)
    }
}

/// What [`Checkpoint::bind`] stores (key and value), or why the checkpoint in `dir` is not
/// for this restore.
fn binding(
    conn: &Connection,
    dir: &Path,
    source_db: &Path,
    dest: &Path,
) -> Result<Vec<(&'static str, String)>, StateError> {
    let meta = |key| {
        meta_value(conn, key).map_err(|source| StateError::Sqlite {
            path: dir.join("checkpoint.db"),
            source,
        })
    };
    let print = fingerprint(source_db).ok();
    let mut store = Vec::new();
    for (key, value) in [("source_db", source_db), ("dest", dest)] {
        let now = value.display().to_string();
        match meta(key)? {
            // The same database at another path (the disk mounted elsewhere, a copy): the
            // same restore, followed there.
            Some(was)
                if key == "source_db"
                    && was != now
                    && print.is_some()
                    && meta(FINGERPRINT_KEY)? == print =>
            {
                store.push((key, now))
            }
            // Before round 8 DEST was stored as given (a trailing `/`, a symlink): the same
            // folder, said another way, is the same restore; stored anew.
            Some(was)
                if key == "dest"
                    && was != now
                    && crate::fsinfo::resolved_path(Path::new(&was)) == dest =>
            {
                store.push((key, now))
            }
            Some(was) if was != now => {
                return Err(StateError::Mismatch {
                    dir: dir.to_path_buf(),
                    key,
                    was,
                    now,
                })
            }
            Some(_) => {}
            None => store.push((key, now)),
        }
    }
    if let (Some(print), None) = (print, meta(FINGERPRINT_KEY)?) {
        store.push((FINGERPRINT_KEY, print));
    }
    Ok(store)
}

/// The open checkpoint, held by the one thread that writes it.
pub struct Checkpoint {
    conn: Connection,
    dir: PathBuf,
    run: i64,
    /// Where this run created the checkpoint (there was none): the folders taking the lock
    /// made, which [`Checkpoint::discard`] gives back to the lock to remove.
    created: Option<Vec<PathBuf>>,
    /// Holds the advisory lock for as long as the checkpoint is open; the kernel drops it
    /// when the process dies, so a killed run never leaves a stale lock. Kept
    /// ([`StateLock::kept`]): dropping it removes nothing.
    _lock: StateLock,
}

/// The state folder's lock, taken: no other run can change its checkpoint while it is held.
/// A restore takes it first, reads what the checkpoint knows ([`StateLock::read_keys`]) while
/// it plans, and opens the checkpoint for writing ([`StateLock::open`]) only once the plan
/// is sound, so a command that fails at planning changes nothing in the checkpoint.
///
/// A lock dropped before it opened a checkpoint (the run refused at planning, stopped by
/// Ctrl-C, or a panic unwinding) removes what [`StateLock::take`] made: a refused first run
/// leaves no state folder behind (see its `Drop`); so does one that gives up the checkpoint
/// it created ([`Checkpoint::discard`] hands the lock back what taking it made). A second
/// Ctrl-C ends the process without dropping anything; it removes the same
/// (`remove_unopened`).
///
/// Removing `lock` while it is held means the lock is not the file alone but the file that
/// the path `lock` names: a run that opened `lock` just before its holder removed it would
/// otherwise lock the removed file once the holder exits, and a third run would lock a new
/// `lock`, two runs on one checkpoint. So a run checks, once it has locked the file it
/// opened, that `lock` still names that file, and opens `lock` again if not
/// (`StateLock::lock`).
pub struct StateLock {
    dir: PathBuf,
    /// The kernel drops the advisory lock when the process dies, so a killed run never
    /// leaves a stale lock. Dropped after [`StateLock`]'s `drop` has run.
    _lock: File,
    /// The folders [`StateLock::take`] created (the state folder and those above it that were
    /// missing), outermost first: what dropping the lock before [`StateLock::open`] removes,
    /// when the state folder itself is among them.
    /// Emptied once the checkpoint is open.
    made: Vec<PathBuf>,
    /// This lock's entry in [`UNOPENED`], while it has one.
    id: u64,
}

/// How many times [`StateLock::lock`] opens `lock` again after finding that the file it
/// locked is no longer `lock` (each time, another run removed or replaced it in between).
const LOCK_ATTEMPTS: usize = 8;

/// The locks not yet opened that a second Ctrl-C cleans up ([`remove_unopened`]): for each,
/// its id, its state folder and the folders taking it made (only those whose state folder
/// was made: the others have nothing to remove).
static UNOPENED: Mutex<Vec<(u64, PathBuf, Vec<PathBuf>)>> = Mutex::new(Vec::new());

fn unopened() -> MutexGuard<'static, Vec<(u64, PathBuf, Vec<PathBuf>)>> {
    UNOPENED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A second Ctrl-C exits at once ([`crate::signals`]), so no lock is dropped: a first run
/// stopped so while it planned left a state folder holding only `lock` (which `status` then
/// finds). Called on the signal thread before that exit, this removes what dropping each
/// lock not yet opened would remove ([`remove_lock_only`]). When the command's thread holds
/// the list (taking, opening or dropping a lock: when dropping, doing the same removal),
/// nothing is done here, since the exit must not wait. Once done, the list stays held until
/// the process is gone, so the command's thread cannot mark a checkpoint opened
/// ([`StateLock::kept`]) in a state folder just removed. One it is opening meanwhile (SQLite
/// making `checkpoint.db`) can be left without `lock`, or fail to open: harmless, as the
/// exit follows at once and the next run makes `lock` again.
fn remove_unopened() {
    let Ok(unopened) = UNOPENED.try_lock() else {
        return;
    };
    for (_, dir, made) in unopened.iter() {
        remove_lock_only(dir, made);
    }
    std::mem::forget(unopened);
}

/// Checkpoints this process created for a run that may leave them unfinished (`regen`:
/// [`Checkpoint::until_finished`]): their id, state folder and the folders taking its lock
/// made.
static UNFINISHED: Mutex<Vec<(u64, PathBuf, Vec<PathBuf>)>> = Mutex::new(Vec::new());

/// A checkpoint's entry in `UNFINISHED`, removed when dropped (its run is done with it:
/// finished, or given up with [`Checkpoint::discard`]).
pub struct Unfinished(u64);

impl Drop for Unfinished {
    fn drop(&mut self) {
        UNFINISHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, ..)| *id != self.0);
    }
}

/// Removes, as the process ends, what a run left behind on a thread still in a call to a
/// disk that does not answer (a `regen` stopped by a DEST that hangs mid-walk,
/// `restore::watch`) would have removed had it ended: a checkpoint it created and has not
/// finished, with the state folder taking its lock made (as [`Checkpoint::discard`]), and a
/// state folder holding only the lock of one not yet opened (as [`StateLock`]'s drop). Its
/// records were never committed (one transaction), so nothing else is lost; a checkpoint
/// that was there is left as it is. `main` calls it before every exit; the thread's open
/// connection never writes again.
pub fn remove_left_behind() {
    remove_unopened();
    let Ok(unfinished) = UNFINISHED.try_lock() else {
        return;
    };
    for (_, dir, made) in unfinished.iter() {
        for name in ["checkpoint.db", "checkpoint.db-wal", "checkpoint.db-shm"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        remove_lock_only(dir, made);
    }
    std::mem::forget(unfinished);
}

impl StateLock {
    /// Creates the folder if needed and takes its lock.
    pub fn take(dir: &Path) -> Result<StateLock, StateError> {
        let (file, made) = open_lock_file(dir, Vec::new())?;
        StateLock::lock(dir, file, made)
    }

    /// Locks `file`, opened as `dir`'s `lock` (after making the folders `made`), and checks
    /// that `lock` still names it (device and inode): if its holder removed it meanwhile (its
    /// `Drop`), or removed it and another run made a new one, `file` is let go and `lock`
    /// opened again (the folder made again if it went too), at most [`LOCK_ATTEMPTS`] times.
    fn lock(dir: &Path, mut file: File, mut made: Vec<PathBuf>) -> Result<StateLock, StateError> {
        let path = dir.join("lock");
        for _ in 0..LOCK_ATTEMPTS {
            rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                .map_err(|_| StateError::Locked(dir.to_path_buf()))?;
            if names(&path, &file) {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                static HOOK: Once = Once::new();
                HOOK.call_once(|| crate::signals::before_exit(remove_unopened));
                let id = NEXT.fetch_add(1, Ordering::Relaxed);
                if made.last().map(PathBuf::as_path) == Some(dir) {
                    unopened().push((id, dir.to_path_buf(), made.clone()));
                }
                return Ok(StateLock {
                    dir: dir.to_path_buf(),
                    _lock: file,
                    made,
                    id,
                });
            }
            drop(file);
            (file, made) = open_lock_file(dir, made)?;
        }
        Err(StateError::Locked(dir.to_path_buf()))
    }

    /// Whether the folder holds a checkpoint (an earlier run opened one).
    pub fn has_checkpoint(&self) -> bool {
        self.dir.join("checkpoint.db").exists()
    }

    /// The lock of a run whose checkpoint is open: dropped, it leaves the folder as it is.
    fn kept(mut self) -> StateLock {
        unopened().retain(|(id, ..)| *id != self.id);
        self.made.clear();
        self
    }

    /// What [`Checkpoint::keys`] would return, read without writing anything: `None` when
    /// there is no checkpoint yet, or one from before the log (opening converts it).
    pub fn read_keys(&self) -> Result<Option<(KeySet, KeySet)>, StateError> {
        self.earlier()?.map(|e| e.keys()).transpose()
    }

    /// Paths (relative to `dest`) of files the checkpoint records as restored there (see
    /// [`Earlier::restored_sample`]), read without writing anything; empty when there is no
    /// log yet.
    pub fn restored_sample(&self, n: usize, dest: &Path) -> Result<Vec<String>, StateError> {
        Ok(match self.earlier()? {
            Some(e) => e.restored_sample(n, dest)?,
            None => Vec::new(),
        })
    }

    /// A value from the checkpoint's key-value table, read without writing anything; `None`
    /// when there is no checkpoint yet.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        Ok(match self.earlier()? {
            Some(e) => e.meta(key)?,
            None => None,
        })
    }

    /// Refuses what [`Checkpoint::bind`] would refuse (another database, another DEST),
    /// storing nothing; a checkpoint from before the log is checked once opened.
    pub fn check_binding(&self, source_db: &Path, dest: &Path) -> Result<(), StateError> {
        match self.earlier()? {
            Some(e) => e.check_binding(source_db, dest),
            None => Ok(()),
        }
    }

    /// The checkpoint's log, read by the lock's holder (read-write: SQLite may need to
    /// recover a killed run's WAL; nothing is written).
    fn earlier(&self) -> Result<Option<Earlier>, StateError> {
        Earlier::open_with(&self.dir, Some(OpenFlags::SQLITE_OPEN_READ_WRITE))
    }

    /// Opens (creating if needed) the checkpoint and starts this run's record in it.
    /// `fresh` forgets earlier progress.
    pub fn open(self, fresh: bool, command: &str) -> Result<Checkpoint, StateError> {
        let dir = self.dir.clone();
        let path = dir.join("checkpoint.db");
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        // What a crash left unsure on DEST outlives the checkpoint that knew of it: the
        // new one starts from the same doubt (see `Checkpoint::unsure_since`).
        let carried = if fresh { unsure_in(&path) } else { None };
        let created = (!path.exists()).then(|| self.made.clone());
        if fresh {
            // Forgotten anyway: a damaged checkpoint must not stand in the way of a new one.
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StateError::Io {
                            path: p.into(),
                            source: e,
                        })
                    }
                    _ => {}
                }
            }
        }
        let conn = Connection::open(&path).map_err(sq)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(sq)?;
        conn.execute_batch(SCHEMA).map_err(sq)?;
        if times_column(&conn).map_err(sq)? == "1" {
            conn.execute_batch("ALTER TABLE log ADD COLUMN times INTEGER NOT NULL DEFAULT 1;")
                .map_err(sq)?;
        }
        conn.execute_batch(REPEATED_INDEX).map_err(sq)?;
        // Checkpoints from before the log kept one row per id in `files`: carry them over.
        if has_table(&conn, "files").map_err(sq)? {
            conn.execute_batch(
                "BEGIN;
                 INSERT INTO log(id, path, size, mtime, outcome, error, run, updated)
                   SELECT id, path, size, mtime, outcome, error, run, updated FROM files ORDER BY updated;
                 DROP TABLE files;
                 COMMIT;",
            )
            .map_err(sq)?;
        }
        // What a crash left unsure: carried over by `--fresh`, else taken in from the run
        // before this one (read before this run's row is added).
        let doubt = match fresh {
            true => carried,
            false => doubt_of(&conn).map_err(sq)?.map(|since| (since, false)),
        };
        // Recorded as a run that ended having done nothing, as clean as the run before it,
        // until it starts writing (`begin_copy`): a run refused before that (a bad --report,
        // another restore in DEST) must neither make the next one take it for a crash nor
        // hide a crash before it.
        conn.execute(
            "INSERT INTO runs(started, ended, clean, command)
             SELECT ?1, ?1, COALESCE((SELECT clean FROM runs ORDER BY run DESC LIMIT 1), 1), ?2",
            params![now_ms(), command],
        )
        .map_err(sq)?;
        let run = conn.last_insert_rowid();
        let c = Checkpoint {
            conn,
            dir,
            run,
            created,
            _lock: self.kept(),
        };
        if let Some((since, trash)) = doubt {
            c.set_meta(UNSURE_KEY, &since.to_string())?;
            if trash {
                c.set_meta(TRASH_KEY, "1")?;
            }
        }
        Ok(c)
    }
}

/// A lock dropped before it opened a checkpoint, by a run that returned an error (a plan
/// error, a source without its objects, a DEST that cannot be made), was stopped while it
/// planned, or panicked: what [`StateLock::take`] made goes (`remove_lock_only`). Best
/// effort, and nothing depends on it: what cannot be removed stays, as before. Done while
/// holding `UNOPENED`, so a second Ctrl-C meanwhile does not do it too.
impl Drop for StateLock {
    fn drop(&mut self) {
        let mut unopened = unopened();
        unopened.retain(|(id, ..)| *id != self.id);
        remove_lock_only(&self.dir, &self.made);
    }
}

/// Removes the state folder `dir` when taking its lock made it (it is the last of `made`)
/// and it holds only `lock`: the lock file and then each folder in `made`, innermost first,
/// each only if nothing else is in it (another restore's state folder beside it stays). A
/// state folder holding anything but the lock (a checkpoint, a report) or one that was there
/// before is left as it is. The lock file goes while the lock is still held (the caller
/// holds it): a run that opened it meanwhile finds it no longer named `lock` once it locks it
/// and opens `lock` again ([`StateLock::lock`]).
fn remove_lock_only(dir: &Path, made: &[PathBuf]) {
    let only_the_lock = || {
        std::fs::read_dir(dir)
            .is_ok_and(|mut entries| entries.all(|e| e.is_ok_and(|e| e.file_name() == "lock")))
    };
    // The state folder itself made here, or nothing is removed.
    if made.last().map(PathBuf::as_path) != Some(dir)
        || !only_the_lock()
        || std::fs::remove_file(dir.join("lock")).is_err()
    {
        return;
    }
    remove_empty(made);
}

/// Makes the folders missing on the way to the state folder `dir` and opens (creating it if
/// needed) its `lock`; with the folders made, those of an earlier attempt (`made`) kept,
/// outermost first. Only the folders created here count as made, not those missing by their
/// spelling: a path through `..` (`new/../existing`) reaches a folder that was there, and
/// another run may make the same folder meanwhile: neither is this lock's to remove.
fn open_lock_file(dir: &Path, mut made: Vec<PathBuf>) -> Result<(File, Vec<PathBuf>), StateError> {
    let io = |source| StateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    // A holder that drops its lock removes `lock` and the folder it made: between the
    // folders made here and the open, they can go (round 20's review). Made again then.
    'attempt: for attempt in 1..=LOCK_ATTEMPTS {
        let last = attempt == LOCK_ATTEMPTS;
        // Gone (or its parent gone) between a look and a call: another run's cleanup.
        let raced = |e: &std::io::Error, d: &Path| {
            !last
                && (e.kind() == std::io::ErrorKind::NotFound
                    || (e.kind() == std::io::ErrorKind::AlreadyExists
                        && d.symlink_metadata().is_err()))
        };
        let mut missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && d.symlink_metadata().is_err())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        for d in missing {
            match std::fs::create_dir(&d) {
                Ok(()) => made.push(d),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) if raced(&e, &d) => continue 'attempt,
                Err(e) => {
                    remove_empty(&made);
                    return Err(io(e));
                }
            }
        }
        // All of them are `dir` or above it, spelled as its beginnings: fewer parts is
        // further out. (An earlier attempt's folders can be made again, or below those made
        // now.)
        made.sort_by_key(|d| d.components().count());
        made.dedup();
        let opened = std::fs::create_dir_all(dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join("lock"))
        });
        match opened {
            Ok(file) => return Ok((file, made)),
            Err(e) if raced(&e, dir) => {}
            Err(e) => {
                remove_empty(&made);
                return Err(io(e));
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Whether `path` names `file` (the same device and inode).
fn names(path: &Path, file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(p), Ok(f)) => p.dev() == f.dev() && p.ino() == f.ino(),
        _ => false,
    }
}

/// Removes the folders `made` (outermost first), innermost first, stopping at the first one
/// that is not empty or cannot be removed.
fn remove_empty(made: &[PathBuf]) {
    for d in made.iter().rev() {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
    }
}

/// A run that placed files and then died (kill -9, a power cut) can leave copies at their
/// final names that the checkpoint does not record, and a power cut can leave such a copy
/// with its name, size and date but without its data (ext4 reads it as zeros). Those must
/// be compared with their objects, not adopted by size and date; files on DEST the
/// checkpoint does not record and that were not changed since that run began (a DEST filled
/// by an earlier tool, say) need not be: they are adopted as on a first run, one `stat`
/// each instead of reading both copies.
///
/// The doubt is kept in the checkpoint (`UNSURE_KEY`, the time the first crashed run began
/// placing files, on DEST's own clock) until a run has looked at every file: one that ran
/// over a selection, or was stopped, leaves some unsure files unlooked at. Times are DEST's
/// (the change time of a file the run creates there first), so a network destination's
/// clock is compared with itself.
pub const UNSURE_KEY: &str = "unsure_since";
/// When the latest run that placed files began (DEST's clock, ms; `i64::MIN` when unknown).
const COPY_BEGAN_KEY: &str = "copy_began";
/// Some run restored Trash (`--include-trash`): a run without it does not look at those
/// files, so it cannot settle the doubt for them.
const TRASH_KEY: &str = "trash_included";

/// The doubt `path` (an old checkpoint about to be forgotten) holds, as (since, Trash
/// included): `None` when it has none or does not exist; from the beginning of time when it
/// cannot be read (a damaged checkpoint may well be a power cut's).
fn unsure_in(path: &Path) -> Option<(i64, bool)> {
    if !path.exists() {
        return None;
    }
    let read = || -> rusqlite::Result<Option<(i64, bool)>> {
        let conn = open_read_only(path)?;
        let trash = meta_value(&conn, TRASH_KEY)?.as_deref() == Some("1");
        Ok(doubt_of(&conn)?.map(|since| (since, trash)))
    };
    read().unwrap_or(Some((i64::MIN, true)))
}

/// The doubt a checkpoint holds ([`UNSURE_KEY`]), with its last run taken in if that run did
/// not end cleanly: the files it placed are unsure from when it began (a checkpoint from
/// before that was kept does not know when: from the beginning).
fn doubt_of(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let ms =
        |key| -> rusqlite::Result<Option<i64>> { Ok(meta_value(conn, key)?.map(|v| ms_value(&v))) };
    let kept = ms(UNSURE_KEY)?;
    let died = conn
        .query_row(
            "SELECT clean FROM runs ORDER BY run DESC LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        == Some(0);
    Ok(match died {
        true => Some(
            kept.unwrap_or(i64::MAX)
                .min(ms(COPY_BEGAN_KEY)?.unwrap_or(i64::MIN)),
        ),
        false => kept,
    })
}

/// Whether a restore (or `regen`) holds the lock of the state folder `dir` now.
fn lock_held(dir: &Path) -> bool {
    File::open(dir.join("lock")).is_ok_and(|f| {
        rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
    })
}

impl Checkpoint {
    /// Opens (creating if needed) the checkpoint in `dir` and takes its lock.
    /// `fresh` forgets earlier progress.
    pub fn open(dir: &Path, fresh: bool, command: &str) -> Result<Checkpoint, StateError> {
        StateLock::take(dir)?.open(fresh, command)
    }

    fn sq(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.dir.join("checkpoint.db"),
            source,
        }
    }

    /// Gives up a run refused after it opened the checkpoint, with nothing it recorded kept
    /// (`regen` refused, its rebuild rolled back): the checkpoint is left as the run found
    /// it. Where this run created it (there was none), it goes (with its `-wal` and `-shm`),
    /// and the lock is dropped as that of a run refused before it opened one: it removes the
    /// state folder where taking it made it ([`StateLock`]'s drop), so a refused first run
    /// leaves nothing behind; a folder that was there keeps its `lock`, as then. A checkpoint
    /// that was there loses the entry of this run, which did nothing ([`StateLock::open`]
    /// adds it). Best effort, as the lock's drop: what cannot be removed stays.
    pub fn discard(self) {
        let Checkpoint {
            conn,
            dir,
            run,
            created,
            _lock: mut lock,
        } = self;
        let Some(made) = created else {
            let _ = conn.execute("DELETE FROM runs WHERE run = ?1", [run]);
            return;
        };
        // Closed before its files go (closing folds its log into the main file); still
        // under the lock, so no other run opens it meanwhile.
        drop(conn);
        for name in ["checkpoint.db", "checkpoint.db-wal", "checkpoint.db-shm"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        lock.made = made;
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where this run created the checkpoint: an entry that has [`remove_left_behind`] remove
    /// it, with the state folder it made, should the run not end (left behind in a call to a
    /// disk that does not answer), until the entry is dropped. None where the checkpoint was
    /// there before (it is left as it is).
    pub fn until_finished(&self) -> Option<Unfinished> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let made = self.created.clone()?;
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        UNFINISHED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id, self.dir.clone(), made));
        Some(Unfinished(id))
    }
}

impl Checkpoint {
    /// Whether the run before this one ended without finishing cleanly (killed, power cut):
    /// then temporary files may be left on the destination.
    pub fn previous_run_unclean(&self) -> Result<bool, StateError> {
        let r: Option<i64> = self
            .conn
            .query_row(
                "SELECT clean FROM runs WHERE run < ?1 ORDER BY run DESC LIMIT 1",
                [self.run],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(|e| self.sq(e))?;
        Ok(r == Some(0))
    }

    /// Keys of every file whose latest record says done, and (id, path) keys of files whose
    /// latest record says "redo" (found differing by `regen`). One pass over the log, reading
    /// the text in place (no allocation per row): at 1.35M records this pass is serial work
    /// before a resume hands out its first file.
    pub fn keys(&self) -> Result<(KeySet, KeySet), StateError> {
        read_keys(&self.conn).map_err(|e| self.sq(e))
    }

    /// Keys of every file recorded as done (see [`Checkpoint::keys`]).
    pub fn done_keys(&self) -> Result<KeySet, StateError> {
        Ok(self.keys()?.0)
    }

    /// `--durability none`: the checkpoint's own commits are not flushed either, as the name
    /// promises. SQLite's WAL stays consistent; a power cut may lose the last commits, and
    /// those files are then copied or adopted again.
    ///
    /// In WAL mode with `synchronous=NORMAL` a commit makes no flush, but folding the log
    /// into the main file does (before and after): SQLite folds it in at every 1,000 pages
    /// (about 5,000 files here) and when the connection closes. When DEST shares a disk
    /// with the state folder, each of those flushes waits for DEST's own write-back: one
    /// such flush held a 100,000-file restore's end for 2 s (docs/PERFORMANCE.md, round
    /// 16). So the log is folded in only once it passes [`TRUSTED_LOG_PAGES`] (that fold
    /// must be flushed, or a power cut could leave the main file half old and half new),
    /// and it is left as it is at the end; the next opening reads it, and the next run
    /// folds it in. Called after the run's start is recorded ([`Checkpoint::begin_placing`],
    /// still flushed), so that a crash is always known to the next run.
    pub fn trust_the_os(&self) -> Result<(), StateError> {
        let sq = |e| StateError::Sqlite {
            path: self.dir.join("checkpoint.db"),
            source: e,
        };
        self.conn
            .execute_batch(&format!(
                "PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint={TRUSTED_LOG_PAGES};"
            ))
            .map_err(sq)?;
        self.conn
            .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(sq)?;
        Ok(())
    }

    /// Records a batch in one transaction. Files already recorded done and reported again as
    /// already done are left as they are (no write per file on a no-op resume). A file found
    /// missing or failing again replaces its earlier records of that outcome, counting them
    /// (see the module docs), so the log does not grow by them with every run.
    pub fn record(&mut self, batch: &[Record]) -> Result<(), StateError> {
        let run = self.run;
        let now = now_ms();
        let path = self.dir.join("checkpoint.db");
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        // A savepoint, so that a batch nests in `regen`'s one transaction.
        let tx = self.conn.savepoint().map_err(sq)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO log(id, path, size, mtime, outcome, error, run, updated, times)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(sq)?;
            let mut earlier = tx
                .prepare_cached(&format!(
                    "SELECT seq, times FROM log WHERE id = ?1 AND outcome = ?2 AND outcome IN {REPEATED}"
                ))
                .map_err(sq)?;
            let mut forget = tx
                .prepare_cached("DELETE FROM log WHERE seq = ?1")
                .map_err(sq)?;
            for r in batch.iter().filter(|r| r.outcome.is_logged()) {
                let mut times = 1i64;
                if matches!(r.outcome, Outcome::Missing | Outcome::Failed) {
                    let found: Vec<(i64, i64)> = earlier
                        .query_map(params![r.id, r.outcome.as_str()], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })
                        .and_then(|rows| rows.collect())
                        .map_err(sq)?;
                    for (seq, t) in found {
                        forget.execute([seq]).map_err(sq)?;
                        times += t;
                    }
                }
                insert
                    .execute(params![
                        r.id,
                        r.rel_path,
                        r.size as i64,
                        r.mtime_ms,
                        r.outcome.as_str(),
                        r.error,
                        run,
                        now,
                        times
                    ])
                    .map_err(sq)?;
            }
        }
        tx.commit().map_err(sq)
    }

    /// Ties the checkpoint to one source database and destination: a record of "done" is
    /// only true for the destination it was made for.
    pub fn bind(&self, source_db: &Path, dest: &Path) -> Result<(), StateError> {
        for (key, value) in binding(&self.conn, &self.dir, source_db, dest)? {
            self.set_meta(key, &value)?;
        }
        Ok(())
    }

    /// Records the object folder this run reads ([`SOURCE_FILES_KEY`]), for the commands
    /// `status` suggests when it is given only the state folder. Not part of the binding:
    /// the same objects may be reached by another path on the next run.
    pub fn record_objects(&self, files: &Path) -> Result<(), StateError> {
        let files = files.canonicalize().unwrap_or_else(|_| files.to_path_buf());
        self.set_meta(SOURCE_FILES_KEY, &files.display().to_string())
    }

    /// Begins `regen`'s rebuild of the file records: one transaction from here to
    /// [`Checkpoint::finish_rebuild`], so that readers (`status`) see the old records until
    /// the new ones are all written, and a regen killed or refused on the way changes no
    /// record (nor this run's row: it stays a run that ended having done nothing). Returns
    /// the last record's number before the rebuild.
    pub fn begin_rebuild(&self) -> Result<i64, StateError> {
        self.conn
            .execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TEMP TABLE IF NOT EXISTS keep(id TEXT PRIMARY KEY) WITHOUT ROWID;
                 DELETE FROM temp.keep;",
            )
            .map_err(|e| self.sq(e))?;
        self.conn
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM log", [], |r| r.get(0))
            .map_err(|e| self.sq(e))
    }

    /// Keeps the records of file `id` through the rebuild: a file outside the selection
    /// regen looked at (another `--only`, the Trash), whose state regen did not learn.
    pub fn keep_records_of(&self, id: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached("INSERT OR IGNORE INTO temp.keep(id) VALUES (?1)")
            .and_then(|mut s| s.execute([id]))
            .map_err(|e| self.sq(e))?;
        Ok(())
    }

    /// Ends the rebuild begun at `before` ([`Checkpoint::begin_rebuild`]): forgets the records
    /// made before it, but those of the files kept ([`Checkpoint::keep_records_of`]), and
    /// commits. A file no longer in the plan loses its records too.
    pub fn finish_rebuild(&self, before: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "DELETE FROM log WHERE seq <= ?1 AND id NOT IN (SELECT id FROM temp.keep)",
                [before],
            )
            .map_err(|e| self.sq(e))?;
        self.conn
            .execute_batch(
                "DELETE FROM meta WHERE key='folders_created'; DELETE FROM temp.keep; COMMIT;",
            )
            .map_err(|e| self.sq(e))
    }

    /// Gives up the rebuild: the checkpoint is as it was before it began.
    pub fn abandon_rebuild(&self) -> Result<(), StateError> {
        self.conn.execute_batch("ROLLBACK").map_err(|e| self.sq(e))
    }

    /// Records files found on the destination that differ from the plan: the next restore
    /// replaces them (and only them) even without --overwrite.
    pub fn record_redo(&mut self, batch: &[(Record, String)]) -> Result<(), StateError> {
        let run = self.run;
        let now = now_ms();
        let path = self.dir.join("checkpoint.db");
        let sq = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.savepoint().map_err(sq)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO log(id, path, size, mtime, outcome, error, run, updated)
                     VALUES (?1, ?2, ?3, ?4, 'redo', ?5, ?6, ?7)",
                )
                .map_err(sq)?;
            for (r, why) in batch {
                stmt.execute(params![
                    r.id,
                    r.rel_path,
                    r.size as i64,
                    r.mtime_ms,
                    why,
                    run,
                    now
                ])
                .map_err(sq)?;
            }
        }
        tx.commit().map_err(sq)
    }

    /// A value from the checkpoint's key-value table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StateError> {
        meta_value(&self.conn, key).map_err(|e| self.sq(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                params![key, value],
            )
            .map_err(|e| self.sq(e))?;
        Ok(())
    }

    /// (id, note) of files done by earlier runs with a note kept in their record (an
    /// object of another length than the database says), oldest first: collected by id,
    /// the newest note of each file wins. A resume does not look at those files again, so
    /// its report takes their notes from here.
    pub fn earlier_notes(&self) -> Result<Vec<(String, String)>, StateError> {
        notes_before(&self.conn, self.run).map_err(|e| self.sq(e))
    }

    /// Marks this run as writing to the destination or the checkpoint: from here on, ending
    /// without `end_run` (killed, a power cut) makes the next run check for leftovers.
    pub fn begin_copy(&self) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE runs SET ended=NULL, clean=0 WHERE run=?1",
                [self.run],
            )
            .map_err(|e| self.sq(e))?;
        Ok(())
    }

    /// Adds the selection of this run (`opts`) to the one the checkpoint records
    /// ([`Selection`]). A checkpoint from before the selection was kept that already records
    /// files counts as one over everything.
    pub fn add_selection(&self, opts: &crate::plan::PlanOptions) -> Result<(), StateError> {
        let run = Selection {
            only: opts.only.clone(),
            users: opts.users.clone(),
            include_trash: opts.include_trash,
        };
        let was = match self.meta(SELECTION_KEY)? {
            Some(v) => serde_json::from_str(&v).ok(),
            None => self
                .conn
                .query_row("SELECT EXISTS(SELECT 1 FROM log)", [], |r| {
                    r.get::<_, bool>(0)
                })
                .map_err(|e| self.sq(e))?
                .then(Selection::default),
        };
        let now = match was {
            Some(was) if opts.narrowed() => was.widened_by(&run),
            _ => run,
        };
        let json = serde_json::json!({
            "only": now.only, "users": now.users, "include_trash": now.include_trash,
        });
        self.set_meta(SELECTION_KEY, &json.to_string())
    }

    /// [`Checkpoint::begin_copy`] for a run about to place files: also records when it began
    /// on DEST's clock (`dest_clock_ms`, `None` when unknown: then a crash of this run makes
    /// every file the checkpoint does not record unsure) and whether it restores Trash.
    pub fn begin_placing(
        &self,
        dest_clock_ms: Option<i64>,
        include_trash: bool,
    ) -> Result<(), StateError> {
        self.begin_copy()?;
        let began = dest_clock_ms.unwrap_or(i64::MIN);
        self.set_meta(COPY_BEGAN_KEY, &began.to_string())?;
        if include_trash {
            self.set_meta(TRASH_KEY, "1")?;
        }
        Ok(())
    }

    /// Since when (DEST's clock, ms) files the checkpoint does not record may be a crashed
    /// run's copies (see [`UNSURE_KEY`]; opening the checkpoint took in the run before);
    /// `None` when no run left any doubt.
    pub fn unsure_since(&self) -> Result<Option<i64>, StateError> {
        self.meta_ms(UNSURE_KEY)
    }

    /// A run that looked at every file (finished, over the whole selection, Trash included if
    /// any run restored it) settles the doubt.
    pub fn settle_unsure(&self, include_trash: bool) -> Result<(), StateError> {
        if include_trash || self.meta(TRASH_KEY)?.as_deref() != Some("1") {
            self.conn
                .execute("DELETE FROM meta WHERE key = ?1", [UNSURE_KEY])
                .map_err(|e| self.sq(e))?;
        }
        Ok(())
    }

    fn meta_ms(&self, key: &str) -> Result<Option<i64>, StateError> {
        Ok(self.meta(key)?.map(|v| ms_value(&v)))
    }

    /// Marks this run as finished (`clean`: it ended normally or by a handled signal, and
    /// left no temporary files).
    pub fn end_run(&self, clean: bool) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE runs SET ended=?1, clean=?2 WHERE run=?3",
                params![now_ms(), clean as i64, self.run],
            )
            .map_err(|e| self.sq(e))?;
        Ok(())
    }
}

/// A snapshot of a checkpoint for `status`, read without taking the lock.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Status {
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub state_dir: PathBuf,
    /// How the last run that ended ended (`finished`, `interrupted`, `stopped: ...`).
    pub last_end: Option<String>,
    /// Files selected for restore, as the last run counted them.
    pub selected_files: Option<u64>,
    /// Files restored or found already there (latest record copied or adopted), among the
    /// selected files of [`Status::selected_files`].
    pub files_done: u64,
    /// Files restored or found already there that this selection leaves out (the Trash,
    /// restored by an earlier run with `--include-trash`).
    pub files_done_left_out: u64,
    pub counts: std::collections::BTreeMap<String, u64>,
    pub bytes_done: u64,
    pub last_activity_ms: Option<i64>,
    pub runs: u64,
    pub running: bool,
    /// How the last run ended: cleanly (true), not (false: stopped by an error, or its
    /// destination lost), or not recorded (null: killed, a power cut, or still running).
    /// A run stopped at start-up, before copying, counts as the run before it ended.
    pub last_run_clean: Option<bool>,
    /// The last run stopped at start-up, before it began copying (refused: its own message
    /// said why), after the runs [`Status::last_run_clean`] and `last_end` speak of.
    pub last_run_stopped_at_start: bool,
    pub failed_examples: Vec<(String, String)>,
    /// What a look on DEST (the one given, else the one the checkpoint records) for a
    /// sample of the files the checkpoint records as restored there found
    /// ([`look_for_restored`]).
    pub dest_check: Option<RestoredCheck>,
    /// What the look at DEST found that the counts do not say (`status` fills it in).
    pub warnings: Vec<String>,
    /// Set when a look at DEST (or the source) did not come back in time: which disk does
    /// not answer, and what to do (`status` fills it in; it then exits with 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_answer: Option<String>,
}

/// Checkpoint key: the name rules of the runs so far (`posix` or `windows`).
pub const NAMES_KEY: &str = "names";
/// The source database's [`fingerprint`], which finds it again at another path.
const FINGERPRINT_KEY: &str = "source_fingerprint";
/// The object folder the last run read ([`Checkpoint::record_objects`]).
pub const SOURCE_FILES_KEY: &str = "source_files";
/// The date fields the restore took dates from (`--mtime-from`, as given by
/// `DatePolicy::describe`).
pub const DATES_KEY: &str = "dates";

/// A value the checkpoint in `dir` keeps, read without the lock and without writing (none
/// when there is no checkpoint, or it cannot be read).
pub fn recorded_meta(dir: &Path, key: &str) -> Option<String> {
    let path = dir.join("checkpoint.db");
    if !path.is_file() {
        return None;
    }
    let conn = open_read_only(&path).ok()?;
    if !has_table(&conn, "meta").ok()? {
        return None;
    }
    meta_value(&conn, key).ok().flatten()
}

/// Whether a crash's doubt is open in the checkpoint in `dir` (see [`UNSURE_KEY`]): kept
/// there, or the last run died (killed, a power cut) and no run has opened it since. Not
/// while a restore holds it (a running one has not ended either).
pub fn crash_doubt_open(dir: &Path) -> bool {
    let path = dir.join("checkpoint.db");
    let doubt = || -> Option<i64> {
        let conn = open_read_only(&path).ok()?;
        doubt_of(&conn).ok().flatten()
    };
    path.is_file() && !lock_held(dir) && doubt().is_some()
}

/// A time kept in the key-value table (ms); one that does not parse is as old as can be.
fn ms_value(v: &str) -> i64 {
    v.parse().unwrap_or(i64::MIN)
}

/// A value of the checkpoint's key-value table, on any connection to it.
fn meta_value(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// Checkpoint key: the files the runs so far selected ([`Selection`], as JSON).
pub const SELECTION_KEY: &str = "selection";

/// The files the runs so far selected: for the `verify` command `status` suggests, which
/// must check the files the runs restored, not report the ones they left out as missing.
/// Each run that places files adds its own ([`Checkpoint::add_selection`]): a run over
/// everything replaces it (the Trash an earlier run restored is then left out, as
/// [`LEFT_OUT_KEY`] says), a narrowed one widens it with its `--only` paths and `--user`s
/// (empty: all). Runs narrowed both ways make a selection that may hold more than their
/// files (one run's paths with another's users); `--limit` is not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Selection {
    pub only: Vec<String>,
    pub users: Vec<String>,
    pub include_trash: bool,
}

impl Selection {
    /// What this selection and a narrowed run's `run` select together.
    fn widened_by(self, run: &Selection) -> Selection {
        let union = |mut was: Vec<String>, more: &[String]| {
            if was.is_empty() || more.is_empty() {
                return Vec::new();
            }
            for m in more {
                if !was.contains(m) {
                    was.push(m.clone());
                }
            }
            was
        };
        Selection {
            only: union(self.only, &run.only),
            users: union(self.users, &run.users),
            include_trash: self.include_trash || run.include_trash,
        }
    }
}

/// The [`Selection`] the checkpoint in `dir` records, read without the lock and without
/// writing (none when there is none, or it cannot be read).
pub fn recorded_selection(dir: &Path) -> Option<Selection> {
    serde_json::from_str(&recorded_meta(dir, SELECTION_KEY)?).ok()
}

/// Checkpoint keys `status` reads: how the last run ended, and the files it had selected.
pub const LAST_END_KEY: &str = "last_end";
pub const SELECTED_KEY: &str = "selected_files";
/// The restored path (with its `/`) of the part of DEST that the selection counted in
/// [`SELECTED_KEY`] left out: the device's Trash, when the last run over everything ran
/// without `--include-trash` after one with it. Empty when it left out nothing.
pub const LEFT_OUT_KEY: &str = "selection_leaves_out";

/// The latest record of each file, from one pass over the log in its own order (no sort):
/// grouping the log by id made `status` take 8.9-10.3 s at 1.35M records; this takes 1.0-1.2
/// s, for 109 MB held while it runs (32 bytes per file). Files are told apart by a 64-bit
/// hash of their id, as in [`Checkpoint::keys`].
struct LatestRecords {
    files: HashMap<u64, Latest, KeyHashing>,
    /// The outcome names met, indexed by [`Latest::outcome`].
    outcomes: Vec<String>,
}

struct Latest {
    seq: i64,
    size: i64,
    /// Runs that recorded the file (a record stands for `times` of them).
    records: u32,
    outcome: u16,
    /// Under the part of DEST the counted selection leaves out ([`LEFT_OUT_KEY`]).
    left_out: bool,
}

fn latest_records(conn: &Connection, left_out: &str) -> rusqlite::Result<LatestRecords> {
    let mut out = LatestRecords {
        files: HashMap::default(),
        outcomes: Vec::new(),
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT seq, id, size, outcome, ?1 <> '' AND substr(path, 1, length(?1)) = ?1, {} FROM log ORDER BY seq",
        times_column(conn)?
    ))?;
    let mut rows = stmt.query([left_out])?;
    while let Some(r) = rows.next()? {
        let outcome = log_text(r.get_ref(3)?);
        let idx = match out.outcomes.iter().position(|o| o == outcome) {
            Some(i) => i,
            None => {
                out.outcomes.push(outcome.to_string());
                out.outcomes.len() - 1
            }
        };
        let l = out
            .files
            .entry(xxhash_rust::xxh3::xxh3_64(
                log_text(r.get_ref(1)?).as_bytes(),
            ))
            .or_insert(Latest {
                seq: 0,
                size: 0,
                records: 0,
                outcome: 0,
                left_out: false,
            });
        l.seq = r.get_ref(0)?.as_i64()?;
        l.size = r.get_ref(2)?.as_i64_or_null()?.unwrap_or(0);
        l.records = (l.records).saturating_add(r.get_ref(5)?.as_i64()?.clamp(1, 1 << 20) as u32);
        l.outcome = idx as u16;
        l.left_out = r.get_ref(4)?.as_i64()? != 0;
    }
    Ok(out)
}

/// Reads a checkpoint read-only; safe while a restore is writing it (WAL readers do not
/// block the writer).
pub fn read_status(dir: &Path) -> Result<Status, StateError> {
    let path = dir.join("checkpoint.db");
    if !path.is_file() {
        return Err(StateError::NoCheckpoint(dir.to_path_buf()));
    }
    let sq = |source| StateError::Sqlite {
        path: path.clone(),
        source,
    };
    let conn = open_read_only(&path).map_err(sq)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sq)?;
    let mut st = Status {
        state_dir: dir.to_path_buf(),
        ..Default::default()
    };
    st.running = lock_held(dir);
    // A restore that is starting has created the file but not its tables yet.
    for table in ["log", "runs", "meta"] {
        if !has_table(&conn, table).map_err(sq)? {
            return Ok(st);
        }
    }
    let left_out = meta_value(&conn, LEFT_OUT_KEY)
        .map_err(sq)?
        .unwrap_or_default();
    let latest = latest_records(&conn, &left_out).map_err(sq)?;
    let mut failed: Vec<(i64, u32)> = Vec::new();
    for l in latest.files.values() {
        let outcome = &latest.outcomes[l.outcome as usize];
        if Outcome::parse(outcome).is_some_and(Outcome::is_done) {
            st.bytes_done = st.bytes_done.saturating_add(l.size.max(0) as u64);
            // Not among the selected files of "N of M": they would make 1996 of 1997
            // with 4 of the 1997 missing.
            match l.left_out {
                true => st.files_done_left_out += 1,
                false => st.files_done += 1,
            }
        }
        if outcome == "failed" || outcome == "missing" {
            failed.push((l.seq, l.records));
        }
        *st.counts.entry(outcome.clone()).or_default() += 1;
    }
    st.last_activity_ms = conn
        .query_row(
            "SELECT updated FROM log ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(sq)?;
    st.runs = conn
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get::<_, i64>(0))
        .map_err(sq)? as u64;
    st.last_end = meta_value(&conn, LAST_END_KEY)
        .map_err(sq)?
        .filter(|how| !how.is_empty());
    st.selected_files = meta_value(&conn, SELECTED_KEY)
        .map_err(sq)?
        .and_then(|v| v.parse().ok());
    // A run stopped before it began copying keeps the row it was given at start-up, ended
    // when it started and as clean as the run before it ([`StateLock::open`]).
    let last = conn
        .query_row(
            "SELECT clean, ended, started FROM runs ORDER BY run DESC LIMIT 1",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .ok();
    st.last_run_clean = last.and_then(|(c, ended, _)| ended.map(|_| c != 0));
    st.last_run_stopped_at_start =
        st.runs > 1 && last.is_some_and(|(_, ended, started)| ended == Some(started));
    {
        // The first 20 problem files by path, whatever their number.
        let mut first: std::collections::BinaryHeap<(String, String)> = Default::default();
        let mut stmt = conn
            .prepare("SELECT path, COALESCE(error, '') FROM log WHERE seq = ?1")
            .map_err(sq)?;
        for (seq, records) in failed {
            let (path, error): (String, String) = stmt
                .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(sq)?;
            let error = match records {
                1 => error,
                // Once per run that met it: "recorded 5 times" read like five failures.
                n => format!("{error} (in each of {n} runs)"),
            };
            first.push((path, error));
            if first.len() > 20 {
                first.pop();
            }
        }
        st.failed_examples = first.into_sorted_vec();
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, o: Outcome) -> Record {
        Record {
            id: id.into(),
            rel_path: format!("p/{id}"),
            size: 3,
            mtime_ms: Some(5),
            outcome: o,
            error: None,
        }
    }

    #[test]
    fn the_log_is_flushed_at_every_commit_unless_durability_is_none() {
        let t = tempfile::tempdir().unwrap();
        let sync = |c: &Checkpoint| -> i64 {
            c.conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        let mut c = Checkpoint::open(t.path(), false, "test").unwrap();
        assert_eq!(sync(&c), 2, "FULL: a commit is on disk when it returns");
        c.trust_the_os().unwrap();
        assert_eq!(sync(&c), 1, "NORMAL: WAL commits without fsync");
        c.record(&[rec("a", Outcome::Copied)]).unwrap();
        drop(c);
        // Not folded in at the end (that flushes): the record is in the log left beside it.
        let wal = t.path().join("checkpoint.db-wal");
        assert!(std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0));
        let c = Checkpoint::open(t.path(), false, "test").unwrap();
        assert_eq!(sync(&c), 2, "each run chooses again");
        assert_eq!(c.keys().unwrap().0.len(), 1);
        drop(c);
        assert!(!wal.exists(), "a flushed run folds the log in at its end");
    }

    #[test]
    fn records_done_keys_and_resume_semantics() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::open(t.path(), false, "test").unwrap();
        c.record(&[
            rec("a", Outcome::Copied),
            rec("b", Outcome::Failed),
            rec("c", Outcome::Filtered),
        ])
        .unwrap();
        let keys = c.done_keys().unwrap();
        assert!(keys.contains(&done_key("a", "p/a", 3, Some(5))));
        assert!(
            !keys.contains(&done_key("a", "other", 3, Some(5))),
            "a changed target is not done"
        );
        assert_eq!(keys.len(), 1);
        c.end_run(false).unwrap();
        drop(c);
        let c = Checkpoint::open(t.path(), false, "test").unwrap();
        assert!(c.previous_run_unclean().unwrap());
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.counts.get("copied"), Some(&1));
        assert_eq!(s.counts.get("failed"), Some(&1));
        assert!(s.running, "lock held by c");
        drop(c);
        let c = Checkpoint::open(t.path(), true, "test").unwrap();
        assert!(c.done_keys().unwrap().is_empty(), "--fresh forgets");
    }

    /// A run stopped at start-up (its row added, no copy begun) after a killed one: `status`
    /// reads the killed run's end (not recorded: not clean) and that a run stopped at
    /// start-up since; a run killed while copying is not taken for one stopped at start-up.
    #[test]
    fn status_tells_a_run_stopped_at_start_up_after_a_killed_one() {
        let t = tempfile::tempdir().unwrap();
        let c = Checkpoint::open(t.path(), false, "test").unwrap();
        c.begin_copy().unwrap();
        drop(c); // killed while copying: no end recorded
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.last_run_clean, None);
        assert!(!s.last_run_stopped_at_start);
        std::thread::sleep(std::time::Duration::from_millis(5));
        drop(Checkpoint::open(t.path(), false, "test").unwrap()); // stopped at start-up
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.last_run_clean, Some(false), "as clean as the killed run");
        assert!(s.last_run_stopped_at_start);
    }

    /// The readers that write nothing (`status`, a dry run) find a checkpoint in a folder
    /// whose name an URI would misread (`%`, `?`, `#`, bytes that are not UTF-8), and leave
    /// no `-wal` or `-shm` beside it; with a run's `-wal` there they read through it.
    #[test]
    fn read_only_readers_leave_no_side_files_whatever_the_folder_is_called() {
        use std::os::unix::ffi::OsStrExt;
        let t = tempfile::tempdir().unwrap();
        let dir = t
            .path()
            .join(std::ffi::OsStr::from_bytes(b"a %20?x=1#b \xff state"));
        let mut c = Checkpoint::open(&dir, false, "test").unwrap();
        c.record(&[rec("a", Outcome::Copied)]).unwrap();
        c.end_run(true).unwrap();
        drop(c);
        let files = || {
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = files();
        assert_eq!(read_status(&dir).unwrap().counts.get("copied"), Some(&1));
        let e = Earlier::open(&dir).unwrap().unwrap();
        assert_eq!(e.keys().unwrap().0.len(), 1);
        drop(e);
        assert_eq!(files(), before);
        // A run writing now: its records are read through its `-wal`.
        let mut c = Checkpoint::open(&dir, false, "test").unwrap();
        c.record(&[rec("b", Outcome::Copied)]).unwrap();
        assert_eq!(read_status(&dir).unwrap().counts.get("copied"), Some(&2));
        assert_eq!(
            Earlier::open(&dir)
                .unwrap()
                .unwrap()
                .keys()
                .unwrap()
                .0
                .len(),
            2
        );
    }

    /// Round 12 review: a state folder given as `//tmp/...` (POSIX allows the leading
    /// double slash) made `status` and a dry run fail with "invalid uri authority: tmp": the
    /// read-only open's URI took `tmp` for a host.
    #[test]
    fn read_only_readers_take_any_spelling_of_the_folder() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        let mut c = Checkpoint::open(&dir, false, "test").unwrap();
        c.record(&[rec("a", Outcome::Copied)]).unwrap();
        c.end_run(true).unwrap();
        drop(c);
        let mut doubled = std::ffi::OsString::from("/");
        doubled.push(dir.as_os_str());
        let doubled = PathBuf::from(doubled);
        assert!(doubled.as_os_str().as_encoded_bytes().starts_with(b"//"));
        assert_eq!(
            read_status(&doubled).unwrap().counts.get("copied"),
            Some(&1)
        );
        assert!(Earlier::open(&doubled).unwrap().is_some());
    }

    #[test]
    fn a_crash_leaves_files_unsure_until_a_run_looks_at_every_one() {
        let t = tempfile::tempdir().unwrap();
        let open = |fresh| Checkpoint::open(t.path(), fresh, "test").unwrap();
        // A run that placed files and died (no end_run).
        let c = open(false);
        assert_eq!(c.unsure_since().unwrap(), None, "nothing happened yet");
        c.begin_placing(Some(1_000), false).unwrap();
        drop(c);
        let c = open(false);
        assert_eq!(
            c.unsure_since().unwrap(),
            Some(1_000),
            "since the crashed run began"
        );
        // This one places files too, and is stopped cleanly (or ran over a selection): it
        // did not look at every file, so the doubt stays, from the first crash.
        c.begin_placing(Some(2_000), false).unwrap();
        c.end_run(true).unwrap();
        drop(c);
        let c = open(false);
        assert_eq!(c.unsure_since().unwrap(), Some(1_000));
        // It crashes as well: still the first crash's time, the earlier one.
        c.begin_placing(Some(3_000), false).unwrap();
        drop(c);
        let c = open(false);
        assert_eq!(c.unsure_since().unwrap(), Some(1_000));
        // A run that looked at every file settles it.
        c.begin_placing(Some(4_000), false).unwrap();
        c.settle_unsure(false).unwrap();
        c.end_run(true).unwrap();
        drop(c);
        let c = open(false);
        assert_eq!(c.unsure_since().unwrap(), None);

        // A crashed run that restored Trash: only a run with Trash settles the doubt.
        c.begin_placing(Some(5_000), true).unwrap();
        drop(c);
        let c = open(false);
        assert_eq!(c.unsure_since().unwrap(), Some(5_000));
        c.settle_unsure(false).unwrap();
        assert_eq!(
            c.unsure_since().unwrap(),
            Some(5_000),
            "Trash not looked at"
        );
        c.begin_placing(None, true).unwrap();
        drop(c);
        // A crash of a run that did not know DEST's clock: every file is unsure.
        let c = open(false);
        assert_eq!(c.unsure_since().unwrap(), Some(i64::MIN));
        c.settle_unsure(true).unwrap();
        assert_eq!(c.unsure_since().unwrap(), None);

        // --fresh forgets the records, not the doubt.
        c.begin_placing(Some(6_000), false).unwrap();
        drop(c);
        let c = open(true);
        assert!(c.done_keys().unwrap().is_empty());
        assert_eq!(c.unsure_since().unwrap(), Some(6_000));
        c.settle_unsure(false).unwrap();
        assert_eq!(
            c.unsure_since().unwrap(),
            Some(6_000),
            "an earlier run restored Trash: that is carried too"
        );
        c.settle_unsure(true).unwrap();
        c.end_run(true).unwrap();
        drop(c);
        let c = open(true);
        assert_eq!(c.unsure_since().unwrap(), None, "no doubt, nothing carried");
        drop(c);
        // A checkpoint too damaged to read may be a power cut's: everything is unsure.
        std::fs::write(t.path().join("checkpoint.db"), b"not a database at all").unwrap();
        let _ = std::fs::remove_file(t.path().join("checkpoint.db-wal"));
        let c = open(true);
        assert_eq!(c.unsure_since().unwrap(), Some(i64::MIN));
        drop(c);

        // A checkpoint from before the start time was kept: its crash makes every file unsure.
        let old = tempfile::tempdir().unwrap();
        let c = Checkpoint::open(old.path(), false, "test").unwrap();
        c.begin_copy().unwrap();
        drop(c);
        let c = Checkpoint::open(old.path(), false, "test").unwrap();
        assert_eq!(c.unsure_since().unwrap(), Some(i64::MIN));
    }

    #[test]
    fn the_latest_record_of_a_file_wins() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::open(t.path(), false, "test").unwrap();
        let mut failed = rec("a", Outcome::Failed);
        failed.error = Some("EIO".into());
        c.record(&[failed.clone(), rec("b", Outcome::Copied)])
            .unwrap();
        c.record(&[failed]).unwrap();
        let (done, redo) = c.keys().unwrap();
        assert_eq!(done.len(), 1, "only b is done");
        assert!(redo.is_empty());
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.counts.get("failed"), Some(&1), "one file, two records");
        assert!(s.failed_examples[0].1.contains("in each of 2 runs"));
        // a is copied at last; b is found differing by regen.
        c.record(&[rec("a", Outcome::Copied)]).unwrap();
        c.record_redo(&[(rec("b", Outcome::Adopted), "differs".into())])
            .unwrap();
        let (done, redo) = c.keys().unwrap();
        assert!(done.contains(&done_key("a", "p/a", 3, Some(5))));
        assert!(
            !done.contains(&done_key("b", "p/b", 3, Some(5))),
            "redo undoes done"
        );
        assert!(redo.contains(&redo_key("b", "p/b")));
        assert_eq!((done.len(), redo.len()), (1, 1));
        // b is done again; a fails after all (say, a later --overwrite run).
        c.record(&[rec("b", Outcome::Copied)]).unwrap();
        let mut failed_a = rec("a", Outcome::Failed);
        failed_a.error = Some("EIO".into());
        c.record(&[failed_a]).unwrap();
        let (done, redo) = c.keys().unwrap();
        assert!(
            done.contains(&done_key("b", "p/b", 3, Some(5))),
            "done again"
        );
        assert!(
            !done.contains(&done_key("a", "p/a", 3, Some(5))),
            "failed undoes done"
        );
        assert_eq!((done.len(), redo.len()), (1, 0), "done undoes redo");
        c.record(&[rec("a", Outcome::Copied)]).unwrap();
        c.record_redo(&[(rec("b", Outcome::Adopted), "differs".into())])
            .unwrap();
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.counts.get("copied"), Some(&1));
        assert_eq!(s.counts.get("redo"), Some(&1));
        assert_eq!(s.counts.get("failed"), None);
        assert!(s.last_activity_ms.is_some());
    }

    #[test]
    fn status_lists_the_first_twenty_problem_files_by_path() {
        let t = tempfile::tempdir().unwrap();
        let mut c = Checkpoint::open(t.path(), false, "test").unwrap();
        // 25 failures, recorded out of path order, one of them twice; one failure that a
        // later copy mended.
        let ids: Vec<String> = (0..25).rev().map(|i| format!("f{i:02}")).collect();
        let failures: Vec<Record> = ids
            .iter()
            .map(|id| {
                let mut r = rec(id, Outcome::Missing);
                r.error = Some("gone".into());
                r
            })
            .collect();
        c.record(&failures).unwrap();
        c.record(&failures[24..]).unwrap();
        c.record(&[rec("f03", Outcome::Copied)]).unwrap();
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.counts.get("missing"), Some(&24));
        assert_eq!(s.counts.get("copied"), Some(&1));
        assert_eq!(s.bytes_done, 3);
        let paths: Vec<&str> = s.failed_examples.iter().map(|(p, _)| p.as_str()).collect();
        let want: Vec<String> = (0..25)
            .filter(|i| *i != 3)
            .take(20)
            .map(|i| format!("p/f{i:02}"))
            .collect();
        assert_eq!(paths, want);
        assert_eq!(s.failed_examples[0].1, "gone (in each of 2 runs)");
        assert_eq!(s.failed_examples[1].1, "gone");
    }

    /// A file every run finds missing keeps one record, which counts the runs; a checkpoint
    /// from before the count (a record per run, no `times`) is read and then folded the
    /// same way. The log grew by every missing file with every run (round 16).
    #[test]
    fn a_file_found_missing_again_keeps_one_record_regression_round_16() {
        let t = tempfile::tempdir().unwrap();
        let records = |id: &str| -> i64 {
            let conn = Connection::open(t.path().join("checkpoint.db")).unwrap();
            conn.query_row("SELECT COUNT(*) FROM log WHERE id = ?1", [id], |r| r.get(0))
                .unwrap()
        };
        let missing = |id: &str| {
            let mut r = rec(id, Outcome::Missing);
            r.error = Some("object not found".into());
            r
        };
        // An older checkpoint: the log without `times`, "a" recorded missing by two runs.
        {
            let conn = Connection::open(t.path().join("checkpoint.db")).unwrap();
            conn.execute_batch(&SCHEMA.replace(", times INTEGER NOT NULL DEFAULT 1", ""))
                .unwrap();
            for run in [1, 2] {
                conn.execute(
                    "INSERT INTO log(id, path, size, mtime, outcome, error, run, updated)
                     VALUES ('a', 'p/a', 3, 5, 'missing', 'object not found', ?1, 1)",
                    [run],
                )
                .unwrap();
            }
        }
        let s = read_status(t.path()).unwrap();
        assert_eq!(
            s.failed_examples[0].1,
            "object not found (in each of 2 runs)"
        );
        for run in 3..=5 {
            let mut c = Checkpoint::open(t.path(), false, "test").unwrap();
            c.record(&[missing("a"), missing("b"), rec("c", Outcome::Copied)])
                .unwrap();
            assert_eq!(records("a"), 1, "run {run}");
            assert_eq!(records("b"), 1, "run {run}");
        }
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.counts.get("missing"), Some(&2));
        assert_eq!(
            s.failed_examples,
            [
                (
                    "p/a".to_string(),
                    "object not found (in each of 5 runs)".to_string()
                ),
                (
                    "p/b".to_string(),
                    "object not found (in each of 3 runs)".to_string()
                ),
            ]
        );
        // Its object back, the file is copied: the latest record wins, as before.
        let mut c = Checkpoint::open(t.path(), false, "test").unwrap();
        c.record(&[rec("a", Outcome::Copied)]).unwrap();
        let s = read_status(t.path()).unwrap();
        assert_eq!(s.counts.get("missing"), Some(&1));
        assert_eq!(s.files_done, 2);
    }

    #[test]
    fn a_checkpoint_of_the_one_row_per_file_format_is_carried_over() {
        let t = tempfile::tempdir().unwrap();
        {
            let db = Connection::open(t.path().join("checkpoint.db")).unwrap();
            db.execute_batch(
                "CREATE TABLE files(id TEXT PRIMARY KEY, path TEXT NOT NULL, size INTEGER NOT NULL,
                   mtime INTEGER, outcome TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
                   error TEXT, run INTEGER NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
                 INSERT INTO files VALUES ('a', 'p/a', 3, 5, 'copied', 1, NULL, 1, 10);
                 INSERT INTO files VALUES ('b', 'p/b', 3, 5, 'failed', 2, 'EIO', 1, 11);",
            )
            .unwrap();
        }
        let c = Checkpoint::open(t.path(), false, "test").unwrap();
        let (done, _) = c.keys().unwrap();
        assert_eq!(done.len(), 1);
        assert!(done.contains(&done_key("a", "p/a", 3, Some(5))));
        assert_eq!(
            read_status(t.path()).unwrap().counts.get("failed"),
            Some(&1)
        );
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let t = tempfile::tempdir().unwrap();
        let _a = Checkpoint::open(t.path(), false, "test").unwrap();
        let e = Checkpoint::open(t.path(), false, "test").err().unwrap();
        assert!(matches!(e, StateError::Locked(_)));
    }

    /// A lock dropped before it opened a checkpoint (a refused first run) removes the state
    /// folder and the folders above it that taking it made, but not one that meanwhile holds
    /// something else (another restore's state folder, a file in the state folder), nor a
    /// state folder that was there before, nor one whose checkpoint was opened.
    /// Review of round 19: the folders a lock "made" were those missing before it was taken,
    /// by their spelling: a --state-dir that reaches a folder that was there through a
    /// missing one and `..` (`new/../existing`) counted `existing` as made, and a refused
    /// first run removed the user's (empty) folder, leaving `new` behind. Only folders the
    /// lock really created are removed, and a state folder that was there stays as it is.
    #[test]
    fn a_dropped_lock_keeps_a_folder_that_was_there_reached_through_dot_dot_regression_round_19() {
        let t = tempfile::tempdir().unwrap();
        let existing = t.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        drop(StateLock::take(&t.path().join("new/../existing")).unwrap());
        assert!(existing.is_dir(), "the folder that was there stays");
        assert!(
            existing.join("lock").is_file(),
            "a folder that was there stays as it is"
        );
        // Two takers of one new folder: only the one that made it counts it as made.
        let dir = t.path().join("racing");
        let first = StateLock::take(&dir).unwrap();
        assert_eq!(first.made, std::slice::from_ref(&dir));
        drop(first);
        assert!(!dir.exists());
    }

    /// Round 20's review: two runs taking the lock of a state folder that neither finds
    /// (each makes it; the one that drops its lock first removes `lock` and the folder) could
    /// see the folder go between making it and opening `lock`, and were refused with an I/O
    /// error about the state folder. Only "taken" or "locked" may come out.
    #[test]
    fn taking_a_lock_while_its_folder_is_removed_is_never_an_io_error_regression_round_20() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/state");
        let stop = std::sync::atomic::AtomicBool::new(false);
        let errors = std::sync::Mutex::new(Vec::new());
        let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while std::time::Instant::now() < until {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match StateLock::take(&dir) {
                            Ok(lock) => drop(lock),
                            Err(StateError::Locked(_)) => {}
                            Err(e) => {
                                errors.lock().unwrap().push(e.to_string());
                                stop.store(true, Ordering::Relaxed);
                            }
                        }
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap();
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// Review of round 19: a lock dropped before it opened a checkpoint removes `lock` while
    /// it holds it. A run that had opened `lock` just before (not yet locked) then locked the
    /// removed file once the holder let go, and went on as the lock's holder; a third run made
    /// a new `lock`, locked it too: two runs on one checkpoint. A run now checks that `lock`
    /// still names the file it locked and opens `lock` again if not. The race is played here
    /// step by step: the file is opened, its holder drops the lock, then the file is locked.
    #[test]
    fn a_lock_file_removed_by_its_holder_is_not_taken_regression_round_19() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("state");
        let open = || File::options().write(true).open(dir.join("lock")).unwrap();
        // The holder made the folder; it ends, removing `lock` and the folder.
        let holder = StateLock::take(&dir).unwrap();
        let opened = open();
        drop(holder);
        assert!(!dir.exists());
        let second = StateLock::lock(&dir, opened, Vec::new()).unwrap();
        assert!(
            names(&dir.join("lock"), &second._lock),
            "the lock held is the file named `lock`"
        );
        assert!(
            matches!(StateLock::take(&dir), Err(StateError::Locked(_))),
            "a third run is refused"
        );
        // It made the folder again: its own to remove.
        assert_eq!(second.made, std::slice::from_ref(&dir));
        drop(second);
        assert!(!dir.exists());
        // The holder ends and a third run takes a new `lock` before the second locks its file:
        // the second is refused.
        let holder = StateLock::take(&dir).unwrap();
        let opened = open();
        drop(holder);
        let third = StateLock::take(&dir).unwrap();
        assert!(matches!(
            StateLock::lock(&dir, opened, Vec::new()),
            Err(StateError::Locked(_))
        ));
        assert!(
            dir.join("lock").is_file(),
            "the refused run removed nothing"
        );
        drop(third);
        assert!(!dir.exists());
    }

    #[test]
    fn a_dropped_lock_removes_only_the_empty_folders_it_made() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("state-home/mycloud-recover");
        let dir = base.join("restored-1");
        drop(StateLock::take(&dir).unwrap());
        assert!(!t.path().join("state-home").exists());
        let lock = StateLock::take(&dir).unwrap();
        std::fs::create_dir(base.join("other-2")).unwrap();
        drop(lock);
        assert!(!dir.exists() && base.join("other-2").is_dir());
        let lock = StateLock::take(&dir).unwrap();
        assert!(matches!(StateLock::take(&dir), Err(StateError::Locked(_))));
        assert!(
            dir.join("lock").is_file(),
            "a refused second taker removed nothing"
        );
        std::fs::write(dir.join("report.json"), b"{}").unwrap();
        drop(lock);
        assert!(dir.join("lock").is_file() && dir.join("report.json").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
        drop(StateLock::take(&dir).unwrap().open(false, "test").unwrap());
        assert!(dir.join("checkpoint.db").is_file() && dir.join("lock").is_file());
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        drop(StateLock::take(&dir).unwrap());
        assert!(
            dir.join("lock").is_file(),
            "a folder that was there stays as it is"
        );
    }

    #[test]
    fn default_dir_differs_per_destination() {
        let a = default_state_dir(Path::new("/x/index.db"), Path::new("/mnt/a"));
        let b = default_state_dir(Path::new("/x/index.db"), Path::new("/mnt/b"));
        assert_ne!(a, b);
        assert!(a.to_string_lossy().contains("mycloud-recover"));
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("out")).unwrap();
        let db = Path::new("/x/index.db");
        let plain = default_state_dir(db, &t.path().join("out"));
        for same in ["out/", "out/.", "missing/../out", "./out//"] {
            assert_eq!(default_state_dir(db, &t.path().join(same)), plain, "{same}");
        }
        std::os::unix::fs::symlink(t.path().join("out"), t.path().join("link")).unwrap();
        assert_eq!(default_state_dir(db, &t.path().join("link")), plain);
    }

    /// The checkpoint is found by DEST alone, and follows the same database to another path
    /// (the disk mounted elsewhere); another database is refused. A folder keyed by the
    /// database's path too (before round 10) is still used.
    #[test]
    fn the_checkpoint_follows_its_database_to_another_path_and_refuses_another() {
        let home = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        std::fs::create_dir(&out).unwrap();
        for d in ["a", "b", "c"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        let db_a = t.path().join("a/index.db");
        let db_b = t.path().join("b/index.db");
        let other = t.path().join("c/index.db");
        std::fs::write(&db_a, vec![7u8; 3 << 20]).unwrap();
        std::fs::copy(&db_a, &db_b).unwrap();
        let mut differs = vec![7u8; 3 << 20];
        differs[5 << 10] = 8;
        std::fs::write(&other, &differs).unwrap();
        let dir = state_dir_in(home.path(), &db_a, &out);
        assert_eq!(
            state_dir_in(home.path(), &db_b, &out),
            dir,
            "keyed by DEST alone"
        );
        let c = Checkpoint::open(&dir, false, "test").unwrap();
        c.bind(&db_a, &out).unwrap();
        c.bind(&db_b, &out).unwrap();
        assert_eq!(
            c.meta("source_db").unwrap(),
            Some(db_b.display().to_string())
        );
        let e = c.bind(&other, &out).unwrap_err();
        assert!(e.to_string().contains("another database"), "{e}");
        drop(c);

        // Begun before round 10: keyed by the database's path and DEST.
        let old_home = tempfile::tempdir().unwrap();
        let mut key = db_a
            .canonicalize()
            .unwrap()
            .as_os_str()
            .as_encoded_bytes()
            .to_vec();
        key.push(0);
        key.extend_from_slice(
            crate::fsinfo::resolved_path(&out)
                .as_os_str()
                .as_encoded_bytes(),
        );
        let legacy = old_home
            .path()
            .join("mycloud-recover")
            .join(format!("out-{:016x}", xxhash_rust::xxh3::xxh3_64(&key)));
        std::fs::create_dir_all(&legacy).unwrap();
        assert_eq!(state_dir_in(old_home.path(), &db_a, &out), legacy);
    }

    /// A restore begun before DEST was resolved (round 8) continues in its checkpoint: the
    /// folder keyed by DEST as given is still found, and its binding still matches.
    #[test]
    fn a_checkpoint_keyed_and_bound_by_dest_as_given_is_still_used() {
        let home = tempfile::tempdir().unwrap();
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("out")).unwrap();
        std::os::unix::fs::symlink(t.path().join("out"), t.path().join("link")).unwrap();
        let db = Path::new("/x/index.db");
        let given = t.path().join("link/");
        let resolved = state_dir_in(home.path(), db, &given);
        // The old key: DEST as given, made absolute, not resolved.
        let mut key = b"/x/index.db".to_vec();
        key.push(0);
        key.extend_from_slice(given.as_os_str().as_encoded_bytes());
        let legacy = home
            .path()
            .join("mycloud-recover")
            .join(format!("link-{:016x}", xxhash_rust::xxh3::xxh3_64(&key)));
        assert_ne!(resolved, legacy);
        std::fs::create_dir_all(&legacy).unwrap();
        assert_eq!(state_dir_in(home.path(), db, &given), legacy);

        let c = Checkpoint::open(&legacy, false, "old").unwrap();
        c.set_meta("dest", &given.display().to_string()).unwrap();
        let now = crate::fsinfo::resolved_path(&given);
        c.bind(db, &now).unwrap();
        assert_eq!(c.meta("dest").unwrap(), Some(now.display().to_string()));
        assert!(c.bind(db, &t.path().join("elsewhere")).is_err());
    }
}
