//! Regenerating the checkpoint from what is actually on the destination.
//!
//! For when the checkpoint is lost, or the destination was written by another tool (the
//! Python predecessor uses the same layout). The destination is walked in parallel; every
//! planned file found with the expected size and date is adopted as done, every one that
//! differs is marked to be replaced by the next restore (which compares one with the
//! planned size first, and only re-dates it if it holds the object's bytes), and the rest
//! is reported: planned files that are absent, files the plan does not know, and likely
//! moves (an absent file whose name and size appear elsewhere). Nothing is deleted or moved.
//! Objects are found as the restore finds them (`ObjectFolders::usable_object`): an absent
//! file with none a restore can copy (a link out of the object store, a FIFO in its place)
//! is said apart, in the restore's words, never promised a copy; `--content` reads only
//! what the restore would copy.
//!
//! The rebuild is one transaction: `status` reads the old records until it commits, and a
//! regen killed on the way leaves them as they were. Only the records of the files its
//! selection looks at are replaced (a regen with `--only`, or without `--include-trash`,
//! keeps the others'). A DEST where more files at planned paths differ from the plan than
//! match it is refused, not marked: marked "redo", the next restore would replace them all,
//! and they are far more likely another device's or another naming's files than damage.
//! So is a DEST on another mount than the one the checkpoint records (a share not mounted
//! again), as a restore refuses it (`state::check_dest_on_same_mount`). A regen refused
//! (or failing) once it opened the checkpoint gives up its run (`Checkpoint::discard`): it
//! adds no run to a checkpoint that was there, and where there was none it removes the one
//! it created and the state folder it made, leaving nothing behind.
//!
//! Memory: what the walk finds is held as 48 bytes per file (`OnDest`); the paths go to an
//! unnamed scratch file in the state folder (nothing is left after a kill) and are read back
//! only for the files the plan does not know. Held as strings, the paths of 1.35M files were most of regen's 515 MB peak.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::RestoreConfig;
use crate::plan::Plan;
use crate::restore::copy::{changed_since, is_temp_name, mtime_matches_ms, ObjectFolders};
use crate::source::index::Index;
use crate::state::{
    done_key, look_for_restored, path_key, redo_key, Checkpoint, KeyHashing, Outcome, Record,
    StateError, StateLock, RESTORED_SAMPLE,
};
use crate::walk::Found;

/// Whether the file at `rel` in DEST holds the object's bytes; `true` when there is no
/// object a restore can copy or it cannot be read (nothing to compare with: kept, as the
/// restore keeps it). The object is found as the restore finds it: a file outside the
/// object store (a link out of it, or out of a shard folder) is never read as the object,
/// nor is a FIFO opened for reading.
fn holds_object(
    cfg: &RestoreConfig,
    objects: &ObjectFolders,
    content_id: &str,
    rel: &str,
    len: u64,
) -> bool {
    let object = match objects.usable_object(&cfg.source, content_id) {
        Ok(Ok((p, _))) => ObjectFolders::open_found(&p),
        _ => return true,
    };
    match object {
        Ok(o) => crate::restore::copy::same_bytes(&o, &cfg.dest.join(rel), len).unwrap_or(false),
        Err(_) => true,
    }
}

/// What regen found.
#[derive(Debug, Default, serde::Serialize)]
pub struct RegenReport {
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub state_dir: std::path::PathBuf,
    pub planned_files: u64,
    pub found_on_dest: u64,
    pub adopted: u64,
    /// Planned files present but with another size or date: (path, why).
    pub differs: Vec<(String, String)>,
    /// Planned files not on the destination (the next restore copies them).
    pub absent: Vec<String>,
    /// Planned files not on the destination with no object in the source that a restore
    /// can copy (none, or a link out of the object store, a folder, a FIFO where it should
    /// be): (path, why, and what the restore does: lists it as missing or failed).
    pub absent_no_object: Vec<(String, String)>,
    /// Planned files whose place holds something that is not a file (a folder, a link): the
    /// restore leaves it alone and fails the file, so the user must move it: (path, what).
    pub in_the_way: Vec<(String, String)>,
    /// Files on the destination that the plan does not know.
    pub unknown: Vec<String>,
    /// (planned path, path where a file with the same name and size was found).
    pub likely_moved: Vec<(String, String)>,
    pub temp_leftovers: Vec<String>,
    /// Planned files regen could not look at (below a folder it could not read, or `lstat`
    /// failed): neither adopted nor promised to be copied: (path, why).
    pub not_looked_at: Vec<(String, String)>,
    pub unreadable_folders: Vec<String>,
    pub walk_seconds: f64,
    pub total_seconds: f64,
    /// What the user should know about how the index was read (its write-ahead log).
    pub notes: Vec<String>,
}

fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The name the scratch file of paths has in the state folder where it cannot be made
/// unnamed (see [`open_scratch`]), for as long as it takes to remove it.
const PATHS_FILE: &str = "regen-paths.tmp";

/// A file the walk found: where its path sits in the scratch file, its size and date.
#[derive(Clone, Copy)]
struct Seen {
    at: u64,
    len: u32,
    size: u64,
    mtime_ms: i64,
    /// Changed since a crash's doubt began (`changed_since`): compared before adopted.
    unsure: bool,
}

/// What the walk found, keyed by an xxh3-128 hash of the path (the kind of key the
/// checkpoint already trusts), with the paths themselves in a scratch file.
struct OnDest {
    files: HashMap<u128, Seen, KeyHashing>,
    paths: BufWriter<File>,
    written: u64,
    temp_leftovers: Vec<String>,
    write_error: Option<std::io::Error>,
    /// Every file found, temporary leftovers included.
    count: u64,
    /// Since when files may be a crashed run's copies (`Checkpoint::unsure_since`).
    unsure_since: Option<i64>,
}

impl OnDest {
    fn add(&mut self, batch: &mut Vec<Found>) {
        for f in batch.drain(..) {
            self.count += 1;
            if is_temp_name(base_name(&f.rel_path)) {
                self.temp_leftovers.push(f.rel_path);
                continue;
            }
            if self.write_error.is_some() {
                continue;
            }
            if let Err(e) = self.paths.write_all(f.rel_path.as_bytes()) {
                self.write_error = Some(e);
                continue;
            }
            let seen = Seen {
                at: self.written,
                len: f.rel_path.len() as u32,
                size: f.size,
                mtime_ms: f.mtime_ms,
                unsure: changed_since(f.ctime_ms, self.unsure_since),
            };
            self.written += f.rel_path.len() as u64;
            self.files.insert(path_key(f.rel_path.as_bytes()), seen);
        }
    }
}

fn scratch_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot write the scratch file {}: {e}; regen keeps the destination's paths there while it works (free some space there, or pass another --state-dir)",
        path.display()
    )
}

