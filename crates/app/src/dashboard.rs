//! The dashboard: a few figures an operations team looks at first — what the stock is worth,
//! what is low, out or expiring, which purchase orders are under way, what sold today and this
//! month.
//!
//! Each group of figures is cached under its own namespace, retired by the commits that
//! change it ([`invalidation`]: the events a unit of work emits say what changed), so the next
//! request after a stock change sees the new figure — on every instance when the cache is
//! shared through Redis. Keys are versioned by the day where the figure depends on it.
//! Concurrent misses load once (the cache's single flight); a failed load is never cached.

use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, NaiveTime};
use depot_adapters::cache::Cache;
use depot_domain::AppResult;
use depot_domain::stock::AlertKind;
use depot_store::Db;
use depot_store::repo::report_rows::{self as rows, CurrencyTotal};
use serde::{Deserialize, Serialize};

use crate::uow::EventInvalidation;

/// Stock figures: value, alerts, expiry.
pub const STOCK: &str = "dashboard.stock";
/// Purchase orders under way.
pub const PURCHASING: &str = "dashboard.purchasing";
/// Sales today and this month.
pub const SALES: &str = "dashboard.sales";

/// Which events retire which figures: every stock change, import, transfer, count and alert
/// the stock ones; purchase-order transitions the purchasing ones; sales-order and payment
/// transitions the sales ones.
pub fn invalidation(cache: Arc<Cache>) -> EventInvalidation {
    let mut invalidation = EventInvalidation::new(cache);
    invalidation.follow(
        STOCK,
        &[
            "stock.changed",
            "import.applied",
            "transfer.completed",
            "count.posted",
            "alert.raised",
            "alert.resolved",
        ],
    );
    invalidation.follow(PURCHASING, &["purchase_order.transitioned"]);
    invalidation.follow(SALES, &["sales_order.transitioned", "payment.transitioned"]);
    invalidation
}

/// An amount in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Amount {
    pub currency: String,
    /// In minor units.
    pub amount_minor: i64,
    /// The records summed (cost layers, orders).
    pub count: i64,
}

impl From<CurrencyTotal> for Amount {
    fn from(t: CurrencyTotal) -> Self {
        Self {
            currency: t.currency,
            amount_minor: t.total,
            count: t.count,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StockFigures {
    /// The value of the stock on hand per currency (each costed batch's quantity × unit cost).
    pub on_hand_value: Vec<Amount>,
    /// Levels at or below their reorder point (unresolved `low_stock` alerts).
    pub low_stock: i64,
    /// Levels with nothing on hand (unresolved `out_of_stock` alerts).
    pub out_of_stock: i64,
    /// Batches with stock expiring within `expiring_within_days` (or expired).
    pub expiring: i64,
    pub expiring_within_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StateCount {
    pub state: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurchasingFigures {
    /// Purchase orders under way (submitted to partially received), per state.
    pub open_by_state: Vec<StateCount>,
    pub open_total: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesFigures {
    /// Orders confirmed today (UTC) and not cancelled, per currency.
    pub today: Vec<Amount>,
    /// Orders confirmed this month (UTC) and not cancelled, per currency.
    pub this_month: Vec<Amount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DashboardSummary {
    pub stock: StockFigures,
    pub purchasing: PurchasingFigures,
    pub sales: SalesFigures,
}

#[derive(Clone)]
pub struct DashboardService {
    db: Db,
    cache: Arc<Cache>,
    clock: Arc<dyn depot_domain::Clock>,
    warning_days: u32,
    ttl: Duration,
}

impl DashboardService {
    pub fn new(
        db: Db,
        cache: Arc<Cache>,
        clock: Arc<dyn depot_domain::Clock>,
        warning_days: u32,
        ttl: Duration,
    ) -> Self {
        Self {
            db,
            cache,
            clock,
            warning_days,
            ttl,
        }
    }

    /// The summary; expiring counted within `expiring_days` (the expiry warning by default).
    pub async fn summary(&self, expiring_days: Option<u32>) -> AppResult<DashboardSummary> {
        let now = self.clock.now();
        let today = now.date_naive();
        let days = expiring_days.unwrap_or(self.warning_days);
        let db = &self.db;
        let stock = self
            .cache
            .get_or_load(STOCK, &format!("{today}:{days}"), self.ttl, || async move {
                load("stock", async {
                    let reader = db.reader();
                    let alerts = rows::unresolved_alerts(reader).await?;
                    let count = |kind: AlertKind| {
                        alerts
                            .iter()
                            .find(|t| t.key == kind.as_str())
                            .map_or(0, |t| t.count)
                    };
                    Ok(StockFigures {
                        on_hand_value: rows::stock_value(reader)
                            .await?
                            .into_iter()
                            .map(Amount::from)
                            .collect(),
                        low_stock: count(AlertKind::LowStock),
                        out_of_stock: count(AlertKind::OutOfStock),
                        expiring: rows::count_expiring(
                            reader,
                            today + chrono::Duration::days(i64::from(days)),
                        )
                        .await?,
                        expiring_within_days: days,
                    })
                })
                .await
            })
            .await?;
        let purchasing = self
            .cache
            .get_or_load(PURCHASING, "open", self.ttl, || async move {
                load("purchasing", async {
                    let open = rows::open_purchase_orders(db.reader()).await?;
                    Ok(PurchasingFigures {
                        open_total: open.iter().map(|t| t.count).sum(),
                        open_by_state: open
                            .into_iter()
                            .map(|t| StateCount {
                                state: t.key,
                                count: t.count,
                            })
                            .collect(),
                    })
                })
                .await
            })
            .await?;
        let sales = self
            .cache
            .get_or_load(SALES, &today.to_string(), self.ttl, || async move {
                load("sales", async {
                    let start_of_day = today.and_time(NaiveTime::MIN).and_utc();
                    let start_of_month = today
                        .with_day(1)
                        .unwrap_or(today)
                        .and_time(NaiveTime::MIN)
                        .and_utc();
                    let reader = db.reader();
                    Ok(SalesFigures {
                        today: amounts(rows::sales_since(reader, start_of_day).await?),
                        this_month: amounts(rows::sales_since(reader, start_of_month).await?),
                    })
                })
                .await
            })
            .await?;
        Ok(DashboardSummary {
            stock,
            purchasing,
            sales,
        })
    }
}

fn amounts(totals: Vec<CurrencyTotal>) -> Vec<Amount> {
    totals.into_iter().map(Amount::from).collect()
}

/// Runs a figure's load from the database, counted (`depot_dashboard_loads_total`).
async fn load<T>(figure: &'static str, work: impl Future<Output = AppResult<T>>) -> AppResult<T> {
    metrics::counter!("depot_dashboard_loads_total", "figure" => figure).increment(1);
    work.await
}
