//! Pause and resume bodies (`tasker_store::pause`).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A pause in force.
pub use tasker_store::pause::Pause;
/// What a pause or a resume did.
pub use tasker_store::pause::PauseChange;

/// `POST .../pause`: why (optional, shown by `GET /v1/pauses`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PauseParams {
    /// Why the work is paused; at most 1,000 characters.
    pub reason: Option<String>,
}

/// `GET /v1/pauses`: only pauses of this namespace (a namespace, a template
/// or a task in it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPausesParams {
    pub namespace: Option<String>,
}

/// Every pause in force, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PauseList {
    pub pauses: Vec<Pause>,
}
