//! The impure half of pre-flight: probes that measure this machine and both disks.
//!
//! Everything sits behind the [`Probe`] trait so the logic that turns measurements into
//! advice can be tested with made-up numbers. [`RealProbe`] is the real thing:
//!
//! - It never writes to the source: objects are opened read-only (with `O_NOATIME` where
//!   allowed, so not even their access times change) and the index is opened immutable.
//! - Everything it writes goes into one probe folder, `DEST/.mcr-preflight-<pid>`, which
//!   [`Probe::finish`] removes (with DEST itself, and its parents, when pre-flight created
//!   them). A probe folder left by a killed run is removed by the next one.
//! - Every call that touches a disk runs on its own thread and is waited for with a
//!   deadline, so a NAS that stopped answering (a hard NFS mount blocks forever) turns into
//!   a clear message instead of a hung pre-flight. After a destination timeout, no further
//!   destination probe is attempted.
//! - Each benchmark is bounded in time and size and stops early on Ctrl-C.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::machine;
use super::model::{
    Disk, Machine, NameCheck, NameFacts, NameOutcome, ReadBench, ScalingPoint, Spread, WriteBench,
    WriteRound,
};
use crate::fsinfo;
use crate::source::SourceLayout;

/// Prefix of the probe folder in DEST.
pub const PROBE_DIR_PREFIX: &str = ".mcr-preflight-";
/// Size of each file the per-file benchmark writes.
pub const SMALL_FILE_BYTES: usize = 4096;

/// Which side of the restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Dest,
}

impl Role {
    fn word(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Dest => "destination",
        }
    }
}

/// Why a probe gave no answer. Messages name the path.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the {role} {} did not answer within {secs} s while {what}: is it still mounted, and is the NAS on and reachable? (pre-flight gave up rather than hang)", path.display())]
    TimedOut {
        role: &'static str,
        path: PathBuf,
        what: String,
        secs: u64,
    },
    /// DEST cannot be written: nothing a restore does there could succeed.
    #[error("{0}")]
    Unwritable(String),
    /// DEST is full (no space, no inode left, a quota used up): what was refused, and why.
    #[error("{0}")]
    Full(String),
    #[error("interrupted")]
    Interrupted,
    /// Not started: it would not have ended by its share of `--budget` (says what).
    #[error("{0}")]
    OutOfTime(String),
    #[error("{0}")]
    Other(String),
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> ProbeError {
    let (what, path) = (what.to_string(), path.to_path_buf());
    move |source| ProbeError::Io { what, path, source }
}

/// How much a benchmark may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub time: Duration,
    pub max_bytes: u64,
    pub max_files: u64,
    /// When the whole call should be over, its setup and cleanup included (pre-flight's
    /// budget): over a slow share, creating and removing the test folders and files can
    /// take longer than the timed part. `None`: only `time` bounds the timed part.
    pub until: Option<Instant>,
}

/// Measures the machine and the disks. Benchmarks write only to DEST and must leave nothing
/// behind once [`Probe::finish`] has run.
pub trait Probe {
    fn machine(&mut self) -> Machine;
    /// The filesystem under SOURCE or DEST; a disk that has not answered by `until` (the
    /// checks' share of `--budget`) is [`ProbeError::TimedOut`].
    fn disk(&mut self, role: Role, until: Instant) -> Result<Disk, ProbeError>;
    /// Case sensitivity and refused characters of DEST. Test names that cannot be tried
    /// and removed again by `until` are not tried ([`NameOutcome::NotTested`]).
    fn names(&mut self, until: Instant) -> Result<NameFacts, ProbeError>;
    /// Source read throughput on sampled objects, page cache bypassed.
    fn source_read(&mut self, limits: &Limits) -> Result<ReadBench, ProbeError>;
    /// Destination sequential write throughput, flushed to stable storage.
    fn dest_write(&mut self, limits: &Limits) -> Result<WriteBench, ProbeError>;
    /// Destination per-file cost with `threads` workers for `limits.time`.
    fn per_file(&mut self, threads: usize, limits: &Limits) -> Result<ScalingPoint, ProbeError>;
    /// The least a per-file step at `threads` workers not measured yet would take, its
    /// setup and cleanup included, where the probe can foresee it (`None`: unknown).
    fn foresee_step(&self, _threads: usize) -> Option<Duration> {
        None
    }
    /// The least the write benchmark takes to measure anything (one round: its file made,
    /// a first chunk written and flushed, the file closed and removed), where the probe can
    /// foresee it (`None`: unknown).
    fn foresee_write(&self) -> Option<Duration> {
        None
    }
    /// Removes everything written; returns notes for the report (e.g. leftovers removed).
    fn finish(&mut self) -> Result<Vec<String>, ProbeError>;
}

/// The probe folder and the DEST folders pre-flight had to create (outermost first).
#[derive(Debug, Clone)]
struct Workspace {
    dir: PathBuf,
    created: Vec<PathBuf>,
}

