//! What purchase and sales orders share: lines priced in minor units, read against the
//! catalogue (each product looked up once, each quantity in its product's unit), and the total
//! they make.

use depot_domain::stock::{DepletionPolicy, Quantity};
use depot_domain::trade::order_total;
use depot_domain::{AppError, AppResult, FieldError, Validator};
use uuid::Uuid;

use crate::catalog::quantity_field;
use crate::stock::MAX_LINES;
use crate::stock::ledger::{StockProduct, products_named};

/// A line as a client sends it: a product, a quantity in its unit and a price per unit (a
/// purchase's unit cost or a sale's unit price) in minor units of the order's currency.
#[derive(Debug, Clone)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub quantity: serde_json::Number,
    pub price: i64,
}

/// A line read and checked.
pub(crate) struct PricedLine {
    pub product: StockProduct,
    pub quantity: Quantity,
    pub price: i64,
}

pub(crate) fn line_field(i: usize, field: &str) -> String {
    format!("lines[{i}].{field}")
}

/// Reads 1 to [`MAX_LINES`] lines: every product exists (404 naming the line), every quantity
/// is positive in its product's unit, every price (named `price_field`) is not negative —
/// all failing fields at once.
pub(crate) async fn read_lines(
    conn: &impl depot_store::ConnectionTrait,
    input: &[OrderLine],
    price_field: &'static str,
    default_policy: DepletionPolicy,
) -> AppResult<Vec<PricedLine>> {
    let mut v = Validator::new();
    v.check(
        (1..=MAX_LINES).contains(&input.len()),
        "lines",
        "count",
        "must have 1 to 500 lines",
    );
    v.finish()?;
    let products = products_named(
        conn,
        input.iter().map(|l| l.product_id).collect(),
        |i| line_field(i, "product_id"),
        default_policy,
    )
    .await?;
    let mut v = Validator::new();
    let mut lines = Vec::with_capacity(input.len());
    for (i, line) in input.iter().enumerate() {
        let product = products[&line.product_id].clone();
        let field = line_field(i, "quantity");
        let quantity = quantity_field(&mut v, &field, &line.quantity, product.unit);
        if let Some(q) = quantity {
            v.check(
                q.is_positive(),
                &field,
                "not_positive",
                "must be greater than 0",
            );
        }
        v.check(
            line.price >= 0,
            &line_field(i, price_field),
            "negative",
            "must not be negative",
        );
        lines.push(PricedLine {
            product,
            quantity: quantity.unwrap_or(Quantity::ZERO),
            price: line.price,
        });
    }
    v.finish()?;
    Ok(lines)
}

/// The order's total in minor units, or a 422 when it does not fit.
pub(crate) fn total(lines: impl IntoIterator<Item = (i64, i64)>) -> AppResult<i64> {
    order_total(
        lines
            .into_iter()
            .map(|(thousandths, price)| (Quantity::from_thousandths(thousandths), price)),
    )
    .ok_or_else(|| {
        AppError::validation(vec![FieldError::new(
            "lines",
            "total.out_of_range",
            "the order's total is too large",
        )])
    })
}
