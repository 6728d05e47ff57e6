//! Stock rules, pure: exact quantities in a product's unit, depletion policies and the planner
//! that decides which batches an issue takes from.

pub mod alert;
pub mod gs1;
pub mod plan;
pub mod quantity;

pub use alert::{AlertKind, AlertStatus};
pub use plan::{BatchStock, Plan, Shortfall, Take, plan_issue};
pub use quantity::{Quantity, QuantityError, Unit};

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

crate::string_enum! {
    /// `products.status`: an archived product takes no new stock; what it has can still go out.
    pub enum ProductStatus { Active = "active", Archived = "archived" }
}

crate::string_enum! {
    /// `batches.status`: a batch that reaches zero is closed (kept, never deleted).
    pub enum BatchStatus { Open = "open", Closed = "closed" }
}

crate::string_enum! {
    /// `stock_movements.kind`: why a batch's quantity changed.
    pub enum MovementKind {
        Receipt = "receipt",
        Issue = "issue",
        Adjustment = "adjustment",
        TransferOut = "transfer_out",
        TransferIn = "transfer_in",
        Count = "count",
        Sale = "sale",
        Return = "return",
    }
}

crate::string_enum! {
    /// The document a movement belongs to (`stock_movements.reference_type`).
    pub enum ReferenceType {
        Transfer = "transfer",
        Count = "count",
        PurchaseOrder = "purchase_order",
        SalesOrder = "sales_order",
    }
}

crate::string_enum! {
    /// Why stock was adjusted by hand; `other` needs a note.
    pub enum AdjustmentReason {
        Initial = "initial",
        Found = "found",
        Damaged = "damaged",
        Expired = "expired",
        Lost = "lost",
        Theft = "theft",
        CountCorrection = "count_correction",
        Return = "return",
        Other = "other",
    }
}

/// Filters of the product list.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    /// Part of the SKU, name or barcode (case-insensitive, literal).
    pub search: Option<String>,
    pub category_id: Option<Uuid>,
    pub status: Option<ProductStatus>,
}

/// Filters of the level list.
#[derive(Debug, Clone, Copy, Default)]
pub struct LevelFilter {
    pub product_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
}

/// Filters of the batch list.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchFilter {
    pub product_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
    /// Only batches expiring strictly before this day.
    pub expiring_before: Option<NaiveDate>,
    /// Closed (empty) batches too.
    pub include_closed: bool,
}

/// Filters of the ledger.
#[derive(Debug, Clone, Default)]
pub struct MovementFilter {
    pub product_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
    pub batch_id: Option<Uuid>,
    pub kind: Option<MovementKind>,
    pub reference_type: Option<ReferenceType>,
    pub reference_id: Option<Uuid>,
    /// From this instant, inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Until this instant, exclusive.
    pub to: Option<DateTime<Utc>>,
}

/// Filters of the alert list.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertFilter {
    pub kind: Option<AlertKind>,
    pub status: Option<AlertStatus>,
    pub product_id: Option<Uuid>,
    pub location_id: Option<Uuid>,
}

crate::string_enum! {
    /// Which batches an issue takes first. A product's own policy beats its category's, which
    /// beats the configured default.
    pub enum DepletionPolicy {
        /// Earliest expiry first; batches without expiry last; then oldest receipt, then id.
        Fefo = "fefo",
        /// Oldest receipt first, then id.
        Fifo = "fifo",
        /// Newest receipt first, then the greatest id.
        Lifo = "lifo",
    }
}

impl DepletionPolicy {
    /// The policy in force: the product's override, else its category's, else the default.
    pub fn resolve(product: Option<Self>, category: Option<Self>, default: Self) -> Self {
        product.or(category).unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_product_override_beats_its_category_which_beats_the_default() {
        use DepletionPolicy::{Fefo, Fifo, Lifo};
        assert_eq!(DepletionPolicy::resolve(Some(Lifo), Some(Fifo), Fefo), Lifo);
        assert_eq!(DepletionPolicy::resolve(None, Some(Fifo), Fefo), Fifo);
        assert_eq!(DepletionPolicy::resolve(None, None, Fefo), Fefo);
    }
}
