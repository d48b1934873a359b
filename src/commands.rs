//! One function per subcommand: turn checked options into work and print the result.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use crate::cli::{InspectArgs, PlanArgs, RestoreArgs, StatusArgs};
use crate::config::{self, RestoreConfig};
use crate::exit::Exit;
use crate::fsinfo;
use crate::plan::{Origin, Plan};
use crate::report::{
    count, human_bytes, plural, BarProgress, Listener, PlainProgress, Quiet, Report,
};
use crate::restore::watch::{watched, Watch};
use crate::source::index::Index;

fn open_index(layout: &crate::source::SourceLayout) -> anyhow::Result<Index> {
    Ok(Index::open(&layout.db, layout.backup_db.as_deref())?)
}

/// What `inspect` reports.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub database: std::path::PathBuf,
    #[serde(serialize_with = "crate::report::lossy::path")]
    pub files_dir: std::path::PathBuf,
    #[serde(serialize_with = "crate::report::lossy::opt_path")]
    pub backup_database: Option<std::path::PathBuf>,
    pub integrity: Vec<String>,
    pub counts: crate::source::index::IndexCounts,
    pub users: Vec<crate::plan::UserRoot>,
    pub trash_files: u64,
    pub unlinked_files: u64,
    pub structure_problems: Vec<crate::plan::Problem>,
    pub names_policy: crate::plan::names::NamePolicy,
    pub renamed_files: u64,
    pub renamed_folders: u64,
    pub objects_sampled: u64,
    pub objects_found: u64,
    #[serde(serialize_with = "crate::report::lossy::opt_path")]
    pub user_storage_dir: Option<std::path::PathBuf>,
    pub warnings: Vec<String>,
}

/// `inspect SOURCE`, its reads of the source watched ([`crate::restore::watch`]): a
/// source that does not answer stops it with a message (exit 2), not a silent hang.
pub fn inspect(a: &InspectArgs) -> anyhow::Result<Exit> {
    let w = Watch::new("`inspect`", "while `inspect` ran", &a.source, None);
    let a = a.clone();
    watched(&w, move || inspected(&a))
}

fn inspected(a: &InspectArgs) -> anyhow::Result<Exit> {
    let layout = config::source(&a.source)?;
    let index = open_index(&layout)?;
    let integrity = index.quick_check()?;
    let counts = index.counts()?;
    let select = crate::cli::SelectArgs {
        names: a.names,
        include_trash: true,
        ..Default::default()
    };
    let opts = config::plan_options(
        &select,
        &fsinfo::probe(Path::new("/")),
        config::default_dates(),
    )?;
    let policy = opts.policy;
    let plan = Plan::build(&index, opts)?;
    let (mut trash, mut unlinked, mut renamed) = (0u64, 0u64, 0u64);
    let mut structure_problems = plan.problems().to_vec();
    plan.for_each_file_any_order(&index, |f| {
        structure_problems.extend(f.problems());
        match f.origin {
            Origin::Trash => trash += 1,
            Origin::Unlinked => unlinked += 1,
            _ => {}
        }
        renamed += f.renamed_from.is_some() as u64;
    })?;
    let sample = index.sample_content_ids(a.sample)?;
    let (found, few) = layout.sample_objects(&sample)?;
    let mut warnings: Vec<String> = plan.index_notes(&index);
    warnings.extend(few);
    let user_storage = layout.user_storage();
    if !integrity.is_empty() {
        warnings.push(format!(
            "SQLite integrity check reported problems in {}; consider --db with the backup copy{}",
            layout.db.display(),
            layout
                .backup_db
                .as_ref()
                .map(|b| format!(" {}", b.display()))
                .unwrap_or_default()
        ));
    }
    let ins = Inspection {
        database: layout.db.clone(),
        files_dir: layout.files.clone(),
        backup_database: layout.backup_db.clone(),
        integrity,
        counts,
        users: plan.users().to_vec(),
        trash_files: trash,
        unlinked_files: unlinked,
        structure_problems,
        names_policy: policy,
        renamed_files: renamed,
        renamed_folders: plan.folder_renames().len() as u64,
        objects_sampled: sample.len() as u64,
        objects_found: found,
        user_storage_dir: user_storage,
        warnings,
    };
    print_verdict(Exit::Ok, |out| print_inspection(out, a.json, &ins))
}

/// What `inspect` prints (`json`: as JSON).
fn print_inspection(out: &mut dyn Write, json: bool, ins: &Inspection) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, ins)?;
        writeln!(out)?;
    } else {
        writeln!(out, "Database:  {}", ins.database.display())?;
        if let Some(b) = &ins.backup_database {
            writeln!(out, "Backup:    {}", b.display())?;
        }
        writeln!(out, "Objects:   {}", ins.files_dir.display())?;
        writeln!(
            out,
            "Integrity: {}",
            if ins.integrity.is_empty() {
                "ok".to_string()
            } else {
                ins.integrity.join("; ")
            }
        )?;
        writeln!(
            out,
            "Files: {}  Folders: {}  Bytes: {}  (files without contentID: {})",
            count(ins.counts.files),
            count(ins.counts.folders),
            human_bytes(ins.counts.bytes),
            count(ins.counts.files_without_content_id)
        )?;
        writeln!(out, "Users: {}", count(ins.users.len() as u64))?;
        for u in &ins.users {
            writeln!(
                out,
                "  {}  ({})",
                u.name,
                if u.label.is_empty() {
                    "restored at the top".to_string()
                } else {
                    format!("restored under {}/", u.label)
                }
            )?;
        }
        writeln!(
            out,
            "Files in Trash: {} (restored only with --include-trash)",
            count(ins.trash_files)
        )?;
        writeln!(
            out,
            "Files with a broken parent chain: {} (restored under _unlinked/)",
            count(ins.unlinked_files)
        )?;
        writeln!(
            out,
            "Rows with a missing parent, on a parent cycle or with an unusable size: {}",
            count(ins.structure_problems.len() as u64)
        )?;
        for p in ins.structure_problems.iter().take(20) {
            writeln!(out, "  {} {:?}: {}", p.id, p.name, p.kind)?;
        }
        writeln!(
            out,
            "Names changed under {:?} rules: {}, {}",
            ins.names_policy,
            plural(ins.renamed_files, "file", "files"),
            plural(ins.renamed_folders, "folder", "folders")
        )?;
        writeln!(
            out,
            "Object store sample: {} of {} contentIDs found",
            count(ins.objects_found),
            count(ins.objects_sampled)
        )?;
        for w in &ins.warnings {
            writeln!(out, "WARNING: {w}")?;
        }
    }
    Ok(())
}

/// `plan SOURCE DEST`, its looks at both watched ([`crate::restore::watch`]): a disk that
/// does not answer stops it with a message (exit 2), not a silent hang. The listing is
/// written as it is made (a pager reading it may hold it: waited for, as the disks answer).
pub fn plan(a: &PlanArgs) -> anyhow::Result<Exit> {
    let w = Watch::new("`plan`", "while `plan` ran", &a.source, Some(&a.dest))
        .state_dir(a.state_dir.as_deref());
    let a = a.clone();
    watched(&w, move || planned(&a))
}

