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
//!   `l1_max_ttl` (1 s by default), which bounds how stale another instance can be; values
//!   that must be fresh ([`Cache::get_or_load_fresh`]) are bounded so even without Redis, so a
//!   change by another process on the same database (the CLI) takes effect within it.

mod redis_layer;
mod sync;

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
    /// One lock per key being loaded (single flight).
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Flags (key → expiry): authoritative without Redis, kept in step through the sync
    /// channel with it.
    flags: moka::sync::Cache<String, Instant>,
    sync: sync::SyncState,
    stop: tokio_util::sync::CancellationToken,
}

/// Whether the flags asked for alongside a fresh read are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flags {
    /// Known: one entry per flag asked for.
    Known(Vec<bool>),
    /// The shared layer could not be asked: the caller must consult its source of truth.
    Unknown,
}

struct UntilInstant;

impl moka::Expiry<String, Instant> for UntilInstant {
    fn expire_after_create(&self, _: &String, until: &Instant, now: Instant) -> Option<Duration> {
        Some(until.saturating_duration_since(now))
    }
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
            flights: Mutex::new(HashMap::new()),
            flags: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .expire_after(UntilInstant)
                .build(),
            sync: sync::SyncState::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Starts following the sync channel (with Redis; a no-op without). Until the first
    /// heartbeat comes back, fresh reads go to Redis.
    pub fn start_sync(self: &Arc<Self>) {
        if self.l2.is_some() {
            tokio::spawn(self.clone().sync_loop());
        }
    }

    /// Stops following the sync channel.
    pub fn close(&self) {
        self.stop.cancel();
    }

    /// Whether fresh reads can be answered from local state (always without Redis).
    pub fn in_sync(&self) -> bool {
        self.l2.is_none() || self.sync.in_sync()
    }

    fn sync_channel(&self) -> String {
        format!("{}:cache-sync", self.options.namespace)
    }

    fn flag_key(&self, key: &str) -> String {
        format!("{}:flag:{key}", self.options.namespace)
    }

