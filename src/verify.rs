//! Checking the destination against the plan.
//!
//! For every selected file: is it there, with the object's size and the planned date? With
//! `--content`, both the object and the restored file are hashed, after asking the kernel to
//! drop their cached pages (`POSIX_FADV_DONTNEED`) so the bytes come from the disks rather
//! than from memory that a copy just filled. Reads only; writes nothing anywhere.
//!
//! A DEST that is not there (a disk not mounted, a typo), or on another mount than the one
//! the checkpoint records the restore placed files on (a share not mounted again, its bare
//! mount point left), is refused before anything is checked: it would otherwise report
//! every file as differing; an existing DEST that holds
//! none of the files (an empty mount point) gets a note asking whether it is mounted. Files
//! whose object is missing from the source cannot be checked; they are listed, and, like
//! the restore that could not restore them, make the exit code 1: a verify must not look
//! all good while some files have no copy anywhere.

use std::fs::File;
use std::io::Read;

use anyhow::Context;
use crossbeam_channel::bounded;

use crate::config::RestoreConfig;
use crate::plan::{Plan, PlannedFile};
use crate::restore::copy::{mtime_matches, ObjectFolders};
use crate::source::index::Index;

/// One file that does not match.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    pub path: String,
    pub id: String,
    pub problem: String,
    /// What the text output says instead of `problem`, where it differs: dates as dates
    /// ([`crate::report::human_ms`], as `regen` says them) where `problem`, for JSON,
    /// keeps their milliseconds.
    #[serde(skip)]
    pub said: Option<String>,
}

impl Mismatch {
    fn new(f: PlannedFile, problem: String) -> Mismatch {
        Mismatch {
            path: f.rel_path,
            id: f.id,
            problem,
            said: None,
        }
    }

