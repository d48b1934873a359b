//! Regenerating the checkpoint from what is actually on the destination.
//!
//! For when the checkpoint is lost, or the destination was written by another tool (the
//! Python predecessor uses the same layout). The destination is walked in parallel; every
//! planned file found with the expected size and date is adopted as done, every one that
//! differs is marked to be replaced by the next restore, and the rest is reported: planned
//! files that are absent, files the plan does not know, and likely moves (an absent file
//! whose name and size appear elsewhere). Nothing is deleted or moved.

use std::collections::HashMap;

use crate::config::RestoreConfig;
use crate::plan::Plan;
use crate::restore::copy::{is_temp_name, mtime_matches_ms};
use crate::source::index::Index;
use crate::state::{Checkpoint, Outcome, Record};

/// What regen found.
#[derive(Debug, Default, serde::Serialize)]
pub struct RegenReport {
    pub state_dir: std::path::PathBuf,
    pub planned_files: u64,
    pub found_on_dest: u64,
    pub adopted: u64,
    /// Planned files present but with another size or date: (path, why).
    pub differs: Vec<(String, String)>,
    /// Planned files not on the destination (the next restore copies them).
    pub absent: Vec<String>,
    /// Files on the destination that the plan does not know.
    pub unknown: Vec<String>,
    /// (planned path, path where a file with the same name and size was found).
    pub likely_moved: Vec<(String, String)>,
    pub temp_leftovers: Vec<String>,
    pub unreadable_folders: Vec<String>,
    pub walk_seconds: f64,
    pub total_seconds: f64,
}

fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Walks the destination, rebuilds the checkpoint, and reports.
pub fn regen(cfg: &RestoreConfig, threads: usize) -> anyhow::Result<RegenReport> {
    let start = std::time::Instant::now();
    let index = Index::open(&cfg.source.db, cfg.source.backup_db.as_deref())?;
    let plan = Plan::build(&index, cfg.plan.clone())?;
    let mut ckpt = Checkpoint::open(&cfg.state_dir, false, &cfg.command_line)?;
    ckpt.bind(
        &cfg.source
            .db
            .canonicalize()
            .unwrap_or_else(|_| cfg.source.db.clone()),
        &cfg.dest,
    )?;
    let mut rep = RegenReport {
        state_dir: cfg.state_dir.clone(),
        ..Default::default()
    };

    let walk_start = std::time::Instant::now();
    let (found, errors) = crate::walk::walk(&cfg.dest, threads);
    rep.walk_seconds = walk_start.elapsed().as_secs_f64();
    rep.unreadable_folders = errors
        .into_iter()
        .map(|(p, e)| format!("{}: {e}", p.display()))
        .collect();
    rep.found_on_dest = found.len() as u64;
    let mut on_dest: HashMap<String, (u64, i64)> = HashMap::with_capacity(found.len());
    for f in found {
        if is_temp_name(base_name(&f.rel_path)) {
            rep.temp_leftovers.push(f.rel_path);
        } else {
            on_dest.insert(f.rel_path, (f.size, f.mtime_ms));
        }
    }

    ckpt.clear_files()?;
    let mut adopted: Vec<Record> = Vec::new();
    let mut redo: Vec<(Record, String)> = Vec::new();
    let mut absent: Vec<(String, u64)> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    plan.for_each_file_any_order(&index, |f| {
        if f.skip.is_some() || failure.is_some() {
            return;
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
        match on_dest.remove(&rec.rel_path) {
            Some((size, mtime)) if size == rec.size && mtime_matches_ms(mtime, rec.mtime_ms) => {
                adopted.push(rec);
            }
            Some((size, mtime)) => {
                let why = format!(
                    "on the destination with {size} bytes and date {mtime} ms; the plan expects {} bytes and date {:?} ms",
                    rec.size, rec.mtime_ms
                );
                rep.differs.push((rec.rel_path.clone(), why.clone()));
                redo.push((rec, why));
            }
            None => absent.push((rec.rel_path, rec.size)),
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
    ckpt.record(&adopted)?;
    ckpt.record_redo(&redo)?;
    rep.adopted = ckpt.done_keys()?.len() as u64;

    // Likely moves: an absent planned file whose name and size sit elsewhere.
    let mut by_name_size: HashMap<(&str, u64), Vec<&str>> = HashMap::new();
    for (path, (size, _)) in &on_dest {
        by_name_size
            .entry((base_name(path), *size))
            .or_default()
            .push(path);
    }
    for (path, size) in &absent {
        if let Some(cands) = by_name_size.get(&(base_name(path), *size)) {
            for c in cands {
                rep.likely_moved.push((path.clone(), c.to_string()));
            }
        }
    }
    rep.absent = absent.into_iter().map(|(p, _)| p).collect();
    let mut unknown: Vec<String> = on_dest.into_keys().collect();
    unknown.sort();
    rep.unknown = unknown;
    rep.absent.sort();
    rep.likely_moved.sort();
    ckpt.end_run(true)?;
    rep.total_seconds = start.elapsed().as_secs_f64();
    Ok(rep)
}
