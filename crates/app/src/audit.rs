//! The audit log as the services see it: one entry per security-relevant action, written by
//! the unit of work of the change ([`crate::uow::UnitOfWork::audit`]), and the list for
//! auditors ([`AuditService`]).

use chrono::{DateTime, Utc};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::{Actor, AppResult};
use depot_store::entity::audit_log;
use depot_store::repo::audit::{self, NewAuditEntry};
use depot_store::{DatabaseTransaction, Db};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::client::ClientInfo;

pub use depot_domain::audit::AuditFilter;

/// One action to record.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// Who acted, when not the unit of work's actor (e.g. the account a failed sign-in
    /// targeted).
    pub actor: Option<Actor>,
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

    /// Records `actor` as the one who acted instead of the unit of work's actor.
    pub fn by(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
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

/// Appends `entry` inside `tx`; `actor` acts unless the entry names another.
pub(crate) async fn record(
    tx: &DatabaseTransaction,
    now: DateTime<Utc>,
    actor: Actor,
    client: &ClientInfo,
    entry: AuditEntry,
) -> AppResult<()> {
    let actor = entry.actor.unwrap_or(actor);
    audit::append(
        tx,
        now,
        NewAuditEntry {
            actor_id: actor.user_id(),
            actor_name: actor.system_name().map(str::to_owned),
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

/// An audit entry as auditors see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The user who acted; absent when the system acted (see `actor_name`).
    pub actor_id: Option<Uuid>,
    /// The system actor (`cli`, a job) when no user acted.
    pub actor_name: Option<String>,
    /// e.g. `login.failure`, `role.updated`, `auth.token_reuse`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl From<audit_log::Model> for AuditEntryView {
    fn from(m: audit_log::Model) -> Self {
        Self {
            id: m.id,
            occurred_at: m.occurred_at,
            actor_id: m.actor_id,
            actor_name: m.actor_name,
            action: m.action,
            target_type: m.target_type,
            target_id: m.target_id,
            request_id: m.request_id,
            ip: m.ip,
            before: m.before,
            after: m.after,
            details: m.details,
        }
    }
}

/// Reads the audit log.
#[derive(Clone)]
pub struct AuditService {
    db: Db,
}

impl AuditService {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Lists the audit log, newest first.
    pub async fn list(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> AppResult<Page<AuditEntryView>> {
        let page = audit::list(self.db.reader(), filter, page).await?;
        Ok(Page {
            data: page.data.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })
    }
}

/// A view as the audit log keeps it (`before`/`after`).
pub(crate) fn audit_json(view: &impl Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}