fn planned(a: &PlanArgs) -> anyhow::Result<Exit> {
    let layout = config::source(&a.source)?;
    config::check_dest(&layout, &a.dest)?;
    let fs = fsinfo::probe(&a.dest);
    // The names and date fields a restore into DEST has used so far (its checkpoint says).
    config::given_state_dir(a.state_dir.as_deref())?;
    let state_dir = a
        .state_dir
        .clone()
        .unwrap_or_else(|| crate::state::default_state_dir(&layout.db, &a.dest));
    let dates = config::dates_from(a.mtime_from.as_deref(), &state_dir)?;
    let mut opts = config::plan_options(&a.select, &fs, dates)?;
    config::follow_recorded_names(&mut opts, a.select.names, &state_dir);
    let index = open_index(&layout)?;
    let plan = Plan::build(&index, opts)?;
    for n in plan.index_notes(&index) {
        print_err(&format!("note: {n}\n"));
    }
    // What the restore's look at the object store would say, or stop on.
    match crate::restore::look_for_objects(&layout, &index) {
        Ok(look) => {
            for w in &look.warnings {
                print_err(&format!("warning: {w}\n"));
            }
            if let Some(why) = look.blocking {
                print_err(&format!(
                    "warning: {why}. A restore from here stops before it writes anything\n"
                ));
            }
        }
        Err(e) => print_err(&format!(
            "warning: {e:#}. A restore from here stops before it writes anything\n"
        )),
    }
    // What a dry run says of DEST (a disk mounted read-only, a folder this user may not
    // write): the restore would be refused there (exit 2), which the listing alone hides.
    if let Err(e) = crate::restore::would_make_and_write(&a.dest) {
        print_err(&format!(
            "warning: {e:#}. A restore into it would be refused before it writes anything (exit 2)\n"
        ));
    }
    // Its verdict is "ok" whatever it lists: `plan | head` exits 0.
    print_verdict(Exit::Ok, |out| {
        let mut totals = crate::plan::PlanTotals {
            folders: 0,
            ..Default::default()
        };
        let mut file_problems: Vec<crate::plan::Problem> = Vec::new();
        // The first write that failed (the reader gone: `plan | head`): nothing more is
        // written, and the listing ends with it (it went on writing to the end).
        let mut unwritten: Option<std::io::Error> = None;
        // The listing follows the restore's order; the summary alone needs no order.
        plan.for_each_file_by(&index, !a.summary, |f| {
            if unwritten.is_some() {
                return;
            }
            totals.files += 1;
            match f.skip {
                None => {
                    totals.selected_files += 1;
                    totals.selected_bytes = totals.selected_bytes.saturating_add(f.size);
                    totals.undated_files += f.mtime_ms.is_none() as u64;
                    totals.renamed_files += f.renamed_from.is_some() as u64;
                }
                Some(_) => totals.filtered += 1,
            }
            file_problems.extend(f.problems());
            if a.summary {
                return;
            }
            let written = if a.json {
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({
                        "type": "file", "id": f.id, "path": f.rel_path, "size": f.size,
                        "mtime_ms": f.mtime_ms, "origin": f.origin, "renamed_from": f.renamed_from,
                        "skip": f.skip,
                    }),
                )
                .map_err(std::io::Error::from)
                .and_then(|_| writeln!(out))
            } else {
                let skip = f
                    .skip
                    .map(|s| format!("  [skipped: {}]", s.describe()))
                    .unwrap_or_default();
                let ren = f
                    .renamed_from
                    .as_ref()
                    .map(|o| format!("  [renamed from {o:?}]"))
                    .unwrap_or_default();
                writeln!(out, "{}{ren}{skip}", f.rel_path)
            };
            unwritten = written.err();
        })?;
        if let Some(e) = unwritten {
            return Err(e.into());
        }
        totals.folders = plan.folders_deepest_first().len() as u64;
        if a.json && !a.summary {
            for f in plan.folders_deepest_first() {
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"type": "folder", "path": f.rel_path, "mtime_ms": f.mtime_ms, "origin": f.origin}),
                )?;
                writeln!(out)?;
            }
        }
        if a.json {
            for r in plan.folder_renames() {
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"type": "folder_rename", "original": r.original, "restored": r.restored}),
                )?;
                writeln!(out)?;
            }
            for p in plan.problems().iter().chain(&file_problems) {
                serde_json::to_writer(
                    &mut *out,
                    &serde_json::json!({"type": "problem", "problem": p}),
                )?;
                writeln!(out)?;
            }
            serde_json::to_writer(
                &mut *out,
                &serde_json::json!({"type": "summary", "totals": totals, "names": plan.options().policy, "dest_fstype": fs.fstype}),
            )?;
            writeln!(out)?;
        } else {
            for r in plan.folder_renames() {
                writeln!(out, "folder renamed: {:?} -> {}", r.original, r.restored)?;
            }
            for p in plan.problems().iter().chain(&file_problems) {
                writeln!(
                    out,
                    "problem: {} {:?}: {} -> {}",
                    p.id, p.name, p.kind, p.restored_path
                )?;
            }
            writeln!(
            out,
            "Plan: {} ({} selected, {}; {} not selected; {} without a plausible date), {}, {}, {}, {}; names: {:?} ({} destination). Nothing was written.",
            plural(totals.files, "file", "files"), count(totals.selected_files), human_bytes(totals.selected_bytes), count(totals.filtered),
            count(totals.undated_files), plural(totals.folders, "folder", "folders"),
            plural(totals.renamed_files, "renamed file", "renamed files"),
            plural(plan.folder_renames().len() as u64, "renamed folder", "renamed folders"),
            plural((plan.problems().len() + file_problems.len()) as u64, "structure problem", "structure problems"),
            plan.options().policy, fs.fstype
        )?;
        }
        Ok(())
    })
}

/// The exit status a finished restore maps to.
pub fn restore_exit(r: &Report) -> Exit {
    if r.interrupted {
        Exit::Interrupted
    } else if r.all_good() {
        Exit::Ok
    } else {
        Exit::Incomplete
    }
}

/// Picks the progress listener: a bar on a terminal, plain lines otherwise.
pub fn listener(cfg: &RestoreConfig) -> Box<dyn Listener> {
    if cfg.quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(BarProgress::new())
    } else {
        Box::new(PlainProgress::new(std::io::stderr(), cfg.progress_interval))
    }
}

pub fn run_restore(cfg: &RestoreConfig) -> anyhow::Result<Exit> {
    crate::restore::install_signal_handler();
    let mut ui = listener(cfg);
    let report = match crate::restore::restore(cfg, ui.as_mut()) {
        Err(e) if e.is::<crate::restore::StoppedWhilePlanning>() => {
            print_err(&format!("mycloud-recover: {e}\n"));
            return Ok(Exit::Interrupted);
        }
        // A source that did not answer while the run planned: stopped by its disks (exit 1),
        // nothing written.
        Err(e) if e.is::<crate::restore::HeldBeforeWriting>() => {
            print_err(&format!("mycloud-recover: stopped: {e}\n"));
            return Ok(Exit::Incomplete);
        }
        r => r?,
    };
    print_out(&report.summary());
    Ok(restore_exit(&report))
}

/// Writes `text` to stdout for a command that restores (`restore`, `demo`), whose end does
/// not depend on its output: one that is gone (`| tee log` ended by the same Ctrl-C,
/// `| head`) is not an error (`print!` panicked: exit 101). What the run did is in its
/// report and checkpoint. Commands that only print (`inspect`, `plan`, `verify`...) stop at
/// a closed output instead, keeping their verdict ([`print_verdict`]).
pub fn print_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Prints a command's output on stdout with `print`, then returns `verdict`: the exit status
/// the command decided before it printed (README "Exit codes"). A reader that went away
/// (`| head`, `| true`, a pager quit early) ends the output there, not the verdict: the
/// command stops printing and exits with it, as without the pipe. `verify ... | head` of a
/// restore with files missing exited 0, as did `preflight | head` of a restore that does
/// not fit (a broken pipe was mapped to 0 for every command), which hid the failure from
/// the script or the `&&` after it; a command whose verdict is "ok" (`plan | head`) exits 0.
/// Any other error writing (a full disk, `> /dev/full`) loses the output asked for: an
/// error (exit 2). Errors of `print` that are not about writing (a read of the source while
/// a listing is made) are passed on as they are.
pub fn print_verdict(
    verdict: Exit,
    print: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<Exit> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match print(&mut out).and_then(|()| Ok(out.flush()?)) {
        Err(e) if is_broken_pipe(&e) => Ok(verdict),
        printed => printed.map(|()| verdict),
    }
}

