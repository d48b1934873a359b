//! Command-line definitions (clap types stop here; [`crate::config`] turns them into checked
//! plain structs before any I/O happens).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

/// The date fields a restore takes modification times from, by default; `regen` and `verify`
/// must be given the restore's own list to agree with it.
pub const MTIME_FROM: &str = "imageDate,videoDate,cTime,birthTime";

#[derive(Debug, Parser)]
#[command(
    name = "mycloud-recover",
    version,
    about = "Restore the files of a dead WD My Cloud Home under their original names, folders and dates",
    long_about = "Restore the files of a dead WD My Cloud Home (also My Cloud Home Duo, SanDisk ibi) \
from its disk: reads restsdk/data/db/index.db (read-only, never modified) and the object store \
restsdk/data/files, and copies every file under its original name, folder and date to a new disk \
or NAS. Interrupted runs continue where they stopped when the same command is run again.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a realistic demo dump (seeded) and restore it into a sibling folder.
    Demo(DemoArgs),
    /// Describe a dump: counts, users, Trash, object-store match, broken rows, name changes.
    Inspect(InspectArgs),
    /// Show what would be restored where, and every problem, without writing anything.
    Plan(PlanArgs),
    /// Restore every file to DEST (resumes automatically when run again).
    Restore(RestoreArgs),
    /// Show the progress of a restore from its checkpoint (safe while a restore runs).
    // Said by hand: clap writes the two optional paths as `[SOURCE] [DEST]...`, which reads
    // as if several DESTs were taken.
    #[command(override_usage = "mycloud-recover status [OPTIONS] [SOURCE DEST]")]
    Status(StatusArgs),
    /// Not for users (hidden): the looks of `status` at the source and DEST, made in a
    /// process of their own that `status` starts and may leave behind when a disk does not
    /// answer (`crate::commands::status`). It says what it finds as JSON lines on stdout;
    /// `ps` shows it under this name.
    #[command(name = "status-looks", hide = true)]
    StatusLooks(StatusArgs),
    /// Rebuild the checkpoint from what is actually on DEST (never deletes or moves anything).
    Regen(RegenArgs),
    /// Check DEST against the plan: present, size, date; --content compares bytes.
    ///
    /// Exits 1 when a file is absent or differs on DEST, or has no object in the source to
    /// check it against (listed); 2 when DEST does not exist or is not a folder.
    Verify(VerifyArgs),
    /// Inspect and benchmark this machine and both disks; recommend settings; estimate time.
    Preflight(PreflightArgs),
}

/// Where the dump is.
#[derive(Debug, Args, Clone)]
pub struct SourceArgs {
    /// The mounted My Cloud data partition, its `restsdk` folder, or `restsdk/data`.
    pub source: PathBuf,
    /// Use this index database instead of `<source>/.../db/index.db` (for example the
    /// `dbBackup/index.db` copy).
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// Use this object folder instead of `<source>/.../files`.
    #[arg(long = "files", value_name = "PATH")]
    pub files_dir: Option<PathBuf>,
}

