//! `idempotency_keys.status` gains `committed`: the request's unit of work marks its claim in
//! the transaction that commits its effect, so a process that dies before storing the response
//! never has the request run twice.
//!
//! PostgreSQL replaces the column's `CHECK`; SQLite cannot alter one, so the table is rebuilt
//! (same columns, key and index) and its rows copied.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::IDEMPOTENCY_STATUSES;
use super::parts::{index, one_of, text, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What the column allowed before.
const BEFORE: &[&str] = &["in_progress", "completed"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        allow(manager, IDEMPOTENCY_STATUSES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A committed claim becomes an ordinary one: the old code knows no better.
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE idempotency_keys SET status = 'in_progress' WHERE status = 'committed'",
            )
            .await?;
        allow(manager, BEFORE).await
    }
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

/// Makes `idempotency_keys.status` allow exactly `statuses`.
async fn allow(manager: &SchemaManager<'_>, statuses: &[&'static str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let list = statuses
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(", ");
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared(&format!(
                "ALTER TABLE idempotency_keys \
                 DROP CONSTRAINT IF EXISTS idempotency_keys_status_check, \
                 ADD CONSTRAINT idempotency_keys_status_check CHECK (status IN ({list}))"
            ))
            .await?;
        }
        _ => {
            let next = Alias::new("idempotency_keys_next");
            manager
                .create_table(
                    Table::create()
                        .table(next.clone())
                        .col(text(IdempotencyKeys::Scope))
                        .col(text(IdempotencyKeys::Key))
                        .col(text(IdempotencyKeys::RequestFingerprint))
                        .col(one_of(IdempotencyKeys::Status, statuses, false))
                        .col(
                            ColumnDef::new(IdempotencyKeys::ResponseStatus)
                                .integer()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(IdempotencyKeys::ResponseBody)
                                .json_binary()
                                .null(),
                        )
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
            db.execute_unprepared(
                "INSERT INTO idempotency_keys_next \
                 (scope, \"key\", request_fingerprint, status, response_status, response_body, \
                  created_at, expires_at) \
                 SELECT scope, \"key\", request_fingerprint, status, response_status, \
                  response_body, created_at, expires_at FROM idempotency_keys",
            )
            .await?;
            db.execute_unprepared("DROP TABLE idempotency_keys").await?;
            db.execute_unprepared("ALTER TABLE idempotency_keys_next RENAME TO idempotency_keys")
                .await?;
            manager
                .create_index(index(
                    "idempotency_keys_expires_at_idx",
                    IdempotencyKeys::Table,
                    &[IdempotencyKeys::ExpiresAt],
                ))
                .await?;
        }
    }
    Ok(())
}
