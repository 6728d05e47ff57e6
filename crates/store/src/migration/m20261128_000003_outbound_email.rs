//! Outbound email: every message to send, with its delivery state, attempts and last error.

use sea_orm_migration::prelude::*;

use super::EMAIL_STATUSES;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum OutboundEmails {
    Table,
    Id,
    ToAddress,
    Subject,
    Body,
    Status,
    Attempts,
    MaxAttempts,
    LastError,
    NextAttemptAt,
    LockedUntil,
    CorrelationId,
    CreatedAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let ts = |c: OutboundEmails| {
            ColumnDef::new(c)
                .timestamp_with_time_zone()
                .not_null()
                .take()
        };
        let ts_null =
            |c: OutboundEmails| ColumnDef::new(c).timestamp_with_time_zone().null().take();
        manager
            .create_table(
                Table::create()
                    .table(OutboundEmails::Table)
                    .col(
                        ColumnDef::new(OutboundEmails::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(OutboundEmails::ToAddress).text().not_null())
                    .col(ColumnDef::new(OutboundEmails::Subject).text().not_null())
                    .col(ColumnDef::new(OutboundEmails::Body).text().not_null())
                    .col(
                        ColumnDef::new(OutboundEmails::Status)
                            .text()
                            .not_null()
                            .check(
                                Expr::col(OutboundEmails::Status)
                                    .is_in(EMAIL_STATUSES.iter().copied()),
                            ),
                    )
                    .col(
                        ColumnDef::new(OutboundEmails::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(OutboundEmails::MaxAttempts)
                            .integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(OutboundEmails::LastError).text().null())
                    .col(ts(OutboundEmails::NextAttemptAt))
                    .col(ts_null(OutboundEmails::LockedUntil))
                    .col(ColumnDef::new(OutboundEmails::CorrelationId).text().null())
                    .col(ts(OutboundEmails::CreatedAt))
                    .col(ts_null(OutboundEmails::SentAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbound_emails_due_idx")
                    .table(OutboundEmails::Table)
                    .col(OutboundEmails::Status)
                    .col(OutboundEmails::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OutboundEmails::Table).to_owned())
            .await
    }
}
