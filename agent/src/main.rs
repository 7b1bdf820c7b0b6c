//! The `updater` binary: parse, log, dispatch, map errors to exit codes.

use clap::Parser;
use updater::cli::Cli;
use updater::error::{classify, OneLine};

fn main() {
    let cli = Cli::parse();
    updater::cli::init_logging(&cli);
    let code = match updater::cli::run(cli) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {}", OneLine(&err));
            classify(&err).code()
        }
    };
    std::process::exit(code);
}
