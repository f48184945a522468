//! The `arakoon` binary; everything is in the `cli` library.

fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    cli::main(&args)
}
