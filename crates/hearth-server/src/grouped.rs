//! Reads grouped across requests: many requests that each need one row of
//! the same kind (a token by its hash, a workspace's desired state) wait
//! in a queue, and one task reads what waits in one query, as the
//! group-commit writer does for writes. A fleet coming online together
//! (first heartbeats after a creation or a partition) costs a query per
//! batch instead of two per request (BENCHMARKS.md, "Fleet recovery").
//! An idle server reads a lone key at once, and up to [`IN_FLIGHT`] groups
//! are read at a time.
//!
//! A grouped read that fails, or a full queue, answers "read it alone":
//! each request then makes its own query and gets its own error, so a
//! failure fails the requests it concerns exactly as before grouping.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use hearth_store::StoreResult;
use tokio::sync::{mpsc, oneshot};

/// Keys one query reads at most.
pub const MAX_KEYS: usize = 1000;
/// Requests waiting at most; past it a request reads alone.
const QUEUE: usize = 8 * MAX_KEYS;
/// Group reads at once: a request waits for a free one, not for the read
/// in flight to end, so few requests at once read about as soon as they
/// would alone, and many form groups (BENCHMARKS.md, "Fleet recovery").
const IN_FLIGHT: usize = 4;

/// The queue of one kind of grouped read.
pub struct Grouped<K, V> {
    queue: mpsc::Sender<Ask<K, V>>,
}

struct Ask<K, V> {
    key: K,
    answer: oneshot::Sender<Option<V>>,
}

/// What a grouped read answered for one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Read<V> {
    /// The group was read: the key's value, or `None` when the query did
    /// not find it.
    Found(Option<V>),
    /// Not read in a group (its query failed, or the queue was full):
    /// read it alone.
    Alone,
}

impl<K, V> Grouped<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// Starts the reading task: `read` gets every key waiting (each once,
    /// at most [`MAX_KEYS`]) and answers the ones it found. `what` names
    /// the read in logs and in `hearth_grouped_read_errors_total`. The task
    /// stops when the `Grouped` is dropped.
    pub fn start<F, Fut>(what: &'static str, read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<HashMap<K, V>>> + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(read_groups(what, receiver, read));
        Self { queue }
    }

    /// `key`, read with whatever else waits.
    pub async fn get(&self, key: K) -> Read<V> {
        let (answer, answered) = oneshot::channel();
        if self.queue.try_send(Ask { key, answer }).is_err() {
            return Read::Alone;
        }
        match answered.await {
            Ok(found) => Read::Found(found),
            // The group's read failed (dropped every answer) or the task stopped.
            Err(_) => Read::Alone,
        }
    }
}

async fn read_groups<K, V, F, Fut>(what: &'static str, mut receiver: mpsc::Receiver<Ask<K, V>>, read: F)
where
    K: Eq + Hash + Clone,
    V: Clone,
    F: Fn(Vec<K>) -> Fut,
    Fut: Future<Output = StoreResult<HashMap<K, V>>>,
{
    let mut in_flight = futures_util::stream::FuturesUnordered::new();
    let mut asks = Vec::with_capacity(MAX_KEYS);
    loop {
        tokio::select! {
            taken = receiver.recv_many(&mut asks, MAX_KEYS), if in_flight.len() < IN_FLIGHT => {
                if taken == 0 {
                    break;
                }
                let group = std::mem::replace(&mut asks, Vec::with_capacity(MAX_KEYS));
                let mut keys: Vec<K> = group.iter().map(|ask| ask.key.clone()).collect();
                let mut seen = std::collections::HashSet::with_capacity(keys.len());
                keys.retain(|key| seen.insert(key.clone()));
                let reading = read(keys);
                in_flight.push(async move { answer(what, group, reading.await) });
            }
            Some(()) = futures_util::StreamExt::next(&mut in_flight), if !in_flight.is_empty() => {}
        }
    }
    // The queue is closed: finish what is being read.
    while futures_util::StreamExt::next(&mut in_flight).await.is_some() {}
}

/// Answers a group's requests from what its read found, or (it failed)
/// tells each to read alone.
fn answer<K: Eq + Hash, V: Clone>(what: &'static str, group: Vec<Ask<K, V>>, read: StoreResult<HashMap<K, V>>) {
    match read {
        Ok(found) => {
            for Ask { key, answer } in group {
                // A request that is gone needs no answer.
                let _gone = answer.send(found.get(&key).cloned());
            }
        }
        Err(error) => {
            crate::metrics::store_error(&error);
            metrics::counter!("hearth_grouped_read_errors_total", "read" => what).increment(1);
            tracing::warn!(%error, read = what, requests = group.len(), "grouped read failed; each request reads alone");
            // Dropping the answers tells each request to read alone.
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test: a failed step should panic

    use std::sync::{Arc, Mutex};

    use hearth_store::StoreError;

    use super::*;

    /// Requests that wait together are read in one call, each key once;
    /// a key the read does not find is answered `Found(None)`. A group
    /// forms only while every read slot is taken.
    #[tokio::test]
    async fn waiting_requests_are_read_together_each_key_once() {
        let calls: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let seen = calls.clone();
        let (release, gate) = tokio::sync::watch::channel(false);
        let grouped = Arc::new(Grouped::start("test", move |keys: Vec<u32>| {
            seen.lock().unwrap().push(keys.clone());
            let mut gate = gate.clone();
            async move {
                gate.wait_for(|open| *open).await.unwrap();
                Ok(keys.into_iter().filter(|k| k % 2 == 0).map(|k| (k, k * 10)).collect())
            }
        }));
        let ask = |key: u32| {
            let grouped = grouped.clone();
            tokio::spawn(async move { grouped.get(key).await })
        };
        // One request at a time is read at once, alone: these take every
        // slot and hold it.
        let mut first = Vec::new();
        for key in 0..IN_FLIGHT as u32 {
            first.push(ask(100 + key));
            while calls.lock().unwrap().len() <= key as usize {
                tokio::task::yield_now().await;
            }
        }
        // The next five wait together.
        let waiting: Vec<_> = [1, 2, 2, 3, 4].into_iter().map(ask).collect();
        while grouped.queue.capacity() > QUEUE - 5 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for (key, one) in (100..).zip(first) {
            assert_eq!(one.await.unwrap(), Read::Found((key % 2 == 0).then_some(key * 10)));
        }
        let mut answers = Vec::new();
        for one in waiting {
            answers.push(one.await.unwrap());
        }
        assert_eq!(
            answers,
            [Read::Found(None), Read::Found(Some(20)), Read::Found(Some(20)), Read::Found(None), Read::Found(Some(40))]
        );
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), IN_FLIGHT + 1, "{calls:?}");
        assert_eq!(calls[IN_FLIGHT], [1, 2, 3, 4], "one read for the five waiting, 2 once");
    }

    /// A failed group is not an answer: every request of it is told to
    /// read alone (and so gets its own error).
    #[tokio::test]
    async fn a_failed_group_tells_each_request_to_read_alone() {
        let grouped: Grouped<u32, u32> = Grouped::start("test", |_keys| async {
            Err(StoreError::Unavailable { operation: "test", message: "down".into() })
        });
        assert_eq!(grouped.get(1).await, Read::Alone);
        assert_eq!(grouped.get(2).await, Read::Alone);
    }
}
