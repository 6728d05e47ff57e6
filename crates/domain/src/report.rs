//! Reports: the fixed list of report types, their parameters (checked once, then typed), the
//! job's states, the columns each report writes and which of them hold personal data.
//!
//! A report request is `{type, params}`. [`ReportParams::parse`] reads the parameters of the
//! type — every failing field at once, unknown keys refused — and *resolves* them: an open date
//! range becomes the last `max_span_days`, so what a job stores is exactly what it covered and
//! two requests for the same thing compare equal.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::stock::MovementKind;
use crate::string_enum;
use crate::trade::{PoState, money};
use crate::validation::FieldError;

/// What a redacted cell holds.
pub const REDACTED: &str = "***";

/// The longest `within_days` of an expiring-batches report.
pub const MAX_WITHIN_DAYS: i64 = 3_650;

string_enum! {
    /// The report types.
    pub enum ReportType {
        StockOnHand = "stock_on_hand",
        StockValuation = "stock_valuation",
        Movements = "movements",
        ExpiringBatches = "expiring_batches",
        PurchaseOrders = "purchase_orders",
        SalesSummary = "sales_summary",
    }
}

string_enum! {
    /// `report_jobs.status`.
    pub enum ReportStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
        /// Succeeded once; its export has been deleted.
        Expired = "expired",
    }
}

impl ReportStatus {
    /// Whether the job may still change by itself (a worker will or does run it).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }

    /// Whether a job in this state may move to `next`.
    pub fn can_become(self, next: ReportStatus) -> bool {
        use ReportStatus as S;
        matches!(
            (self, next),
            (S::Queued, S::Running | S::Cancelled | S::Failed)
                | (
                    S::Running,
                    S::Succeeded | S::Failed | S::Cancelled | S::Queued
                )
                | (S::Succeeded, S::Expired)
        )
    }
}

string_enum! {
    /// The file a report is written as.
    pub enum ReportFormat { Csv = "csv" }
}

string_enum! {
    /// How a valuation is summed.
    pub enum ValuationGroup { Product = "product", Category = "category", Location = "location" }
}

string_enum! {
    /// How a sales summary is summed.
    pub enum SalesGroup { Day = "day", Product = "product", Customer = "customer" }
}

/// A half-open instant range `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The parameters of one report, checked and resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportParams {
    StockOnHand {
        /// On hand as the ledger had it at this instant; now when absent.
        as_of: Option<DateTime<Utc>>,
        location_id: Option<Uuid>,
        category_id: Option<Uuid>,
    },
    StockValuation {
        as_of: Option<DateTime<Utc>>,
        group_by: ValuationGroup,
    },
    Movements {
        range: Range,
        product_id: Option<Uuid>,
        location_id: Option<Uuid>,
        kind: Option<MovementKind>,
    },
    ExpiringBatches {
        /// Batches with stock whose expiry is before today + `within_days` (expired included).
        within_days: i64,
    },
    PurchaseOrders {
        /// Orders created in the range.
        range: Range,
        state: Option<PoState>,
    },
    SalesSummary {
        /// Orders confirmed in the range (never cancelled, drafts excluded).
        range: Range,
        group_by: SalesGroup,
    },
}

