//! Bulk import and export, pure: the kinds of file, the columns each takes (the API's field
//! names), how a header is read, the errors a row can have, and the cell formats.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Permission;
use crate::validation::FieldError;

crate::string_enum! {
    /// What a file holds.
    pub enum ImportKind {
        Products = "products",
        Locations = "locations",
        /// First stock of a product at a location (`receipt` movements, reason `initial`).
        OpeningStock = "opening_stock",
        /// Counted quantities per batch (`count` movements, reason `count_correction`).
        StockCounts = "stock_counts",
    }
}

crate::string_enum! {
    /// `validate` checks every row and writes nothing; `apply` writes all rows or none.
    pub enum ImportMode { Validate = "validate", Apply = "apply" }
}

crate::string_enum! {
    /// `imports.status`. A finished import `succeeded` (valid; applied when `apply`) or
    /// `failed` (rows with errors, or a failure of its own; nothing written).
    pub enum ImportStatus {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

crate::string_enum! {
    /// What an export holds. `batches` has the columns `opening_stock` and `stock_counts`
    /// take; `levels` is a read-only summary.
    pub enum ExportKind {
        Products = "products",
        Locations = "locations",
        Batches = "batches",
        Levels = "levels",
    }
}

/// A column of an import file: its header name and whether every file must have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
}

const fn required(name: &'static str) -> Column {
    Column {
        name,
        required: true,
    }
}

const fn optional(name: &'static str) -> Column {
    Column {
        name,
        required: false,
    }
}

const PRODUCT_COLUMNS: &[Column] = &[
    required("sku"),
    required("name"),
    optional("unit"),
    optional("category_id"),
    optional("category"),
    optional("barcode"),
    optional("reorder_point"),
    optional("reorder_quantity"),
    optional("tracks_expiry"),
    optional("depletion_policy"),
    optional("status"),
];

const LOCATION_COLUMNS: &[Column] = &[
    required("code"),
    required("name"),
    optional("address"),
    optional("active"),
];

const STOCK_COLUMNS: &[Column] = &[
    required("sku"),
    required("location_code"),
    required("quantity"),
    optional("lot"),
    optional("expiry"),
    optional("unit_cost"),
    optional("currency"),
    optional("received_at"),
];

impl ImportKind {
    /// What a user must hold to import a file of this kind.
    pub fn permission(self) -> Permission {
        match self {
            Self::Products => Permission::ProductsManage,
            Self::Locations => Permission::WarehousesManage,
            Self::OpeningStock | Self::StockCounts => Permission::StockAdjust,
        }
    }

    /// The columns a file of this kind may have, in the order an export writes them.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Self::Products => PRODUCT_COLUMNS,
            Self::Locations => LOCATION_COLUMNS,
            Self::OpeningStock | Self::StockCounts => STOCK_COLUMNS,
        }
    }
}

impl ExportKind {
    /// What a user must hold to export this kind.
    pub fn permission(self) -> Permission {
        match self {
            Self::Products | Self::Locations => Permission::ProductsRead,
            Self::Batches | Self::Levels => Permission::StockRead,
        }
    }

    /// The header an export writes: an import kind's columns, or the level summary's.
    pub fn header(self) -> Vec<&'static str> {
        let names = |kind: ImportKind| kind.columns().iter().map(|c| c.name).collect();
        match self {
            // `category` (by name) is an import convenience; the export names the id.
            Self::Products => PRODUCT_COLUMNS
                .iter()
                .map(|c| c.name)
                .filter(|n| *n != "category")
                .collect(),
            Self::Locations => names(ImportKind::Locations),
            Self::Batches => names(ImportKind::OpeningStock),
            Self::Levels => vec![
                "sku",
                "location_code",
                "on_hand",
                "reserved",
                "available",
                "reorder_point",
            ],
        }
    }
}

/// One thing wrong with a file: the row (the header is row 1, so a spreadsheet shows the same
/// number), the column (absent when the whole row is at fault), a stable code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowError {
    pub row: u64,
    pub column: Option<String>,
    pub code: String,
    pub message: String,
}

impl RowError {
    pub fn new(
        row: u64,
        column: Option<&str>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            row,
            column: column.map(str::to_owned),
            code: code.into(),
            message: message.into(),
        }
    }

    /// A field error of a row's validation, its field being the column.
    pub fn of_field(row: u64, e: FieldError) -> Self {
        Self {
            row,
            column: Some(e.field),
            code: e.code,
            message: e.message,
        }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(column) => write!(f, "row {}, column {column}: {}", self.row, self.message),
            None => write!(f, "row {}: {}", self.row, self.message),
        }
    }
}

/// Where each known column sits in a file's records.
#[derive(Debug, Clone)]
pub struct Header {
    positions: BTreeMap<&'static str, usize>,
    names: Vec<&'static str>,
}

