//! The cache: an in-process L1 (moka, bounded, per-entry TTL) in front of an optional shared L2
//! (Redis).
//!
//! - [`Cache::get_or_load`] is the only read path: L1, then L2, then the loader (the source of
//!   truth). A loaded value is written to both layers; a loader *error* is returned and never
//!   cached.
//! - If Redis fails or is slow, the read falls through to the loader and
//!   `cache_fallbacks_total` counts it; a request never fails because the cache is down. After a
//!   failure Redis is skipped for a short cool-down so a dead Redis costs no latency.
//! - Keys are versioned per namespace (`<ns>:v<n>:<ns>:<key>`): [`Cache::invalidate_namespace`]
//!   bumps the version (shared through Redis), which retires every key of the namespace at
//!   once; [`Cache::invalidate`] deletes one key. With Redis, L1 entries live at most
//!   `l1_max_ttl` (1 s by default), which bounds how stale another instance can be.

mod redis_layer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use depot_domain::{AppError, AppResult};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use redis_layer::RedisLayer;

#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        _now: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Tuning of the cache.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Entries kept in L1 at most.
    pub l1_capacity: u64,
    /// Upper bound of an L1 entry's life when an L2 is shared between instances.
    pub l1_max_ttl: Duration,
    /// Key prefix in Redis, so deployments can share a database.
    pub namespace: String,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            l1_capacity: 10_000,
            l1_max_ttl: Duration::from_secs(1),
            namespace: "depot".into(),
        }
    }
}

