//! Checked configuration: clap's types stop at [`crate::cli`]; everything here is validated
//! (paths, contradictions) before any file is read or written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{DurabilityArg, NamesArg, RunArgs, SelectArgs, SourceArgs};
use crate::fsinfo::{self, FsInfo};
use crate::plan::dates::{parse_fields, DatePolicy};
use crate::plan::names::NamePolicy;
use crate::plan::PlanOptions;
use crate::source::SourceLayout;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("destination {} is inside the source {}{how}; restore to another disk or folder", dest.display(), src.display())]
    DestInsideSource {
        dest: PathBuf,
        src: PathBuf,
        how: Inside,
    },
    #[error("destination {} contains the source {}{how}: a restored folder with the source's name would be written into it. Restore into a folder that does not hold the source, for example a new empty folder on another disk", dest.display(), src.display())]
    DestContainsSource {
        dest: PathBuf,
        src: PathBuf,
        how: Inside,
    },
    #[error("state folder {0} is inside the source{1}; the source must never be written. Pass another --state-dir")]
    StateInsideSource(PathBuf, Inside),
    #[error("report file {0} is inside the source{1}; the source must never be written. Pass another --report")]
    ReportInsideSource(PathBuf, Inside),
    #[error("--report {path} is a folder. Pass --report with a file's path (for example {}), or leave --report out (the report then goes to report.json in the state folder). Nothing was changed", path.join("report.json").display())]
    ReportIsFolder { path: PathBuf },
    #[error("--report {path}: {} {why}, so the report cannot be written there. Pass --report with a file in a folder that exists (create the folder first), or leave --report out (the report then goes to report.json in the state folder). Nothing was changed", folder.display())]
    ReportFolder {
        path: PathBuf,
        folder: PathBuf,
        why: &'static str,
    },
    #[error(
        "--report {path} cannot be written: {source}{}",
        report_advice(path, source)
    )]
    ReportUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("destination {0} exists and is not a folder")]
    DestNotDir(PathBuf),
    #[error(
        "cannot write to destination {path}: {source}{}",
        dest_advice(path, source)
    )]
    DestUnwritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// DEST does not exist and could not be made: why, from [`why_not_made`].
    #[error(
        "cannot create destination {path} (nothing was changed): {}",
        why_not_made(path, source)
    )]
    DestNotMade {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--threads must be a number from 1 to 1024 or `auto`, not `{0}`")]
    Threads(String),
    #[error("--mtime-from: {0}")]
    MtimeFrom(String),
    #[error("--limit 0 restores nothing; leave it out to restore everything")]
    LimitZero,
}

/// What to do about a destination that refuses writes whatever this process may do (it runs
/// as root, or the share answered in its own way): sudo would not help; the share decides.
macro_rules! share_refuses_writes {
    () => {
        "a read-only share, or permissions on the server (an NFS export's root squash, the share's user rights). Make the share writable for this machine (or choose a folder on another disk), then run the same command again"
    };
}

/// The same advice, for messages made elsewhere.
pub const SHARE_REFUSES_WRITES: &str = share_refuses_writes!();

/// What to do when DEST (or `path` in it) cannot be written or made, after the system's own
/// words. A read-only filesystem is named with its mount point (round 19: "Read-only file
/// system" alone left the user to find which mount that was).
pub fn dest_advice(path: &Path, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EROFS) => format!(
            ". Its disk or share ({}) is mounted read-only: mount it read-write (or choose a folder on another disk), then run the same command again",
            fsinfo::probe(path).described()
        ),
        Some(libc::EACCES | libc::EPERM) if rustix::process::geteuid().is_root() => {
            concat!(
                ". The destination refuses writes although this runs as root: ",
                share_refuses_writes!()
            )
            .into()
        }
        Some(libc::EACCES | libc::EPERM) => ". This user may not write there: choose a folder this user owns, or run the command with sudo".into(),
        Some(libc::ENOSPC | libc::EDQUOT) => ". The disk is full: free some space or choose another disk".into(),
        _ => ". Check that the disk or share is mounted and writable, then run the same command again".into(),
    }
}