/// The real prober.
pub struct RealProbe {
    source: SourceLayout,
    dest: PathBuf,
    /// contentIDs to read for the source benchmark.
    sample: Vec<String>,
    /// Extra time a disk call gets beyond its own budget before it counts as hung.
    grace: Duration,
    workspace: Option<Workspace>,
    dest_dead: Option<String>,
    /// Why the probe folder could not be made: DEST cannot be written (or is full), and
    /// later probes are not tried again.
    dest_refused: Option<ProbeError>,
    notes: Vec<String>,
    /// Per-file benchmark: the time its flush and cleanup took for each second of work,
    /// by worker count, as last measured (what a step keeps back to end by its `until`).
    tail_ratio: std::collections::BTreeMap<usize, f64>,
    /// How long making one folder on DEST took (the name tests' folder): the unit in which
    /// the cost of a per-file step not measured yet is foreseen.
    dest_op: Option<Duration>,
}

impl RealProbe {
    pub fn new(source: SourceLayout, dest: PathBuf, sample: Vec<String>) -> RealProbe {
        RealProbe {
            source,
            dest,
            sample,
            grace: Duration::from_secs(20),
            workspace: None,
            dest_dead: None,
            dest_refused: None,
            notes: Vec::new(),
            tail_ratio: Default::default(),
            dest_op: None,
        }
    }

    /// Sets how long a disk call may overrun before it counts as hung (tests use less).
    pub fn with_grace(mut self, grace: Duration) -> RealProbe {
        self.grace = grace;
        self
    }

    /// The probe folder, once created.
    pub fn probe_dir(&self) -> Option<&Path> {
        self.workspace.as_ref().map(|w| w.dir.as_path())
    }

    /// Runs `f` on its own thread and waits at most `budget` + grace for it.
    fn guarded<T: Send + 'static>(
        &mut self,
        role: Role,
        what: &str,
        budget: Duration,
        f: impl FnOnce() -> Result<T, ProbeError> + Send + 'static,
    ) -> Result<T, ProbeError> {
        let limit = budget + self.grace;
        self.guarded_for(role, what, limit, f)
    }

    /// Runs `f` on its own thread and waits at most `limit` for it: not back by then, the
    /// disk counts as not answering ([`ProbeError::TimedOut`]; DEST is not asked again).
    fn guarded_for<T: Send + 'static>(
        &mut self,
        role: Role,
        what: &str,
        limit: Duration,
        f: impl FnOnce() -> Result<T, ProbeError> + Send + 'static,
    ) -> Result<T, ProbeError> {
        if role == Role::Dest {
            if let Some(why) = &self.dest_dead {
                return Err(ProbeError::Other(format!("skipped: {why}")));
            }
        }
        match crate::held::within("mcr-probe", limit, f) {
            Some(r) => r,
            None => {
                let e = ProbeError::TimedOut {
                    role: role.word(),
                    path: match role {
                        Role::Source => self.source.files.clone(),
                        Role::Dest => self.dest.clone(),
                    },
                    what: what.to_string(),
                    secs: whole_secs(limit),
                };
                if role == Role::Dest {
                    self.dest_dead = Some(e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Creates the probe folder (and DEST if missing) on first use.
    fn workspace(&mut self) -> Result<PathBuf, ProbeError> {
        if let Some(w) = &self.workspace {
            return Ok(w.dir.clone());
        }
        match &self.dest_refused {
            Some(ProbeError::Full(why)) => return Err(ProbeError::Full(why.clone())),
            Some(e) => return Err(ProbeError::Unwritable(e.to_string())),
            None => {}
        }
        let dest = self.dest.clone();
        let made = self.guarded(
            Role::Dest,
            "creating the probe folder",
            Duration::ZERO,
            move || create_workspace(&dest),
        );
        match &made {
            Err(ProbeError::Unwritable(why)) => {
                self.dest_refused = Some(ProbeError::Unwritable(why.clone()))
            }
            Err(ProbeError::Full(why)) => self.dest_refused = Some(ProbeError::Full(why.clone())),
            _ => {}
        }
        let (ws, notes) = made?;
        self.notes.extend(notes);
        let dir = ws.dir.clone();
        self.workspace = Some(ws);
        Ok(dir)
    }
}

/// `d` in whole seconds for messages, rounded up (a wait of 0.6 s is not "0 s").
pub fn whole_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil() as u64
}

/// Whether a process with this id runs here (`/proc` says so; unknown counts as running).
fn pid_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
}

fn create_workspace(dest: &Path) -> Result<(Workspace, Vec<String>), ProbeError> {
    let mut notes = Vec::new();
    let mut missing = Vec::new();
    let mut cur = Some(dest);
    while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    std::fs::create_dir_all(dest).map_err(|e| unwritable(dest, e))?;
    // Leftovers of a pre-flight that was killed before it could clean up.
    if let Ok(rd) = std::fs::read_dir(dest) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(PROBE_DIR_PREFIX) else {
                continue;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|p| p != std::process::id() && !pid_alive(p)) {
                let p = entry.path();
                match std::fs::remove_dir_all(&p) {
                    Ok(()) => notes.push(format!(
                        "removed {} left by an interrupted pre-flight",
                        p.display()
                    )),
                    Err(e) => notes.push(format!(
                        "could not remove {} left by an interrupted pre-flight: {e}",
                        p.display()
                    )),
                }
            }
        }
    }
    let base = format!("{PROBE_DIR_PREFIX}{}", std::process::id());
    for n in 0..PROBE_DIR_TRIES {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = dest.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                return Ok((
                    Workspace {
                        dir,
                        created: missing,
                    },
                    notes,
                ))
            }
            Err(e)
                if e.kind() == io::ErrorKind::AlreadyExists && dir.symlink_metadata().is_ok() =>
            {
                continue
            }
            Err(e) => return Err(unwritable(&dir, e)),
        }
    }
    Err(ProbeError::Other(format!(
        "no free probe folder name in {} ({PROBE_DIR_TRIES} tried, each there already)",
        dest.display()
    )))
}

