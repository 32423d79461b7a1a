//! Wake-ups across processes survive a restart of PostgreSQL: a private
//! cluster (the shared test server is never restarted) under two pools, each
//! with its own `Wakeups`, as two processes would have.

use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use tokio_util::sync::CancellationToken;

use tasker_model::change::Changed;
use tasker_notify::wake::{Mode, Wake};
use tasker_notify::Wakeups;
use tasker_store::db::{find_pg_bin_dir, PrivateCluster};

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A pool like a process's: a short acquire time-out, so that the outage
/// below outlasts it (sqlx's own reconnect inside `PgListener::try_recv`
/// gives up, and the next one succeeds without telling anybody: the case
/// that used to leave sessions unmarked).
async fn process_pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(PgConnectOptions::from_str(url).unwrap())
        .await
        .unwrap()
}

/// Waits until `wake` stays quiet for `quiet`.
async fn drain(wake: &mut Wake, quiet: Duration) {
    while tokio::time::timeout(quiet, wake.wait()).await.is_ok() {}
}

/// One hint from `sender`: how long until `wake` woke, if it did within `within`.
async fn crossing(sender: &Wakeups, wake: &mut Wake, within: Duration) -> Option<Duration> {
    let at = Instant::now();
    sender.announce(&Changed::queue("steps_t"));
    tokio::time::timeout(within, wake.wait())
        .await
        .ok()
        .map(|_| at.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wake_up_crosses_processes_within_5_s_of_a_postgresql_restart() {
    if find_pg_bin_dir().is_err() {
        eprintln!("skipped: no PostgreSQL server binaries on this machine");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tasker-notify-restart-{}", uuid::Uuid::now_v7()));
    let mut cluster = PrivateCluster::start(&dir, free_port()).expect("private cluster");
    let mut admin = PgConnectOptions::from_str(&cluster.url("postgres"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE DATABASE wake")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = cluster.url("wake");

    // Two "processes": a reader's and a sender's.
    let (reader_pool, sender_pool) = (process_pool(&url).await, process_pool(&url).await);
    let reader = Wakeups::new(&reader_pool);
    let sender = Wakeups::new(&sender_pool);
    let stop = CancellationToken::new();
    let mut wake = reader
        .listen(
            "steps_t",
            Mode::EventDriven,
            Duration::from_secs(1),
            stop.clone(),
        )
        .await
        .unwrap();
    // The session's own wake-ups (at connect, and once more after others
    // have seen it) pass first.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    drain(&mut wake, Duration::from_millis(200)).await;
    let before = crossing(&sender, &mut wake, Duration::from_secs(2))
        .await
        .expect("a hint of the sender wakes the reader before the restart");
    // The sender keeps using its pool, as a busy process does: its idle
    // connections die with the server.
    sqlx::query("SELECT 1").execute(&sender_pool).await.unwrap();

    // Down for longer than both pools' acquire time-out.
    let stopping = Instant::now();
    cluster.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    cluster.start_again().expect("the cluster starts again");
    let up = Instant::now();
    eprintln!("PostgreSQL was down for {:?}", up.duration_since(stopping));

    // A hint wakes the reader again, three times in a row (the reader's own
    // wake-ups at reconnection cannot account for three), within 5 s of the
    // restart.
    let mut probes = Vec::new();
    let mut in_a_row = Vec::new();
    let mut first_of_three = None;
    while up.elapsed() < Duration::from_secs(8) {
        drain(&mut wake, Duration::from_millis(150)).await;
        let started = up.elapsed();
        let got = crossing(&sender, &mut wake, Duration::from_millis(400)).await;
        probes.push((started, got));
        match got {
            Some(took) => in_a_row.push((started, took)),
            None => in_a_row.clear(),
        }
        if in_a_row.len() == 3 {
            first_of_three = Some(in_a_row[0]);
            break;
        }
    }
    eprintln!("hints after the restart (sent at, woken after): {probes:?}");
    let (since_up, after) =
        first_of_three.expect("wake-ups cross processes again after the restart");
    eprintln!(
        "cross-process wake-up: {before:?} before the restart; {after:?} after it, \
         first of three in a row {since_up:?} after PostgreSQL was back"
    );
    assert!(
        since_up < Duration::from_secs(5),
        "wake-ups crossed again only {since_up:?} after the restart"
    );
    assert!(reader.database().is_up() && sender.database().is_up());

    stop.cancel();
    reader_pool.close().await;
    sender_pool.close().await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