/// Why the folder `path` (DEST, or pre-flight's probe folder in it) could not be made, from
/// the error `e` making it: the system's words and [`dest_advice`]. One classification for
/// `restore` and `preflight`. A folder that exists for `mkdir` but not for `lstat` is a share
/// refusing writes its own way: sshfs over a folder the server cannot write answers every
/// `mkdir` with "File exists" (round 16: pre-flight tried 1,000 names, then said "ready";
/// round 19: a restore into a DEST not made yet there said only "File exists"). What stands
/// in the way at or above `path` ([`in_the_way`]: a symbolic link to nothing, a link loop, a
/// file) is named, with what to do (round 21: a link to nothing's "File exists" was read
/// as that of a share refusing writes; round 22: a loop and a file were told to "check
/// that the disk or share is mounted and writable").
pub fn why_not_made(path: &Path, e: &std::io::Error) -> String {
    match in_the_way(path) {
        Some(InTheWay::LinkToNothing { link, target }) => {
            return format!(
                "{e}: {} is a symbolic link to {}, which does not exist, so no folder can be made there. Create the folder {} (or mount the disk or share it is on), or give another DEST, then run the same command again",
                link.display(),
                target.display(),
                target.display()
            )
        }
        Some(InTheWay::LinkLoop { link, target }) => {
            return format!(
                "{e}: {} is a symbolic link to {}, which leads back to it (a loop), so no folder can be made there. Point the link at the folder it stands for (or remove it), or give another DEST, then run the same command again",
                link.display(),
                target.display()
            )
        }
        Some(InTheWay::File { path: file, link }) => {
            let what = match link {
                Some(target) => format!(
                    "{} is a symbolic link to the file {}",
                    file.display(),
                    target.display()
                ),
                None => format!("{} is a file", file.display()),
            };
            return format!(
                "{e}: {what}, not a folder, so no folder can be made in it. Give a DEST whose folders are folders (or move that file away), then run the same command again"
            );
        }
        None => {}
    }
    let absent = matches!(path.symlink_metadata(),
        Err(m) if m.kind() == std::io::ErrorKind::NotFound);
    if e.kind() == std::io::ErrorKind::AlreadyExists && absent {
        return format!(
            "{} answered \"{e}\" but nothing is there, so the destination refuses writes: {SHARE_REFUSES_WRITES}",
            fsinfo::probe(path).described()
        );
    }
    format!("{e}{}", dest_advice(path, e))
}

/// What stands in the way of folders made at `path` ([`in_the_way`]).
#[derive(Debug, PartialEq, Eq)]
pub enum InTheWay {
    /// A symbolic link pointing at nothing: `mkdir` answers it "File exists", and so does
    /// `create_dir_all` for any folder below it. `target`: where it points (a relative one
    /// taken from the link's folder).
    LinkToNothing { link: PathBuf, target: PathBuf },
    /// A symbolic link that leads back to itself, directly or through others ("Too many
    /// levels of symbolic links", or "File exists" for the link itself).
    LinkLoop { link: PathBuf, target: PathBuf },
    /// A file, not a folder ("Not a directory"); `link`: where it points, if `path` is a
    /// symbolic link to the file.
    File {
        path: PathBuf,
        link: Option<PathBuf>,
    },
}

/// What stands in the way of folders made at `path`: the nearest of `path` and its folders
/// that is there, if it is no folder (nor a symbolic link to one). None: it is one, or
/// nothing is there (the root of a relative path).
pub fn in_the_way(path: &Path) -> Option<InTheWay> {
    let there =
        (path.ancestors()).find(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_ok())?;
    let linked = std::fs::read_link(there)
        .ok()
        .map(|t| there.parent().unwrap_or(Path::new("")).join(t));
    match (there.metadata(), linked) {
        (Ok(m), _) if m.is_dir() => None,
        (Ok(_), link) => Some(InTheWay::File {
            path: there.to_path_buf(),
            link,
        }),
        (Err(e), Some(target)) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(InTheWay::LinkToNothing {
                link: there.to_path_buf(),
                target,
            })
        }
        (Err(e), Some(target)) if e.raw_os_error() == Some(libc::ELOOP) => {
            Some(InTheWay::LinkLoop {
                link: there.to_path_buf(),
                target,
            })
        }
        _ => None,
    }
}