/// How many names the probe folder tries. Each is a round trip on a NAS; a name is taken
/// only by a pre-flight of this process id still running or a leftover not yet removed.
const PROBE_DIR_TRIES: u32 = 8;

/// Why DEST cannot be written, from the error creating `path` in it (DEST itself or the
/// probe folder): [`crate::config::why_not_made`], as a restore says it. A full one
/// (ENOSPC, EDQUOT) is [`ProbeError::Full`]: it can be written once room is made, and the
/// advice says what room (`model::advise`).
fn unwritable(path: &Path, e: io::Error) -> ProbeError {
    if crate::restore::copy::is_full(&e) {
        return ProbeError::Full(format!("cannot create {}: {e}", path.display()));
    }
    ProbeError::Unwritable(format!(
        "the destination cannot be written: cannot create {}: {}",
        path.display(),
        crate::config::why_not_made(path, &e)
    ))
}

fn remove_workspace(ws: &Workspace) -> Result<(), ProbeError> {
    match std::fs::remove_dir_all(&ws.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot remove the probe folder", &ws.dir)(e)),
    }
    // DEST (and parents) pre-flight created: only if still empty.
    for d in ws.created.iter().rev() {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
    }
    Ok(())
}

impl Probe for RealProbe {
    fn machine(&mut self) -> Machine {
        machine::probe()
    }

    fn disk(&mut self, role: Role, until: Instant) -> Result<Disk, ProbeError> {
        let path = match role {
            Role::Source => self.source.files.clone(),
            Role::Dest => self.dest.clone(),
        };
        let limit = until.saturating_duration_since(Instant::now());
        self.guarded_for(
            role,
            "reading its filesystem type and free space",
            limit,
            move || Ok(disk_of(&path)),
        )
    }

    fn names(&mut self, until: Instant) -> Result<NameFacts, ProbeError> {
        let dir = self.workspace()?.join("names");
        let budget = until.saturating_duration_since(Instant::now());
        let (facts, op) = self.guarded(Role::Dest, "testing names", budget, move || {
            name_checks(&dir, until)
        })?;
        self.dest_op = Some(op);
        Ok(facts)
    }

    fn source_read(&mut self, limits: &Limits) -> Result<ReadBench, ProbeError> {
        let (source, ids, limits) = (self.source.clone(), self.sample.clone(), *limits);
        self.guarded(
            Role::Source,
            "reading sample objects",
            limits.time,
            move || read_objects(&source, &ids, &limits),
        )
    }

    fn dest_write(&mut self, limits: &Limits) -> Result<WriteBench, ProbeError> {
        let dir = self.workspace()?;
        let limits = *limits;
        let budget = limits.until.map_or(limits.time, |u| {
            u.saturating_duration_since(Instant::now()).max(limits.time)
        });
        // A round needs at least a create, a close and a removal: about a folder made each.
        let least = 3 * self.dest_op.unwrap_or_default();
        self.guarded(Role::Dest, "writing a test file", budget, move || {
            let mut bench = WriteBench::default();
            for r in 0..2u32 {
                if super::stopping() {
                    return Err(ProbeError::Interrupted);
                }
                // Each round ends by its half of what is left of `until`, its create, flush
                // and removal included (over a slow share they take longer than the writes).
                // The first gets all of it when half would not leave two rounds room to write.
                let until = limits.until.map(|u| {
                    let now = Instant::now();
                    let left = u.saturating_duration_since(now);
                    if r == 0 && left / 2 < 2 * least {
                        now + left
                    } else {
                        now + left / (2 - r)
                    }
                });
                if until.is_some_and(|u| u <= Instant::now() + least) {
                    bench.cut_short = true;
                    break;
                }
                let half = Limits {
                    time: limits.time / 2,
                    max_bytes: limits.max_bytes / 2,
                    max_files: 1,
                    until,
                };
                let (round, cut) =
                    write_round(&dir.join(format!("sequential-{r}.bin")), &half, r.into())?;
                bench.cut_short |= cut;
                if round.bytes > 0 {
                    bench.rounds.push(round);
                }
            }
            if bench.rounds.is_empty() {
                return Err(ProbeError::OutOfTime(
                    "not measured: its share of --budget ran out before a first megabyte was written and flushed".into(),
                ));
            }
            Ok(bench)
        })
    }

