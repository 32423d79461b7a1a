//! How many event streams may be open: `web.max_event_streams` over all
//! keys, `web.max_event_streams_per_key` per key. An open stream holds a
//! [`Slot`]; dropping it (the client went away, the task finished) frees it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::HttpError;

/// The open-stream counters of one server.
#[derive(Debug, Clone)]
pub struct EventSlots {
    all: Arc<Semaphore>,
    per_key: Arc<Mutex<HashMap<String, u32>>>,
    max_per_key: u32,
}

/// One open stream's place; freed on drop.
#[derive(Debug)]
pub struct Slot {
    _all: OwnedSemaphorePermit,
    key: String,
    per_key: Arc<Mutex<HashMap<String, u32>>>,
}

impl EventSlots {
    /// Room for `max` streams, `max_per_key` of them per key.
    pub fn new(max: u32, max_per_key: u32) -> EventSlots {
        EventSlots {
            all: Arc::new(Semaphore::new(max as usize)),
            per_key: Arc::default(),
            max_per_key,
        }
    }

    /// A slot for a stream of `key`, or 503 (with `Retry-After`) when the
    /// server or the key has as many open as allowed.
    pub fn take(&self, key: &str) -> Result<Slot, HttpError> {
        let all = Arc::clone(&self.all).try_acquire_owned().map_err(|_| {
            HttpError::busy("the server has as many event streams open as `web.max_event_streams` allows; retry later")
        })?;
        let mut open = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key.to_string()).or_insert(0);
        if *n >= self.max_per_key {
            return Err(HttpError::busy(format!(
                "this API key has {n} event streams open, the most `web.max_event_streams_per_key` allows; close one or retry later"
            )));
        }
        *n += 1;
        Ok(Slot {
            _all: all,
            key: key.to_string(),
            per_key: Arc::clone(&self.per_key),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn slots_are_capped_globally_and_per_key_and_freed_on_drop() {
        let slots = EventSlots::new(3, 2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        let err = slots.take("a").unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.retry_after().is_some());
        let _b1 = slots.take("b").unwrap();
        // Three open: the server is full, whatever the key.
        assert!(slots.take("c").is_err());
        drop(a1);
        let _c1 = slots.take("c").unwrap();
        assert!(slots.take("a").is_err(), "the server is full again");
        assert_eq!(slots.per_key.lock().unwrap().get("a"), Some(&1));
    }
}
