//! The host: one wasmtime engine (pooling allocator, epoch interruption with
//! its ticker thread), the linker of the contract and WASI, and the in-memory
//! map of prepared components.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::Engine;

use crate::config::HostConfig;
use crate::contract::bindings;
use crate::error::LoadError;
use crate::prepared::Prepared;
use crate::store::State;

/// The component host. Cheap to share (`Arc`); every method takes `&self`.
pub struct WasmHost {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<State>,
    pub(crate) config: HostConfig,
    pub(crate) prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    pub(crate) fingerprint: String,
    stop: Arc<AtomicBool>,
}

impl Drop for WasmHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl WasmHost {
    /// Makes the engine (pooling allocator, epoch interruption), the linker
    /// (contract + denying WASI) and starts the epoch ticker thread.
    pub fn new(config: HostConfig) -> Result<WasmHost, LoadError> {
        let host_err = |e: wasmtime::Error| LoadError::Host(format!("{e:#}"));
        let engine = Engine::new(&config.engine_config()).map_err(host_err)?;

        let mut linker: Linker<State> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(host_err)?;
        bindings::StepHandler::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(host_err)?;

        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            format!("{:016x}", h.finish())
        };
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| LoadError::Host(format!("cache dir {}: {e}", dir.display())))?;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop, tick) = (engine.clone(), stop.clone(), config.epoch_tick);
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| LoadError::Host(format!("epoch thread: {e}")))?;

        Ok(WasmHost {
            engine,
            linker,
            config,
            prepared: Mutex::new(HashMap::new()),
            fingerprint,
            stop,
        })
    }

    /// The host's configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// A fingerprint of the engine's compilation settings (part of the disk cache key).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}