    fn per_file(&mut self, threads: usize, limits: &Limits) -> Result<ScalingPoint, ProbeError> {
        let dir = self.workspace()?;
        let limits = *limits;
        // Not measured yet at this level: as much as at the worst level measured (more
        // workers leave more files to remove), or a guess before the first.
        let ratio = self
            .tail_ratio
            .get(&threads)
            .copied()
            .or_else(|| self.tail_ratio.values().copied().reduce(f64::max))
            .unwrap_or(TAIL_RATIO_GUESS);
        let (point, tail) = self.guarded(
            Role::Dest,
            &format!("creating small files with {threads} workers"),
            limits.time,
            move || per_file_level(&dir, threads.max(1), &limits, ratio),
        )?;
        self.tail_ratio.insert(threads, tail);
        Ok(point)
    }

    fn foresee_write(&self) -> Option<Duration> {
        self.dest_op.map(least_write_round)
    }

    fn foresee_step(&self, threads: usize) -> Option<Duration> {
        let op = self.dest_op?;
        (!self.tail_ratio.contains_key(&threads)).then(|| least_first_step(threads.max(1), op))
    }

    fn finish(&mut self) -> Result<Vec<String>, ProbeError> {
        let mut notes = std::mem::take(&mut self.notes);
        let Some(ws) = self.workspace.take() else {
            return Ok(notes);
        };
        if let Some(why) = &self.dest_dead {
            return Err(ProbeError::Other(format!(
                "could not remove the probe folder {} ({why}); delete it once the destination answers again",
                ws.dir.display()
            )));
        }
        let w = ws.clone();
        self.guarded(
            Role::Dest,
            "removing the probe folder",
            Duration::ZERO,
            move || remove_workspace(&w),
        )
        .map_err(|e| ProbeError::Other(format!("{e}; delete {} by hand", ws.dir.display())))?;
        notes.extend(std::mem::take(&mut self.notes));
        Ok(notes)
    }
}

/// Filesystem facts for `path` (or its nearest existing ancestor).
pub fn disk_of(path: &Path) -> Disk {
    let fs = fsinfo::probe(path);
    let at = fsinfo::existing_ancestor(path);
    let vfs = rustix::fs::statvfs(&at).ok();
    let network = fs.is_network();
    // What this process may write, as the restore counts it (root's reserve included as
    // root on a local filesystem).
    let writable = vfs.as_ref().map(|s| fsinfo::writable_blocks(s, &fs));
    let bytes = |blocks: u64| blocks.saturating_mul(vfs.as_ref().map_or(0, |s| s.f_frsize));
    Disk {
        path: path.to_path_buf(),
        network,
        free_bytes: writable.map(|w| bytes(w.blocks)),
        roots_reserve_bytes: writable
            .filter(|w| w.roots_reserve > 0)
            .map(|w| bytes(w.roots_reserve)),
        total_bytes: vfs.as_ref().map(|s| s.f_blocks.saturating_mul(s.f_frsize)),
        block_size: vfs.as_ref().map(|s| s.f_frsize).filter(|b| *b > 0),
        inodes: vfs.as_ref().and_then(fsinfo::inodes),
        rotational: if network {
            None
        } else {
            machine::rotational(&at)
        },
        device_id: rustix::fs::stat(&at).ok().map(|s| s.st_dev),
        physical_disk: if network {
            None
        } else {
            machine::physical_disk(&at)
        },
        fs,
    }
}

/// The names tried on DEST: what, the name, and whether the Windows policy avoids it.
fn name_tests() -> Vec<(&'static str, String, bool)> {
    let mut v: Vec<(&'static str, String, bool)> = [
        ("|", "a|b"),
        (":", "a:b"),
        ("?", "a?b"),
        ("*", "a*b"),
        ("<", "a<b"),
        (">", "a>b"),
        ("\"", "a\"b"),
        ("\\", "a\\b"),
        ("trailing dot", "ab."),
        ("trailing space", "ab "),
    ]
    .into_iter()
    .map(|(w, n)| (w, n.to_string(), true))
    .collect();
    v.push(("255-byte names", "n".repeat(251), false));
    v.push((
        "non-ASCII names",
        "e\u{301}t\u{e9} \u{65e5}\u{672c} \u{1f600}".to_string(),
        false,
    ));
    v
}