/// Whether `e` is a write to a pipe whose reader is gone (`EPIPE`; Rust ignores `SIGPIPE`),
/// directly or through serde_json.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let kind = match c.downcast_ref::<std::io::Error>() {
            Some(io) => Some(io.kind()),
            None => c
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// Writes `text` to stderr, where every command says its notes and warnings: one that is
/// gone (its reader left, `|& head`, `2> >(...)`; a full disk, `2>/dev/full`) is not an
/// error, as the notes only go beside what the command does (`eprintln!` panicked: `plan`,
/// `verify` and `regen` ended with exit 101 before their output). Use it, not `eprintln!`,
/// for anything said on stderr.
pub fn print_err(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

pub fn restore(a: &RestoreArgs) -> anyhow::Result<Exit> {
    let cfg = match crate::restore::config_watched(
        "the restore",
        &a.source,
        &a.dest,
        &a.select,
        &a.run,
    ) {
        // A disk that did not answer while SOURCE and DEST were checked: stopped by its
        // disks (exit 1), nothing changed.
        Err(e) if e.is::<crate::restore::HeldBeforeWriting>() => {
            print_err(&format!("mycloud-recover: stopped: {e}\n"));
            return Ok(Exit::Incomplete);
        }
        cfg => cfg?,
    };
    run_restore(&cfg)
}

/// `status`: what the checkpoint records, checked against the source and DEST
/// (`look_for_status`).
///
/// A share whose server hangs (or a NAS gone from the network) holds calls rather than
/// failing them, and a process with a call held there cannot end: it stays a zombie, which
/// the shell still waits for (no prompt back), while `status` is what a person runs to see
/// what is going on. So the looks are made in a process of their own, this program started
/// again ([`crate::held::Helper`] running the hidden `status-looks`, [`status_looks`]),
/// which says each look before it makes it (`Said`). After `WAITING_NOTE_AFTER` (2 s)
/// without an answer `status` says on stderr what it waits for; a look not back within
/// `NO_ANSWER` (15 s) has it say what the checkpoint records and which disk does
/// not answer (`say_no_answer`, exit 1), leave that process behind (killed: it ends once
/// its call returns) and end, its own exit not held by anything. Where no process can be
/// started, the looks are made on a thread of this one, as before (the process may then
/// stay a zombie, which the message says).
pub fn status(a: &StatusArgs) -> anyhow::Result<Exit> {
    let (said, looker) = match crate::held::Helper::start(&status_looks_args(a)) {
        Ok(helper) => (helper.said.clone(), Looker::Process(helper)),
        Err(_) => {
            let (tx, said) = crossbeam_channel::unbounded();
            let a = a.clone();
            let thread = std::thread::Builder::new()
                .name("mcr-status-looks".into())
                .spawn(move || {
                    let mut say = |s| {
                        let _ = tx.send(s);
                    };
                    let last = Said::last(look_for_status(&a, &mut say));
                    say(last);
                })
                // The message std's own spawns give: `main` tells the user which limit.
                .expect("failed to spawn thread");
            (said, Looker::Thread(thread))
        }
    };
    wait_for_looks(a, &said, looker)
}

/// How long a look of `status` at a disk goes without an answer before `status` says what
/// it waits for (on stderr, once a look): a person who ran it sees why nothing comes.
const WAITING_NOTE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// `status-looks` (hidden): the looks of [`status`], in the process it starts for them.
/// What they find is said as it comes, one `Said` a JSON line on stdout.
pub fn status_looks(a: &StatusArgs) -> anyhow::Result<Exit> {
    let mut out = std::io::stdout().lock();
    let mut say = |said: Said| {
        // Gone when `status` gave up on this process: nothing waits for what it says.
        let _ = serde_json::to_writer(&mut out, &said)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
            .and_then(|()| out.flush());
    };
    let last = Said::last(look_for_status(a, &mut say));
    say(last);
    Ok(Exit::Ok)
}

/// The arguments of the process that makes the looks of `status` `a` ([`status_looks`]).
fn status_looks_args(a: &StatusArgs) -> Vec<std::ffi::OsString> {
    let mut args = vec!["status-looks".into()];
    for (flag, value) in [
        ("--state-dir", &a.state_dir),
        ("--db", &a.db),
        ("--files", &a.files_dir),
    ] {
        if let Some(v) = value {
            args.extend([flag.into(), v.into()]);
        }
    }
    args.push("--".into());
    args.extend(a.paths.iter().map(Into::into));
    args
}

/// What the looks of `status` say as they go, in this order: the checkpoint folder once
/// known, each look before it is made, then what they found (or why not). Sent from
/// [`status_looks`] as JSON lines (paths as their bytes: a path that is not UTF-8 is
/// passed exactly).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Said {
    /// The checkpoint folder: what is said when a disk does not answer.
    Checkpoint(#[serde(with = "crate::held::raw_path")] std::path::PathBuf),
    /// A look at this disk begins; whatever is said next ends it.
    Looking(Disk),
    /// What the checkpoint records, read before the looks at the disks that come after it:
    /// what is said when one of them does not answer, without reading the checkpoint again
    /// (its folder may be on the disk that does not answer).
    Recorded(Box<crate::state::Status>),
    /// What `status` found (the last thing said).
    Found(Box<crate::state::Status>),
    /// Why `status` cannot say (the error's text, [`crate::error_text`]; the last thing
    /// said).
    Failed(String),
}

impl Said {
    fn last(found: anyhow::Result<crate::state::Status>) -> Said {
        match found {
            Ok(st) => Said::Found(Box::new(st)),
            Err(e) => Said::Failed(crate::error_text(&e)),
        }
    }
}

/// Where the looks of `status` are made.
enum Looker {
    /// In a process of their own (the usual case).
    Process(crate::held::Helper<Said>),
    /// On a thread of this process: no process could be started.
    Thread(std::thread::JoinHandle<()>),
}

impl Looker {
    /// Waits for the looks to end once they said their last.
    fn finish(self) {
        match self {
            Looker::Process(helper) => {
                let _ = helper.wait();
            }
            Looker::Thread(thread) => {
                let _ = thread.join();
            }
        }
    }

    /// Leaves the looks behind in a call that did not come back: the process id when they
    /// are made in a process of their own.
    fn leave(self) -> Option<u32> {
        match self {
            Looker::Process(helper) => Some(helper.leave()),
            Looker::Thread(_) => None,
        }
    }

    /// The looks ended without saying what they found: a bug, said where it happened (its
    /// panic message passed on from the process, or a panic on the thread raised again
    /// here), or the process was killed.
    fn ended_unsaid(self) -> anyhow::Result<Exit> {
        match self {
            Looker::Process(helper) => {
                let id = helper.id();
                let ended = helper.wait()?;
                match ended.code() {
                    // It said why on stderr (passed on): a panic, or no thread to be had.
                    Some(101) => Ok(Exit::InternalError),
                    Some(2) => Ok(Exit::CannotRun),
                    _ => anyhow::bail!(
                        "the process that makes the looks of `status` at the disks (process {id}, `mycloud-recover status-looks`) ended without saying what it found ({ended}): run `status` again"
                    ),
                }
            }
            Looker::Thread(thread) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the looks of `status` ended without a last word"),
            },
        }
    }
}

