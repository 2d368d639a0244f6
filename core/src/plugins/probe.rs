//! The crash check: a new library is loaded first by a short-lived child
//! process (`xcore plugin check FILE`), so bytes that pass the ELF check
//! but kill the dynamic loader (relocations or `.dynamic` overwritten: an
//! ld.so assertion, SIGSEGV, SIGBUS) kill the child, not the host. A child
//! that crashes, hangs past the timeout or says no refuses the library,
//! and the host loads only the very bytes the child loaded.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::io::AsyncReadExt;

use super::library;

/// Most bytes of the child's error output kept in a refusal.
const MAX_REPORT_BYTES: usize = 2048;

/// Runs the check program.
#[derive(Clone, Debug)]
pub struct Checker {
    program: Result<PathBuf, String>,
    timeout: Duration,
}

impl Checker {
    /// `configured` is `plugins.checker` (empty: this executable, or the
    /// `xcore` next to it when the host runs inside another program, such
    /// as a test binary under `target/debug/deps`).
    pub fn new(configured: &str, timeout: Duration) -> Self {
        let program = if configured.is_empty() {
            default_program()
        } else {
            Ok(PathBuf::from(configured))
        };
        Self { program, timeout }
    }

    /// Loads `bytes` in a child process; `Err` says why they are refused.
    ///
    /// The child works in a directory of its own under `scratch`, which
    /// this process removes whatever happened: a child that crashes inside
    /// dlopen (the case the check exists for) cannot remove its copy.
    pub async fn check(&self, bytes: &[u8], scratch: &Path) -> Result<(), String> {
        let program = self.program.as_ref().map_err(Clone::clone)?;
        let workspace = scratch.join(format!("check-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&workspace)
            .map_err(|error| format!("cannot create {}: {error}", workspace.display()))?;
        let file = workspace.join("library.so");
        let outcome = match std::fs::write(&file, bytes) {
            Ok(()) => self.run(program, &file, &workspace).await,
            Err(error) => Err(format!("cannot write {}: {error}", file.display())),
        };
        let _ = std::fs::remove_dir_all(&workspace);
        outcome
    }

    async fn run(&self, program: &Path, file: &Path, workspace: &Path) -> Result<(), String> {
        let mut child = tokio::process::Command::new(program)
            .arg("plugin")
            .arg("check")
            .arg(file)
            .arg("--scratch")
            .arg(workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| {
                format!(
                    "cannot start the plugin checker {}: {error}",
                    program.display()
                )
            })?;
        let mut stderr = child.stderr.take();
        let waited = tokio::time::timeout(self.timeout, async {
            let mut report = Vec::new();
            if let Some(stderr) = stderr.as_mut() {
                let _ = stderr
                    .take(MAX_REPORT_BYTES as u64 * 4)
                    .read_to_end(&mut report)
                    .await;
            }
            (child.wait().await, report)
        })
        .await;
        let Ok((status, report)) = waited else {
            // kill_on_drop ends it; say so plainly.
            return Err(format!(
                "loading the library did not finish within {} s (checked in a child process); refused",
                self.timeout.as_secs_f32()
            ));
        };
        let status = status.map_err(|error| format!("the plugin checker failed: {error}"))?;
        if status.success() {
            return Ok(());
        }
        let report = String::from_utf8_lossy(&report);
        let report = report.trim();
        let report = &report[..floor_char_boundary(report, MAX_REPORT_BYTES)];
        if let Some(signal) = status.signal() {
            return Err(format!(
                "loading the library crashed the checking process ({}); refused{}",
                signal_name(signal),
                if report.is_empty() {
                    String::new()
                } else {
                    format!(": {report}")
                }
            ));
        }
        Err(if report.is_empty() {
            format!("the plugin checker refused the library ({status})")
        } else {
            report.to_string()
        })
    }
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// This executable when it is `xcore`, else an `xcore` beside it or one
/// level up.
fn default_program() -> Result<PathBuf, String> {
    let me = std::env::current_exe()
        .map_err(|error| format!("cannot find the plugin checker: {error}"))?;
    if me.file_stem().is_some_and(|stem| stem == "xcore") {
        return Ok(me);
    }
    me.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("xcore"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "no plugin checker: set plugins.checker to the xcore executable".to_string())
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        15 => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    format!("{name}, signal {signal}")
}

/// `xcore plugin check FILE [--scratch DIR]`, in the child: loads the
/// library as the host would and prints its id and version. A crash here
/// is the point.
///
/// `scratch` is where the copy handed to dlopen goes. The host passes a
/// directory it removes itself once the child is gone; without one, a
/// directory of this process under the system's temporary directory is
/// used and removed here (a crash leaves it behind, which is why the host
/// passes its own).
pub fn check_file(file: &Path, scratch: Option<&Path>) -> Result<String, String> {
    let bytes =
        std::fs::read(file).map_err(|error| format!("cannot read {}: {error}", file.display()))?;
    let own_scratch = std::env::temp_dir().join(format!("xcore-check-{}", std::process::id()));
    let loaded = library::load(&bytes, None, scratch.unwrap_or(&own_scratch), "check", 1)
        .map_err(|error| error.to_string());
    if scratch.is_none() {
        let _ = std::fs::remove_dir_all(&own_scratch);
    }
    let library = loaded?;
    Ok(format!(
        "{} {} (plugin-api {})",
        library.manifest.id, library.manifest.version, library.api_version
    ))
}