/// Creates test names in `dir` (created here, removed at the end) and reports what DEST did.
///
/// Every name is made first and the folder is listed once: a listing is two or three round
/// trips on a share, and listing after each name took 10 s at 100 ms a round trip (14
/// names), the whole of a 10 s `--budget` before any benchmark (6.7 s then). Making the
/// names on threads gains nothing: the kernel makes the names of one folder one at a time.
///
/// Over a slow share even that does not fit a small budget (a name took 0.3-0.45 s at
/// 100 ms a round trip): a name is made only while it, the listing and the removal of every
/// name made so far can still end by `until`, foreseen from how long making the folder and
/// the slowest name took. The rest are [`NameOutcome::NotTested`], never counted as
/// accepted or refused; the case test comes first (it matters most). Also returns how long
/// making the folder took (one folder made on DEST: the unit the per-file steps are
/// foreseen in).
fn name_checks(dir: &Path, until: Instant) -> Result<(NameFacts, Duration), ProbeError> {
    let begun = Instant::now();
    std::fs::create_dir(dir).map_err(io_err("cannot create", dir))?;
    let op = begun.elapsed();
    let result = (|| {
        let slowest = std::cell::Cell::new(op);
        let mut made_count = 0u32;
        // Whether one more name fits: it, the listing (about a folder made) and the removal
        // (of the folder and of each name, about half that each) before `until`. Over sshfs
        // at 100 ms a round trip: a folder made 0.31 s, a name 0.3-0.45 s, the listing 0.3 s,
        // a name removed 0.1 s, the folder 0.15 s.
        let next = |made: &mut u32| {
            let tail = op + op / 2 + (*made + 1) * op / 2;
            if Instant::now() + slowest.get() + tail > until {
                return None;
            }
            *made += 1;
            Some(())
        };
        let create = |p: &Path| {
            let t = Instant::now();
            let r = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map(drop);
            slowest.set(slowest.get().max(t.elapsed()));
            r
        };
        let out_of_time = || NameOutcome::NotTested {
            reason: "out of time".into(),
        };
        let mut case_insensitive = None;
        if next(&mut made_count).is_some() {
            let lower = dir.join("case-probe");
            create(&lower).map_err(io_err("cannot create", &lower))?;
            if next(&mut made_count).is_some() {
                case_insensitive = match create(&dir.join("CASE-PROBE")) {
                    Ok(()) => Some(false),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(true),
                    Err(_) => None,
                };
            }
        }
        let made: Vec<_> = name_tests()
            .into_iter()
            .enumerate()
            .map(|(i, (what, name, windows_rule))| {
                let prefix = format!("t{i:02}-");
                let full = format!("{prefix}{name}");
                let made = next(&mut made_count).map(|()| create(&dir.join(&full)));
                (what, windows_rule, prefix, full, made)
            })
            .collect();
        let listed: Vec<String> = if made_count == 0 {
            Vec::new()
        } else {
            std::fs::read_dir(dir)
                .map_err(io_err("cannot list", dir))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        };
        let checks = made
            .into_iter()
            .map(|(what, windows_rule, prefix, full, made)| {
                let outcome = match made {
                    None => out_of_time(),
                    Some(Err(e)) => NameOutcome::Rejected {
                        error: e.to_string(),
                    },
                    Some(Ok(())) => match listed.iter().find(|n| n.starts_with(&prefix)) {
                        Some(n) if *n == full => NameOutcome::Accepted,
                        Some(n) => NameOutcome::Altered {
                            stored_as: n.clone(),
                        },
                        None => NameOutcome::Altered {
                            stored_as: "(not listed)".into(),
                        },
                    },
                };
                NameCheck {
                    what: what.to_string(),
                    windows_rule,
                    outcome,
                }
            })
            .collect();
        Ok(NameFacts {
            case_insensitive,
            checks,
        })
    })();
    // Always, even past `until` or the whole budget: no test name stays on DEST.
    let removed = std::fs::remove_dir_all(dir).map_err(io_err("cannot remove", dir));
    let facts = result?;
    removed?;
    Ok((facts, op))
}

/// Opens an object read-only without touching its access time where the kernel allows it.
fn open_object(p: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(p)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(p),
        r => r,
    }
}

fn read_some(f: &mut File, buf: &mut [u8], path: &Path) -> Result<usize, ProbeError> {
    loop {
        match f.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("cannot read", path)(e)),
        }
    }
}

