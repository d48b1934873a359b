//! Read-only access to the device's `index.db`.
//!
//! The database is evidence: it may be the only record of the user's names and folders. We
//! open it with SQLite's `mode=ro&immutable=1` URI, which makes SQLite treat the file as a
//! read-only blob: no locks, no journal, no `-wal`/`-shm` files beside it, nothing written.
//! Every query names its columns (never `SELECT *`), and the columns are checked once at open
//! so a different firmware's schema fails early with the column's name.
//!
//! Immutable also means SQLite ignores an `index.db-wal` beside the file: the device's last
//! committed changes (new uploads, renames) may sit there when it died before folding them
//! into the database. So when a non-empty `-wal` is present, both files are copied into a
//! private folder, SQLite folds the log into the copy there, and the copy is what is read
//! (`MergedCopy`; removed when the last connection to it closes). The source is only read.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::schema::{DATE_COLUMNS, FOLDER_MIME, REQUIRED_COLUMNS};
use crate::state::KeyHashing;
use std::collections::HashMap;

/// The key a folder's rank is looked up by: a collision (one in billions of devices) would
/// only put one folder's files beside another's.
fn id_key(id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id)
}

/// Why the index could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path} is not a SQLite database (is --db pointing at the right file?)")]
    NotSqlite { path: PathBuf },
    #[error("{path} is damaged (SQLite: {detail}).{hint}")]
    Malformed {
        path: PathBuf,
        detail: String,
        hint: String,
    },
    #[error(
        "{path} has no `Files` table; this does not look like a My Cloud Home index.db.{hint}"
    )]
    NoFilesTable { path: PathBuf, hint: String },
    #[error("{path} is empty (0 bytes): the database was lost or never written.{hint}")]
    Empty { path: PathBuf, hint: String },
    #[error("{path}: table `Files` lacks column `{column}`; this firmware's schema is not supported yet (please report it)")]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path} has a write-ahead log (its -wal file) holding the device's last changes; reading them needs a private copy of both files, which failed ({detail}). Set TMPDIR to a folder with room for a copy of the database")]
    WalCopy { path: PathBuf, detail: String },
    #[error("permission denied: this user cannot read {path}. {hint}", hint = super::SUDO_HINT)]
    PermissionDenied { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// Dates of one row, in milliseconds since the Unix epoch, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RowDates {
    pub image: Option<i64>,
    pub video: Option<i64>,
    pub c: Option<i64>,
    pub birth: Option<i64>,
    pub m: Option<i64>,
    pub u: Option<i64>,
}

/// A folder row: all the planner keeps in memory per folder.
#[derive(Debug, Clone)]
pub struct FolderRow {
    pub id: String,
    pub parent: Option<String>,
    pub name: String,
    /// The stored name with its invalid bytes escaped, when it is not valid UTF-8
    /// (see `name_ref`).
    pub name_escaped: Option<String>,
    pub dates: RowDates,
}

/// A row's identity and name, streamed grouped by parent for name assignment.
#[derive(Debug, Clone)]
pub struct ChildRow {
    /// SQLite's rowid (the `autoID` column): unique even where a damaged index let two
    /// rows share an `id`.
    pub rowid: i64,
    pub id: String,
    pub parent: Option<String>,
    pub name: String,
    pub is_folder: bool,
}

/// A row's parent and name, borrowed from SQLite's row (valid during the callback).
#[derive(Debug, Clone)]
pub struct NameRow<'r> {
    pub parent: Option<&'r str>,
    pub name: Cow<'r, str>,
}

/// A file row, streamed, borrowed from SQLite's row (valid during the callback): a row costs
/// no allocation until the planner takes what it keeps. With owned strings the planner's
/// stream of 1.35M rows spent about a quarter of its time in malloc and free.
#[derive(Debug, Clone)]
pub struct FileRow<'r> {
    /// SQLite's rowid, as in [`ChildRow::rowid`].
    pub rowid: i64,
    pub id: &'r str,
    pub parent: Option<&'r str>,
    pub content_id: Option<&'r str>,
    pub name: Cow<'r, str>,
    /// The stored name with its invalid bytes escaped, when it is not valid UTF-8
    /// (see `name_ref`).
    pub name_escaped: Option<String>,
    /// Bytes, as stored or read leniently (a real rounded, text holding a number parsed);
    /// 0 when not usable.
    pub size: u64,
    /// The stored size, shown as stored, when it is not a usable byte count (text that is
    /// not a number, a negative or impossibly large value, NULL, a BLOB): the size is then
    /// unknown, counted as 0, and the row is reported.
    pub size_unusable: Option<String>,
    pub dates: RowDates,
}

/// Totals straight from the database (never from a walk of the object store).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexCounts {
    pub files: u64,
    pub folders: u64,
    pub bytes: u64,
    pub files_without_content_id: u64,
}

