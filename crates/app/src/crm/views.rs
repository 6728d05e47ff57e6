//! What the CRM API answers.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::trade::{ActivityKind, CustomerStatus};
use depot_store::entity::{activity, customer, customer_contact};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub status: CustomerStatus,
    pub tags: Vec<String>,
    /// The sales user who owns the customer.
    pub owner_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ContactView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Their role at the customer ("Purchasing", "Accounts").
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// Follows the customer's owner while the activity is open.
    pub owner_id: Uuid,
    pub kind: ActivityKind,
    pub subject: String,
    pub body: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub done: bool,
    pub done_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) fn tags_of(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

pub(crate) fn customer(c: customer::Model) -> CustomerView {
    CustomerView {
        id: c.id,
        status: CustomerStatus::parse(&c.status).unwrap_or(CustomerStatus::Lead),
        tags: tags_of(&c.tags),
        name: c.name,
        email: c.email,
        phone: c.phone,
        address: c.address,
        owner_id: c.owner_id,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

pub(crate) fn contact(c: customer_contact::Model) -> ContactView {
    ContactView {
        id: c.id,
        customer_id: c.customer_id,
        name: c.name,
        email: c.email,
        phone: c.phone,
        role: c.role,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

pub(crate) fn activity(a: activity::Model) -> ActivityView {
    ActivityView {
        id: a.id,
        customer_id: a.customer_id,
        owner_id: a.owner_id,
        kind: ActivityKind::parse(&a.kind).unwrap_or(ActivityKind::Note),
        subject: a.subject,
        body: a.body,
        due_date: a.due_date,
        done: a.done,
        done_at: a.done_at,
        created_by: a.created_by,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

/// What the audit log keeps of a customer or contact: personal data (email, phone, address)
/// only as whether it is set, never its value.
pub(crate) fn redacted(view: &impl Serialize) -> serde_json::Value {
    let mut value = serde_json::to_value(view).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        for field in ["email", "phone", "address"] {
            if let Some(v) = object.get_mut(field)
                && !v.is_null()
            {
                *v = serde_json::Value::from("***");
            }
        }
    }
    value
}
