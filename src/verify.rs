//! Checking the destination against the plan.
//!
//! For every selected file: is it there, with the object's size and the planned date? With
//! `--content`, both the object and the restored file are hashed, after asking the kernel to
//! drop their cached pages (`POSIX_FADV_DONTNEED`) so the bytes come from the disks rather
//! than from memory that a copy just filled. Reads only; writes nothing anywhere.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crossbeam_channel::bounded;

use crate::config::RestoreConfig;
use crate::plan::{Plan, PlannedFile};
use crate::restore::copy::mtime_matches;
use crate::source::index::Index;

/// One file that does not match.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mismatch {
    pub path: String,
    pub id: String,
    pub problem: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub ok: u64,
    /// Files whose object is missing from the source (nothing to compare; not a mismatch).
    pub object_missing: u64,
    pub bytes_hashed: u64,
    pub mismatches: Vec<Mismatch>,
    pub seconds: f64,
    /// What the user should know about how the index was read (its write-ahead log).
    pub notes: Vec<String>,
}

/// Hash of a file's bytes, read after dropping its cached pages.
fn hash_uncached(path: &Path) -> std::io::Result<(u128, u64)> {
    let mut f = File::open(path)?;
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
    Ok(u64),
    ObjectMissing,
    Bad(String),
}

fn check(cfg: &RestoreConfig, f: &PlannedFile, content: bool) -> Check {
    let object = match f.content_id.as_deref().map(|c| cfg.source.find_object(c)) {
        Some(Err(e)) => return Check::Bad(e.to_string()),
        Some(Ok(o)) => o,
        None => None,
    };
    let expected_size = match (&object, &f.content_id) {
        (Some(o), _) => match std::fs::metadata(o) {
            Ok(m) => m.len(),
            Err(e) => return Check::Bad(format!("cannot read object {}: {e}", o.display())),
        },
        (None, None) if f.size == 0 => 0,
        (None, _) => return Check::ObjectMissing,
    };
    let dest = cfg.dest.join(&f.rel_path);
    let meta = match std::fs::metadata(&dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::Bad("not on the destination".into())
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
        return Check::Bad(format!("date differs from the planned {:?} ms", f.mtime_ms));
    }
    if content {
        if let Some(o) = object {
            let a = hash_uncached(&o);
            let b = hash_uncached(&dest);
            match (a, b) {
                (Ok((ha, n)), Ok((hb, _))) if ha == hb => return Check::Ok(n),
                (Ok(_), Ok(_)) => return Check::Bad("content differs from the object".into()),
                (Err(e), _) => {
                    return Check::Bad(format!("cannot read object {}: {e}", o.display()))
                }
                (_, Err(e)) => return Check::Bad(format!("cannot read {}: {e}", dest.display())),
            }
        }
    }
    Check::Ok(0)
}

/// Verifies every selected file with `threads` readers.
pub fn verify(cfg: &RestoreConfig, content: bool, threads: usize) -> anyhow::Result<VerifyReport> {
    let start = std::time::Instant::now();
    let index = Index::open(&cfg.source.db, cfg.source.backup_db.as_deref())?;
    let plan = Plan::build(&index, cfg.plan.clone())?;
    let mut rep = VerifyReport::default();
    rep.notes.extend(index.wal_note());
    let (job_tx, job_rx) = bounded::<PlannedFile>(threads * 4);
    let (res_tx, res_rx) = bounded::<(PlannedFile, Check)>(threads * 16);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let plan = &plan;
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
                    let c = check(cfg, &f, content);
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
                Check::Ok(n) => {
                    rep.ok += 1;
                    rep.bytes_hashed += n;
                }
                Check::ObjectMissing => rep.object_missing += 1,
                Check::Bad(problem) => rep.mismatches.push(Mismatch {
                    path: f.rel_path,
                    id: f.id,
                    problem,
                }),
            }
        }
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("the planner thread panicked"))??;
        Ok(())
    })?;
    rep.mismatches.sort_by(|a, b| a.path.cmp(&b.path));
    rep.seconds = start.elapsed().as_secs_f64();
    Ok(rep)
}
