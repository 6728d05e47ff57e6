//! Importing the catalogue: products upsert by SKU, locations by code. Each row is checked by
//! the same rules as the API's create and update; a column the file does not have leaves that
//! field of an existing record as it is, an empty cell clears it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use depot_domain::import::{Header, ImportSummary, RowError, parse_bool, present};
use depot_domain::stock::{DepletionPolicy, ProductStatus, Quantity, Unit};
use depot_domain::{AppResult, FieldError, Validator};
use depot_store::ConnectionTrait;
use depot_store::entity::{location, product};
use depot_store::repo::{categories, locations, products, stock};
use uuid::Uuid;

use super::csv::{CsvFile, Mark};
use super::progress::Progress;
use crate::catalog::{search_text, unit_of, validate_location, validate_product};

/// Rows of a products file checked (and written) together: what they refer to is read for
/// them alone, so memory stays bounded whatever the file's size.
const CHUNK_ROWS: usize = 5_000;

/// What a check found a record to be, counted in `summary`; kept in `writes` when it is to be
/// written.
fn plan<M: PartialEq>(
    summary: &mut ImportSummary,
    writes: &mut Vec<M>,
    before: Option<&M>,
    next: M,
    touch: impl FnOnce(&mut M),
) {
    match before {
        Some(old) if *old == next => summary.unchanged += 1,
        Some(_) => {
            let mut next = next;
            touch(&mut next);
            summary.updated += 1;
            writes.push(next);
        }
        None => {
            summary.created += 1;
            writes.push(next);
        }
    }
}

/// The second and later rows naming the same key: whether this is one.
fn duplicate(
    seen: &mut HashMap<String, u64>,
    key: String,
    row: u64,
    v: &mut Validator,
    column: &str,
) -> bool {
    if let Some(first) = seen.get(&key) {
        v.push(FieldError::new(
            column,
            "import.duplicate",
            format!("is also on row {first}"),
        ));
        true
    } else {
        seen.insert(key, row);
        false
    }
}

/// A reorder threshold in `unit`: a non-negative number of the unit's precision.
fn threshold(v: &mut Validator, column: &str, cell: Option<&str>, unit: Unit) -> Option<i64> {
    let text = present(cell)?;
    match Quantity::parse(text, unit) {
        Ok(q) if q.is_negative() => {
            v.push(FieldError::new(
                column,
                "quantity.negative",
                "must not be negative",
            ));
            None
        }
        Ok(q) => Some(q.thousandths()),
        Err(e) => {
            v.push(FieldError::new(column, "quantity.invalid", format!("{e}")));
            None
        }
    }
}

/// A cell naming one of an enum's values (`parse`), or an error listing them.
fn one_of<T: Copy>(
    v: &mut Validator,
    column: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    values: &[&str],
) -> Option<T> {
    let found = parse(text.trim());
    if found.is_none() {
        v.push(FieldError::new(
            column,
            "invalid",
            format!("must be one of {}", values.join(", ")),
        ));
    }
    found
}

fn flag(v: &mut Validator, column: &str, text: &str) -> Option<bool> {
    let found = parse_bool(text);
    if found.is_none() {
        v.push(FieldError::new(
            column,
            "invalid",
            "must be true or false (yes/no, 1/0)",
        ));
    }
    found
}

/// The columns an upsert of existing products writes: those the file has (a concurrent change
/// to any other stays), plus what follows from them.
pub(crate) fn product_columns(h: &Header) -> Vec<product::Column> {
    use product::Column as C;
    let mut columns = vec![C::Sku, C::SkuKey, C::Name, C::Search, C::UpdatedAt];
    for (name, column) in [
        ("unit", C::Unit),
        ("barcode", C::Barcode),
        ("reorder_point", C::ReorderPoint),
        ("reorder_quantity", C::ReorderQuantity),
        ("tracks_expiry", C::TracksExpiry),
        ("depletion_policy", C::DepletionPolicy),
        ("status", C::Status),
    ] {
        if h.has(name) {
            columns.push(column);
        }
    }
    if h.has("category_id") || h.has("category") {
        columns.push(C::CategoryId);
    }
    columns
}