/// Reads the parameters of one report: keys, types and ranges.
struct Reader<'a> {
    params: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Reader<'a> {
    fn field(name: &str) -> String {
        format!("params.{name}")
    }

    fn fail(&mut self, name: &str, code: &str, message: impl Into<String>) {
        self.errors
            .push(FieldError::new(Self::field(name), code, message.into()));
    }

    fn string(&mut self, name: &str) -> Option<&'a str> {
        match self.params.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.fail(name, "invalid_type", "must be a string");
                None
            }
        }
    }

    fn uuid(&mut self, name: &str) -> Option<Uuid> {
        let text = self.string(name)?;
        let parsed = Uuid::parse_str(text).ok();
        if parsed.is_none() {
            self.fail(name, "invalid_format", "must be a UUID");
        }
        parsed
    }

    fn choice<T>(
        &mut self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        values: &[&str],
    ) -> Option<T> {
        let text = self.string(name)?;
        let parsed = parse(text);
        if parsed.is_none() {
            self.fail(
                name,
                "invalid_choice",
                format!("must be one of: {}", values.join(", ")),
            );
        }
        parsed
    }

    /// A date (`2026-01-31`) or an RFC 3339 instant. A date means the start of that day (UTC),
    /// or its end when `end_of_day` (so a range's `to` date is included).
    fn instant(&mut self, name: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
        let text = self.string(name)?;
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let start = date.and_time(NaiveTime::MIN).and_utc();
            return Some(if end_of_day {
                start + Duration::days(1)
            } else {
                start
            });
        }
        match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Some(at.with_timezone(&Utc)),
            Err(_) => {
                self.fail(
                    name,
                    "invalid_format",
                    "must be a date (YYYY-MM-DD) or an RFC 3339 date-time",
                );
                None
            }
        }
    }

    /// An instant that may not lie after today; one later today (the end of today, when
    /// given as today's date) is now.
    fn until_now(&mut self, name: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = self.instant(name, true)?;
        let end_of_today = now.date_naive().and_time(NaiveTime::MIN).and_utc() + Duration::days(1);
        if at > end_of_today {
            self.fail(name, "in_future", "must not be after today");
        }
        Some(at.min(now))
    }

    /// `from`/`to` (both required when `required`): `to` after `from`, at most `max_days`
    /// apart; a missing end is now, a missing start `max_days` before the end.
    fn range(&mut self, required: bool, max_days: i64, now: DateTime<Utc>) -> Option<Range> {
        let before = self.errors.len();
        let from = self.instant("from", false);
        let to = self.instant("to", true);
        for (name, value) in [("from", from), ("to", to)] {
            if required && value.is_none() && !self.params.contains_key(name) {
                self.fail(name, "required", "is required");
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to - Duration::days(max_days));
        if to <= from {
            self.fail("to", "before_from", "must be after `from`");
            return None;
        }
        if to - from > Duration::days(max_days) {
            self.fail(
                "to",
                "span_too_long",
                format!("the range may span at most {max_days} days"),
            );
            return None;
        }
        Some(Range { from, to })
    }

    fn unknown_keys(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self
            .params
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.fail(&key, "unknown_field", "is not a parameter of this report");
        }
    }
}

impl ReportParams {
    /// Reads `params` (an object, or null for none) as the parameters of `kind`; every problem
    /// at once, each named `params.<key>`.
    pub fn parse(
        kind: ReportType,
        params: &Value,
        max_span_days: i64,
        now: DateTime<Utc>,
    ) -> Result<Self, Vec<FieldError>> {
        let empty = Map::new();
        let params = match params {
            Value::Object(map) => map,
            Value::Null => &empty,
            _ => {
                return Err(vec![FieldError::new(
                    "params",
                    "invalid_type",
                    "must be an object",
                )]);
            }
        };
        let mut r = Reader {
            params,
            errors: Vec::new(),
        };
        r.unknown_keys(kind.keys());
        let parsed = match kind {
            ReportType::StockOnHand => {
                let as_of = r.until_now("as_of", now);
                Self::StockOnHand {
                    as_of,
                    location_id: r.uuid("location_id"),
                    category_id: r.uuid("category_id"),
                }
            }
            ReportType::StockValuation => {
                let as_of = r.until_now("as_of", now);
                let group_by = r.choice("group_by", ValuationGroup::parse, ValuationGroup::VALUES);
                Self::StockValuation {
                    as_of,
                    group_by: group_by.unwrap_or(ValuationGroup::Product),
                }
            }
            ReportType::Movements => {
                let product_id = r.uuid("product_id");
                let location_id = r.uuid("location_id");
                let kind = r.choice("kind", MovementKind::parse, MovementKind::VALUES);
                let range = r.range(true, max_span_days, now);
                match range {
                    Some(range) => Self::Movements {
                        range,
                        product_id,
                        location_id,
                        kind,
                    },
                    None => return Err(r.errors),
                }
            }
            ReportType::ExpiringBatches => {
                let within_days = match params.get("within_days") {
                    None | Some(Value::Null) => {
                        r.fail("within_days", "required", "is required");
                        0
                    }
                    Some(v) => match v.as_i64() {
                        Some(n) if (0..=MAX_WITHIN_DAYS).contains(&n) => n,
                        _ => {
                            r.fail(
                                "within_days",
                                "out_of_range",
                                format!("must be a whole number from 0 to {MAX_WITHIN_DAYS}"),
                            );
                            0
                        }
                    },
                };
                Self::ExpiringBatches { within_days }
            }
            ReportType::PurchaseOrders => {
                let state = r.choice("state", PoState::parse, PoState::VALUES);
                match r.range(false, max_span_days, now) {
                    Some(range) => Self::PurchaseOrders { range, state },
                    None => return Err(r.errors),
                }
            }
            ReportType::SalesSummary => {
                let group_by = r.choice("group_by", SalesGroup::parse, SalesGroup::VALUES);
                match r.range(false, max_span_days, now) {
                    Some(range) => Self::SalesSummary {
                        range,
                        group_by: group_by.unwrap_or(SalesGroup::Day),
                    },
                    None => return Err(r.errors),
                }
            }
        };
        if r.errors.is_empty() {
            Ok(parsed)
        } else {
            Err(r.errors)
        }
    }

