//! Reports: a fixed list of report types, requested as jobs and written by a worker as CSV
//! into object storage, then downloaded by their owner until they expire.
//!
//! A request is checked (`depot_domain::report`), resolved and stored as a `queued` job in one
//! unit of work — or, when the same user already has the identical request queued or running,
//! answered with that job. Whether personal columns are shown is decided then, from the
//! requester's `reports.pii`, and kept on the job. The process that took the request starts
//! the job at once; the `report_runner` job of any worker picks up what is left (a crashed
//! run's lease runs out and another claims it). A run reads one consistent snapshot (of the
//! read replica when configured) in keyset pages and streams CSV into a multipart upload:
//! memory stays flat whatever the size, and an over-size export fails the job and leaves no
//! object. Every write of a run is conditional on its claim, so a cancelled job stops at its
//! next heartbeat. The `report_expiry` job deletes exports past their retention.

mod produce;
mod run;
mod sink;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use depot_adapters::blobs::{BlobStream, Blobs};
use depot_domain::message::Message;
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::report::{ReportFormat, ReportParams, ReportStatus, ReportType};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, FieldError};
use depot_store::entity::report_job;
use depot_store::repo::reports;
use serde::Serialize;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::auth::secrets::digest;
use crate::background::Background;
use crate::catalog::map_page;
use crate::client::ClientInfo;
use crate::realtime::Realtime;
use crate::uow::Writer;

/// Default cadence of the runner that picks up queued reports (overridable in
/// `job_schedules`); the process that queued one starts it at once.
pub const RUNNER: &str = "every 10s";
/// Default cadence of the job that deletes expired exports.
pub const EXPIRY: &str = "every 10m";

/// What a report service needs from the settings.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    pub max_span_days: i64,
    pub max_bytes: u64,
    pub max_rows: u64,
    /// Rows read per page.
    pub page_rows: u64,
    pub retention: Duration,
    pub link_ttl: Duration,
}

/// A report as requested.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// The report type, as sent.
    pub kind: String,
    pub params: serde_json::Value,
    /// `csv` (the default).
    pub format: Option<String>,
}

/// Why a job failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportError {
    pub code: String,
    pub message: String,
}

/// A report job.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: ReportType,
    /// The parameters as resolved when the job was created (an open date range made concrete).
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub format: ReportFormat,
    pub status: ReportStatus,
    /// 0–100.
    pub progress: u8,
    /// Rows written (so far, while running).
    pub rows: i64,
    /// Bytes written (so far, while running).
    pub bytes: i64,
    /// Whether customers' email, phone and address are shown (`reports.pii` of the requester
    /// when the job was created); `***` otherwise.
    pub shows_pii: bool,
    pub error: Option<ReportError>,
    pub owner_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When the export will be (or was) deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where to download the export (succeeded jobs).
    pub download_path: Option<String>,
}

fn view(row: report_job::Model) -> ReportView {
    let status = ReportStatus::parse(&row.status).unwrap_or(ReportStatus::Failed);
    ReportView {
        id: row.id,
        kind: ReportType::parse(&row.kind).unwrap_or(ReportType::StockOnHand),
        params: serde_json::from_str(&row.params).unwrap_or_default(),
        format: ReportFormat::parse(&row.format).unwrap_or(ReportFormat::Csv),
        status,
        progress: u8::try_from(row.progress.clamp(0, 100)).unwrap_or(0),
        rows: row.rows,
        bytes: row.bytes,
        shows_pii: row.shows_pii,
        error: row.error_code.map(|code| ReportError {
            code,
            message: row.error_message.unwrap_or_default(),
        }),
        owner_id: row.owner_id,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        expires_at: row.expires_at,
        download_path: (status == ReportStatus::Succeeded)
            .then(|| format!("/api/v1/reports/{}/download", row.id)),
    }
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::ReportsNotFound, "no such report")
}

/// How an export is handed out.
pub enum Download {
    /// Streamed by this process (local storage): size, file name and the bytes.
    Stream {
        size: u64,
        file_name: String,
        body: BlobStream,
    },
    /// A short-lived URL of the object store (S3).
    Redirect(String),
}

/// The `report.finished` event.
fn finished_event(row: &report_job::Model, at: DateTime<Utc>) -> Message {
    Message::new(
        "report.finished",
        ("report", row.id),
        serde_json::json!({
            "report_id": row.id,
            "type": row.kind,
            "status": row.status,
            "owner_id": row.owner_id,
            "rows": row.rows,
            "bytes": row.bytes,
            "error_code": row.error_code,
        }),
        at,
    )
}

