//! `tasker task watch`: follows a task's event stream until the task ends,
//! as live per-step lines on a terminal, else one line (or JSON) per event.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use uuid::Uuid;

use tasker_client::{Client, TaskEvent};

use super::remote::{explain, levels, secs};

/// A finished task's state is a failure for the exit code.
fn failed(state: &str) -> bool {
    matches!(state, "error" | "blocked_by_failures")
}

fn step_line(name: &str, level: usize, state: &str, width: usize) -> String {
    format!("L{level}  {name:<width$}  {state}")
}

/// Follows a task's event stream: one line per step, until the task ends.
pub async fn task_watch(c: &Client, id: Uuid, json: bool) -> anyhow::Result<()> {
    // Subscribe first, then read the steps: no change falls between the two.
    let mut events = c.task_events(id).await.map_err(|e| explain(c, e))?;
    let detail = c.get_task(id).await.map_err(|e| explain(c, e))?;
    let mut last_state = detail.task.state.clone();
    let live = std::io::stderr().is_terminal();
    if json || !live {
        // One line per event: JSON, or plain text when there is no terminal to redraw.
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| explain(c, e))?;
            if let TaskEvent::State(s) = &ev {
                last_state = s.state.clone();
            }
            if json {
                println!("{}", serde_json::to_string(&ev)?);
                continue;
            }
            match ev {
                TaskEvent::State(s) => println!("task  {}", s.state),
                TaskEvent::Step(s) => println!("step  {}  {}", s.step, s.state),
                TaskEvent::Error(m) => bail!("the event stream of task {id} failed: {m}"),
            }
        }
    } else {
        let names: Vec<String> = detail.steps.iter().map(|s| s.name.clone()).collect();
        let levels = levels(&names, &detail.edges);
        let width = names.iter().map(String::len).max().unwrap_or(0);
        let multi = MultiProgress::new();
        let style = ProgressStyle::with_template("{spinner} {msg}").expect("valid template");
        let header = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
        let title = format!(
            "task {id}  {}/{}/{}",
            detail.task.namespace, detail.task.template_name, detail.task.template_version
        );
        header.set_message(format!("{title}  {last_state}"));
        header.enable_steady_tick(Duration::from_millis(120));
        let mut steps: Vec<_> = detail.steps.iter().collect();
        steps.sort_by_key(|s| (levels.get(&s.name).copied().unwrap_or(0), s.name.clone()));
        let mut bars: BTreeMap<String, (ProgressBar, usize)> = BTreeMap::new();
        for s in steps {
            let level = levels.get(&s.name).copied().unwrap_or(0);
            let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
            bar.set_message(step_line(&s.name, level, &s.state, width));
            bars.insert(s.name.clone(), (bar, level));
        }
        while let Some(ev) = events.next().await {
            match ev.map_err(|e| explain(c, e))? {
                TaskEvent::State(s) => {
                    last_state = s.state;
                    header.set_message(format!("{title}  {last_state}"));
                }
                TaskEvent::Step(s) => {
                    if let Some((bar, level)) = bars.get(&s.step) {
                        let attempt = s
                            .attempt
                            .filter(|a| *a > 1)
                            .map(|a| format!(" (attempt {a})"))
                            .unwrap_or_default();
                        bar.set_message(format!(
                            "{}{attempt}",
                            step_line(&s.step, *level, &s.state, width)
                        ));
                        if matches!(
                            s.state.as_str(),
                            "complete" | "error" | "cancelled" | "resolved_manually"
                        ) {
                            bar.tick();
                        }
                    }
                }
                TaskEvent::Error(m) => {
                    header.abandon_with_message(format!("{title}  stream error: {m}"));
                    bail!("the event stream of task {id} failed: {m}");
                }
            }
        }
        for (bar, _) in bars.values() {
            bar.finish();
        }
        header.finish_with_message(format!("{title}  {last_state}"));
    }
    if !json && !live {
        let t = c.get_task(id).await.map_err(|e| explain(c, e))?.task;
        let took = t
            .completed_at
            .map(|e| format!(" in {:.3}s", secs(e - t.created_at)))
            .unwrap_or_default();
        println!("task {id} {}{took}", t.state);
    }
    if failed(&last_state) {
        bail!("task {id} ended {last_state}; see `tasker task get {id}`");
    }
    Ok(())
}