pub struct Cache {
    l1: moka::future::Cache<String, Entry>,
    l2: Option<RedisLayer>,
    options: CacheOptions,
    /// Local namespace versions: authoritative without Redis, an L1 copy with it.
    versions: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Cache {
    pub fn new(l2: Option<RedisLayer>, options: CacheOptions) -> Self {
        Self {
            l1: moka::future::Cache::builder()
                .max_capacity(options.l1_capacity)
                .expire_after(PerEntryTtl)
                .build(),
            l2,
            options,
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// `"memory"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        if self.l2.is_some() { "redis" } else { "memory" }
    }

    /// Returns the cached value of `key` in `namespace`, or loads, caches and returns it.
    pub async fn get_or_load<T, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        ttl: Duration,
        load: F,
    ) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        let full = self.key(namespace, key).await;
        if let Some(entry) = self.l1.get(&full).await {
            metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "hit")
                .increment(1);
            return decode(&entry.bytes);
        }
        metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "miss").increment(1);
        if let Some(l2) = &self.l2 {
            match l2.get(&full).await {
                Ok(Some(bytes)) => {
                    metrics::counter!("cache_requests_total", "layer" => "l2", "result" => "hit")
                        .increment(1);
                    if let Ok(value) = decode::<T>(&bytes) {
                        self.fill_l1(&full, bytes.into(), ttl).await;
                        return Ok(value);
                    }
                }
                Ok(None) => {
                    metrics::counter!("cache_requests_total", "layer" => "l2", "result" => "miss")
                        .increment(1);
                }
                Err(()) => fallback("get"),
            }
        }
        let value = load().await?;
        let bytes: Arc<[u8]> = serde_json::to_vec(&value)
            .map_err(AppError::internal)?
            .into();
        self.fill_l1(&full, bytes.clone(), ttl).await;
        if let Some(l2) = &self.l2
            && l2.set(&full, &bytes, ttl).await.is_err()
        {
            fallback("set");
        }
        Ok(value)
    }

    /// As [`Cache::get_or_load`] for values that must never be stale across instances (who
    /// may do what): the namespace version is read from the shared layer on *every* call, so an
    /// [`Cache::invalidate_namespace`] on any instance takes effect on the next call everywhere.
    /// Values live in L1 only. If the shared layer cannot be asked, the value comes from the
    /// loader — fail closed, never a possibly stale answer.
    ///
    /// `also` names further shared keys to read in the same round trip; their values are
    /// returned (`None` when there is no shared layer or it did not answer).
    pub async fn get_or_load_fresh<T, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        ttl: Duration,
        also: &[String],
        load: F,
    ) -> AppResult<(T, Option<Vec<Option<Vec<u8>>>>)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        let (version, extra) = match &self.l2 {
            None => (self.local_version(namespace).map_or(0, |(v, _)| v), None),
            Some(l2) => {
                let mut keys = Vec::with_capacity(also.len() + 1);
                keys.push(self.version_key(namespace));
                keys.extend_from_slice(also);
                match l2.mget(&keys).await {
                    Ok(mut values) if values.len() == keys.len() => {
                        let v = parse_version(values.remove(0));
                        self.set_local_version(namespace, v);
                        (v, Some(values))
                    }
                    _ => {
                        fallback("version");
                        return Ok((load().await?, None));
                    }
                }
            }
        };
        let full = format!("{}:v{version}:{namespace}:{key}", self.options.namespace);
        if let Some(entry) = self.l1.get(&full).await {
            metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "hit")
                .increment(1);
            return Ok((decode(&entry.bytes)?, extra));
        }
        metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "miss").increment(1);
        let value = load().await?;
        let bytes: Arc<[u8]> = serde_json::to_vec(&value)
            .map_err(AppError::internal)?
            .into();
        self.fill_l1(&full, bytes, ttl).await;
        Ok((value, extra))
    }

    /// The shared layer, for adapters that need shared state beyond caching (denylist, rate
    /// limit counters). `None` in the embedded setup.
    pub fn shared(&self) -> Option<&RedisLayer> {
        self.l2.as_ref()
    }

    /// Prefix for keys that other components keep in the shared layer.
    pub fn key_prefix(&self) -> &str {
        &self.options.namespace
    }

    /// Forgets one key everywhere.
    pub async fn invalidate(&self, namespace: &str, key: &str) {
        let full = self.key(namespace, key).await;
        self.l1.invalidate(&full).await;
        if let Some(l2) = &self.l2
            && l2.delete(&full).await.is_err()
        {
            fallback("delete");
        }
    }

    /// Retires every key of `namespace` by moving it to a new version.
    pub async fn invalidate_namespace(&self, namespace: &str) {
        let local_next = self.local_version(namespace).map_or(1, |(v, _)| v + 1);
        let version = match &self.l2 {
            Some(l2) => match l2.incr(&self.version_key(namespace)).await {
                Ok(v) => v,
                Err(()) => {
                    fallback("invalidate");
                    local_next
                }
            },
            None => local_next,
        };
        self.set_local_version(namespace, version);
    }

    async fn key(&self, namespace: &str, key: &str) -> String {
        let version = self.version(namespace).await;
        format!("{}:v{version}:{namespace}:{key}", self.options.namespace)
    }

    fn version_key(&self, namespace: &str) -> String {
        format!("{}:cache-version:{namespace}", self.options.namespace)
    }

    async fn version(&self, namespace: &str) -> u64 {
        let cached = self.local_version(namespace);
        let Some(l2) = &self.l2 else {
            return cached.map_or(0, |(v, _)| v);
        };
        if let Some((v, at)) = cached
            && at.elapsed() < self.options.l1_max_ttl
        {
            return v;
        }
        match l2.get(&self.version_key(namespace)).await {
            Ok(bytes) => {
                let v = parse_version(bytes);
                self.set_local_version(namespace, v);
                v
            }
            Err(()) => {
                fallback("version");
                cached.map_or(0, |(v, _)| v)
            }
        }
    }

    fn local_version(&self, namespace: &str) -> Option<(u64, Instant)> {
        self.versions.lock().ok()?.get(namespace).copied()
    }

    fn set_local_version(&self, namespace: &str, version: u64) {
        if let Ok(mut versions) = self.versions.lock() {
            versions.insert(namespace.to_owned(), (version, Instant::now()));
        }
    }

    async fn fill_l1(&self, key: &str, bytes: Arc<[u8]>, ttl: Duration) {
        let ttl = if self.l2.is_some() {
            ttl.min(self.options.l1_max_ttl)
        } else {
            ttl
        };
        self.l1.insert(key.to_owned(), Entry { bytes, ttl }).await;
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> AppResult<T> {
    serde_json::from_slice(bytes).map_err(AppError::internal)
}

fn parse_version(bytes: Option<Vec<u8>>) -> u64 {
    bytes
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn fallback(op: &'static str) {
    metrics::counter!("cache_fallbacks_total", "op" => op).increment(1);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn memory() -> Cache {
        Cache::new(None, CacheOptions::default())
    }

    #[tokio::test]
    async fn loads_once_then_serves_from_memory() {
        let cache = memory();
        let loads = AtomicU32::new(0);
        for _ in 0..3 {
            let v: u32 = cache
                .get_or_load("ns", "k", Duration::from_secs(60), || async {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(7)
                })
                .await
                .unwrap_or_default();
            assert_eq!(v, 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn errors_are_never_cached() {
        let cache = memory();
        let failed: AppResult<u32> = cache
            .get_or_load("ns", "k", Duration::from_secs(60), || async {
                Err(AppError::unavailable("x.down", "down"))
            })
            .await;
        assert!(failed.is_err());
        let ok: u32 = cache
            .get_or_load("ns", "k", Duration::from_secs(60), || async { Ok(5) })
            .await
            .unwrap_or_default();
        assert_eq!(ok, 5);
    }

    #[tokio::test]
    async fn invalidation_by_key_and_by_namespace() {
        let cache = memory();
        let get = |v: u32| {
            cache.get_or_load(
                "ns",
                "k",
                Duration::from_secs(60),
                move || async move { Ok(v) },
            )
        };
        assert_eq!(get(1).await.unwrap_or_default(), 1);
        assert_eq!(get(2).await.unwrap_or_default(), 1, "cached");
        cache.invalidate("ns", "k").await;
        assert_eq!(get(3).await.unwrap_or_default(), 3);
        cache.invalidate_namespace("ns").await;
        assert_eq!(get(4).await.unwrap_or_default(), 4);
        let other: u32 = cache
            .get_or_load("other", "k", Duration::from_secs(60), || async { Ok(9) })
            .await
            .unwrap_or_default();
        assert_eq!(other, 9);
    }

    #[tokio::test]
    async fn entries_expire_after_their_ttl() {
        let cache = memory();
        let first: u32 = cache
            .get_or_load("ns", "k", Duration::from_millis(50), || async { Ok(1) })
            .await
            .unwrap_or_default();
        assert_eq!(first, 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        let second: u32 = cache
            .get_or_load("ns", "k", Duration::from_millis(50), || async { Ok(2) })
            .await
            .unwrap_or_default();
        assert_eq!(second, 2);
    }
}