    pub fn kind(&self) -> ReportType {
        match self {
            Self::StockOnHand { .. } => ReportType::StockOnHand,
            Self::StockValuation { .. } => ReportType::StockValuation,
            Self::Movements { .. } => ReportType::Movements,
            Self::ExpiringBatches { .. } => ReportType::ExpiringBatches,
            Self::PurchaseOrders { .. } => ReportType::PurchaseOrders,
            Self::SalesSummary { .. } => ReportType::SalesSummary,
        }
    }

    /// The resolved parameters as stored on the job (and read back by [`ReportParams::parse`]
    /// to the same value).
    pub fn to_json(&self) -> Value {
        fn at(at: &DateTime<Utc>) -> Value {
            Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        }
        let mut map = Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        };
        let id = |id: &Option<Uuid>| id.map(|id| Value::String(id.to_string()));
        match self {
            Self::StockOnHand {
                as_of,
                location_id,
                category_id,
            } => {
                put("as_of", as_of.as_ref().map(at));
                put("location_id", id(location_id));
                put("category_id", id(category_id));
            }
            Self::StockValuation { as_of, group_by } => {
                put("as_of", as_of.as_ref().map(at));
                put("group_by", Some(group_by.as_str().into()));
            }
            Self::Movements {
                range,
                product_id,
                location_id,
                kind,
            } => {
                put("from", Some(at(&range.from)));
                put("to", Some(at(&range.to)));
                put("product_id", id(product_id));
                put("location_id", id(location_id));
                put("kind", kind.map(|k| k.as_str().into()));
            }
            Self::ExpiringBatches { within_days } => {
                put("within_days", Some((*within_days).into()))
            }
            Self::PurchaseOrders { range, state } => {
                put("from", Some(at(&range.from)));
                put("to", Some(at(&range.to)));
                put("state", state.map(|s| s.as_str().into()));
            }
            Self::SalesSummary { range, group_by } => {
                put("from", Some(at(&range.from)));
                put("to", Some(at(&range.to)));
                put("group_by", Some(group_by.as_str().into()));
            }
        }
        Value::Object(map)
    }

    /// The CSV header of this report.
    pub fn columns(&self) -> &'static [&'static str] {
        match self {
            Self::StockOnHand { .. } => &[
                "product_id",
                "sku",
                "product_name",
                "category",
                "location_id",
                "location_code",
                "unit",
                "on_hand",
                "reserved",
                "available",
            ],
            Self::StockValuation { group_by, .. } => match group_by {
                ValuationGroup::Product => &[
                    "product_id",
                    "sku",
                    "product_name",
                    "currency",
                    "quantity",
                    "value_minor",
                    "average_unit_cost_minor",
                    "layers",
                    "uncosted_quantity",
                ],
                ValuationGroup::Category => &[
                    "category_id",
                    "category",
                    "currency",
                    "quantity",
                    "value_minor",
                    "layers",
                    "uncosted_quantity",
                ],
                ValuationGroup::Location => &[
                    "location_id",
                    "location_code",
                    "currency",
                    "quantity",
                    "value_minor",
                    "layers",
                    "uncosted_quantity",
                ],
            },
            Self::Movements { .. } => &[
                "movement_id",
                "created_at",
                "kind",
                "product_id",
                "sku",
                "location_id",
                "location_code",
                "batch_id",
                "quantity",
                "balance_after",
                "reason",
                "reference_type",
                "reference_id",
                "actor_id",
            ],
            Self::ExpiringBatches { .. } => &[
                "batch_id",
                "product_id",
                "sku",
                "product_name",
                "location_id",
                "location_code",
                "lot",
                "expiry",
                "days_left",
                "quantity",
            ],
            Self::PurchaseOrders { .. } => &[
                "purchase_order_id",
                "created_at",
                "supplier",
                "state",
                "currency",
                "total_minor",
                "ordered_quantity",
                "received_quantity",
                "received_percent",
                "expected_at",
            ],
            Self::SalesSummary { group_by, .. } => match group_by {
                SalesGroup::Day => &["day", "currency", "orders", "quantity", "total_minor"],
                SalesGroup::Product => &[
                    "product_id",
                    "sku",
                    "product_name",
                    "currency",
                    "orders",
                    "quantity",
                    "total_minor",
                ],
                SalesGroup::Customer => &[
                    "customer_id",
                    "customer_name",
                    "customer_email",
                    "customer_phone",
                    "customer_address",
                    "currency",
                    "orders",
                    "quantity",
                    "total_minor",
                ],
            },
        }
    }

    /// The columns holding personal data, shown only to a holder of `reports.pii`.
    pub fn personal_columns(&self) -> &'static [&'static str] {
        match self {
            Self::SalesSummary {
                group_by: SalesGroup::Customer,
                ..
            } => &["customer_email", "customer_phone", "customer_address"],
            _ => &[],
        }
    }
}

