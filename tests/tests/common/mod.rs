//! What the multi-process tests share: the `tasker` binary of this build,
//! the test database's URL for a child process, free ports, and a child
//! process killed when dropped. Each test binary includes this module
//! (`mod common;`) and uses what it needs.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use sqlx::PgPool;

/// The `tasker` binary of this build, next to the test executable
/// (`cargo test` builds it: tasker-cli's own tests need it).
pub fn tasker_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = dir.join("tasker");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test --no-run --test config_env` (or the whole `cargo test`) first",
        bin.display()
    );
    bin
}

/// The URL a child process reaches the test's database at.
pub fn db_url(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://postgres@{}:{}/{}",
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("postgres")
    )
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `tasker` child process on the test's database (environment `test`),
/// killed when dropped.
pub struct Proc(pub Child);

impl Proc {
    /// `tasker <args>`, its stderr shown with the test's output.
    pub fn start(pool: &PgPool, args: &[&str]) -> Proc {
        Proc::start_with(pool, args, &[])
    }

    /// [`Proc::start`] with more environment variables.
    pub fn start_with(pool: &PgPool, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let child = Command::new(tasker_bin())
            .args(args)
            .envs(env.iter().copied())
            .env("TASKER_ENV", "test")
            .env("TASKER_DATABASE__URL", db_url(pool))
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tasker");
        Proc(child)
    }

    pub fn sigkill(&mut self) {
        let _ = self.0.kill(); // SIGKILL on Unix
        let _ = self.0.wait();
    }

    pub fn sigterm(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the `tasker` CLI with `env`, returning stdout; panics with stderr on
/// failure.
pub fn cli(env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(tasker_bin())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tasker");
    assert!(
        out.status.success(),
        "tasker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new admin API key on the test's database, made with `tasker apikey
/// create` (as a user would), named `name`.
pub fn admin_key(pool: &PgPool, name: &str) -> String {
    let db = db_url(pool);
    let out = cli(
        &[
            ("TASKER_ENV", "test"),
            ("TASKER_DATABASE__URL", db.as_str()),
        ],
        &["apikey", "create", name, "--permissions", "admin"],
    );
    out.lines()
        .find(|l| l.starts_with("tk_"))
        .expect("`tasker apikey create` printed a key")
        .to_string()
}
