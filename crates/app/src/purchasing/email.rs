//! The email that sends a purchase order to its supplier: the lines as a plain-text table and
//! as a CSV attachment.

use std::collections::HashMap;

use depot_adapters::mail::Attachment;
use depot_domain::stock::Quantity;
use depot_store::entity::{purchase_order, purchase_order_line, supplier};
use uuid::Uuid;

use crate::mail::NewEmail;

/// The purchase-order email: a plain-text table of the lines and the same lines as CSV.
pub(super) fn order_email(
    head: &purchase_order::Model,
    lines: &[purchase_order_line::Model],
    supplier: &supplier::Model,
    names: &HashMap<Uuid, (String, String)>,
    to: String,
    correlation_id: Option<String>,
) -> NewEmail {
    let money = |minor: i64| format!("{}.{:02}", minor / 100, (minor % 100).abs());
    let mut body = format!(
        "Dear {},\n\nPlease supply the following (purchase order {}):\n\n",
        supplier.name, head.id
    );
    let mut csv = String::from("line,sku,product,quantity,unit_cost,total,currency\r\n");
    for (i, line) in lines.iter().enumerate() {
        let (sku, name) = names
            .get(&line.product_id)
            .cloned()
            .unwrap_or_else(|| (line.product_id.to_string(), String::new()));
        let quantity = Quantity::from_thousandths(line.quantity);
        let total = depot_domain::trade::line_total(quantity, line.unit_cost).unwrap_or(i64::MAX);
        body.push_str(&format!(
            "{:>3}. {sku}  {name}  × {quantity}  at {} = {} {}\n",
            i + 1,
            money(line.unit_cost),
            money(total),
            head.currency
        ));
        csv.push_str(&format!(
            "{},{},{},{quantity},{},{},{}\r\n",
            i + 1,
            csv_field(&sku),
            csv_field(&name),
            money(line.unit_cost),
            money(total),
            head.currency
        ));
    }
    body.push_str(&format!(
        "\nTotal: {} {}\n",
        money(head.total),
        head.currency
    ));
    if let Some(expected) = head.expected_at {
        body.push_str(&format!("Expected by: {expected}\n"));
    }
    if let Some(notes) = &head.notes {
        body.push_str(&format!("\nNotes: {notes}\n"));
    }
    body.push_str("\nThe lines are attached as CSV.\n");
    let attachments = vec![Attachment {
        filename: format!("purchase-order-{}.csv", head.id),
        content_type: "text/csv".into(),
        content: csv,
    }];
    NewEmail {
        to,
        subject: format!("Purchase order {}", head.id),
        body,
        correlation_id,
        attachments: serde_json::to_string(&attachments).ok(),
    }
}

/// A CSV field, quoted when it holds a separator, quote or line break; a leading formula
/// character is neutralised so a spreadsheet never runs it.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
    }
}