    async fn sync_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stop.is_cancelled() {
            let result = self.follow().await;
            self.sync.set_subscribed(false);
            if self.stop.is_cancelled() {
                break;
            }
            if result.is_err() {
                metrics::counter!("cache_sync_reconnects_total").increment(1);
                tracing::debug!("cache sync channel lost; reading Redis directly until it is back");
            }
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Subscribes, catches up, then applies messages until the connection fails or stop.
    async fn follow(&self) -> Result<(), ()> {
        use futures::StreamExt;
        let Some(l2) = &self.l2 else { return Ok(()) };
        let channel = self.sync_channel();
        let timeout = Duration::from_secs(2);
        let mut pubsub = tokio::time::timeout(timeout, l2.client().get_async_pubsub())
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?;
        tokio::time::timeout(timeout, pubsub.subscribe(&channel))
            .await
            .map_err(|_| ())?
            .map_err(|_| ())?;
        self.catch_up().await?;
        self.sync.set_subscribed(true);
        let heartbeat = sync::SyncMessage::Heartbeat {
            instance: self.sync.instance.clone(),
        }
        .encode();
        let mut stream = pubsub.on_message();
        let mut tick = tokio::time::interval(sync::HEARTBEAT);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    // A failed publish shows as a missing echo.
                    let _ = l2.publish(&channel, &heartbeat).await;
                }
                message = stream.next() => {
                    let Some(message) = message else { return Err(()) };
                    if let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) {
                        self.apply(text);
                    }
                }
            }
        }
    }

    /// After (re)subscribing: the versions of every namespace this process knows, and every
    /// live flag, as Redis has them now. Later changes arrive as messages.
    async fn catch_up(&self) -> Result<(), ()> {
        let Some(l2) = &self.l2 else { return Ok(()) };
        let namespaces: Vec<String> = self
            .versions
            .lock()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        if !namespaces.is_empty() {
            let keys: Vec<String> = namespaces.iter().map(|n| self.version_key(n)).collect();
            let values = l2.mget(&keys).await?;
            for (ns, value) in namespaces.iter().zip(values) {
                self.raise_local_version(ns, parse_version(value));
            }
        }
        let prefix = self.flag_key("");
        for (key, ttl_ms) in l2.scan_with_ttl(&prefix).await? {
            if let Some(flag) = key.strip_prefix(&prefix) {
                self.flags.insert(
                    flag.to_owned(),
                    Instant::now() + Duration::from_millis(ttl_ms),
                );
            }
        }
        Ok(())
    }

    fn apply(&self, text: &str) {
        match sync::SyncMessage::decode(text) {
            Some(sync::SyncMessage::Heartbeat { instance }) if instance == self.sync.instance => {
                self.sync.heard_own_heartbeat();
            }
            Some(sync::SyncMessage::Version {
                id,
                namespace,
                version,
            }) => {
                self.raise_local_version(&namespace, version);
                self.sync.echoed(&id);
            }
            Some(sync::SyncMessage::Flag { id, ttl_ms, key }) => {
                self.flags
                    .insert(key, Instant::now() + Duration::from_millis(ttl_ms));
                self.sync.echoed(&id);
            }
            Some(sync::SyncMessage::Heartbeat { .. }) | None => {}
        }
    }

    /// Publishes `message` (built around a fresh id) and, when this process is in sync,
    /// waits for it to come back, so every subscriber has been handed it.
    async fn broadcast(&self, message: impl FnOnce(String) -> sync::SyncMessage) {
        let Some(l2) = &self.l2 else { return };
        let id = depot_domain::id::new_id().simple().to_string();
        let text = message(id.clone()).encode();
        // Only a process that follows the channel can hear its echo; others do not wait.
        let echo = self.sync.in_sync().then(|| self.sync.expect(&id));
        if l2.publish(&self.sync_channel(), &text).await.is_err() {
            fallback("publish");
            self.sync.lost();
            if echo.is_some() {
                self.sync.echoed(&id);
            }
            return;
        }
        if let Some(echo) = echo {
            self.sync.await_echo(&id, echo).await;
        }
    }

    /// Sets a shared flag for `ttl` (e.g. a denied token id): visible to [`Cache::get_or_load_fresh`]
    /// callers on every instance from their next call.
    pub async fn set_flag(&self, key: &str, ttl: Duration) {
        let ttl = ttl.max(Duration::from_millis(1));
        self.flags.insert(key.to_owned(), Instant::now() + ttl);
        let Some(l2) = &self.l2 else { return };
        if l2.set(&self.flag_key(key), b"1", ttl).await.is_err() {
            fallback("set_flag");
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.broadcast(|id| sync::SyncMessage::Flag {
            id,
            ttl_ms,
            key: key.to_owned(),
        })
        .await;
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
        // Single flight: of the callers missing one key at once, one loads; the others wait
        // for it and read what it cached (after a failure the next one tries).
        let gate = self.gate(&full);
        let loaded = async {
            let _turn = gate.lock().await;
            if let Some(entry) = self.l1.get(&full).await {
                metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "hit")
                    .increment(1);
                return decode(&entry.bytes);
            }
            self.load_through(&full, ttl, load).await
        }
        .await;
        self.release_gate(&full, gate);
        loaded
    }

    /// L2, then the loader; fills both layers.
    async fn load_through<T, F, Fut>(&self, full: &str, ttl: Duration, load: F) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        if let Some(l2) = &self.l2 {
            match l2.get(full).await {
                Ok(Some(bytes)) => {
                    metrics::counter!("cache_requests_total", "layer" => "l2", "result" => "hit")
                        .increment(1);
                    if let Ok(value) = decode::<T>(&bytes) {
                        self.fill_l1(full, bytes.into(), ttl).await;
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
        self.fill_l1(full, bytes.clone(), ttl).await;
        if let Some(l2) = &self.l2
            && l2.set(full, &bytes, ttl).await.is_err()
        {
            fallback("set");
        }
        Ok(value)
    }

    /// The lock that the loaders of `key` take turns on.
    fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.flights.lock() {
            Ok(mut flights) => flights.entry(key.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        }
    }

    /// Forgets the lock of `key` once nobody else holds or waits for it.
    fn release_gate(&self, key: &str, gate: Arc<tokio::sync::Mutex<()>>) {
        drop(gate);
        if let Ok(mut flights) = self.flights.lock()
            && flights.get(key).is_some_and(|g| Arc::strong_count(g) == 1)
        {
            flights.remove(key);
        }
    }

    /// As [`Cache::get_or_load`] for values that must never be stale across instances (who
    /// may do what): an [`Cache::invalidate_namespace`] on any instance takes effect on the next
    /// call everywhere. In sync (see the `sync` module) the namespace version and the `flags`
    /// asked for come from local state; otherwise they are read from Redis in one round trip;
    /// if Redis does not answer, the value comes from the loader and the flags are
    /// [`Flags::Unknown`] — fail closed, never a possibly stale answer. Values live in L1 only.
    pub async fn get_or_load_fresh<T, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        ttl: Duration,
        flags: &[String],
        load: F,
    ) -> AppResult<(T, Flags)>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        let local = self.local_version(namespace);
        let (version, flags) = match (&self.l2, local) {
            (None, _) => (local.map_or(0, |(v, _)| v), self.local_flags(flags)),
            (Some(_), Some((v, _))) if self.sync.in_sync() => {
                metrics::counter!("cache_fresh_reads_total", "source" => "local").increment(1);
                (v, self.local_flags(flags))
            }
            (Some(l2), _) => {
                let mut keys = Vec::with_capacity(flags.len() + 1);
                keys.push(self.version_key(namespace));
                keys.extend(flags.iter().map(|f| self.flag_key(f)));
                match l2.mget(&keys).await {
                    Ok(mut values) if values.len() == keys.len() => {
                        metrics::counter!("cache_fresh_reads_total", "source" => "redis")
                            .increment(1);
                        let v =
                            self.raise_local_version(namespace, parse_version(values.remove(0)));
                        (
                            v,
                            Flags::Known(values.iter().map(Option::is_some).collect()),
                        )
                    }
                    _ => {
                        fallback("version");
                        metrics::counter!("cache_fresh_reads_total", "source" => "loader")
                            .increment(1);
                        return Ok((load().await?, Flags::Unknown));
                    }
                }
            }
        };
        let full = format!("{}:v{version}:{namespace}:{key}", self.options.namespace);
        if let Some(entry) = self.l1.get(&full).await {
            metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "hit")
                .increment(1);
            return Ok((decode(&entry.bytes)?, flags));
        }
        metrics::counter!("cache_requests_total", "layer" => "l1", "result" => "miss").increment(1);
        let value = load().await?;
        let bytes: Arc<[u8]> = serde_json::to_vec(&value)
            .map_err(AppError::internal)?
            .into();
        // Bounded by `l1_max_ttl` even without Redis: another process on the same database
        // (the CLI signing a user out, a separate worker) is seen within that bound.
        self.fill_l1(&full, bytes, ttl.min(self.options.l1_max_ttl))
            .await;
        Ok((value, flags))
    }

    fn local_flags(&self, flags: &[String]) -> Flags {
        Flags::Known(flags.iter().map(|f| self.flags.contains_key(f)).collect())
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
        self.broadcast(|id| sync::SyncMessage::Version {
            id,
            namespace: namespace.to_owned(),
            version,
        })
        .await;
    }

    async fn key(&self, namespace: &str, key: &str) -> String {
        let version = self.version(namespace).await;
        format!("{}:v{version}:{namespace}:{key}", self.options.namespace)
    }

    fn version_key(&self, namespace: &str) -> String {
        format!("{}:cache-version:{namespace}", self.options.namespace)
    }

    /// The namespace's current version as this process knows it (bumped by every
    /// invalidation anywhere): a cheap "did anything change" for a watcher.
    pub async fn namespace_version(&self, namespace: &str) -> u64 {
        self.version(namespace).await
    }

    async fn version(&self, namespace: &str) -> u64 {
        let cached = self.local_version(namespace);
        let Some(l2) = &self.l2 else {
            return cached.map_or(0, |(v, _)| v);
        };
        // Following the sync channel, every invalidation anywhere reaches the local copy as it
        // happens; otherwise it is trusted for `l1_max_ttl` at most.
        if let Some((v, at)) = cached
            && (self.sync.in_sync() || at.elapsed() < self.options.l1_max_ttl)
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

    /// Moves the local version up to `version` (never down: versions only grow); returns the
    /// local version after.
    fn raise_local_version(&self, namespace: &str, version: u64) -> u64 {
        let Ok(mut versions) = self.versions.lock() else {
            return version;
        };
        let entry = versions
            .entry(namespace.to_owned())
            .or_insert((version, Instant::now()));
        entry.0 = entry.0.max(version);
        entry.1 = Instant::now();
        entry.0
    }

    fn set_local_version(&self, namespace: &str, version: u64) {
        self.raise_local_version(namespace, version);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_misses_load_once() {
        let cache = Arc::new(memory());
        let loads = Arc::new(AtomicU32::new(0));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (cache, loads) = (cache.clone(), loads.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load("ns", "cold", Duration::from_secs(60), || async {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok(11u32)
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.ok().and_then(Result::ok), Some(11));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(cache.flights.lock().map(|f| f.is_empty()).unwrap_or(false));
    }

    #[tokio::test]
    async fn errors_are_never_cached() {
        let cache = memory();
        let failed: AppResult<u32> = cache
            .get_or_load("ns", "k", Duration::from_secs(60), || async {
                Err(AppError::new(
                    depot_domain::ErrorCode::ServiceUnavailable,
                    "down",
                ))
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
