//! The floor of `tasker bench wasm`: plain wasmtime instantiating a
//! component and calling its handler as a minimal embedding would: no store
//! limits, no deadline, no output capture, WASI granting nothing.
//!
//! [`RawFloor::new`] uses a default engine (on-demand allocation, what a naive
//! embedding gets); [`RawFloor::pooling`] an engine configured as
//! `tasker_wasm_host::WasmHost::new` configures its own (pooling allocator,
//! epoch interruption), so the difference to `WasmHost::call` is what the
//! host adds per call.

use tasker_wasm_host::{CallInput, HostConfig};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../sdk-wit/wit",
        world: "step-handler",
    });
}

use bindings::exports::tasker::handler::handler as wit;
use bindings::tasker::handler::{log, trace};

/// A compiled component, ready to instantiate per call.
pub struct RawFloor {
    engine: Engine,
    pre: bindings::StepHandlerPre<RawState>,
}

struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for RawState {
    fn log(&mut self, _level: log::Level, _message: String) {}
}

impl trace::Host for RawState {
    fn traceparent(&mut self) -> String {
        String::new()
    }
}

/// An engine configured exactly as the host's for `config`
/// ([`HostConfig::engine_config`]).
pub fn pooling_engine(config: &HostConfig) -> anyhow::Result<Engine> {
    Engine::new(&config.engine_config())
        .map_err(|e| anyhow::anyhow!("making the pooling engine: {e:#}"))
}

impl RawFloor {
    /// Compiles `bytes` with a default engine (on-demand allocation).
    pub fn new(bytes: &[u8]) -> anyhow::Result<RawFloor> {
        Self::with_engine(Engine::default(), bytes)
    }

    /// Compiles `bytes` with an engine like a `WasmHost`'s for `config`
    /// ([`pooling_engine`]), still without limits, deadline or output capture.
    pub fn pooling(config: &HostConfig, bytes: &[u8]) -> anyhow::Result<RawFloor> {
        Self::with_engine(pooling_engine(config)?, bytes)
    }

    fn with_engine(engine: Engine, bytes: &[u8]) -> anyhow::Result<RawFloor> {
        let e = |e: wasmtime::Error| anyhow::anyhow!("the raw floor: {e:#}");
        let component = Component::new(&engine, bytes).map_err(e)?;
        let mut linker: Linker<RawState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(e)?;
        bindings::StepHandler::add_to_linker::<RawState, HasSelf<RawState>>(&mut linker, |s| s)
            .map_err(e)?;
        let pre = bindings::StepHandlerPre::new(linker.instantiate_pre(&component).map_err(e)?)
            .map_err(e)?;
        Ok(RawFloor { engine, pre })
    }

    /// A fresh store and instance, one call; the guest's `ok` text.
    pub fn call(&self, input: &CallInput) -> Result<String, String> {
        let mut store = Store::new(
            &self.engine,
            RawState {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        // Engines with epoch interruption need a deadline; never hit here
        // (nothing advances this engine's epoch).
        store.set_epoch_deadline(u64::MAX / 2);
        let ctx = wit::StepContext {
            task_id: input.task_id.clone(),
            step_id: input.step_id.clone(),
            namespace: input.namespace.clone(),
            template_name: input.template_name.clone(),
            step_name: input.step_name.clone(),
            attempt: input.attempt,
            max_attempts: input.max_attempts,
            input: input.input.clone(),
            parent_results: input.parent_results.clone(),
            config: input.config.clone(),
        };
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| e.to_string())?;
        match instance
            .tasker_handler_handler()
            .call_handle(&mut store, &ctx)
        {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.message),
            Err(e) => Err(e.to_string()),
        }
    }
}
