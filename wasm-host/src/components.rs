//! Loading components: validating uploads, compiling, checking imports and
//! the contract's export, and caching the result in memory (by sha256) and on
//! disk (by sha256 + engine fingerprint).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::contract::{
    allowed_import, bindings, wasmparser_is_component, CONTRACT_VERSION, HANDLER_EXPORT,
};
use crate::error::LoadError;
use crate::host::WasmHost;
use crate::prepared::Prepared;

/// Facts about a validated component.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    pub sha256: String,
    pub size: usize,
    pub contract_version: String,
    /// Every import name, sorted.
    pub imports: Vec<String>,
}

/// Where a component came from on [`WasmHost::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadedFrom {
    Memory,
    Disk,
    Compiled,
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
impl WasmHost {
    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        // Only a hex digest becomes a file name.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        Some(dir.join(format!("{sha256}-{}.cwasm", self.fingerprint)))
    }

    /// The compiled component on disk for `sha256`, if cached and loadable
    /// (an unloadable file is removed).
    fn compiled_on_disk(&self, sha256: &str) -> Option<Component> {
        let path = self.cache_path(sha256)?;
        if !path.exists() {
            return None;
        }
        // SAFETY: the cache directory is the worker's own (config says so);
        // its files are written only by `compile` below, atomically, for this
        // engine fingerprint. A file that fails to load is removed.
        match unsafe { Component::deserialize_file(&self.engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "dropping an unusable cached component");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        if !wasmparser_is_component(bytes) {
            return Err(LoadError::NotAComponent);
        }
        // The same bytes compiled before (an upload again, or compiled by
        // another process on this machine): no second compilation. Callers
        // pass the bytes' own hash.
        if let Some(component) = self.compiled_on_disk(sha256) {
            return Ok(component);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        if let Some(path) = self.cache_path(sha256) {
            if let Ok(serialized) = component.serialize() {
                write_atomically(&path, &serialized);
            }
        }
        Ok(component)
    }

    fn check(&self, component: &Component) -> Result<(Vec<String>, Prepared), LoadError> {
        let ty = component.component_type();
        let mut imports: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        imports.sort();
        if let Some(bad) = imports.iter().find(|n| !allowed_import(n)) {
            return Err(LoadError::ForbiddenImport { name: bad.clone() });
        }
        if ty.get_export(&self.engine, HANDLER_EXPORT).is_none() {
            let exports: Vec<&str> = ty.exports(&self.engine).map(|(n, _)| n).collect();
            return Err(LoadError::Export(format!(
                "it exports [{}]",
                exports.join(", ")
            )));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre =
            bindings::StepHandlerPre::new(pre).map_err(|e| LoadError::Export(format!("{e:#}")))?;
        Ok((
            imports,
            Prepared {
                sha256: String::new(),
                pre,
            },
        ))
    }

    /// Validates an upload: a component, only allowed imports, the contract's
    /// export, and it compiles. The compiled form is cached (memory and disk).
    pub fn validate(&self, bytes: &[u8]) -> Result<ComponentInfo, LoadError> {
        let sha256 = sha256_hex(bytes);
        let component = self.compile(bytes, &sha256)?;
        let (imports, mut prepared) = self.check(&component)?;
        prepared.sha256 = sha256.clone();
        self.remember(Arc::new(prepared));
        Ok(ComponentInfo {
            sha256,
            size: bytes.len(),
            contract_version: CONTRACT_VERSION.to_string(),
            imports,
        })
    }

    fn remember(&self, prepared: Arc<Prepared>) {
        if let Ok(mut m) = self.prepared.lock() {
            m.insert(prepared.sha256.clone(), prepared);
        }
    }

    /// The prepared component for `sha256` from memory, else from the disk
    /// cache (no bytes needed), else `None`.
    pub fn cached(&self, sha256: &str) -> Option<(Arc<Prepared>, LoadedFrom)> {
        if let Some(p) = self.prepared.lock().ok()?.get(sha256).cloned() {
            return Some((p, LoadedFrom::Memory));
        }
        let component = self.compiled_on_disk(sha256)?;
        let (_, mut prepared) = self.check(&component).ok()?;
        prepared.sha256 = sha256.to_string();
        let prepared = Arc::new(prepared);
        self.remember(prepared.clone());
        Some((prepared, LoadedFrom::Disk))
    }

    /// The prepared component for `bytes` (whose hash must be `sha256`):
    /// from memory or disk if cached, else compiled (and cached).
    pub fn load(
        &self,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<(Arc<Prepared>, LoadedFrom), LoadError> {
        if let Some(hit) = self.cached(sha256) {
            return Ok(hit);
        }
        let actual = sha256_hex(bytes);
        if actual != sha256 {
            return Err(LoadError::Host(format!(
                "bytes hash to {actual}, expected {sha256}"
            )));
        }
        let component = self.compile(bytes, sha256)?;
        let (_, mut prepared) = self.check(&component)?;
        prepared.sha256 = sha256.to_string();
        let prepared = Arc::new(prepared);
        self.remember(prepared.clone());
        Ok((prepared, LoadedFrom::Compiled))
    }

    /// Forgets every in-memory prepared component (the disk cache stays).
    pub fn clear_memory_cache(&self) {
        if let Ok(mut m) = self.prepared.lock() {
            m.clear();
        }
    }

    /// Forgets the component `sha256`: from memory and from the disk cache
    /// (a deleted upload). True when something was forgotten.
    pub fn evict(&self, sha256: &str) -> bool {
        let in_memory = self
            .prepared
            .lock()
            .map(|mut m| m.remove(sha256).is_some())
            .unwrap_or(false);
        let on_disk = self
            .cache_path(sha256)
            .is_some_and(|path| std::fs::remove_file(path).is_ok());
        in_memory || on_disk
    }

    /// Forgets, in memory, every component whose sha256 is not in `keep`
    /// (those still uploaded); returns how many were forgotten.
    pub fn retain_only(&self, keep: &std::collections::HashSet<String>) -> usize {
        self.prepared
            .lock()
            .map(|mut m| {
                let before = m.len();
                m.retain(|sha, _| keep.contains(sha));
                before - m.len()
            })
            .unwrap_or(0)
    }

    /// How many prepared components are held in memory.
    pub fn cached_in_memory(&self) -> usize {
        self.prepared.lock().map(|m| m.len()).unwrap_or(0)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "could not write the compiled-component cache");
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use crate::{HostConfig, LoadError, WasmHost};

    #[test]
    fn core_modules_are_not_components() {
        let host = WasmHost::new(HostConfig::default()).expect("host");
        // The smallest core module: magic + version 1.
        let module = b"\0asm\x01\0\0\0";
        assert!(matches!(
            host.validate(module),
            Err(LoadError::NotAComponent)
        ));
        assert!(matches!(
            host.validate(b"hello"),
            Err(LoadError::NotAComponent)
        ));
    }
}
