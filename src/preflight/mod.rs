//! Pre-flight: before a copy that takes hours, find out whether it fits, how long it will
//! take and which settings suit this machine and these disks, from measurements rather than
//! guesses. Also the quick auto-tune behind `restore --threads auto`.
//!
//! `preflight SOURCE DEST` runs, within `--budget` seconds:
//!
//! 1. the machine: CPU, memory, open-file limits, OS ([`machine`]);
//! 2. both filesystems: type, mount options, free space (what this process may write, as
//!    the restore counts it: as root on a local disk, root's reserve too, with a warning
//!    when the files fit only there), rotational source disk; DEST's
//!    case sensitivity and the characters it refuses, tested with real names;
//! 3. the work, from the database (never a walk of the object store): files, bytes, a size
//!    histogram and the names the chosen policy changes;
//! 4. benchmarks, each bounded in time and size: cold-cache reads of sampled objects, a
//!    flushed sequential write to DEST, and the per-file cost on DEST at 1, 4, 16 and 64
//!    workers, measured up and down again so a machine whose load drifts does not favour
//!    one end (the scaling curve; on NFS/SMB it is the network round trip). Each step
//!    counts its setup and cleanup against the budget (over a slow share, making and
//!    removing the test folders and files can take longer than the timed part), and one
//!    that cannot fit in what is left is not started;
//!
//! Every phase that touches DEST ends by its share of the budget, and what a phase leaves
//! unused goes to the next ones: the checks before the name tests (where DEST is, both
//! filesystems: about 1 s at 100 ms a round trip) get what is left of it, and a DEST that
//! has not answered by then is blocking ("did not answer"); the name tests (half of what
//! is left when they start: 14 names took 6.8 s at 100 ms a round trip) try only the
//! names that fit and report the rest as not tested, never as accepted or refused; the
//! write benchmark gets a fifth of what is left, or what one round needs where that is
//! more (the estimate needs its bandwidth most; the per-file steps take what is left after
//! it), and stops early and says it was cut short. What was left out for lack of
//! time is listed in the report (`out_of_time`). Removing the probe folder is not bounded:
//! it always happens, even past the budget (a second of it is kept back for that).
//! 5. advice and an estimate ([`model`]): threads from the scaling curve, warnings, a ready
//!    `restore` command, and a best/worst duration band from the model described there.
//!
//! Probes sit behind [`probe::Probe`], so the advice is a pure function of measurements and
//! is tested on made-up machines. Pre-flight never writes to the source, writes to DEST only
//! inside one probe folder that it removes, and gives up on a disk that stops answering.
//!
//! Exit codes: 0 all fine (warnings allowed), 1 a blocking problem (the files do not fit, a
//! destination full or out of inodes (said so, with what to free, not "cannot be written")
//! or one that stopped answering, an object store where the restore's own look finds
//! none of the files sampled), 2 bad input (unusable source, DEST inside SOURCE),
//! 130 interrupted (the probe folder is still removed).
//!
//! `restore --threads auto` calls [`auto_threads`]: on a network destination, the per-file
//! benchmark alone at 4, 16 and 64 workers, up and down again, half a second per step: a
//! few seconds in all. It writes only inside the probe folder too. A local disk is not
//! measured (more workers hide no round trips there; the measurement cost more than it
//! could win), and neither is a dry run or a very small job: they get the filesystem-type
//! default, and the report says why.

pub mod machine;
pub mod model;
pub mod probe;
mod render;

use std::path::PathBuf;

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::cli::{NamesArg, PreflightArgs, SelectArgs};
use crate::config::{self, RestoreConfig};
use crate::exit::Exit;
use crate::fsinfo::FsInfo;
use crate::plan::names::NamePolicy;
use crate::plan::Plan;
use crate::source::index::Index;
pub use model::{
    Advice, CommandBase, Estimate, Machine, Measurements, ScalingPoint, Work, MODEL_TEXT,
};
pub use probe::{Limits, Probe, ProbeError, RealProbe, Role};
pub use render::{human, redact_numbers};