/// Reads sampled objects, each after dropping its cached pages, and times the first read
/// (a small file's whole cost) apart from the streaming that follows.
fn read_objects(
    source: &SourceLayout,
    ids: &[String],
    limits: &Limits,
) -> Result<ReadBench, ProbeError> {
    const FIRST: usize = 64 << 10;
    const CHUNK: usize = 1 << 20;
    const PER_OBJECT_CAP: u64 = 32 << 20;
    use rustix::fs::{fadvise, Advice};

    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut b = ReadBench {
        cache_bypassed: true,
        ..Default::default()
    };
    // Per object: bytes, total seconds.
    let mut per: Vec<(u64, f64)> = Vec::new();
    let (mut opens, mut firsts) = (Vec::new(), Vec::new());
    let (mut stream_bytes, mut stream_secs) = (0u64, 0f64);
    for id in ids {
        if start.elapsed() >= limits.time
            || b.bytes >= limits.max_bytes
            || b.objects >= limits.max_files
        {
            break;
        }
        if super::stopping() {
            return Err(ProbeError::Interrupted);
        }
        if !crate::source::is_safe_content_id(id) {
            continue;
        }
        let candidates = [source.sharded_object_path(id), Some(source.files.join(id))];
        let t0 = Instant::now();
        let mut opened = None;
        for p in candidates.into_iter().flatten() {
            match open_object(&p) {
                Ok(f) => {
                    opened = Some((f, p));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => break,
            }
        }
        let open_s = t0.elapsed().as_secs_f64();
        let Some((mut f, path)) = opened else {
            b.missing += 1;
            continue;
        };
        // Drop the object's cached pages so the read comes from the disk.
        if fadvise(&f, 0, 0, Advice::DontNeed).is_err() {
            b.cache_bypassed = false;
        }
        let t1 = Instant::now();
        let first = read_some(&mut f, &mut buf[..FIRST], &path)? as u64;
        let first_s = open_s + t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        let mut rest = 0u64;
        if first > 0 {
            while first + rest < PER_OBJECT_CAP && start.elapsed() < limits.time {
                let n = read_some(&mut f, &mut buf, &path)?;
                if n == 0 {
                    break;
                }
                rest += n as u64;
            }
        }
        let rest_s = t2.elapsed().as_secs_f64();
        // Leave the cache as we found it: without the pages we just read.
        let _ = fadvise(&f, 0, 0, Advice::DontNeed);
        opens.push(open_s * 1000.0);
        firsts.push(first_s * 1000.0);
        stream_bytes += rest;
        stream_secs += rest_s;
        per.push((first + rest, first_s + rest_s));
        b.objects += 1;
        b.bytes += first + rest;
        b.secs += first_s + rest_s;
    }
    if b.objects == 0 {
        return Err(ProbeError::Other(format!(
            "none of the {} sampled contentIDs has a readable object under {}",
            b.missing,
            source.files.display()
        )));
    }
    b.open_ms = Spread::of(opens);
    b.first_byte_ms = Spread::of(firsts);
    b.stream_bytes_per_s =
        (stream_bytes >= 4 << 20 && stream_secs > 0.0).then(|| stream_bytes as f64 / stream_secs);
    if per.len() >= 4 {
        for chunk in per.chunks(per.len().div_ceil(4)) {
            let (bytes, secs) = chunk
                .iter()
                .fold((0u64, 0f64), |(b, s), (x, y)| (b + x, s + y));
            if secs > 0.0 {
                b.batch_bytes_per_s.push(bytes as f64 / secs);
            }
        }
    }
    Ok(b)
}

/// Incompressible test data (compression on the destination would flatter zeros).
fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Writes one file sequentially (syncing every 16 MB, so the clock sees the disk and not
/// the page cache), fsyncs it, and removes it. With `limits.until`, the writes stop early
/// enough for the final flush, the close and the removal to end by then, foreseen from
/// what the create and the last flush took; the flag says the round was cut short so
/// (what it wrote is still measured, flush included). Nothing is written when even that
/// does not fit (`bytes` 0).
fn write_round(path: &Path, limits: &Limits, round: u64) -> Result<(WriteRound, bool), ProbeError> {
    const CHUNK: usize = 1 << 20;
    const SYNC_EVERY: u64 = 16 << 20;
    let mut data = test_data(CHUNK, round + 1);
    let made = Instant::now();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("cannot create", path))?;
    let create = made.elapsed();
    let mut cut = false;
    let result = (|| {
        let t = Instant::now();
        let (mut bytes, mut unsynced) = (0u64, 0u64);
        // The end: the close and the removal (about a create each), and the last flush,
        // foreseen as long as the last periodic one (a create before there is one).
        let mut last_flush = create;
        while bytes < limits.max_bytes.max(CHUNK as u64) && t.elapsed() < limits.time {
            if super::stopping() {
                return Err(ProbeError::Interrupted);
            }
            if limits
                .until
                .is_some_and(|u| Instant::now() + 2 * create + last_flush >= u)
            {
                cut = true;
                break;
            }
            data[..8].copy_from_slice(&bytes.to_le_bytes());
            f.write_all(&data).map_err(io_err("cannot write", path))?;
            bytes += CHUNK as u64;
            unsynced += CHUNK as u64;
            if unsynced >= SYNC_EVERY {
                let ts = Instant::now();
                f.sync_data().map_err(io_err("cannot flush", path))?;
                last_flush = ts.elapsed();
                unsynced = 0;
            }
        }
        let ts = Instant::now();
        f.sync_all().map_err(io_err("cannot flush", path))?;
        Ok(WriteRound {
            bytes,
            secs: t.elapsed().as_secs_f64(),
            fsync_secs: ts.elapsed().as_secs_f64(),
        })
    })();
    drop(f);
    // Always, whatever the time: nothing of the probe's stays on DEST.
    let removed = std::fs::remove_file(path).map_err(io_err("cannot remove", path));
    let r = result?;
    removed?;
    Ok((r, cut))
}

/// What the restore does per file, minus the data, the same way it will: an unnamed file
/// created in the open folder and linked into place where the destination supports it
/// (`unnamed`, the worker's folder kept open), else a temporary file renamed into place;
/// write a little, set its dates, close.
fn one_file(
    tmp: &Path,
    fin: &Path,
    data: &[u8],
    t: SystemTime,
    unnamed: Option<&crate::restore::copy::Folder>,
) -> Result<(), ProbeError> {
    if let Some(folder) = unnamed {
        let dir = folder.path();
        let mut f = folder
            .create_unnamed()
            .map_err(io_err("cannot create in", dir))?;
        f.write_all(data).map_err(io_err("cannot write", fin))?;
        f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
            .map_err(io_err("cannot set dates on", fin))?;
        let name = fin.file_name().unwrap_or_default();
        return folder.link(&f, name).map_err(io_err("cannot link", fin));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(io_err("cannot create", tmp))?;
    f.write_all(data).map_err(io_err("cannot write", tmp))?;
    f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
        .map_err(io_err("cannot set dates on", tmp))?;
    drop(f);
    std::fs::rename(tmp, fin).map_err(io_err("cannot rename into", fin))
}

/// What a per-file step keeps back for its flush and cleanup, per second of work, before
/// one has been measured. Measured: 0.02-0.1 on a local disk, 0.3-0.9 over sshfs with
/// 10-20 ms round trips (more with more workers: more files to remove).
const TAIL_RATIO_GUESS: f64 = 0.5;

/// Per-file cost with `threads` workers, each in its own folder, for `limits.time`, then a
/// `syncfs` (what restore's default batch durability does); the files are removed
/// afterwards, untimed. With `limits.until`, the whole step (folders made, flush and
/// cleanup included) aims to end by then: the timed part is shortened by what the setup
/// took and by `tail_ratio` times itself, kept back for the flush and cleanup (the caller
/// learns it from the ratio returned with the point: what they took per second of work).
fn per_file_level(
    dir: &Path,
    threads: usize,
    limits: &Limits,
    tail_ratio: f64,
) -> Result<(ScalingPoint, f64), ProbeError> {
    let level = dir.join(format!("files-{threads}"));
    let begun = Instant::now();
    std::fs::create_dir(&level).map_err(io_err("cannot create", &level))?;
    // One folder per worker: a restore spreads files over many folders (about four files per
    // folder on real devices), and creates in one folder serialise on its lock, which on
    // NFS/SMB would hide exactly the parallelism being measured. Folders made in one folder
    // queue on its lock too: 64 of them took 4 s over sshfs with 20 ms round trips, so they
    // sit in groups (about the square root of the workers), each group filled in parallel.
    let groups = worker_groups(threads);
    for g in 0..groups {
        let d = level.join(format!("g{g}"));
        if let Err(e) = std::fs::create_dir(&d) {
            let _ = std::fs::remove_dir_all(&level);
            return Err(io_err("cannot create", &d)(e));
        }
    }
    let made: Vec<Result<(), ProbeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..groups)
            .map(|g| {
                let level = &level;
                s.spawn(move || {
                    for t in (g..threads).step_by(groups) {
                        let d = worker_dir(level, t, groups);
                        std::fs::create_dir(&d).map_err(io_err("cannot create", &d))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ProbeError::Other("a setup thread panicked".into())))
            })
            .collect()
    });
    if let Some(e) = made.into_iter().find_map(Result::err) {
        let _ = std::fs::remove_dir_all(&level);
        return Err(e);
    }
    // Flush what earlier steps left dirty, so the timed sync below is this level's own.
    if let Ok(d) = File::open(&level) {
        let _ = rustix::fs::syncfs(&d);
    }
    let data = test_data(SMALL_FILE_BYTES, threads as u64);
    let unnamed = crate::restore::copy::Folder::open(&level)
        .and_then(|f| f.create_unnamed())
        .is_ok();
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    let mut slice = limits.time;
    if let Some(until) = limits.until {
        let left = until.saturating_duration_since(Instant::now());
        slice = slice.min(left.div_f64(1.0 + tail_ratio.max(0.0)));
    }
    let slice = slice.max(Duration::from_millis(50));
    let setup_secs = begun.elapsed().as_secs_f64();
    let reserved = AtomicU64::new(0);
    let start = Instant::now();
    // Per worker: files done, files per third of the slice, first error.
    type WorkerResult = (u64, [u64; 3], Option<ProbeError>);
    let results: Vec<WorkerResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (level, data, reserved) = (&level, &data, &reserved);
                s.spawn(move || {
                    let (mut done, mut thirds) = (0u64, [0u64; 3]);
                    // The worker's folder, kept open as a restore worker keeps its own.
                    let d = worker_dir(level, t, groups);
                    let folder = match unnamed
                        .then(|| crate::restore::copy::Folder::open(&d))
                        .transpose()
                    {
                        Ok(f) => f,
                        Err(e) => return (0, thirds, Some(io_err("cannot open", &d)(e))),
                    };
                    loop {
                        if start.elapsed() >= slice
                            || super::stopping()
                            || reserved.fetch_add(1, Ordering::Relaxed) >= limits.max_files
                        {
                            return (done, thirds, None);
                        }
                        let tmp = d.join(format!(".t{done}"));
                        let fin = d.join(format!("f{done}"));
                        if let Err(e) = one_file(&tmp, &fin, data, stamp, folder.as_ref()) {
                            return (done, thirds, Some(e));
                        }
                        done += 1;
                        let k =
                            (start.elapsed().as_secs_f64() / slice.as_secs_f64() * 3.0) as usize;
                        thirds[k.min(2)] += 1;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        0,
                        [0; 3],
                        Some(ProbeError::Other("a benchmark thread panicked".into())),
                    )
                })
            })
            .collect()
    });
    let work_secs = start.elapsed().as_secs_f64();
    let ts = Instant::now();
    let synced = File::open(&level)
        .and_then(|d| rustix::fs::syncfs(&d).map_err(io::Error::from))
        .map_err(io_err("cannot flush", &level));
    let sync_secs = ts.elapsed().as_secs_f64();
    let tc = Instant::now();
    // Clean up in parallel (a NAS deletes faster with several requests in flight).
    let cleanup: Vec<Result<(), ProbeError>> = std::thread::scope(|s| {
        let handles: Vec<_> = results
            .iter()
            .enumerate()
            .map(|(t, (done, _, _))| {
                let level = &level;
                s.spawn(move || -> Result<(), ProbeError> {
                    let d = worker_dir(level, t, groups);
                    for i in 0..*done {
                        let p = d.join(format!("f{i}"));
                        std::fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
                    }
                    let _ = std::fs::remove_file(d.join(format!(".t{done}")));
                    std::fs::remove_dir(&d).map_err(io_err("cannot remove", &d))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(ProbeError::Other("a cleanup thread panicked".into())))
            })
            .collect()
    });
    let files: u64 = results.iter().map(|r| r.0).sum();
    let mut thirds = [0u64; 3];
    for r in &results {
        for (k, n) in r.1.iter().enumerate() {
            thirds[k] += n;
        }
    }
    if let Some(e) = results.into_iter().find_map(|r| r.2) {
        let _ = std::fs::remove_dir_all(&level);
        return Err(e);
    }
    for c in cleanup {
        c?;
    }
    for g in 0..groups {
        let d = level.join(format!("g{g}"));
        std::fs::remove_dir(&d).map_err(io_err("cannot remove", &d))?;
    }
    std::fs::remove_dir(&level).map_err(io_err("cannot remove", &level))?;
    synced?;
    if super::stopping() {
        return Err(ProbeError::Interrupted);
    }
    let cleanup_secs = tc.elapsed().as_secs_f64();
    let tail = (sync_secs + cleanup_secs) / work_secs.max(0.01);
    let mut point = scaling_point(threads, files, thirds, work_secs, sync_secs, slice);
    point.setup_secs = setup_secs;
    point.cleanup_secs = cleanup_secs;
    Ok((point, tail))
}

