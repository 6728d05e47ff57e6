//! What each report writes: its rows read in keyset pages from one snapshot, names looked up
//! a page of ids at a time, cells formatted (quantities as decimals, money in minor units),
//! personal columns redacted unless the job shows them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use depot_domain::AppResult;
use depot_domain::report::{
    REDACTED, ReportParams, SalesGroup, ValuationGroup, average_unit_cost, layer_value, percent,
};
use depot_domain::stock::Quantity;
use depot_store::DatabaseTransaction;
use depot_store::repo::report_rows::{
    self as rows, CustomerName, LevelScope, MovementScope, ProductName,
};
use futures::StreamExt;
use uuid::Uuid;

use super::sink::Sink;

/// Names kept at most per kind before the cache starts over (bounds memory on huge catalogues).
const NAMES_KEPT: usize = 100_000;

fn quantity(thousandths: i64) -> String {
    Quantity::from_thousandths(thousandths).to_string()
}

fn quantity_wide(thousandths: i128) -> String {
    match i64::try_from(thousandths) {
        Ok(q) => quantity(q),
        Err(_) => format!("{}.{:03}", thousandths / 1000, (thousandths % 1000).abs()),
    }
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_owned()
}

/// The names behind ids, fetched for the ids a page holds that are not known yet.
#[derive(Default)]
struct Names {
    products: HashMap<Uuid, ProductName>,
    categories: HashMap<Uuid, String>,
    locations: HashMap<Uuid, String>,
    customers: HashMap<Uuid, CustomerName>,
}

fn missing<'a, V>(
    known: &mut HashMap<Uuid, V>,
    ids: impl IntoIterator<Item = &'a Uuid>,
) -> Vec<Uuid> {
    if known.len() > NAMES_KEPT {
        known.clear();
    }
    let mut wanted: Vec<Uuid> = ids
        .into_iter()
        .filter(|id| !known.contains_key(id))
        .copied()
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// Looks ids up in slices a statement can carry.
const LOOKUP: usize = 1_000;

impl Names {
    async fn products<'a>(
        &mut self,
        tx: &DatabaseTransaction,
        ids: impl IntoIterator<Item = &'a Uuid>,
    ) -> AppResult<()> {
        for chunk in missing(&mut self.products, ids).chunks(LOOKUP) {
            for p in rows::products(tx, chunk).await? {
                self.products.insert(p.id, p);
            }
        }
        Ok(())
    }

    async fn locations<'a>(
        &mut self,
        tx: &DatabaseTransaction,
        ids: impl IntoIterator<Item = &'a Uuid>,
    ) -> AppResult<()> {
        for chunk in missing(&mut self.locations, ids).chunks(LOOKUP) {
            for l in rows::locations(tx, chunk).await? {
                self.locations.insert(l.id, l.name);
            }
        }
        Ok(())
    }

    async fn categories<'a>(
        &mut self,
        tx: &DatabaseTransaction,
        ids: impl IntoIterator<Item = &'a Uuid>,
    ) -> AppResult<()> {
        for chunk in missing(&mut self.categories, ids).chunks(LOOKUP) {
            for c in rows::categories(tx, chunk).await? {
                self.categories.insert(c.id, c.name);
            }
        }
        Ok(())
    }

    async fn customers<'a>(
        &mut self,
        tx: &DatabaseTransaction,
        ids: impl IntoIterator<Item = &'a Uuid>,
    ) -> AppResult<()> {
        for chunk in missing(&mut self.customers, ids).chunks(LOOKUP) {
            for c in rows::customers(tx, chunk).await? {
                self.customers.insert(c.id, c);
            }
        }
        Ok(())
    }

    fn product(&self, id: &Uuid) -> Option<&ProductName> {
        self.products.get(id)
    }

    fn location(&self, id: &Uuid) -> String {
        self.locations.get(id).cloned().unwrap_or_default()
    }

    fn category_of(&self, product: &Uuid) -> (Option<Uuid>, String) {
        let category = self.products.get(product).and_then(|p| p.category_id);
        let name = category
            .and_then(|c| self.categories.get(&c).cloned())
            .unwrap_or_default();
        (category, name)
    }
}

