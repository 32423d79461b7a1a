//! A private PostgreSQL cluster: initialised and started with the system's
//! binaries when no server answers, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::DbError;

/// A PostgreSQL cluster this process initialised and started, stopped on drop.
pub(super) struct PrivateCluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    run_as_postgres: bool,
    stopped: bool,
}

impl PrivateCluster {
    pub(super) fn start(data_dir: &Path, port: u16) -> Result<PrivateCluster, DbError> {
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
        let cluster = PrivateCluster {
            bin_dir,
            data_dir,
            run_as_postgres,
            stopped: false,
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
        let opts = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {}",
            cluster.data_dir.display()
        );
        run(&mut cluster.pg_command(
            "pg_ctl",
            &[
                "-D",
                &cluster.data_dir.display().to_string(),
                "-o",
                &opts,
                "-l",
                &cluster.data_dir.join("server.log").display().to_string(),
                "-w",
                "start",
            ],
        ))
        .map_err(|e| fail("pg_ctl start", e))?;
        Ok(cluster)
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

    pub(super) fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
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
        self.stop_now();
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

/// The newest `/usr/lib/postgresql/<v>/bin` with `initdb`, or `initdb` on PATH.
pub(super) fn find_pg_bin_dir() -> Result<PathBuf, DbError> {
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
