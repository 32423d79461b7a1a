//! A private PostgreSQL cluster: initialised and started with the system's
//! binaries when no server answers, stopped when dropped. Tests use one to
//! stop and start a server of their own ([`PrivateCluster::stop`],
//! [`PrivateCluster::start_again`]) without disturbing anybody else's.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::DbError;

/// A PostgreSQL cluster this process initialised and started (user
/// `postgres`, trust authentication, listening on 127.0.0.1 only), stopped on
/// drop.
pub struct PrivateCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
    stopped: bool,
}

impl PrivateCluster {
    /// Initialises `data_dir` unless it holds a cluster already, and starts
    /// the server on `port`; returns once it accepts connections. As root
    /// (PostgreSQL refuses to run as root) the directory is handed to user
    /// `postgres` and the binaries run as that user.
    pub fn start(data_dir: &Path, port: u16) -> Result<PrivateCluster, DbError> {
        let bin_dir = find_pg_bin_dir()?;
        let fail = |step: &'static str, detail: String| DbError::PrivateCluster {
            data_dir: data_dir.display().to_string(),
            step,
            detail,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| fail("create data dir", e.to_string()))?;
        let data_dir = data_dir
            .canonicalize()
            .map_err(|e| fail("resolve data dir", e.to_string()))?;
        // PostgreSQL refuses to run as root: hand the directory to `postgres`.
        let run_as_postgres = is_root();
        if run_as_postgres {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres")
                .arg(&data_dir))
            .map_err(|e| fail("chown data dir to postgres", e))?;
        }
        let mut cluster = PrivateCluster {
            bin_dir,
            data_dir,
            port,
            run_as_postgres,
            stopped: true,
        };
        if !cluster.data_dir.join("PG_VERSION").exists() {
            run(&mut cluster.pg_command(
                "initdb",
                &[
                    "-D",
                    &cluster.data_dir.display().to_string(),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                ],
            ))
            .map_err(|e| fail("initdb", e))?;
        }
        cluster.start_again()?;
        Ok(cluster)
    }

    /// Starts the server again after [`PrivateCluster::stop`] (nothing to do
    /// while it runs); returns once it accepts connections.
    pub fn start_again(&mut self) -> Result<(), DbError> {
        if !self.stopped {
            return Ok(());
        }
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data_dir.display()
        );
        run(&mut self.pg_command(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir.display().to_string(),
                "-o",
                &opts,
                "-l",
                &self.data_dir.join("server.log").display().to_string(),
                "-w",
                "start",
            ],
        ))
        .map_err(|detail| DbError::PrivateCluster {
            data_dir: self.data_dir.display().to_string(),
            step: "pg_ctl start",
            detail,
        })?;
        self.stopped = false;
        Ok(())
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `database` on this cluster (user `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn pg_command(&self, program: &str, args: &[&str]) -> Command {
        let exe = self.bin_dir.join(program);
        if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe).args(args);
            c
        } else {
            let mut c = Command::new(exe);
            c.args(args);
            c
        }
    }

    /// Stops the server the way a restart or a shutdown of a real one does
    /// (`pg_ctl stop -m fast`: sessions are terminated, FATAL 57P01) and
    /// returns once it is down. [`PrivateCluster::start_again`] starts it
    /// again with the same data.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let dir = self.data_dir.display().to_string();
        if let Err(e) =
            run(&mut self.pg_command("pg_ctl", &["-D", &dir, "-m", "fast", "-w", "stop"]))
        {
            tracing::warn!(error = %e, "stopping the private PostgreSQL cluster failed");
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The newest `/usr/lib/postgresql/<v>/bin` with `initdb`, or `initdb` on PATH
/// (an error naming where it looked when there is none: a test that needs a
/// private cluster skips itself then).
pub fn find_pg_bin_dir() -> Result<PathBuf, DbError> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
    }
    Err(DbError::NoPostgres {
        searched: "/usr/lib/postgresql/*/bin and PATH".into(),
    })
}
