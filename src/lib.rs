//! mycloud-recover: restore a dead WD My Cloud Home's files from its disk.
//!
//! The pipeline: [`source`] finds the dump and reads the index read-only; [`plan`] resolves
//! every row to a restored path under a name policy; [`restore`] copies in parallel with a
//! checkpoint in [`state`]; [`report`] turns engine events into progress and reports.
//! [`commands`] holds one function per subcommand; `main.rs` only parses and exits.

pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod exit;
pub mod fsinfo;
pub mod held;
pub mod plan;
pub mod preflight;
pub mod report;
pub mod restore;
pub mod signals;
pub mod source;
pub mod state;
pub mod verify;
pub mod walk;

pub use exit::Exit;

use anyhow::Context;
use clap::Parser;

use cli::{Command, DemoArgs, SizeMixArg};

/// Runs one command and returns the exit status to report.
pub fn run(cli: cli::Cli) -> anyhow::Result<Exit> {
    match &cli.command {
        Command::Demo(a) => demo(a),
        Command::Inspect(a) => commands::inspect(a),
        Command::Plan(a) => commands::plan(a),
        Command::Restore(a) => commands::restore(a),
        Command::Status(a) => commands::status(a),
        Command::StatusLooks(a) => commands::status_looks(a),
        Command::Regen(a) => commands::regen(a),
        Command::Verify(a) => commands::verify(a),
        Command::Preflight(a) => preflight::run(a),
    }
}

/// `demo`: write a seeded dump (or reuse the one already there), then restore it.
fn demo(a: &DemoArgs) -> anyhow::Result<Exit> {
    let spec = demo::DemoSpec {
        seed: a.seed,
        files: a.files,
        users: a.users,
        size_mix: match a.size_mix {
            SizeMixArg::Demo => demo::SizeMix::Demo,
            SizeMixArg::Small => demo::SizeMix::Small,
            SizeMixArg::Real => demo::SizeMix::Real,
            SizeMixArg::Large => demo::SizeMix::Large,
        },
        content: if a.no_content {
            demo::Content::None
        } else if a.tiny {
            demo::Content::Tiny
        } else {
            demo::Content::Full
        },
    };
    let dump = a.dir.join("dump");
    let existing = demo::read_manifest(&dump).ok();
    let same = existing.as_ref().is_some_and(|m| m.spec == spec);
    // A folder is replaced only when `demo` made it (commands::prepare_demo_dir).
    if a.force || (!same && a.dir.exists()) {
        commands::prepare_demo_dir(&a.dir, a.force)?;
    }
    // What the demo writes does not depend on its output: `demo | head -1` panicked at the
    // next line (exit 101), after the dump and before its restore.
    let say = |line: String| commands::print_out(&format!("{line}\n"));
    if same && !a.force {
        say(format!(
            "Reusing the demo dump in {} (same settings)",
            dump.display()
        ));
    } else {
        let t = std::time::Instant::now();
        let m = demo::generate(&dump, &spec)
            .with_context(|| format!("cannot write the demo dump in {}", dump.display()))?;
        // The messy cases it holds: a small dump has room for only some of them.
        let messy = [
            (!m.missing_object_ids.is_empty(), "missing objects"),
            (!m.unlinked_ids.is_empty(), "unlinked rows"),
            (!m.cycle_folder_ids.is_empty(), "a cycle"),
            (!m.awkward_name_ids.is_empty(), "awkward names"),
        ]
        .into_iter()
        .filter_map(|(held, what)| held.then_some(what))
        .collect::<Vec<_>>();
        say(format!(
            "Demo dump written to {} in {:.1}s: {}, {}, {}{}",
            dump.display(),
            t.elapsed().as_secs_f64(),
            report::plural(m.files, "file", "files"),
            report::plural(m.folders, "folder", "folders"),
            report::human_bytes(m.bytes),
            match messy.is_empty() {
                true => String::new(),
                false => format!(" (with {})", messy.join(", ")),
            }
        ));
    }
    if a.no_restore {
        return Ok(Exit::Ok);
    }
    let restored = a.dir.join("restored");
    let state = a.dir.join("state");
    let args = [
        "mycloud-recover".as_ref(),
        "restore".as_ref(),
        dump.as_os_str(),
        restored.as_os_str(),
        "--state-dir".as_ref(),
        state.as_os_str(),
    ];
    let cli = cli::Cli::try_parse_from(args)?;
    let Command::Restore(r) = &cli.command else {
        unreachable!("parsed a restore command")
    };
    say(format!("Restoring it into {}", restored.display()));
    let code = commands::restore(r)?;
    match code {
        Exit::Interrupted => {
            say("Run the same command again: the restore continues where it stopped".into())
        }
        _ => say(format!(
            "Try: run the same command again (it resumes: nothing left to copy), or look at {}",
            restored.display()
        )),
    }
    Ok(code)
}

/// An error and its causes on one line, each cause said once: most messages already name
/// their cause (`cannot write to destination X: Read-only file system`), which anyhow's
/// `{:#}` would repeat.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if text.is_empty() {
            text = said;
        } else if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(30);
        let e = anyhow::Error::new(crate::config::ConfigError::DestUnwritable {
            path: "/mnt/x".into(),
            source: io,
        });
        let text = super::error_text(&e);
        assert_eq!(text.matches("os error 30").count(), 1, "{text}");
        let e = anyhow::Error::new(std::io::Error::from_raw_os_error(2)).context("cannot open /a");
        assert_eq!(
            super::error_text(&e),
            format!("cannot open /a: {}", std::io::Error::from_raw_os_error(2))
        );
    }
}