/// Where a walk along a time range has got to, 0–99.
fn along(from: DateTime<Utc>, to: DateTime<Utc>, at: DateTime<Utc>) -> u8 {
    let total = (to - from).num_milliseconds().max(1) as u64;
    let done = (at - from).num_milliseconds().max(0) as u64;
    percent(done, total).min(99)
}

/// Writes the report `params` describes, reading through `tx`.
pub(super) async fn produce(
    params: &ReportParams,
    shows_pii: bool,
    tx: &DatabaseTransaction,
    now: DateTime<Utc>,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    sink.header(params.columns())?;
    let mut names = Names::default();
    match params {
        ReportParams::StockOnHand {
            as_of,
            location_id,
            category_id,
        } => {
            let scope = LevelScope {
                location_id: *location_id,
                category_id: *category_id,
                as_of: *as_of,
            };
            stock_on_hand(tx, scope, &mut names, sink).await
        }
        ReportParams::StockValuation { as_of, group_by } => {
            stock_valuation(tx, *as_of, *group_by, &mut names, sink).await
        }
        ReportParams::Movements {
            range,
            product_id,
            location_id,
            kind,
        } => {
            let scope = MovementScope {
                from: range.from,
                to: range.to,
                product_id: *product_id,
                location_id: *location_id,
                kind: kind.map(|k| k.as_str()),
            };
            movements(tx, scope, &mut names, sink).await
        }
        ReportParams::ExpiringBatches { within_days } => {
            expiring(tx, now, *within_days, &mut names, sink).await
        }
        ReportParams::PurchaseOrders { range, state } => {
            purchase_orders(tx, range.from, range.to, state.map(|s| s.as_str()), sink).await
        }
        ReportParams::SalesSummary { range, group_by } => match group_by {
            SalesGroup::Day => sales_by_day(tx, range.from, range.to, sink).await,
            SalesGroup::Product | SalesGroup::Customer => {
                sales_by(
                    tx, *group_by, range.from, range.to, shows_pii, &mut names, sink,
                )
                .await
            }
        },
    }
}

async fn stock_on_hand(
    tx: &DatabaseTransaction,
    scope: LevelScope,
    names: &mut Names,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    let page_rows = sink.page_rows();
    sink.expect_rows(rows::count_levels(tx).await?);
    let mut after = None;
    loop {
        let page = rows::levels(tx, scope, after, page_rows).await?;
        names
            .products(tx, page.iter().map(|l| &l.product_id))
            .await?;
        names
            .locations(tx, page.iter().map(|l| &l.location_id))
            .await?;
        let categories: Vec<Uuid> = page
            .iter()
            .filter_map(|l| names.product(&l.product_id).and_then(|p| p.category_id))
            .collect();
        names.categories(tx, categories.iter()).await?;
        for level in &page {
            let product = names.product(&level.product_id);
            let (_, category) = names.category_of(&level.product_id);
            let available = level.reserved.map(|r| quantity(level.on_hand - r));
            sink.row([
                level.product_id.to_string(),
                text(product.map(|p| p.sku.as_str())),
                text(product.map(|p| p.name.as_str())),
                category,
                level.location_id.to_string(),
                names.location(&level.location_id),
                text(product.map(|p| p.unit.as_str())),
                quantity(level.on_hand),
                level.reserved.map(quantity).unwrap_or_default(),
                available.unwrap_or_default(),
            ])
            .await?;
        }
        match page.last() {
            Some(last) if page.len() as u64 == page_rows => {
                after = Some((last.product_id, last.location_id));
            }
            _ => return Ok(()),
        }
    }
}

/// The layers of one group in one currency.
#[derive(Default)]
struct Valuation {
    quantity: i128,
    value: i128,
    /// Quantity costed (layers with a unit cost), for the average.
    costed: i128,
    layers: u64,
    uncosted: i128,
}