/// The opened, read-only index.
pub struct Index {
    conn: Connection,
    /// The database as the user named it (for messages), whatever file is read.
    path: PathBuf,
    /// The `dbBackup` copy, suggested when damage shows up (at open or mid-stream).
    backup: Option<PathBuf>,
    /// Optional date columns present in this database, in [`DATE_COLUMNS`] order.
    has_date: [bool; 6],
    /// The private copy read instead of `path` when a write-ahead log sits beside it.
    merged: Option<Arc<MergedCopy>>,
}

/// A private copy of the database with its write-ahead log folded in; the folder is
/// removed when the last connection reading it is dropped.
#[derive(Debug)]
struct MergedCopy {
    dir: PathBuf,
    db: PathBuf,
    wal_bytes: u64,
    /// Frames SQLite found in the log (valid and committed) and frames it folded into the
    /// copy: none found in a non-empty log means SQLite could use nothing of it.
    frames: u64,
    folded: u64,
}

impl Drop for MergedCopy {
    fn drop(&mut self) {
        live_copies().retain(|d| d != &self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The private copies this process has made and not yet removed.
fn live_copies() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes the private copies this process still has, as it ends: one held by a thread
/// left behind in a call to a source that does not answer (`restore::watch`,
/// `read_while_planning`; its drop never runs), or by a run a second Ctrl-C ends
/// (`signals::before_exit`). Before round 23 such a copy, as large as the database, stayed
/// in TMPDIR until a later run with a write-ahead log swept it (`sweep_leftovers`), maybe
/// on a RAM-backed /tmp. The process ends right after: the copy's open files never serve a
/// read again. `main` calls it before every exit.
pub fn remove_private_copies() {
    let left = std::mem::take(&mut *live_copies());
    for dir in left {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Private copies are folders named `<prefix><pid>-<nanoseconds>` in the temporary folder.
const COPY_PREFIX: &str = "mycloud-recover-index-";

/// Removes private copies whose process is gone: a copy is removed when its last
/// connection closes, but a run killed (SIGKILL, out of memory, a second Ctrl-C) leaves it,
/// a database-sized folder, maybe on a RAM-backed /tmp.
fn sweep_leftovers(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(COPY_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        let alive = pid
            .parse::<u32>()
            .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// `index.db` -> `index.db-wal` (SQLite's naming).
fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_os_string();
    s.push("-wal");
    PathBuf::from(s)
}

impl MergedCopy {
    /// Copies `db` and its log into a new private folder under the system's temporary
    /// folder (`TMPDIR`) and folds the log into the copy.
    fn make(db: &Path, wal: &Path, wal_bytes: u64) -> Result<MergedCopy, IndexError> {
        use std::os::unix::fs::DirBuilderExt;
        let fail = |what: &str, e: &dyn std::fmt::Display| IndexError::WalCopy {
            path: db.to_path_buf(),
            detail: format!("{what}: {e}"),
        };
        let tmp = std::env::temp_dir();
        // Never a copy onto the source: not in the database's folder, nor anywhere on the
        // partition that holds `restsdk`.
        let real_tmp = crate::fsinfo::resolved_path(&tmp);
        let db_dir = crate::fsinfo::resolved_path(db.parent().unwrap_or(Path::new("/")));
        let partition = db_dir
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "restsdk"))
            .and_then(Path::parent);
        if real_tmp.starts_with(&db_dir) || partition.is_some_and(|p| real_tmp.starts_with(p)) {
            return Err(fail(
                &format!("the temporary folder {} is on the source", tmp.display()),
                &"set TMPDIR to a folder on another disk",
            ));
        }
        sweep_leftovers(&tmp);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = tmp.join(format!("{COPY_PREFIX}{}-{stamp}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| fail(&format!("cannot create {}", dir.display()), &e))?;
        // From here on the folder is removed on every way out, the end of the process too.
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| crate::signals::before_exit(remove_private_copies));
        live_copies().push(dir.clone());
        let mut copy = MergedCopy {
            db: dir.join("index.db"),
            dir,
            wal_bytes,
            frames: 0,
            folded: 0,
        };
        std::fs::copy(db, &copy.db)
            .map_err(|e| fail(&format!("cannot copy it to {}", copy.db.display()), &e))?;
        std::fs::copy(wal, wal_path(&copy.db)).map_err(|e| {
            fail(
                &format!("cannot copy {} to {}", wal.display(), copy.dir.display()),
                &e,
            )
        })?;
        // SQLite replays the log's committed transactions on opening (a torn last one is
        // ignored by its checksums); the checkpoint writes them into the copy. A log SQLite
        // cannot read (no valid header, frames failing their checksums) is ignored without
        // an error: only the checkpoint's count of frames tells. A passive checkpoint
        // reports them (a truncating one reports the emptied log), and no one else has the
        // copy open, so it folds every frame.
        let conn = Connection::open(&copy.db).map_err(|e| fail("SQLite", &e))?;
        let (frames, folded) = conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })
            .and_then(|counts| {
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
                Ok(counts)
            })
            .map_err(|e| fail("SQLite could not fold in the log", &e))?;
        // -1 when the copy is not in WAL mode: nothing was read from the log.
        copy.frames = frames.max(0) as u64;
        copy.folded = folded.max(0) as u64;
        drop(conn);
        Ok(copy)
    }
}

/// `file:` URI for a path, percent-encoding what SQLite's URI parser would misread.
fn immutable_uri(path: &Path) -> String {
    let mut s = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match *b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                s.push(*b as char)
            }
            other => s.push_str(&format!("%{other:02X}")),
        }
    }
    s.push_str("?mode=ro&immutable=1");
    s
}

