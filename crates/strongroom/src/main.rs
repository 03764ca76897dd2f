//! The `strongroom` command. Everything happens in the library; this decides the exit
//! code.

use std::process::ExitCode;

fn main() -> ExitCode {
    strongroom::cli::main()
}