    /// The problem as the text output says it.
    pub fn text(&self) -> &str {
        self.said.as_deref().unwrap_or(&self.problem)
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub ok: u64,
    /// Files whose object is missing from the source (nothing to compare; not a mismatch,
    /// but not restorable either): their count and each one with why.
    pub object_missing: u64,
    /// Each with why, and what a restore does with it: listed as missing (no object, or a
    /// link that leads nowhere) or as failed (an object that is a folder, a FIFO or another
    /// special file, or a symbolic link out of the object store, not followed): no `regen`
    /// or `restore` copies them. Found as the restore finds objects
    /// ([`ObjectFolders::usable_object`]), said in its words ([`crate::restore::copy::NoObject`]).
    pub missing_objects: Vec<Mismatch>,
    pub bytes_hashed: u64,
    pub mismatches: Vec<Mismatch>,
    /// Of `mismatches`, those only comparing bytes (`--content`) finds: the planned size and
    /// date, other bytes, or bytes of the DEST file that cannot be read. The `regen` that
    /// marks them needs `--content`; absent files and other sizes or dates do not.
    pub bytes_differ: u64,
    /// Files that match their object, whose length is not the one the database says (a
    /// damaged object, most likely; the restore noted each): counted among `ok`, listed
    /// here so that a match does not hide them.
    pub other_length: Vec<Mismatch>,
    pub seconds: f64,
    /// What the user should know about how the index was read (its write-ahead log).
    pub notes: Vec<String>,
}

/// Hash of a file's bytes, read after dropping its cached pages.
fn hash_uncached(mut f: File) -> std::io::Result<(u128, u64)> {
    let _ = rustix::fs::fadvise(&f, 0, 0, rustix::fs::Advice::DontNeed);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let _ = rustix::fs::fadvise(&f, 0, 0, rustix::fs::Advice::DontNeed);
    Ok((h.digest128(), n))
}

enum Check {
    /// Matches: the bytes compared, and a note when the object's length is not the
    /// database's.
    Ok(u64, Option<String>),
    /// No object a restore can copy the file from: why, and what the restore does.
    ObjectMissing(String),
    /// Not on the destination at all.
    Absent,
    Bad(String),
    /// The size is right, the date is not: the file's and the planned one (ms).
    DateDiffers(i64, Option<i64>),
    /// Found by comparing bytes (`--content`) alone: the planned size and date, other bytes
    /// (or bytes that cannot be read). Only `regen --content` marks such a file.
    BytesDiffer(String),
}

/// What a verify says about a file whose date is not the planned one, in JSON (`problem`:
/// milliseconds, as the database and the plan have them).
fn date_problem(have_ms: i64, planned_ms: Option<i64>) -> String {
    match planned_ms {
        Some(ms) => format!("date differs from the planned {ms} ms (the file has {have_ms} ms)"),
        None => format!("date differs (the file has {have_ms} ms; no date was planned)"),
    }
}

/// [`date_problem`] as the text output says it: dates as dates, as `regen` says them
/// (`crate::report::human_ms`; "the file has 1795840241486 ms" said nothing to a person).
fn date_said(have_ms: i64, planned_ms: Option<i64>) -> String {
    let have = crate::report::human_ms(have_ms);
    match planned_ms {
        Some(ms) => format!(
            "date differs from the planned {} (the file has {have})",
            crate::report::human_ms(ms)
        ),
        None => format!("date differs (the file has {have}; no date was planned)"),
    }
}

fn check(
    cfg: &RestoreConfig,
    objects: &ObjectFolders,
    folders: &crate::walk::DestFolders,
    f: &PlannedFile,
    content: bool,
) -> Check {
    // The object's length comes from the lookup's own `lstat`.
    // Found as the restore finds it: a link (the object's, or its shard folder's) is
    // followed only inside the object store, and only a regular file is an object.
    let object = match f
        .content_id
        .as_deref()
        .map(|c| objects.usable_object(&cfg.source, c))
    {
        Some(Err(e)) => return Check::Bad(e.to_string()),
        Some(Ok(Err(no))) => return Check::ObjectMissing(no.said()),
        Some(Ok(Ok(o))) => Some(o),
        None => None,
    };
    let expected_size = match &object {
        Some((_, len)) => *len,
        None if f.size == 0 => 0,
        None => {
            return Check::ObjectMissing(
                "the database row has no contentID (no object was ever stored)".into(),
            )
        }
    };
    let dest = cfg.dest.join(&f.rel_path);
    // Through a symbolic link the bytes may sit anywhere, outside DEST too: the restore never
    // follows one, and neither does this check (it passed such files, `--content` too).
    if let Some(b) = folders.blocker_of_file(&cfg.dest, &f.rel_path) {
        let why = match b.what {
            "a symbolic link" => "a symbolic link, not a folder (the restore does not follow links: they could lead outside the destination)".to_string(),
            what => format!("{what}, not a folder, and is in the way"),
        };
        return Check::Bad(format!(
            "not on the destination: {} is {why}",
            cfg.dest.join(&b.rel_path).display()
        ));
    }
    let meta = match std::fs::symlink_metadata(&dest) {
        Ok(m) if m.is_file() => m,
        Ok(m) => {
            let what = if m.is_dir() {
                "a folder"
            } else if m.is_symlink() {
                "a symbolic link (not followed)"
            } else {
                "something that is not a regular file"
            };
            return Check::Bad(format!("not on the destination: {what} stands where this file goes"));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Check::Absent,
        // No file can be there: the restore refuses such paths and lists the file as
        // failed ("cannot read ...: File name too long" read like a damaged file).
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => {
            return Check::Bad(format!(
                "not on the destination: its path on DEST is longer than Linux allows ({} bytes); the restore lists it as failed",
                dest.as_os_str().len()
            ))
        }
        Err(e) => return Check::Bad(format!("cannot read {}: {e}", dest.display())),
    };
    if meta.len() != expected_size {
        return Check::Bad(format!(
            "size {} but the object has {expected_size} bytes",
            meta.len()
        ));
    }
    if !mtime_matches(&meta, f.mtime_ms) {
        return Check::DateDiffers(crate::walk::mtime_ms(&meta), f.mtime_ms);
    }
    let other_length = (f.size_unusable.is_none() && expected_size != f.size).then(|| {
        format!(
            "matches its object, which has {expected_size} bytes where the database says {} (damaged on the device's disk?)",
            f.size
        )
    });
    if content {
        if let Some((o, _)) = object {
            // The object opened as found: a FIFO put there since is not read.
            let a = ObjectFolders::open_found(&o).and_then(hash_uncached);
            let b = File::open(&dest).and_then(hash_uncached);
            match (a, b) {
                (Ok((ha, n)), Ok((hb, _))) if ha == hb => return Check::Ok(n, other_length),
                (Ok(_), Ok(_)) => {
                    return Check::BytesDiffer("content differs from the object".into())
                }
                // Nothing to compare with: `regen --content` keeps such a file too.
                (Err(e), _) => {
                    return Check::Bad(format!("cannot read object {}: {e}", o.display()))
                }
                (_, Err(e)) => {
                    return Check::BytesDiffer(format!("cannot read {}: {e}", dest.display()))
                }
            }
        }
    }
    Check::Ok(0, other_length)
}

/// Verifies every selected file with `threads` readers. A DEST that does not exist or is
/// not a folder is an error (nothing to verify there), not a list of every file missing.
pub fn verify(cfg: &RestoreConfig, content: bool, threads: usize) -> anyhow::Result<VerifyReport> {
    let start = std::time::Instant::now();
    // DEST on another mount than the last run placed files on (a share not mounted again):
    // every file would be reported missing from its bare mount point. Refused as a restore
    // refuses it; checked first, as `status` does, since the bare folder may not hold DEST.
    crate::state::check_dest_on_same_mount(
        crate::state::recorded_meta(&cfg.state_dir, crate::state::DEST_ON_KEY).as_deref(),
        &cfg.dest,
        &cfg.dest_fs,
        " and run the same command. Nothing was checked. If the restore moved to another disk on purpose, run the restore there with --fresh first (files already there with the right size and date are kept, not copied again)",
    )?;
    match std::fs::metadata(&cfg.dest) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!(
            "{} is not a folder: give the folder the files were restored into",
            cfg.dest.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "the destination {} does not exist: nothing to verify. Check the path, and that the disk or share is mounted",
            cfg.dest.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the destination {}", cfg.dest.display()))
        }
    }
    let index = Index::open(&cfg.source.db, cfg.source.backup_db.as_deref())?;
    let plan = Plan::build(&index, cfg.plan.clone())?;
    let mut rep = VerifyReport::default();
    rep.notes.extend(plan.index_notes(&index));
    // Size and date cannot tell a copy a power cut left without its data: while a crash's
    // doubt is open (no run has looked at every file since), say that only bytes can.
    if !content && crate::state::crash_doubt_open(&cfg.state_dir) {
        rep.notes.push(format!(
            "a restore into {} did not end cleanly (killed, or a power cut) and no run has looked at every file since: a file may have its name, size and date without its data. Finish the restore (run it again), or run verify --content to compare the bytes",
            cfg.dest.display()
        ));
    }
    let mut absent = 0u64;
    let (job_tx, job_rx) = bounded::<PlannedFile>(threads * 4);
    let (res_tx, res_rx) = bounded::<(PlannedFile, Check)>(threads * 16);
    let folders = crate::walk::DestFolders::default();
    // The object store's shard folders, looked at as the restore does (links out of it).
    let objects = ObjectFolders::links_out_of(&cfg.source.files);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let plan = &plan;
        let folders = &folders;
        let objects = &objects;
        let producer = s.spawn(move || {
            plan.for_each_file(&index, |f| {
                if f.skip.is_none() {
                    let _ = job_tx.send(f);
                }
            })
        });
        for _ in 0..threads {
            let rx = job_rx.clone();
            let tx = res_tx.clone();
            s.spawn(move || {
                for f in rx {
                    let c = check(cfg, objects, folders, &f, content);
                    if tx.send((f, c)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        for (f, c) in res_rx {
            rep.checked += 1;
            match c {
                Check::Ok(n, other_length) => {
                    rep.ok += 1;
                    rep.bytes_hashed += n;
                    if let Some(problem) = other_length {
                        rep.other_length.push(Mismatch::new(f, problem));
                    }
                }
                Check::ObjectMissing(problem) => {
                    rep.object_missing += 1;
                    rep.missing_objects.push(Mismatch::new(f, problem));
                }
                Check::Absent => {
                    absent += 1;
                    rep.mismatches
                        .push(Mismatch::new(f, "not on the destination".into()))
                }
                Check::Bad(problem) => rep.mismatches.push(Mismatch::new(f, problem)),
                Check::DateDiffers(have, planned) => rep.mismatches.push(Mismatch {
                    said: Some(date_said(have, planned)),
                    ..Mismatch::new(f, date_problem(have, planned))
                }),
                Check::BytesDiffer(problem) => {
                    rep.bytes_differ += 1;
                    rep.mismatches.push(Mismatch::new(f, problem))
                }
            }
        }
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("the planner thread panicked"))??;
        Ok(())
    })?;
    // Not one file there: most often a disk or share not mounted (its empty mount point
    // is a folder), rarely a restore that never ran.
    if absent > 0 && absent == rep.checked - rep.object_missing {
        rep.notes.push(format!(
            "none of the {} files that have an object is in {}: if the restore went to a disk or a share, check that it is mounted there (an empty mount point looks like this), and that DEST is the folder given to the restore",
            crate::report::count(absent),
            cfg.dest.display()
        ));
    }
    rep.mismatches.sort_by(|a, b| a.path.cmp(&b.path));
    rep.missing_objects.sort_by(|a, b| a.path.cmp(&b.path));
    rep.other_length.sort_by(|a, b| a.path.cmp(&b.path));
    rep.seconds = start.elapsed().as_secs_f64();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review A10 (a): the message printed `Some(1547030258606)`.
    #[test]
    fn a_date_problem_prints_numbers_not_options() {
        let m = date_problem(1_700_000_000_000, Some(1_547_030_258_606));
        assert_eq!(
            m,
            "date differs from the planned 1547030258606 ms (the file has 1700000000000 ms)"
        );
        let m = date_problem(1_700_000_000_000, None);
        assert!(
            m.contains("no date was planned") && !m.contains("None"),
            "{m}"
        );
    }

    /// The text output says dates as `regen` does; JSON keeps the milliseconds above.
    #[test]
    fn a_date_problem_is_said_as_dates_in_text() {
        assert_eq!(
            date_said(978_307_200_000, Some(1_547_030_258_606)),
            "date differs from the planned 2019-01-09 10:37:38 UTC (the file has 2001-01-01 00:00:00 UTC)"
        );
        let m = date_said(978_307_200_000, None);
        assert!(
            m.contains("no date was planned") && !m.contains(" ms"),
            "{m}"
        );
    }
}
