//! Bounded channels with a saturation gauge.
//!
//! Every in-process channel in tasker is made here, with a capacity from
//! config (`[channels]`). Senders wait when a channel is full (backpressure:
//! the durable buffer is the PGMQ queue behind the reader, so waiting loses
//! nothing); [`Sender::try_send_or_drop`] is for wake-up hints only, where
//! dropping is safe because a periodic sweep does the same work.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;

/// Fill level of one channel, for metrics.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Saturation {
    pub capacity: usize,
    /// Messages queued at the last send.
    pub used: usize,
    /// Highest `used` seen.
    pub high_water: usize,
    /// Hints dropped because the channel was full.
    pub dropped: u64,
}

fn registry() -> &'static Mutex<BTreeMap<&'static str, Saturation>> {
    static R: OnceLock<Mutex<BTreeMap<&'static str, Saturation>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

/// Current saturation of every channel, by name.
pub fn saturation() -> BTreeMap<&'static str, Saturation> {
    registry().lock().map(|m| m.clone()).unwrap_or_default()
}

/// The sending half of a named bounded channel.
pub struct Sender<T> {
    inner: mpsc::Sender<T>,
    name: &'static str,
    warn_at: usize,
    warned: Arc<std::sync::atomic::AtomicBool>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            inner: self.inner.clone(),
            name: self.name,
            warn_at: self.warn_at,
            warned: self.warned.clone(),
        }
    }
}

/// Makes a bounded channel named `name` holding `capacity` messages, warning
/// in the log once it is `warn_percent` full.
pub fn bounded<T>(
    name: &'static str,
    capacity: usize,
    warn_percent: u8,
) -> (Sender<T>, mpsc::Receiver<T>) {
    let capacity = capacity.max(1);
    let (tx, rx) = mpsc::channel(capacity);
    if let Ok(mut m) = registry().lock() {
        m.insert(
            name,
            Saturation {
                capacity,
                ..Default::default()
            },
        );
    }
    let warn_at = (capacity * usize::from(warn_percent.min(100)) / 100).max(1);
    (
        Sender {
            inner: tx,
            name,
            warn_at,
            warned: Default::default(),
        },
        rx,
    )
}

impl<T> Sender<T> {
    /// Sends, waiting while the channel is full. Errors when the receiver is gone.
    pub async fn send(&self, value: T) -> Result<(), mpsc::error::SendError<T>> {
        let sent = self.inner.send(value).await;
        self.observe(0);
        sent
    }

    /// Sends if there is room; otherwise drops the message and counts it.
    pub fn try_send_or_drop(&self, value: T) {
        if self.inner.try_send(value).is_err() {
            self.observe(1);
        } else {
            self.observe(0);
        }
    }

    fn observe(&self, dropped: u64) {
        let used = self.inner.max_capacity() - self.inner.capacity();
        if let Ok(mut m) = registry().lock() {
            let s = m.entry(self.name).or_default();
            s.used = used;
            s.high_water = s.high_water.max(used);
            s.dropped += dropped;
        }
        use std::sync::atomic::Ordering;
        if used >= self.warn_at && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                channel = self.name,
                used,
                capacity = self.inner.max_capacity(),
                "channel is nearly full"
            );
        } else if used < self.warn_at / 2 {
            self.warned.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // The saturation registry is process-wide: every test uses its own name.

    #[tokio::test]
    async fn try_send_or_drop_drops_and_counts_when_full() {
        let (tx, mut rx) = bounded::<u32>("t.x", 2, 50);
        tx.try_send_or_drop(1);
        tx.try_send_or_drop(2);
        assert_eq!(saturation()["t.x"].dropped, 0);
        tx.try_send_or_drop(3);
        tx.try_send_or_drop(4);
        let s = saturation()["t.x"];
        assert_eq!(s.dropped, 2);
        assert_eq!(s.capacity, 2);
        assert_eq!(s.used, 2);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert!(rx.try_recv().is_err(), "dropped hints must not arrive");
    }

    #[tokio::test]
    async fn send_waits_while_full() {
        let (tx, mut rx) = bounded::<u32>("t.send", 2, 50);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let third = tx.send(3);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut third)
                .await
                .is_err(),
            "send on a full channel must wait"
        );
        assert_eq!(rx.recv().await, Some(1));
        tokio::time::timeout(Duration::from_secs(1), &mut third)
            .await
            .expect("send must proceed once there is room")
            .unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(saturation()["t.send"].dropped, 0);
        drop(rx);
        assert!(tx.send(4).await.is_err(), "receiver gone");
    }

    #[tokio::test]
    async fn high_water_tracks_the_maximum() {
        let (tx, mut rx) = bounded::<u32>("t.hw", 4, 50);
        for i in 0..3 {
            tx.try_send_or_drop(i);
        }
        assert_eq!(saturation()["t.hw"].high_water, 3);
        for _ in 0..3 {
            rx.recv().await.unwrap();
        }
        tx.try_send_or_drop(9);
        let s = saturation()["t.hw"];
        assert_eq!(s.used, 1);
        assert_eq!(s.high_water, 3, "high water never goes down");
        tx.try_send_or_drop(10);
        tx.try_send_or_drop(11);
        tx.try_send_or_drop(12);
        tx.try_send_or_drop(13); // dropped
        let s = saturation()["t.hw"];
        assert_eq!(s.high_water, 4);
        assert_eq!(s.dropped, 1);
    }

    #[tokio::test]
    async fn send_counts_the_message_it_sent() {
        let (tx, _rx) = bounded::<u32>("t.send_used", 4, 50);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let s = saturation()["t.send_used"];
        assert_eq!(s.used, 2);
        assert_eq!(s.high_water, 2);
    }

    #[tokio::test]
    async fn capacity_zero_is_clamped_to_one() {
        let (tx, mut rx) = bounded::<u32>("t.zero", 0, 50);
        assert_eq!(saturation()["t.zero"].capacity, 1);
        tx.try_send_or_drop(1);
        tx.try_send_or_drop(2);
        let s = saturation()["t.zero"];
        assert_eq!(s.dropped, 1);
        assert_eq!(s.used, 1);
        assert_eq!(rx.recv().await, Some(1));
        tx.send(3).await.unwrap();
        assert_eq!(rx.recv().await, Some(3));
    }
}
