//! State shared by every VM of one simulated Envoy process: shared data (with CAS), shared
//! queues and metrics. `Host::new_worker` makes another VM on the same store, like another
//! Envoy worker thread running the same plugin.

use std::collections::{HashMap, VecDeque};

use crate::types::Status;

#[derive(Default)]
pub(crate) struct SharedStore {
    data: HashMap<Vec<u8>, (Vec<u8>, u32)>,
    last_cas: u32,
    queues: Vec<Queue>,
    /// (host id, context id, queue id) waiting for `proxy_on_queue_ready`.
    notifications: Vec<(u64, u32, u32)>,
    metrics: Vec<Metric>,
}

struct Queue {
    vm_id: Vec<u8>,
    name: Vec<u8>,
    owner_host: u64,
    owner_context: u32,
    items: VecDeque<Vec<u8>>,
}

pub(crate) struct Metric {
    pub name: String,
    pub kind: MetricKind,
    pub value: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl SharedStore {
    pub fn get(&self, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        self.data.get(key).cloned()
    }

    /// Envoy's semantics: a non-zero `cas` must match the current one; any write bumps it.
    pub fn set(&mut self, key: &[u8], value: &[u8], cas: u32) -> Status {
        if let Some((_, current)) = self.data.get(key) {
            if cas != 0 && cas != *current {
                return Status::CasMismatch;
            }
        }
        self.last_cas = self.last_cas.wrapping_add(1).max(1);
        self.data
            .insert(key.to_vec(), (value.to_vec(), self.last_cas));
        Status::Ok
    }

    pub fn register_queue(&mut self, vm_id: &[u8], name: &[u8], host: u64, context: u32) -> u32 {
        if let Some(index) = self
            .queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
        {
            let queue = &mut self.queues[index];
            queue.owner_host = host;
            queue.owner_context = context;
            return queue_id(index);
        }
        self.queues.push(Queue {
            vm_id: vm_id.to_vec(),
            name: name.to_vec(),
            owner_host: host,
            owner_context: context,
            items: VecDeque::new(),
        });
        queue_id(self.queues.len() - 1)
    }

    pub fn resolve_queue(&self, vm_id: &[u8], name: &[u8]) -> Option<u32> {
        self.queues
            .iter()
            .position(|q| q.vm_id == vm_id && q.name == name)
            .map(queue_id)
    }

    pub fn enqueue(&mut self, id: u32, value: &[u8]) -> Status {
        let Some(queue) = self.queue_mut(id) else {
            return Status::NotFound;
        };
        queue.items.push_back(value.to_vec());
        let note = (queue.owner_host, queue.owner_context, id);
        self.notifications.push(note);
        Status::Ok
    }

    pub fn dequeue(&mut self, id: u32) -> Result<Vec<u8>, Status> {
        let queue = self.queue_mut(id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    pub fn take_notifications(&mut self, host: u64) -> Vec<(u32, u32)> {
        let (mine, others): (Vec<_>, Vec<_>) = self
            .notifications
            .drain(..)
            .partition(|(owner, _, _)| *owner == host);
        self.notifications = others;
        mine.into_iter()
            .map(|(_, ctx, queue)| (ctx, queue))
            .collect()
    }

    fn queue_mut(&mut self, id: u32) -> Option<&mut Queue> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.queues.get_mut(index)
    }

    /// The same name always gives the same metric (Envoy's stats are keyed by name).
    pub fn define_metric(&mut self, kind: MetricKind, name: &str) -> u32 {
        if let Some(index) = self.metrics.iter().position(|m| m.name == name) {
            return metric_id(index);
        }
        self.metrics.push(Metric {
            name: name.to_owned(),
            kind,
            value: 0,
        });
        metric_id(self.metrics.len() - 1)
    }

    pub fn metric_mut(&mut self, id: u32) -> Option<&mut Metric> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.metrics.get_mut(index)
    }

    pub fn metrics(&self) -> Vec<(String, u64)> {
        self.metrics
            .iter()
            .map(|m| (m.name.clone(), m.value))
            .collect()
    }

    pub fn metric_by_name(&self, name: &str) -> Option<u64> {
        self.metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

fn queue_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

fn metric_id(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap() {
        let mut store = SharedStore::default();
        assert_eq!(store.get(b"k"), None);
        // A missing key takes any cas (Envoy does not check it).
        assert_eq!(store.set(b"k", b"v1", 42), Status::Ok);
        let (value, cas) = store.get(b"k").unwrap();
        assert_eq!(value, b"v1");
        assert_eq!(
            store.set(b"k", b"v2", cas.wrapping_add(1)),
            Status::CasMismatch
        );
        assert_eq!(store.set(b"k", b"v2", cas), Status::Ok);
        let (value, cas2) = store.get(b"k").unwrap();
        assert_eq!(value, b"v2");
        assert_ne!(cas2, cas);
        assert_eq!(store.set(b"k", b"v3", cas), Status::CasMismatch);
        assert_eq!(store.set(b"k", b"v3", 0), Status::Ok);
        assert_eq!(store.get(b"k").unwrap().0, b"v3");
    }

    #[test]
    fn queues_notify_their_owner() {
        let mut store = SharedStore::default();
        assert_eq!(store.resolve_queue(b"vm", b"q"), None);
        assert_eq!(store.enqueue(1, b"x"), Status::NotFound);
        let id = store.register_queue(b"vm", b"q", 7, 1);
        assert_eq!(store.register_queue(b"vm", b"q", 7, 1), id);
        assert_eq!(store.resolve_queue(b"vm", b"q"), Some(id));
        assert_eq!(store.dequeue(id), Err(Status::Empty));
        assert_eq!(store.enqueue(id, b"a"), Status::Ok);
        assert_eq!(store.enqueue(id, b"b"), Status::Ok);
        assert!(store.take_notifications(8).is_empty());
        assert_eq!(store.take_notifications(7), [(1, id), (1, id)]);
        assert_eq!(store.dequeue(id), Ok(b"a".to_vec()));
        assert_eq!(store.dequeue(id), Ok(b"b".to_vec()));
        assert_eq!(store.dequeue(id + 1), Err(Status::NotFound));
    }
}
