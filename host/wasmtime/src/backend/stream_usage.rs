//! A namespace's disk quota on JetStream: the bytes its streams hold.
//!
//! As the local engine's usage (`disk.rs`) walks the namespace directory,
//! this asks the servers for the bytes of the namespace's streams: at the
//! first write of the namespace in this host, and again whenever a write
//! would pass the quota (compaction, or another host, may have changed
//! it), and counts each write up in between. So a guest cannot make its
//! streams hold more than its quota through this host; two hosts writing
//! one namespace at once may each see the other's bytes late.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mini_jetstream::JetStream;

use super::jetstream::js_error;
use crate::bindings::types::Error;

/// Bytes a stored message adds to a record (headers, subject, framing).
const MESSAGE_OVERHEAD: u64 = 128;

/// The quota use of one namespace's streams, as this host counts it.
#[derive(Debug)]
pub(crate) struct StreamUsage {
    js: JetStream,
    namespace: String,
    /// The bytes, once measured.
    bytes: tokio::sync::Mutex<Option<u64>>,
    /// The streams, once counted.
    streams: tokio::sync::Mutex<Option<usize>>,
}

impl StreamUsage {
    /// Counts `records` writes of `bytes` (records' bytes, with mini's
    /// line overhead already) against `quota`, or refuses with `quota`.
    pub(crate) async fn reserve(&self, quota: u64, bytes: u64, records: u64) -> Result<(), Error> {
        if quota == u64::MAX {
            return Ok(());
        }
        let needed = bytes.saturating_add(records.saturating_mul(MESSAGE_OVERHEAD));
        let mut held = self.bytes.lock().await;
        let over = |used: u64| used.saturating_add(needed) > quota;
        let used = match *held {
            Some(used) if !over(used) => used,
            _ => self.measure().await?,
        };
        if over(used) {
            *held = Some(used);
            return Err(Error::Quota(format!(
                "disk quota exceeded: the namespace's streams hold {used} bytes, this write needs about {needed} more, and the quota is {quota} bytes"
            )));
        }
        *held = Some(used + needed);
        Ok(())
    }

    /// The connection.
    pub(crate) fn js(&self) -> &JetStream {
        &self.js
    }

    /// The namespace.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Counts `more` new streams against `max`: `Ok(None)` if taken,
    /// `Ok(Some(held))` if the namespace holds too many for them. Counted on
    /// the servers at the first new stream in this host and when the count
    /// would pass `max`, counted up between.
    pub(crate) async fn admit_streams(
        &self,
        more: usize,
        max: usize,
    ) -> Result<Option<usize>, Error> {
        let mut held = self.streams.lock().await;
        let over = |n: usize| n.saturating_add(more) > max;
        let count = match *held {
            Some(n) if !over(n) => n,
            _ => {
                self.js
                    .namespace_streams(&self.namespace)
                    .await
                    .map_err(js_error)?
                    .0
            }
        };
        *held = Some(count);
        if over(count) {
            return Ok(Some(count));
        }
        *held = Some(count + more);
        Ok(None)
    }

    async fn measure(&self) -> Result<u64, Error> {
        let (_, bytes) = self
            .js
            .namespace_streams(&self.namespace)
            .await
            .map_err(js_error)?;
        Ok(bytes)
    }
}

/// Each namespace's [`StreamUsage`] in one host.
#[derive(Debug, Default)]
pub(crate) struct StreamUsages {
    namespaces: Mutex<HashMap<String, Arc<StreamUsage>>>,
}

impl StreamUsages {
    /// The usage of `namespace` (one per host, shared by its instances).
    pub(crate) fn of(&self, js: &JetStream, namespace: &str) -> Arc<StreamUsage> {
        let mut namespaces = self
            .namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        namespaces
            .entry(namespace.to_owned())
            .or_insert_with(|| {
                Arc::new(StreamUsage {
                    js: js.clone(),
                    namespace: namespace.to_owned(),
                    bytes: tokio::sync::Mutex::new(None),
                    streams: tokio::sync::Mutex::new(None),
                })
            })
            .clone()
    }
}