async fn stock_valuation(
    tx: &DatabaseTransaction,
    as_of: Option<DateTime<Utc>>,
    group_by: ValuationGroup,
    names: &mut Names,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    let page_rows = sink.page_rows();
    // Summed per (group, currency) as the layers are walked; written in group order once
    // every layer is in. One entry per group: products, categories or locations.
    let mut groups: BTreeMap<(Uuid, String), Valuation> = BTreeMap::new();
    // Each layer's category is its product's.
    let category_of: HashMap<Uuid, Uuid> = if group_by == ValuationGroup::Category {
        rows::product_categories(tx).await?.into_iter().collect()
    } else {
        HashMap::new()
    };
    let mut add = |layer: &rows::LayerRow| {
        if layer.quantity <= 0 {
            return;
        }
        let key = match group_by {
            ValuationGroup::Product => layer.product_id,
            ValuationGroup::Location => layer.location_id,
            ValuationGroup::Category => category_of
                .get(&layer.product_id)
                .copied()
                .unwrap_or(Uuid::nil()),
        };
        let currency = layer.currency.clone().unwrap_or_default();
        let group = groups.entry((key, currency)).or_default();
        group.quantity += i128::from(layer.quantity);
        group.layers += 1;
        match layer.unit_cost {
            Some(cost) => {
                group.value += layer_value(layer.quantity, cost);
                group.costed += i128::from(layer.quantity);
            }
            None => group.uncosted += i128::from(layer.quantity),
        }
    };
    match as_of {
        None => {
            let mut after = None;
            loop {
                let page = rows::layers(tx, after, page_rows).await?;
                for layer in &page {
                    add(layer);
                }
                match page.last() {
                    Some(last) if page.len() as u64 == page_rows => after = Some(last.batch_id),
                    _ => break,
                }
            }
        }
        Some(as_of) => {
            let mut layers = std::pin::pin!(rows::layers_as_of(tx, as_of).await?);
            while let Some(layer) = layers.next().await {
                add(&layer?);
            }
        }
    }
    sink.expect_rows(groups.len() as u64);
    let mut keys: Vec<Uuid> = groups.keys().map(|(key, _)| *key).collect();
    keys.dedup();
    for chunk in keys.chunks(page_rows as usize) {
        match group_by {
            ValuationGroup::Product => names.products(tx, chunk.iter()).await?,
            ValuationGroup::Category => names.categories(tx, chunk.iter()).await?,
            ValuationGroup::Location => names.locations(tx, chunk.iter()).await?,
        }
        for key in chunk {
            let range = groups.range((*key, String::new())..);
            let of_key: Vec<(&(Uuid, String), &Valuation)> =
                range.take_while(|((k, _), _)| k == key).collect();
            for ((_, currency), v) in of_key {
                let common = [
                    currency.clone(),
                    quantity_wide(v.quantity),
                    v.value.to_string(),
                ];
                let tail = [v.layers.to_string(), quantity_wide(v.uncosted)];
                match group_by {
                    ValuationGroup::Product => {
                        let product = names.product(key);
                        let average = average_unit_cost(v.value, v.costed)
                            .map(|a| a.to_string())
                            .unwrap_or_default();
                        let head = [
                            key.to_string(),
                            text(product.map(|p| p.sku.as_str())),
                            text(product.map(|p| p.name.as_str())),
                        ];
                        sink.row(head.into_iter().chain(common).chain([average]).chain(tail))
                            .await?;
                    }
                    ValuationGroup::Category => {
                        let (id, name) = if key.is_nil() {
                            (String::new(), String::new())
                        } else {
                            (
                                key.to_string(),
                                names.categories.get(key).cloned().unwrap_or_default(),
                            )
                        };
                        sink.row([id, name].into_iter().chain(common).chain(tail))
                            .await?;
                    }
                    ValuationGroup::Location => {
                        let head = [key.to_string(), names.location(key)];
                        sink.row(head.into_iter().chain(common).chain(tail)).await?;
                    }
                }
            }
        }
    }
    Ok(())
}

