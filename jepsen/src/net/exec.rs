//! Running the system tools (`ip`, `nft`, `tc`) and turning their failures into [`NetError`]s
//! that carry the command line and its stderr.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::NetError;

/// Finds a system tool. The harness may run from an environment whose `PATH` lacks the sbin
/// directories (sudo with a restricted PATH, a systemd unit), so those are tried first.
fn locate(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    PathBuf::from(name)
}

/// `ip` from iproute2.
pub(super) fn ip_tool() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| locate("ip"))
}

/// `nft` from nftables.
pub(super) fn nft_tool() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| locate("nft"))
}

/// `tc` from iproute2.
pub(super) fn tc_tool() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| locate("tc"))
}

/// `ip ARGS...` in the root namespace.
pub(super) fn ip<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(ip_tool());
    command.args(args);
    command
}

/// `ip` with the whitespace-separated words of `line`; only for lines built from this module's
/// names and addresses, which contain no whitespace.
pub(super) fn ip_words(line: &str) -> Command {
    ip(line.split_whitespace())
}

/// `ip netns exec NAMESPACE PROGRAM`: `ip` execs the program after entering the namespace, so
/// the spawned pid is the program's own.
pub(super) fn in_namespace(namespace: &str, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(ip_tool());
    command.arg("netns").arg("exec").arg(namespace).arg(program);
    command
}

/// Runs a command to completion and returns its stdout; a non-zero exit becomes
/// [`NetError::Command`].
pub(super) fn run(command: &mut Command) -> Result<String, NetError> {
    run_with_input(command, None)
}

/// Like [`run`], feeding `input` to the command's stdin (for `nft -f -`).
pub(super) fn run_with_input(
    command: &mut Command,
    input: Option<&str>,
) -> Result<String, NetError> {
    finish(start(command, input)?)
}

/// Runs several commands at once (each with its stdin input) and waits for all of them; returns
/// the first failure. Used to switch all namespaces' partition rules together: one at a time,
/// 50 `ip netns exec nft` take about a second, during which old and new partitions mix.
pub(super) fn run_all(commands: Vec<(Command, Option<String>)>) -> Result<(), NetError> {
    let mut first_error = None;
    let mut running = Vec::with_capacity(commands.len());
    for (mut command, input) in commands {
        match start(&mut command, input.as_deref()) {
            Ok(child) => running.push(child),
            Err(error) => {
                // No point starting more; but the started ones are still waited for.
                first_error = Some(error);
                break;
            }
        }
    }
    for child in running {
        if let Err(error) = finish(child) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A started command and its description.
struct Running {
    line: String,
    child: Child,
}

/// Starts a command with stdout and stderr captured and `input` written to its stdin.
fn start(command: &mut Command, input: Option<&str>) -> Result<Running, NetError> {
    let line = describe(command, input);
    tracing::trace!(command = %line, "running");
    // The C locale keeps the messages that callers match on (e.g. "Cannot find device") stable.
    command
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| NetError::Spawn {
        command: line.clone(),
        source,
    })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // The inputs are small nft scripts, far below a pipe's capacity, so writing before
        // reading the command's output cannot deadlock. A failed write (EPIPE because the tool
        // exited early) is not reported on its own: the tool's exit status and stderr, checked
        // in `finish`, say why far better.
        let _ = stdin.write_all(input.as_bytes());
        // Dropping stdin closes the pipe, so the tool sees end of input.
    }
    Ok(Running { line, child })
}

/// Waits for a started command; its stdout on success, [`NetError::Command`] otherwise.
fn finish(running: Running) -> Result<String, NetError> {
    let Running { line, child } = running;
    let output = child.wait_with_output().map_err(|source| NetError::Spawn {
        command: line.clone(),
        source,
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command: line,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Turns a [`NetError::Command`] whose stderr contains one of `benign` into success: used where
/// the thing being removed may legitimately be gone already.
pub(super) fn ignore_benign(
    result: Result<String, NetError>,
    benign: &[&str],
) -> Result<(), NetError> {
    match result {
        Ok(_) => Ok(()),
        Err(NetError::Command { stderr, .. })
            if benign.iter().any(|needle| stderr.contains(needle)) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The command as a shell-like line, for error messages and logs.
pub(super) fn describe(command: &Command, input: Option<&str>) -> String {
    let mut line = quote(command.get_program());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    if let Some(input) = input {
        line.push_str(" <<EOF\n");
        line.push_str(input);
        if !input.ends_with('\n') {
            line.push('\n');
        }
        line.push_str("EOF");
    }
    line
}

fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Polls `done` every few milliseconds until it returns true, failing with
/// [`NetError::Timeout`] once `timeout` has passed.
pub(super) fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, NetError>,
) -> Result<(), NetError> {
    let start = Instant::now();
    loop {
        if done()? {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(NetError::Timeout {
                what: what.to_owned(),
                waited: timeout,
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_only_what_needs_it() {
        let mut command = Command::new("/usr/sbin/nft");
        command.args(["-f", "-", "a b", "it's"]);
        assert_eq!(
            describe(&command, Some("flush ruleset")),
            "/usr/sbin/nft -f - 'a b' 'it'\\''s' <<EOF\nflush ruleset\nEOF"
        );
    }

    #[test]
    fn failures_carry_command_and_stderr() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo oops >&2; exit 3"]);
        let error = run(&mut command).expect_err("exit 3 must fail");
        let text = error.to_string();
        assert!(text.contains("sh -c"), "{text}");
        assert!(text.contains("oops"), "{text}");
        assert!(ignore_benign(run(&mut command), &["oops"]).is_ok());
        assert!(ignore_benign(run(&mut command), &["other"]).is_err());
    }

    #[test]
    fn run_all_waits_for_everyone_and_reports_a_failure() {
        let mut fail = Command::new("sh");
        fail.args(["-c", "read line; echo \"bad $line\" >&2; exit 1"]);
        let mut ok = Command::new("cat");
        ok.stdout(Stdio::null());
        let error = run_all(vec![
            (ok, Some("fine\n".to_owned())),
            (fail, Some("input\n".to_owned())),
        ])
        .expect_err("one command fails");
        assert!(error.to_string().contains("bad input"), "{error}");
        assert!(run_all(Vec::new()).is_ok());
    }

    #[test]
    fn input_reaches_stdin() {
        let mut command = Command::new("cat");
        assert_eq!(
            run_with_input(&mut command, Some("hello\n")).expect("cat runs"),
            "hello\n"
        );
    }
}
