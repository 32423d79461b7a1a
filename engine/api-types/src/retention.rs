//! Bodies of `POST /v1/retention/run` (`docs/retention.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Finished tasks of one namespace old enough to be removed.
pub use tasker_store::retention::NamespaceCount as RetentionNamespace;

/// `POST /v1/retention/run`: remove finished tasks past their namespace's
/// age now (`[retention]`), or only count them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRunRequest {
    /// True: change nothing, count what would go per namespace.
    pub dry_run: bool,
    /// Tasks deleted per transaction, 1..=1000; default `retention.batch_size`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1000)]
    pub batch_size: Option<u32>,
}

/// What a retention run removed, or (dry run) would remove.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RetentionRun {
    pub dry_run: bool,
    /// Dry run: every registered namespace with its age and the finished
    /// tasks past it. Empty for a real run.
    pub namespaces: Vec<RetentionNamespace>,
    /// Tasks deleted (0 on a dry run).
    pub deleted: u64,
    /// Transactions that deleted something.
    pub batches: u32,
    /// False when the request's time ran out with tasks left: send it again.
    pub done: bool,
}
