//! [`Prepared`]: a compiled component, linked and ready to instantiate; what
//! the host caches by sha256 and what a call runs.

use crate::contract::bindings;
use crate::store::State;

/// A component ready to instantiate.
pub struct Prepared {
    pub(crate) sha256: String,
    pub(crate) pre: bindings::StepHandlerPre<State>,
}

impl Prepared {
    /// The component's sha256 (hex).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}