async fn movements(
    tx: &DatabaseTransaction,
    scope: MovementScope<'_>,
    names: &mut Names,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    // Two pages are held at once (one written, the next read): each is half the setting, so
    // the rows in memory stay at `report_page_rows`.
    let page_rows = (sink.page_rows() / 2).max(1);
    let mut page = rows::movements(tx, scope, None, page_rows).await?;
    loop {
        names
            .products(tx, page.iter().map(|m| &m.product_id))
            .await?;
        names
            .locations(tx, page.iter().map(|m| &m.location_id))
            .await?;
        let next = match page.last() {
            Some(last) if page.len() as u64 == page_rows => {
                sink.position(along(scope.from, scope.to, last.created_at));
                Some((last.created_at, last.id))
            }
            _ => None,
        };
        let Some(after) = next else {
            return write_movements(&page, names, sink).await;
        };
        // The next page is read while this one is written: the database and the encoding
        // work at once (the writing touches the upload and the heartbeat, never `tx`).
        let (following, written) = futures::join!(
            rows::movements(tx, scope, Some(after), page_rows),
            write_movements(&page, names, sink)
        );
        written?;
        page = following?;
    }
}

async fn write_movements(
    page: &[rows::MovementRow],
    names: &Names,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    // The hottest loop of the reports: ids are encoded into buffers on the stack, names
    // borrowed, so a row costs three small allocations (its time and two quantities).
    let mut ids = [Uuid::encode_buffer(); 6];
    for m in page {
        let [id, product, location, batch, reference, actor] = &mut ids;
        let optional = |id: Option<Uuid>, buffer: &mut [u8; 45]| -> usize {
            id.map_or(0, |id| id.hyphenated().encode_lower(buffer).len())
        };
        let reference_len = optional(m.reference_id, reference);
        let actor_len = optional(m.actor_id, actor);
        let sku = names.product(&m.product_id).map_or("", |p| p.sku.as_str());
        let location_code = names
            .locations
            .get(&m.location_id)
            .map_or("", String::as_str);
        let created_at = m
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let (moved, balance) = (quantity(m.quantity), quantity(m.balance_after));
        sink.row([
            m.id.hyphenated().encode_lower(id).as_bytes(),
            created_at.as_bytes(),
            m.kind.as_bytes(),
            m.product_id.hyphenated().encode_lower(product).as_bytes(),
            sku.as_bytes(),
            m.location_id.hyphenated().encode_lower(location).as_bytes(),
            location_code.as_bytes(),
            m.batch_id.hyphenated().encode_lower(batch).as_bytes(),
            moved.as_bytes(),
            balance.as_bytes(),
            m.reason.as_deref().unwrap_or_default().as_bytes(),
            m.reference_type.as_deref().unwrap_or_default().as_bytes(),
            &reference[..reference_len],
            &actor[..actor_len],
        ])
        .await?;
    }
    Ok(())
}

async fn expiring(
    tx: &DatabaseTransaction,
    now: DateTime<Utc>,
    within_days: i64,
    names: &mut Names,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    let page_rows = sink.page_rows();
    let today = now.date_naive();
    let until = today + chrono::Duration::days(within_days);
    sink.expect_rows(u64::try_from(rows::count_expiring(tx, until).await?).unwrap_or(0));
    let mut after = None;
    loop {
        let page = rows::expiring(tx, until, after, page_rows).await?;
        names
            .products(tx, page.iter().map(|b| &b.product_id))
            .await?;
        names
            .locations(tx, page.iter().map(|b| &b.location_id))
            .await?;
        for b in &page {
            let product = names.product(&b.product_id);
            sink.row([
                b.id.to_string(),
                b.product_id.to_string(),
                text(product.map(|p| p.sku.as_str())),
                text(product.map(|p| p.name.as_str())),
                b.location_id.to_string(),
                names.location(&b.location_id),
                text(b.lot.as_deref()),
                b.expiry.to_string(),
                (b.expiry - today).num_days().to_string(),
                quantity(b.quantity),
            ])
            .await?;
        }
        match page.last() {
            Some(last) if page.len() as u64 == page_rows => after = Some((last.expiry, last.id)),
            _ => return Ok(()),
        }
    }
}