/// JSON report format version.
pub const PREFLIGHT_SCHEMA_VERSION: u32 = 1;
/// The shortest `--budget` that leaves every benchmark some time.
pub const MIN_BUDGET_SECS: u64 = 5;
/// contentIDs sampled for the source read benchmark.
pub const SAMPLE_OBJECTS: usize = 400;
/// Concurrency levels of the full per-file benchmark.
pub const LEVELS: [usize; 4] = [1, 4, 16, 64];
/// Below this many files left, the quick auto-tune is not worth its time on a network
/// destination (the network default is used). It writes and removes test files at 4, 16 and
/// 64 workers: 3.5 s over sshfs without added latency and 8 s at +4 ms per round trip
/// (`182611-full`), about 1.6x the copy of 1,000 small files there, so it costs under 10%
/// of a job from about 20,000 files.
pub const QUICK_MIN_FILES: u64 = 20_000;
const READ_MAX_BYTES: u64 = 128 << 20;
const WRITE_MAX_BYTES: u64 = 128 << 20;
/// Below this, a write benchmark says nothing (two rounds of a few chunks).
const MIN_WRITE_BYTES: u64 = 8 << 20;
const LEVEL_MAX_FILES: u64 = 20_000;
/// Kept back at the end of the budget for removing the probe folder.
const FINISH_RESERVE: Duration = Duration::from_secs(1);
/// The source read benchmark's least time, even with the budget spent: without a read the
/// estimate has no bandwidth, and it reads the local disk for no longer than this.
const MIN_READ: Duration = Duration::from_millis(200);
/// A per-file step given less than this is not started (its setup and cleanup would be
/// most of it).
const MIN_STEP: Duration = Duration::from_millis(150);
const QUICK_MAX_FILES: u64 = 5_000;
/// The least a check before the name tests waits for a disk, even with the budget spent
/// (reading a large index can take it): a disk that answers at all answers its `statvfs`
/// well within it (0.3 s over a share with 100 ms round trips).
const MIN_CHECK: Duration = Duration::from_secs(1);

/// Whether Ctrl-C (or SIGTERM) asked to stop: benchmarks end early, cleanup still runs.
pub(crate) fn stopping() -> bool {
    crate::signals::stop_requested()
}

fn install_signal_handler() {
    crate::signals::install(crate::signals::Messages {
        first: "interrupted; stopping the benchmarks and removing the probe folder",
        second: "second interrupt, exiting now (the probe folder may remain in DEST)",
        settled: "interrupted after the measurements were done; finishing",
    });
}

/// Everything pre-flight found (what `--json` prints).
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub schema_version: u32,
    pub tool_version: &'static str,
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub source: PathBuf,
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub dest: PathBuf,
    pub budget_s: u64,
    pub duration_s: f64,
    pub interrupted: bool,
    pub measurements: Measurements,
    pub work: Work,
    pub advice: Advice,
    pub estimate: Option<Estimate>,
}

impl PreflightReport {
    pub fn exit(&self) -> Exit {
        if self.interrupted {
            Exit::Interrupted
        } else if !self.advice.blocking.is_empty() {
            Exit::Incomplete
        } else {
            Exit::Ok
        }
    }
}

/// What the orchestration needs besides the probe and the index.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub select: SelectArgs,
    pub budget: Duration,
    /// DEST did not answer the checks made before the probe (why): it is blocking, and
    /// nothing more is asked of it.
    pub dest_silent: Option<String>,
    /// The restore command's SOURCE, DEST and selection flags, shell-quoted.
    pub command_args: Vec<String>,
}

