//! The dump on disk: where the index database and the object store are, and how a contentID
//! maps to an object file.
//!
//! Users point us at whatever they mounted: the data partition, its `restsdk` folder, or
//! `restsdk/data`. We accept all three (and explicit `--db` / `--files` overrides) and fail
//! with a message listing every place we looked, because "file not found" alone is useless to
//! someone staring at a freshly attached disk.

pub mod index;
pub mod schema;

use std::path::{Path, PathBuf};

/// Where the parts of a dump are.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceLayout {
    /// The folder the user named.
    pub root: PathBuf,
    /// `.../db/index.db`
    pub db: PathBuf,
    /// `.../files`
    pub files: PathBuf,
    /// `.../dbBackup/index.db`, if present: the copy to try when the main one is damaged.
    pub backup_db: Option<PathBuf>,
}

/// A source that cannot be used. Each message names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {0} does not exist; give the mounted My Cloud data partition, its restsdk folder, or restsdk/data")]
    Missing(PathBuf),
    #[error("SOURCE {path} is a file, not a folder: give the folder of the My Cloud disk that holds the dump (the mounted data partition, its restsdk folder, or restsdk/data), and pass --db PATH if the database is elsewhere.{hint}")]
    SourceIsFile { path: PathBuf, hint: String },
    #[error("SOURCE {0} is a disk device, not a folder: mount the My Cloud disk's data partition first, read-only (for example `sudo mkdir -p /mnt/mycloud && sudo mount -o ro {0} /mnt/mycloud`), then give the folder it is mounted on")]
    SourceIsDevice(PathBuf),
    #[error("no My Cloud index database found under {root}; looked for: {looked}.{hint}")]
    NoDatabase {
        root: PathBuf,
        looked: String,
        hint: String,
    },
    #[error("no object folder `files` found under {root}; looked for: {looked}. Pass --files PATH if it is elsewhere")]
    NoFiles { root: PathBuf, looked: String },
    #[error("{0} given with --db does not exist")]
    DbOverrideMissing(PathBuf),
    #[error("{0} given with --files is not a folder")]
    FilesOverrideMissing(PathBuf),
    #[error("{0} is a folder, not a database file: the index is the file restsdk/data/db/index.db (a copy may sit in restsdk/data/dbBackup/index.db); pass --db PATH to name the file")]
    DbIsFolder(PathBuf),
    #[error("permission denied: this user cannot {what} {path}. {SUDO_HINT}")]
    PermissionDenied { path: PathBuf, what: &'static str },
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to do when the source cannot be read: the disk's files are the device's, not this
/// user's.
pub const SUDO_HINT: &str =
    "The files on a My Cloud disk are often readable by root only: run this command with sudo";

/// What is at `p` (following links): its type, or `None` when nothing is there. A
/// permission error is not an absence: it names the folder that cannot be searched.
fn kind_at(p: &Path) -> Result<Option<std::fs::FileType>, SourceError> {
    match std::fs::metadata(p) {
        Ok(m) => Ok(Some(m.file_type())),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(blocked(p)),
        Err(_) => Ok(None),
    }
}

/// The error for a path whose lookup was refused: the deepest folder above it that can be
/// reached is the one this user may not search.
fn blocked(p: &Path) -> SourceError {
    let folder = p
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && std::fs::metadata(a).is_ok());
    match folder {
        Some(f) => SourceError::PermissionDenied {
            path: f.to_path_buf(),
            what: "open the folder",
        },
        None => SourceError::PermissionDenied {
            path: p.to_path_buf(),
            what: "reach",
        },
    }
}

/// The data folders (the one holding `db/` and `files/`) a user's path may lead to.
fn candidate_data_dirs(root: &Path) -> Vec<PathBuf> {
    vec![
        root.to_path_buf(),
        root.join("data"),
        root.join("restsdk/data"),
    ]
}

