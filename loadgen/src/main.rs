//! `imbench`: the command line of the load generator (see [`cli`]).

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
