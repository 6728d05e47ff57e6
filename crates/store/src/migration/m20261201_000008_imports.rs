//! Bulk imports: one row per file submitted, with its checksum, counts and every row error
//! found; `import_files` keeps the file while it waits for a worker (deleted once it has run).

use sea_orm_migration::prelude::*;

use super::parts::{
    big, flag, index, one_of, references, text, text_null, ts, ts_null, uuid_null, uuid_pk,
};
use super::{IMPORT_KINDS, IMPORT_MODES, IMPORT_STATUSES};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Imports {
    Table,
    Id,
    OwnerId,
    ActorName,
    Kind,
    Mode,
    ReplaceExisting,
    Status,
    FileName,
    Checksum,
    Bytes,
    Rows,
    RowsDone,
    ErrorCount,
    Errors,
    Summary,
    Failure,
    RequestId,
    LeaseUntil,
    Attempts,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ImportFiles {
    Table,
    ImportId,
    Content,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Imports::Table)
                    .col(uuid_pk(Imports::Id))
                    .col(uuid_null(Imports::OwnerId))
                    .col(text_null(Imports::ActorName))
                    .col(one_of(Imports::Kind, IMPORT_KINDS, false))
                    .col(one_of(Imports::Mode, IMPORT_MODES, false))
                    .col(flag(Imports::ReplaceExisting))
                    .col(one_of(Imports::Status, IMPORT_STATUSES, false))
                    .col(text_null(Imports::FileName))
                    .col(text(Imports::Checksum))
                    .col(big(Imports::Bytes))
                    .col(big(Imports::Rows))
                    .col(big(Imports::RowsDone))
                    .col(big(Imports::ErrorCount))
                    .col(text(Imports::Errors))
                    .col(text(Imports::Summary))
                    .col(text_null(Imports::Failure))
                    .col(text_null(Imports::RequestId))
                    .col(ts_null(Imports::LeaseUntil))
                    .col(big(Imports::Attempts))
                    .col(ts(Imports::CreatedAt))
                    .col(ts_null(Imports::StartedAt))
                    .col(ts_null(Imports::FinishedAt))
                    .col(ts(Imports::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "imports_owner_idx",
                Imports::Table,
                &[Imports::OwnerId, Imports::CreatedAt, Imports::Id],
            ))
            .await?;
        manager
            .create_index(index(
                "imports_status_idx",
                Imports::Table,
                &[Imports::Status, Imports::LeaseUntil],
            ))
            .await?;
        manager
            .create_index(index(
                "imports_created_idx",
                Imports::Table,
                &[Imports::CreatedAt, Imports::Id],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ImportFiles::Table)
                    .col(uuid_pk(ImportFiles::ImportId))
                    .col(ColumnDef::new(ImportFiles::Content).binary().not_null())
                    .foreign_key(&mut references(
                        "import_files_import_fk",
                        (ImportFiles::Table, ImportFiles::ImportId),
                        (Imports::Table, Imports::Id),
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ImportFiles::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Imports::Table).to_owned())
            .await
    }
}
