//! Thin entry point: parse, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = mycloud_recover::cli::Cli::parse();
    let code = match mycloud_recover::run(cli) {
        Ok(exit) => exit.code(),
        // `plan --json | head`: the reader left; nothing is wrong and nothing to say.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!(
                "mycloud-recover: error: {}",
                mycloud_recover::error_text(&e)
            );
            mycloud_recover::Exit::CannotRun.code()
        }
    };
    std::process::exit(code);
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
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
