//! The append-only triggers of the ledger and the audit log fire in every session, also one
//! whose `session_replication_role` is `replica` — the switch a bulk import uses to do without
//! PostgreSQL's per-row foreign-key checks (`repo::stock::bulk::hold_references`). A trigger
//! left at the default would be skipped there too. SQLite has no such switch.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// The tables made append-only before this migration (`parts::make_append_only`, which now
/// makes its trigger fire always from the start).
const APPEND_ONLY_TABLES: [&str; 2] = ["audit_log", "stock_movements"];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        enable(manager, "ENABLE ALWAYS").await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        enable(manager, "ENABLE").await
    }
}

async fn enable(manager: &SchemaManager<'_>, how: &str) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    for table in APPEND_ONLY_TABLES {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE {table} {how} TRIGGER {table}_no_update"
            ))
            .await?;
    }
    Ok(())
}
