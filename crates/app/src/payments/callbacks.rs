//! The gateway's word about a payment: the IPN it posts, and the transaction query the
//! recovery job makes when the IPN is late. Either is acted on once (`payment_callbacks`),
//! and only after the validation API vouched for a payment — against what we stored.

use depot_adapters::payments::{Validation, field, redact};
use depot_domain::trade::payment::{Validated, judge};
use depot_domain::trade::{PaymentFlag, PaymentState};
use depot_domain::{Actor, AppError, AppResult, ErrorCode};
use depot_store::entity::{payment, payment_callback};
use depot_store::repo::payments;
use serde::Serialize;
use uuid::Uuid;

use super::{PaymentService, gateway_error, not_found, state_of, transition};
use crate::audit::AuditEntry;
use crate::client::ClientInfo;
use crate::sales::Acting;
use crate::sales::payments::{balance_due, credit, lock_payable};
use crate::uow::retry_transient;

/// The actor of what the gateway's reports do.
const GATEWAY: &str = "payment_gateway";

/// What the gateway reported.
#[derive(Debug, Clone)]
enum Report {
    /// Vouched for by the validation API (or the transaction query).
    Validated(Validation),
    /// A posted end (`FAILED`, `CANCELLED`, `EXPIRED`, `UNATTEMPTED`), signature checked.
    Ended(String),
}

impl Report {
    fn status(&self) -> &str {
        match self {
            Report::Validated(v) => &v.status,
            Report::Ended(status) => status,
        }
    }

    /// The key under which it is acted on once.
    fn dedup_key(&self, tran_id: &str) -> String {
        match self {
            Report::Validated(v) if v.is_valid() => {
                format!("val:{}", v.val_id.as_deref().unwrap_or(tran_id))
            }
            other => format!("{tran_id}:{}", other.status()),
        }
    }
}

/// Where a report came from (`payment_callbacks.source`).
#[derive(Debug, Clone, Copy)]
enum Source {
    Ipn,
    Query,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Ipn => "ipn",
            Source::Query => "query",
        }
    }
}

/// What the browser's return from the gateway shows: where the payment stands, nothing more.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PaymentStatusView {
    pub payment_id: Uuid,
    pub sales_order_id: Uuid,
    pub tran_id: String,
    pub state: PaymentState,
}

fn rejected(reason: &'static str) {
    metrics::counter!("depot_payment_ipn_rejections_total", "reason" => reason).increment(1);
}

/// The state a report that is not a vouched-for payment ends a payment in, if any.
fn ended_state(status: &str) -> Option<PaymentState> {
    match status {
        "INVALID_TRANSACTION" | "FAILED" => Some(PaymentState::Failed),
        "CANCELLED" => Some(PaymentState::Cancelled),
        "EXPIRED" | "UNATTEMPTED" => Some(PaymentState::Expired),
        _ => None,
    }
}

impl PaymentService {
    /// An IPN: its signature checked, the transaction validated with the gateway, then acted
    /// on once. Answers the payment's state (also for a repeat, which changes nothing).
    pub async fn ipn(
        &self,
        fields: Vec<(String, String)>,
        client: &ClientInfo,
    ) -> AppResult<PaymentState> {
        let gateway = self.gateway()?;
        let tran_id = field(&fields, "tran_id").unwrap_or_default().to_owned();
        if let Err(e) = gateway.verify_callback(&fields) {
            rejected(e.reason());
            tracing::warn!(tran_id, reason = e.reason(), "IPN refused: {e}");
            return Err(AppError::new(
                ErrorCode::PaymentsInvalidSignature,
                e.to_string(),
            ));
        }
        let Some(row) = payments::by_tran_id(self.reader(), &tran_id).await? else {
            rejected("unknown_transaction");
            tracing::warn!(tran_id, "IPN refused: no payment has this tran_id");
            return Err(not_found());
        };
        let status = field(&fields, "status")
            .unwrap_or_default()
            .to_ascii_uppercase();
        let report = match status.as_str() {
            "VALID" | "VALIDATED" => {
                let Some(val_id) = field(&fields, "val_id").filter(|v| !v.is_empty()) else {
                    rejected("missing_val_id");
                    return Err(AppError::new(
                        ErrorCode::PaymentsInvalidSignature,
                        "a VALID callback without val_id",
                    ));
                };
                if payments::callback_seen(self.reader(), &format!("val:{val_id}")).await? {
                    // Acted on already: where that left the payment.
                    let now = payments::get(self.reader(), row.id).await?;
                    return Ok(now.as_ref().map_or(state_of(&row), state_of));
                }
                // No lock is held while the gateway answers.
                let v = gateway.validate(val_id).await.map_err(|e| {
                    tracing::warn!(tran_id, error = %e, "IPN: the validation API failed");
                    gateway_error(&e)
                })?;
                Report::Validated(v)
            }
            s if ended_state(s).is_some() => Report::Ended(status.clone()),
            _ => {
                tracing::info!(tran_id, status, "IPN with a status that changes nothing");
                return Ok(state_of(&row));
            }
        };
        let posted = posted_payload(&fields);
        let (state, _) =
            retry_transient(|| self.settle(row.id, &report, Source::Ipn, posted.clone(), client))
                .await?;
        Ok(state)
    }

