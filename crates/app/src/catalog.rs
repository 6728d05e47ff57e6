//! The catalogue: categories, products and locations, and resolving a scanned barcode.
//!
//! Codes people type (SKU, category name, location code) are unique case-insensitively; a
//! product's unit decides the precision of every quantity of it; an archived product and an
//! inactive location take no new stock, but what they hold can still go out.

use chrono::{DateTime, NaiveDate, Utc};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::stock::gs1::{self, Gs1Error};
use depot_domain::stock::{DepletionPolicy, ProductFilter, ProductStatus, Quantity, Unit};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, FieldError, Validator};
use depot_store::ConnectionTrait;
use depot_store::entity::{category, location, product};
use depot_store::on_constraint;
use depot_store::repo::{categories, locations, products, stock};
use serde::Serialize;
use uuid::Uuid;

use crate::audit::audit_json;
use crate::client::ClientInfo;
use crate::uow::{Writer, audited};

/// Longest product or location name.
pub const NAME_MAX: usize = 200;
/// Longest location address.
pub const ADDRESS_MAX: usize = 1_000;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CategoryView {
    pub id: Uuid,
    pub name: String,
    /// The category's default; absent = the configured default.
    pub depletion_policy: Option<DepletionPolicy>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit: Unit,
    pub category_id: Option<Uuid>,
    pub barcode: Option<String>,
    /// In the product's unit.
    #[schema(value_type = Option<f64>)]
    pub reorder_point: Option<serde_json::Value>,
    #[schema(value_type = Option<f64>)]
    pub reorder_quantity: Option<serde_json::Value>,
    pub tracks_expiry: bool,
    /// The product's override; absent = its category's, else the configured default.
    pub depletion_policy: Option<DepletionPolicy>,
    pub status: ProductStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LocationView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub address: Option<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a scanned code names.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BarcodeView {
    /// `barcode` (a product's own barcode) or `gs1` (an element string naming its GTIN).
    pub source: &'static str,
    pub product: ProductView,
    pub gtin: Option<String>,
    pub lot: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub serial: Option<String>,
}

/// A stored depletion policy (the `CHECK` admits only known ones).
pub(crate) fn policy(stored: Option<&str>) -> Option<DepletionPolicy> {
    stored.and_then(DepletionPolicy::parse)
}

fn category_view(c: category::Model) -> CategoryView {
    CategoryView {
        id: c.id,
        depletion_policy: policy(c.depletion_policy.as_deref()),
        name: c.name,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// The stored unit of a product (the `CHECK` constraint admits only known ones).
pub(crate) fn unit_of(p: &product::Model) -> Unit {
    Unit::parse(&p.unit).unwrap_or(Unit::Pieces)
}

pub(crate) fn product_view(p: product::Model) -> ProductView {
    let quantity = |q: Option<i64>| q.map(|t| Quantity::from_thousandths(t).to_json());
    ProductView {
        id: p.id,
        unit: unit_of(&p),
        reorder_point: quantity(p.reorder_point),
        reorder_quantity: quantity(p.reorder_quantity),
        depletion_policy: policy(p.depletion_policy.as_deref()),
        status: ProductStatus::parse(&p.status).unwrap_or(ProductStatus::Active),
        sku: p.sku,
        name: p.name,
        category_id: p.category_id,
        barcode: p.barcode,
        tracks_expiry: p.tracks_expiry,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

pub(crate) fn location_view(l: location::Model) -> LocationView {
    LocationView {
        id: l.id,
        code: l.code,
        name: l.name,
        address: l.address,
        active: l.active,
        created_at: l.created_at,
        updated_at: l.updated_at,
    }
}

/// Reads a quantity of `unit` from a JSON number, or records why not under `field`.
pub(crate) fn quantity_field(
    v: &mut Validator,
    field: &str,
    number: &serde_json::Number,
    unit: Unit,
) -> Option<Quantity> {
    match Quantity::from_json(number, unit) {
        Ok(q) => Some(q),
        Err(e) => {
            v.push(FieldError::new(field, "quantity.invalid", format!("{e}")));
            None
        }
    }
}

/// Reads a non-negative quantity (a reorder point or quantity) of `unit`.
fn threshold(
    v: &mut Validator,
    field: &str,
    number: Option<&serde_json::Number>,
    unit: Unit,
) -> Option<i64> {
    let q = quantity_field(v, field, number?, unit)?;
    v.check(
        !q.is_negative(),
        field,
        "quantity.negative",
        "must not be negative",
    );
    Some(q.thousandths())
}

fn sku_ok(sku: &str) -> bool {
    (1..=64).contains(&sku.len())
        && sku.starts_with(|c: char| c.is_ascii_alphanumeric())
        && sku
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

fn barcode_ok(code: &str) -> bool {
    (1..=64).contains(&code.len()) && code.chars().all(|c| c.is_ascii_graphic())
}

fn code_ok(code: &str) -> bool {
    (1..=32).contains(&code.len())
        && code.starts_with(|c: char| c.is_ascii_alphanumeric())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) fn search_text(sku: &str, name: &str, barcode: Option<&str>) -> String {
    format!("{sku}\n{name}\n{}", barcode.unwrap_or_default()).to_lowercase()
}

fn sku_taken() -> AppError {
    AppError::new(ErrorCode::ProductsSkuTaken, "another product has this SKU")
        .with_details(serde_json::json!({ "field": "sku" }))
}

fn barcode_taken() -> AppError {
    AppError::new(
        ErrorCode::ProductsBarcodeTaken,
        "another product has this barcode",
    )
    .with_details(serde_json::json!({ "field": "barcode" }))
}

fn category_name_taken() -> AppError {
    AppError::new(
        ErrorCode::CategoriesNameTaken,
        "a category with this name exists",
    )
    .with_details(serde_json::json!({ "field": "name" }))
}

fn code_taken() -> AppError {
    AppError::new(
        ErrorCode::LocationsCodeTaken,
        "another location has this code",
    )
    .with_details(serde_json::json!({ "field": "code" }))
}

pub(crate) fn product_not_found() -> AppError {
    AppError::new(ErrorCode::ProductsNotFound, "no such product")
}

pub(crate) fn location_not_found() -> AppError {
    AppError::new(ErrorCode::LocationsNotFound, "no such location")
}

pub(crate) fn category_not_found() -> AppError {
    AppError::new(ErrorCode::CategoriesNotFound, "no such category")
}

/// A new category.
#[derive(Debug, Clone)]
pub struct NewCategory {
    pub name: String,
    pub depletion_policy: Option<DepletionPolicy>,
}

/// Changes to a category; `Some(None)` clears the policy.
#[derive(Debug, Clone, Default)]
pub struct CategoryPatch {
    pub name: Option<String>,
    pub depletion_policy: Option<Option<DepletionPolicy>>,
}

/// A new product. Thresholds are JSON numbers read in the product's unit.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: String,
    pub name: String,
    pub unit: Unit,
    pub category_id: Option<Uuid>,
    pub barcode: Option<String>,
    pub reorder_point: Option<serde_json::Number>,
    pub reorder_quantity: Option<serde_json::Number>,
    pub tracks_expiry: bool,
    pub depletion_policy: Option<DepletionPolicy>,
    pub status: ProductStatus,
}

/// Changes to a product; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub unit: Option<Unit>,
    pub category_id: Option<Option<Uuid>>,
    pub barcode: Option<Option<String>>,
    pub reorder_point: Option<Option<serde_json::Number>>,
    pub reorder_quantity: Option<Option<serde_json::Number>>,
    pub tracks_expiry: Option<bool>,
    pub depletion_policy: Option<Option<DepletionPolicy>>,
    pub status: Option<ProductStatus>,
}

/// A new location.
#[derive(Debug, Clone)]
pub struct NewLocation {
    pub code: String,
    pub name: String,
    pub address: Option<String>,
    pub active: bool,
}

/// Changes to a location; `Some(None)` clears the address.
#[derive(Debug, Clone, Default)]
pub struct LocationPatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub address: Option<Option<String>>,
    pub active: Option<bool>,
}

#[derive(Clone)]
pub struct CatalogService {
    writer: Writer,
}

impl CatalogService {
    pub fn new(writer: Writer) -> Self {
        Self { writer }
    }

    fn reader(&self) -> &depot_store::DatabaseConnection {
        self.writer.db().reader()
    }

    // --- categories ---

    pub async fn list_categories(&self, page: &PageRequest) -> AppResult<Page<CategoryView>> {
        let page = categories::list(self.reader(), page).await?;
        Ok(map_page(page, category_view))
    }

    pub async fn get_category(&self, id: Uuid) -> AppResult<CategoryView> {
        categories::get(self.reader(), id)
            .await?
            .map(category_view)
            .ok_or_else(category_not_found)
    }

    pub async fn create_category(
        &self,
        actor: Actor,
        new: NewCategory,
        client: &ClientInfo,
    ) -> AppResult<CategoryView> {
        let mut v = Validator::new();
        v.line("name", &new.name, 1, NAME_MAX);
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let row = categories::insert(
            uow.tx(),
            category::Model {
                id: depot_domain::id::new_id(),
                name_key: new.name.to_lowercase(),
                name: new.name,
                depletion_policy: new.depletion_policy.map(|p| p.as_str().to_owned()),
                created_at: uow.now(),
                updated_at: uow.now(),
            },
        )
        .await
        .map_err(on_constraint(&categories::NAME_UNIQUE, category_name_taken))?;
        let shown = category_view(row);
        audited(
            uow,
            "category.created",
            ("category", shown.id),
            serde_json::Value::Null,
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update_category(
        &self,
        actor: Actor,
        id: Uuid,
        patch: CategoryPatch,
        client: &ClientInfo,
    ) -> AppResult<CategoryView> {
        let mut v = Validator::new();
        if let Some(name) = &patch.name {
            v.line("name", name, 1, NAME_MAX);
        }
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let mut row = categories::get(uow.tx(), id)
            .await?
            .ok_or_else(category_not_found)?;
        let before = category_view(row.clone());
        if let Some(name) = patch.name {
            row.name_key = name.to_lowercase();
            row.name = name;
        }
        if let Some(policy) = patch.depletion_policy {
            row.depletion_policy = policy.map(|p| p.as_str().to_owned());
        }
        row.updated_at = uow.now();
        let shown = category_view(
            categories::save(uow.tx(), row)
                .await
                .map_err(on_constraint(&categories::NAME_UNIQUE, category_name_taken))?,
        );
        audited(
            uow,
            "category.updated",
            ("category", id),
            audit_json(&before),
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Deletes a category no product is in.
    pub async fn delete_category(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(actor, client).await?;
        let row = categories::get(uow.tx(), id)
            .await?
            .ok_or_else(category_not_found)?;
        if categories::has_products(uow.tx(), id).await? {
            return Err(AppError::new(
                ErrorCode::CategoriesInUse,
                "the category still has products",
            ));
        }
        categories::delete(uow.tx(), id).await?;
        audited(
            uow,
            "category.deleted",
            ("category", id),
            audit_json(&category_view(row)),
            serde_json::Value::Null,
        )
        .await
    }

    // --- products ---

    pub async fn list_products(
        &self,
        filter: &ProductFilter,
        page: &PageRequest,
    ) -> AppResult<Page<ProductView>> {
        let page = if filter.search.is_some() {
            let reader = self.writer.db().custom_plan_reader().await?;
            products::list(&reader, filter, page).await?
        } else {
            products::list(self.reader(), filter, page).await?
        };
        Ok(map_page(page, product_view))
    }

    pub async fn get_product(&self, id: Uuid) -> AppResult<ProductView> {
        products::get(self.reader(), id)
            .await?
            .map(product_view)
            .ok_or_else(product_not_found)
    }

    pub async fn create_product(
        &self,
        actor: Actor,
        new: NewProduct,
        client: &ClientInfo,
    ) -> AppResult<ProductView> {
        let mut v = Validator::new();
        validate_product(
            &mut v,
            Some(&new.sku),
            Some(&new.name),
            new.barcode.as_deref(),
        );
        let reorder_point = threshold(
            &mut v,
            "reorder_point",
            new.reorder_point.as_ref(),
            new.unit,
        );
        let reorder_quantity = threshold(
            &mut v,
            "reorder_quantity",
            new.reorder_quantity.as_ref(),
            new.unit,
        );
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        ensure_category(uow.tx(), new.category_id).await?;
        let row = product::Model {
            id: depot_domain::id::new_id(),
            sku_key: new.sku.to_lowercase(),
            search: search_text(&new.sku, &new.name, new.barcode.as_deref()),
            sku: new.sku,
            name: new.name,
            unit: new.unit.as_str().to_owned(),
            category_id: new.category_id,
            barcode: new.barcode,
            reorder_point,
            reorder_quantity,
            tracks_expiry: new.tracks_expiry,
            depletion_policy: new.depletion_policy.map(|p| p.as_str().to_owned()),
            status: new.status.as_str().to_owned(),
            created_at: uow.now(),
            updated_at: uow.now(),
        };
        let shown = product_view(
            products::insert(uow.tx(), row)
                .await
                .map_err(on_constraint(&products::SKU_UNIQUE, sku_taken))
                .map_err(on_constraint(&products::BARCODE_UNIQUE, barcode_taken))?,
        );
        audited(
            uow,
            "product.created",
            ("product", shown.id),
            serde_json::Value::Null,
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update_product(
        &self,
        actor: Actor,
        id: Uuid,
        patch: ProductPatch,
        client: &ClientInfo,
    ) -> AppResult<ProductView> {
        let uow = self.writer.begin(actor, client).await?;
        let mut row = products::get(uow.tx(), id)
            .await?
            .ok_or_else(product_not_found)?;
        let before = product_view(row.clone());
        let unit = patch.unit.unwrap_or_else(|| unit_of(&row));
        let mut v = Validator::new();
        validate_product(
            &mut v,
            patch.sku.as_deref(),
            patch.name.as_deref(),
            patch.barcode.as_ref().and_then(Option::as_deref),
        );
        let reorder_point = patch
            .reorder_point
            .as_ref()
            .map(|n| threshold(&mut v, "reorder_point", n.as_ref(), unit));
        let reorder_quantity = patch
            .reorder_quantity
            .as_ref()
            .map(|n| threshold(&mut v, "reorder_quantity", n.as_ref(), unit));
        v.finish()?;
        if let Some(new_unit) = patch.unit
            && new_unit != unit_of(&row)
        {
            if stock::has_batches(uow.tx(), Some(id), None).await? {
                return Err(AppError::new(
                    ErrorCode::ProductsInUse,
                    "the product has stock: its unit cannot change",
                ));
            }
            // Thresholds kept from before must fit the new unit's precision.
            for (field, value) in [
                (
                    "reorder_point",
                    row.reorder_point.filter(|_| reorder_point.is_none()),
                ),
                (
                    "reorder_quantity",
                    row.reorder_quantity.filter(|_| reorder_quantity.is_none()),
                ),
            ] {
                if let Some(t) = value {
                    let text = Quantity::from_thousandths(t).to_string();
                    if Quantity::parse(&text, new_unit).is_err() {
                        return Err(AppError::validation(vec![FieldError::new(
                            field,
                            "quantity.invalid",
                            "does not fit the new unit; set it too",
                        )]));
                    }
                }
            }
            row.unit = new_unit.as_str().to_owned();
        }
        if let Some(category) = patch.category_id {
            ensure_category(uow.tx(), category).await?;
            row.category_id = category;
        }
        if let Some(sku) = patch.sku {
            row.sku_key = sku.to_lowercase();
            row.sku = sku;
        }
        if let Some(name) = patch.name {
            row.name = name;
        }
        if let Some(barcode) = patch.barcode {
            row.barcode = barcode;
        }
        if let Some(point) = reorder_point {
            row.reorder_point = point;
        }
        if let Some(quantity) = reorder_quantity {
            row.reorder_quantity = quantity;
        }
        if let Some(tracks) = patch.tracks_expiry {
            row.tracks_expiry = tracks;
        }
        if let Some(policy) = patch.depletion_policy {
            row.depletion_policy = policy.map(|p| p.as_str().to_owned());
        }
        if let Some(status) = patch.status {
            row.status = status.as_str().to_owned();
        }
        row.search = search_text(&row.sku, &row.name, row.barcode.as_deref());
        row.updated_at = uow.now();
        let shown = product_view(
            products::save(uow.tx(), row)
                .await
                .map_err(on_constraint(&products::SKU_UNIQUE, sku_taken))
                .map_err(on_constraint(&products::BARCODE_UNIQUE, barcode_taken))?,
        );
        audited(
            uow,
            "product.updated",
            ("product", id),
            audit_json(&before),
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Deletes a product that never had stock (one that had is archived instead).
    pub async fn delete_product(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(actor, client).await?;
        let row = products::get(uow.tx(), id)
            .await?
            .ok_or_else(product_not_found)?;
        if stock::has_batches(uow.tx(), Some(id), None).await? {
            return Err(AppError::new(
                ErrorCode::ProductsInUse,
                "the product has stock history: archive it instead",
            ));
        }
        products::delete(uow.tx(), id).await?;
        audited(
            uow,
            "product.deleted",
            ("product", id),
            audit_json(&product_view(row)),
            serde_json::Value::Null,
        )
        .await
    }

    // --- locations ---

    pub async fn list_locations(
        &self,
        active: Option<bool>,
        page: &PageRequest,
    ) -> AppResult<Page<LocationView>> {
        let page = locations::list(self.reader(), active, page).await?;
        Ok(map_page(page, location_view))
    }

    pub async fn get_location(&self, id: Uuid) -> AppResult<LocationView> {
        locations::get(self.reader(), id)
            .await?
            .map(location_view)
            .ok_or_else(location_not_found)
    }

    pub async fn create_location(
        &self,
        actor: Actor,
        new: NewLocation,
        client: &ClientInfo,
    ) -> AppResult<LocationView> {
        let mut v = Validator::new();
        validate_location(
            &mut v,
            Some(&new.code),
            Some(&new.name),
            new.address.as_deref(),
        );
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let row = location::Model {
            id: depot_domain::id::new_id(),
            code_key: new.code.to_lowercase(),
            code: new.code,
            name: new.name,
            address: new.address,
            active: new.active,
            created_at: uow.now(),
            updated_at: uow.now(),
        };
        let shown = location_view(
            locations::insert(uow.tx(), row)
                .await
                .map_err(on_constraint(&locations::CODE_UNIQUE, code_taken))?,
        );
        audited(
            uow,
            "location.created",
            ("location", shown.id),
            serde_json::Value::Null,
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    pub async fn update_location(
        &self,
        actor: Actor,
        id: Uuid,
        patch: LocationPatch,
        client: &ClientInfo,
    ) -> AppResult<LocationView> {
        let mut v = Validator::new();
        validate_location(
            &mut v,
            patch.code.as_deref(),
            patch.name.as_deref(),
            patch.address.as_ref().and_then(Option::as_deref),
        );
        v.finish()?;
        let uow = self.writer.begin(actor, client).await?;
        let mut row = locations::get(uow.tx(), id)
            .await?
            .ok_or_else(location_not_found)?;
        let before = location_view(row.clone());
        if let Some(code) = patch.code {
            row.code_key = code.to_lowercase();
            row.code = code;
        }
        if let Some(name) = patch.name {
            row.name = name;
        }
        if let Some(address) = patch.address {
            row.address = address;
        }
        if let Some(active) = patch.active {
            row.active = active;
        }
        row.updated_at = uow.now();
        let shown = location_view(
            locations::save(uow.tx(), row)
                .await
                .map_err(on_constraint(&locations::CODE_UNIQUE, code_taken))?,
        );
        audited(
            uow,
            "location.updated",
            ("location", id),
            audit_json(&before),
            audit_json(&shown),
        )
        .await?;
        Ok(shown)
    }

    /// Deletes a location that never held stock (one that did is deactivated instead).
    pub async fn delete_location(
        &self,
        actor: Actor,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<()> {
        let uow = self.writer.begin(actor, client).await?;
        let row = locations::get(uow.tx(), id)
            .await?
            .ok_or_else(location_not_found)?;
        if stock::has_batches(uow.tx(), None, Some(id)).await? {
            return Err(AppError::new(
                ErrorCode::LocationsInUse,
                "the location has stock history: deactivate it instead",
            ));
        }
        locations::delete(uow.tx(), id).await?;
        audited(
            uow,
            "location.deleted",
            ("location", id),
            audit_json(&location_view(row)),
            serde_json::Value::Null,
        )
        .await
    }

    // --- barcodes ---

    /// Resolves a scanned code: a product's own barcode first, else a GS1 element string whose
    /// GTIN (in its 14-, 13-, 12- or 8-digit form) is a product's barcode.
    pub async fn resolve_barcode(&self, code: &str) -> AppResult<BarcodeView> {
        let not_found =
            || AppError::new(ErrorCode::BarcodesNotFound, "no product has this barcode");
        // Scanners send printable text, and FNC1 as GS in the raw GS1 form; anything else
        // names nothing.
        if code.is_empty()
            || code.chars().count() > 256
            || code.chars().any(|c| c.is_control() && c != '\u{1d}')
        {
            return Err(not_found());
        }
        if let Some(p) = products::by_barcode(self.reader(), &[code.to_owned()]).await? {
            return Ok(BarcodeView {
                source: "barcode",
                product: product_view(p),
                gtin: None,
                lot: None,
                expiry: None,
                serial: None,
            });
        }
        let today = self.writer.now().date_naive();
        let item = match gs1::parse(code, today) {
            Ok(item) => item,
            Err(Gs1Error::NotGs1) => return Err(not_found()),
            Err(e) => {
                return Err(AppError::validation(vec![FieldError::new(
                    "code",
                    ErrorCode::BarcodesInvalid.as_str(),
                    e.to_string(),
                )]));
            }
        };
        let gtin = item.gtin.clone().ok_or_else(not_found)?;
        let forms: Vec<String> = [0, 1, 2, 6]
            .iter()
            .filter(|&&cut| gtin[..cut].bytes().all(|b| b == b'0'))
            .map(|&cut| gtin[cut..].to_owned())
            .collect();
        let product = products::by_barcode(self.reader(), &forms)
            .await?
            .ok_or_else(not_found)?;
        Ok(BarcodeView {
            source: "gs1",
            product: product_view(product),
            gtin: Some(gtin),
            lot: item.lot,
            expiry: item.expiry,
            serial: item.serial,
        })
    }
}

pub(crate) fn validate_product(
    v: &mut Validator,
    sku: Option<&str>,
    name: Option<&str>,
    barcode: Option<&str>,
) {
    if let Some(sku) = sku {
        v.check(
            sku_ok(sku),
            "sku",
            "product.invalid_sku",
            "must be 1–64 characters of letters, digits, '.', '_', '-' or '/', starting with a letter or digit",
        );
    }
    if let Some(name) = name {
        v.line("name", name, 1, NAME_MAX);
    }
    if let Some(barcode) = barcode {
        v.check(
            barcode_ok(barcode),
            "barcode",
            "product.invalid_barcode",
            "must be 1–64 printable ASCII characters without spaces",
        );
    }
}

pub(crate) fn validate_location(
    v: &mut Validator,
    code: Option<&str>,
    name: Option<&str>,
    address: Option<&str>,
) {
    if let Some(code) = code {
        v.check(
            code_ok(code),
            "code",
            "location.invalid_code",
            "must be 1–32 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
        );
    }
    if let Some(name) = name {
        v.line("name", name, 1, NAME_MAX);
    }
    if let Some(address) = address {
        v.text("address", address, ADDRESS_MAX);
    }
}

/// A category a product is put into must exist (404 naming the field).
async fn ensure_category(conn: &impl ConnectionTrait, id: Option<Uuid>) -> AppResult<()> {
    let Some(id) = id else { return Ok(()) };
    if categories::get(conn, id).await?.is_none() {
        return Err(
            category_not_found().with_details(serde_json::json!({ "field": "category_id" }))
        );
    }
    Ok(())
}

pub(crate) fn map_page<T, U>(page: Page<T>, f: impl FnMut(T) -> U) -> Page<U> {
    Page {
        data: page.data.into_iter().map(f).collect(),
        next_cursor: page.next_cursor,
    }
}