/// Which files to restore and how to name them; `plan`, `verify`, `regen` and `preflight`
/// take the same options to look at the same files.
#[derive(Debug, Args, Clone, Default)]
pub struct SelectArgs {
    /// Only this restored folder (what is below it) or file (repeatable), e.g. `Photos/2019`;
    /// whole names, case-sensitive: a path that names nothing in the dump is refused.
    #[arg(long, value_name = "PATH")]
    pub only: Vec<String>,
    /// With several user accounts, only this one (its label, `auth0_<id>`, or its auth0 id,
    /// with or without `auth0|`).
    #[arg(long, value_name = "USER")]
    pub user: Vec<String>,
    /// Also the contents of the device's Trash (restored under `Trash/`).
    #[arg(long)]
    pub include_trash: bool,
    /// At most N files (after the other filters), in plan order.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// How to make names safe for the destination; `auto` picks `windows` for NTFS, FAT,
    /// exFAT, SMB/CIFS and fuseblk destinations, and for one a restore finds folding case
    /// (with a warning), `posix` otherwise; a resume keeps the rules of the first run.
    #[arg(long, value_enum, default_value_t = NamesArg::Auto)]
    pub names: NamesArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum NamesArg {
    #[default]
    Auto,
    Posix,
    Windows,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder to create the demo in (holds `dump/` and `restored/`).
    #[arg(default_value = "mycloud-demo")]
    pub dir: PathBuf,
    /// Seed for the generator: the same seed gives the same dump.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of file rows.
    #[arg(long, default_value_t = 1000)]
    pub files: u64,
    /// Number of user accounts (auth0 roots).
    #[arg(long, default_value_t = 1)]
    pub users: u32,
    /// Size mix of the objects.
    #[arg(long, value_enum, default_value_t = SizeMixArg::Demo)]
    pub size_mix: SizeMixArg,
    /// Write the database only, no objects (for planner scale tests).
    #[arg(long)]
    pub no_content: bool,
    /// Write tiny objects (a few bytes each) whatever the sizes in the database say.
    #[arg(long)]
    pub tiny: bool,
    /// Only generate the dump; do not restore it.
    #[arg(long)]
    pub no_restore: bool,
    /// Replace a demo folder made with other settings. Only a folder `demo` made (holding
    /// just `dump/` with its manifest, `restored/` and `state/`) is replaced; any other
    /// non-empty folder is refused, with or without --force.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SizeMixArg {
    /// Mostly small files with a few multi-megabyte ones (quick to restore).
    Demo,
    /// Many small files, 4-64 KB.
    Small,
    /// The real device's mix: mean about 1.3 MB with a long tail.
    Real,
    /// A few large files (hundreds of MB).
    Large,
}

#[derive(Debug, Args, Clone)]
pub struct InspectArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Name policy to count name changes under.
    #[arg(long, value_enum, default_value_t = NamesArg::Posix)]
    pub names: NamesArg,
    /// How many contentIDs to sample when checking the object store.
    #[arg(long, default_value_t = 2000)]
    pub sample: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where the files would be restored (nothing is written there).
    pub dest: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Print JSON lines (one entry per line, then problems and a summary) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print only the summary and problems, not every entry.
    #[arg(long)]
    pub summary: bool,
    /// The restore's checkpoint folder, if it was given one with --state-dir: the name rules
    /// and date fields it recorded are followed.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Date fields to take each file's modification time from, first plausible wins.
    /// Fields: imageDate, videoDate, cTime, birthTime, mTime, uTime. Default: the fields
    /// the restore into DEST used so far (its checkpoint says), else
    /// imageDate,videoDate,cTime,birthTime.
    #[arg(long, value_name = "LIST")]
    pub mtime_from: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where to restore to (created if missing). Must not be inside SOURCE.
    pub dest: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// How a restore runs.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Copy threads: a number, or `auto`: on a network destination with at least 20,000
    /// files left a few-second measurement picks it; otherwise the default for the
    /// destination (two per core, 4 to 16, on a local disk; 32 on a network one).
    #[arg(long, default_value = "auto", value_name = "N|auto")]
    pub threads: String,
    /// Date fields to take each file's modification time from, first plausible wins.
    /// Fields: imageDate, videoDate, cTime, birthTime, mTime, uTime. Default: the fields
    /// the restore into DEST used so far (its checkpoint says), else
    /// imageDate,videoDate,cTime,birthTime.
    #[arg(long, value_name = "LIST")]
    pub mtime_from: Option<String>,
    /// Replace existing destination files that differ (default: keep them, report a conflict).
    #[arg(long)]
    pub overwrite: bool,
    /// Show what the same command would do now (files the checkpoint records count as
    /// done); write nothing anywhere. Exits 2 where the real run would be refused at start-up
    /// (a destination this process may not write, as on a disk mounted read-only).
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds between progress lines when output is not a terminal (at least 1).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub progress_interval: u64,
    /// No progress output; only the final summary and errors.
    #[arg(long)]
    pub quiet: bool,
    /// Where the checkpoint lives (default: a per-user state folder for DEST).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Start a new checkpoint (files already identical on DEST are still adopted, not copied).
    #[arg(long)]
    pub fresh: bool,
    /// When a file counts as safely stored: `batch` (default) syncs the destination before
    /// each checkpoint commit; `file` fsyncs every file before its rename; `none` trusts the OS.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Batch)]
    pub durability: DurabilityArg,
    /// Write the JSON report here, in a folder that exists (default: `report.json` in the
    /// state folder).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    None,
    Batch,
    File,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// SOURCE and DEST of the restore (or use --state-dir).
    #[arg(num_args = 0..=2, value_names = ["SOURCE", "DEST"])]
    pub paths: Vec<PathBuf>,
    /// The restore's checkpoint folder, if it was given one with --state-dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The index database the restore was given with --db, if any.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The object folder the restore was given with --files, if any.
    #[arg(long = "files", value_name = "PATH")]
    pub files_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RegenArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The destination of the restore (only read: nothing there is changed).
    pub dest: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// The checkpoint folder to rebuild (default: the restore's, found by DEST).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Also compare every file found with the planned size and date byte for byte with its
    /// object (reads both); those that differ are copied again by the next restore. What to
    /// run after `verify --content` found files that differ.
    #[arg(long)]
    pub content: bool,
    /// Date fields to take each file's modification time from, first plausible wins.
    /// Fields: imageDate, videoDate, cTime, birthTime, mTime, uTime. Default: the fields
    /// the restore into DEST used (its checkpoint says), else imageDate,videoDate,cTime,birthTime.
    #[arg(long, value_name = "LIST")]
    pub mtime_from: Option<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The destination to check (only read).
    pub dest: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Also compare every file's bytes with its object (reads around the page cache).
    #[arg(long)]
    pub content: bool,
    /// The restore's checkpoint folder, if it was given one with --state-dir: the name rules
    /// and date fields it recorded are followed.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Date fields to take each file's modification time from, first plausible wins.
    /// Fields: imageDate, videoDate, cTime, birthTime, mTime, uTime. Default: the fields
    /// the restore into DEST used (its checkpoint says), else imageDate,videoDate,cTime,birthTime.
    #[arg(long, value_name = "LIST")]
    pub mtime_from: Option<String>,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// Where the restore would write (its benchmark files are removed afterwards).
    pub dest: PathBuf,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Seconds to spend on benchmarks in all (roughly).
    #[arg(long, default_value_t = 40)]
    pub budget: u64,
    /// Print the findings as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `--help` is the manual most users read: every argument of every command says what it
    /// is for (clap's own `--help` and `--version` aside).
    #[test]
    fn every_argument_of_every_command_has_help_text() {
        let cli = Cli::command();
        let mut bare = Vec::new();
        for cmd in cli.get_subcommands() {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg
                    .get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
                {
                    bare.push(format!("{} {id}", cmd.get_name()));
                }
            }
        }
        assert!(bare.is_empty(), "arguments without help text: {bare:?}");
    }
}