/// The least a per-file step at `threads` workers takes before it has been measured, from
/// `op`, the time making one folder on DEST took: its folders made (the level's, the
/// groups' and, in parallel groups, the workers'; each about an `op`, with 20% more for
/// the rest of its setup) and removed again (about as long), and a first file per worker
/// (3 `op`s at least; a share's connection makes about 3 files an `op` with many workers).
/// Over sshfs at 100 ms a round trip (`op` 0.3 s) this foresaw 3.1 s at 1 worker and 18.6 s
/// at 64 for steps measured at about 2.5-3.5 s and 17.6 s.
fn least_first_step(threads: usize, op: Duration) -> Duration {
    let groups = worker_groups(threads);
    let folders = 1 + groups + threads.div_ceil(groups);
    let files = (threads as f64 / 3.0).max(3.0);
    op.mul_f64(2.4 * folders as f64 + files)
}

/// The least a write round takes before it has been measured, from `op`, the time making
/// one folder on DEST took: its file made (an `op`), and a first chunk written only while
/// the flush, the close and the removal still fit after it (`write_round` keeps back two
/// creates and a flush, about three `op`s), with an `op` for the chunk itself.
fn least_write_round(op: Duration) -> Duration {
    5 * op
}

/// How many folders the worker folders of a per-file step are spread over.
fn worker_groups(threads: usize) -> usize {
    (threads as f64).sqrt().ceil().max(1.0) as usize
}

