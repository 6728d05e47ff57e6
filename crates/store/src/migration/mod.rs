//! Versioned schema migrations, one set for SQLite and PostgreSQL, embedded in the binary.
//!
//! Run them with `depot migrate up|down|status`; dev profiles auto-migrate on start, prod never
//! does. Every enum-like column is also checked by the database (`CHECK (… IN (…))`).

use sea_orm_migration::prelude::*;

mod m20261128_000001_platform;
mod m20261128_000002_messaging;
mod m20261128_000003_outbound_email;
mod m20261128_000004_identity;
mod m20261129_000005_audit_actor_name;
mod m20261129_000006_stock;
mod m20261130_000007_trade;
mod m20261201_000008_imports;
mod m20261202_000009_payments;
mod m20261203_000010_ledger_reference_partial;
mod m20261204_000011_notifications;
mod m20261205_000012_reports;
mod m20261206_000013_idempotency_committed;
mod m20261207_000014_outbox_traceparent;
mod m20261208_000015_append_only_always;
mod parts;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_platform::Migration),
            Box::new(m20261128_000002_messaging::Migration),
            Box::new(m20261128_000003_outbound_email::Migration),
            Box::new(m20261128_000004_identity::Migration),
            Box::new(m20261129_000005_audit_actor_name::Migration),
            Box::new(m20261129_000006_stock::Migration),
            Box::new(m20261130_000007_trade::Migration),
            Box::new(m20261201_000008_imports::Migration),
            Box::new(m20261202_000009_payments::Migration),
            Box::new(m20261203_000010_ledger_reference_partial::Migration),
            Box::new(m20261204_000011_notifications::Migration),
            Box::new(m20261205_000012_reports::Migration),
            Box::new(m20261206_000013_idempotency_committed::Migration),
            Box::new(m20261207_000014_outbox_traceparent::Migration),
            Box::new(m20261208_000015_append_only_always::Migration),
        ]
    }
}

// The values each enum-like column allows come from the domain's state enums, so the
// database's CHECK and the code can never disagree.
use depot_domain::state::{
    EmailStatus, IdempotencyStatus, JobStatus, OutboxStatus, RefreshTokenStatus, UserStatus,
};

/// Values allowed in `jobs.status`.
pub const JOB_STATUSES: &[&str] = JobStatus::VALUES;
/// Values allowed in `outbox.status`.
pub const OUTBOX_STATUSES: &[&str] = OutboxStatus::VALUES;
/// Values allowed in `idempotency_keys.status`.
pub const IDEMPOTENCY_STATUSES: &[&str] = IdempotencyStatus::VALUES;
/// Values allowed in `outbound_emails.status`.
pub const EMAIL_STATUSES: &[&str] = EmailStatus::VALUES;
/// Values allowed in `users.status`.
pub const USER_STATUSES: &[&str] = UserStatus::VALUES;
/// Values allowed in `refresh_tokens.status`.
pub const REFRESH_TOKEN_STATUSES: &[&str] = RefreshTokenStatus::VALUES;

use depot_domain::stock::{
    AlertKind, AlertStatus, BatchStatus, DepletionPolicy, MovementKind, ProductStatus, Unit,
};

/// Values allowed in `products.unit`.
pub const UNITS: &[&str] = Unit::VALUES;
/// Values allowed in `products.status`.
pub const PRODUCT_STATUSES: &[&str] = ProductStatus::VALUES;
/// Values allowed in `products.depletion_policy` and `categories.depletion_policy`.
pub const DEPLETION_POLICIES: &[&str] = DepletionPolicy::VALUES;
/// Values allowed in `batches.status`.
pub const BATCH_STATUSES: &[&str] = BatchStatus::VALUES;
/// Values allowed in `stock_movements.kind`.
pub const MOVEMENT_KINDS: &[&str] = MovementKind::VALUES;
/// Values allowed in `alerts.kind`.
pub const ALERT_KINDS: &[&str] = AlertKind::VALUES;
/// Values allowed in `alerts.status`.
pub const ALERT_STATUSES: &[&str] = AlertStatus::VALUES;

use depot_domain::trade::{
    ActivityKind, CustomerStatus, PaymentFlag, PaymentMethod, PaymentState, PoState, RefundState,
    SoState, sales::ReservationStatus,
};

/// Values allowed in `purchase_orders.state`.
pub const PO_STATES: &[&str] = PoState::VALUES;
/// Values allowed in `sales_orders.state`.
pub const SO_STATES: &[&str] = SoState::VALUES;
/// Values allowed in `customers.status`.
pub const CUSTOMER_STATUSES: &[&str] = CustomerStatus::VALUES;
/// Values allowed in `activities.kind`.
pub const ACTIVITY_KINDS: &[&str] = ActivityKind::VALUES;
/// Values allowed in `payments.method`.
pub const PAYMENT_METHODS: &[&str] = PaymentMethod::VALUES;
/// Values allowed in `payments.state`.
pub const PAYMENT_STATES: &[&str] = PaymentState::VALUES;
/// Values allowed in `payments.flag`.
pub const PAYMENT_FLAGS: &[&str] = PaymentFlag::VALUES;
/// Values allowed in `refunds.state`.
pub const REFUND_STATES: &[&str] = RefundState::VALUES;
/// Values allowed in `reservations.status`.
pub const RESERVATION_STATUSES: &[&str] = ReservationStatus::VALUES;

/// The active payment states as an SQL list (`'initiated', …`) for the partial unique index.
pub fn active_payment_states() -> String {
    PaymentState::ACTIVE
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

use depot_domain::import::{ImportKind, ImportMode, ImportStatus};

/// Values allowed in `imports.kind`.
pub const IMPORT_KINDS: &[&str] = ImportKind::VALUES;
/// Values allowed in `imports.mode`.
pub const IMPORT_MODES: &[&str] = ImportMode::VALUES;
/// Values allowed in `imports.status`.
pub const IMPORT_STATUSES: &[&str] = ImportStatus::VALUES;

use depot_domain::notify::{Channel, DeliveryStatus, NotificationStatus, NotificationType};

pub const NOTIFICATION_TYPES: &[&str] = NotificationType::VALUES;
pub const NOTIFICATION_STATUSES: &[&str] = NotificationStatus::VALUES;
pub const CHANNELS: &[&str] = Channel::VALUES;
pub const DELIVERY_STATUSES: &[&str] = DeliveryStatus::VALUES;

use depot_domain::report::{ReportFormat, ReportStatus, ReportType};

pub const REPORT_TYPES: &[&str] = ReportType::VALUES;
pub const REPORT_FORMATS: &[&str] = ReportFormat::VALUES;
pub const REPORT_STATUSES: &[&str] = ReportStatus::VALUES;
/// The one-active-job-per-request index of `report_jobs`.
pub const REPORT_ACTIVE_REQUEST_IDX: &str = "report_jobs_active_request_idx";
