//! The audit log as the services see it: one call per security-relevant action, inside the
//! transaction of the change, and the list for auditors.

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::pagination::{Page, PageRequest};
use depot_store::entity::audit_log;
use depot_store::repo::audit::{self, AuditFilter, NewAuditEntry};
use depot_store::{DatabaseTransaction, Db};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::ClientInfo;

/// One action to record.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub actor_id: Option<Uuid>,
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub details: Option<Value>,
}

impl AuditEntry {
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            ..Self::default()
        }
    }

    pub fn actor(mut self, actor: Uuid) -> Self {
        self.actor_id = Some(actor);
        self
    }

    pub fn target(mut self, kind: &'static str, id: impl ToString) -> Self {
        self.target_type = Some(kind);
        self.target_id = Some(id.to_string());
        self
    }

    pub fn change(mut self, before: Value, after: Value) -> Self {
        self.before = Some(before);
        self.after = Some(after);
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

pub async fn record(
    tx: &DatabaseTransaction,
    now: DateTime<Utc>,
    client: &ClientInfo,
    entry: AuditEntry,
) -> AppResult<()> {
    audit::append(
        tx,
        now,
        NewAuditEntry {
            actor_id: entry.actor_id,
            action: entry.action.to_owned(),
            target_type: entry.target_type.map(str::to_owned),
            target_id: entry.target_id,
            request_id: client.request_id.clone(),
            ip: client.ip.clone(),
            before: entry.before,
            after: entry.after,
            details: entry.details,
        },
    )
    .await
    .map(|_| ())
}

/// Lists the audit log, newest first.
pub async fn list(
    db: &Db,
    filter: &AuditFilter,
    page: &PageRequest,
) -> AppResult<Page<audit_log::Model>> {
    audit::list(db.reader(), filter, page).await
}