/// Worker `t`'s own folder in a per-file step.
fn worker_dir(level: &Path, t: usize, groups: usize) -> PathBuf {
    level.join(format!("g{}", t % groups)).join(format!("w{t}"))
}

/// A per-file step tells its slowest third only where each worker finished at least this
/// many files a third on average. With fewer, a third can end with no file finished
/// although nothing stalled: 1 worker over a share with 100 ms round trips finished its 3
/// files at 0.35, 0.7 and 1.05 s of a 1 s slice, none in the first third, and the
/// estimate's worst case said "unbounded (a benchmark stalled)".
pub const MIN_FILES_PER_THIRD: u64 = 3;

/// Rates from the counts: the sync is charged to every third alike; the low rate is the
/// slowest third (only when the slice ran to its end, not when the file cap stopped it,
/// and each worker finished [`MIN_FILES_PER_THIRD`] files a third on average). Otherwise
/// the low is the overall rate, and the point says it had too few files to tell
/// (`few_files`) where that is why.
pub(super) fn scaling_point(
    threads: usize,
    files: u64,
    thirds: [u64; 3],
    work_secs: f64,
    sync_secs: f64,
    slice: Duration,
) -> ScalingPoint {
    let secs = work_secs + sync_secs;
    let files_per_s = if secs > 0.0 { files as f64 / secs } else { 0.0 };
    let ran_to_its_end = work_secs >= 0.95 * slice.as_secs_f64();
    // Thirds with only a file or two per worker say nothing about stalls: one file's
    // finish falling just past a third's end empties it.
    let few_files = ran_to_its_end && files < 3 * MIN_FILES_PER_THIRD * threads as u64;
    let low_files_per_s = match thirds.iter().min() {
        Some(&low) if ran_to_its_end && !few_files && secs > 0.0 => {
            let third = slice.as_secs_f64() / 3.0;
            (low as f64 / third * work_secs / secs).min(files_per_s)
        }
        _ => files_per_s,
    };
    ScalingPoint {
        threads,
        files,
        secs,
        sync_secs,
        files_per_s,
        low_files_per_s,
        few_files,
        ..Default::default()
    }
}
