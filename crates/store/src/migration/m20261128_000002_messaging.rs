//! Messaging: processed-message records (consumer idempotency), scheduled-job periods and
//! leases (single-instance work).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ProcessedMessages {
    Table,
    Consumer,
    MessageId,
    ProcessedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ScheduledJobs {
    Table,
    Name,
    NextRunAt,
    LastRunAt,
    LastOwner,
}

#[derive(DeriveIden, Clone, Copy)]
enum Leases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProcessedMessages::Table)
                    .col(
                        ColumnDef::new(ProcessedMessages::Consumer)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProcessedMessages::MessageId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ProcessedMessages::ProcessedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("processed_messages_pk")
                            .col(ProcessedMessages::Consumer)
                            .col(ProcessedMessages::MessageId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("processed_messages_processed_at_idx")
                    .table(ProcessedMessages::Table)
                    .col(ProcessedMessages::ProcessedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScheduledJobs::Table)
                    .col(
                        ColumnDef::new(ScheduledJobs::Name)
                            .text()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ScheduledJobs::NextRunAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(ScheduledJobs::LastRunAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(ColumnDef::new(ScheduledJobs::LastOwner).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .col(ColumnDef::new(Leases::Name).text().not_null().primary_key())
                    .col(ColumnDef::new(Leases::Holder).text().not_null())
                    .col(
                        ColumnDef::new(Leases::ExpiresAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Leases::Table.into_iden(),
            ScheduledJobs::Table.into_iden(),
            ProcessedMessages::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