impl Index {
    /// Opens `path` read-only and immutable and checks the `Files` columns; with a non-empty
    /// write-ahead log beside it, opens a private copy with the log folded in instead.
    /// `backup` (the `dbBackup` copy, if found) is suggested when the database is damaged.
    pub fn open(path: &Path, backup: Option<&Path>) -> Result<Index, IndexError> {
        let wal = wal_path(path);
        check_readable(path)?;
        let merged = match std::fs::metadata(&wal) {
            Ok(m) if m.is_file() && m.len() > 0 => {
                check_readable(&wal)?;
                Some(Arc::new(MergedCopy::make(path, &wal, m.len())?))
            }
            _ => None,
        };
        Index::connect(path, backup, merged)
    }

    /// A second connection to the same database (for another thread), sharing the private
    /// copy if there is one.
    pub fn reopen(&self) -> Result<Index, IndexError> {
        Index::connect(&self.path, self.backup.as_deref(), self.merged.clone())
    }

    fn connect(
        path: &Path,
        backup: Option<&Path>,
        merged: Option<Arc<MergedCopy>>,
    ) -> Result<Index, IndexError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let read = merged.as_ref().map_or(path, |m| &m.db);
        let conn = Connection::open_with_flags(immutable_uri(read), flags)
            .map_err(|e| classify(path, backup, e))?;
        let mut idx = Index {
            conn,
            path: path.to_path_buf(),
            backup: backup.map(Path::to_path_buf),
            has_date: [false; 6],
            merged,
        };
        idx.check_columns()?;
        Ok(idx)
    }

    /// Whether the `Files` table has the optional date column `name` (one of
    /// [`DATE_COLUMNS`]).
    pub fn has_date_column(&self, name: &str) -> bool {
        DATE_COLUMNS
            .iter()
            .zip(self.has_date)
            .any(|(c, has)| has && c.eq_ignore_ascii_case(name))
    }

    /// Said once per command when there is a write-ahead log: the user should know the
    /// database on the disk alone is not the whole index, or that the log could not be
    /// used and what it held (if anything) is not in what is read.
    pub fn wal_note(&self) -> Option<String> {
        self.merged.as_ref().map(|m| {
            let wal = wal_path(&self.path);
            if m.frames == 0 {
                format!(
                    "{} has a write-ahead log ({} bytes in {}) that SQLite could not use (no valid committed change in it: not a write-ahead log, damaged, or empty); only the database file is read, so the log's changes, if it held any, are not in this plan or restore (the source was not changed)",
                    self.path.display(),
                    m.wal_bytes,
                    wal.display()
                )
            } else if m.folded < m.frames {
                format!(
                    "{} has a write-ahead log ({} bytes in {}); only {} of its {} pages of changes could be folded into a private copy, which is what is read: some of the device's last changes may be missing (the source was not changed)",
                    self.path.display(),
                    m.wal_bytes,
                    wal.display(),
                    m.folded,
                    m.frames
                )
            } else {
                format!(
                    "{} has a write-ahead log ({} bytes in {}) with changes not yet in the database file; they were read from a private copy (the source was not changed)",
                    self.path.display(),
                    m.wal_bytes,
                    wal.display()
                )
            }
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: rusqlite::Error) -> IndexError {
        classify(&self.path, self.backup.as_deref(), e)
    }

    fn check_columns(&mut self) -> Result<(), IndexError> {
        let cols: Vec<String> = (|| {
            let mut stmt = self
                .conn
                .prepare("SELECT name FROM pragma_table_info('Files')")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.err(e))?;
        if cols.is_empty() {
            let path = self.path.clone();
            let hint = backup_hint(self.backup.as_deref());
            return Err(match std::fs::metadata(&path) {
                Ok(m) if m.len() == 0 => IndexError::Empty { path, hint },
                _ => IndexError::NoFilesTable { path, hint },
            });
        }
        let has = |c: &str| cols.iter().any(|x| x.eq_ignore_ascii_case(c));
        for c in REQUIRED_COLUMNS {
            if !has(c) {
                return Err(IndexError::MissingColumn {
                    path: self.path.clone(),
                    column: (*c).to_string(),
                });
            }
        }
        for (i, c) in DATE_COLUMNS.iter().enumerate() {
            self.has_date[i] = has(c);
        }
        Ok(())
    }

    /// SQL expressions for the six date columns (NULL where the column is absent).
    fn date_select(&self) -> String {
        DATE_COLUMNS
            .iter()
            .zip(self.has_date)
            .map(|(c, has)| {
                if has {
                    (*c).to_string()
                } else {
                    "NULL".to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Runs `PRAGMA quick_check` and returns SQLite's complaints (empty when fine).
    pub fn quick_check(&self) -> Result<Vec<String>, IndexError> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(20)")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let out: Vec<String> = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        Ok(out.into_iter().filter(|l| l != "ok").collect())
    }

    /// Counts files, folders and bytes. The bytes are summed here, not by SQLite: a size
    /// stored as text or a huge number made SQLite's `SUM` fail (a real result, or "integer
    /// overflow") and stopped `inspect`; sizes are read as [`Index::for_each_file`] reads
    /// them, and the sum saturates.
    pub fn counts(&self) -> Result<IndexCounts, IndexError> {
        let mut c = IndexCounts::default();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT mimeType = ?1, size, contentID IS NULL OR contentID = ''
                 FROM Files WHERE mimeType IS NOT NULL",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([FOLDER_MIME]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            if r.get::<_, bool>(0).map_err(|e| self.err(e))? {
                c.folders += 1;
                continue;
            }
            c.files += 1;
            c.bytes = c
                .bytes
                .saturating_add(size_at(r, 1).map_err(|e| self.err(e))?.0);
            c.files_without_content_id += r.get::<_, bool>(2).map_err(|e| self.err(e))? as u64;
        }
        Ok(c)
    }

    /// Rows in `Files` (files and folders): SQLite counts them from its smallest index
    /// without reading the rows, so this is quick where [`Index::counts`] is a full pass.
    pub fn row_count(&self) -> Result<u64, IndexError> {
        self.conn
            .query_row("SELECT count(*) FROM Files", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Streams every folder row.
    pub fn for_each_folder(&self, mut f: impl FnMut(FolderRow)) -> Result<(), IndexError> {
        let sql = format!(
            "SELECT id, parentID, name, {} FROM Files WHERE mimeType = ?1",
            self.date_select()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([FOLDER_MIME]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let (name, name_escaped) = name_ref(r, 2).map_err(|e| self.err(e))?;
            f(FolderRow {
                id: r.get(0).map_err(|e| self.err(e))?,
                parent: parent_of(r.get(1).map_err(|e| self.err(e))?),
                name: name.into_owned(),
                name_escaped,
                dates: dates_at(r, 3).map_err(|e| self.err(e))?,
            });
        }
        Ok(())
    }

    /// Streams every row's parent and name, borrowed, in the database's own order (no
    /// sort): the plan's first look at names ([`crate::plan::Plan::build`]) only needs to
    /// know which folders hold two names that collide.
    pub fn for_each_name(&self, mut f: impl FnMut(NameRow<'_>)) -> Result<(), IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT parentID, name FROM Files")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            f(NameRow {
                parent: parent_of(borrowed(r, 0).map_err(|e| self.err(e))?),
                name: text_ref(r, 1).map_err(|e| self.err(e))?,
            });
        }
        Ok(())
    }

    /// Streams the id, parent and name of every row at the top (no parent, or `''`) or in
    /// one of the folders `parents`, sorted by parent then id, so that all children of one
    /// folder arrive together in a deterministic order. SQLite finds them through the
    /// device's index on `parentID` where there is one (else it reads every row) and sorts
    /// them on disk (its temp store), so memory does not grow with the row count. Nothing
    /// else runs while the plan makes this pass, so SQLite's sorter may use helper threads
    /// (`PRAGMA threads`).
    pub fn for_each_child_of(
        &self,
        parents: &[&str],
        mut f: impl FnMut(ChildRow),
    ) -> Result<(), IndexError> {
        let helpers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        // Only a hint to SQLite: the pass works the same without it.
        let _ = self
            .conn
            .execute_batch(&format!("PRAGMA threads = {helpers}"));
        let streamed = (|| {
            // The folders go in as one JSON array bound to the statement: nothing is written,
            // not even to SQLite's temp store.
            let list = serde_json::to_string(parents).unwrap_or_else(|_| "[]".to_string());
            let mut stmt = self.conn.prepare(
                "SELECT id, COALESCE(parentID, ''), name, mimeType = ?1, rowid FROM Files
                 WHERE parentID IS NULL OR parentID = ''
                    OR parentID IN (SELECT value FROM json_each(?2))
                 ORDER BY COALESCE(parentID, ''), id",
            )?;
            let mut rows = stmt.query(rusqlite::params![FOLDER_MIME, list])?;
            while let Some(r) = rows.next()? {
                f(ChildRow {
                    rowid: r.get(4)?,
                    id: r.get(0)?,
                    parent: parent_of(r.get(1)?),
                    name: text(r, 2)?,
                    is_folder: r.get(3)?,
                });
            }
            Ok(())
        })();
        let _ = self.conn.execute_batch("PRAGMA threads = 0");
        streamed.map_err(|e| self.err(e))
    }

    /// Streams every file (non-folder) row. Without `folder_order`, in rowid order. With
    /// it ((folder id, rank) pairs), grouped by folder in rank order (files of folders not
    /// listed come first), rowid order within a folder: the restore writes folder by folder,
    /// which on ext4 measured 15-20% faster than rowid order (docs/PERFORMANCE.md). SQLite
    /// sorts by a function of this connection that looks the rank up in memory
    /// (`Index::rank_function`); the sort spills to SQLite's temp files, never to the
    /// database file, so memory stays bounded.
    pub fn for_each_file(
        &self,
        folder_order: Option<&[(&str, u32)]>,
        mut f: impl FnMut(FileRow<'_>),
    ) -> Result<(), IndexError> {
        let order = match folder_order {
            Some(ranks) => {
                self.rank_function(ranks)?;
                "WHERE mimeType <> ?1 ORDER BY mcr_rank(parentID), rowid"
            }
            None => "WHERE mimeType <> ?1 ORDER BY rowid",
        };
        let sql = format!(
            "SELECT Files.id, parentID, contentID, name, size, {}, rowid FROM Files {order}",
            self.date_select()
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query([FOLDER_MIME]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let content_id = borrowed(r, 2).map_err(|e| self.err(e))?;
            let (name, name_escaped) = name_ref(r, 3).map_err(|e| self.err(e))?;
            let (size, size_unusable) = size_at(r, 4).map_err(|e| self.err(e))?;
            f(FileRow {
                rowid: r.get(5 + DATE_COLUMNS.len()).map_err(|e| self.err(e))?,
                id: required(r, 0).map_err(|e| self.err(e))?,
                parent: parent_of(borrowed(r, 1).map_err(|e| self.err(e))?),
                content_id: content_id.filter(|c| !c.is_empty()),
                name,
                name_escaped,
                size,
                size_unusable,
                dates: dates_at(r, 5).map_err(|e| self.err(e))?,
            });
        }
        drop(rows);
        drop(stmt);
        if folder_order.is_some() {
            // The ranks' memory goes with the function.
            let _ = self.conn.remove_function("mcr_rank", 1);
        }
        Ok(())
    }

    /// Defines `mcr_rank(id)` on this connection: the rank of folder `id`, NULL for one not
    /// listed (the first listing of an id wins). The ranks are kept by an xxh3 hash of the
    /// id, in memory: where they were a TEMP table joined to every file row, filling it
    /// and probing it per row were a quarter of the copy's stream at 1.35M files
    /// (docs/PERFORMANCE.md, round 7). A function writes nothing.
    fn rank_function(&self, ranks: &[(&str, u32)]) -> Result<(), IndexError> {
        use rusqlite::functions::FunctionFlags;
        let mut by_id: HashMap<u64, u32, KeyHashing> =
            HashMap::with_capacity_and_hasher(ranks.len(), KeyHashing::default());
        for (id, rank) in ranks {
            by_id.entry(id_key(id.as_bytes())).or_insert(*rank);
        }
        self.conn
            .create_scalar_function(
                "mcr_rank",
                1,
                FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
                move |ctx| {
                    Ok(match ctx.get_raw(0) {
                        ValueRef::Text(id) => by_id.get(&id_key(id)).copied(),
                        _ => None,
                    })
                },
            )
            .map_err(|e| self.err(e))
    }

    /// Up to `n` contentIDs of file rows, spread over the table, for sampling the object store.
    pub fn sample_content_ids(&self, n: usize) -> Result<Vec<String>, IndexError> {
        let total: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM Files", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        // The first file with an object at or after each of n evenly spaced rowids: n short
        // walks of the rowid B-tree, not a pass over the table (the restore samples at
        // start-up, where 1.7M rows would cost a second).
        let step = (total / n.max(1) as i64).max(1);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT rowid, contentID FROM Files WHERE rowid >= ?1 AND mimeType <> ?2
                 AND contentID IS NOT NULL AND contentID <> '' ORDER BY rowid LIMIT 1",
            )
            .map_err(|e| self.err(e))?;
        let mut out: Vec<String> = Vec::new();
        let mut after = 0i64;
        for i in 0..n as i64 {
            let from = (i * step + 1).max(after + 1);
            if from > total {
                break;
            }
            let row: Option<(i64, String)> = stmt
                .query_row(rusqlite::params![from, FOLDER_MIME], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(|e| self.err(e))?;
            match row {
                Some((rowid, cid)) => {
                    after = rowid;
                    out.push(cid);
                }
                None => break,
            }
        }
        Ok(out)
    }

    /// Sizes of all file rows, streamed (for histograms and estimates), read as
    /// [`Index::for_each_file`] reads them (0 where not usable).
    pub fn for_each_file_size(&self, mut f: impl FnMut(u64)) -> Result<(), IndexError> {
        let mut stmt = self
            .conn
            .prepare("SELECT size FROM Files WHERE mimeType <> ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([FOLDER_MIME]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            f(size_at(r, 0).map_err(|e| self.err(e))?.0);
        }
        Ok(())
    }
}

/// A parent of NULL or '' marks a root.
fn parent_of<T: AsRef<str>>(p: Option<T>) -> Option<T> {
    p.filter(|s| !s.as_ref().is_empty())
}

/// Reads a name column leniently: a name stored as a BLOB or with invalid UTF-8 is decoded
/// lossily rather than failing the whole plan (the lossy name is then reported as changed).
fn text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<String> {
    text_ref(r, i).map(Cow::into_owned)
}

/// A name: its text (bytes that are not UTF-8 replaced by U+FFFD, as it is restored), and,
/// only when there were such bytes, the stored name with each of them written `\xE9`: the
/// name changed, and the report says so, showing what was stored.
fn name_ref<'r>(
    r: &'r rusqlite::Row<'_>,
    i: usize,
) -> rusqlite::Result<(Cow<'r, str>, Option<String>)> {
    use rusqlite::types::ValueRef;
    let name = text_ref(r, i)?;
    // Text or a blob comes back owned only when it was not UTF-8 (one validation per row).
    let escaped = match (r.get_ref(i)?, &name) {
        (ValueRef::Text(t) | ValueRef::Blob(t), Cow::Owned(_)) => {
            let mut out = String::new();
            for chunk in t.utf8_chunks() {
                out.push_str(chunk.valid());
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
            Some(out)
        }
        _ => None,
    };
    Ok((name, escaped))
}

/// [`text`], borrowed from the row where the name is valid UTF-8.
fn text_ref<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Cow<'r, str>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t),
        ValueRef::Null => Cow::Borrowed(""),
        ValueRef::Integer(v) => Cow::Owned(v.to_string()),
        ValueRef::Real(v) => Cow::Owned(v.to_string()),
    })
}

/// [`borrowed`] for a column that must not be NULL (as `get::<String>` would have it).
fn required<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    borrowed(r, i)?.ok_or_else(|| wrong_type(r, i))
}

/// The error `get` gives for a column of the wrong type (NULL included), naming the column.
fn wrong_type(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(
        i,
        r.as_ref().column_name(i).unwrap_or("?").to_string(),
        r.get_ref(i)
            .map_or(rusqlite::types::Type::Null, |v| v.data_type()),
    )
}

/// A text column (or NULL) borrowed from the row; what `get::<Option<String>>` would refuse
/// (a number, a BLOB, invalid UTF-8) is refused the same way.
fn borrowed<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    r.get_ref(i)?.as_str_or_null().map_err(|e| match e {
        rusqlite::types::FromSqlError::InvalidType => wrong_type(r, i),
        other => rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            Box::new(other),
        ),
    })
}

