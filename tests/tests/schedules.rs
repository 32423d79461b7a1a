//! Schedules across separate orchestrator processes (`tasker server`, the
//! binary of this build) against one real PostgreSQL: each tick fires
//! exactly once, with no leader.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgPool;
use tasker_store::schedule::{self, CatchUp, NewSchedule};
use tasker_store::template::TemplateCache;
use tasker_testkit::{eventually, migrated, register_inline};
use uuid::Uuid;

mod common;
use common::{db_url, tasker_bin};

/// A `tasker server` process (an orchestrator and the API), killed when dropped.
struct Server(Child);

impl Server {
    fn start(pool: &PgPool, tick_ms: &str) -> Server {
        let child = Command::new(tasker_bin())
            .arg("server")
            .env("TASKER_ENV", "test")
            .env("TASKER_DATABASE__URL", db_url(pool))
            .env("TASKER_ORCHESTRATION__SCHEDULE_TICK_INTERVAL_MS", tick_ms)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tasker server");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ONE_STEP: &str = r#"
namespace: sched
name: tick
version: 1.0.0
steps:
  - { name: only, handler: { name: demo.sleep, config: { ms: 1 } } }
"#;

/// How long the schedule runs.
const RUN: Duration = Duration::from_secs(30);

#[sqlx::test(migrations = false)]
async fn a_schedule_firing_every_second_across_two_orchestrator_processes_fires_each_tick_once(
    pool: PgPool,
) {
    migrated(&pool).await;
    register_inline(&pool, ONE_STEP).await;
    // Ticks of 100 ms in both: they contend for every schedule tick.
    let servers = [Server::start(&pool, "100"), Server::start(&pool, "100")];
    let both_up = eventually(Duration::from_secs(30), || async {
        // Each process holds a LISTEN session once it runs.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query ILIKE 'listen%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        n >= 2
    })
    .await;
    assert!(both_up, "the orchestrator processes did not connect");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = schedule::create(
        &pool,
        &TemplateCache::default(),
        &NewSchedule {
            name: "every-second".into(),
            namespace: "sched".into(),
            template_name: "tick".into(),
            template_version: None,
            cron: "* * * * * *".into(),
            timezone: "Europe/Paris".into(),
            context: json!({}),
            catch_up: CatchUp::Skip,
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(RUN).await;
    schedule::pause(&pool, s.id).await.unwrap();
    // A tick in flight when paused commits within its transaction.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(servers);

    let fires: Vec<(DateTime<Utc>, Option<Uuid>)> = sqlx::query_as(
        "SELECT fire_at, task_id FROM tasker.schedule_fires WHERE schedule_id = $1 ORDER BY fire_at",
    )
    .bind(s.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let tasks: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT t.id, a.processor_id FROM tasker.tasks t
           JOIN tasker.task_transitions a ON a.task_id = t.id AND a.event = 'create'
          WHERE t.schedule_id = $1 ORDER BY t.id",
    )
    .bind(s.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut by_orchestrator = std::collections::BTreeMap::<String, usize>::new();
    for (_, p) in &tasks {
        *by_orchestrator.entry(p.clone()).or_default() += 1;
    }
    eprintln!(
        "ticks fired: {}, tasks: {}, by orchestrator: {:?}",
        fires.len(),
        tasks.len(),
        by_orchestrator.values().collect::<Vec<_>>()
    );
    // About one tick a second for the run (less what connecting took).
    assert!(
        fires.len() as u64 >= RUN.as_secs() - 3 && fires.len() as u64 <= RUN.as_secs() + 1,
        "{} ticks in {RUN:?}",
        fires.len()
    );
    // Exactly one task per tick: every fire row has its task, no task twice.
    let mut fired: Vec<Uuid> = fires.iter().map(|(_, t)| t.expect("a task")).collect();
    fired.sort();
    let ids: Vec<Uuid> = tasks.iter().map(|(id, _)| *id).collect();
    assert_eq!(fired, ids, "fire rows and tasks differ");
    fired.dedup();
    assert_eq!(fired.len(), fires.len(), "a task recorded for two ticks");
    // No gap: consecutive seconds from the first tick to the last.
    for w in fires.windows(2) {
        assert_eq!(
            w[1].0 - w[0].0,
            chrono::Duration::seconds(1),
            "a gap or a duplicate between {} and {}",
            w[0].0,
            w[1].0
        );
    }
}
