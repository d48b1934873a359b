//! A parallel walk of a destination tree.
//!
//! Over NFS or SMB every `readdir` and `stat` is a round trip, so a single-threaded walk of a
//! million files takes hours (the predecessor's rebuild pass took 2 h 5 min). Here N threads
//! share a queue of folders; each lists a folder, reports its files, and queues its
//! subfolders. The walk ends when the queue is empty and no thread is busy. Files are handed
//! to the caller in batches as they are found, so the caller decides what to keep of a
//! million of them (regen keeps 48 bytes each, not the paths).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// What stands on DEST where a folder of a restored path goes, when it is not a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Relative to DEST, `/`-separated.
    pub rel_path: String,
    /// "a symbolic link", "a file", or "something that is not a folder".
    pub what: &'static str,
}

/// The folders of DEST looked at so far, without following links (one `lstat` each, shared
/// between threads): the restore neither follows a symbolic link on DEST (it could lead
/// outside) nor makes a folder where a file stands, so `verify` and `regen` must not find a
/// file through either. Remembered per folder path, so a million files in a few thousand
/// folders cost a few thousand `lstat`s.
#[derive(Default)]
pub struct DestFolders(Mutex<std::collections::HashMap<String, FolderLook>>);

/// One folder's look, made once: threads asking for a folder another thread is looking at
/// wait for its answer instead of asking the disk again (files come folder by folder, so
/// every reader meets a new folder at about the same time).
type FolderLook = std::sync::Arc<std::sync::OnceLock<Option<Blocker>>>;

impl DestFolders {
    /// What stands at `rel_dir` (a folder path relative to `dest`) or at one of its
    /// parents, if something other than a folder does. A folder that is absent or cannot
    /// be read is no blocker: the files below it say so themselves.
    pub fn blocker(&self, dest: &Path, rel_dir: &str) -> Option<Blocker> {
        let mut end = 0;
        while end < rel_dir.len() {
            end = rel_dir[end..].find('/').map_or(rel_dir.len(), |i| end + i);
            let prefix = &rel_dir[..end];
            end += 1;
            let look = {
                let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
                match seen.get(prefix) {
                    Some(look) => look.clone(),
                    None => seen.entry(prefix.to_string()).or_default().clone(),
                }
            };
            let found = look.get_or_init(|| {
                std::fs::symlink_metadata(dest.join(prefix))
                    .ok()
                    .filter(|m| !m.is_dir())
                    .map(|m| Blocker {
                        rel_path: prefix.to_string(),
                        what: if m.is_symlink() {
                            "a symbolic link"
                        } else if m.is_file() {
                            "a file"
                        } else {
                            "something that is not a folder"
                        },
                    })
            });
            if found.is_some() {
                return found.clone();
            }
        }
        None
    }

    /// [`DestFolders::blocker`] of the folder holding `rel_file`.
    pub fn blocker_of_file(&self, dest: &Path, rel_file: &str) -> Option<Blocker> {
        let (dir, _) = rel_file.rsplit_once('/')?;
        self.blocker(dest, dir)
    }
}

/// A regular file found by the walk.
#[derive(Debug, Clone)]
pub struct Found {
    /// Path relative to the walk's root, `/`-separated.
    pub rel_path: String,
    pub size: u64,
    pub mtime_ms: i64,
    /// When its inode last changed (`crate::restore::copy::ctime_ms`).
    pub ctime_ms: i64,
}

/// Files a walking thread gathers before handing them over.
const BATCH: usize = 4096;

/// Walks `root` with `threads` threads, hands every regular file to `sink` (in batches, from
/// the walking threads; the sink drains the batch), and returns the folders it could not read
/// (with the error). Symlinks are not followed.
pub fn walk(
    root: &Path,
    threads: usize,
    sink: impl Fn(&mut Vec<Found>) + Sync,
) -> Vec<(PathBuf, std::io::Error)> {
    let queue: Mutex<Vec<PathBuf>> = Mutex::new(vec![root.to_path_buf()]);
    let busy = AtomicUsize::new(0);
    let errors: Mutex<Vec<(PathBuf, std::io::Error)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut local: Vec<Found> = Vec::new();
                loop {
                    let next = {
                        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
                        let d = q.pop();
                        if d.is_some() {
                            busy.fetch_add(1, Ordering::SeqCst);
                        }
                        d
                    };
                    let Some(dir) = next else {
                        if busy.load(Ordering::SeqCst) == 0 {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                        continue;
                    };
                    match std::fs::read_dir(&dir) {
                        Ok(rd) => {
                            let mut subdirs = Vec::new();
                            for entry in rd.flatten() {
                                let Ok(ft) = entry.file_type() else { continue };
                                if ft.is_dir() {
                                    subdirs.push(entry.path());
                                } else if ft.is_file() {
                                    let path = entry.path();
                                    let Ok(m) = entry.metadata() else { continue };
                                    let rel = path
                                        .strip_prefix(root)
                                        .map(|p| p.to_string_lossy().into_owned())
                                        .unwrap_or_default();
                                    local.push(Found {
                                        rel_path: rel,
                                        size: m.len(),
                                        mtime_ms: mtime_ms(&m),
                                        ctime_ms: crate::restore::copy::ctime_ms(&m),
                                    });
                                    if local.len() >= BATCH {
                                        sink(&mut local);
                                        local.clear();
                                    }
                                }
                            }
                            queue
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend(subdirs);
                        }
                        Err(e) => errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((dir, e)),
                    }
                    busy.fetch_sub(1, Ordering::SeqCst);
                }
                if !local.is_empty() {
                    sink(&mut local);
                }
            });
        }
    });
    errors.into_inner().unwrap_or_else(|e| e.into_inner())
}

pub fn mtime_ms(m: &std::fs::Metadata) -> i64 {
    match m
        .modified()
        .map(|t| t.duration_since(std::time::UNIX_EPOCH))
    {
        Ok(Ok(d)) => d.as_millis() as i64,
        Ok(Err(e)) => -(e.duration().as_millis() as i64),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_file_in_a_nested_tree() {
        let t = tempfile::tempdir().unwrap();
        let mut expect = Vec::new();
        for i in 0..30 {
            let d = t.path().join(format!("a{}/b{}/c{i}", i % 3, i % 5));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("f.txt"), vec![0u8; i]).unwrap();
            expect.push(format!("a{}/b{}/c{i}/f.txt", i % 3, i % 5));
        }
        std::fs::create_dir_all(t.path().join("empty/deeper")).unwrap();
        let found = Mutex::new(Vec::new());
        let errors = walk(t.path(), 4, |batch| found.lock().unwrap().append(batch));
        assert!(errors.is_empty());
        let found = found.into_inner().unwrap();
        let mut got: Vec<String> = found.iter().map(|f| f.rel_path.clone()).collect();
        got.sort();
        expect.sort();
        assert_eq!(got, expect);
        assert!(found.iter().any(|f| f.size == 29));
    }
}