impl ReportType {
    /// The parameters each type takes.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::StockOnHand => &["as_of", "location_id", "category_id"],
            Self::StockValuation => &["as_of", "group_by"],
            Self::Movements => &["from", "to", "product_id", "location_id", "kind"],
            Self::ExpiringBatches => &["within_days"],
            Self::PurchaseOrders => &["from", "to", "state"],
            Self::SalesSummary => &["from", "to", "group_by"],
        }
    }
}

/// The value of a cost layer: `quantity` (thousandths of a unit) at `unit_cost` (minor units
/// per unit), in minor units rounded half up. Exact in `i128`.
pub fn layer_value(quantity: i64, unit_cost: i64) -> i128 {
    money::round_thousandths(i128::from(quantity) * i128::from(unit_cost))
}

/// The average unit cost of layers worth `value` (minor units) holding `quantity`
/// (thousandths), rounded half up; none for no quantity.
pub fn average_unit_cost(value: i128, quantity: i128) -> Option<i128> {
    (quantity > 0).then(|| (value * 1000 * 2 + quantity) / (quantity * 2))
}

/// Percent of `done` out of `total`, 0–100 (100 only once done reaches the total).
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    let p = (u128::from(done.min(total)) * 100 / u128::from(total)) as u8;
    if done < total { p.min(99) } else { 100 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-15T12:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default()
    }

    fn fields(result: Result<ReportParams, Vec<FieldError>>) -> Vec<(String, String)> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    }

    #[test]
    fn every_bad_parameter_is_reported_at_once() {
        let errors = fields(ReportParams::parse(
            ReportType::Movements,
            &json!({"from": "yesterday", "kind": "theft", "product_id": "x", "colour": 1}),
            366,
            now(),
        ));
        let names: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        for field in [
            "params.colour",
            "params.from",
            "params.kind",
            "params.product_id",
            "params.to",
        ] {
            assert!(names.contains(&field), "{field} missing from {errors:?}");
        }
    }

    #[test]
    fn a_range_is_bounded_and_ordered() {
        let long = ReportParams::parse(
            ReportType::Movements,
            &json!({"from": "2025-01-01", "to": "2026-06-01"}),
            366,
            now(),
        );
        assert_eq!(
            fields(long),
            vec![("params.to".into(), "span_too_long".into())]
        );
        let backwards = ReportParams::parse(
            ReportType::Movements,
            &json!({"from": "2026-02-01", "to": "2026-01-01"}),
            366,
            now(),
        );
        assert_eq!(
            fields(backwards),
            vec![("params.to".into(), "before_from".into())]
        );
    }

    #[test]
    fn a_to_date_includes_its_day_and_an_open_range_is_the_last_span() {
        let Ok(ReportParams::Movements { range, .. }) = ReportParams::parse(
            ReportType::Movements,
            &json!({"from": "2026-01-01", "to": "2026-01-31"}),
            366,
            now(),
        ) else {
            panic!("valid movements parameters refused");
        };
        assert_eq!(range.to - range.from, Duration::days(31));
        let Ok(ReportParams::PurchaseOrders { range, state }) =
            ReportParams::parse(ReportType::PurchaseOrders, &Value::Null, 30, now())
        else {
            panic!("no parameters refused");
        };
        assert_eq!(
            (range.to, range.to - range.from),
            (now(), Duration::days(30))
        );
        assert_eq!(state, None);
    }

    #[test]
    fn resolved_parameters_read_back_to_the_same_value() {
        for (kind, params) in [
            (ReportType::StockOnHand, json!({"as_of": "2026-01-01"})),
            (ReportType::StockValuation, json!({"group_by": "category"})),
            (
                ReportType::Movements,
                json!({"from": "2026-01-01T10:00:00.5Z", "to": "2026-02-01", "kind": "sale"}),
            ),
            (ReportType::ExpiringBatches, json!({"within_days": 30})),
            (ReportType::PurchaseOrders, json!({"state": "sent"})),
            (ReportType::SalesSummary, json!({"group_by": "customer"})),
        ] {
            let Ok(first) = ReportParams::parse(kind, &params, 366, now()) else {
                panic!("{kind} {params} refused");
            };
            let again = ReportParams::parse(kind, &first.to_json(), 366, now());
            assert_eq!(again.as_ref().ok(), Some(&first), "{kind}");
            assert_eq!(first.kind(), kind);
        }
    }

    #[test]
    fn as_of_today_means_now() {
        let Ok(ReportParams::StockOnHand { as_of, .. }) = ReportParams::parse(
            ReportType::StockOnHand,
            &json!({"as_of": "2026-06-15"}),
            366,
            now(),
        ) else {
            panic!("today refused");
        };
        assert_eq!(as_of, Some(now()));
    }

    #[test]
    fn as_of_may_not_be_in_the_future() {
        let errors = fields(ReportParams::parse(
            ReportType::StockValuation,
            &json!({"as_of": "2027-01-01", "group_by": "shelf"}),
            366,
            now(),
        ));
        assert_eq!(
            errors,
            vec![
                ("params.as_of".into(), "in_future".into()),
                ("params.group_by".into(), "invalid_choice".into())
            ]
        );
    }

    #[test]
    fn only_customer_summaries_hold_personal_columns() {
        for kind in ReportType::ALL {
            let params = match kind {
                ReportType::Movements => json!({"from": "2026-01-01", "to": "2026-01-02"}),
                ReportType::ExpiringBatches => json!({"within_days": 5}),
                ReportType::SalesSummary => json!({"group_by": "customer"}),
                _ => Value::Null,
            };
            let Ok(p) = ReportParams::parse(*kind, &params, 366, now()) else {
                panic!("{kind} refused");
            };
            for column in p.personal_columns() {
                assert!(p.columns().contains(column));
            }
            assert_eq!(
                p.personal_columns().is_empty(),
                *kind != ReportType::SalesSummary
            );
        }
    }

    #[test]
    fn layer_values_round_half_up_and_average_costs_follow() {
        // 1.5 units at 333 minor units = 499.5 → 500.
        assert_eq!(layer_value(1_500, 333), 500);
        assert_eq!(layer_value(0, 999), 0);
        // 2 units worth 500 and 1 unit worth 100 → 600 / 3 = 200 each.
        assert_eq!(average_unit_cost(600, 3_000), Some(200));
        assert_eq!(average_unit_cost(100, 3_000), Some(33));
        assert_eq!(average_unit_cost(5, 0), None);
    }

    #[test]
    fn states_move_forward_only() {
        use ReportStatus as S;
        assert!(S::Queued.can_become(S::Cancelled));
        assert!(S::Running.can_become(S::Succeeded));
        assert!(S::Succeeded.can_become(S::Expired));
        assert!(!S::Succeeded.can_become(S::Cancelled));
        assert!(!S::Cancelled.can_become(S::Running));
        assert!(!S::Expired.can_become(S::Succeeded));
    }

    #[test]
    fn progress_reaches_100_only_when_done() {
        assert_eq!(percent(0, 0), 0);
        assert_eq!(percent(999, 1_000), 99);
        assert_eq!(percent(1_000, 1_000), 100);
        assert_eq!(percent(5, 10), 50);
    }
}