/// The scratch file of paths, without a name, so that nothing is left however regen ends:
/// the kernel frees it with its last descriptor, after kill -9 too (a named one, removed on
/// the way out, stayed behind a killed regen). Made with `O_TMPFILE` in the state folder;
/// where its filesystem refuses that (NFS, older kernels), made under [`PATHS_FILE`] and
/// removed at once. A file of that name is removed first: left by a regen before round 16,
/// or killed in that instant (regen holds the state lock: no other is using it). Returns
/// the path said in messages, and the file.
fn open_scratch(state_dir: &Path) -> anyhow::Result<(PathBuf, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = state_dir.join(PATHS_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(scratch_error(&path, e)),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if let Ok(file) = options
        .clone()
        .custom_flags(libc::O_TMPFILE)
        .open(state_dir)
    {
        return Ok((path, file));
    }
    let file = options
        .create_new(true)
        .open(&path)
        .map_err(|e| scratch_error(&path, e))?;
    std::fs::remove_file(&path).map_err(|e| scratch_error(&path, e))?;
    Ok((path, file))
}

/// Walks the destination, rebuilds the checkpoint, and reports. With `content`, every file
/// found with the planned size and date is compared with its object, recorded or not.
///
/// The rebuild is one transaction of the checkpoint ([`Checkpoint::begin_rebuild`]): until it
/// commits, `status` and a killed regen see the records as they were, and a refused regen
/// leaves them so, with no run added ([`Checkpoint::discard`]; where there was no
/// checkpoint, it leaves none).
pub fn regen(cfg: &RestoreConfig, threads: usize, content: bool) -> anyhow::Result<RegenReport> {
    let start = std::time::Instant::now();
    let index = Index::open(&cfg.source.db, cfg.source.backup_db.as_deref())?;
    let plan = Plan::build(&index, cfg.plan.clone())?;
    // A DEST without any of the files the checkpoint records is far more often a disk not
    // mounted, or the wrong folder, than a destination really emptied: rebuilding would
    // forget every record, and the next restore would copy everything again, into the
    // empty folder. The look is the one a resume and `status` make (`look_for_restored`).
    let lock = StateLock::take(&cfg.state_dir)?;
    // DEST on another mount than the last run placed files on (a share not mounted again,
    // its bare mount point left): refused as a restore refuses it, even with no file
    // recorded yet for the look below to miss. No option of regen accepts the change, as
    // `--fresh` does for a restore: the records regen writes are what every later resume
    // trusts without looking, and a bare mount point cannot be told from a disk chosen on
    // purpose by what is on it. A restore moved on purpose starts over with
    // `restore --fresh`, which adopts what it finds there by size and date, as regen does,
    // and records the new mount. A checkpoint too damaged to read records no mount.
    let recorded_on = match lock.meta(crate::state::DEST_ON_KEY) {
        Ok(on) => on,
        Err(e) if e.is_damaged() => None,
        Err(e) => return Err(e.into()),
    };
    crate::state::check_dest_on_same_mount(
        recorded_on.as_deref(),
        &cfg.dest,
        &cfg.dest_fs,
        &format!(
            " and run the same command (the checkpoint is in {}). Nothing was changed. If the restore moved to another disk on purpose, run `restore --fresh` with the same paths instead: it starts the checkpoint over there, keeping the files already there with the right size and date",
            cfg.state_dir.display()
        ),
    )?;
    // A checkpoint too damaged to read is what regen is for: rebuilt from DEST, as after a
    // crash (a damaged checkpoint may be a power cut's), every file compared with its object.
    let (sample, damaged) = match lock.restored_sample(RESTORED_SAMPLE, &cfg.dest) {
        Ok(sample) => (sample, false),
        Err(e) if e.is_damaged() => (Vec::new(), true),
        Err(e) => return Err(e.into()),
    };
    let found = look_for_restored(sample, &cfg.dest);
    if found.none_there() {
        anyhow::bail!(
            "{} holds none of the {} files the checkpoint in {} records as restored there (for example {}): is the destination mounted? Nothing was changed. If they really are gone, start over with `restore --fresh`",
            cfg.dest.display(),
            found.looked_for,
            cfg.state_dir.display(),
            cfg.dest.join(&found.gone[0]).display()
        );
    }
    let (mut ckpt, damaged) = match lock.open(damaged, &cfg.command_line) {
        Ok(c) => (c, damaged),
        Err(e) if e.is_damaged() => (
            StateLock::take(&cfg.state_dir)?.open(true, &cfg.command_line)?,
            true,
        ),
        Err(e) => return Err(e.into()),
    };
    // Should this run be left behind in a call to a DEST that does not answer, a checkpoint
    // it created goes as the process ends (`remove_left_behind`).
    let _unfinished = ckpt.until_finished();
    let before = ckpt.begin_rebuild()?;
    match rebuild(cfg, &index, &plan, &mut ckpt, threads, content, damaged) {
        Ok(mut rep) => {
            ckpt.finish_rebuild(before)?;
            rep.total_seconds = start.elapsed().as_secs_f64();
            Ok(rep)
        }
        Err(e) => {
            // What says why matters more than a failed rollback (which SQLite does anyway
            // when the connection closes).
            let _ = ckpt.abandon_rebuild();
            // Nor the run: a checkpoint this regen created holds nothing now, and goes with
            // the state folder it made (`status` said "no file restored yet", exit 0, until
            // round 20); one that was there gets no run that did nothing.
            ckpt.discard();
            Err(e)
        }
    }
}

/// The part of [`regen`] inside its transaction: walks DEST, writes the new records, and
/// reports; an error leaves the transaction to be rolled back.
fn rebuild(
    cfg: &RestoreConfig,
    index: &Index,
    plan: &Plan,
    ckpt: &mut Checkpoint,
    threads: usize,
    content: bool,
    damaged: bool,
) -> anyhow::Result<RegenReport> {
    match ckpt.bind(
        &cfg.source
            .db
            .canonicalize()
            .unwrap_or_else(|_| cfg.source.db.clone()),
        &cfg.dest,
    ) {
        Err(StateError::Mismatch { dir, key, was, .. }) => anyhow::bail!(
            "the checkpoint in {} belongs to another restore ({key} was {was}); nothing was changed. regen builds a checkpoint for this SOURCE and DEST: pass --state-dir with an empty folder (and the same --state-dir to the restores that follow)",
            dir.display()
        ),
        r => r?,
    }
    ckpt.record_objects(&cfg.source.files)?;
    // Files found that the checkpoint does not record and that changed since a crashed run
    // began are compared with their objects (below); taken before the walk, which marks them.
    let unsure_since = crate::restore::unsure_since(ckpt.unsure_since()?, cfg);
    let mut rep = RegenReport {
        state_dir: cfg.state_dir.clone(),
        notes: plan.index_notes(index),
        ..Default::default()
    };
    if damaged {
        rep.notes.push(format!(
            "the checkpoint in {} could not be read (damaged): it was rebuilt from the destination, and every file found there was compared with its object",
            cfg.state_dir.display()
        ));
    }

    let (scratch, paths_file) = open_scratch(&cfg.state_dir)?;
    let walk_start = std::time::Instant::now();
    // Sized for the files the plan expects, so the table is not rebuilt while growing (which
    // holds the old and the new table at once); untouched room costs no memory.
    let expected = index.row_count()?.saturating_sub(plan.folder_rows()) as usize;
    let found = Mutex::new(OnDest {
        files: HashMap::with_capacity_and_hasher(expected, KeyHashing::default()),
        paths: BufWriter::with_capacity(1 << 20, paths_file.try_clone()?),
        written: 0,
        temp_leftovers: Vec::new(),
        write_error: None,
        count: 0,
        unsure_since,
    });
    let errors = crate::walk::walk(&cfg.dest, threads, |batch| {
        found.lock().unwrap_or_else(|e| e.into_inner()).add(batch)
    });
    let mut found = found.into_inner().unwrap_or_else(|e| e.into_inner());
    let flushed = found.paths.flush();
    if let Some(e) = found.write_error.take().or(flushed.err()) {
        return Err(scratch_error(&scratch, e));
    }
    rep.walk_seconds = walk_start.elapsed().as_secs_f64();
    // Relative to DEST, with their `/`: files below them were not seen by the walk.
    let unread: Vec<String> = errors
        .iter()
        .filter_map(|(p, _)| {
            let rel = p.strip_prefix(&cfg.dest).ok()?.to_string_lossy();
            Some(if rel.is_empty() {
                String::new()
            } else {
                format!("{rel}/")
            })
        })
        .collect();
    rep.unreadable_folders = errors
        .into_iter()
        .map(|(p, e)| format!("{}: {e}", p.display()))
        .collect();
    rep.temp_leftovers = std::mem::take(&mut found.temp_leftovers);
    rep.found_on_dest = found.count;
    let mut on_dest = found.files;

    // What the checkpoint records was flushed to DEST before it was recorded. After a run
    // that did not end cleanly (killed, a power cut), other files found with the planned size
    // and date that changed since it began are compared with their objects: ext4 keeps the
    // name, size and date of a file whose data a power cut lost (zeros), which matching by
    // size and date would adopt. A file an earlier regen (or `regen --content`) marked to be
    // copied again is compared too: its size and date may well be right, its bytes were not.
    let (recorded, marked) = ckpt.keys()?;
    ckpt.begin_copy()?;
    ckpt.add_selection(plan.options())?;
    let delay = crate::restore::copy::Faults::from_env().regen_delay_ms;
    let mut adopted: Vec<Record> = Vec::new();
    let mut redo: Vec<(Record, String)> = Vec::new();
    // Of `redo`, the files found with the planned size under another date.
    let mut only_date_differs = 0u64;
    // (path, size, why no restore can copy it: None when one can).
    let mut absent: Vec<(String, u64, Option<String>)> = Vec::new();
    // The object store's shard folders, looked at as the restore does (links out of it).
    let objects = ObjectFolders::links_out_of(&cfg.source.files);
    let mut failure: Option<anyhow::Error> = None;
    // Files found at their planned path though the walk listed them under another spelling
    // (device, inode): not "unknown" below.
    let mut spelled_otherwise: std::collections::HashSet<(u64, u64)> = Default::default();
    // DEST's folders, looked at without following links (for the two lookups by path below).
    let folders = crate::walk::DestFolders::default();
    plan.for_each_file_any_order(index, |f| {
        if failure.is_some() {
            return;
        }
        // Outside the selection: regen learns nothing about it, so its records stay (and
        // it is no file "the plan does not know").
        if f.skip.is_some() {
            on_dest.remove(&path_key(f.rel_path.as_bytes()));
            if let Err(e) = ckpt.keep_records_of(&f.id) {
                failure = Some(e.into());
            }
            return;
        }
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        rep.planned_files += 1;
        let rec = Record {
            id: f.id,
            rel_path: f.rel_path,
            size: f.size,
            mtime_ms: f.mtime_ms,
            outcome: Outcome::Adopted,
            error: None,
        };
        let seen = on_dest
            .remove(&path_key(rec.rel_path.as_bytes()))
            .map(|s| (s.size, s.mtime_ms, s.unsure))
            .or_else(|| {
                // Listed under another spelling: a destination that folds case (NTFS or a
                // share) lists names as it stores them, and finds the file by the plan's.
                // Not through a symbolic link standing for one of its folders (the walk
                // does not follow one, nor does the restore): that file is elsewhere.
                if folders.blocker_of_file(&cfg.dest, &rec.rel_path).is_some() {
                    return None;
                }
                let m = std::fs::symlink_metadata(cfg.dest.join(&rec.rel_path)).ok()?;
                if !m.is_file() {
                    return None;
                }
                use std::os::unix::fs::MetadataExt;
                spelled_otherwise.insert((m.dev(), m.ino()));
                let unsure = changed_since(crate::restore::copy::ctime_ms(&m), unsure_since);
                Some((m.len(), crate::walk::mtime_ms(&m), unsure))
            });
        match seen {
            Some((size, mtime, unsure))
                if size == rec.size && mtime_matches_ms(mtime, rec.mtime_ms) =>
            {
                let other_bytes_seen =
                    content || marked.contains(&redo_key(&rec.id, &rec.rel_path));
                let unsure = other_bytes_seen
                    || unsure
                        && !recorded.contains(&done_key(
                            &rec.id,
                            &rec.rel_path,
                            rec.size,
                            rec.mtime_ms,
                        ));
                match f.content_id.as_deref() {
                    Some(cid)
                        if unsure && !holds_object(cfg, &objects, cid, &rec.rel_path, size) =>
                    {
                        let why = if other_bytes_seen {
                            "on the destination with the planned size and date but other bytes than its object"
                        } else {
                            "on the destination with the planned size and date but not the object's bytes (its data lost in a crash or power cut?)"
                        }
                        .to_string();
                        rep.differs.push((rec.rel_path.clone(), why.clone()));
                        redo.push((rec, why));
                    }
                    _ => {
                        rep.adopted += 1;
                        adopted.push(rec)
                    }
                }
            }
            Some((size, mtime, _)) => {
                let planned = match rec.mtime_ms {
                    Some(ms) => format!("date {}", crate::report::human_ms(ms)),
                    None => "no planned date".to_string(),
                };
                let found = crate::report::human_ms(mtime);
                // Only its date differs: the bytes are compared before anything is replaced.
                if size == rec.size {
                    only_date_differs += 1;
                }
                let why = if size == rec.size {
                    format!(
                        "on the destination with the planned size but the date {found}; the plan expects {planned}: the restore gives it the planned date if it holds the object's bytes, else replaces it"
                    )
                } else {
                    format!(
                        "on the destination with {size} bytes and the date {found}; the plan expects {} bytes and {planned}",
                        rec.size
                    )
                };
                rep.differs.push((rec.rel_path.clone(), why.clone()));
                redo.push((rec, why));
            }
            // Said apart when there is nothing a restore can copy it from (found as the
            // restore finds it), with why: the restore lists it as missing or failed, it
            // copies nothing. A source that cannot be looked at is no answer: the restore
            // tries it.
            None => {
                let no_object = match f.content_id.as_deref() {
                    Some(c) => match objects.usable_object(&cfg.source, c) {
                        Ok(Err(no)) => Some(no.said()),
                        _ => None,
                    },
                    None if rec.size == 0 => None,
                    None => Some(
                        "the database row has no contentID (no object was ever stored): a restore lists this file as missing"
                            .to_string(),
                    ),
                };
                absent.push((rec.rel_path, rec.size, no_object))
            }
        }
        if adopted.len() >= 4096 {
            if let Err(e) = ckpt.record(&adopted) {
                failure = Some(e.into());
            }
            adopted.clear();
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    // More files at their planned paths that the next restore would replace (another size,
    // or bytes seen to differ) than files that match the plan: another device's files, or a
    // restore named otherwise. Marked "redo", every one of them would be replaced (a user's
    // own files among them). Files whose date alone differs count with the matching ones: a
    // copy that did not keep dates (`cp -r`) looks so, and the restore compares their bytes
    // before it replaces any.
    let replaced = redo.len() as u64 - only_date_differs;
    if replaced > rep.adopted + only_date_differs {
        anyhow::bail!(
            "{} does not look like a restore of the database {}: of the files found at their planned paths, {} would be replaced (another size, or other bytes) and only {} match the plan. The wrong SOURCE or DEST, or other --names than the restore used? {}. regen marks the files that differ to be replaced by the next restore, while `restore` itself never replaces a file it did not write unless given --overwrite: check the paths and options, and run regen with those the restore used",
            cfg.dest.display(),
            cfg.source.db.display(),
            crate::report::count(replaced),
            crate::report::count(rep.adopted + only_date_differs),
            // A damaged checkpoint was set aside before the rebuild began (it could not be
            // read); nothing on DEST was touched either way.
            match damaged {
                true => "Nothing on DEST was changed; the damaged checkpoint, which could not be read, was already replaced by an empty one",
                false => "Nothing was changed",
            }
        );
    }
    // What is left is what the plan does not know, usually nothing: give the room back.
    on_dest.shrink_to_fit();
    ckpt.record(&adopted)?;
    ckpt.record_redo(&redo)?;
    drop(adopted);
    drop(redo);

    // The files the plan does not know, by path (read back from the scratch file).
    let mut unknown: Vec<(String, u64)> = Vec::with_capacity(on_dest.len());
    for seen in on_dest.into_values() {
        let mut buf = vec![0u8; seen.len as usize];
        paths_file.read_exact_at(&mut buf, seen.at).map_err(|e| {
            anyhow::anyhow!(
                "cannot read back the scratch file {}: {e}",
                scratch.display()
            )
        })?;
        let path = String::from_utf8_lossy(&buf).into_owned();
        if !spelled_otherwise.is_empty() {
            use std::os::unix::fs::MetadataExt;
            if let Ok(m) = std::fs::symlink_metadata(cfg.dest.join(&path)) {
                if spelled_otherwise.contains(&(m.dev(), m.ino())) {
                    continue;
                }
            }
        }
        unknown.push((path, seen.size));
    }
    drop(paths_file);

    // Likely moves: an absent planned file whose name and size sit elsewhere.
    let mut by_name_size: HashMap<(&str, u64), Vec<&str>> = HashMap::new();
    for (path, size) in &unknown {
        by_name_size
            .entry((base_name(path), *size))
            .or_default()
            .push(path);
    }
    for (path, size, _) in &absent {
        if let Some(cands) = by_name_size.get(&(base_name(path), *size)) {
            for c in cands {
                rep.likely_moved.push((path.clone(), c.to_string()));
            }
        }
    }
    // Absent as files; something else may stand there, or above (one `lstat` per absent
    // file): the restore can copy only what is truly absent.
    for (path, _, no_object) in absent {
        let below_unread = unread.iter().find(|u| path.starts_with(u.as_str()));
        // A folder of its path that is a file or a symbolic link: the restore fails the file.
        if let Some(b) = folders.blocker_of_file(&cfg.dest, &path) {
            let why = format!(
                "{} stands at {}, where a folder of this file's path goes: the restore leaves it alone (it follows no link) and fails the file; move it away first",
                b.what, b.rel_path
            );
            rep.in_the_way.push((path, why));
            continue;
        }
        match std::fs::symlink_metadata(cfg.dest.join(&path)) {
            Ok(m) => rep.in_the_way.push((
                path,
                format!("{} stands where this file goes: the restore leaves it alone and fails the file; move it away first", not_a_file(&m)),
            )),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => rep.not_looked_at.push((
                path,
                format!("cannot be looked at on the destination ({e}): neither adopted nor copied until it can be (check the permissions of its folder)"),
            )),
            Err(_) if below_unread.is_some() => rep.not_looked_at.push((
                path.clone(),
                format!(
                    "below the folder {} that could not be read: it may be there; neither adopted nor copied until that folder can be read",
                    below_unread.map(|u| u.trim_end_matches('/')).unwrap_or_default()
                ),
            )),
            Err(_) => match no_object {
                None => rep.absent.push(path),
                Some(why) => rep.absent_no_object.push((path, why)),
            },
        }
    }
    drop(by_name_size);
    let mut unknown: Vec<String> = unknown.into_iter().map(|(p, _)| p).collect();
    unknown.sort();
    rep.unknown = unknown;
    rep.absent.sort();
    rep.absent_no_object.sort();
    rep.in_the_way.sort();
    rep.not_looked_at.sort();
    rep.likely_moved.sort();
    if !plan.options().narrowed() {
        // For `status`, as a restore over everything sets them: how many files there are to
        // restore, and the part of DEST this selection leaves out (the Trash an earlier run
        // restored with --include-trash, whose records stay).
        ckpt.set_meta(crate::state::SELECTED_KEY, &rep.planned_files.to_string())?;
        let left_out = match plan.trash_path() {
            Some(t) if !plan.options().include_trash => format!("{t}/"),
            _ => String::new(),
        };
        ckpt.set_meta(crate::state::LEFT_OUT_KEY, &left_out)?;
        // Every file of the selection looked at, the unsure ones compared.
        if rep.unreadable_folders.is_empty() {
            ckpt.settle_unsure(plan.options().include_trash)?;
        }
    }
    ckpt.end_run(true)?;
    Ok(rep)
}

/// What a non-file found where a file goes is, in words.
fn not_a_file(m: &std::fs::Metadata) -> &'static str {
    if m.is_dir() {
        "a folder"
    } else if m.is_symlink() {
        "a symbolic link"
    } else {
        "something that is not a regular file"
    }
}