impl Header {
    /// Reads a header row for `kind`: every name must be a column of the kind (compared after
    /// trimming, case-insensitively), none twice, and every required one present. Returns
    /// every problem at once.
    pub fn parse(kind: ImportKind, names: &[&str]) -> Result<Self, Vec<RowError>> {
        let mut positions = BTreeMap::new();
        let mut known = Vec::with_capacity(names.len());
        let mut errors = Vec::new();
        for (i, raw) in names.iter().enumerate() {
            let name = raw.trim().to_ascii_lowercase();
            match kind.columns().iter().find(|c| c.name == name) {
                Some(c) => {
                    known.push(c.name);
                    if positions.insert(c.name, i).is_some() {
                        errors.push(RowError::new(
                            1,
                            Some(c.name),
                            "import.duplicate_column",
                            "this column appears twice",
                        ));
                    }
                }
                None => errors.push(RowError::new(
                    1,
                    Some(raw),
                    "import.unknown_column",
                    format!(
                        "unknown column {raw:?} for {kind}; the columns are {}",
                        kind.columns()
                            .iter()
                            .map(|c| c.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        for c in kind.columns().iter().filter(|c| c.required) {
            if !positions.contains_key(c.name) {
                errors.push(RowError::new(
                    1,
                    Some(c.name),
                    "import.missing_column",
                    "this column is required",
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self {
                positions,
                names: known,
            })
        } else {
            Err(errors)
        }
    }

    /// How many fields every record must have.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// The column at position `i` of a record.
    pub fn name_at(&self, i: usize) -> Option<&'static str> {
        self.names.get(i).copied()
    }

    /// Whether the file has this column (an absent optional column leaves a field as it is).
    pub fn has(&self, column: &str) -> bool {
        self.positions.contains_key(column)
    }

    /// The cell of `column` in `record` (absent when the file has no such column).
    pub fn cell<'r>(&self, record: &[&'r str], column: &str) -> Option<&'r str> {
        self.positions
            .get(column)
            .and_then(|i| record.get(*i))
            .copied()
    }
}

/// A cell read as text: trimmed, and empty = absent.
pub fn present(cell: Option<&str>) -> Option<&str> {
    cell.map(str::trim).filter(|s| !s.is_empty())
}

/// `true/false`, `yes/no`, `1/0` (any case).
pub fn parse_bool(cell: &str) -> Option<bool> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// A calendar day, `YYYY-MM-DD`.
pub fn parse_date(cell: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(cell.trim(), "%Y-%m-%d").ok()
}

/// An instant, RFC 3339 (`2026-01-31T09:00:00Z`), or a day (midnight UTC).
pub fn parse_instant(cell: &str) -> Option<DateTime<Utc>> {
    let cell = cell.trim();
    DateTime::parse_from_rfc3339(cell)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| {
            parse_date(cell)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// The field separator of a file: `;` when its first line has more of them than `,` outside
/// quotes (spreadsheets in decimal-comma locales write those), else `,`.
pub fn sniff_delimiter(data: &[u8]) -> u8 {
    let (mut commas, mut semicolons, mut quoted) = (0usize, 0usize, false);
    for &b in data {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}

/// The bytes of a file without a leading UTF-8 byte-order mark.
pub fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

/// What an import did (or, validating, would do), per kind of change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Ledger movements written (stock kinds).
    pub movements: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_reports_every_problem_at_once() {
        let errors = Header::parse(ImportKind::Products, &["SKU", "colour", "sku", "weight"])
            .expect_err("bad header");
        let codes: Vec<(&str, Option<&str>)> = errors
            .iter()
            .map(|e| (e.code.as_str(), e.column.as_deref()))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("import.unknown_column", Some("colour")),
                ("import.duplicate_column", Some("sku")),
                ("import.unknown_column", Some("weight")),
                ("import.missing_column", Some("name")),
            ]
        );
        assert!(errors.iter().all(|e| e.row == 1));
    }

    #[test]
    fn a_header_finds_cells_by_name_whatever_the_order() {
        let header = Header::parse(ImportKind::Locations, &[" Name ", "code"]).expect("header");
        assert_eq!(header.width(), 2);
        assert!(header.has("code") && !header.has("address"));
        let record = ["Main", "WH-1"];
        assert_eq!(header.cell(&record, "code"), Some("WH-1"));
        assert_eq!(header.cell(&record, "name"), Some("Main"));
        assert_eq!(header.cell(&record, "address"), None);
    }

    #[test]
    fn every_import_kind_has_its_export_columns() {
        for (export, import) in [
            (ExportKind::Products, ImportKind::Products),
            (ExportKind::Locations, ImportKind::Locations),
            (ExportKind::Batches, ImportKind::OpeningStock),
            (ExportKind::Batches, ImportKind::StockCounts),
        ] {
            assert!(Header::parse(import, &export.header()).is_ok(), "{export}");
        }
    }

    #[test]
    fn cells_are_read_strictly() {
        assert_eq!(parse_bool(" Yes "), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(
            parse_date("2027-02-28"),
            NaiveDate::from_ymd_opt(2027, 2, 28)
        );
        assert_eq!(parse_date("2027-02-30"), None);
        assert_eq!(parse_date("28/02/2027"), None);
        assert!(parse_instant("2027-02-28T10:00:00+02:00").is_some());
        assert!(parse_instant("2027-02-28").is_some());
        assert_eq!(parse_instant("yesterday"), None);
        assert_eq!(present(Some("  ")), None);
        assert_eq!(present(Some(" a ")), Some("a"));
    }

    #[test]
    fn the_delimiter_is_the_one_the_header_uses() {
        assert_eq!(sniff_delimiter(b"sku;name;unit\nA;\"x,y\";pcs"), b';');
        assert_eq!(sniff_delimiter(b"sku,name\nA;B,C"), b',');
        assert_eq!(sniff_delimiter(b"\"a;b;c\",name\n"), b',');
        assert_eq!(strip_bom(b"\xEF\xBB\xBFsku"), b"sku");
        assert_eq!(strip_bom(b"sku"), b"sku");
    }
}
