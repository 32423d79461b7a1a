//! The `tasker` binary with a foreign `TASKER_*` variable in its environment,
//! and its log lines on a pipe (no database needed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tasker ARGS` from the repository root with only `vars` (and PATH/HOME) set;
/// stdout and stderr are pipes.
fn tasker(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tasker"));
    command.args(args).current_dir(repo()).env_clear();
    for name in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.envs(vars.iter().copied());
    command.output().expect("the tasker binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn config_show_works_and_warns_about_a_foreign_variable() {
    let out = tasker(&["config", "show"], &[("TASKER_UNRELATED", "1")]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("[worker]"), "{stdout}");
    assert!(
        stderr.contains("warning: environment variable TASKER_UNRELATED"),
        "{stderr}"
    );
}

#[test]
fn config_validate_fails_naming_a_foreign_variable() {
    let out = tasker(&["config", "validate"], &[("TASKER_UNRELATED", "1")]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("invalid variables: environment variable TASKER_UNRELATED"),
        "{stdout}"
    );
    assert!(stderr.contains("1 environment variable(s)"), "{stderr}");

    let out = tasker(&["config", "validate"], &[("TASKER_WRITE_HEADER", "0")]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("ok      variables"));
}

#[test]
fn strict_mode_refuses_to_run() {
    let out = tasker(
        &["config", "show"],
        &[("TASKER_UNRELATED", "1"), ("TASKER_STRICT_CONFIG", "1")],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("TASKER_UNRELATED"));
}

#[test]
fn log_lines_on_a_pipe_have_no_colour_and_carry_the_warning() {
    let out = tasker(
        &["template", "validate", "examples/templates"],
        &[("TASKER_UNRELATED", "1")],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains("TASKER_UNRELATED"), "{stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "ANSI codes on a pipe: {stderr:?}"
    );
}

#[test]
fn development_logs_at_info() {
    let out = tasker(&["config", "show", "--env", "development"], &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("log_level = \"info\"\n"), "{stdout}");
}

/// `tasker config show | head -1` closes the pipe early: the binary leaves
/// quietly with 141 (as if SIGPIPE ended it), no panic, no backtrace.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // A pipe whose read end is closed before the command starts.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tasker"))
        .args(["config", "show"])
        .current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(writer)
        .output()
        .expect("the tasker binary runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
