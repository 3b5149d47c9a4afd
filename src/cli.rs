//! The command line: `run`, `demo`, `eval`, `check-config`, `migrate`.

use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
