//! What the stock routes answer. Quantities are JSON numbers in the product's unit (exact:
//! at most three decimals), money integer minor units with its currency.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::stock::{BatchStatus, MovementKind, Quantity, ReferenceType};
use depot_store::entity::{batch, stock_count_line, stock_level, stock_movement};
use depot_store::repo::counts::CountWithLines;
use depot_store::repo::transfers::TransferWithLines;
use serde::Serialize;
use uuid::Uuid;

fn q(thousandths: i64) -> serde_json::Value {
    Quantity::from_thousandths(thousandths).to_json()
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LevelView {
    pub product_id: Uuid,
    pub location_id: Uuid,
    #[schema(value_type = f64)]
    pub on_hand: serde_json::Value,
    /// Absent in an `as_of` answer: the ledger records on-hand quantities only.
    #[schema(value_type = Option<f64>)]
    pub reserved: serde_json::Value,
    /// `on_hand − reserved`; absent in an `as_of` answer.
    #[schema(value_type = Option<f64>)]
    pub available: serde_json::Value,
}

pub(crate) fn level(l: stock_level::Model) -> LevelView {
    LevelView {
        product_id: l.product_id,
        location_id: l.location_id,
        on_hand: q(l.on_hand),
        reserved: q(l.reserved),
        available: q(l.on_hand - l.reserved),
    }
}

pub(crate) fn level_as_of((product, location, on_hand): (Uuid, Uuid, i64)) -> LevelView {
    LevelView {
        product_id: product,
        location_id: location,
        on_hand: q(on_hand),
        reserved: serde_json::Value::Null,
        available: serde_json::Value::Null,
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BatchView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    /// Minor units of `currency` per unit of the product.
    pub unit_cost: Option<i64>,
    pub currency: Option<String>,
    pub received_at: DateTime<Utc>,
    pub status: BatchStatus,
}

pub(crate) fn batch(b: batch::Model) -> BatchView {
    BatchView {
        id: b.id,
        product_id: b.product_id,
        location_id: b.location_id,
        quantity: q(b.quantity),
        status: BatchStatus::parse(&b.status).unwrap_or(BatchStatus::Open),
        lot: b.lot,
        expiry: b.expiry,
        unit_cost: b.unit_cost,
        currency: b.currency,
        received_at: b.received_at,
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MovementView {
    pub id: Uuid,
    pub product_id: Uuid,
    pub location_id: Uuid,
    pub batch_id: Uuid,
    pub kind: MovementKind,
    /// Signed: positive in, negative out.
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    /// The batch's quantity after this movement.
    #[schema(value_type = f64)]
    pub balance_after: serde_json::Value,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub actor_id: Option<Uuid>,
    /// The system actor (a job, the CLI) when no user acted.
    pub actor_name: Option<String>,
    pub reference_type: Option<ReferenceType>,
    pub reference_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn movement(m: stock_movement::Model) -> MovementView {
    MovementView {
        id: m.id,
        product_id: m.product_id,
        location_id: m.location_id,
        batch_id: m.batch_id,
        kind: MovementKind::parse(&m.kind).unwrap_or(MovementKind::Adjustment),
        quantity: q(m.quantity),
        balance_after: q(m.balance_after),
        reason: m.reason,
        note: m.note,
        actor_id: m.actor_id,
        actor_name: m.actor_name,
        reference_type: m.reference_type.as_deref().and_then(ReferenceType::parse),
        reference_id: m.reference_id,
        request_id: m.request_id,
        created_at: m.created_at,
    }
}

/// An adjustment's answer: the movements written and the level after.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdjustmentView {
    pub movements: Vec<MovementView>,
    pub level: LevelView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransferLineView {
    pub product_id: Uuid,
    #[schema(value_type = f64)]
    pub quantity: serde_json::Value,
    pub batch_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransferView {
    pub id: Uuid,
    pub from_location_id: Uuid,
    pub to_location_id: Uuid,
    pub note: Option<String>,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<TransferLineView>,
    /// The transfer_out and transfer_in movements (in the detail and the create answer).
    pub movements: Vec<MovementView>,
}

pub(crate) fn transfer(
    (head, lines): TransferWithLines,
    movements: Vec<stock_movement::Model>,
) -> TransferView {
    TransferView {
        id: head.id,
        from_location_id: head.from_location_id,
        to_location_id: head.to_location_id,
        note: head.note,
        actor_id: head.actor_id,
        created_at: head.created_at,
        lines: lines
            .into_iter()
            .map(|l| TransferLineView {
                product_id: l.product_id,
                quantity: q(l.quantity),
                batch_id: l.batch_id,
            })
            .collect(),
        movements: movements.into_iter().map(movement).collect(),
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CountLineView {
    pub batch_id: Uuid,
    pub product_id: Uuid,
    /// What the batch held when the count was posted.
    #[schema(value_type = f64)]
    pub expected: serde_json::Value,
    #[schema(value_type = f64)]
    pub counted: serde_json::Value,
    /// `counted − expected`, posted as a `count` movement when not zero.
    #[schema(value_type = f64)]
    pub difference: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CountView {
    pub id: Uuid,
    pub location_id: Uuid,
    pub note: Option<String>,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<CountLineView>,
    /// The count movements (in the detail and the create answer).
    pub movements: Vec<MovementView>,
}

fn count_line(l: stock_count_line::Model) -> CountLineView {
    CountLineView {
        batch_id: l.batch_id,
        product_id: l.product_id,
        expected: q(l.expected),
        counted: q(l.counted),
        difference: q(l.difference),
    }
}

pub(crate) fn count(
    (head, lines): CountWithLines,
    movements: Vec<stock_movement::Model>,
) -> CountView {
    CountView {
        id: head.id,
        location_id: head.location_id,
        note: head.note,
        actor_id: head.actor_id,
        created_at: head.created_at,
        lines: lines.into_iter().map(count_line).collect(),
        movements: movements.into_iter().map(movement).collect(),
    }
}
