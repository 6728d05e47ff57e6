//! The ledger's reference index holds only movements that have a reference (an order, a
//! transfer, a count): adjustments and imports leave it alone, so a bulk import writes one
//! index entry less per movement. A lookup by reference (`reference_id = $1`) still uses it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate("WHERE reference_id IS NOT NULL", manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        recreate("", manager).await
    }
}

/// Builds the reference index again, over the rows `filter` selects.
async fn recreate(filter: &str, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared("DROP INDEX IF EXISTS stock_movements_reference_idx")
        .await?;
    db.execute_unprepared(&format!(
        "CREATE INDEX stock_movements_reference_idx ON stock_movements (reference_id) {filter}"
    ))
    .await?;
    Ok(())
}