impl SourceLayout {
    /// Finds the database and object store under `root`, honouring explicit overrides.
    pub fn discover(
        root: &Path,
        db_override: Option<&Path>,
        files_override: Option<&Path>,
    ) -> Result<SourceLayout, SourceError> {
        match kind_at(root)? {
            None => return Err(SourceError::Missing(root.to_path_buf())),
            // Said as such, whatever the overrides: the places looked for under a file
            // (`x.json/db/index.db`, ...) only hid the mistake.
            Some(t) if std::os::unix::fs::FileTypeExt::is_block_device(&t) => {
                return Err(SourceError::SourceIsDevice(root.to_path_buf()))
            }
            Some(t) if !t.is_dir() => {
                return Err(SourceError::SourceIsFile {
                    path: root.to_path_buf(),
                    hint: dump_near_file(root)
                        .map(|d| format!(" Did you mean {} as SOURCE?", d.display()))
                        .unwrap_or_default(),
                })
            }
            Some(_) => {}
        }
        let candidates = candidate_data_dirs(root);
        let data_dir = candidates
            .iter()
            .find(|d| d.join("db/index.db").is_file() || d.join("files").is_dir());

        let db = match db_override {
            Some(p) => match kind_at(p)? {
                Some(t) if t.is_file() => p.to_path_buf(),
                Some(t) if t.is_dir() => return Err(SourceError::DbIsFolder(p.to_path_buf())),
                _ => return Err(SourceError::DbOverrideMissing(p.to_path_buf())),
            },
            None => {
                let looked: Vec<PathBuf> =
                    candidates.iter().map(|d| d.join("db/index.db")).collect();
                // A folder where the database should be is said as such, not as "not found".
                find_first(&looked, |t| t.is_file())?.ok_or_else(|| {
                    match looked.iter().find(|p| p.is_dir()) {
                        Some(dir) => SourceError::DbIsFolder(dir.clone()),
                        None => SourceError::NoDatabase {
                            root: root.to_path_buf(),
                            looked: list(looked.iter().cloned()),
                            hint: source_hint(root),
                        },
                    }
                })?
            }
        };
        let files = match files_override {
            Some(p) if kind_at(p)?.is_some_and(|t| t.is_dir()) => p.to_path_buf(),
            Some(p) => return Err(SourceError::FilesOverrideMissing(p.to_path_buf())),
            None => {
                let looked: Vec<PathBuf> = candidates.iter().map(|d| d.join("files")).collect();
                find_first(&looked, |t| t.is_dir())?.ok_or_else(|| SourceError::NoFiles {
                    root: root.to_path_buf(),
                    looked: list(looked.iter().cloned()),
                })?
            }
        };
        let backup_db = data_dir
            .map(|d| d.join("dbBackup/index.db"))
            .or_else(|| {
                db.parent()
                    .and_then(|p| p.parent())
                    .map(|d| d.join("dbBackup/index.db"))
            })
            .filter(|p| p.is_file() && *p != db);
        Ok(SourceLayout {
            root: root.to_path_buf(),
            db,
            files,
            backup_db,
        })
    }