/// Waits for what the looks of `status` say (`said`, from `looker`), each look at a disk up
/// to [`crate::restore::NO_ANSWER`], and prints it ([`print_status`]), or, a look not back
/// in time, what the checkpoint records and which disk does not answer ([`say_no_answer`]).
fn wait_for_looks(
    a: &StatusArgs,
    said: &crossbeam_channel::Receiver<Said>,
    looker: Looker,
) -> anyhow::Result<Exit> {
    use crossbeam_channel::RecvTimeoutError;
    // The checkpoint folder, once known, and what it records, once read: what is said when
    // a disk does not answer.
    let mut dir = a.state_dir.clone();
    let mut recorded: Option<Box<crate::state::Status>> = None;
    // The look out: at which disk, since when, and whether what it waits for was said.
    let mut out: Option<(Disk, std::time::Instant, bool)> = None;
    loop {
        let next = match &mut out {
            None => said.recv().ok(),
            Some((disk, since, noted)) => {
                let after = if *noted {
                    crate::restore::NO_ANSWER
                } else {
                    WAITING_NOTE_AFTER
                };
                match said.recv_deadline(*since + after) {
                    Ok(s) => Some(s),
                    Err(RecvTimeoutError::Disconnected) => None,
                    Err(RecvTimeoutError::Timeout) if !*noted => {
                        *noted = true;
                        let (what, p) = disk.named();
                        print_err(&format!(
                            "note: waiting for an answer from {what} {} (a disk that does not answer is given {} s)\n",
                            p.display(),
                            crate::restore::NO_ANSWER.as_secs()
                        ));
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        // The checkpoint is found by where DEST leads; without an answer
                        // from there, by DEST as named.
                        if let (None, Disk::Dest(d)) = (&dir, &*disk) {
                            dir = crate::state::default_state_dir_as_named(d);
                        }
                        let left = looker.leave();
                        return say_no_answer(a, recorded, dir.as_deref(), disk, left);
                    }
                }
            }
        };
        match next {
            Some(Said::Checkpoint(d)) => {
                dir = Some(d);
                out = None;
            }
            Some(Said::Looking(disk)) => out = Some((disk, std::time::Instant::now(), false)),
            Some(Said::Recorded(mut st)) => {
                // As found, as for `Found` below.
                if let Some(d) = &dir {
                    st.state_dir = d.clone();
                }
                recorded = Some(st);
                out = None;
            }
            Some(Said::Found(mut st)) => {
                looker.finish();
                // As found, not as passed in JSON (a path that is not UTF-8 lossily).
                if let Some(d) = dir {
                    st.state_dir = d;
                }
                return print_status(a, &st, Exit::Ok);
            }
            Some(Said::Failed(e)) => {
                looker.finish();
                return Err(anyhow::Error::msg(e));
            }
            None => return looker.ended_unsaid(),
        }
    }
}

/// The disk a look of `status` waits on, named as given or as the checkpoint records it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum Disk {
    Source(#[serde(with = "crate::held::raw_path")] std::path::PathBuf),
    Dest(#[serde(with = "crate::held::raw_path")] std::path::PathBuf),
    /// The checkpoint folder (`--state-dir` on a share).
    State(#[serde(with = "crate::held::raw_path")] std::path::PathBuf),
}

impl Disk {
    /// Which disk, as the messages say it, and its path.
    fn named(&self) -> (&'static str, &Path) {
        match self {
            Disk::Source(p) => ("the source", p),
            Disk::Dest(p) => ("the destination", p),
            Disk::State(p) => ("the checkpoint folder", p),
        }
    }
}

/// Makes `look`, a look of `status` at `disk`, once it is said ([`Said::Looking`]): the
/// process it is made in may be left behind in it ([`status`]).
fn look_at<R>(say: &mut dyn FnMut(Said), disk: Disk, look: impl FnOnce() -> R) -> R {
    say(Said::Looking(disk));
    look()
}

/// The database at SOURCE (`--db`, `--files` as given).
fn status_source_db(
    a: &StatusArgs,
    src: &Path,
    say: &mut dyn FnMut(Said),
) -> anyhow::Result<std::path::PathBuf> {
    let found = look_at(say, Disk::Source(src.to_path_buf()), || {
        crate::source::SourceLayout::discover(src, a.db.as_deref(), a.files_dir.as_deref())
    })?;
    Ok(found.db)
}

/// What `status` finds: the checkpoint (found by SOURCE and DEST, or given), checked against
/// SOURCE and DEST when given, and DEST looked at ([`look_at_status_dest`]). Each look at
/// the source or DEST is said before it is made ([`look_at`]), and the checkpoint folder
/// as soon as it is known ([`Said::Checkpoint`]).
fn look_for_status(
    a: &StatusArgs,
    say: &mut dyn FnMut(Said),
) -> anyhow::Result<crate::state::Status> {
    // The database SOURCE names, when given (the checkpoint must be a restore of it), and
    // DEST given, resolved; and the checkpoint folder.
    let (source_db, given_dest, dir) = match (&a.state_dir, a.paths.as_slice()) {
        // Both: the checkpoint must be the one for that DEST (a wrong folder's numbers
        // would pass for this restore's).
        (Some(d), [src, dest]) => {
            say(Said::Checkpoint(d.clone()));
            let bound = look_at(say, Disk::State(d.clone()), || {
                crate::state::recorded_meta(d, "dest")
            });
            let (dest, other) = look_at(say, Disk::Dest(dest.clone()), || {
                let dest = crate::fsinfo::resolved_path(dest);
                // Stored as the checkpoint binds it (a path that is not UTF-8 lossily), or,
                // before round 8, as given.
                let other = bound.filter(|b| {
                    *b != dest.display().to_string()
                        && crate::fsinfo::resolved_path(Path::new(b)) != dest
                });
                (dest, other)
            });
            if let Some(b) = other {
                anyhow::bail!(
                    "the checkpoint in {} is the restore into {b}, not into {}: leave out --state-dir to find this DEST's, or give the folder that restore used",
                    d.display(),
                    dest.display()
                )
            }
            (Some(status_source_db(a, src, say)?), Some(dest), d.clone())
        }
        (Some(d), _) => {
            say(Said::Checkpoint(d.clone()));
            (None, None, d.clone())
        }
        (None, [src, dest]) => {
            let db = status_source_db(a, src, say)?;
            // Without an answer from DEST, `status` finds the checkpoint by DEST as named
            // ([`crate::state::default_state_dir_as_named`]).
            let (dir, dest) = look_at(say, Disk::Dest(dest.clone()), || {
                let dir = crate::state::default_state_dir(&db, dest);
                (dir, crate::fsinfo::resolved_path(dest))
            });
            say(Said::Checkpoint(dir.clone()));
            (Some(db), Some(dest), dir)
        }
        _ => anyhow::bail!("status needs SOURCE and DEST (as given to restore) or --state-dir DIR"),
    };
    // Read in a look of its own: a `--state-dir` on a share that hangs held `status` for
    // good before round 23.
    let (mut st, recorded_dest) = look_at(say, Disk::State(dir.clone()), || {
        let st = crate::state::read_status(&dir)?;
        let dest = crate::state::recorded_meta(&dir, "dest");
        anyhow::Ok((st, dest))
    })?;
    say(Said::Recorded(Box::new(st.clone())));
    // The DEST to look at: the one given (a SOURCE of another database is refused first),
    // or, given the checkpoint alone, the one it records.
    let (dest, given) = match (source_db, given_dest) {
        (Some(db), Some(dest)) => {
            look_at(say, Disk::Source(db.clone()), || {
                check_status_source(&dir, &db, &dest)
            })?;
            (Some(dest), true)
        }
        _ => (recorded_dest.map(std::path::PathBuf::from), false),
    };
    let Some(dest) = dest else {
        return Ok(st);
    };
    look_at(say, Disk::Dest(dest.clone()), || {
        // First a call that reaches the share's server: the looks below may be answered
        // from its client's cache for a while after it stopped answering. Its error, if
        // any, the looks below meet and say.
        let _ = crate::restore::look_up_a_new_name(&dest);
        look_at_status_dest(a, &dir, &dest, given, &mut st)
    })?;
    Ok(st)
}

/// What `status` says when a look at `silent`, the source or DEST, did not come back: what
/// the checkpoint in `dir` records, as always, then which disk does not answer and what
/// ends the look still waiting there (in the process `left`, or, None, on a thread of this
/// process, which may then stay a zombie); exit 1 (the look at DEST was not made).
fn say_no_answer(
    a: &StatusArgs,
    recorded: Option<Box<crate::state::Status>>,
    dir: Option<&Path>,
    silent: &Disk,
    left: Option<u32>,
) -> anyhow::Result<Exit> {
    // What the looks read, or, a disk silent before the checkpoint was read, the checkpoint
    // read here (never when its own folder is what does not answer).
    let st = match (recorded, silent) {
        (Some(st), _) => Some(*st),
        (None, Disk::State(_)) => None,
        (None, _) => dir.map(crate::state::read_status).transpose()?,
    };
    let limit = crate::restore::NO_ANSWER.as_secs();
    let (what, path) = silent.named();
    let held = match silent {
        Disk::Source(_) => "a disk that hangs",
        Disk::Dest(_) | Disk::State(_) => {
            "a share whose server hangs, or one gone from the network,"
        }
    };
    let mount = crate::fsinfo::mount_point_as_named(path);
    let end = match &mount {
        Some(m) => format!(
            "`umount -f {}` ends it (and cuts the share off)",
            crate::preflight::model::shell_path(m)
        ),
        None => "`umount -f` of the mount point it lies on ends it (a share), or it ends once the disk answers or is detached".into(),
    };
    let seen = match (&st, silent) {
        (Some(st), _) => format!(
            "The counts are what the checkpoint in {} records, not a look at the destination",
            st.state_dir.display()
        ),
        (None, Disk::Dest(_)) => "Its checkpoint could not be found without an answer from there (it is found by where DEST leads): `mycloud-recover status --state-dir DIR`, with the state folder of that restore, shows what it records".into(),
        (None, Disk::Source(_)) => "`mycloud-recover status --state-dir DIR`, with the state folder of that restore, shows what its checkpoint records without reading the source".into(),
        (None, Disk::State(_)) => "What its checkpoint records cannot be read without an answer from there (a state folder on a local disk, the default, keeps it readable while a share hangs)".into(),
    };
    let waiting = match left {
        Some(pid) => format!(
            "The look still waiting there is left behind in process {pid} (`mycloud-recover status-looks`, killed: it ends once its call returns): {end}"
        ),
        None => format!("If this program does not end, the call it made there is still waiting: {end}"),
    };
    let text = format!(
        "{what} {} does not answer: a look there did not come back within {limit} s ({held} holds calls rather than failing them). {seen}. {waiting}. Run `status` again once it answers",
        path.display()
    );
    match st {
        Some(mut st) => {
            st.no_answer = Some(text);
            print_status(a, &st, Exit::Incomplete)
        }
        None => print_verdict(Exit::Incomplete, |out| {
            if a.json {
                serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "no_answer": text }))?;
                writeln!(out)?;
            } else {
                writeln!(out, "{}", capitalized(&text))?;
            }
            Ok(())
        }),
    }
}

