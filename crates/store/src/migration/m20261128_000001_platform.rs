//! Platform tables: the append-only audit log, idempotency keys, the transactional outbox and
//! the database job queue.

use sea_orm_migration::prelude::*;

use super::parts::{
    drop_append_only, make_append_only, one_of, text, text_null, ts, ts_null, uuid_pk as id,
};
use super::{JOB_STATUSES, OUTBOX_STATUSES};

/// The statuses `idempotency_keys` first allowed (`m20261206_000013_idempotency_committed` adds
/// `committed`): a migration creates what it created the day it was written.
const IDEMPOTENCY_STATUSES: &[&str] = &["in_progress", "completed"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum AuditLog {
    Table,
    Id,
    OccurredAt,
    ActorId,
    Action,
    TargetType,
    TargetId,
    RequestId,
    Ip,
    Before,
    After,
    Details,
}

#[derive(DeriveIden, Clone, Copy)]
enum IdempotencyKeys {
    Table,
    Scope,
    Key,
    RequestFingerprint,
    Status,
    ResponseStatus,
    ResponseBody,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Outbox {
    Table,
    Id,
    AggregateType,
    AggregateId,
    EventType,
    EventVersion,
    Payload,
    CorrelationId,
    OccurredAt,
    Status,
    Attempts,
    LastError,
    PublishedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Jobs {
    Table,
    Id,
    Queue,
    Kind,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    RunAt,
    LockedUntil,
    LockedBy,
    LastError,
    DedupeKey,
    CorrelationId,
    CreatedAt,
    UpdatedAt,
}

fn json_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).json_binary().null().take()
}

fn index(name: &str, table: impl IntoIden, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table);
    for col in cols {
        idx.col(Alias::new(*col));
    }
    idx.take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(id(AuditLog::Id))
                    .col(ts(AuditLog::OccurredAt))
                    .col(ColumnDef::new(AuditLog::ActorId).uuid().null())
                    .col(text(AuditLog::Action))
                    .col(text_null(AuditLog::TargetType))
                    .col(text_null(AuditLog::TargetId))
                    .col(text_null(AuditLog::RequestId))
                    .col(text_null(AuditLog::Ip))
                    .col(json_null(AuditLog::Before))
                    .col(json_null(AuditLog::After))
                    .col(json_null(AuditLog::Details))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("audit_log_occurred_at_idx", &["occurred_at", "id"][..]),
            ("audit_log_actor_idx", &["actor_id", "id"][..]),
            ("audit_log_target_idx", &["target_type", "target_id"][..]),
            ("audit_log_action_idx", &["action", "id"][..]),
        ] {
            manager
                .create_index(index(name, AuditLog::Table, cols))
                .await?;
        }
        make_append_only(manager, "audit_log").await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(text(IdempotencyKeys::Scope))
                    .col(text(IdempotencyKeys::Key))
                    .col(text(IdempotencyKeys::RequestFingerprint))
                    .col(one_of(IdempotencyKeys::Status, IDEMPOTENCY_STATUSES, false))
                    .col(
                        ColumnDef::new(IdempotencyKeys::ResponseStatus)
                            .integer()
                            .null(),
                    )
                    .col(json_null(IdempotencyKeys::ResponseBody))
                    .col(ts(IdempotencyKeys::CreatedAt))
                    .col(ts(IdempotencyKeys::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .name("idempotency_keys_pk")
                            .col(IdempotencyKeys::Scope)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "idempotency_keys_expires_at_idx",
                IdempotencyKeys::Table,
                &["expires_at"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(id(Outbox::Id))
                    .col(text(Outbox::AggregateType))
                    .col(text(Outbox::AggregateId))
                    .col(text(Outbox::EventType))
                    .col(ColumnDef::new(Outbox::EventVersion).integer().not_null())
                    .col(ColumnDef::new(Outbox::Payload).json_binary().not_null())
                    .col(text_null(Outbox::CorrelationId))
                    .col(ts(Outbox::OccurredAt))
                    .col(one_of(Outbox::Status, OUTBOX_STATUSES, false))
                    .col(
                        ColumnDef::new(Outbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(text_null(Outbox::LastError))
                    .col(ts_null(Outbox::PublishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("outbox_status_idx", Outbox::Table, &["status", "id"]))
            .await?;
        manager
            .create_index(index(
                "outbox_aggregate_idx",
                Outbox::Table,
                &["aggregate_type", "aggregate_id", "id"],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(id(Jobs::Id))
                    .col(text(Jobs::Queue))
                    .col(text(Jobs::Kind))
                    .col(ColumnDef::new(Jobs::Payload).json_binary().not_null())
                    .col(one_of(Jobs::Status, JOB_STATUSES, false))
                    .col(
                        ColumnDef::new(Jobs::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                    .col(ts(Jobs::RunAt))
                    .col(ts_null(Jobs::LockedUntil))
                    .col(text_null(Jobs::LockedBy))
                    .col(text_null(Jobs::LastError))
                    .col(text_null(Jobs::DedupeKey))
                    .col(text_null(Jobs::CorrelationId))
                    .col(ts(Jobs::CreatedAt))
                    .col(ts(Jobs::UpdatedAt))
                    .check(Expr::col(Jobs::Attempts).gte(0))
                    .check(Expr::col(Jobs::MaxAttempts).gt(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "jobs_claim_idx",
                Jobs::Table,
                &["queue", "status", "run_at"],
            ))
            .await?;
        manager
            .create_index(
                index("jobs_dedupe_key_uq", Jobs::Table, &["queue", "dedupe_key"])
                    .unique()
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_append_only(manager, "audit_log").await?;
        for table in [
            Jobs::Table.into_iden(),
            Outbox::Table.into_iden(),
            IdempotencyKeys::Table.into_iden(),
            AuditLog::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
