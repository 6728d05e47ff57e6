//! Platform tables: the append-only audit log, idempotency keys, the transactional outbox and
//! the database job queue.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::{IDEMPOTENCY_STATUSES, JOB_STATUSES, OUTBOX_STATUSES};

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

fn id(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().primary_key().take()
}

fn ts(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

fn text(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().not_null().take()
}

fn text_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).text().null().take()
}

fn json_null(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).json_binary().null().take()
}

fn status(col: impl IntoIden + Clone + 'static, allowed: &[&'static str]) -> ColumnDef {
    ColumnDef::new(col.clone())
        .text()
        .not_null()
        .check(Expr::col(col).is_in(allowed.iter().copied()))
        .take()
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
                    .col(status(IdempotencyKeys::Status, IDEMPOTENCY_STATUSES))
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
                    .col(status(Outbox::Status, OUTBOX_STATUSES))
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
                    .col(status(Jobs::Status, JOB_STATUSES))
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

/// Makes a table append-only in the database itself: UPDATE and DELETE raise an error.
async fn make_append_only(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN RAISE EXCEPTION '{table} is append-only'; END $$;\n\
                 CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {table}_append_only();"
            ))
            .await?;
        }
        _ => {
            for op in ["UPDATE", "DELETE"] {
                let lower = op.to_lowercase();
                db.execute_unprepared(&format!(
                    "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} \
                     BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;"
                ))
                .await?;
            }
        }
    }
    Ok(())
}

async fn drop_append_only(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS {table}_no_update ON {table};\n\
                 DROP FUNCTION IF EXISTS {table}_append_only();"
            ))
            .await?;
        }
        _ => {
            for op in ["update", "delete"] {
                db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {table}_no_{op};"))
                    .await?;
            }
        }
    }
    Ok(())
}
