//! Customers and their activities.

use chrono::NaiveDate;
use uuid::Uuid;

crate::string_enum! {
    /// `customers.status`.
    pub enum CustomerStatus { Lead = "lead", Active = "active", Inactive = "inactive" }
}

crate::string_enum! {
    /// `activities.kind`.
    pub enum ActivityKind {
        Call = "call",
        Email = "email",
        Meeting = "meeting",
        Note = "note",
        Task = "task",
    }
}

/// Filters of the customer list. Who may see whom is decided by the service, not here.
#[derive(Debug, Clone, Default)]
pub struct CustomerFilter {
    /// Part of the name, email or phone (case-insensitive, literal).
    pub search: Option<String>,
    pub status: Option<CustomerStatus>,
    pub owner_id: Option<Uuid>,
    /// Customers carrying this tag.
    pub tag: Option<String>,
}

/// Filters of a customer's activities.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivityFilter {
    pub kind: Option<ActivityKind>,
    pub done: Option<bool>,
    /// Due on or before this day.
    pub due_before: Option<NaiveDate>,
}
