//! Receiving goods against a purchase order: every line checked first (lot and expiry where
//! the product tracks expiry, the over-receipt tolerance), then the goods go into batches at
//! the line's unit cost through the stock engine, in the transition's unit of work.

use std::collections::BTreeMap;

use depot_domain::stock::{MovementKind, Quantity, ReferenceType};
use depot_domain::trade::{PoAction, receipt_allowance};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, FieldError, Validator};
use depot_store::entity::{receipt, receipt_line};
use depot_store::repo::purchase_orders;
use uuid::Uuid;

use super::{NewReceipt, PurchaseOrderView, PurchasingService, invalid_state, views};
use crate::catalog::quantity_field;
use crate::client::ClientInfo;
use crate::orders::line_field;
use crate::stock::ledger::{Cause, Ledger, Origin, location_field, products_named};
use crate::stock::{LOT_MAX, MAX_LINES, refuse_new_stock, views as stock_views};
use crate::uow::retry_transient;

impl PurchasingService {
    /// Receives goods against a sent order into `location`, all lines or none.
    pub async fn receive(
        &self,
        actor: Actor,
        id: Uuid,
        input: NewReceipt,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let mut v = Validator::new();
        v.check(
            (1..=MAX_LINES).contains(&input.lines.len()),
            "lines",
            "count",
            "must have 1 to 500 lines",
        );
        for (i, line) in input.lines.iter().enumerate() {
            if let Some(lot) = &line.lot {
                v.line(&line_field(i, "lot"), lot, 1, LOT_MAX);
            }
        }
        v.finish()?;
        retry_transient(|| self.receive_once(actor, id, &input, client)).await
    }

    async fn receive_once(
        &self,
        actor: Actor,
        id: Uuid,
        input: &NewReceipt,
        client: &ClientInfo,
    ) -> AppResult<PurchaseOrderView> {
        let mut uow = self.writer.begin(actor, client).await?;
        let (head, mut lines, from) = self.begin_transition(&uow, id, PoAction::Receive).await?;
        let active = location_field(uow.tx(), input.location_id, "location_id").await?;
        let products = products_named(
            uow.tx(),
            lines.iter().map(|l| l.product_id).collect(),
            |_| "lines".to_owned(),
            self.default_policy,
        )
        .await?;
        // Check every line first: quantities, lot and expiry, then the tolerance per order line.
        let mut v = Validator::new();
        let mut parts = Vec::with_capacity(input.lines.len());
        let mut incoming: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (i, line) in input.lines.iter().enumerate() {
            let Some(order_line) = lines.iter().find(|l| l.id == line.line_id) else {
                v.push(FieldError::new(
                    line_field(i, "line_id"),
                    "not_found",
                    "is not a line of this purchase order",
                ));
                continue;
            };
            let product = &products[&order_line.product_id];
            let field = line_field(i, "quantity");
            let Some(quantity) = quantity_field(&mut v, &field, &line.quantity, product.unit)
            else {
                continue;
            };
            v.check(
                quantity.is_positive(),
                &field,
                "not_positive",
                "must be greater than 0",
            );
            if product.tracks_expiry {
                v.check(
                    line.lot.is_some(),
                    &line_field(i, "lot"),
                    "required",
                    "is required: the product tracks expiry",
                );
                v.check(
                    line.expiry.is_some(),
                    &line_field(i, "expiry"),
                    "required",
                    "is required: the product tracks expiry",
                );
            }
            *incoming.entry(order_line.id).or_default() += quantity.thousandths();
            parts.push((i, order_line.id, product.clone(), quantity, line));
        }
        v.finish()?;
        let mut over = Vec::new();
        for line in &lines {
            let Some(more) = incoming.get(&line.id) else {
                continue;
            };
            let allowed = receipt_allowance(
                Quantity::from_thousandths(line.quantity),
                self.tolerance_percent,
            );
            if line.received + more > allowed.thousandths() {
                over.push(serde_json::json!({
                    "line_id": line.id,
                    "ordered": Quantity::from_thousandths(line.quantity).to_json(),
                    "received": Quantity::from_thousandths(line.received).to_json(),
                    "receivable": Quantity::from_thousandths(
                        (allowed.thousandths() - line.received).max(0)
                    ).to_json(),
                    "requested": Quantity::from_thousandths(*more).to_json(),
                }));
            }
        }
        if !over.is_empty() {
            return Err(AppError::new(
                ErrorCode::PurchaseOrderOverReceipt,
                "the receipt exceeds what was ordered (plus the tolerance)",
            )
            .with_details(serde_json::json!({
                "tolerance_percent": self.tolerance_percent,
                "lines": over,
            })));
        }
        for (_, _, product, _, _) in &parts {
            refuse_new_stock(product.archived, active)?;
        }
        let receipt_id = depot_domain::id::new_id();
        let mut ledger = Ledger::new(Cause {
            reason: None,
            note: None,
            reference: Some((ReferenceType::PurchaseOrder, head.id)),
        });
        ledger
            .lock(&uow, products.values().map(|p| (p, input.location_id)))
            .await?;
        let mut rows = Vec::with_capacity(parts.len());
        for (i, line_id, product, quantity, line) in parts {
            let unit_cost = lines.iter().find(|l| l.id == line_id).map(|l| l.unit_cost);
            let batch = ledger
                .receive(
                    &uow,
                    MovementKind::Receipt,
                    product.id,
                    input.location_id,
                    quantity,
                    Origin {
                        lot: line.lot.clone(),
                        expiry: line.expiry,
                        unit_cost,
                        currency: Some(head.currency.clone()),
                        received_at: uow.now(),
                    },
                )
                .await
                .map_err(|e| renamed_field(e, i))?;
            rows.push(receipt_line::Model {
                id: depot_domain::id::new_id(),
                receipt_id,
                line_no: i32::try_from(i).unwrap_or(i32::MAX),
                purchase_order_line_id: line_id,
                product_id: product.id,
                batch_id: batch.id,
                quantity: quantity.thousandths(),
                lot: line.lot.clone(),
                expiry: line.expiry,
            });
        }
        for line in &mut lines {
            if let Some(more) = incoming.get(&line.id) {
                line.received += more;
                *line = purchase_orders::save_line(uow.tx(), line.clone()).await?;
            }
        }
        let actor_now = uow.actor();
        let head_row = receipt::Model {
            id: receipt_id,
            purchase_order_id: head.id,
            location_id: input.location_id,
            actor_id: actor_now.user_id(),
            actor_name: actor_now.system_name().map(str::to_owned),
            created_at: uow.now(),
        };
        purchase_orders::insert_receipt(uow.tx(), head_row.clone(), rows.clone()).await?;
        let (movements, _) = ledger.finish(&mut uow, self.warning_days).await?;
        let complete = lines.iter().all(|l| l.received >= l.quantity);
        let to = from
            .after(PoAction::Receive, complete)
            .ok_or_else(|| invalid_state(from, PoAction::Receive))?;
        let mut shown = self
            .finish_transition(uow, (head, lines), PoAction::Receive, from, to)
            .await?;
        let mut posted = views::receipt((head_row, rows));
        posted.movements = movements.into_iter().map(stock_views::movement).collect();
        shown.receipt = Some(posted);
        Ok(shown)
    }
}

/// A cost-currency mismatch from the engine names the receipt line it came from.
fn renamed_field(error: AppError, i: usize) -> AppError {
    if error.error_code() == ErrorCode::ValidationFailed {
        return AppError::validation(vec![FieldError::new(
            format!("lines[{i}]"),
            "currency.mismatch",
            "the batch with this lot and expiry was costed in another currency",
        )]);
    }
    error
}