async fn purchase_orders(
    tx: &DatabaseTransaction,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    state: Option<&str>,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    let page_rows = sink.page_rows();
    let mut after = None;
    loop {
        let page = rows::purchase_orders(tx, from, to, state, after, page_rows).await?;
        for po in &page {
            // Received against ordered, in percent with one decimal, never above 100 shown
            // as more than it is.
            let received_percent = if po.ordered > 0 {
                let tenths = (i128::from(po.received) * 1000 + i128::from(po.ordered) / 2)
                    / i128::from(po.ordered);
                format!("{}.{}", tenths / 10, tenths % 10)
            } else {
                String::new()
            };
            sink.row([
                po.id.to_string(),
                po.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                po.supplier.clone(),
                po.state.clone(),
                po.currency.clone(),
                po.total.to_string(),
                quantity(po.ordered),
                quantity(po.received),
                received_percent,
                po.expected_at.map(|d| d.to_string()).unwrap_or_default(),
            ])
            .await?;
        }
        match page.last() {
            Some(last) if page.len() as u64 == page_rows => {
                sink.position(along(from, to, last.created_at));
                after = Some((last.created_at, last.id));
            }
            _ => return Ok(()),
        }
    }
}

/// One day's sales in one currency.
#[derive(Default)]
struct DaySales {
    orders: u64,
    quantity: i128,
    total: i128,
}

async fn sales_by_day(
    tx: &DatabaseTransaction,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    let page_rows = sink.page_rows();
    // Orders come in time order, so a day is complete once a later one starts.
    let mut day: Option<chrono::NaiveDate> = None;
    let mut sums: BTreeMap<String, DaySales> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = rows::sold_orders(tx, from, to, after, page_rows).await?;
        for order in &page {
            let date = order.confirmed_at.date_naive();
            if day != Some(date) {
                if let Some(done) = day {
                    write_day(sink, done, std::mem::take(&mut sums)).await?;
                }
                day = Some(date);
            }
            let sum = sums.entry(order.currency.clone()).or_default();
            sum.orders += 1;
            sum.quantity += i128::from(order.quantity);
            sum.total += i128::from(order.total);
        }
        match page.last() {
            Some(last) if page.len() as u64 == page_rows => {
                sink.position(along(from, to, last.confirmed_at));
                after = Some((last.confirmed_at, last.id));
            }
            _ => break,
        }
    }
    if let Some(done) = day {
        write_day(sink, done, sums).await?;
    }
    Ok(())
}

async fn write_day(
    sink: &mut Sink<'_>,
    day: chrono::NaiveDate,
    sums: BTreeMap<String, DaySales>,
) -> AppResult<()> {
    for (currency, sum) in sums {
        sink.row([
            day.to_string(),
            currency,
            sum.orders.to_string(),
            quantity_wide(sum.quantity),
            sum.total.to_string(),
        ])
        .await?;
    }
    Ok(())
}

async fn sales_by(
    tx: &DatabaseTransaction,
    group_by: SalesGroup,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    shows_pii: bool,
    names: &mut Names,
    sink: &mut Sink<'_>,
) -> AppResult<()> {
    let page_rows = sink.page_rows();
    let by_customer = group_by == SalesGroup::Customer;
    let personal = |value: Option<&str>| {
        if shows_pii {
            text(value)
        } else {
            REDACTED.to_owned()
        }
    };
    let mut after = None;
    loop {
        let page = rows::sales_by(tx, by_customer, from, to, after, page_rows).await?;
        if by_customer {
            names.customers(tx, page.iter().map(|g| &g.key)).await?;
        } else {
            names.products(tx, page.iter().map(|g| &g.key)).await?;
        }
        for g in &page {
            let figures = [
                g.currency.clone(),
                g.orders.to_string(),
                quantity(g.quantity),
                g.total.to_string(),
            ];
            if by_customer {
                let c = names.customers.get(&g.key);
                let head = [
                    g.key.to_string(),
                    text(c.map(|c| c.name.as_str())),
                    personal(c.and_then(|c| c.email.as_deref())),
                    personal(c.and_then(|c| c.phone.as_deref())),
                    personal(c.and_then(|c| c.address.as_deref())),
                ];
                sink.row(head.into_iter().chain(figures)).await?;
            } else {
                let p = names.product(&g.key);
                let head = [
                    g.key.to_string(),
                    text(p.map(|p| p.sku.as_str())),
                    text(p.map(|p| p.name.as_str())),
                ];
                sink.row(head.into_iter().chain(figures)).await?;
            }
        }
        match page.last() {
            Some(last) if page.len() as u64 == page_rows => {
                after = Some((last.key, last.currency.clone()));
            }
            _ => return Ok(()),
        }
    }
}