    /// Refuses an object store this user may not search: every file would fail one by one
    /// ("Permission denied"), and `inspect` would blame the layout. Checked once, before any
    /// work. Objects are reached by name, so listing the folder is not needed, and it is
    /// not walked (a flat store holds millions of objects).
    pub fn check_readable(&self) -> Result<(), SourceError> {
        // Looking up `.` inside the folder needs the right to search it, as reaching any
        // object does.
        match std::fs::metadata(self.files.join(".")) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(SourceError::PermissionDenied {
                    path: self.files.clone(),
                    what: "open files in the object folder",
                })
            }
            _ => Ok(()),
        }
    }

    /// The shard folder of an object: the first character of its contentID.
    pub fn shard_of(content_id: &str) -> Option<char> {
        content_id.chars().next()
    }

    /// The sharded location of an object: `files/<shard>/<contentID>`.
    pub fn sharded_object_path(&self, content_id: &str) -> Option<PathBuf> {
        let shard = Self::shard_of(content_id)?;
        Some(self.files.join(shard.to_string()).join(content_id))
    }

    /// `restsdk/data/userStorage`, where newer firmware may keep files in clear, if present.
    pub fn user_storage(&self) -> Option<PathBuf> {
        self.files
            .parent()
            .map(|d| d.join("userStorage"))
            .filter(|p| p.is_dir())
    }

    /// How many of `sample` (contentIDs) have an object in the store, and what the user
    /// should know about them (DOMAIN: "say so early"): almost none found (under one in ten),
    /// so the object store may not be where the tool looks, or laid out as it does not know;
    /// or found but some not readable by this user (objects kept for root, in folders anyone
    /// may enter: each would fail one by one). None readable at all is an error, with the
    /// sudo hint, before anything is written.
    pub fn sample_objects(&self, sample: &[String]) -> Result<(u64, Vec<String>), SourceError> {
        let mut found = 0u64;
        let mut closed: Vec<PathBuf> = Vec::new();
        for c in sample {
            if let Some(p) = self.find_object(c)? {
                found += 1;
                if let Err(e) = std::fs::File::open(&p) {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        closed.push(p);
                    }
                }
            }
        }
        if found > 0 && closed.len() as u64 == found {
            return Err(SourceError::PermissionDenied {
                path: closed.swap_remove(0),
                what: "read objects such as",
            });
        }
        let mut warnings = Vec::new();
        if !sample.is_empty() && found * 10 < sample.len() as u64 {
            let user_storage = self.user_storage();
            warnings.push(format!(
                "only {} of {} sampled contentIDs have an object under {}: the object store layout may differ from what this tool knows{}",
                crate::report::count(found),
                crate::report::count(sample.len() as u64),
                self.files.display(),
                if user_storage.is_some() { " (a userStorage folder exists: this firmware may keep files in clear there)" } else { "" }
            ));
        }
        if let Some(p) = closed.first() {
            warnings.push(format!(
                "{} of {} sampled objects cannot be read by this user (permission denied, for example {}): files whose object is like them will fail. {SUDO_HINT}",
                crate::report::count(closed.len() as u64),
                crate::report::count(found),
                p.display()
            ));
        }
        Ok((found, warnings))
    }

    /// Finds an object: sharded layout first, then the flat layout `files/<contentID>`.
    /// Returns `None` when neither exists (the object is missing) or the id is unusable; a
    /// path that cannot be looked at (permission denied, an I/O error) is an error, not a
    /// missing object.
    pub fn find_object(&self, content_id: &str) -> Result<Option<PathBuf>, SourceError> {
        Ok(self.find_object_len(content_id)?.map(|(p, _)| p))
    }

    /// [`SourceLayout::find_object`] with the object's length, from the `stat` that found
    /// it: `verify` asked for it again with a second one per file (a third of its system
    /// calls; docs/PERFORMANCE.md, round 14).
    pub fn find_object_len(&self, content_id: &str) -> Result<Option<(PathBuf, u64)>, SourceError> {
        self.look_for_object(
            content_id,
            |p| std::fs::metadata(p),
            |p, m| m.is_file().then(|| (p.to_path_buf(), m.len())),
        )
    }

    /// What stands at the object's place, sharded layout first, then flat, looked at with
    /// `lstat` (one call each, as [`SourceLayout::find_object_len`]): a symbolic link is
    /// said as such, not followed, as the restore does not follow one out of the object
    /// store; a folder, a FIFO or another special file as what it is (nothing opens it:
    /// opening a FIFO for reading can block for good). The first place holding anything
    /// is the one the restore opens. `Missing` when neither place holds anything (or the
    /// id is unusable); a place that cannot be looked at is an error.
    pub fn object_entry(&self, content_id: &str) -> Result<ObjectEntry, SourceError> {
        let found = self.look_for_object(
            content_id,
            |p| std::fs::symlink_metadata(p),
            |p, m| {
                let p = p.to_path_buf();
                let t = m.file_type();
                if t.is_file() {
                    Some(ObjectEntry::File(p, m.len()))
                } else if t.is_symlink() {
                    Some(ObjectEntry::Link(p))
                } else {
                    Some(ObjectEntry::NotAFile(p, not_a_file(t)))
                }
            },
        )?;
        Ok(found.unwrap_or(ObjectEntry::Missing))
    }

    /// The first place of the object (sharded, then flat) where `look` finds something
    /// that `fits`.
    fn look_for_object<T>(
        &self,
        content_id: &str,
        look: impl Fn(&Path) -> std::io::Result<std::fs::Metadata>,
        fits: impl Fn(&Path, &std::fs::Metadata) -> Option<T>,
    ) -> Result<Option<T>, SourceError> {
        if !is_safe_content_id(content_id) {
            return Ok(None);
        }
        let candidates = [
            self.sharded_object_path(content_id),
            Some(self.files.join(content_id)),
        ];
        for p in candidates.into_iter().flatten() {
            match look(&p) {
                Ok(m) => {
                    if let Some(found) = fits(&p, &m) {
                        return Ok(Some(found));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(blocked(&p))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) => {}
                Err(e) => return Err(SourceError::Unreadable { path: p, source: e }),
            }
        }
        Ok(None)
    }
}

