//! Report jobs: one row per report requested — its resolved parameters, whether personal data
//! is shown, its progress and outcome, and where its export lies until it expires. A partial
//! unique index lets one user hold only one active job per identical request.

use sea_orm_migration::prelude::*;

use super::parts::{big, flag, index, one_of, text, text_null, ts, ts_null, uuid_null, uuid_pk};
use super::{REPORT_ACTIVE_REQUEST_IDX, REPORT_FORMATS, REPORT_STATUSES, REPORT_TYPES};
use depot_domain::report::ReportStatus;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum ReportJobs {
    Table,
    Id,
    OwnerId,
    Kind,
    Params,
    Format,
    Fingerprint,
    ShowsPii,
    Status,
    Progress,
    Rows,
    Bytes,
    ObjectKey,
    ErrorCode,
    ErrorMessage,
    RequestId,
    LeaseUntil,
    Attempts,
    CreatedAt,
    StartedAt,
    FinishedAt,
    ExpiresAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReportJobs::Table)
                    .col(uuid_pk(ReportJobs::Id))
                    .col(uuid_null(ReportJobs::OwnerId))
                    .col(one_of(ReportJobs::Kind, REPORT_TYPES, false))
                    .col(text(ReportJobs::Params))
                    .col(one_of(ReportJobs::Format, REPORT_FORMATS, false))
                    .col(text(ReportJobs::Fingerprint))
                    .col(flag(ReportJobs::ShowsPii))
                    .col(one_of(ReportJobs::Status, REPORT_STATUSES, false))
                    .col(
                        ColumnDef::new(ReportJobs::Progress)
                            .small_integer()
                            .not_null()
                            .default(0)
                            .check(
                                Expr::col(ReportJobs::Progress)
                                    .gte(0)
                                    .and(Expr::col(ReportJobs::Progress).lte(100)),
                            ),
                    )
                    .col(big(ReportJobs::Rows))
                    .col(big(ReportJobs::Bytes))
                    .col(text_null(ReportJobs::ObjectKey))
                    .col(text_null(ReportJobs::ErrorCode))
                    .col(text_null(ReportJobs::ErrorMessage))
                    .col(text_null(ReportJobs::RequestId))
                    .col(ts_null(ReportJobs::LeaseUntil))
                    .col(big(ReportJobs::Attempts))
                    .col(ts(ReportJobs::CreatedAt))
                    .col(ts_null(ReportJobs::StartedAt))
                    .col(ts_null(ReportJobs::FinishedAt))
                    .col(ts_null(ReportJobs::ExpiresAt))
                    .col(ts(ReportJobs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            (
                "report_jobs_owner_idx",
                &[ReportJobs::OwnerId, ReportJobs::CreatedAt, ReportJobs::Id][..],
            ),
            (
                "report_jobs_created_idx",
                &[ReportJobs::CreatedAt, ReportJobs::Id],
            ),
            (
                "report_jobs_status_idx",
                &[ReportJobs::Status, ReportJobs::LeaseUntil],
            ),
            (
                "report_jobs_expiry_idx",
                &[ReportJobs::Status, ReportJobs::ExpiresAt],
            ),
        ] {
            manager
                .create_index(index(name, ReportJobs::Table, cols))
                .await?;
        }
        // One active job per (owner, identical request): a second request while one is
        // queued or running finds that one.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE UNIQUE INDEX {REPORT_ACTIVE_REQUEST_IDX} ON report_jobs (owner_id, fingerprint) \
                 WHERE status IN ('{}', '{}')",
                ReportStatus::Queued.as_str(),
                ReportStatus::Running.as_str(),
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ReportJobs::Table).to_owned())
            .await
    }
}