/// `preflight SOURCE DEST`.
pub fn run(a: &PreflightArgs) -> anyhow::Result<Exit> {
    if a.budget < MIN_BUDGET_SECS {
        anyhow::bail!(
            "--budget {} is too short: give at least {MIN_BUDGET_SECS} seconds (the default, 40, gives steadier numbers)",
            a.budget
        );
    }
    let started = Instant::now();
    install_signal_handler();
    let deadline = started + Duration::from_secs(a.budget);
    config::plan_options(&a.select, &unknown_fs(), config::default_dates())?;
    // The source's looks (its layout, the database opened, the restore's own look at the
    // object store, a sample of objects), watched ([`crate::restore::watch`]): a source
    // that does not answer stops pre-flight with a message (exit 2), not a silent hang; its
    // patience for a silent source is the budget (counted from the first probe, 15 s in).
    let w = crate::restore::watch::Watch::new(
        "`preflight`",
        "while `preflight` read it",
        &a.source,
        None,
    )
    .patience_at_most(Duration::from_secs(a.budget));
    let source = a.source.clone();
    let (layout, index, objects, sample) = crate::restore::watch::watched(&w, move || {
        let layout = config::source(&source)?;
        let index = Index::open(&layout.db, layout.backup_db.as_deref())?;
        // The restore's own look at the object store: what stops it blocks here too.
        let objects = crate::restore::look_for_objects(&layout, &index)?;
        let sample = index
            .sample_content_ids(SAMPLE_OBJECTS)
            .with_context(|| format!("cannot sample contentIDs from {}", layout.db.display()))?;
        Ok((layout, index, objects, sample))
    })?;
    // Resolving DEST touches it: a share that does not answer must not hang us here
    // either. It gets what is left of the budget, as the other checks before the name tests
    // do; not back by then, DEST is said not to answer (blocking), and nothing else is
    // asked of it.
    let dest_silent = {
        let (l, d) = (layout.clone(), a.dest.clone());
        let limit = checks_left(deadline);
        match crate::held::within("mcr-probe", limit, move || config::check_dest(&l, &d)) {
            Some(r) => r.map(|()| None)?,
            None => Some(
                ProbeError::TimedOut {
                    role: "destination",
                    path: a.dest.clone(),
                    what: "checking where it is (not inside the source)".into(),
                    secs: probe::whole_secs(limit),
                }
                .to_string(),
            ),
        }
    };
    let opts = Options {
        source: a.source.source.clone(),
        dest: a.dest.clone(),
        select: a.select.clone(),
        budget: Duration::from_secs(a.budget),
        dest_silent,
        command_args: command_args(
            &a.source.source,
            &a.dest,
            a.source.db.as_deref(),
            a.source.files_dir.as_deref(),
            &a.select,
        ),
    };
    let mut prober = RealProbe::new(layout, a.dest.clone(), sample);
    let result = preflight(&mut prober, index, &opts, started, &w);
    // Clean up whatever happened above.
    let cleanup = prober.finish();
    let mut report = result?;
    match cleanup {
        Ok(notes) => report.measurements.notes.extend(notes),
        Err(e) => report.advice.warnings.insert(
            0,
            format!("pre-flight could not clean up after itself: {e}"),
        ),
    }
    report.advice.blocking.extend(objects.blocking);
    report.duration_s = started.elapsed().as_secs_f64();
    // Its verdict (blocking problems: exit 1) is kept when the reader of the output leaves
    // early (`preflight | head`).
    crate::commands::print_verdict(report.exit(), |out| {
        if a.json {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        } else {
            write!(out, "{}", human(&report))?;
        }
        Ok(())
    })
}

fn unknown_fs() -> FsInfo {
    FsInfo {
        fstype: "unknown".into(),
        mount_point: PathBuf::from("/"),
        source: String::new(),
        options: String::new(),
    }
}

/// SOURCE, DEST and the selection flags of the recommended restore command.
pub fn command_args(
    source: &std::path::Path,
    dest: &std::path::Path,
    db: Option<&std::path::Path>,
    files: Option<&std::path::Path>,
    select: &SelectArgs,
) -> Vec<String> {
    let q = model::shell_path;
    let mut v = vec![q(source), q(dest)];
    if let Some(d) = db {
        v.extend(["--db".into(), q(d)]);
    }
    if let Some(f) = files {
        v.extend(["--files".into(), q(f)]);
    }
    for o in &select.only {
        v.extend(["--only".into(), model::shell_quote(o)]);
    }
    for u in &select.user {
        v.extend(["--user".into(), model::shell_quote(u)]);
    }
    if select.include_trash {
        v.push("--include-trash".into());
    }
    if let Some(n) = select.limit {
        v.extend(["--limit".into(), n.to_string()]);
    }
    v
}