/// What [`SourceLayout::object_entry`] finds at an object's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectEntry {
    /// A regular file, and its length.
    File(PathBuf, u64),
    /// A folder, a FIFO or another special file where the object should be, and what it
    /// is in words ([`not_a_file`]): a restore does not read it, and fails the file.
    NotAFile(PathBuf, &'static str),
    /// A symbolic link, not followed.
    Link(PathBuf),
    /// Nothing there (or a contentID that cannot name an object).
    Missing,
}

/// What a thing that is not a regular file is, in words, for the messages that say an
/// object is one ("object ... is a FIFO (named pipe), not a file").
pub fn not_a_file(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a folder"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_char_device() {
        "a character device"
    } else {
        "a special file"
    }
}

/// The first of `paths` whose type passes `fits`; a path that cannot be looked at for lack
/// of permission is an error, unless a later one fits.
fn find_first(
    paths: &[PathBuf],
    fits: impl Fn(&std::fs::FileType) -> bool,
) -> Result<Option<PathBuf>, SourceError> {
    let mut denied = None;
    for p in paths {
        match kind_at(p) {
            Ok(Some(t)) if fits(&t) => return Ok(Some(p.clone())),
            Ok(_) => {}
            Err(e) => {
                denied.get_or_insert(e);
            }
        }
    }
    denied.map_or(Ok(None), Err)
}

/// A contentID is used as a file name inside the object store; one that could climb out of it
/// (a `/`, `..`, NUL) is never looked up.
pub fn is_safe_content_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".." && !id.contains(['/', '\\', '\0'])
}

/// The folder of a dump that a file given as SOURCE sits in: the nearest of its three
/// closest folders under which the database is found (`restsdk/data` for its
/// `db/index.db`, the demo's folder for its `demo-manifest.json`).
fn dump_near_file(file: &Path) -> Option<PathBuf> {
    let parents = file.ancestors().skip(1).take(3);
    parents
        .map(|p| match p.as_os_str().is_empty() {
            true => Path::new("."),
            false => p,
        })
        .find(|p| {
            candidate_data_dirs(p)
                .iter()
                .any(|d| d.join("db/index.db").is_file())
        })
        .map(Path::to_path_buf)
}

/// What to give instead of a SOURCE one level off: the `db` folder, or a folder holding the
/// dump one level down (a demo folder, a mount point's parent); a file is refused before
/// ([`SourceError::SourceIsFile`]). A fixed sentence when nothing nearby looks like a dump.
fn source_hint(root: &Path) -> String {
    let otherwise = " Give the mounted My Cloud data partition, its restsdk folder or restsdk/data as SOURCE, or pass --db PATH if the database is elsewhere".to_string();
    let as_source = |dir: &Path| format!(" Did you mean {} as SOURCE?", dir.display());
    if root.join("index.db").is_file() {
        if let Some(data) = root.parent().filter(|d| d.join("files").is_dir()) {
            return as_source(data);
        }
        return format!(
            " {} holds an index.db: pass it with --db {} and the object folder with --files",
            root.display(),
            root.join("index.db").display()
        );
    }
    // One level down, in a bounded look (a disk's root may hold thousands of entries).
    let below = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .take(1000);
    for entry in below {
        let dir = entry.path();
        let found = candidate_data_dirs(&dir)
            .iter()
            .any(|d| d.join("db/index.db").is_file());
        if found {
            return as_source(&dir);
        }
    }
    otherwise
}