/// What to do about a `--report` path that cannot be written, after the system's words.
fn report_advice(path: &Path, e: &std::io::Error) -> String {
    let fix = match e.raw_os_error() {
        Some(libc::EROFS) => format!(
            " (its disk, {}, is mounted read-only)",
            fsinfo::probe(path).described()
        ),
        _ => String::new(),
    };
    format!("{fix}. Pass --report with a file in a folder that can be written, or leave --report out (the report then goes to report.json in the state folder). Nothing was changed")
}

/// A `--report` path given by the user, checked before anything is read or written (round
/// 20: one in a folder that does not exist, or a folder itself, was refused only once the
/// checkpoint was open, which added a run that did nothing to it, and a first run's
/// state folder stayed). Not a folder; its folder exists (or is the state folder, which
/// the restore makes) and is one; the file, or that folder where it is still to be made,
/// may be written by this process (`access(2)`: a read-only disk, a folder this user may
/// not write). Nothing is created here: a refused run would leave an empty file.
pub fn check_report(path: &Path, state_dir: &Path) -> Result<(), ConfigError> {
    use rustix::fs::{access, Access};
    let path_buf = path.to_path_buf();
    let unwritable = |source: std::io::Error| ConfigError::ReportUnwritable {
        path: path_buf.clone(),
        source,
    };
    if path.is_dir() {
        return Err(ConfigError::ReportIsFolder { path: path_buf });
    }
    if path.exists() {
        return access(path, Access::WRITE_OK).map_err(|e| unwritable(e.into()));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    if !folder.exists() && absolute(folder) == absolute(state_dir) {
        return Ok(());
    }
    let why = match folder.metadata() {
        Err(_) => "does not exist",
        Ok(m) if !m.is_dir() => "is not a folder",
        Ok(_) => {
            return access(folder, Access::WRITE_OK | Access::EXEC_OK)
                .map_err(|e| unwritable(e.into()))
        }
    };
    Err(ConfigError::ReportFolder {
        path: path_buf,
        folder: folder.to_path_buf(),
        why,
    })
}

/// How many copy threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Auto,
    Fixed(usize),
}

/// When a copied file counts as safely stored (see README, "Durability").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    None,
    Batch,
    File,
}

/// Everything a restore needs, checked.
#[derive(Debug, Clone)]
pub struct RestoreConfig {
    pub source: SourceLayout,
    pub dest: PathBuf,
    pub dest_fs: FsInfo,
    pub plan: PlanOptions,
    /// `--names auto`: the restore may switch to Windows rules on a destination it finds
    /// folding case (its filesystem type did not say so: a FUSE or network mount).
    pub names_auto: bool,
    pub threads: Threads,
    pub overwrite: bool,
    pub dry_run: bool,
    pub progress_interval: Duration,
    pub quiet: bool,
    pub state_dir: PathBuf,
    pub fresh: bool,
    pub durability: Durability,
    pub report_path: PathBuf,
    pub command_line: String,
}

/// The source's layout, for a command that reads it: the object folder must be readable
/// by this user ([`SourceLayout::check_readable`]).
pub fn source(a: &SourceArgs) -> anyhow::Result<SourceLayout> {
    let layout = SourceLayout::discover(&a.source, a.db.as_deref(), a.files_dir.as_deref())?;
    layout.check_readable()?;
    Ok(layout)
}

/// The name policy: explicit, or from the destination's filesystem type.
pub fn name_policy(arg: NamesArg, dest_fs: &FsInfo) -> NamePolicy {
    match arg {
        NamesArg::Posix => NamePolicy::Posix,
        NamesArg::Windows => NamePolicy::Windows,
        NamesArg::Auto if dest_fs.wants_windows_names() => NamePolicy::Windows,
        NamesArg::Auto => NamePolicy::Posix,
    }
}

/// A checkpoint folder given to a command that only reads it (`plan`, `verify`): one that
/// holds no checkpoint is a mistyped path, said so, rather than a silent fallback to the
/// default name rules and date fields.
pub fn given_state_dir(dir: Option<&Path>) -> Result<(), crate::state::StateError> {
    match dir {
        Some(d) if !d.join("checkpoint.db").is_file() => {
            Err(crate::state::StateError::NoCheckpoint(d.to_path_buf()))
        }
        _ => Ok(()),
    }
}