/// Runs every probe and benchmark through `p`, reads the work from `index` (watched by
/// `watch`: a source that stops answering meanwhile stops pre-flight), and advises.
/// The caller calls [`Probe::finish`] afterwards, whatever this returns.
pub fn preflight(
    p: &mut dyn Probe,
    index: Index,
    opts: &Options,
    started: Instant,
    watch: &crate::restore::watch::Watch,
) -> anyhow::Result<PreflightReport> {
    let deadline = started + opts.budget;
    let mut m = Measurements {
        machine: p.machine(),
        ..Default::default()
    };
    // The checks before the name tests end by the budget too: a disk that has not
    // answered by then does not answer (over a share with 100 ms round trips they took
    // about 2 s; a share whose server hung held them for good).
    match p.disk(Role::Source, Instant::now() + checks_left(deadline)) {
        Ok(d) => m.source = Some(d),
        Err(e) => m.notes.push(format!("source filesystem: {e}")),
    }
    match &opts.dest_silent {
        Some(why) => m.dest_unresponsive = Some(why.clone()),
        None => match p.disk(Role::Dest, Instant::now() + checks_left(deadline)) {
            Ok(d) => m.dest = Some(d),
            Err(e) => note_dest_error(&mut m, "destination filesystem", e),
        },
    }
    m.same_filesystem = matches!(
        (m.source.as_ref().and_then(|d| d.device_id), m.dest.as_ref().and_then(|d| d.device_id)),
        (Some(a), Some(b)) if a == b
    );
    m.same_disk = matches!(
        (
            m.source.as_ref().and_then(|d| d.physical_disk.as_ref()),
            m.dest.as_ref().and_then(|d| d.physical_disk.as_ref()),
        ),
        (Some(a), Some(b)) if a == b
    );
    if m.dest_unresponsive.is_none() {
        // Half of what is left for the name tests, the rest for the benchmarks: over a
        // slow share the 14 test names alone took 6.8 s (at 100 ms a round trip), more
        // than a small budget.
        let until = Instant::now() + time_left(deadline) / 2;
        match p.names(until) {
            Ok(n) => {
                let untested = model::untested(&n);
                if !untested.is_empty() {
                    m.out_of_time.push(format!(
                        "name tests: not tested (out of time): {untested}; {} of {} test names tried",
                        n.checks.len() - n.not_tested().len(),
                        n.checks.len()
                    ));
                }
                m.names = Some(n);
            }
            Err(e) => note_dest_error(&mut m, "name tests", e),
        }
    }

    // The work, under the policy DEST needs.
    let explicit = match opts.select.names {
        NamesArg::Auto => None,
        NamesArg::Posix => Some(NamePolicy::Posix),
        NamesArg::Windows => Some(NamePolicy::Windows),
    };
    let dest_fs = m
        .dest
        .as_ref()
        .map(|d| d.fs.clone())
        .unwrap_or_else(unknown_fs);
    let (policy, policy_reason) =
        model::choose_policy(explicit, m.dest.as_ref().map(|d| &d.fs), m.names.as_ref());
    let block = match &m.dest {
        Some(d) if !d.network => d.block_size.unwrap_or(4096).clamp(512, 1 << 16),
        _ => 4096,
    };
    let (select, fs) = (opts.select.clone(), dest_fs.clone());
    // A silent source is waited for what is left of the budget, not the whole of it again.
    let watch = watch.clone().patience_at_most(checks_left(deadline));
    let work = crate::restore::watch::watched(&watch, move || {
        work(&index, &select, &fs, policy, policy_reason, block)
    })?;

    if !stopping() {
        benchmarks(p, &mut m, deadline);
    }
    let base = CommandBase {
        args: opts.command_args.clone(),
        auto_policy: m
            .dest
            .as_ref()
            .map(|d| config::name_policy(NamesArg::Auto, &d.fs)),
    };
    let advice = model::advise(&m, &work, &base);
    let estimate = model::estimate(&m, &work, advice.threads);
    Ok(PreflightReport {
        schema_version: PREFLIGHT_SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION"),
        source: opts.source.clone(),
        dest: opts.dest.clone(),
        budget_s: opts.budget.as_secs(),
        duration_s: started.elapsed().as_secs_f64(),
        interrupted: stopping(),
        measurements: m,
        work,
        advice,
        estimate,
    })
}

/// What is left of the budget before `deadline`, less what removing the probe folder keeps
/// back ([`FINISH_RESERVE`]).
fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .saturating_sub(FINISH_RESERVE)
}

/// What a check before the name tests may wait for a disk: what is left of the budget
/// ([`time_left`]), but at least [`MIN_CHECK`].
fn checks_left(deadline: Instant) -> Duration {
    time_left(deadline).max(MIN_CHECK)
}