/// `text` with its first letter made a capital.
fn capitalized(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Prints what `status` found (`--json`: as JSON), and returns `verdict` ([`print_verdict`]).
fn print_status(a: &StatusArgs, st: &crate::state::Status, verdict: Exit) -> anyhow::Result<Exit> {
    print_verdict(verdict, |out| status_text(out, a.json, st))
}

/// What [`print_status`] prints.
fn status_text(out: &mut dyn Write, json: bool, st: &crate::state::Status) -> anyhow::Result<()> {
    let dir = &st.state_dir;
    if json {
        serde_json::to_writer_pretty(&mut *out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "Checkpoint: {}", dir.display())?;
    writeln!(
        out,
        "State: {}",
        if st.running {
            "a restore or regen is running now".to_string()
        } else {
            state_line(st)
        }
    )?;
    if let Some(n) = st.selected_files.filter(|&n| n > 0) {
        writeln!(
            out,
            "Restored or already there: {} of {} selected files ({:.1}%)",
            count(st.files_done),
            count(n),
            100.0 * st.files_done.min(n) as f64 / n as f64
        )?;
        if st.files_done_left_out > 0 {
            writeln!(
                out,
                "  and {} files of the Trash, restored by a run with --include-trash",
                count(st.files_done_left_out)
            )?;
        }
    } else if st.files_done > 0 {
        // Only runs with a selection so far: their counts cover it, not the whole restore.
        writeln!(
            out,
            "Restored or already there: {} (of the whole restore: known once a run without --only, --user or --limit has counted it)",
            crate::report::plural(st.files_done, "file", "files")
        )?;
    }
    for (k, v) in &st.counts {
        writeln!(out, "  {k:<14} {:>9}", count(*v))?;
    }
    writeln!(out, "  bytes done     {}", human_bytes(st.bytes_done))?;
    if let Some(ms) = st.last_activity_ms {
        let ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64 - ms)
            .unwrap_or(0);
        writeln!(
            out,
            "Last activity: {} ago",
            crate::report::human_duration(std::time::Duration::from_millis(ago.max(0) as u64))
        )?;
    }
    for (p, e) in &st.failed_examples {
        writeln!(out, "  problem: {p}: {e}")?;
    }
    for w in &st.warnings {
        writeln!(out, "WARNING: {w}")?;
    }
    if let Some(silent) = &st.no_answer {
        writeln!(out, "{}", capitalized(silent))?;
    }
    Ok(())
}

/// The `State:` line of `status` for a checkpoint no run holds: how the last run that began
/// copying ended, in the same words for the same situation whatever came after it:
/// killed or a power cut (its end not recorded) is "did not end cleanly (killed, or a power
/// cut)"; a run stopped at start-up since (refused, before copying) is said after it.
fn state_line(st: &crate::state::Status) -> String {
    let killed = "did not end cleanly (killed, or a power cut); run the same restore command again: it checks what that run may have left unfinished";
    let line = match (st.last_run_clean, st.last_end.as_deref()) {
        (Some(true), Some("finished")) => "last run finished".into(),
        (Some(true), Some(how)) => {
            format!("last run {how}; run the same restore command again to continue")
        }
        // Runs refused before copying (a bad option, a full or read-only DEST) record no
        // end of their own.
        (Some(true), None) if st.files_done + st.files_done_left_out == 0 => {
            return "no file restored yet (no run got as far as copying)".into();
        }
        (Some(true), None) => "last run ended normally".into(),
        // The destination changed under the run (unmounted, say): it ended, but what it
        // placed since its last commit is unrecorded, as after a crash.
        (Some(false), Some(how)) => {
            let fix = if how.starts_with("stopped by an error") {
                "Deal with that error and run"
            } else if how.starts_with("stopped by an internal error") {
                "Please report that bug, and run"
            } else if how.contains("read-only") {
                "Mount the destination read-write again and run"
            } else {
                "Mount the destination again and run"
            };
            format!("last run {how}: the files it placed since its last commit were not recorded. {fix} the same restore command: it checks them")
        }
        // Its end not recorded: killed, or a power cut (a run still going holds the lock,
        // said before this); or (Some(false), no end) the same seen through a run refused
        // at start-up after it, which took its cleanliness over.
        (None, _) | (Some(false), None) => format!("last run {killed}"),
    };
    match st.last_run_stopped_at_start {
        false => line,
        true => format!(
            "{}; the last run stopped at start-up, before copying (its own message said why)",
            line.replacen("last run", "the last run that began copying", 1)
        ),
    }
}

/// Refuses, for `status SOURCE DEST`, a checkpoint made from another database than
/// SOURCE's (its counts are not this SOURCE's), as a restore of SOURCE into DEST would.
/// `dest` is resolved ([`crate::fsinfo::resolved_path`]). Reads only: the checkpoint
/// read-only, the first and last MiB of the database.
fn check_status_source(dir: &Path, source_db: &Path, dest: &Path) -> anyhow::Result<()> {
    let Some(earlier) = crate::state::Earlier::open(dir)? else {
        return Ok(());
    };
    let db = source_db
        .canonicalize()
        .unwrap_or_else(|_| source_db.to_path_buf());
    match earlier.check_binding(&db, dest) {
        Err(crate::state::StateError::Mismatch {
            key: "source_db",
            was,
            ..
        }) => {
            anyhow::bail!(
                "the checkpoint in {} is a restore of another database ({was}) than {} into {}: its counts say nothing about this SOURCE. Give the SOURCE (or --db) that restore was given; a restore of this SOURCE into {} would be refused",
                dir.display(),
                db.display(),
                dest.display(),
                dest.display()
            )
        }
        r => r?,
    }
    Ok(())
}

/// The look at DEST both forms of `status` make, at the DEST given (`given`) or, with the
/// checkpoint alone, at the one it records: first the mount DEST lies on, against the one
/// the last run placed files on ([`crate::state::DestOn`], as a restore checks: a share
/// not mounted again leaves a bare folder, even with nothing recorded yet); then a sample
/// of the files the checkpoint records as restored there
/// ([`crate::state::look_for_restored`], as a resume looks). A changed mount, or none of them
/// there is a disk or share not mounted: the checkpoint's percentage would pass for what
/// DEST holds, so a given DEST is refused as a resume refuses it; with the checkpoint alone
/// (the way to see what it records while DEST is away) it is a warning, as is a recorded
/// DEST that cannot be found at all. Some of them gone is a warning with the `verify`
/// command that finds the others. Reads only: the checkpoint read-only, an lstat per file.
fn look_at_status_dest(
    a: &StatusArgs,
    dir: &Path,
    dest: &Path,
    given: bool,
    st: &mut crate::state::Status,
) -> anyhow::Result<()> {
    let as_recorded =
        "The counts here are what the checkpoint records, not what is on the destination";
    let Some(earlier) = crate::state::Earlier::open(dir)? else {
        return Ok(());
    };
    // DEST looks like a disk or share not mounted: a given DEST is refused, as a restore
    // would refuse it; with the checkpoint alone, said beside its counts.
    let not_mounted = |st: &mut crate::state::Status, what: String| -> anyhow::Result<()> {
        if given {
            anyhow::bail!(
                "{what} `status --state-dir {}` alone shows what the checkpoint records",
                crate::preflight::model::shell_path(dir)
            );
        }
        st.warnings.push(format!("{what} {as_recorded}"));
        Ok(())
    };
    // DEST on another mount than the last run placed files on: the checkpoint's counts
    // are not what DEST holds now (a share not mounted again), and a restore would refuse.
    if let Err(changed) = crate::state::check_dest_on_same_mount(
        earlier.meta(crate::state::DEST_ON_KEY)?.as_deref(),
        dest,
        &crate::fsinfo::probe(dest),
        &format!(
            "; a restore into {} would be refused until then.",
            dest.display()
        ),
    ) {
        return not_mounted(st, changed.to_string());
    }
    // A given DEST that is not there holds none of the recorded files: refused below.
    if let (Err(e), false) = (std::fs::metadata(dest), given) {
        st.warnings.push(format!(
            "the checkpoint in {} records files as restored to {}, which cannot be found ({e}). Is the right disk or share mounted? {as_recorded}",
            dir.display(),
            dest.display()
        ));
        return Ok(());
    }
    // Not the part the last full run left out (the Trash an earlier run restored): the
    // restore does not look for those either.
    let left_out = earlier
        .meta(crate::state::LEFT_OUT_KEY)?
        .filter(|p| !p.is_empty());
    let mut sample = earlier.restored_sample(crate::state::RESTORED_SAMPLE, dest)?;
    sample.retain(|p| left_out.as_ref().is_none_or(|l| !p.starts_with(l.as_str())));
    let found = crate::state::look_for_restored(sample, dest);
    if found.none_there() {
        let what = format!(
            "the checkpoint in {} records files as restored to {}, but none of the {} looked for is there (for example {}). Is the right disk or share mounted at {}?",
            dir.display(),
            dest.display(),
            count(found.looked_for as u64),
            dest.join(&found.gone[0]).display(),
            dest.display(),
        );
        not_mounted(st, what)?;
    } else if found.some_gone() {
        st.warnings.push(format!(
            "{} of {} files the checkpoint records as restored are not on {} (for example {}): removed or moved since? `{}` lists every file that is not there; the next restore looks for every file the checkpoint records as done and restores those it finds missing",
            count(found.gone.len() as u64),
            count(found.looked_for as u64),
            dest.display(),
            dest.join(&found.gone[0]).display(),
            verify_command(a, dir, dest)
        ));
    }
    st.dest_check = Some(found);
    Ok(())
}

/// The `verify` command that checks the restore `status` looked at, ready to paste: SOURCE
/// and DEST as given, else the database and DEST the checkpoint records (SOURCE is the
/// folder holding the database's `db/`; `--db` when the database is not `db/index.db`
/// there, `--files` when the objects were read from elsewhere than `files/` there), and the selection of the checkpoint's runs ([`crate::state::Selection`]), so
/// that the files they left out are not listed as missing.
fn verify_command(a: &StatusArgs, dir: &Path, dest: &Path) -> String {
    let quote = crate::preflight::model::shell_path;
    let mut verify = String::from("mycloud-recover verify");
    let (mut db, mut files) = (a.db.clone(), a.files_dir.clone());
    match a.paths.as_slice() {
        [src, dest] => verify.push_str(&format!(" {} {}", quote(src), quote(dest))),
        _ => {
            let recorded =
                crate::state::recorded_meta(dir, "source_db").map(std::path::PathBuf::from);
            let source = recorded
                .as_deref()
                .and_then(|db| db.parent()?.parent())
                .map(Path::to_path_buf);
            match (&recorded, &source) {
                (Some(r), Some(s)) => {
                    if db.is_none() && s.join("db/index.db") != *r {
                        db = Some(r.clone());
                    }
                    // Objects read from elsewhere than beside the database (`--files`).
                    let objects = crate::state::recorded_meta(dir, crate::state::SOURCE_FILES_KEY)
                        .map(std::path::PathBuf::from);
                    if files.is_none() {
                        files = objects.filter(|f| *f != s.join("files"));
                    }
                    verify.push_str(&format!(" {} {}", quote(s), quote(dest)));
                }
                _ => verify.push_str(&format!(" SOURCE {}", quote(dest))),
            }
        }
    }
    for (flag, value) in [
        ("--state-dir", &a.state_dir),
        ("--db", &db),
        ("--files", &files),
    ] {
        if let Some(v) = value {
            verify.push_str(&format!(" {flag} {}", quote(v)));
        }
    }
    let selection = crate::state::recorded_selection(dir).unwrap_or_default();
    for (flag, values) in [("--only", &selection.only), ("--user", &selection.users)] {
        for v in values {
            verify.push_str(&format!(
                " {flag} {}",
                crate::preflight::model::shell_quote(v)
            ));
        }
    }
    if selection.include_trash {
        verify.push_str(" --include-trash");
    }
    verify
}

/// What `demo` finds in the folder it is asked to use.
#[derive(Debug, PartialEq, Eq)]
enum DemoDir {
    /// Not there, or an empty folder: free to use.
    Free,
    /// A folder `demo` made (see [`demo_dir`]).
    Ours,
    /// Anything else; the text says what it is, after its path: "is not a folder", or "is
    /// not empty and is not a folder `demo` made (why, naming what was found)".
    NotOurs(String),
}

/// The entries `demo` writes into its folder: the dump, the restore and its checkpoint.
const DEMO_ENTRIES: [&str; 3] = ["dump", "restored", "state"];

/// Whether `dir` is a folder `demo` made, judged by its exact layout: `dump/` holding the
/// demo's manifest (and nothing but it and `restsdk/`), beside it nothing but `restored/`
/// and `state/`, all real folders, and no `restsdk` (a device's disk, or a copy of one)
/// outside `dump/`. `--force` deletes the whole folder, so anything a person may have put
/// there makes it not ours: the people running this tool have just lost their NAS, and the
/// folder they point the demo at by mistake may hold the only copy of their files.
fn demo_dir(dir: &Path) -> anyhow::Result<DemoDir> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DemoDir::Free),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    if !meta.is_dir() {
        return Ok(DemoDir::NotOurs("is not a folder".into()));
    }
    let names = |d: &Path| -> anyhow::Result<Vec<std::ffi::OsString>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(d).with_context(|| format!("cannot read {}", d.display()))? {
            v.push(
                e.with_context(|| format!("cannot read {}", d.display()))?
                    .file_name(),
            );
        }
        v.sort();
        Ok(v)
    };
    let top = names(dir)?;
    if top.is_empty() {
        return Ok(DemoDir::Free);
    }
    let is_real_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    for name in &top {
        let known = DEMO_ENTRIES.iter().any(|d| name == *d);
        if !known || !is_real_dir(&dir.join(name)) {
            return Ok(not_ours(format!(
                "it holds `{}`, which `demo` does not write",
                name.to_string_lossy()
            )));
        }
    }
    for d in ["restored", "state"] {
        if dir.join(d).join("restsdk").exists() {
            return Ok(not_ours(format!(
                "`{d}/restsdk` looks like a My Cloud disk or a copy of one"
            )));
        }
    }
    let dump = dir.join("dump");
    if !top.iter().any(|n| n == "dump")
        || !std::fs::symlink_metadata(dump.join(crate::demo::MANIFEST_FILE))
            .is_ok_and(|m| m.is_file())
    {
        return Ok(not_ours(format!(
            "it has no dump/{}, the mark of a demo",
            crate::demo::MANIFEST_FILE
        )));
    }
    for name in names(&dump)? {
        if name != "restsdk" && name != crate::demo::MANIFEST_FILE {
            return Ok(not_ours(format!(
                "it holds `dump/{}`, which `demo` does not write",
                name.to_string_lossy()
            )));
        }
    }
    Ok(DemoDir::Ours)
}

