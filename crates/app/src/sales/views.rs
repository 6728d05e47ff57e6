//! What the sales API answers.

use chrono::{DateTime, Utc};
use depot_domain::stock::Quantity;
use depot_domain::trade::sales::ReservationStatus;
use depot_domain::trade::{PaymentFlag, PaymentMethod, PaymentState, SoState, line_total};
use depot_store::entity::{
    payment, reservation, sales_order, sales_order_line, sales_return, sales_return_line,
};
use serde::Serialize;
use uuid::Uuid;

use crate::stock::MovementView;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SalesOrderLineView {
    pub id: Uuid,
    pub product_id: Uuid,
    /// In the product's unit.
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    /// Minor units of the order's currency per unit.
    pub unit_price: i64,
    /// `quantity × unit_price`, rounded half up to a minor unit.
    pub total: i64,
    #[schema(value_type = f64)]
    pub fulfilled_quantity: serde_json::Value,
    #[schema(value_type = f64)]
    pub returned_quantity: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReservationView {
    pub id: Uuid,
    pub line_id: Uuid,
    pub batch_id: Uuid,
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    #[schema(value_type = f64)]
    pub returned_quantity: serde_json::Value,
    pub status: ReservationStatus,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SalesOrderView {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub location_id: Uuid,
    /// The customer's owner when the order was made.
    pub owner_id: Uuid,
    pub currency: String,
    pub state: SoState,
    pub notes: Option<String>,
    /// The sum of the lines' totals, in minor units (computed by the server).
    pub total: i64,
    pub amount_paid: i64,
    pub balance_due: i64,
    /// When a confirmed, unpaid order's reservations lapse (absent: they do not).
    pub reserved_until: Option<DateTime<Utc>>,
    pub lines: Vec<SalesOrderLineView>,
    /// The stock held or issued for the order, per batch (on single-order answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<ReservationView>>,
    pub created_by: Option<Uuid>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub fulfilled_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// On the answer to `/fulfil` and `/returns`: the movements written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub movements: Vec<MovementView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    pub sales_order_id: Uuid,
    pub method: PaymentMethod,
    pub state: PaymentState,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub reference: Option<String>,
    /// Our transaction id at the gateway (gateway payments).
    pub tran_id: Option<String>,
    /// Where the buyer pays (a gateway payment while it is pending).
    pub gateway_url: Option<String>,
    /// The gateway's ids of the transaction and of the bank's.
    pub val_id: Option<String>,
    pub bank_tran_id: Option<String>,
    /// The gateway's risk level (1: held for review).
    pub risk_level: Option<i32>,
    /// Why the gateway's word was not believed: `tran_id_mismatch`, `amount_mismatch`,
    /// `currency_mismatch`, `order_not_payable`.
    #[schema(value_type = Option<String>)]
    pub flag: Option<PaymentFlag>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Minor units refunded so far.
    pub refunded: i64,
    pub paid_at: Option<DateTime<Utc>>,
    pub actor_id: Option<Uuid>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReturnLineView {
    pub id: Uuid,
    pub line_id: Uuid,
    pub product_id: Uuid,
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    /// Put back into stock (else written off).
    pub restock: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReturnView {
    pub id: Uuid,
    pub sales_order_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<ReturnLineView>,
}

fn q(thousandths: i64) -> serde_json::Value {
    Quantity::from_thousandths(thousandths).to_json()
}

fn line(l: sales_order_line::Model) -> SalesOrderLineView {
    SalesOrderLineView {
        id: l.id,
        product_id: l.product_id,
        quantity: q(l.quantity),
        unit_price: l.unit_price,
        total: line_total(Quantity::from_thousandths(l.quantity), l.unit_price).unwrap_or(i64::MAX),
        fulfilled_quantity: q(l.fulfilled),
        returned_quantity: q(l.returned),
    }
}

pub(crate) fn reservation(r: reservation::Model) -> ReservationView {
    ReservationView {
        id: r.id,
        line_id: r.line_id,
        batch_id: r.batch_id,
        quantity: q(r.quantity),
        returned_quantity: q(r.returned),
        status: ReservationStatus::parse(&r.status).unwrap_or(ReservationStatus::Active),
    }
}

pub(crate) fn order(
    (h, lines): (sales_order::Model, Vec<sales_order_line::Model>),
) -> SalesOrderView {
    SalesOrderView {
        id: h.id,
        customer_id: h.customer_id,
        location_id: h.location_id,
        owner_id: h.owner_id,
        state: SoState::parse(&h.state).unwrap_or(SoState::Draft),
        notes: h.notes,
        total: h.total,
        amount_paid: h.amount_paid,
        balance_due: h.total - h.amount_paid,
        reserved_until: h.reserved_until,
        lines: lines.into_iter().map(line).collect(),
        reservations: None,
        created_by: h.created_by,
        confirmed_at: h.confirmed_at,
        paid_at: h.paid_at,
        fulfilled_at: h.fulfilled_at,
        cancelled_at: h.cancelled_at,
        created_at: h.created_at,
        updated_at: h.updated_at,
        currency: h.currency,
        movements: Vec::new(),
    }
}

pub(crate) fn payment(p: payment::Model) -> PaymentView {
    PaymentView {
        id: p.id,
        sales_order_id: p.sales_order_id,
        method: PaymentMethod::parse(&p.method).unwrap_or(PaymentMethod::Cash),
        state: PaymentState::parse(&p.state).unwrap_or(PaymentState::Initiated),
        amount: p.amount,
        currency: p.currency,
        reference: p.reference,
        tran_id: p.tran_id,
        gateway_url: p.gateway_url,
        val_id: p.val_id,
        bank_tran_id: p.bank_tran_id,
        risk_level: p.risk_level,
        flag: p.flag.as_deref().and_then(PaymentFlag::parse),
        failure: p.failure,
        refunded: p.refunded,
        paid_at: p.paid_at,
        actor_id: p.actor_id,
        version: p.version,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

pub(crate) fn sales_return(
    (h, lines): (sales_return::Model, Vec<sales_return_line::Model>),
) -> ReturnView {
    ReturnView {
        id: h.id,
        sales_order_id: h.sales_order_id,
        actor_id: h.actor_id,
        created_at: h.created_at,
        lines: lines
            .into_iter()
            .map(|l| ReturnLineView {
                id: l.id,
                line_id: l.sales_order_line_id,
                product_id: l.product_id,
                quantity: q(l.quantity),
                restock: l.restock,
                reason: l.reason,
            })
            .collect(),
    }
}