/// The largest size taken as stored: no file above 1 PiB fits on the disks of a device
/// that holds a few TB (a size near `i64::MAX` wrapped the plan's total). Sums of sizes
/// still saturate.
const MAX_SIZE: u64 = 1 << 50;

/// Reads a size leniently, as dates are read ([`dates_at`]): an integer as it is, a real
/// rounded, text holding a number parsed. What is not a byte count (a negative or
/// impossibly large number, other text, NULL, a BLOB) is returned as 0 with the stored
/// value written out for the report: one odd row must not stop every command, nor wrap a
/// total. The copy writes the object's own bytes whatever the size says.
fn size_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<(u64, Option<String>)> {
    let v = r.get_ref(i)?;
    let real = |x: f64| {
        (x.is_finite() && x > -1.0 && x < (MAX_SIZE + 1) as f64).then(|| x.round().max(0.0) as u64)
    };
    let n = match v {
        ValueRef::Integer(n) => u64::try_from(n).ok(),
        ValueRef::Real(x) => real(x),
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::trim).and_then(|t| {
            t.parse::<u64>()
                .ok()
                .or_else(|| t.parse::<f64>().ok().and_then(real))
        }),
        ValueRef::Null | ValueRef::Blob(_) => None,
    };
    Ok(match n {
        Some(n) if n <= MAX_SIZE => (n, None),
        _ => (0, Some(stored_value(v))),
    })
}