/// [`DemoDir::NotOurs`] for a folder that holds something `demo` did not make (`why`).
fn not_ours(why: String) -> DemoDir {
    DemoDir::NotOurs(format!(
        "is not empty and is not a folder `demo` made ({why})"
    ))
}

/// Creates `dir` if needed. A folder `demo` made is replaced with `force` (and refused
/// without it); a non-empty folder that is not ours is refused either way, since replacing
/// it would delete whatever it holds.
pub fn prepare_demo_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    match demo_dir(dir)? {
        DemoDir::Free => {}
        DemoDir::Ours if force => std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the old demo in {}", dir.display()))?,
        DemoDir::Ours => anyhow::bail!(
            "{} holds a demo made with other settings; pass --force to replace it, or choose another folder",
            dir.display()
        ),
        DemoDir::NotOurs(why) => anyhow::bail!(
            "{} {why}, so the demo will not write there{}: nothing was changed. Choose another folder, for example `mycloud-recover demo {}`",
            dir.display(),
            if force { ", even with --force (it would delete what the folder holds)" } else { "" },
            crate::preflight::model::shell_path(&dir.with_file_name(format!(
                "{}-demo",
                dir.file_name().map_or("mycloud".into(), |n| n.to_string_lossy())
            )))
        ),
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

/// Run settings for commands that read a restore's destination (regen, verify).
fn read_only_run(
    state_dir: Option<std::path::PathBuf>,
    mtime_from: Option<&str>,
) -> crate::cli::RunArgs {
    crate::cli::RunArgs {
        threads: "auto".into(),
        mtime_from: mtime_from.map(str::to_string),
        overwrite: false,
        dry_run: false,
        progress_interval: 30,
        // Not quiet: their start-up checks say what they wait for, as their walks do.
        quiet: false,
        state_dir,
        fresh: false,
        durability: crate::cli::DurabilityArg::Batch,
        report: None,
    }
}

/// Threads for walking or reading a destination: network filesystems need many requests in
/// flight.
fn reader_threads(cfg: &RestoreConfig) -> usize {
    if cfg.dest_fs.is_network() {
        16
    } else {
        8
    }
}

fn list_some(out: &mut dyn Write, title: &str, items: &[String]) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    writeln!(out, "{title} ({}):", count(items.len() as u64))?;
    for i in items.iter().take(20) {
        writeln!(out, "  {i}")?;
    }
    if items.len() > 20 {
        writeln!(
            out,
            "  ... and {} more (use --json for the full list)",
            count((items.len() - 20) as u64)
        )?;
    }
    Ok(())
}

