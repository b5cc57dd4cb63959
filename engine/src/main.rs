//! The `patchday` binary: parses the command line and maps results to exit codes
//! (0 success, 1 the thing checked failed, 2 usage, configuration or I/O error).

fn main() -> std::process::ExitCode {
    patchday::cli::main()
}
