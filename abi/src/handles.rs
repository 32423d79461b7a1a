//! Handle tables: what the opaque pointers given to C stand for.
//!
//! A handle is not the address of an object. It is a number, never reused in
//! the process's life, looked up in the table of its type; the table holds an
//! `Arc` of the object. So a freed handle, a handle completed twice, a handle of
//! the wrong type or a made-up pointer is always detected and answered with
//! `TASKER_ERR_INVALID_HANDLE`, and a call racing with a free of the same handle
//! never touches freed memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::AbiError;

/// Shared by every table, so a handle of one type never names another's object.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The live handles of one type.
pub(crate) struct Table<T> {
    /// For messages: `TaskerWorker`, `TaskerStep`, ...
    name: &'static str,
    live: Mutex<BTreeMap<u64, Arc<T>>>,
}

impl<T> Table<T> {
    pub(crate) const fn new(name: &'static str) -> Table<T> {
        Table {
            name,
            live: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds `value`; returns its handle (never zero).
    pub(crate) fn insert(&self, value: Arc<T>) -> u64 {
        // Multiples of 16 look like (and are as aligned as) heap pointers.
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed) << 4;
        self.lock().insert(id, value);
        id
    }

    /// The object of a live handle.
    pub(crate) fn get(&self, handle: u64) -> Result<Arc<T>, AbiError> {
        self.lock()
            .get(&handle)
            .cloned()
            .ok_or(AbiError::InvalidHandle(self.name))
    }

    /// Removes a handle; its object lives on while other `Arc`s hold it.
    pub(crate) fn remove(&self, handle: u64) -> Result<Arc<T>, AbiError> {
        let mut live = self.lock();
        let value = live
            .remove(&handle)
            .ok_or(AbiError::InvalidHandle(self.name))?;
        if live.is_empty() {
            // An emptied BTreeMap keeps its root node: drop it, so a program that
            // freed every handle holds no memory of ours.
            *live = BTreeMap::new();
        }
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<T>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (each operation is one map call), so a poisoned lock is still usable.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
}