pub fn regen(a: &crate::cli::RegenArgs) -> anyhow::Result<Exit> {
    let run = read_only_run(a.state_dir.clone(), a.mtime_from.as_deref());
    // Watched as the restore's are: a disk that does not answer is said (exit 2, nothing
    // changed), not a silent hang.
    let cfg = crate::restore::config_watched("`regen`", &a.source, &a.dest, &a.select, &run)?;
    // Its walk of DEST and reads of the source, watched alike. Stopped, its records are
    // not changed (written in one transaction, not committed); a checkpoint it created goes
    // as the process ends (`state::remove_left_behind`), as after a refused regen.
    let w = Watch::new(
        "`regen`",
        "while `regen` compared DEST with the plan",
        &a.source,
        Some(&a.dest),
    )
    .state_dir(a.state_dir.as_deref());
    let dest = cfg.dest.clone();
    let (threads, content) = (reader_threads(&cfg), a.content);
    let rep = watched(&w, move || {
        if !cfg.dest.is_dir() {
            anyhow::bail!(
                "destination {} does not exist; there is nothing to regenerate from",
                cfg.dest.display()
            );
        }
        crate::state::regen::regen(&cfg, threads, content)
    })?;
    for n in &rep.notes {
        print_err(&format!("note: {n}\n"));
    }
    print_verdict(Exit::Ok, |out| {
        if a.json {
            serde_json::to_writer_pretty(&mut *out, &rep)?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(
            out,
            "Regenerated the checkpoint in {} from {} ({} files found, walked in {:.1}s).",
            rep.state_dir.display(),
            dest.display(),
            count(rep.found_on_dest),
            rep.walk_seconds
        )?;
        writeln!(
            out,
            "  planned files                 {:>9}",
            count(rep.planned_files)
        )?;
        writeln!(
            out,
            "  adopted (size and date match) {:>9}",
            count(rep.adopted)
        )?;
        writeln!(
            out,
            "  differ (replaced or re-dated) {:>9}",
            count(rep.differs.len() as u64)
        )?;
        writeln!(
            out,
            "  absent (will be copied)       {:>9}",
            count(rep.absent.len() as u64)
        )?;
        if !rep.absent_no_object.is_empty() {
            writeln!(
                out,
                "  absent, no object to copy     {:>9}",
                count(rep.absent_no_object.len() as u64)
            )?;
        }
        if !rep.in_the_way.is_empty() {
            writeln!(
                out,
                "  something else in the way     {:>9}",
                count(rep.in_the_way.len() as u64)
            )?;
        }
        if !rep.not_looked_at.is_empty() {
            writeln!(
                out,
                "  could not be looked at        {:>9}",
                count(rep.not_looked_at.len() as u64)
            )?;
        }
        writeln!(
            out,
            "  not in the plan (left alone)  {:>9}",
            count(rep.unknown.len() as u64)
        )?;
        let with_why = |pairs: &[(String, String)]| -> Vec<String> {
            pairs.iter().map(|(p, w)| format!("{p}: {w}")).collect()
        };
        list_some(out, "Differ", &with_why(&rep.differs))?;
        list_some(out, "Absent", &rep.absent)?;
        list_some(
            out,
            "Absent, with no object in the source that a restore can copy them from",
            &with_why(&rep.absent_no_object),
        )?;
        list_some(out, "In the way", &with_why(&rep.in_the_way))?;
        list_some(
            out,
            "Could not be looked at (neither adopted nor copied)",
            &with_why(&rep.not_looked_at),
        )?;
        list_some(out, "Not in the plan", &rep.unknown)?;
        let moved: Vec<String> = rep
            .likely_moved
            .iter()
            .map(|(p, f)| format!("{p} may be at {f}"))
            .collect();
        list_some(out, "Likely moved", &moved)?;
        list_some(
            out,
            "Temporary files left by an interrupted restore (the next restore removes them)",
            &rep.temp_leftovers,
        )?;
        list_some(
            out,
            "Folders that could not be read",
            &rep.unreadable_folders,
        )?;
        writeln!(out, "Nothing on the destination was changed. Run restore with the same paths to copy what is absent or differs.")?;
        Ok(())
    })
}

/// The `regen` and `restore` commands that copy again the files `verify` found differing,
/// ready to paste: SOURCE, DEST and every option of this verify that names the restore's
/// files (`--db`, `--files`, the selection, `--names`, `--state-dir`, `--mtime-from`), so
/// they act on the checkpoint and the paths this verify checked. `regen` gets `--content`
/// only when `bytes_differ`: some file differs only in its bytes (it re-reads every file
/// found, 1.76 TB on the real disk, for nothing when the files are absent or another size).
fn again_commands(a: &crate::cli::VerifyArgs, bytes_differ: bool) -> (String, String) {
    use clap::ValueEnum;
    let mut args = crate::preflight::command_args(
        &a.source.source,
        &a.dest,
        a.source.db.as_deref(),
        a.source.files_dir.as_deref(),
        &a.select,
    );
    if a.select.names != crate::cli::NamesArg::Auto {
        if let Some(v) = a.select.names.to_possible_value() {
            args.extend(["--names".into(), v.get_name().to_string()]);
        }
    }
    if let Some(d) = &a.state_dir {
        args.extend(["--state-dir".into(), crate::preflight::model::shell_path(d)]);
    }
    if let Some(m) = &a.mtime_from {
        args.extend([
            "--mtime-from".into(),
            crate::preflight::model::shell_quote(m),
        ]);
    }
    let args = args.join(" ");
    let content = if bytes_differ { " --content" } else { "" };
    (
        format!("mycloud-recover regen {args}{content}"),
        format!("mycloud-recover restore {args}"),
    )
}

pub fn verify(a: &crate::cli::VerifyArgs) -> anyhow::Result<Exit> {
    let run = read_only_run(a.state_dir.clone(), a.mtime_from.as_deref());
    // Watched as the restore's are (exit 2 when a disk does not answer), the state folder
    // given too.
    let cfg = crate::restore::config_watched("`verify`", &a.source, &a.dest, &a.select, &run)?;
    // Its walk of DEST and reads of the source, watched alike: a disk that stops answering
    // meanwhile is said (exit 2; verify changes nothing).
    let w = Watch::new(
        "`verify`",
        "while `verify` compared DEST with the source",
        &a.source,
        Some(&a.dest),
    )
    .state_dir(a.state_dir.as_deref());
    let (threads, content, given) = (reader_threads(&cfg), a.content, a.state_dir.clone());
    let rep = watched(&w, move || {
        config::given_state_dir(given.as_deref())?;
        crate::verify::verify(&cfg, content, threads)
    })?;
    for n in &rep.notes {
        print_err(&format!("note: {n}\n"));
    }
    // Like the restore's: files that differ, or that have no usable object to restore or
    // check them from, are not "all good". Decided before printing: kept when the reader
    // of the output leaves early (`verify | head`).
    let verdict = if rep.mismatches.is_empty() && rep.object_missing == 0 {
        Exit::Ok
    } else {
        Exit::Incomplete
    };
    print_verdict(verdict, |out| verify_text(out, a, &rep))
}

/// What `verify` prints (`--json`: the report as JSON).
fn verify_text(
    out: &mut dyn Write,
    a: &crate::cli::VerifyArgs,
    rep: &crate::verify::VerifyReport,
) -> anyhow::Result<()> {
    if a.json {
        serde_json::to_writer_pretty(&mut *out, rep)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "Verified {} files in {:.1}s: {} match{}{}, {} differ, {} have no object in the source that a restore can copy.",
        count(rep.checked),
        rep.seconds,
        count(rep.ok),
        if a.content {
            format!(
                " ({} compared byte for byte)",
                human_bytes(rep.bytes_hashed)
            )
        } else {
            String::new()
        },
        match rep.other_length.len() {
            0 => String::new(),
            n => format!(
                " ({} of them an object of another length than the database says, listed below)",
                count(n as u64)
            ),
        },
        count(rep.mismatches.len() as u64),
        count(rep.object_missing)
    )?;
    let lines = |ms: &[crate::verify::Mismatch]| -> Vec<String> {
        ms.iter()
            .map(|m| format!("{}: {}", m.path, m.text()))
            .collect()
    };
    list_some(out, "Mismatches", &lines(&rep.mismatches))?;
    list_some(
        out,
        "No object in the source that a restore can copy, so neither restored nor checked (a restore lists them as missing, or as failed where said; `regen` and `restore` cannot copy them)",
        &lines(&rep.missing_objects),
    )?;
    list_some(
        out,
        "Matching an object of another length than the database says (counted as matching)",
        &lines(&rep.other_length),
    )?;
    if !rep.mismatches.is_empty() {
        // A restore does not look again at files its checkpoint records as done: regen
        // marks the differing ones (their bytes too with --content) to be copied again.
        let (regen, restore) = again_commands(a, rep.bytes_differ > 0);
        writeln!(
            out,
            "To restore the files that differ again, run these two commands (with the options this verify was given; add any other the restore was given):\n  {regen}\n  {restore}"
        )?;
    }
    Ok(())
}
