//! Time in the store: delayed starts (`task::create_at`) and schedules
//! (`schedule::create`, `schedule::fire_due`).

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use tasker_store::schedule::{self, CatchUp, NewSchedule};
use tasker_store::step::{claim_batch, Serves};
use tasker_store::task::{self, Start};
use tasker_store::template::TemplateCache;
use tasker_store::{recovery, worker, StoreError};
use tasker_testkit::{migrated, new_task, register_example};

const STEP_QUEUE: &str = "steps_demo";

fn field_of(e: StoreError) -> String {
    match e {
        StoreError::InvalidRequest { field, .. } => field,
        other => panic!("not an invalid request: {other}"),
    }
}

async fn claim(pool: &PgPool) -> usize {
    claim_batch(pool, STEP_QUEUE, 30, 10, "w", Serves::ANY)
        .await
        .unwrap()
        .len()
}

#[sqlx::test(migrations = false)]
async fn a_delayed_tasks_roots_are_claimed_only_from_run_at(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let req = new_task("demo", "diamond", json!({"value": 3}));
    let start = Start {
        run_at: None,
        delay_seconds: Some(2),
    };
    let before = Utc::now();
    let (created, _) = task::create_at(&pool, &cache, &req, &start, "t")
        .await
        .unwrap();
    let detail = task::detail(&pool, created.task_id).await.unwrap();
    let run_at = detail.task.run_at.expect("run_at recorded");
    assert!(run_at >= before + chrono::Duration::seconds(2), "{run_at}");
    assert_eq!(claim(&pool).await, 0, "claimed before run_at");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(claim(&pool).await, 0, "claimed before run_at");
    let wait = (run_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    assert_eq!(claim(&pool).await, 1, "the root is claimable from run_at");
    let claimed_at: chrono::DateTime<Utc> = sqlx::query_scalar(
        "SELECT created_at FROM tasker.step_transitions
          WHERE task_id = $1 AND to_state = 'in_progress'",
    )
    .bind(created.task_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        claimed_at >= run_at,
        "claimed at {claimed_at}, run_at {run_at}"
    );
}

#[sqlx::test(migrations = false)]
async fn delayed_starts_are_checked_and_honour_idempotency(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let now = Utc::now();
    let at = |secs: i64| Start {
        run_at: Some(now + chrono::Duration::seconds(secs)),
        delay_seconds: None,
    };
    let both = Start {
        run_at: Some(now),
        delay_seconds: Some(1),
    };
    assert_eq!(field_of(both.resolve(now).unwrap_err()), "run_at");
    assert_eq!(
        field_of(at(400 * 86_400).resolve(now).unwrap_err()),
        "run_at"
    );
    assert_eq!(field_of(at(-600).resolve(now).unwrap_err()), "run_at");
    let too_long = Start {
        run_at: None,
        delay_seconds: Some(400 * 86_400),
    };
    assert_eq!(
        field_of(too_long.resolve(now).unwrap_err()),
        "delay_seconds"
    );
    assert_eq!(at(-30).resolve(now).unwrap(), None, "a little past is now");
    assert_eq!(Start::default().resolve(now).unwrap(), None);

    // A refused start writes nothing.
    let req = new_task("demo", "diamond", json!({"value": 3}));
    assert!(task::create_at(&pool, &cache, &req, &both, "t")
        .await
        .is_err());
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasker.tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tasks, 0);

    // Idempotency: the second creation returns the first task.
    let mut keyed = req.clone();
    keyed.idempotency_key = Some("later".into());
    let (first, _) = task::create_at(&pool, &cache, &keyed, &at(3_600), "t")
        .await
        .unwrap();
    let (second, _) = task::create_at(&pool, &cache, &keyed, &at(7_200), "t")
        .await
        .unwrap();
    assert!(first.created && !second.created);
    assert_eq!(first.task_id, second.task_id);
}

#[sqlx::test(migrations = false)]
async fn sweeps_leave_a_waiting_delayed_task_alone(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let req = new_task("demo", "diamond", json!({"value": 3}));
    let later = Start {
        run_at: None,
        delay_seconds: Some(3_600),
    };
    let (delayed, _) = task::create_at(&pool, &cache, &req, &later, "t")
        .await
        .unwrap();
    let (now, _) = task::create(&pool, &cache, &req, "t").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // No worker at all, a zero timeout: only the visible step is ended.
    let (ended, _) = worker::fail_unserved(&pool, Duration::ZERO, "t")
        .await
        .unwrap();
    assert_eq!(ended, 1);
    let state = |id: Uuid| {
        let pool = pool.clone();
        async move {
            let s: String = sqlx::query_scalar(
                "SELECT state FROM tasker.steps WHERE task_id = $1 AND name = 'start'",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
            s
        }
    };
    assert_eq!(state(delayed.task_id).await, "enqueued");
    assert_eq!(state(now.task_id).await, "enqueued_for_orchestration");
    // Nor is it stale while it waits for its run_at.
    let stale = recovery::stale_tasks(&pool, Duration::ZERO, 100)
        .await
        .unwrap();
    assert!(!stale.contains(&delayed.task_id), "{stale:?}");
    assert!(stale.contains(&now.task_id), "{stale:?}");
}

fn every_second(name: &str, catch_up: CatchUp) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        namespace: "demo".into(),
        template_name: "diamond".into(),
        template_version: None,
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        context: json!({"value": 2}),
        catch_up,
    }
}

