//! Refunds (permission `payments.refund`): a part or all of a paid payment given back. A
//! manual payment's refund is done when recorded (the money left by hand); a gateway
//! payment's goes through the refund API — started between two short units of work, then
//! polled (`payments_refund_poll`) until the gateway says it is refunded or refused.
//! The payment is `refund_pending` meanwhile, and then `refunded` (all of it given back) or
//! `paid` again (a part, or refused).

use chrono::{DateTime, Utc};
use depot_adapters::payments::{GatewayError, RefundAnswer, RefundProgress, RefundRequest};
use depot_domain::trade::payment::{decimal_amount, refundable};
use depot_domain::trade::{PaymentMethod, PaymentState, RefundState};
use depot_domain::{Actor, AppError, AppResult, ErrorCode, Validator};
use depot_store::entity::{payment, refund};
use depot_store::repo::payments;
use serde::Serialize;
use uuid::Uuid;

use super::{PaymentService, gateway_error, invalid_state, not_found, state_of, transition};
use crate::auth::principal::Principal;
use crate::client::ClientInfo;
use crate::uow::{UnitOfWork, retry_transient};

/// Longest refund remark.
pub const REMARKS_MAX: usize = 255;

/// A refund to make.
#[derive(Debug, Clone)]
pub struct NewRefund {
    /// Minor units of the payment's currency.
    pub amount: i64,
    pub remarks: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub id: Uuid,
    pub payment_id: Uuid,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    pub remarks: String,
    pub state: RefundState,
    /// The gateway's id of the refund.
    pub refund_ref_id: Option<String>,
    /// Why the gateway refused it.
    pub reason: Option<String>,
    pub actor_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn view(r: refund::Model) -> RefundView {
    RefundView {
        id: r.id,
        payment_id: r.payment_id,
        amount: r.amount,
        currency: r.currency,
        remarks: r.remarks,
        state: RefundState::parse(&r.state).unwrap_or(RefundState::Pending),
        refund_ref_id: r.refund_ref_id,
        reason: r.reason,
        actor_id: r.actor_id,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn refund_state(r: &refund::Model) -> RefundState {
    RefundState::parse(&r.state).unwrap_or(RefundState::Pending)
}

impl PaymentService {
    /// The refunds of a payment the caller may see, oldest first.
    pub async fn refunds(&self, principal: &Principal, id: Uuid) -> AppResult<Vec<RefundView>> {
        let p = self.visible(principal, id).await?;
        Ok(payments::refunds_of(self.reader(), p.id)
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// Refunds `input.amount` of a paid payment: 201 with the refund (`refunded` for a
    /// manual payment, `pending` while the gateway works), 422 `payments.refund_exceeds` above
    /// what is left of it.
    pub async fn refund(
        &self,
        principal: &Principal,
        id: Uuid,
        input: NewRefund,
        client: &ClientInfo,
    ) -> AppResult<RefundView> {
        let mut v = Validator::new();
        v.check(
            input.amount > 0,
            "amount",
            "not_positive",
            "must be greater than 0",
        );
        v.line("remarks", &input.remarks, 1, REMARKS_MAX);
        v.finish()?;
        let seen = self.visible(principal, id).await?;
        let manual = PaymentMethod::parse(&seen.method).is_none_or(PaymentMethod::is_manual);
        // A gateway refund needs the gateway: checked before anything is written.
        let gateway = if manual { None } else { Some(self.gateway()?) };
        let actor = principal.actor();
        let refund = retry_transient(|| self.begin_refund(actor, id, &input, client)).await?;
        let Some(gateway) = gateway else {
            return Ok(view(refund));
        };
        let payment = payments::get(self.reader(), id)
            .await?
            .ok_or_else(not_found)?;
        let request = RefundRequest {
            bank_tran_id: payment.bank_tran_id.clone().unwrap_or_default(),
            refund_amount: decimal_amount(refund.amount),
            refund_remarks: refund.remarks.clone(),
            refe_id: refund.id.simple().to_string(),
        };
        let answer = gateway.refund(&request).await;
        let refund =
            retry_transient(|| self.refund_answered(actor, refund.id, &answer, client)).await?;
        match answer {
            Err(GatewayError::Unavailable(_) | GatewayError::Malformed(_)) => {
                Err(gateway_error(&GatewayError::Unavailable(String::new())))
            }
            _ => Ok(view(refund)),
        }
    }

    /// The first unit: the refund written (done at once for a manual payment).
    async fn begin_refund(
        &self,
        actor: Actor,
        id: Uuid,
        input: &NewRefund,
        client: &ClientInfo,
    ) -> AppResult<refund::Model> {
        let mut uow = self.inner.writer.begin(actor, client).await?;
        let row = payments::lock(uow.tx(), id).await?.ok_or_else(not_found)?;
        let state = state_of(&row);
        if state != PaymentState::Paid {
            return Err(invalid_state(state, "be refunded"));
        }
        let method = PaymentMethod::parse(&row.method).unwrap_or(PaymentMethod::Cash);
        if !method.is_manual() && row.bank_tran_id.is_none() {
            return Err(invalid_state(
                state,
                "be refunded (the gateway named no bank transaction)",
            ));
        }
        let left = refundable(row.amount, row.refunded, 0);
        if input.amount > left {
            return Err(AppError::new(
                ErrorCode::PaymentsRefundExceeds,
                "the refund is more than what is left of the payment",
            )
            .with_details(serde_json::json!({ "refundable": left, "field": "amount" })));
        }
        let now = uow.now();
        let refund = refund::Model {
            id: depot_domain::id::new_id(),
            payment_id: id,
            amount: input.amount,
            currency: row.currency.clone(),
            remarks: input.remarks.clone(),
            state: RefundState::Pending.as_str().to_owned(),
            refund_ref_id: None,
            reason: None,
            actor_id: actor.user_id(),
            actor_name: actor.system_name().map(str::to_owned),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        payments::insert_refund(uow.tx(), refund.clone()).await?;
        let details = serde_json::json!({ "refund_id": refund.id, "amount": refund.amount });
        let row = transition(&mut uow, row, PaymentState::RefundPending, details).await?;
        let refund = if method.is_manual() {
            finish_refund(&mut uow, row, refund, RefundState::Refunded, None).await?
        } else {
            refund
        };
        uow.commit().await?;
        Ok(refund)
    }

    /// The second unit: what the gateway said to the refund request.
    async fn refund_answered(
        &self,
        actor: Actor,
        refund_id: Uuid,
        answer: &Result<RefundAnswer, GatewayError>,
        client: &ClientInfo,
    ) -> AppResult<refund::Model> {
        let mut uow = self.inner.writer.begin(actor, client).await?;
        let Some((row, mut refund)) = lock_refund(&uow, refund_id).await? else {
            return Err(not_found());
        };
        let refund = match answer {
            Ok(RefundAnswer {
                progress: RefundProgress::Processing,
                refund_ref_id,
                ..
            }) => {
                refund.refund_ref_id = refund_ref_id.clone();
                refund.updated_at = uow.now();
                payments::save_refund(uow.tx(), refund).await?
            }
            Ok(RefundAnswer {
                progress: RefundProgress::Refunded,
                refund_ref_id,
                ..
            }) => {
                refund.refund_ref_id = refund_ref_id.clone();
                finish_refund(&mut uow, row, refund, RefundState::Refunded, None).await?
            }
            Ok(RefundAnswer { reason, .. }) => {
                let reason = reason
                    .clone()
                    .unwrap_or_else(|| "refused by the gateway".into());
                finish_refund(&mut uow, row, refund, RefundState::Failed, Some(reason)).await?
            }
            Err(GatewayError::Refused(reason)) => {
                finish_refund(
                    &mut uow,
                    row,
                    refund,
                    RefundState::Failed,
                    Some(reason.clone()),
                )
                .await?
            }
            // The request may have reached the gateway: the refund stays pending (and the
            // payment refund_pending) for a person to settle with the gateway, so it is never
            // asked twice.
            Err(e) => {
                refund.reason = Some(format!("no answer from the gateway: {e}"));
                refund.updated_at = uow.now();
                payments::save_refund(uow.tx(), refund).await?
            }
        };
        uow.commit().await?;
        Ok(refund)
    }

    /// Asks the gateway about refunds it is working on; answers how many ended.
    pub async fn poll_refunds(&self) -> AppResult<u64> {
        let gateway = self.gateway()?;
        let pending = payments::refunds_pending(self.reader(), super::JOB_BATCH).await?;
        let client = ClientInfo::default();
        let mut ended = 0;
        for r in pending {
            let Some(ref_id) = r.refund_ref_id.clone() else {
                continue;
            };
            let answer = match gateway.refund_status(&ref_id).await {
                Ok(a) if a.progress == RefundProgress::Processing => continue,
                Ok(a) => Ok(a),
                Err(e) => {
                    tracing::warn!(refund = %r.id, error = %e, "refund poll: the status query failed");
                    continue;
                }
            };
            let actor = Actor::System("payments_refund_poll");
            match retry_transient(|| self.refund_answered(actor, r.id, &answer, &client)).await {
                Ok(_) => ended += 1,
                Err(e) => {
                    tracing::error!(refund = %r.id, code = e.code(), cause = %e.cause_chain(),
                    "refund poll failed for one refund")
                }
            }
        }
        Ok(ended)
    }
}

/// The refund and its payment, locked (refund, then payment), while the refund is pending.
async fn lock_refund(
    uow: &UnitOfWork,
    refund_id: Uuid,
) -> AppResult<Option<(payment::Model, refund::Model)>> {
    let Some(r) = payments::lock_refund(uow.tx(), refund_id).await? else {
        return Ok(None);
    };
    let Some(p) = payments::lock(uow.tx(), r.payment_id).await? else {
        return Ok(None);
    };
    if refund_state(&r) != RefundState::Pending {
        return Err(invalid_state(state_of(&p), "end a refund that has ended"));
    }
    Ok(Some((p, r)))
}

/// Ends a pending refund: `refunded` adds to what the payment gave back (the payment is
/// `refunded` once all of it is, `paid` otherwise); `failed` returns the payment to `paid`.
async fn finish_refund(
    uow: &mut UnitOfWork,
    mut row: payment::Model,
    mut refund: refund::Model,
    to: RefundState,
    reason: Option<String>,
) -> AppResult<refund::Model> {
    refund.state = to.as_str().to_owned();
    refund.reason = reason;
    refund.updated_at = uow.now();
    let refund = payments::save_refund(uow.tx(), refund).await?;
    let next = if to == RefundState::Refunded {
        row.refunded += refund.amount;
        if row.refunded >= row.amount {
            PaymentState::Refunded
        } else {
            PaymentState::Paid
        }
    } else {
        PaymentState::Paid
    };
    let details = serde_json::json!({
        "refund_id": refund.id, "amount": refund.amount, "refund": to, "refunded": row.refunded,
    });
    transition(uow, row, next, details).await?;
    Ok(refund)
}
