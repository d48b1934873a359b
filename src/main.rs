//! Thin entry point: parse, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = mycloud_recover::cli::Cli::parse();
    let code = match mycloud_recover::run(cli) {
        Ok(exit) => exit.code(),
        Err(e) => {
            eprintln!("mycloud-recover: error: {e:#}");
            mycloud_recover::Exit::CannotRun.code()
        }
    };
    std::process::exit(code);
}
