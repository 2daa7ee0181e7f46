//! fwrun: run an embedded device's firmware isolated on a Linux host.
//! This file only maps the run's result to an exit code.

use clap::Parser;
use fwrun::{cli, config, error, run};

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    // fwrun's errors are one line and never show a backtrace. With
    // RUST_BACKTRACE set (as on many developers' and CI machines), every
    // error value would still walk the stack when made, even the ones a
    // run makes and handles itself (a masked path this kernel lacks): about
    // 0.3 ms a run. The firmware's environment is fwrun's own making, so
    // this setting does not reach it.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            // One line, as for every other bad input.
            // clap's first paragraph, its lines joined (a missing argument's
            // name comes on the line after the sentence).
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("fwrun: {first} (see fwrun --help)");
            std::process::exit(error::LAUNCHER_FAILED);
        }
    };
    let code = match config::RunConfig::from_cli(cli).and_then(run::run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fwrun: {}", error::one_line(&e));
            error::exit_code(&e)
        }
    };
    // What the teardown let go of in children is released before fwrun
    // ends.
    fwrun::state::teardown::settle();
    std::process::exit(code);
}