/// With `--names auto`, the rules the restore into this DEST has used so far (it may have
/// switched to Windows rules on a destination it found folding case), as its checkpoint in
/// `state_dir` records them: `plan`, `verify`, `regen` and a resume name files as it did.
/// Without `--mtime-from`, the date fields the restore into DEST used so far (kept in its
/// checkpoint), so a resume, `verify` or `regen` that leaves the option out dates files as
/// the earlier runs did; with none recorded, the default list.
pub fn dates_from(given: Option<&str>, state_dir: &Path) -> Result<DatePolicy, ConfigError> {
    let recorded = || crate::state::recorded_meta(state_dir, crate::state::DATES_KEY);
    let list = match given {
        Some(list) => list.to_string(),
        None => recorded().unwrap_or_else(|| crate::cli::MTIME_FROM.to_string()),
    };
    Ok(DatePolicy::now(
        parse_fields(&list).map_err(ConfigError::MtimeFrom)?,
    ))
}

/// The default date fields (`crate::cli::MTIME_FROM`), where no restore's choice applies.
pub fn default_dates() -> DatePolicy {
    DatePolicy::now(parse_fields(crate::cli::MTIME_FROM).expect("the default fields parse"))
}

pub fn follow_recorded_names(plan: &mut PlanOptions, names: NamesArg, state_dir: &Path) {
    if names != NamesArg::Auto {
        return;
    }
    let recorded = crate::state::recorded_meta(state_dir, crate::state::NAMES_KEY);
    if let Some(policy) = recorded.as_deref().and_then(NamePolicy::named) {
        plan.policy = policy;
    }
}

/// An `--only` path as the plan names folders: `./Photos/`, `Photos//2021` and
/// `Photos/./2021` as `Photos`, `Photos/2021` (empty and `.` components dropped; a shell's
/// tab completion writes them).
fn only_path(p: &str) -> String {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

pub fn plan_options(
    select: &SelectArgs,
    dest_fs: &FsInfo,
    dates: DatePolicy,
) -> Result<PlanOptions, ConfigError> {
    if select.limit == Some(0) {
        return Err(ConfigError::LimitZero);
    }
    Ok(PlanOptions {
        policy: name_policy(select.names, dest_fs),
        include_trash: select.include_trash,
        only: select.only.iter().map(|p| only_path(p)).collect(),
        users: select.user.clone(),
        limit: select.limit,
        dates,
    })
}

/// How a path leads into the source ([`inside_source`]), shown in a refusal after its two
/// paths: nothing more when the path itself leads there, the two folders that are one when
/// another path does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inside {
    /// Its path, symlinks and `..` resolved, is below one of the source's folders.
    ByPath,
    /// The folder `here` on its way is the source's folder `there`, reached by another
    /// path: a bind mount, or the same disk mounted twice.
    SameFolder { here: PathBuf, there: PathBuf },
}

impl std::fmt::Display for Inside {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Inside::ByPath => Ok(()),
            Inside::SameFolder { here, there } => write!(
                f,
                " ({} and {} are the same folder reached by two paths: a bind mount, or the disk mounted twice)",
                here.display(),
                there.display()
            ),
        }
    }
}

