//! The `xcore` binary; everything lives in the library (see `xcore::cli`).

fn main() -> std::process::ExitCode {
    xcore::cli::main()
}