/// The columns an upsert of existing locations writes (as [`product_columns`]).
pub(crate) fn location_columns(h: &Header) -> Vec<location::Column> {
    use location::Column as C;
    let mut columns = vec![C::Code, C::CodeKey, C::Name, C::UpdatedAt];
    for (name, column) in [("address", C::Address), ("active", C::Active)] {
        if h.has(name) {
            columns.push(column);
        }
    }
    columns
}

/// Checks a products file against the catalogue (read through `conn`): every row's errors,
/// and what it would write. With `write`, and while no row has failed, the rows are written
/// as they are checked (a chunk at a time, through `conn`): the caller's unit of work must
/// not commit when errors come back.
pub(crate) async fn check_products(
    conn: &impl ConnectionTrait,
    file: &CsvFile<'_>,
    now: DateTime<Utc>,
    write: bool,
    progress: &Progress,
) -> AppResult<(ImportSummary, Vec<RowError>)> {
    let h = &file.header;
    let columns = product_columns(h);
    let mut summary = ImportSummary::default();
    let mut errors = Vec::new();
    let mut seen_skus = HashMap::new();
    let mut seen_barcodes = HashMap::new();
    // Barcodes rows of earlier chunks took from their products (already written): they count
    // as their old owner's still, as every barcode does until the file is applied.
    let mut released: HashMap<String, Uuid> = HashMap::new();
    let mut unit_changes: Vec<(u64, Uuid)> = Vec::new();
    file.restart();
    let mut mark = Some(Mark::START);
    while let Some(from) = mark {
        // What the chunk's rows refer to.
        let (mut skus, mut barcodes, mut category_ids, mut category_names) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (unreadable, count, next) = file.rows_from(from, CHUNK_ROWS, |_, cells| {
            if let Some(sku) = present(h.cell(cells, "sku")) {
                skus.push(sku.to_lowercase());
            }
            if let Some(code) = present(h.cell(cells, "barcode")) {
                barcodes.push(code.to_owned());
            }
            if let Some(id) = present(h.cell(cells, "category_id")).and_then(|c| c.parse().ok()) {
                category_ids.push(id);
            }
            if let Some(name) = present(h.cell(cells, "category")) {
                category_names.push(name.to_lowercase());
            }
        });
        file.count_unkept(count - unreadable.len() as u64);
        for e in unreadable {
            file.keep(&mut errors, e);
        }
        let existing: HashMap<String, product::Model> = products::by_sku_keys(conn, &skus)
            .await?
            .into_iter()
            .map(|p| (p.sku_key.clone(), p))
            .collect();
        let barcode_owner: HashMap<String, Uuid> = products::by_barcodes(conn, &barcodes)
            .await?
            .into_iter()
            .filter_map(|p| p.barcode.map(|b| (b, p.id)))
            .collect();
        let known_categories: HashSet<Uuid> = categories::by_ids(conn, &category_ids)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let category_by_name: HashMap<String, Uuid> =
            categories::by_name_keys(conn, &category_names)
                .await?
                .into_iter()
                .map(|c| (c.name_key, c.id))
                .collect();
        drop((skus, barcodes, category_ids, category_names));

        // Every rule, every row of the chunk (its unreadable rows were reported above).
        let mut writes = Vec::new();
        file.rows_from(from, CHUNK_ROWS, |row, cells| {
            progress.advance(1);
            let mut v = Validator::new();
            let sku = h.cell(cells, "sku").unwrap_or_default().trim();
            let name = h.cell(cells, "name").unwrap_or_default().trim();
            let barcode = present(h.cell(cells, "barcode"));
            validate_product(&mut v, Some(sku), Some(name), barcode);
            let sku_key = sku.to_lowercase();
            duplicate(&mut seen_skus, sku_key.clone(), row, &mut v, "sku");
            let before = existing.get(&sku_key);
            let unit = match present(h.cell(cells, "unit")) {
                Some(text) => one_of(&mut v, "unit", text, Unit::parse, Unit::VALUES),
                None => match before {
                    Some(p) => Some(unit_of(p)),
                    None => {
                        v.push(FieldError::new(
                            "unit",
                            "required",
                            "is required for a new product",
                        ));
                        None
                    }
                },
            };
            // A barcode an earlier row names is that row's (it may have been written already:
            // the duplicate is the one error).
            if let Some(code) = barcode
                && !duplicate(&mut seen_barcodes, code.to_owned(), row, &mut v, "barcode")
            {
                let owner = barcode_owner.get(code).or_else(|| released.get(code));
                v.check(
                    owner.is_none() || owner == before.map(|p| &p.id),
                    "barcode",
                    "products.barcode_taken",
                    "another product has this barcode",
                );
            }
            let by_id = present(h.cell(cells, "category_id")).map(|text| {
                let id = text
                    .parse::<Uuid>()
                    .ok()
                    .filter(|id| known_categories.contains(id));
                if id.is_none() {
                    v.push(FieldError::new(
                        "category_id",
                        "categories.not_found",
                        "no category has this id",
                    ));
                }
                id
            });
            let by_name = present(h.cell(cells, "category")).map(|text| {
                let id = category_by_name.get(&text.to_lowercase()).copied();
                if id.is_none() {
                    v.push(FieldError::new(
                        "category",
                        "categories.not_found",
                        "no category has this name",
                    ));
                }
                id
            });
            if let (Some(Some(a)), Some(Some(b))) = (by_id, by_name) {
                v.check(
                    a == b,
                    "category",
                    "import.conflict",
                    "names another category than category_id",
                );
            }
            let policy = present(h.cell(cells, "depletion_policy")).map(|text| {
                one_of(
                    &mut v,
                    "depletion_policy",
                    text,
                    DepletionPolicy::parse,
                    DepletionPolicy::VALUES,
                )
            });
            let status = present(h.cell(cells, "status")).map(|text| {
                one_of(
                    &mut v,
                    "status",
                    text,
                    ProductStatus::parse,
                    ProductStatus::VALUES,
                )
            });
            let tracks =
                present(h.cell(cells, "tracks_expiry")).map(|t| flag(&mut v, "tracks_expiry", t));
            let Some(unit) = unit else {
                file.keep_fields(&mut errors, row, v);
                return;
            };
            let reorder_point = threshold(
                &mut v,
                "reorder_point",
                h.cell(cells, "reorder_point"),
                unit,
            );
            let reorder_quantity = threshold(
                &mut v,
                "reorder_quantity",
                h.cell(cells, "reorder_quantity"),
                unit,
            );
            if !v.is_empty() {
                file.keep_fields(&mut errors, row, v);
                return;
            }
            let mut next = before.cloned().unwrap_or_else(|| product::Model {
                id: depot_domain::id::new_id(),
                sku: String::new(),
                sku_key: String::new(),
                name: String::new(),
                unit: unit.as_str().to_owned(),
                category_id: None,
                barcode: None,
                reorder_point: None,
                reorder_quantity: None,
                tracks_expiry: false,
                depletion_policy: None,
                status: ProductStatus::Active.as_str().to_owned(),
                search: String::new(),
                created_at: now,
                updated_at: now,
            });
            next.sku = sku.to_owned();
            next.sku_key = sku_key;
            next.name = name.to_owned();
            next.unit = unit.as_str().to_owned();
            if h.has("category_id") || h.has("category") {
                next.category_id = by_id.flatten().or(by_name.flatten());
            }
            if h.has("barcode") {
                next.barcode = barcode.map(str::to_owned);
            }
            if h.has("reorder_point") {
                next.reorder_point = reorder_point;
            }
            if h.has("reorder_quantity") {
                next.reorder_quantity = reorder_quantity;
            }
            if let Some(tracks) = tracks.flatten() {
                next.tracks_expiry = tracks;
            }
            if h.has("depletion_policy") {
                next.depletion_policy = policy.flatten().map(|p| p.as_str().to_owned());
            }
            if let Some(status) = status.flatten() {
                next.status = status.as_str().to_owned();
            }
            next.search = search_text(&next.sku, &next.name, next.barcode.as_deref());
            if before.is_some_and(|old| old.unit != next.unit) {
                // Thresholds kept from before must fit the new unit's precision.
                for (column, value) in [
                    ("reorder_point", next.reorder_point),
                    ("reorder_quantity", next.reorder_quantity),
                ] {
                    let text = value.map(|t| Quantity::from_thousandths(t).to_string());
                    if text.is_some_and(|t| Quantity::parse(&t, unit).is_err()) {
                        file.keep(
                            &mut errors,
                            RowError::new(
                                row,
                                Some(column),
                                "quantity.invalid",
                                "does not fit the new unit; set it too",
                            ),
                        );
                        return;
                    }
                }
            }
            if let Some((old, code)) = before.and_then(|old| Some((old, old.barcode.as_ref()?)))
                && next.barcode.as_ref() != Some(code)
            {
                released.insert(code.clone(), old.id);
            }
            if let Some(old) = before.filter(|old| old.unit != next.unit) {
                unit_changes.push((row, old.id));
            }
            plan(&mut summary, &mut writes, before, next, |p| {
                p.updated_at = now
            });
        });
        if write && errors.is_empty() && file.dropped() == 0 {
            products::upsert_many(conn, writes, &columns).await?;
        }
        mark = next;
    }
    // A product with stock keeps its unit (its quantities are in it).
    let ids: Vec<Uuid> = unit_changes.iter().map(|(_, id)| *id).collect();
    let stocked: HashSet<Uuid> = stock::bulk::products_with_batches(conn, &ids)
        .await?
        .into_iter()
        .collect();
    for (row, id) in unit_changes {
        if stocked.contains(&id) {
            file.keep(
                &mut errors,
                RowError::new(
                    row,
                    Some("unit"),
                    "products.in_use",
                    "the product has stock: its unit cannot change",
                ),
            );
        }
    }
    Ok((summary, errors))
}

