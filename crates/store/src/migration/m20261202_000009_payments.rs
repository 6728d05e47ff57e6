//! Gateway payments: what the gateway said about each payment (`val_id`, `bank_tran_id`, risk,
//! the redacted answer, why it was not believed), the callbacks already processed (so a
//! repeated one changes nothing) and refunds.

use sea_orm_migration::prelude::*;

use super::parts::{big, index, one_of, references, text, text_null, ts, uuid, uuid_null, uuid_pk};
use super::{PAYMENT_FLAGS, REFUND_STATES, active_payment_states};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Payments {
    Table,
    Id,
    ValId,
    BankTranId,
    RiskLevel,
    GatewayUrl,
    Flag,
    Failure,
    Payload,
    Attempts,
    Refunded,
    PaidAt,
    State,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PaymentCallbacks {
    Table,
    Id,
    PaymentId,
    Source,
    DedupKey,
    Status,
    Outcome,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Refunds {
    Table,
    Id,
    PaymentId,
    Amount,
    Currency,
    Remarks,
    State,
    RefundRefId,
    Reason,
    ActorId,
    ActorName,
    Version,
    CreatedAt,
    UpdatedAt,
}

fn counted(col: impl IntoIden + Copy + 'static) -> ColumnDef {
    big(col).default(0).check(Expr::col(col).gte(0)).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        let columns = [
            text_null(Payments::ValId),
            text_null(Payments::BankTranId),
            ColumnDef::new(Payments::RiskLevel).integer().null().take(),
            text_null(Payments::GatewayUrl),
            one_of(Payments::Flag, PAYMENT_FLAGS, true),
            text_null(Payments::Failure),
            text_null(Payments::Payload),
            ColumnDef::new(Payments::Attempts)
                .integer()
                .not_null()
                .default(0)
                .take(),
            counted(Payments::Refunded),
            ColumnDef::new(Payments::PaidAt)
                .timestamp_with_time_zone()
                .null()
                .take(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        // A payment being refunded is still active (one per order and method).
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX payments_active_key")
            .await?;
        db.execute_unprepared(&format!(
            "CREATE UNIQUE INDEX payments_active_key ON payments (sales_order_id, method) \
             WHERE state IN ({})",
            active_payment_states()
        ))
        .await?;
        // The recovery job's scan: payments waiting for the gateway, oldest first.
        manager
            .create_index(index(
                "payments_state_idx",
                Payments::Table,
                &[Payments::State, Payments::UpdatedAt, Payments::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PaymentCallbacks::Table)
                    .col(uuid_pk(PaymentCallbacks::Id))
                    .col(uuid(PaymentCallbacks::PaymentId))
                    .col(text(PaymentCallbacks::Source))
                    .col(text(PaymentCallbacks::DedupKey).unique_key())
                    .col(text(PaymentCallbacks::Status))
                    .col(text(PaymentCallbacks::Outcome))
                    .col(text(PaymentCallbacks::Payload))
                    .col(ts(PaymentCallbacks::CreatedAt))
                    .foreign_key(&mut references(
                        "payment_callbacks_payment_fk",
                        (PaymentCallbacks::Table, PaymentCallbacks::PaymentId),
                        (Payments::Table, Payments::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "payment_callbacks_payment_idx",
                PaymentCallbacks::Table,
                &[PaymentCallbacks::PaymentId, PaymentCallbacks::CreatedAt],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Refunds::Table)
                    .col(uuid_pk(Refunds::Id))
                    .col(uuid(Refunds::PaymentId))
                    .col(
                        big(Refunds::Amount)
                            .check(Expr::col(Refunds::Amount).gt(0))
                            .take(),
                    )
                    .col(text(Refunds::Currency))
                    .col(text(Refunds::Remarks))
                    .col(one_of(Refunds::State, REFUND_STATES, false))
                    .col(text_null(Refunds::RefundRefId).unique_key())
                    .col(text_null(Refunds::Reason))
                    .col(uuid_null(Refunds::ActorId))
                    .col(text_null(Refunds::ActorName))
                    .col(ColumnDef::new(Refunds::Version).integer().not_null().take())
                    .col(ts(Refunds::CreatedAt))
                    .col(ts(Refunds::UpdatedAt))
                    .foreign_key(&mut references(
                        "refunds_payment_fk",
                        (Refunds::Table, Refunds::PaymentId),
                        (Payments::Table, Payments::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "refunds_payment_idx",
                Refunds::Table,
                &[Refunds::PaymentId, Refunds::CreatedAt],
            ))
            .await?;
        manager
            .create_index(index(
                "refunds_state_idx",
                Refunds::Table,
                &[Refunds::State, Refunds::UpdatedAt],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX payments_active_key")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX payments_active_key ON payments (sales_order_id, method) \
             WHERE state IN ('initiated', 'pending', 'paid', 'review')",
        )
        .await?;
        manager
            .drop_table(Table::drop().table(Refunds::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PaymentCallbacks::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("payments_state_idx")
                    .table(Payments::Table)
                    .to_owned(),
            )
            .await?;
        for column in [
            Payments::PaidAt,
            Payments::Refunded,
            Payments::Attempts,
            Payments::Payload,
            Payments::Failure,
            Payments::Flag,
            Payments::GatewayUrl,
            Payments::RiskLevel,
            Payments::BankTranId,
            Payments::ValId,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Payments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
