//! Which event types the active webhooks take, known on every instance without a query per
//! event: the `webhooks` consumer asks it of every event it receives, and most events (every
//! stock change) concern no webhook. The set is cached per instance (at most the cache's
//! `l1_max_ttl`, 1 s by default) and re-read on the next event after any webhook is created,
//! changed or deleted anywhere: a cache namespace retired just after the change commits (see
//! [`Cache::get_or_load_fresh`]; the instance that changed it waits for the retirement to reach
//! the others). An event consumed in the instant between a webhook's commit and that
//! retirement is judged by the set before the change — as if it had been consumed a moment
//! earlier; the event is acknowledged, not delivered to the new webhook.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use depot_adapters::cache::Cache;
use depot_domain::AppResult;
use depot_store::Db;
use depot_store::repo::webhooks;

use super::ALL_EVENTS;
use crate::uow::UnitOfWork;

const NAMESPACE: &str = "webhook-subscriptions";
/// How long one instance keeps the set when nothing tells it of a change (the cache caps it
/// at its `l1_max_ttl`).
const TTL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Subscriptions {
    cache: Arc<Cache>,
    db: Db,
}

impl Subscriptions {
    pub fn new(cache: Arc<Cache>, db: Db) -> Self {
        Self { cache, db }
    }

    /// Whether any active webhook takes events of `event_type`.
    pub async fn any_for(&self, event_type: &str) -> AppResult<bool> {
        let db = self.db.clone();
        let (types, _) = self
            .cache
            .get_or_load_fresh(NAMESPACE, "active", TTL, &[], || async move {
                let active = webhooks::active(db.reader()).await?;
                Ok(active
                    .iter()
                    .flat_map(|w| event_types(&w.event_types))
                    .collect::<BTreeSet<String>>())
            })
            .await?;
        Ok(takes(&types, event_type))
    }

    /// Once `uow` has committed a change to a webhook, every instance reads the set again.
    pub fn changed_after_commit(&self, uow: &mut UnitOfWork) {
        let cache = self.cache.clone();
        uow.after_commit(move || async move { cache.invalidate_namespace(NAMESPACE).await });
    }
}

/// Whether subscribing to `types` takes events of `event_type`.
pub(crate) fn takes<'a>(types: impl IntoIterator<Item = &'a String>, event_type: &str) -> bool {
    types
        .into_iter()
        .any(|t| t == ALL_EVENTS || t == event_type)
}

/// The event types a webhook row subscribes to (stored as a JSON array).
pub(crate) fn event_types(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}
