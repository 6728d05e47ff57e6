//! What the purchasing API answers.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::stock::Quantity;
use depot_domain::trade::PoState;
use depot_store::entity::{purchase_order, purchase_order_line, receipt, receipt_line, supplier};
use depot_store::repo::purchase_orders::ReceiptWithLines;
use serde::Serialize;
use uuid::Uuid;

use crate::stock::MovementView;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SupplierView {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// The currency its orders default to (ISO 4217).
    pub currency: String,
    pub lead_time_days: Option<i32>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PurchaseOrderLineView {
    pub id: Uuid,
    pub product_id: Uuid,
    /// In the product's unit.
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    /// Minor units of the order's currency per unit.
    pub unit_cost: i64,
    /// `quantity × unit_cost`, rounded half up to a minor unit.
    pub total: i64,
    #[schema(value_type = f64)]
    pub received_quantity: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PurchaseOrderView {
    pub id: Uuid,
    pub supplier_id: Uuid,
    pub currency: String,
    pub state: PoState,
    pub expected_at: Option<NaiveDate>,
    pub notes: Option<String>,
    /// The sum of the lines' totals, in minor units (computed by the server).
    pub total: i64,
    pub lines: Vec<PurchaseOrderLineView>,
    pub created_by: Option<Uuid>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// On the answer to `/receive`: the receipt just posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<ReceiptView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptLineView {
    pub id: Uuid,
    /// The purchase-order line received against.
    pub line_id: Uuid,
    pub product_id: Uuid,
    /// The batch the goods went into.
    pub batch_id: Uuid,
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceiptView {
    pub id: Uuid,
    pub purchase_order_id: Uuid,
    pub location_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<ReceiptLineView>,
    /// On the answer to `/receive`: the `receipt` movements written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub movements: Vec<MovementView>,
}

fn q(thousandths: i64) -> serde_json::Value {
    Quantity::from_thousandths(thousandths).to_json()
}

pub(crate) fn supplier(s: supplier::Model) -> SupplierView {
    SupplierView {
        id: s.id,
        name: s.name,
        email: s.email,
        phone: s.phone,
        address: s.address,
        currency: s.currency,
        lead_time_days: s.lead_time_days,
        active: s.active,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn line(l: purchase_order_line::Model) -> PurchaseOrderLineView {
    PurchaseOrderLineView {
        id: l.id,
        product_id: l.product_id,
        quantity: q(l.quantity),
        unit_cost: l.unit_cost,
        total: depot_domain::trade::line_total(Quantity::from_thousandths(l.quantity), l.unit_cost)
            .unwrap_or(i64::MAX),
        received_quantity: q(l.received),
    }
}

pub(crate) fn order(
    (h, lines): (purchase_order::Model, Vec<purchase_order_line::Model>),
) -> PurchaseOrderView {
    PurchaseOrderView {
        id: h.id,
        supplier_id: h.supplier_id,
        currency: h.currency,
        state: PoState::parse(&h.state).unwrap_or(PoState::Draft),
        expected_at: h.expected_at,
        notes: h.notes,
        total: h.total,
        lines: lines.into_iter().map(line).collect(),
        created_by: h.created_by,
        submitted_at: h.submitted_at,
        approved_by: h.approved_by,
        approved_at: h.approved_at,
        sent_at: h.sent_at,
        closed_at: h.closed_at,
        cancelled_at: h.cancelled_at,
        created_at: h.created_at,
        updated_at: h.updated_at,
        receipt: None,
    }
}

pub(crate) fn receipt((h, lines): (receipt::Model, Vec<receipt_line::Model>)) -> ReceiptView {
    ReceiptView {
        id: h.id,
        purchase_order_id: h.purchase_order_id,
        location_id: h.location_id,
        actor_id: h.actor_id,
        created_at: h.created_at,
        lines: lines
            .into_iter()
            .map(|l: receipt_line::Model| ReceiptLineView {
                id: l.id,
                line_id: l.purchase_order_line_id,
                product_id: l.product_id,
                batch_id: l.batch_id,
                quantity: q(l.quantity),
                lot: l.lot,
                expiry: l.expiry,
            })
            .collect(),
        movements: Vec::new(),
    }
}

pub(crate) fn receipts(rows: Vec<ReceiptWithLines>) -> Vec<ReceiptView> {
    rows.into_iter().map(receipt).collect()
}