/// Whether a write to `path` would land inside the source: its data folder, its object
/// folder, or the database read (`--db` may point elsewhere) or its backup, with the files
/// SQLite keeps beside a database (`-wal`, `-shm`, `-journal`). Every path the tool writes
/// to goes through it.
///
/// Paths are compared where they really lead (`fsinfo::resolved_path`), so symlinks and
/// `..` cannot sneak around the check. A bind mount or a disk mounted twice can: another
/// path with no symlink in it reaches the same folders. So each existing folder on the way
/// is also compared by what it is (`fsinfo::identity`: device and inode) with the source's
/// folders, and where one is the same folder, the rest of the path is checked from there.
/// A bind mount of a folder between them (`restsdk/data` when the partition was named, a
/// shard of the object folder) is none of those folders: so the path's place within its
/// filesystem (`fsinfo::place_in_filesystem`, from the mount table) is also compared with
/// theirs.
pub fn inside_source(source: &SourceLayout, path: &Path) -> Option<Inside> {
    let full = fsinfo::resolved_path(path);
    if inside_by_path(source, &full) {
        return Some(Inside::ByPath);
    }
    let folders: Vec<(PathBuf, (u64, u64))> = source_folders(source)
        .into_iter()
        .filter_map(|f| fsinfo::identity(&f).ok().map(|id| (f, id)))
        .collect();
    let by_identity = full.ancestors().find_map(|here| {
        let id = fsinfo::identity(here).ok()?;
        let rest = full.strip_prefix(here).ok()?;
        folders
            .iter()
            .find(|(there, f)| *f == id && inside_by_path(source, &there.join(rest)))
            .map(|(there, _)| Inside::SameFolder {
                here: here.to_path_buf(),
                there: there.clone(),
            })
    });
    by_identity.or_else(|| {
        let table = fsinfo::mount_table()?;
        let (device, inner) = fsinfo::place_in_filesystem(&table, &full)?;
        folders.iter().find_map(|(there, _)| {
            let (d, their) = fsinfo::place_in_filesystem(&table, there)?;
            let rest = inner.strip_prefix(&their).ok().filter(|_| d == device)?;
            inside_by_path(source, &there.join(rest)).then(|| Inside::SameFolder {
                here: full
                    .ancestors()
                    .nth(rest.components().count())
                    .unwrap_or(&full)
                    .to_path_buf(),
                there: there.clone(),
            })
        })
    })
}

/// [`inside_source`] by the path alone, `full` already resolved.
fn inside_by_path(source: &SourceLayout, full: &Path) -> bool {
    let disk = disk_root(&source.root);
    let folders = [&disk, &source.root, &source.files];
    if folders
        .iter()
        .any(|f| full.starts_with(fsinfo::resolved_path(f)))
    {
        return true;
    }
    [Some(&source.db), source.backup_db.as_ref()]
        .into_iter()
        .flatten()
        .any(|db| {
            let db = fsinfo::resolved_path(db);
            ["", "-wal", "-shm", "-journal"].iter().any(|sidecar| {
                let mut p = db.clone().into_os_string();
                p.push(sidecar);
                full == Path::new(&p)
            })
        })
}

/// The folders [`inside_by_path`] protects, or holds a protected file of (the databases'
/// folders), resolved.
fn source_folders(source: &SourceLayout) -> Vec<PathBuf> {
    let dbs = [Some(&source.db), source.backup_db.as_ref()];
    [
        disk_root(&source.root),
        source.root.clone(),
        source.files.clone(),
    ]
    .into_iter()
    .chain(
        dbs.into_iter()
            .flatten()
            .filter_map(|d| d.parent().map(Path::to_path_buf)),
    )
    .map(|f| fsinfo::resolved_path(&f))
    .collect()
}

/// The device's `restsdk` folder when the source was named as `.../restsdk/data`: nothing
/// in it is written, not only below the level the user typed. Not the folder above it,
/// which may be the device's disk or a folder `restsdk` was copied into (`$HOME`), where
/// writing beside the copy is fine.
fn disk_root(root: &Path) -> PathBuf {
    let root = fsinfo::resolved_path(root);
    let name = |p: &Path| p.file_name().map(|n| n.to_os_string());
    match root.parent() {
        Some(parent)
            if name(&root).as_deref() == Some("data".as_ref())
                && name(parent).as_deref() == Some("restsdk".as_ref()) =>
        {
            parent.to_path_buf()
        }
        _ => root,
    }
}

