//! Returns of a fulfilled sales order: each line back into the batches it was issued from
//! (latest first, as `return` movements) or written off, never beyond what was fulfilled and
//! not yet returned; the order is `returned` once everything came back.

use std::collections::BTreeMap;

use depot_domain::stock::{MovementKind, Quantity, ReferenceType};
use depot_domain::trade::sales::ReservationStatus;
use depot_domain::trade::{SoAction, SoState};
use depot_domain::{AppError, AppResult, ErrorCode, FieldError, Validator};
use depot_store::entity::{sales_return, sales_return_line};
use depot_store::repo::sales_orders;
use uuid::Uuid;

use super::{Acting, REASON_MAX, ReturnLine, SalesOrderView, SalesService, q};
use crate::auth::principal::Principal;
use crate::catalog::quantity_field;
use crate::client::ClientInfo;
use crate::orders::line_field;
use crate::stock::ledger::{Cause, Ledger};
use crate::stock::{MAX_LINES, views as stock_views};
use crate::uow::retry_transient;

impl SalesService {
    /// Takes goods back: each line into the batches it was issued from (latest first), or
    /// written off; never more than was fulfilled and not yet returned.
    pub async fn return_goods(
        &self,
        principal: &Principal,
        id: Uuid,
        input: Vec<ReturnLine>,
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut v = Validator::new();
        v.check(
            (1..=MAX_LINES).contains(&input.len()),
            "lines",
            "count",
            "must have 1 to 500 lines",
        );
        for (i, line) in input.iter().enumerate() {
            v.line(&line_field(i, "reason"), &line.reason, 1, REASON_MAX);
        }
        v.finish()?;
        let acting = Acting::of(principal);
        retry_transient(|| self.return_once(acting, id, &input, client)).await
    }

    async fn return_once(
        &self,
        acting: Acting,
        id: Uuid,
        input: &[ReturnLine],
        client: &ClientInfo,
    ) -> AppResult<SalesOrderView> {
        let mut uow = self.writer.begin(acting.actor, client).await?;
        let ((head, mut lines), from) = self
            .begin_transition(&uow, acting, id, SoAction::Return)
            .await?;
        let products = self.products(&uow, &lines).await?;
        let mut v = Validator::new();
        let mut parts = Vec::with_capacity(input.len());
        let mut asked: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (i, line) in input.iter().enumerate() {
            let Some(order_line) = lines.iter().find(|l| l.id == line.line_id) else {
                v.push(FieldError::new(
                    line_field(i, "line_id"),
                    "not_found",
                    "is not a line of this sales order",
                ));
                continue;
            };
            let unit = products[&order_line.product_id].unit;
            let field = line_field(i, "quantity");
            let Some(quantity) = quantity_field(&mut v, &field, &line.quantity, unit) else {
                continue;
            };
            v.check(
                quantity.is_positive(),
                &field,
                "not_positive",
                "must be greater than 0",
            );
            *asked.entry(order_line.id).or_default() += quantity.thousandths();
            parts.push((i, order_line.id, order_line.product_id, quantity, line));
        }
        v.finish()?;
        let over: Vec<_> = lines
            .iter()
            .filter_map(|l| {
                let more = *asked.get(&l.id)?;
                (l.returned + more > l.fulfilled).then(|| {
                    serde_json::json!({
                        "line_id": l.id,
                        "fulfilled": q(l.fulfilled),
                        "returned": q(l.returned),
                        "returnable": q(l.fulfilled - l.returned),
                        "requested": q(more),
                    })
                })
            })
            .collect();
        if !over.is_empty() {
            return Err(AppError::new(
                ErrorCode::SalesOrderOverReturn,
                "the return exceeds what was fulfilled and not yet returned",
            )
            .with_details(serde_json::json!({ "lines": over })));
        }
        let location = head.location_id;
        let mut ledger = Ledger::new(Cause {
            reason: None,
            note: None,
            reference: Some((ReferenceType::SalesOrder, id)),
        });
        ledger
            .lock(&uow, products.values().map(|p| (p, location)))
            .await?;
        let mut issued =
            sales_orders::reservations_of(uow.tx(), id, Some(ReservationStatus::Fulfilled)).await?;
        // Latest issued first: goods come back into the batch they most recently left.
        issued.sort_by_key(|r| std::cmp::Reverse(r.seq));
        let now = uow.now();
        let return_id = depot_domain::id::new_id();
        let mut rows = Vec::with_capacity(parts.len());
        for (i, line_id, product_id, quantity, line) in parts {
            let mut left = quantity.thousandths();
            for r in issued.iter_mut().filter(|r| r.line_id == line_id) {
                if left == 0 {
                    break;
                }
                let take = left.min(r.quantity - r.returned);
                if take == 0 {
                    continue;
                }
                if line.restock {
                    ledger
                        .put_back(
                            &uow,
                            MovementKind::Return,
                            r.batch_id,
                            Quantity::from_thousandths(take),
                        )
                        .await?;
                }
                r.returned += take;
                r.updated_at = now;
                *r = sales_orders::save_reservation(uow.tx(), r.clone()).await?;
                left -= take;
            }
            if left != 0 {
                return Err(AppError::internal("a return outgrew what its line issued"));
            }
            rows.push(sales_return_line::Model {
                id: depot_domain::id::new_id(),
                return_id,
                line_no: i32::try_from(i).unwrap_or(i32::MAX),
                sales_order_line_id: line_id,
                product_id,
                quantity: quantity.thousandths(),
                restock: line.restock,
                reason: line.reason.clone(),
            });
        }
        for line in &mut lines {
            if let Some(more) = asked.get(&line.id) {
                line.returned += more;
                *line = sales_orders::save_line(uow.tx(), line.clone()).await?;
            }
        }
        let actor_now = uow.actor();
        sales_orders::insert_return(
            uow.tx(),
            sales_return::Model {
                id: return_id,
                sales_order_id: id,
                actor_id: actor_now.user_id(),
                actor_name: actor_now.system_name().map(str::to_owned),
                created_at: now,
            },
            rows,
        )
        .await?;
        let (movements, _) = ledger.finish(&mut uow, self.warning_days).await?;
        let everything_back = lines.iter().all(|l| l.returned == l.quantity);
        let to = if everything_back {
            SoState::Returned
        } else {
            from
        };
        let mut shown = self
            .finish_transition(uow, (head, lines), SoAction::Return, from, to)
            .await?;
        shown.movements = movements.into_iter().map(stock_views::movement).collect();
        Ok(shown)
    }
}