    /// Acts on a report about payment `id` once: in one unit of work with the record that it
    /// was. Answers the payment's state and whether the report changed anything.
    async fn settle(
        &self,
        id: Uuid,
        report: &Report,
        source: Source,
        payload: serde_json::Value,
        client: &ClientInfo,
    ) -> AppResult<(PaymentState, bool)> {
        let mut uow = self
            .inner
            .writer
            .begin(Actor::System(GATEWAY), client)
            .await?;
        let mut row = payments::lock(uow.tx(), id).await?.ok_or_else(not_found)?;
        let tran_id = row.tran_id.clone().unwrap_or_default();
        let dedup_key = report.dedup_key(&tran_id);
        if payments::callback_seen(uow.tx(), &dedup_key).await? {
            return Ok((state_of(&row), false));
        }
        let from = state_of(&row);
        let (target, flag) = match report {
            Report::Validated(v) if v.is_valid() => {
                let vouched = Validated {
                    tran_id: &v.tran_id,
                    amount: &v.amount,
                    currency: &v.currency,
                    risky: v.risk_level != Some(0),
                };
                row.payload = Some(v.payload.to_string());
                match judge(&vouched, &tran_id, row.amount, &row.currency) {
                    Ok(to) => {
                        row.val_id = v.val_id.clone();
                        row.bank_tran_id = v.bank_tran_id.clone();
                        row.risk_level = v.risk_level;
                        (Some(to), None)
                    }
                    Err(flag) => (None, Some(flag)),
                }
            }
            other => (ended_state(other.status()), None),
        };
        let outcome = match (target, flag) {
            (Some(to), None) if from.is_final() && to != from => {
                // Money the gateway vouched for, after the payment ended: never dropped.
                self.flag(&mut uow, row, PaymentFlag::PaidAfterEnd, source)
                    .await?;
                tracing::error!(payment = %id, %from, "the gateway vouched for a payment that had ended");
                format!("flagged:{}", PaymentFlag::PaidAfterEnd)
            }
            (_, Some(flag)) => {
                self.flag(&mut uow, row, flag, source).await?;
                format!("flagged:{flag}")
            }
            (Some(to), None) if from.can_become(to) => {
                let details =
                    serde_json::json!({ "source": source.as_str(), "status": report.status() });
                let to = if to == PaymentState::Paid {
                    self.credit_order(&mut uow, &mut row).await?
                } else {
                    to
                };
                transition(&mut uow, row, to, details).await?;
                to.as_str().to_owned()
            }
            (Some(to), None) => {
                // A late FAILED after PAID, a repeat of an end: the first word stands.
                tracing::warn!(payment = %row.id, %from, status = report.status(),
                    "a gateway report for a payment that has moved on was ignored");
                if to == from {
                    "repeated".to_owned()
                } else {
                    "ignored".to_owned()
                }
            }
            (None, None) => "no_change".to_owned(),
        };
        let changed = !matches!(outcome.as_str(), "ignored" | "repeated" | "no_change");
        let state = payments::get(uow.tx(), id)
            .await?
            .map_or(from, |p| state_of(&p));
        let record = payment_callback::Model {
            id: depot_domain::id::new_id(),
            payment_id: id,
            source: source.as_str().to_owned(),
            dedup_key,
            status: report.status().to_owned(),
            outcome,
            payload: payload.to_string(),
            created_at: uow.now(),
        };
        if let Err(e) = payments::insert_callback(uow.tx(), record).await {
            if payments::CALLBACK_UNIQUE.violated_by(&e) {
                // Processed meanwhile by another unit: this one's work is rolled back.
                return Ok((state, false));
            }
            return Err(e);
        }
        uow.commit().await?;
        Ok((state, changed))
    }