/// A stored value written out for a report: text quoted, a BLOB by its length.
fn stored_value(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(n) => n.to_string(),
        ValueRef::Real(x) => x.to_string(),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("a BLOB of {} bytes", b.len()),
    }
}

fn dates_at(r: &rusqlite::Row<'_>, start: usize) -> rusqlite::Result<RowDates> {
    let g = |i: usize| -> rusqlite::Result<Option<i64>> {
        use rusqlite::types::ValueRef;
        Ok(match r.get_ref(start + i)? {
            ValueRef::Integer(v) => Some(v),
            ValueRef::Real(v) => Some(v as i64),
            _ => None,
        })
    };
    Ok(RowDates {
        image: g(0)?,
        video: g(1)?,
        c: g(2)?,
        birth: g(3)?,
        m: g(4)?,
        u: g(5)?,
    })
}

/// Refuses a file this user may not read, naming it: SQLite only says "unable to open
/// database file" (and copying a write-ahead log would blame the temporary folder). Opening
/// for reading writes nothing; any other error is left to SQLite to describe.
fn check_readable(path: &Path) -> Result<(), IndexError> {
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(IndexError::PermissionDenied {
                path: path.to_path_buf(),
            })
        }
        _ => Ok(()),
    }
}

/// What to try when the database is damaged or empty: the device's backup copy.
fn backup_hint(backup: Option<&Path>) -> String {
    match backup {
        Some(b) => format!(
            " Try the backup copy: --db {} (it may be older but intact).",
            b.display()
        ),
        None => " Look for restsdk/data/dbBackup/index.db and pass it with --db.".into(),
    }
}