fn list(paths: impl Iterator<Item = PathBuf>) -> String {
    paths
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(root: &Path, data: &str) {
        let d = root.join(data);
        std::fs::create_dir_all(d.join("db")).unwrap();
        std::fs::create_dir_all(d.join("files/a")).unwrap();
        std::fs::write(d.join("db/index.db"), b"").unwrap();
    }

    /// Round 15's review: a SOURCE one level off (the database file, its `db` folder, the
    /// folder above the dump) got only the list of places looked at.
    #[test]
    fn a_source_one_level_off_gets_the_right_one_suggested() {
        let t = tempfile::tempdir().unwrap();
        let dump = t.path().join("dump");
        make(&dump, "restsdk/data");
        let data = dump.join("restsdk/data");
        for (given, suggested) in [
            (data.join("db/index.db"), &data),
            (data.join("db"), &data),
            (t.path().to_path_buf(), &dump),
        ] {
            let e = SourceLayout::discover(&given, None, None).unwrap_err();
            let said = e.to_string();
            assert!(
                said.contains(&format!("Did you mean {} as SOURCE?", suggested.display())),
                "{}: {said}",
                given.display()
            );
        }
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let said = SourceLayout::discover(&empty, None, None)
            .unwrap_err()
            .to_string();
        assert!(said.contains("pass --db PATH"), "{said}");
    }

    #[test]
    fn discovers_from_partition_restsdk_and_data_folders() {
        let t = tempfile::tempdir().unwrap();
        make(t.path(), "restsdk/data");
        for start in ["", "restsdk", "restsdk/data"] {
            let l = SourceLayout::discover(&t.path().join(start), None, None).unwrap();
            assert!(
                l.db.ends_with("restsdk/data/db/index.db"),
                "{start}: {:?}",
                l.db
            );
            assert!(l.files.ends_with("restsdk/data/files"));
            assert!(l.backup_db.is_none());
        }
    }

    #[test]
    fn notes_backup_database() {
        let t = tempfile::tempdir().unwrap();
        make(t.path(), "restsdk/data");
        let b = t.path().join("restsdk/data/dbBackup");
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("index.db"), b"").unwrap();
        let l = SourceLayout::discover(t.path(), None, None).unwrap();
        assert!(l.backup_db.unwrap().ends_with("dbBackup/index.db"));
    }

    #[test]
    fn error_lists_where_it_looked() {
        let t = tempfile::tempdir().unwrap();
        let e = SourceLayout::discover(t.path(), None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("restsdk/data/db/index.db"), "{e}");
        assert!(e.contains("--db"), "{e}");
    }

    #[test]
    fn object_lookup_sharded_then_flat_and_never_escapes() {
        let t = tempfile::tempdir().unwrap();
        make(t.path(), "");
        std::fs::write(t.path().join("files/a/abc"), b"x").unwrap();
        std::fs::write(t.path().join("files/bcd"), b"x").unwrap();
        let l = SourceLayout::discover(t.path(), None, None).unwrap();
        let find = |c: &str| l.find_object(c).unwrap();
        assert!(find("abc").unwrap().ends_with("files/a/abc"));
        assert!(find("bcd").unwrap().ends_with("files/bcd"));
        assert!(find("zzz").is_none());
        assert!(find("../db").is_none());
        assert!(find("").is_none());
        assert_eq!(l.find_object_len("abc").unwrap().unwrap().1, 1);
    }
}
