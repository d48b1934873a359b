//! mycloud-recover: restore a dead WD My Cloud Home's files from its disk.
//!
//! The pipeline: [`source`] finds the dump and reads the index read-only; [`plan`] resolves
//! every row to a restored path under a name policy; [`restore`] copies in parallel with a
//! checkpoint in [`state`]; [`report`] turns engine events into progress and reports;
//! [`preflight`] measures the machine and estimates the duration.

pub mod cli;
pub mod demo;
pub mod exit;
pub mod plan;
pub mod source;

pub use exit::Exit;

use anyhow::Result;

/// Runs one command and returns the exit status to report.
pub fn run(cli: cli::Cli) -> Result<Exit> {
    match cli.command {
        _ => anyhow::bail!("not implemented yet"),
    }
}
