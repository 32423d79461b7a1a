//! In-process Rust handlers: an async function from the step context to a
//! JSON result or a [`StepError`].

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{Handler, HandlerFuture};
use tasker_model::step::{Outcome, StepContext, StepError};

/// A Rust function as a handler.
pub struct FnHandler<F> {
    f: F,
}

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(StepContext, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
{
    fn call(&self, ctx: StepContext, cancel: CancellationToken) -> HandlerFuture {
        let fut = (self.f)(ctx, cancel);
        Box::pin(async move {
            match fut.await {
                Ok(result) => Outcome::success(result),
                Err(e) => Outcome::Failure(e),
            }
        })
    }

    fn backend(&self) -> &'static str {
        "rust"
    }
}

/// Wraps an async Rust function as a [`Handler`].
///
/// ```
/// use tasker_worker::handler::rust::handler_fn;
/// let h = handler_fn(|ctx, _cancel| async move {
///     Ok(serde_json::json!({"echo": ctx.input}))
/// });
/// # let _ = h;
/// ```
pub fn handler_fn<F, Fut>(f: F) -> Arc<dyn Handler>
where
    F: Fn(StepContext, CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, StepError>> + Send + 'static,
{
    Arc::new(FnHandler { f })
}