/// Checks a locations file against the locations there are; with `write`, and when no row
/// failed, writes it through `conn` (as [`check_products`]; a locations file is small: it is
/// checked whole).
pub(crate) async fn check_locations(
    conn: &impl ConnectionTrait,
    file: &CsvFile<'_>,
    now: DateTime<Utc>,
    write: bool,
    progress: &Progress,
) -> AppResult<(ImportSummary, Vec<RowError>)> {
    let h: &Header = &file.header;
    let mut codes = Vec::new();
    file.restart();
    let (mut errors, unreadable) = file.rows(|_, cells| {
        if let Some(code) = present(h.cell(cells, "code")) {
            codes.push(code.to_lowercase());
        }
    });
    file.count_unkept(unreadable - errors.len() as u64);
    let existing: HashMap<String, location::Model> = locations::by_code_keys(conn, &codes)
        .await?
        .into_iter()
        .map(|l| (l.code_key.clone(), l))
        .collect();
    let mut seen = HashMap::new();
    let mut summary = ImportSummary::default();
    let mut writes = Vec::new();
    let mut row_problems = Vec::new();
    file.rows(|row, cells| {
        progress.advance(1);
        let mut v = Validator::new();
        let code = h.cell(cells, "code").unwrap_or_default().trim();
        let name = h.cell(cells, "name").unwrap_or_default().trim();
        let address = present(h.cell(cells, "address"));
        validate_location(&mut v, Some(code), Some(name), address);
        let code_key = code.to_lowercase();
        duplicate(&mut seen, code_key.clone(), row, &mut v, "code");
        let active = present(h.cell(cells, "active")).map(|t| flag(&mut v, "active", t));
        if !v.is_empty() {
            file.keep_fields(&mut row_problems, row, v);
            return;
        }
        let before = existing.get(&code_key);
        let mut next = before.cloned().unwrap_or_else(|| location::Model {
            id: depot_domain::id::new_id(),
            code: String::new(),
            code_key: String::new(),
            name: String::new(),
            address: None,
            active: true,
            created_at: now,
            updated_at: now,
        });
        next.code = code.to_owned();
        next.code_key = code_key;
        next.name = name.to_owned();
        if h.has("address") {
            next.address = address.map(str::to_owned);
        }
        if let Some(active) = active.flatten() {
            next.active = active;
        }
        plan(&mut summary, &mut writes, before, next, |l| {
            l.updated_at = now
        });
    });
    errors.extend(row_problems);
    if write && errors.is_empty() && file.dropped() == 0 {
        locations::upsert_many(conn, writes, &location_columns(h)).await?;
    }
    Ok((summary, errors))
}
