//! Exports: the catalogue and stock as CSV, read in keyset pages and handed out page by page,
//! so memory stays flat whatever the size. The columns are the ones the import of the same
//! kind takes (`batches` → `opening_stock` / `stock_counts`), so export → edit → import
//! round-trips; `levels` is a summary with no import.

use std::pin::Pin;

use depot_domain::import::ExportKind;
use depot_domain::stock::Quantity;
use depot_domain::{AppError, AppResult};
use depot_store::DatabaseConnection;
use depot_store::repo::stock::bulk;
use depot_store::repo::{locations, products};
use futures::Stream;
use uuid::Uuid;

use crate::catalog::policy;
use crate::uow::Writer;

/// Rows read per page.
const PAGE: u64 = 1_000;

/// An export as it is produced: the CSV in pieces (the header first).
pub type ExportStream = Pin<Box<dyn Stream<Item = AppResult<Vec<u8>>> + Send>>;

/// Where a walk through a kind has got to.
#[derive(Debug, Clone)]
enum Cursor {
    Start,
    Key(String),
    Id(Uuid),
    Pair(Uuid, Uuid),
    Done,
}

#[derive(Clone)]
pub struct ExportService {
    writer: Writer,
}

fn csv_error(e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::internal(e)
}

/// Writes `records` as CSV lines.
fn lines<I, R>(records: I) -> AppResult<Vec<u8>>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator,
    R::Item: AsRef<[u8]>,
{
    let mut out = csv::Writer::from_writer(Vec::new());
    for record in records {
        out.write_record(record).map_err(csv_error)?;
    }
    out.into_inner().map_err(|e| csv_error(e.into_error()))
}

fn quantity(thousandths: i64) -> String {
    Quantity::from_thousandths(thousandths).to_string()
}

fn optional_quantity(thousandths: Option<i64>) -> String {
    thousandths.map(quantity).unwrap_or_default()
}

impl ExportService {
    pub fn new(writer: Writer) -> Self {
        Self { writer }
    }

    /// On the database alone, for the CLI.
    pub fn standalone(db: depot_store::Db, clock: std::sync::Arc<dyn depot_domain::Clock>) -> Self {
        Self::new(Writer::new(db, clock, crate::uow::RelayWaker::default()))
    }

    /// The CSV of `kind`, produced page by page as it is read.
    pub fn stream(&self, kind: ExportKind) -> ExportStream {
        let reader = self.writer.db().reader().clone();
        let header = lines([kind.header()]);
        let first = futures::stream::once(async move { header });
        let pages = futures::stream::try_unfold(Cursor::Start, move |cursor| {
            let reader = reader.clone();
            async move {
                if matches!(cursor, Cursor::Done) {
                    return Ok(None);
                }
                let (chunk, next) = page(&reader, kind, cursor).await?;
                Ok(Some((chunk, next)))
            }
        });
        Box::pin(futures::StreamExt::chain(first, pages))
    }
}

/// One page of `kind` after `cursor`: its CSV lines and where the next page starts.
async fn page(
    reader: &DatabaseConnection,
    kind: ExportKind,
    cursor: Cursor,
) -> AppResult<(Vec<u8>, Cursor)> {
    let done = |n: usize, next: Cursor| {
        if n < PAGE as usize {
            Cursor::Done
        } else {
            next
        }
    };
    match kind {
        ExportKind::Products => {
            let after = match cursor {
                Cursor::Key(k) => Some(k),
                _ => None,
            };
            let rows = products::after_sku_key(reader, after, PAGE).await?;
            let next = done(
                rows.len(),
                rows.last()
                    .map_or(Cursor::Done, |p| Cursor::Key(p.sku_key.clone())),
            );
            let chunk = lines(rows.iter().map(|p| {
                [
                    p.sku.clone(),
                    p.name.clone(),
                    p.unit.clone(),
                    p.category_id.map(|c| c.to_string()).unwrap_or_default(),
                    p.barcode.clone().unwrap_or_default(),
                    optional_quantity(p.reorder_point),
                    optional_quantity(p.reorder_quantity),
                    p.tracks_expiry.to_string(),
                    policy(p.depletion_policy.as_deref())
                        .map(|d| d.as_str().to_owned())
                        .unwrap_or_default(),
                    p.status.clone(),
                ]
            }))?;
            Ok((chunk, next))
        }
        ExportKind::Locations => {
            let after = match cursor {
                Cursor::Key(k) => Some(k),
                _ => None,
            };
            let rows = locations::after_code_key(reader, after, PAGE).await?;
            let next = done(
                rows.len(),
                rows.last()
                    .map_or(Cursor::Done, |l| Cursor::Key(l.code_key.clone())),
            );
            let chunk = lines(rows.iter().map(|l| {
                [
                    l.code.clone(),
                    l.name.clone(),
                    l.address.clone().unwrap_or_default(),
                    l.active.to_string(),
                ]
            }))?;
            Ok((chunk, next))
        }
        ExportKind::Batches => {
            let after = match cursor {
                Cursor::Id(id) => Some(id),
                _ => None,
            };
            let rows = bulk::batch_lines(reader, after, PAGE).await?;
            let next = done(
                rows.len(),
                rows.last().map_or(Cursor::Done, |b| Cursor::Id(b.id)),
            );
            let chunk = lines(rows.iter().map(|b| {
                [
                    b.sku.clone(),
                    b.location_code.clone(),
                    quantity(b.quantity),
                    b.lot.clone().unwrap_or_default(),
                    b.expiry.map(|d| d.to_string()).unwrap_or_default(),
                    b.unit_cost.map(|c| c.to_string()).unwrap_or_default(),
                    b.currency.clone().unwrap_or_default(),
                    b.received_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                ]
            }))?;
            Ok((chunk, next))
        }
        ExportKind::Levels => {
            let after = match cursor {
                Cursor::Pair(p, l) => Some((p, l)),
                _ => None,
            };
            let rows = bulk::level_lines(reader, after, PAGE).await?;
            let next = done(
                rows.len(),
                rows.last()
                    .map_or(Cursor::Done, |l| Cursor::Pair(l.product_id, l.location_id)),
            );
            let chunk = lines(rows.iter().map(|l| {
                [
                    l.sku.clone(),
                    l.location_code.clone(),
                    quantity(l.on_hand),
                    quantity(l.reserved),
                    quantity(l.on_hand - l.reserved),
                    optional_quantity(l.reorder_point),
                ]
            }))?;
            Ok((chunk, next))
        }
    }
}