#[derive(Clone)]
pub struct ReportService {
    writer: Writer,
    blobs: Blobs,
    realtime: Realtime,
    settings: Arc<ReportSettings>,
}

impl ReportService {
    pub fn new(writer: Writer, blobs: Blobs, realtime: Realtime, settings: ReportSettings) -> Self {
        Self {
            writer,
            blobs,
            realtime,
            settings: Arc::new(settings),
        }
    }

    /// Registers the runner of queued reports and the deletion of expired exports.
    pub fn register(&self, background: &mut Background) {
        let this = self.clone();
        background.periodic("report_runner", RUNNER, move || {
            let this = this.clone();
            async move { this.run_queued().await }
        });
        let this = self.clone();
        background.periodic("report_expiry", EXPIRY, move || {
            let this = this.clone();
            async move { this.expire_due().await }
        });
    }

    /// `local` or `s3`.
    pub fn storage(&self) -> &'static str {
        self.blobs.backend()
    }

    /// Queues a report for `owner` (or finds the identical one they have queued or running);
    /// the job and whether it is new.
    pub async fn request(
        &self,
        owner: Uuid,
        shows_pii: bool,
        request: ReportRequest,
        client: &ClientInfo,
    ) -> AppResult<(ReportView, bool)> {
        let now = self.writer.now();
        let kind = ReportType::parse(&request.kind);
        let format = match request.format.as_deref() {
            None => Some(ReportFormat::Csv),
            Some(format) => ReportFormat::parse(format),
        };
        let mut errors = Vec::new();
        if kind.is_none() {
            errors.push(FieldError::new(
                "type",
                "invalid_choice",
                format!("must be one of: {}", ReportType::VALUES.join(", ")),
            ));
        }
        if format.is_none() {
            errors.push(FieldError::new("format", "invalid_choice", "must be csv"));
        }
        let params = match kind {
            Some(kind) => {
                match ReportParams::parse(kind, &request.params, self.settings.max_span_days, now) {
                    Ok(params) => Some(params),
                    Err(mut fields) => {
                        errors.append(&mut fields);
                        None
                    }
                }
            }
            None => None,
        };
        let (Some(params), Some(format), true) = (params, format, errors.is_empty()) else {
            return Err(AppError::validation(errors));
        };
        // Identical requests share a fingerprint: the type, the parameters as sent (a range
        // left open means "the latest", whenever asked), the format and what is shown.
        let fingerprint = digest(
            serde_json::json!([params.kind(), request.params, format, shows_pii]).to_string(),
        );
        let actor = Actor::User(owner);
        for _ in 0..2 {
            let mut uow = self.writer.begin(actor, client).await?;
            if let Some(active) = reports::find_active(uow.tx(), Some(owner), &fingerprint).await? {
                return Ok((view(active), false));
            }
            let row = report_job::Model {
                id: depot_domain::id::new_id(),
                owner_id: Some(owner),
                kind: params.kind().as_str().to_owned(),
                params: params.to_json().to_string(),
                format: format.as_str().to_owned(),
                fingerprint: fingerprint.clone(),
                shows_pii,
                status: ReportStatus::Queued.as_str().to_owned(),
                progress: 0,
                rows: 0,
                bytes: 0,
                object_key: None,
                error_code: None,
                error_message: None,
                request_id: client.request_id.clone(),
                lease_until: None,
                attempts: 0,
                created_at: uow.now(),
                started_at: None,
                finished_at: None,
                expires_at: None,
                updated_at: uow.now(),
            };
            let inserted = reports::insert(uow.tx(), row).await;
            let row = match inserted {
                Ok(row) => row,
                // The same request was queued by a concurrent call: the next round finds it.
                Err(err) if reports::ACTIVE_REQUEST.violated_by(&err) => continue,
                Err(err) => return Err(err),
            };
            uow.audit(
                AuditEntry::new("report.requested")
                    .target("report", row.id)
                    .details(serde_json::json!({
                        "type": row.kind,
                        "params": params.to_json(),
                        "shows_pii": shows_pii,
                    })),
            )
            .await?;
            let this = self.clone();
            let id = row.id;
            uow.after_commit(move || async move {
                tokio::spawn(async move { this.run_claimed(Some(id)).await });
            });
            uow.commit().await?;
            metrics::counter!("depot_reports_requested_total", "type" => params.kind().as_str())
                .increment(1);
            return Ok((view(row), true));
        }
        Err(AppError::internal(
            "an identical report request kept conflicting",
        ))
    }

    /// The job, if `viewer` may see it (everyone's when `viewer` is `None`).
    async fn visible(&self, viewer: Option<Uuid>, id: Uuid) -> AppResult<report_job::Model> {
        reports::get(self.writer.db().reader(), id)
            .await?
            .filter(|row| viewer.is_none_or(|v| row.owner_id == Some(v)))
            .ok_or_else(not_found)
    }

    pub async fn get(&self, viewer: Option<Uuid>, id: Uuid) -> AppResult<ReportView> {
        Ok(view(self.visible(viewer, id).await?))
    }

    /// Jobs newest first; only `viewer`'s when given.
    pub async fn list(
        &self,
        viewer: Option<Uuid>,
        page: &PageRequest,
    ) -> AppResult<Page<ReportView>> {
        let page = reports::list(self.writer.db().reader(), viewer, page).await?;
        Ok(map_page(page, view))
    }

    /// Cancels a queued or running job (a running one stops at its next heartbeat and its
    /// partial export is deleted).
    pub async fn cancel(
        &self,
        actor: Actor,
        viewer: Option<Uuid>,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<ReportView> {
        let before = self.visible(viewer, id).await?;
        let mut uow = self.writer.begin(actor, client).await?;
        let Some(row) = reports::cancel(uow.tx(), id, uow.now()).await? else {
            let status = reports::get(uow.tx(), id)
                .await?
                .map_or(before.status, |row| row.status);
            return Err(AppError::new(
                ErrorCode::ReportsNotCancellable,
                "only a queued or running report can be cancelled",
            )
            .with_details(serde_json::json!({ "status": status })));
        };
        uow.audit(AuditEntry::new("report.cancelled").target("report", id))
            .await?;
        uow.emit(&finished_event(&row, uow.now()));
        uow.commit().await?;
        metrics::counter!("depot_reports_finished_total", "type" => row.kind.clone(), "status" => row.status.clone())
            .increment(1);
        self.announce(&row).await;
        Ok(view(row))
    }

    /// The export of a succeeded job: streamed, or a presigned URL on S3.
    pub async fn download(&self, viewer: Option<Uuid>, id: Uuid) -> AppResult<Download> {
        let row = self.visible(viewer, id).await?;
        let key = match (row.status.as_str(), &row.object_key) {
            (status, Some(key)) if status == ReportStatus::Succeeded.as_str() => key.clone(),
            _ => {
                return Err(AppError::new(
                    ErrorCode::ReportsNotReady,
                    "the report has no export to download",
                )
                .with_details(serde_json::json!({ "status": row.status })));
            }
        };
        if let Some(url) = self
            .blobs
            .presigned_get(&key, self.settings.link_ttl)
            .await?
        {
            return Ok(Download::Redirect(url));
        }
        let Some((size, body)) = self.blobs.read(&key).await? else {
            return Err(AppError::internal(format!(
                "the export of report {id} is missing from object storage"
            )));
        };
        Ok(Download::Stream {
            size,
            file_name: format!("{}-{}.csv", row.kind, row.id),
            body,
        })
    }

    /// Tells the owner's sockets how the job stands.
    async fn announce(&self, row: &report_job::Model) {
        if let Some(owner) = row.owner_id {
            self.realtime
                .push(owner, "report.updated", &view(row.clone()))
                .await;
        }
    }

    /// Deletes the exports past their retention and marks their jobs expired; how many.
    async fn expire_due(&self) -> AppResult<u64> {
        let due = reports::due_to_expire(self.writer.db().reader(), self.writer.now(), 500).await?;
        let mut expired = 0;
        for row in due {
            if let Some(key) = &row.object_key {
                self.blobs.delete(key).await?;
            }
            let uow = self
                .writer
                .begin(Actor::System("reports"), &ClientInfo::default())
                .await?;
            if reports::expire(uow.tx(), row.id, uow.now()).await? {
                expired += 1;
            }
            uow.commit().await?;
        }
        if expired > 0 {
            metrics::counter!("depot_reports_expired_total").increment(expired);
        }
        Ok(expired)
    }
}