/// Records a destination probe's failure; a timeout marks DEST as unresponsive.
fn note_dest_error(m: &mut Measurements, what: &str, e: ProbeError) {
    match e {
        ProbeError::TimedOut { .. } => m.dest_unresponsive = Some(e.to_string()),
        // Said once, as what blocks the restore, not once per probe.
        ProbeError::Unwritable(why) => m.dest_unwritable = Some(why),
        ProbeError::Full(why) => m.dest_full = Some(why),
        ProbeError::Interrupted => {}
        ProbeError::OutOfTime(why) => m.out_of_time.push(format!("{what}: {why}")),
        e => m.notes.push(format!("{what}: {e}")),
    }
}

/// Runs the benchmarks in the time left before `deadline`: a fifth each for reading and
/// writing, the rest for the per-file levels. Each ends by its share, its setup and cleanup
/// included, and what does not fit is left out (said in `out_of_time`); only the source
/// read gets at least [`MIN_READ`] (it reads the local disk, bounded by its own clock).
fn benchmarks(p: &mut dyn Probe, m: &mut Measurements, deadline: Instant) {
    let left = time_left(deadline);
    let read = Limits {
        time: (left / 5).max(MIN_READ),
        max_bytes: READ_MAX_BYTES,
        max_files: SAMPLE_OBJECTS as u64,
        until: None,
    };
    match p.source_read(&read) {
        Ok(r) => m.read = Some(r),
        Err(ProbeError::Interrupted) => return,
        Err(e) => m.notes.push(format!("source read benchmark: {e}")),
    }
    if m.dest_unresponsive.is_some()
        || m.dest_unwritable.is_some()
        || m.dest_full.is_some()
        || stopping()
    {
        return;
    }
    // Never take more than a quarter of DEST's free space, root's reserve left alone.
    let room = m.dest.as_ref().map_or(u64::MAX, |d| {
        d.free_bytes.map_or(u64::MAX, |f| {
            f.saturating_sub(d.roots_reserve_bytes.unwrap_or(0)) / 4
        })
    });
    // Its share of what is left now (the read may have run over its own), its create,
    // flushes and removal included: a fifth, or what one round needs where that is more
    // and there is time for it (over a slow share a fifth of a small budget measured
    // nothing, and the time went unused: the write is what the estimate needs most, its
    // bandwidth, so it comes before the per-file steps, which take what is left).
    let now_left = time_left(deadline).min(left);
    let share = (now_left / 5)
        .max(p.foresee_write().unwrap_or_default())
        .min(now_left);
    let write = Limits {
        time: share,
        max_bytes: WRITE_MAX_BYTES.min(room),
        max_files: 2,
        until: Some(Instant::now() + share),
    };
    if write.max_bytes < MIN_WRITE_BYTES {
        m.notes.push(format!(
            "destination write benchmark: skipped, the destination has only {} free{}",
            crate::report::human_bytes(room * 4),
            match m.dest.as_ref().and_then(|d| d.roots_reserve_bytes) {
                Some(_) => " besides the blocks kept for root (left alone)",
                None => "",
            }
        ));
    } else if share < MIN_STEP {
        m.out_of_time
            .push("destination write benchmark: not started: the budget was spent".into());
    } else {
        match p.dest_write(&write) {
            Ok(w) => {
                if w.cut_short {
                    let bytes: u64 = w.rounds.iter().map(|r| r.bytes).sum();
                    m.out_of_time.push(format!(
                        "destination write benchmark: cut short at its share of the budget ({:.1} s): {} of its 2 rounds, {} written and flushed",
                        share.as_secs_f64(),
                        w.rounds.len(),
                        crate::report::human_bytes(bytes)
                    ));
                }
                m.write = Some(w);
            }
            Err(e) => note_dest_error(m, "destination write benchmark", e),
        }
    }
    // Each per-file step writes at most this many small files (blocks included).
    let step_files = (LEVEL_MAX_FILES / 2).min(room / (2 * probe::SMALL_FILE_BYTES as u64));
    if step_files < 100 {
        m.notes
            .push("per-file benchmark: skipped, the destination has almost no free space".into());
        return;
    }
    // The levels, measured up and down again, each step in an even share of what is left
    // then (a step that ran over shrinks the ones after it), its setup, flush and cleanup
    // included: over a slow share they can take longer than the timed part (making 64
    // folders and removing their files took 3-8 s at 20 ms a round trip). A step that
    // cannot fit in what is left is not started: the budget holds.
    let order = model::abba(&LEVELS);
    let mut points = Vec::new();
    let mut skipped = Vec::new();
    for (i, &t) in order.iter().enumerate() {
        if m.dest_unresponsive.is_some() || stopping() {
            break;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(FINISH_RESERVE);
        let need = p
            .foresee_step(t)
            .map_or(least_step(&points, t), |f| f.max(least_step(&points, t)));
        if need > left {
            skipped.push(t);
            continue;
        }
        let step = (left / (order.len() - i) as u32).max(need);
        let limits = Limits {
            time: step,
            max_bytes: u64::MAX,
            max_files: step_files,
            until: Some(Instant::now() + step),
        };
        match p.per_file(t, &limits) {
            Ok(pt) => points.push(pt),
            Err(e) => {
                note_dest_error(m, &format!("per-file benchmark at {t} workers"), e);
                break;
            }
        }
    }
    if !skipped.is_empty() {
        m.out_of_time.push(format!(
            "per-file benchmark: {} of its {} steps left out so as to end within --budget ({} at {} {}; each level is measured twice, up then down, and a level measured once is kept): making and removing its test files on the destination took long; a larger --budget measures them all",
            skipped.len(),
            order.len(),
            match skipped.len() {
                1 => "the one",
                _ => "those",
            },
            skipped
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            match skipped.as_slice() {
                [1] => "worker",
                _ => "workers",
            }
        ));
    }
    m.scaling = model::merge_points(&points);
}

/// The least a per-file step at `threads` workers takes, from the steps `measured` at that
/// level: making its folders, [`MIN_STEP`] of work, and its flush and cleanup at the rate
/// they took per second of work. A level not measured yet gets [`MIN_STEP`]: it is tried
/// whatever it costs (the first pass up is what the advice needs most; its overrun shrinks
/// or leaves out steps of the pass down).
fn least_step(measured: &[ScalingPoint], threads: usize) -> Duration {
    let min = MIN_STEP.as_secs_f64();
    let secs = measured
        .iter()
        .filter(|p| p.threads == threads)
        .map(|p| {
            let work = (p.secs - p.sync_secs).max(0.01);
            p.setup_secs + min * (1.0 + (p.sync_secs + p.cleanup_secs) / work)
        })
        .fold(min, f64::max);
    Duration::from_secs_f64(secs)
}

/// Reads the work from the database: one pass of the plan (the restore does the same),
/// counting selected files, bytes (also rounded up to `block`, plus a block per folder: what
/// the restore takes on DEST) and sizes.
pub fn work(
    index: &Index,
    select: &SelectArgs,
    dest_fs: &FsInfo,
    policy: NamePolicy,
    policy_reason: String,
    block: u64,
) -> anyhow::Result<Work> {
    let t = Instant::now();
    let mut opts = config::plan_options(select, dest_fs, config::default_dates())?;
    opts.policy = policy;
    let plan = Plan::build(index, opts)?;
    let mut w = Work {
        files: 0,
        folders: 0,
        bytes: 0,
        bytes_on_disk: 0,
        filtered_files: 0,
        policy,
        policy_reason,
        renamed_files: 0,
        renamed_folders: plan.folder_renames().len() as u64,
        plan_secs: 0.0,
        histogram: model::empty_histogram(),
        notes: plan.index_notes(index),
    };
    let block = block.max(1);
    plan.for_each_file_any_order(index, |f| {
        if f.skip.is_some() {
            w.filtered_files += 1;
            return;
        }
        w.files += 1;
        w.bytes = w.bytes.saturating_add(f.size);
        w.bytes_on_disk = w
            .bytes_on_disk
            .saturating_add(f.size.div_ceil(block).saturating_mul(block));
        w.renamed_files += f.renamed_from.is_some() as u64;
        model::add_to_histogram(&mut w.histogram, f.size);
    })?;
    w.folders = plan.folders_deepest_first().len() as u64;
    // Each folder takes at least a block too (ext4, XFS and most NAS filesystems).
    w.bytes_on_disk = w
        .bytes_on_disk
        .saturating_add(w.folders.saturating_mul(block));
    w.plan_secs = t.elapsed().as_secs_f64();
    Ok(w)
}

/// What `--threads auto` chose, and why (carried in the restore report).
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    pub threads: usize,
    /// Chosen from measurements (false: the filesystem-type default).
    pub measured: bool,
    pub reason: String,
    pub curve: Vec<ScalingPoint>,
    pub secs: f64,
}