fn classify(path: &Path, backup: Option<&Path>, e: rusqlite::Error) -> IndexError {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
        match f.code {
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                if let Err(denied) = check_readable(path) {
                    return denied;
                }
            }
            ErrorCode::NotADatabase => {
                return IndexError::NotSqlite {
                    path: path.to_path_buf(),
                }
            }
            ErrorCode::DatabaseCorrupt => {
                return IndexError::Malformed {
                    path: path.to_path_buf(),
                    detail: msg
                        .clone()
                        .unwrap_or_else(|| "database disk image is malformed".into()),
                    hint: backup_hint(backup),
                };
            }
            _ => {}
        }
    }
    IndexError::Sqlite {
        path: path.to_path_buf(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::schema::FILES_TABLE_SQL;

    fn fixture(dir: &Path) -> PathBuf {
        let p = dir.join("index.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(FILES_TABLE_SQL).unwrap();
        c.execute_batch(
            "INSERT INTO Files(id,parentID,contentID,version,name,birthTime,cTime,size,mimeType,storageID,hidden,imageDate)
             VALUES ('root',NULL,'c0',1,'auth0|abc',1,1,0,'application/x.wd.dir','local',1,NULL),
                    ('f1','root','c1',1,'a.jpg',1000,2000,5,'image/jpeg','local',1,3000),
                    ('d1','root','c2',1,'Photos',1,1,0,'application/x.wd.dir','local',1,NULL);",
        )
        .unwrap();
        p
    }

    #[test]
    fn uri_escapes_special_characters() {
        assert_eq!(
            immutable_uri(Path::new("/a b/x?#%.db")),
            "file:/a%20b/x%3F%23%25.db?mode=ro&immutable=1"
        );
    }

    #[test]
    fn reads_folders_files_and_counts() {
        let t = tempfile::tempdir().unwrap();
        let p = fixture(t.path());
        let idx = Index::open(&p, None).unwrap();
        let c = idx.counts().unwrap();
        assert_eq!((c.files, c.folders, c.bytes), (1, 2, 5));
        let mut folders = vec![];
        idx.for_each_folder(|f| folders.push(f.id)).unwrap();
        folders.sort();
        assert_eq!(folders, ["d1", "root"]);
        let mut files = vec![];
        idx.for_each_file(None, |f| {
            files.push((f.parent.map(str::to_string), f.dates))
        })
        .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].1.image, Some(3000));
        assert_eq!(files[0].0.as_deref(), Some("root"));
        assert!(idx.quick_check().unwrap().is_empty());
    }

    /// Files come grouped by folder in the given rank order, rowid order within a folder,
    /// files of unranked parents first (the first rank given for an id wins); the database
    /// file is not touched.
    #[test]
    fn files_stream_folder_by_folder_in_rank_order() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("index.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(FILES_TABLE_SQL).unwrap();
        for (i, (id, parent)) in [
            ("a1", "A"),
            ("b1", "B"),
            ("a2", "A"),
            ("x1", "gone"),
            ("b2", "B"),
        ]
        .iter()
        .enumerate()
        {
            c.execute(
                "INSERT INTO Files(id,parentID,contentID,version,name,birthTime,cTime,size,mimeType,storageID,hidden)
                 VALUES (?1,?2,?3,1,?1,1,1,1,'image/jpeg','local',1)",
                rusqlite::params![id, parent, format!("c{i}")],
            )
            .unwrap();
        }
        drop(c);
        let before = std::fs::read(&p).unwrap();
        let idx = Index::open(&p, None).unwrap();
        let order = |ranks: &[(&str, u32)]| {
            let mut ids = vec![];
            idx.for_each_file(Some(ranks), |f| ids.push(f.id.to_string()))
                .unwrap();
            ids
        };
        assert_eq!(order(&[("B", 0), ("A", 1)]), ["x1", "b1", "b2", "a1", "a2"]);
        // A second call replaces the ranks.
        assert_eq!(order(&[("A", 0), ("B", 1)]), ["x1", "a1", "a2", "b1", "b2"]);
        assert_eq!(
            order(&[("A", 2), ("B", 1), ("A", 0)]),
            ["x1", "b1", "b2", "a1", "a2"]
        );
        let mut plain = vec![];
        idx.for_each_file(None, |f| plain.push(f.id.to_string()))
            .unwrap();
        assert_eq!(plain, ["a1", "b1", "a2", "x1", "b2"]);
        drop(idx);
        assert_eq!(
            std::fs::read(&p).unwrap(),
            before,
            "the database is unchanged"
        );
        let names: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["index.db"], "nothing written beside it");
    }

    /// Sizes are read as leniently as dates: a real rounded, a usable value whatever its
    /// storage class; what is not a byte count is 0 with the stored value written out, and
    /// the counts add in Rust (SQLite's SUM failed on text and overflowed on huge values).
    #[test]
    fn odd_sizes_are_read_leniently_and_named() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("index.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch(FILES_TABLE_SQL).unwrap();
        let sizes = [
            "7",
            "'12'",
            "' 13 '",
            "3.5",
            "''",
            "'abc'",
            "-5",
            "9e19",
            "9223372036854775807",
            "9223372036854775807",
            "9223372036854775807",
            "X'0102'",
        ];
        for (i, size) in sizes.iter().enumerate() {
            c.execute(
                &format!(
                    "INSERT INTO Files(id,parentID,contentID,version,name,birthTime,cTime,size,mimeType,storageID,hidden)
                     VALUES ('f{i}','root','c{i}',1,'n{i}',1,1,{size},'image/jpeg','local',1)"
                ),
                [],
            )
            .unwrap();
        }
        drop(c);
        let idx = Index::open(&p, None).unwrap();
        let mut got = vec![];
        idx.for_each_file(None, |f| got.push((f.size, f.size_unusable)))
            .unwrap();
        let none = |n: u64| (n, None);
        let odd = |s: &str| (0, Some(s.to_string()));
        assert_eq!(
            got,
            [
                none(7),
                none(12),
                none(13),
                none(4),
                odd("\"\""),
                odd("\"abc\""),
                odd("-5"),
                odd("90000000000000000000"),
                odd("9223372036854775807"),
                odd("9223372036854775807"),
                odd("9223372036854775807"),
                odd("a BLOB of 2 bytes"),
            ]
        );
        let c = idx.counts().unwrap();
        assert_eq!((c.files, c.bytes), (12, 7 + 12 + 13 + 4));
        let mut sizes = vec![];
        idx.for_each_file_size(|s| sizes.push(s)).unwrap();
        assert_eq!(sizes.iter().sum::<u64>(), 36);
    }

    #[test]
    fn missing_column_is_named() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("index.db");
        let c = Connection::open(&p).unwrap();
        c.execute_batch("CREATE TABLE Files(id TEXT, parentID TEXT, name TEXT)")
            .unwrap();
        drop(c);
        let e = Index::open(&p, None).err().unwrap().to_string();
        assert!(e.contains("contentID"), "{e}");
    }

    #[test]
    fn not_sqlite_is_named() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("index.db");
        std::fs::write(&p, vec![b'x'; 4096]).unwrap();
        let e = Index::open(&p, None).err().unwrap().to_string();
        assert!(e.contains("not a SQLite database"), "{e}");
        assert!(e.contains("index.db"), "{e}");
    }
}
