//! The Rust handlers behind the example templates (`examples/templates/`):
//! `math.compute` and the `ecommerce.*` order flow. The demo, the benchmark
//! and the tests run them; they are also what a new user copies.

use serde_json::{json, Value};

use super::rust::handler_fn;
use super::HandlerRegistry;
use tasker_model::step::{StepContext, StepError};

/// Registers every example handler on `registry`.
pub fn register(registry: &HandlerRegistry) {
    registry.register(
        "math.compute",
        handler_fn(|ctx, _| async move { compute(&ctx) }),
    );
    // `demo.sleep` with config `{"ms": n}`: a long step (stops early when told to).
    registry.register(
        "demo.sleep",
        handler_fn(|ctx, cancel| async move {
            let ms = ctx.config["ms"].as_u64().unwrap_or(1000);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
                _ = cancel.cancelled() => return Err(StepError::retryable("cancelled while sleeping")),
            }
            Ok(json!({ "slept_ms": ms, "attempt": ctx.attempt }))
        }),
    );
    // `demo.fail_until`: fails (permanently) while the task input's
    // `fail_until` (RFC 3339) is in the future, then succeeds: a step an
    // operator retries once its cause is gone (the dashboard's test uses it).
    registry.register(
        "demo.fail_until",
        handler_fn(|ctx, _| async move { fail_until(&ctx, chrono::Utc::now()) }),
    );
    registry.register(
        "ecommerce.validate_order",
        handler_fn(|ctx, _| async move { validate_order(&ctx) }),
    );
    registry.register(
        "ecommerce.reserve_inventory",
        handler_fn(|ctx, _| async move {
            let skus: Vec<Value> = items(&ctx)?.iter().map(|i| i["sku"].clone()).collect();
            Ok(json!({ "reservation_id": format!("res-{}", order_id(&ctx)), "warehouse": ctx.config["warehouse"], "skus": skus }))
        }),
    );
    registry.register(
        "ecommerce.charge_payment",
        handler_fn(|ctx, _| async move {
            // `simulate_payment_failures: n` in the input makes the first n attempts
            // fail as a flaky provider would, to show retries with backoff.
            let failures = ctx.input["simulate_payment_failures"].as_u64().unwrap_or(0);
            // `ctx.log` lines are stored with the attempt: `tasker step logs <task> charge_payment`.
            ctx.log.info(format!("charging order {} (attempt {})", order_id(&ctx), ctx.attempt));
            if u64::from(ctx.attempt) <= failures {
                ctx.log.warn("payment provider timed out; the retry policy decides when to try again");
                return Err(StepError::retryable(format!("payment provider timed out (attempt {})", ctx.attempt)));
            }
            let total = ctx
                .parent_results
                .get("validate_order")
                .and_then(|v| v["total_cents"].as_i64())
                .unwrap_or(0);
            Ok(json!({ "payment_id": format!("pay-{}", order_id(&ctx)), "amount_cents": total, "currency": ctx.config["currency"], "attempt": ctx.attempt }))
        }),
    );
    registry.register(
        "ecommerce.ship_order",
        handler_fn(|ctx, _| async move {
            Ok(json!({ "tracking_number": format!("1Z{}", order_id(&ctx).to_uppercase()), "carrier": ctx.config["carrier"] }))
        }),
    );
    registry.register(
        "ecommerce.send_confirmation",
        handler_fn(|ctx, _| async move {
            let tracking = ctx
                .parent_results
                .get("ship_order")
                .map(|v| v["tracking_number"].clone())
                .unwrap_or_default();
            Ok(json!({ "sent_to": ctx.input["customer_email"], "template": ctx.config["template"], "tracking_number": tracking }))
        }),
    );
}

/// `math.compute`: n is the task input's `value` for a root step, otherwise the
/// sum of the parents' `value`s; the result is `{"value": op(n)}`.
pub fn compute(ctx: &StepContext) -> Result<Value, StepError> {
    let n: i64 = if ctx.parent_results.is_empty() {
        ctx.input["value"]
            .as_i64()
            .ok_or_else(|| StepError::permanent("input `value` must be an integer"))?
    } else {
        ctx.parent_results
            .iter()
            .map(|(name, r)| {
                r["value"].as_i64().ok_or_else(|| {
                    StepError::permanent(format!("parent `{name}` has no integer `value`"))
                })
            })
            .try_fold(0i64, |sum, v| {
                sum.checked_add(v?)
                    .ok_or_else(|| StepError::permanent("overflow"))
            })?
    };
    let operand = ctx.config["operand"].as_i64().unwrap_or(0);
    let value = match ctx.config["op"].as_str().unwrap_or("square") {
        "square" => n.checked_mul(n),
        "add" => n.checked_add(operand),
        "multiply" => n.checked_mul(operand),
        other => {
            return Err(StepError::permanent(format!(
                "unknown op `{other}` (square, add, multiply)"
            )))
        }
    }
    .ok_or_else(|| {
        StepError::permanent(format!(
            "integer overflow computing {} of {n}",
            ctx.config["op"]
        ))
    })?;
    Ok(json!({ "value": value }))
}

