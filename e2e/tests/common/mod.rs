//! Running the standard tools (gpg, openssl) from interop tests, bounded
//! in time.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one tool invocation may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `program` with `args` in `dir`, with extra environment `env` and
/// `stdin`, killing it after [`TIMEOUT`]. Panics with the tool's output if
/// it cannot be started or times out.
pub(crate) fn run(
    program: &str,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &Path)],
    stdin: &[u8],
) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}); scripts/test installs gnupg and openssl")
    });
    let mut input = child.stdin.take().expect("stdin is piped");
    input.write_all(stdin).expect("writing the tool's stdin");
    drop(input);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if child.try_wait().expect("waiting for the tool").is_some() {
            return child.wait_with_output().expect("reading the tool's output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reading the tool's output");
            panic!(
                "{program} {args:?} timed out: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Like [`run`], and panics with the tool's stderr unless it succeeded.
pub(crate) fn run_ok(
    program: &str,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &Path)],
    stdin: &[u8],
) -> Output {
    let output = run(program, args, dir, env, stdin);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}
