//! The polyglot test's example: its orders, the amounts each step must
//! compute (the rules of `examples/polyglot/README.md`) and the check that a
//! task's steps computed them, each in the runtime the template sends it to.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_testkit::steps;
use uuid::Uuid;

/// The steps in DAG order, with the `lang` each one's result must carry (who ran it).
pub const STEPS: [(&str, &str); 7] = [
    ("subtotal", "python"),
    ("shipping", "ruby"),
    ("pre_tax", "rust"),
    ("tax", "c"),
    ("total", "python"),
    ("points", "javascript"),
    ("charged", "c"),
];

/// Order `i`: 1-3 lines, a destination and its tax rate.
pub fn order(i: u64) -> Value {
    const PLACES: [(&str, i64); 5] = [
        ("US", 825),
        ("CA", 1300),
        ("DE", 1900),
        ("MX", 1600),
        ("JP", 1000),
    ];
    let (country, tax_bp) = PLACES[(i % 5) as usize];
    let items: Vec<Value> = (0..1 + i % 3)
        .map(|j| {
            json!({
                "sku": format!("SKU-{}", (i * 31 + j * 7) % 97),
                "qty": 1 + (i * 7 + j * 3) % 5,
                "unit_cents": 99 + (i * 7919 + j * 104_729) % 25_000,
            })
        })
        .collect();
    json!({ "order_id": format!("A-{:04}", 1000 + i), "country": country, "tax_bp": tax_bp, "items": items })
}

/// What every step of `order` must result in (integer cents), computed here
/// by the rules the handlers implement (`examples/polyglot/README.md`).
pub fn expected(order: &Value) -> BTreeMap<&'static str, i64> {
    let items = order["items"].as_array().unwrap();
    let qty: i64 = items.iter().map(|i| i["qty"].as_i64().unwrap()).sum();
    let subtotal: i64 = items
        .iter()
        .map(|i| i["qty"].as_i64().unwrap() * i["unit_cents"].as_i64().unwrap())
        .sum();
    let (base, per_item) = match order["country"].as_str().unwrap() {
        "US" => (500, 150),
        "CA" | "MX" => (1200, 250),
        _ => (2500, 400),
    };
    let shipping = base + per_item * qty;
    let pre_tax = subtotal + shipping;
    let tax = (pre_tax * order["tax_bp"].as_i64().unwrap() + 5000) / 10000;
    let total = pre_tax + tax;
    BTreeMap::from([
        ("subtotal", subtotal),
        ("shipping", shipping),
        ("pre_tax", pre_tax),
        ("tax", tax),
        ("total", total),
        ("points", total * 2),
        ("charged", total + 30),
    ])
}

/// Asserts that every step of `task` (order `input`) completed once with its
/// exact value, computed by the runtime the template sends it to.
pub async fn assert_priced(pool: &PgPool, task: Uuid, input: &Value) {
    let want = expected(input);
    let got = steps(pool, task).await;
    for (name, lang) in STEPS {
        let s = &got[name];
        assert_eq!(s.state, "complete", "task {task} step {name}: {s:?}");
        assert_eq!(s.attempts, 1, "task {task} step {name}: {s:?}");
        let result = s.result.as_ref().expect("a result");
        assert_eq!(
            result["value"],
            json!(want[name]),
            "task {task} ({input}) step {name}: {result}"
        );
        assert_eq!(result["lang"], lang, "task {task} step {name}: {result}");
    }
    // The native Rust steps: the amount passed on, the example handler's
    // payment reference.
    let v = &got["validate_order"];
    assert_eq!(
        (v.state.as_str(), v.attempts),
        ("complete", 1),
        "task {task} step validate_order: {v:?}"
    );
    assert_eq!(
        v.result.as_ref().expect("a result")["value"],
        json!(want["charged"]),
        "task {task} step validate_order: {v:?}"
    );
    let p = &got["payment"];
    assert_eq!(
        (p.state.as_str(), p.attempts),
        ("complete", 1),
        "task {task} step payment: {p:?}"
    );
    let order_id = input["order_id"].as_str().expect("an order id");
    assert_eq!(
        p.result.as_ref().expect("a result")["payment_id"],
        json!(format!("pay-{order_id}")),
        "task {task} step payment: {p:?}"
    );
}