#[sqlx::test(migrations = false)]
async fn schedule_creation_checks_each_field(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let ok = every_second("nightly", CatchUp::Skip);
    let cases: Vec<(&str, NewSchedule)> = vec![
        (
            "cron",
            NewSchedule {
                cron: "every day".into(),
                ..ok.clone()
            },
        ),
        (
            "timezone",
            NewSchedule {
                timezone: "Europe/Atlantis".into(),
                ..ok.clone()
            },
        ),
        (
            "template",
            NewSchedule {
                template_name: "nope".into(),
                ..ok.clone()
            },
        ),
        (
            "template",
            NewSchedule {
                namespace: "nowhere".into(),
                ..ok.clone()
            },
        ),
        (
            "context",
            NewSchedule {
                context: json!({"value": "two"}),
                ..ok.clone()
            },
        ),
        (
            "name",
            NewSchedule {
                name: "Not A Name".into(),
                ..ok.clone()
            },
        ),
    ];
    for (field, req) in cases {
        let err = schedule::create(&pool, &cache, &req).await.unwrap_err();
        assert_eq!(field_of(err), field, "{req:?}");
    }
    let row = schedule::create(&pool, &cache, &ok).await.unwrap();
    assert!(!row.paused);
    assert!(row.next_fire_at > row.created_at - chrono::Duration::seconds(1));
    match schedule::create(&pool, &cache, &ok).await {
        Err(StoreError::ScheduleConflict { name, .. }) => assert_eq!(name, "nightly"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[sqlx::test(migrations = false)]
async fn racing_callers_fire_each_tick_once_and_pause_stops_firing(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let s = schedule::create(&pool, &cache, &every_second("hammer", CatchUp::Skip))
        .await
        .unwrap();
    // Six callers firing as fast as they can for about four seconds.
    let until = tokio::time::Instant::now() + Duration::from_millis(4_200);
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (pool, cache) = (pool.clone(), cache.clone());
        callers.spawn(async move {
            let mut fired = 0;
            while tokio::time::Instant::now() < until {
                fired += schedule::fire_due(&pool, &cache, &format!("c{i}"), 10)
                    .await
                    .unwrap()
                    .tasks
                    .len();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            fired
        });
    }
    let mut reported = 0;
    while let Some(n) = callers.join_next().await {
        reported += n.unwrap();
    }
    schedule::pause(&pool, s.id).await.unwrap();
    let fires: Vec<(chrono::DateTime<Utc>, Option<Uuid>)> = sqlx::query_as(
        "SELECT fire_at, task_id FROM tasker.schedule_fires WHERE schedule_id = $1 ORDER BY fire_at",
    )
    .bind(s.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    let tasks: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM tasker.tasks WHERE schedule_id = $1 ORDER BY id")
            .bind(s.id)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!((4..=6).contains(&fires.len()), "{fires:?}");
    assert_eq!(reported, fires.len());
    assert_eq!(tasks.len(), fires.len(), "one task per tick");
    let mut fired_tasks: Vec<Uuid> = fires.iter().map(|(_, t)| t.unwrap()).collect();
    fired_tasks.sort();
    assert_eq!(fired_tasks, tasks);
    for w in fires.windows(2) {
        assert_eq!(
            w[1].0 - w[0].0,
            chrono::Duration::seconds(1),
            "a gap: {fires:?}"
        );
    }
    // Paused: nothing more fires.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fired = schedule::fire_due(&pool, &cache, "late", 10).await.unwrap();
    assert!(fired.tasks.is_empty());
    // Resumed: from the next tick on; the pause's ticks do not fire.
    let resumed = schedule::resume(&pool, s.id).await.unwrap();
    assert!(!resumed.paused && resumed.next_fire_at > Utc::now());
}

#[sqlx::test(migrations = false)]
async fn after_downtime_skip_fires_one_tick_and_catch_up_each(pool: PgPool) {
    migrated(&pool).await;
    register_example(&pool, "diamond").await;
    let cache = TemplateCache::default();
    let skip = schedule::create(&pool, &cache, &every_second("skip", CatchUp::Skip))
        .await
        .unwrap();
    let each = schedule::create(&pool, &cache, &every_second("each", CatchUp::CatchUp))
        .await
        .unwrap();
    // Every orchestrator was down for ten minutes: 600 ticks missed.
    sqlx::query(
        "UPDATE tasker.schedules
            SET next_fire_at = date_trunc('second', now()) - interval '10 minutes'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let fired = schedule::fire_due(&pool, &cache, "t", 10).await.unwrap();
    let count = |id: Uuid| fired.tasks.iter().filter(|(_, s, _, _)| *s == id).count();
    assert_eq!(count(skip.id), 1, "skip fires the latest missed tick");
    assert_eq!(
        count(each.id),
        schedule::MAX_CATCH_UP,
        "catch_up fires the latest 100"
    );
    let latest = fired.tasks.iter().map(|(_, _, t, _)| *t).max().unwrap();
    assert!(Utc::now() - latest < chrono::Duration::seconds(2));
    for id in [skip.id, each.id] {
        let row = schedule::get(&pool, id).await.unwrap();
        assert!(row.next_fire_at > latest, "moved on past now");
        assert_eq!(row.last_fired_at, Some(latest));
    }
}