/// Refuses a destination inside the source or containing it (a restored folder named like
/// the source's folder would be written into it), or one that exists and is not a folder.
/// Containing is checked by path, and by identity for a DEST that exists (a bind mount of a
/// folder above the source holds it too).
pub fn check_dest(source: &SourceLayout, dest: &Path) -> Result<(), ConfigError> {
    let src = disk_root(&source.root);
    if let Some(how) = inside_source(source, dest) {
        return Err(ConfigError::DestInsideSource {
            dest: dest.to_path_buf(),
            src,
            how,
        });
    }
    let full = fsinfo::resolved_path(dest);
    let held = [&src, &source.files, &source.db].map(|p| fsinfo::resolved_path(p));
    let how = match fsinfo::identity(&full) {
        _ if held.iter().any(|p| p.starts_with(&full)) => Some(Inside::ByPath),
        Ok(id) => held.iter().find_map(|p| {
            p.ancestors()
                .find(|a| fsinfo::identity(a).is_ok_and(|a| a == id))
                .map(|there| Inside::SameFolder {
                    here: full.clone(),
                    there: there.to_path_buf(),
                })
        }),
        Err(_) => None,
    };
    if let Some(how) = how {
        return Err(ConfigError::DestContainsSource {
            dest: dest.to_path_buf(),
            src,
            how,
        });
    }
    if dest.exists() && !dest.is_dir() {
        return Err(ConfigError::DestNotDir(dest.to_path_buf()));
    }
    Ok(())
}

pub fn parse_threads(s: &str) -> Result<Threads, ConfigError> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(Threads::Auto);
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(Threads::Fixed(n)),
        _ => Err(ConfigError::Threads(s.to_string())),
    }
}