/// `demo.fail_until` at `now`: an error while the input's `fail_until` is
/// later than `now`, else `{"ok": true, "attempt": n}`.
fn fail_until(ctx: &StepContext, now: chrono::DateTime<chrono::Utc>) -> Result<Value, StepError> {
    let until = ctx.input["fail_until"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .ok_or_else(|| StepError::permanent("input `fail_until` must be an RFC 3339 instant"))?;
    if until > now {
        return Err(StepError::permanent(format!(
            "refusing to run before {until} (the input's fail_until)"
        )));
    }
    Ok(json!({ "ok": true, "attempt": ctx.attempt }))
}

fn items(ctx: &StepContext) -> Result<&Vec<Value>, StepError> {
    ctx.input["items"]
        .as_array()
        .ok_or_else(|| StepError::permanent("input `items` must be an array"))
}

fn order_id(ctx: &StepContext) -> String {
    ctx.input["order_id"]
        .as_str()
        .unwrap_or("unknown")
        .to_string()
}

fn validate_order(ctx: &StepContext) -> Result<Value, StepError> {
    let items = items(ctx)?;
    if items.is_empty() {
        return Err(StepError::permanent("an order needs at least one item"));
    }
    let total: i64 = items
        .iter()
        .map(|i| i["quantity"].as_i64().unwrap_or(0) * i["price_cents"].as_i64().unwrap_or(0))
        .sum();
    Ok(json!({ "order_id": order_id(ctx), "item_count": items.len(), "total_cents": total }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ctx(input: Value, parents: &[(&str, Value)], config: Value) -> StepContext {
        StepContext {
            task_id: uuid::Uuid::nil(),
            step_id: uuid::Uuid::nil(),
            namespace: "demo".into(),
            template: "t".into(),
            step_name: "s".into(),
            handler: "math.compute".into(),
            attempt: 1,
            max_attempts: 3,
            input,
            parent_results: parents
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
            config,
            timeout_seconds: 30,
            recoveries: 0,
            traceparent: None,
            log: Default::default(),
        }
    }

    #[test]
    fn fail_until_fails_before_the_instant_and_succeeds_after() {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let c = ctx(
            json!({"fail_until": "2030-01-01T00:00:00Z"}),
            &[],
            json!({}),
        );
        let err = fail_until(&c, at("2029-12-31T23:59:59Z")).unwrap_err();
        assert!(!err.retryable && err.message.contains("refusing to run before"));
        assert_eq!(
            fail_until(&c, at("2030-01-01T00:00:00Z")).unwrap(),
            json!({"ok": true, "attempt": 1})
        );
        let bad = ctx(json!({}), &[], json!({}));
        assert!(fail_until(&bad, at("2030-01-01T00:00:00Z")).is_err());
    }

    #[test]
    fn compute_uses_input_for_roots_and_parent_sum_otherwise() {
        assert_eq!(
            compute(&ctx(json!({"value": 3}), &[], json!({"op": "square"}))).unwrap(),
            json!({"value": 9})
        );
        let parents = [("a", json!({"value": 4})), ("b", json!({"value": 5}))];
        assert_eq!(
            compute(&ctx(
                json!({}),
                &parents,
                json!({"op": "multiply", "operand": 2})
            ))
            .unwrap(),
            json!({"value": 18})
        );
        let err = compute(&ctx(
            json!({"value": i64::MAX}),
            &[],
            json!({"op": "square"}),
        ))
        .unwrap_err();
        assert!(!err.retryable && err.message.contains("overflow"));
        // A parent sum that overflows fails too (it does not wrap).
        let big = [
            ("a", json!({"value": i64::MAX})),
            ("b", json!({"value": i64::MAX})),
        ];
        let err = compute(&ctx(json!({}), &big, json!({"op": "add"}))).unwrap_err();
        assert!(
            !err.retryable && err.message.contains("overflow"),
            "{err:?}"
        );
        assert!(
            compute(&ctx(json!({"value": 1}), &[], json!({"op": "pow"})))
                .unwrap_err()
                .message
                .contains("unknown op")
        );
    }
}
