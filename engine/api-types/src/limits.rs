//! Rate limit bodies (`tasker_store::limit`; `docs/flow-control.md`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use tasker_store::limit::{format_rate, RateLimit};

/// `PUT /v1/limits/{name}`: the limit's rate and burst.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimitRequest {
    /// Steps a second, on average: from 1/3600 (one an hour) to 1,000,000.
    /// `100/m` is 1.6667 (the CLI's `--rate` converts).
    #[schema(example = 10.0)]
    pub per_second: f64,
    /// Steps that may start at once after a quiet spell, 1..=1,000,000;
    /// default 1 (evenly spaced starts).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// A rate limit: steps that reference it (`rate_limit: { name }` in a
/// template) start at most `per_second` a second, `burst` at once, per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Limit {
    /// The name steps reference.
    pub name: String,
    /// Steps a second, on average.
    pub per_second: f64,
    /// Steps that may start at once.
    pub burst: u32,
    /// The rate as people write it: `10/s`, `30/m`, `10/h`.
    pub rate: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RateLimit> for Limit {
    fn from(l: RateLimit) -> Limit {
        Limit {
            rate: format_rate(l.per_second),
            name: l.name,
            per_second: l.per_second,
            burst: u32::try_from(l.burst).unwrap_or(1),
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// Every rate limit, by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LimitList {
    pub limits: Vec<Limit>,
}
