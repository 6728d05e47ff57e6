//! Catalog and stock: categories, products, locations, batches, one level row per (product,
//! location), the append-only ledger of movements, transfers, cycle counts and alerts.
//!
//! Quantities are integers in thousandths of the product's unit (exact, never floats); money is
//! integer minor units with an ISO currency. A batch never goes below zero (`CHECK`), nor does a
//! level's on-hand or reserved quantity.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::parts::{
    big, big_null, drop_append_only, flag, index, make_append_only, one_of, references, restricts,
    text, text_null, ts, ts_null, uuid, uuid_null, uuid_pk,
};
use super::{
    ALERT_KINDS, ALERT_STATUSES, BATCH_STATUSES, DEPLETION_POLICIES, MOVEMENT_KINDS,
    PRODUCT_STATUSES, UNITS,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Categories {
    Table,
    Id,
    Name,
    NameKey,
    DepletionPolicy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    Id,
    Sku,
    SkuKey,
    Name,
    Unit,
    CategoryId,
    Barcode,
    ReorderPoint,
    ReorderQuantity,
    TracksExpiry,
    DepletionPolicy,
    Status,
    Search,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Locations {
    Table,
    Id,
    Code,
    CodeKey,
    Name,
    Address,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Batches {
    Table,
    Id,
    ProductId,
    LocationId,
    Lot,
    Expiry,
    ReceivedAt,
    UnitCost,
    Currency,
    Quantity,
    Status,
    CreatedAt,
    UpdatedAt,
    ClosedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StockLevels {
    Table,
    ProductId,
    LocationId,
    OnHand,
    Reserved,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StockMovements {
    Table,
    Id,
    ProductId,
    LocationId,
    BatchId,
    Kind,
    Quantity,
    BalanceAfter,
    Reason,
    Note,
    ActorId,
    ActorName,
    ReferenceType,
    ReferenceId,
    RequestId,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Transfers {
    Table,
    Id,
    FromLocationId,
    ToLocationId,
    Note,
    ActorId,
    ActorName,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum TransferLines {
    Table,
    Id,
    TransferId,
    LineNo,
    ProductId,
    BatchId,
    Quantity,
}

#[derive(DeriveIden, Clone, Copy)]
enum StockCounts {
    Table,
    Id,
    LocationId,
    Note,
    ActorId,
    ActorName,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum StockCountLines {
    Table,
    Id,
    CountId,
    LineNo,
    BatchId,
    ProductId,
    Expected,
    Counted,
    Difference,
}

#[derive(DeriveIden, Clone, Copy)]
enum Alerts {
    Table,
    Id,
    Kind,
    ProductId,
    LocationId,
    BatchId,
    Subject,
    Status,
    RaisedAt,
    LastSeenAt,
    Occurrences,
    AcknowledgedAt,
    AcknowledgedBy,
    ResolvedAt,
    ResolvedBy,
    ResolvedAutomatically,
}

fn non_negative(col: impl IntoIden + Copy + 'static) -> ColumnDef {
    big(col).check(Expr::col(col).gte(0)).take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Categories::Table)
                    .col(uuid_pk(Categories::Id))
                    .col(text(Categories::Name))
                    .col(text(Categories::NameKey).unique_key())
                    .col(one_of(
                        Categories::DepletionPolicy,
                        DEPLETION_POLICIES,
                        true,
                    ))
                    .col(ts(Categories::CreatedAt))
                    .col(ts(Categories::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Products::Table)
                    .col(uuid_pk(Products::Id))
                    .col(text(Products::Sku))
                    .col(text(Products::SkuKey).unique_key())
                    .col(text(Products::Name))
                    .col(one_of(Products::Unit, UNITS, false))
                    .col(uuid_null(Products::CategoryId))
                    .col(text_null(Products::Barcode).unique_key())
                    .col(big_null(Products::ReorderPoint))
                    .col(big_null(Products::ReorderQuantity))
                    .col(flag(Products::TracksExpiry))
                    .col(one_of(Products::DepletionPolicy, DEPLETION_POLICIES, true))
                    .col(one_of(Products::Status, PRODUCT_STATUSES, false))
                    .col(text(Products::Search))
                    .col(ts(Products::CreatedAt))
                    .col(ts(Products::UpdatedAt))
                    .foreign_key(&mut restricts(
                        "products_category_fk",
                        (Products::Table, Products::CategoryId),
                        (Categories::Table, Categories::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "products_category_idx",
                Products::Table,
                &[Products::CategoryId],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Locations::Table)
                    .col(uuid_pk(Locations::Id))
                    .col(text(Locations::Code))
                    .col(text(Locations::CodeKey).unique_key())
                    .col(text(Locations::Name))
                    .col(text_null(Locations::Address))
                    .col(flag(Locations::Active))
                    .col(ts(Locations::CreatedAt))
                    .col(ts(Locations::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Batches::Table)
                    .col(uuid_pk(Batches::Id))
                    .col(uuid(Batches::ProductId))
                    .col(uuid(Batches::LocationId))
                    .col(text_null(Batches::Lot))
                    .col(ColumnDef::new(Batches::Expiry).date().null())
                    .col(ts(Batches::ReceivedAt))
                    .col(big_null(Batches::UnitCost))
                    .col(text_null(Batches::Currency))
                    .col(non_negative(Batches::Quantity))
                    .col(one_of(Batches::Status, BATCH_STATUSES, false))
                    .col(ts(Batches::CreatedAt))
                    .col(ts(Batches::UpdatedAt))
                    .col(ts_null(Batches::ClosedAt))
                    .foreign_key(&mut restricts(
                        "batches_product_fk",
                        (Batches::Table, Batches::ProductId),
                        (Products::Table, Products::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "batches_location_fk",
                        (Batches::Table, Batches::LocationId),
                        (Locations::Table, Locations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "batches_stock_idx",
                Batches::Table,
                &[Batches::ProductId, Batches::LocationId, Batches::Status],
            ))
            .await?;
        manager
            .create_index(index(
                "batches_location_idx",
                Batches::Table,
                &[Batches::LocationId],
            ))
            .await?;
        manager
            .create_index(index(
                "batches_expiry_idx",
                Batches::Table,
                &[Batches::Expiry, Batches::Id],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockLevels::Table)
                    .col(uuid(StockLevels::ProductId))
                    .col(uuid(StockLevels::LocationId))
                    .col(non_negative(StockLevels::OnHand))
                    .col(non_negative(StockLevels::Reserved).default(0).take())
                    .col(ts(StockLevels::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(StockLevels::ProductId)
                            .col(StockLevels::LocationId),
                    )
                    .foreign_key(&mut restricts(
                        "stock_levels_product_fk",
                        (StockLevels::Table, StockLevels::ProductId),
                        (Products::Table, Products::Id),
                    ))
                    .foreign_key(&mut restricts(
                        "stock_levels_location_fk",
                        (StockLevels::Table, StockLevels::LocationId),
                        (Locations::Table, Locations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "stock_levels_location_idx",
                StockLevels::Table,
                &[StockLevels::LocationId],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockMovements::Table)
                    .col(uuid_pk(StockMovements::Id))
                    .col(uuid(StockMovements::ProductId))
                    .col(uuid(StockMovements::LocationId))
                    .col(uuid(StockMovements::BatchId))
                    .col(one_of(StockMovements::Kind, MOVEMENT_KINDS, false))
                    .col(big(StockMovements::Quantity))
                    .col(big(StockMovements::BalanceAfter))
                    .col(text_null(StockMovements::Reason))
                    .col(text_null(StockMovements::Note))
                    .col(uuid_null(StockMovements::ActorId))
                    .col(text_null(StockMovements::ActorName))
                    .col(text_null(StockMovements::ReferenceType))
                    .col(uuid_null(StockMovements::ReferenceId))
                    .col(text_null(StockMovements::RequestId))
                    .col(ts(StockMovements::CreatedAt))
                    .foreign_key(&mut restricts(
                        "stock_movements_batch_fk",
                        (StockMovements::Table, StockMovements::BatchId),
                        (Batches::Table, Batches::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "stock_movements_batch_idx",
                &[StockMovements::BatchId, StockMovements::CreatedAt][..],
            ),
            (
                "stock_movements_product_idx",
                &[StockMovements::ProductId, StockMovements::CreatedAt],
            ),
            (
                "stock_movements_location_idx",
                &[StockMovements::LocationId, StockMovements::CreatedAt],
            ),
            (
                "stock_movements_reference_idx",
                &[StockMovements::ReferenceId],
            ),
            (
                "stock_movements_created_idx",
                &[StockMovements::CreatedAt, StockMovements::Id],
            ),
        ] {
            manager
                .create_index(index(name, StockMovements::Table, cols))
                .await?;
        }
        make_append_only(manager, "stock_movements").await?;

        manager
            .create_table(
                Table::create()
                    .table(Transfers::Table)
                    .col(uuid_pk(Transfers::Id))
                    .col(uuid(Transfers::FromLocationId))
                    .col(uuid(Transfers::ToLocationId))
                    .col(text_null(Transfers::Note))
                    .col(uuid_null(Transfers::ActorId))
                    .col(text_null(Transfers::ActorName))
                    .col(ts(Transfers::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "transfers_created_idx",
                Transfers::Table,
                &[Transfers::CreatedAt, Transfers::Id],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TransferLines::Table)
                    .col(uuid_pk(TransferLines::Id))
                    .col(uuid(TransferLines::TransferId))
                    .col(ColumnDef::new(TransferLines::LineNo).integer().not_null())
                    .col(uuid(TransferLines::ProductId))
                    .col(uuid_null(TransferLines::BatchId))
                    .col(big(TransferLines::Quantity))
                    .foreign_key(&mut references(
                        "transfer_lines_transfer_fk",
                        (TransferLines::Table, TransferLines::TransferId),
                        (Transfers::Table, Transfers::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "transfer_lines_transfer_idx",
                TransferLines::Table,
                &[TransferLines::TransferId, TransferLines::LineNo],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StockCounts::Table)
                    .col(uuid_pk(StockCounts::Id))
                    .col(uuid(StockCounts::LocationId))
                    .col(text_null(StockCounts::Note))
                    .col(uuid_null(StockCounts::ActorId))
                    .col(text_null(StockCounts::ActorName))
                    .col(ts(StockCounts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "stock_counts_created_idx",
                StockCounts::Table,
                &[StockCounts::CreatedAt, StockCounts::Id],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StockCountLines::Table)
                    .col(uuid_pk(StockCountLines::Id))
                    .col(uuid(StockCountLines::CountId))
                    .col(ColumnDef::new(StockCountLines::LineNo).integer().not_null())
                    .col(uuid(StockCountLines::BatchId))
                    .col(uuid(StockCountLines::ProductId))
                    .col(big(StockCountLines::Expected))
                    .col(big(StockCountLines::Counted))
                    .col(big(StockCountLines::Difference))
                    .foreign_key(&mut references(
                        "stock_count_lines_count_fk",
                        (StockCountLines::Table, StockCountLines::CountId),
                        (StockCounts::Table, StockCounts::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "stock_count_lines_count_idx",
                StockCountLines::Table,
                &[StockCountLines::CountId, StockCountLines::LineNo],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Alerts::Table)
                    .col(uuid_pk(Alerts::Id))
                    .col(one_of(Alerts::Kind, ALERT_KINDS, false))
                    .col(uuid(Alerts::ProductId))
                    .col(uuid(Alerts::LocationId))
                    .col(uuid_null(Alerts::BatchId))
                    .col(text(Alerts::Subject))
                    .col(one_of(Alerts::Status, ALERT_STATUSES, false))
                    .col(ts(Alerts::RaisedAt))
                    .col(ts(Alerts::LastSeenAt))
                    .col(ColumnDef::new(Alerts::Occurrences).big_integer().not_null())
                    .col(ts_null(Alerts::AcknowledgedAt))
                    .col(uuid_null(Alerts::AcknowledgedBy))
                    .col(ts_null(Alerts::ResolvedAt))
                    .col(uuid_null(Alerts::ResolvedBy))
                    .col(flag(Alerts::ResolvedAutomatically))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("alerts_raised_idx", &[Alerts::RaisedAt, Alerts::Id][..]),
            ("alerts_product_idx", &[Alerts::ProductId]),
            ("alerts_batch_idx", &[Alerts::BatchId]),
        ] {
            manager
                .create_index(index(name, Alerts::Table, cols))
                .await?;
        }
        let db = manager.get_connection();
        // At most one unresolved alert per (kind, subject).
        db.execute_unprepared(
            "CREATE UNIQUE INDEX alerts_open_key ON alerts (kind, subject) \
             WHERE status <> 'resolved'",
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            // Trigram index for the catalogue's text search, where the extension may be created.
            db.execute_unprepared(
                "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm; \
                 EXCEPTION WHEN insufficient_privilege THEN \
                 RAISE NOTICE 'pg_trgm unavailable: product search scans'; END $$;\n\
                 DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN \
                 CREATE INDEX products_search_trgm ON products USING gin (search gin_trgm_ops); \
                 END IF; END $$;",
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_append_only(manager, "stock_movements").await?;
        for table in [
            Alerts::Table.into_iden(),
            StockCountLines::Table.into_iden(),
            StockCounts::Table.into_iden(),
            TransferLines::Table.into_iden(),
            Transfers::Table.into_iden(),
            StockMovements::Table.into_iden(),
            StockLevels::Table.into_iden(),
            Batches::Table.into_iden(),
            Locations::Table.into_iden(),
            Products::Table.into_iden(),
            Categories::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