impl RestoreConfig {
    pub fn new(
        source_args: &SourceArgs,
        dest: &Path,
        select: &SelectArgs,
        run: &RunArgs,
    ) -> anyhow::Result<RestoreConfig> {
        let source = source(source_args)?;
        check_dest(&source, dest)?;
        let dest_fs = fsinfo::probe(dest);
        let state_dir = run
            .state_dir
            .clone()
            .unwrap_or_else(|| crate::state::default_state_dir(&source.db, dest));
        let dates = dates_from(run.mtime_from.as_deref(), &state_dir)?;
        let mut plan = plan_options(select, &dest_fs, dates)?;
        let threads = parse_threads(&run.threads)?;
        follow_recorded_names(&mut plan, select.names, &state_dir);
        if let Some(how) = inside_source(&source, &state_dir) {
            return Err(ConfigError::StateInsideSource(state_dir, how).into());
        }
        let report_path = run
            .report
            .clone()
            .unwrap_or_else(|| state_dir.join("report.json"));
        if let Some(how) = inside_source(&source, &report_path) {
            return Err(ConfigError::ReportInsideSource(report_path, how).into());
        }
        if run.report.is_some() {
            check_report(&report_path, &state_dir)?;
        }
        Ok(RestoreConfig {
            source,
            // The path DEST resolves to: the checkpoint is bound to it, so `out/` and `out`
            // are one restore.
            dest: fsinfo::resolved_path(dest),
            dest_fs,
            plan,
            names_auto: select.names == NamesArg::Auto,
            threads,
            overwrite: run.overwrite,
            dry_run: run.dry_run,
            progress_interval: Duration::from_secs(run.progress_interval.max(1)),
            quiet: run.quiet,
            state_dir,
            fresh: run.fresh,
            durability: match run.durability {
                DurabilityArg::None => Durability::None,
                DurabilityArg::Batch => Durability::Batch,
                DurabilityArg::File => Durability::File,
            },
            report_path,
            // Arguments need not be UTF-8 (a DEST named with Latin-1 bytes): kept lossily,
            // as this line is only shown to the user.
            command_line: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_lose_empty_and_dot_components() {
        for (given, used) in [
            ("./Photos", "Photos"),
            ("Photos/", "Photos"),
            ("/Photos//2021/", "Photos/2021"),
            ("./Photos/./2021", "Photos/2021"),
            ("Odd names/a.b", "Odd names/a.b"),
            ("..", ".."),
        ] {
            assert_eq!(only_path(given), used, "{given}");
        }
    }

    #[test]
    fn threads_parse() {
        assert_eq!(parse_threads("auto").unwrap(), Threads::Auto);
        assert_eq!(parse_threads("8").unwrap(), Threads::Fixed(8));
        assert!(parse_threads("0").is_err());
        assert!(parse_threads("many")
            .unwrap_err()
            .to_string()
            .contains("many"));
    }

    /// The folders and (empty) index of a device's `restsdk` under `root`.
    fn fake_restsdk(root: &Path) {
        std::fs::create_dir_all(root.join("restsdk/data/db")).unwrap();
        std::fs::create_dir_all(root.join("restsdk/data/files")).unwrap();
        std::fs::write(root.join("restsdk/data/db/index.db"), b"").unwrap();
    }

    #[test]
    fn dest_inside_source_is_refused_even_if_not_yet_created() {
        let t = tempfile::tempdir().unwrap();
        fake_restsdk(t.path());
        let s = SourceLayout::discover(t.path(), None, None).unwrap();
        let e = check_dest(&s, &t.path().join("restsdk/out/new")).unwrap_err();
        assert!(matches!(e, ConfigError::DestInsideSource { .. }));
        let e = check_dest(&s, &t.path().join("restsdk/data/files/../../x")).unwrap_err();
        assert!(matches!(e, ConfigError::DestInsideSource { .. }));
        let other = tempfile::tempdir().unwrap();
        check_dest(&s, &other.path().join("restored")).unwrap();
        // A `..` after a folder that does not exist yet still leads into the source.
        let sneaky = other
            .path()
            .join("new/../..")
            .join(t.path().file_name().unwrap())
            .join("restsdk/data/db/report.json");
        assert_eq!(t.path().parent(), other.path().parent());
        assert!(inside_source(&s, &sneaky).is_some(), "{}", sneaky.display());
        // And through a symlink.
        std::os::unix::fs::symlink(t.path().join("restsdk/data"), other.path().join("link"))
            .unwrap();
        assert!(inside_source(&s, &other.path().join("link/db/index.db")).is_some());
        assert!(inside_source(&s, &other.path().join("report.json")).is_none());
        // A database given with --db, outside the source folder: it and the files SQLite
        // keeps beside it are protected, not the rest of its folder.
        let ext = tempfile::tempdir().unwrap();
        std::fs::write(ext.path().join("index.db"), b"").unwrap();
        let with_db =
            SourceLayout::discover(t.path(), Some(&ext.path().join("index.db")), None).unwrap();
        assert!(inside_source(&with_db, &ext.path().join("index.db")).is_some());
        assert!(inside_source(&with_db, &ext.path().join("index.db-wal")).is_some());
        assert!(inside_source(&with_db, &ext.path().join("restored")).is_none());
        assert!(inside_source(&with_db, &other.path().join("report.json")).is_none());
    }

    /// Named at `restsdk/data`, the source is still all of `restsdk`: nothing beside
    /// `data` (`restsdk/out`) is written, nor a folder holding it, where a restored folder
    /// named `data` or `restsdk` would land in the source. Beside `restsdk` is fine unless
    /// the folder above it was named (a `restsdk` copied into `$HOME` leaves `$HOME/out`
    /// usable).
    #[test]
    fn the_device_s_disk_is_the_source_whatever_level_was_named() {
        let t = tempfile::tempdir().unwrap();
        fake_restsdk(&t.path().join("disk"));
        for named in ["disk", "disk/restsdk", "disk/restsdk/data"] {
            let s = SourceLayout::discover(&t.path().join(named), None, None).unwrap();
            let beside = check_dest(&s, &t.path().join("disk/out"));
            assert_eq!(beside.is_err(), named == "disk", "{named}: {beside:?}");
            for inside in ["disk/restsdk/out", "disk/restsdk"] {
                let e = check_dest(&s, &t.path().join(inside)).unwrap_err();
                assert!(
                    matches!(e, ConfigError::DestInsideSource { .. }),
                    "{named}: {inside}: {e}"
                );
            }
            for holding in ["", "."] {
                let e = check_dest(&s, &t.path().join(holding)).unwrap_err();
                assert!(
                    matches!(e, ConfigError::DestContainsSource { .. }),
                    "{named}: {holding}: {e}"
                );
                assert!(e.to_string().contains("contains the source"));
            }
            check_dest(&s, &t.path().join("restored")).unwrap();
        }
        // --db elsewhere: a DEST holding that database is refused too.
        let ext = tempfile::tempdir().unwrap();
        std::fs::write(ext.path().join("index.db"), b"").unwrap();
        let s = SourceLayout::discover(
            &t.path().join("disk"),
            Some(&ext.path().join("index.db")),
            None,
        )
        .unwrap();
        assert!(matches!(
            check_dest(&s, ext.path()).unwrap_err(),
            ConfigError::DestContainsSource { .. }
        ));
    }
}