    /// Records why a gateway report was not believed; a payment still waiting is held for
    /// review (so nothing asks the gateway about it again), others keep their state.
    async fn flag(
        &self,
        uow: &mut crate::uow::UnitOfWork,
        mut row: payment::Model,
        flag: PaymentFlag,
        source: Source,
    ) -> AppResult<()> {
        row.flag = Some(flag.as_str().to_owned());
        metrics::counter!("depot_payment_flags_total", "flag" => flag.as_str()).increment(1);
        tracing::warn!(payment = %row.id, flag = flag.as_str(), "a gateway report was not believed");
        let details = serde_json::json!({ "flag": flag, "source": source.as_str() });
        if state_of(&row).can_become(PaymentState::Review) {
            transition(uow, row, PaymentState::Review, details).await?;
        } else {
            let row = payments::save(uow.tx(), row).await?;
            uow.audit(
                AuditEntry::new("payment.flagged")
                    .target("payment", row.id)
                    .details(details),
            )
            .await?;
        }
        Ok(())
    }

    /// Credits a payment the gateway vouched for to its order; answers `paid`, or `review`
    /// (flagged `order_not_payable`) when the order can no longer take it — money was taken
    /// for an order cancelled meanwhile, or one already paid another way.
    async fn credit_order(
        &self,
        uow: &mut crate::uow::UnitOfWork,
        row: &mut payment::Model,
    ) -> AppResult<PaymentState> {
        let (order, so_state, payable) =
            lock_payable(uow, Acting::system(GATEWAY), row.sales_order_id).await?;
        if payable && balance_due(&order) >= row.amount {
            credit(uow, order, so_state, row.amount).await?;
            Ok(PaymentState::Paid)
        } else {
            row.flag = Some(PaymentFlag::OrderNotPayable.as_str().to_owned());
            metrics::counter!("depot_payment_flags_total", "flag" => PaymentFlag::OrderNotPayable.as_str())
                .increment(1);
            Ok(PaymentState::Review)
        }
    }

    /// Asks the gateway about payments whose callback is late: a vouched-for transaction
    /// settles them like its IPN would; one the gateway ended ends them; an `initiated` one it
    /// never heard of (the process stopped while opening the session), or a `pending` one
    /// still unknown after `payments_expire_after_secs`, expires. Answers how many changed.
    pub async fn recover(&self) -> AppResult<u64> {
        let gateway = self.gateway()?;
        let now = self.inner.writer.now();
        let since = |d: std::time::Duration| {
            now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
        };
        let late = payments::awaiting_gateway(
            self.reader(),
            since(self.inner.recovery_after),
            super::JOB_BATCH,
        )
        .await?;
        let client = ClientInfo::default();
        let mut changed = 0;
        for p in late {
            let tran_id = p.tran_id.clone().unwrap_or_default();
            let known = match gateway.transactions(&tran_id).await {
                Ok(known) => known,
                Err(e) => {
                    tracing::warn!(payment = %p.id, error = %e, "payment recovery: the transaction query failed");
                    continue;
                }
            };
            let report = known
                .iter()
                .find(|v| v.is_valid())
                .or_else(|| known.iter().find(|v| ended_state(&v.status).is_some()))
                .cloned()
                .map(Report::Validated)
                .or_else(|| {
                    let stale = p.updated_at < since(self.inner.expire_after);
                    (state_of(&p) == PaymentState::Initiated || stale)
                        .then(|| Report::Ended("EXPIRED".to_owned()))
                });
            let Some(report) = report else { continue };
            let payload = match &report {
                Report::Validated(v) => v.payload.clone(),
                Report::Ended(_) => serde_json::json!({ "no_of_trans_found": known.len() }),
            };
            match retry_transient(|| {
                self.settle(p.id, &report, Source::Query, payload.clone(), &client)
            })
            .await
            {
                Ok((_, true)) => changed += 1,
                Ok((_, false)) => {}
                Err(e) => {
                    tracing::error!(payment = %p.id, code = e.code(), cause = %e.cause_chain(),
                    "payment recovery failed for one payment")
                }
            }
        }
        Ok(changed)
    }

    /// Where the payment with `tran_id` stands (the browser's return from the gateway shows
    /// this; it never changes anything).
    pub async fn status_of(&self, tran_id: &str) -> AppResult<PaymentStatusView> {
        let p = payments::by_tran_id(self.reader(), tran_id)
            .await?
            .ok_or_else(not_found)?;
        Ok(PaymentStatusView {
            payment_id: p.id,
            sales_order_id: p.sales_order_id,
            tran_id: tran_id.to_owned(),
            state: state_of(&p),
        })
    }
}

/// A posted callback as stored: card and personal fields masked, the signature kept.
fn posted_payload(fields: &[(String, String)]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    redact(serde_json::Value::Object(map))
}