impl Tuning {
    /// One line for the restore summary.
    pub fn line(&self) -> String {
        if !self.measured {
            return format!("{} threads (not measured: {})", self.threads, self.reason);
        }
        let curve = self
            .curve
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    p.threads,
                    crate::report::count_decimal(p.files_per_s, 0)
                )
            })
            .collect::<Vec<_>>()
            // Not ", ": the rates are grouped ("1: 1,234; 4: 5,678").
            .join("; ");
        format!(
            "{} threads, from a {:.1}s measurement of the destination (files/s by threads: {curve}): {}",
            self.threads, self.secs, self.reason
        )
    }
}

/// The quick auto-tune on any probe: per-file cost at three levels, the same choice rule as
/// pre-flight, limited by the files and the open-file limit. Used for network destinations,
/// where each file costs round trips that more workers overlap.
pub fn quick_tune(p: &mut dyn Probe, files: u64, fd_limit: u64) -> Result<Tuning, ProbeError> {
    let started = Instant::now();
    let levels = [4, 16, 64];
    let slice = Duration::from_millis(500);
    let mut points = Vec::new();
    for t in model::abba(&levels) {
        let limits = Limits {
            time: slice,
            max_bytes: u64::MAX,
            max_files: QUICK_MAX_FILES / 2,
            until: None,
        };
        points.push(p.per_file(t, &limits)?);
    }
    let curve = model::merge_points(&points);
    let (n, why) = model::pick_threads(&curve)
        .ok_or_else(|| ProbeError::Other("no test file could be written".into()))?;
    let (threads, reason, warning) = model::cap_threads(n, why, files, fd_limit);
    let reason = match warning {
        Some(w) => format!("{reason} (warning: {w})"),
        None => reason,
    };
    Ok(Tuning {
        threads,
        measured: true,
        reason,
        curve,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// `--threads auto`: a quick measurement of DEST, or the filesystem-type default (with the
/// reason) when measuring is not possible or not worth it. Never writes in a dry run.
/// `files_left` bounds what the restore still has to do: the database's files not recorded
/// as done. Files left out (the Trash) and files whose object is missing are among them
/// until the count and the copy (which run after this) get to them.
pub fn auto_threads(cfg: &RestoreConfig, files_left: u64) -> Tuning {
    let started = Instant::now();
    let default = crate::restore::default_threads(cfg);
    let kind = if cfg.dest_fs.is_network() {
        "network"
    } else {
        "local"
    };
    let fallback = |why: String| Tuning {
        threads: default,
        measured: false,
        reason: format!(
            "{why}; the default for a {kind} destination ({}) is used",
            cfg.dest_fs.fstype
        ),
        curve: Vec::new(),
        secs: started.elapsed().as_secs_f64(),
    };
    if cfg.dry_run {
        return fallback("dry run, so nothing was written to the destination to measure it".into());
    }
    // Threads hide round trips. A local disk has none worth hiding: 4 to 32 workers were
    // within a few percent of each other on 100,000 small files, while the 1-2 s measurement
    // was 20-30% of that restore (docs/PERFORMANCE.md). On a network filesystem 1 -> 16
    // workers was 7x, and the measurement is what finds the knee.
    if !cfg.dest_fs.is_network() {
        return fallback(
            "a local disk, where more workers hide no round trips: 4 to 32 were within a few percent of each other in the benchmarks"
                .into(),
        );
    }
    if files_left < QUICK_MIN_FILES {
        return fallback(format!(
            "at most {} files left to restore (files not selected or without an object are among them until the copy gets to them), too few for a measurement to pay off on a {kind} destination",
            crate::report::count(files_left)
        ));
    }
    let fd_limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(u64::MAX)
        .min(model::FD_RAISE_CAP);
    let mut prober = RealProbe::new(cfg.source.clone(), cfg.dest.clone(), Vec::new())
        .with_grace(Duration::from_secs(10));
    let result = quick_tune(&mut prober, files_left, fd_limit);
    let cleanup = prober.finish();
    match (result, cleanup) {
        (Ok(mut t), cleanup) => {
            if let Err(e) = cleanup {
                t.reason = format!("{} (warning: {e})", t.reason);
            }
            t.secs = started.elapsed().as_secs_f64();
            t
        }
        (Err(ProbeError::Interrupted), _) => fallback("interrupted while measuring".into()),
        (Err(e), _) => fallback(format!("could not measure the destination: {e}")),
    }
}

#[cfg(test)]
mod tests;
