//! Gateway payments (SSLCommerz, or its simulator) of sales orders, beside the manual ones of
//! `sales`: one table, one rule — at most one active payment per (order, method).
//!
//! Starting a payment is two short units of work around the gateway call, so no lock is held
//! while the gateway thinks: the payment is written `initiated` (with our `tran_id`), the
//! session is opened, and the payment becomes `pending` with the gateway's page — or `failed`
//! if the gateway could not be reached after the retries, so nothing is left half-made.
//!
//! The gateway's word arrives by IPN (`callbacks`), or the recovery job asks for it when the
//! IPN is late. Either way it is believed only after the validation API vouched for it and
//! only for the amount, currency and `tran_id` WE stored; each such report is recorded in
//! `payment_callbacks` in the unit of work that acts on it, so a repeated one changes
//! nothing. Every transition is one unit of work with its audit row and its
//! `payment.transitioned` event; a payment that becomes `paid` credits its order in the same
//! unit (`sales::payments::credit`).

mod callbacks;
mod refunds;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use depot_adapters::payments::simulator::Simulator;
use depot_adapters::payments::{
    Customer, GatewayError, PaymentGateway, RetryPolicy, Session, SessionRequest, SslCommerz,
};
use depot_domain::pagination::{Page, PageRequest};
use depot_domain::trade::payment::{decimal_amount, tran_id};
use depot_domain::trade::{PaymentFilter, PaymentFlag, PaymentMethod, PaymentState};
use depot_domain::{AppError, AppResult, ErrorCode, FieldError};
use depot_store::entity::{customer, payment};
use depot_store::repo::{customers, payments};
use uuid::Uuid;

pub use self::callbacks::PaymentStatusView;
pub use self::refunds::{NewRefund, RefundView};
use crate::audit::AuditEntry;
use crate::auth::principal::Principal;
use crate::background::Background;
use crate::client::ClientInfo;
use crate::config::{PaymentsGateway, Settings};
use crate::sales::PaymentView;
use crate::sales::events::payment_transitioned;
use crate::sales::payments::{balance_due, lock_payable, new_payment, not_payable};
use crate::sales::{Acting, views};
use crate::uow::{UnitOfWork, Writer, retry_transient};

/// Where the simulator is mounted on the API listener.
pub const SIMULATOR_PATH: &str = "/simulator/sslcommerz";
/// Where the gateway calls back, under the API's base URL.
pub const IPN_PATH: &str = "/api/v1/payments/sslcommerz/ipn";
const RETURN_PATH: &str = "/api/v1/payments/sslcommerz";
/// How often the recovery job and the refund poll run by default.
const RECOVERY_CADENCE: &str = "every 1m";
/// Payments (or refunds) one run of a job looks at, at most.
const JOB_BATCH: u64 = 100;

/// The gateway this deployment uses.
enum Gateway {
    Off,
    Remote(Arc<dyn PaymentGateway>),
    /// The simulator on our own listener, reached through the real client.
    Simulated {
        client: SslCommerz,
        simulator: Arc<Simulator>,
    },
}

struct Inner {
    writer: Writer,
    gateway: Gateway,
    /// This API's base URL as the gateway and the buyer's browser reach it.
    base_url: RwLock<String>,
    /// Whether `base_url` was configured (else the listener's address replaces it).
    base_configured: bool,
    recovery_after: Duration,
    expire_after: Duration,
}

#[derive(Clone)]
pub struct PaymentService {
    inner: Arc<Inner>,
}

/// A payment to start.
#[derive(Debug, Clone)]
pub struct NewGatewayPayment {
    pub order_id: Uuid,
    pub method: PaymentMethod,
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::PaymentsNotFound, "no such payment")
}

fn invalid_state(state: PaymentState, action: &str) -> AppError {
    AppError::new(
        ErrorCode::PaymentsInvalidState,
        format!("a payment in state {state} cannot {action}"),
    )
    .with_details(serde_json::json!({ "state": state, "action": action }))
}

fn state_of(p: &payment::Model) -> PaymentState {
    PaymentState::parse(&p.state).unwrap_or(PaymentState::Initiated)
}

fn gateway_error(e: &GatewayError) -> AppError {
    match e {
        GatewayError::Refused(reason) => AppError::new(
            ErrorCode::PaymentsGatewayRefused,
            format!("the payment gateway refused: {reason}"),
        ),
        GatewayError::Unavailable(_) | GatewayError::Malformed(_) => AppError::new(
            ErrorCode::PaymentsGatewayUnavailable,
            "the payment gateway is unavailable; try again later",
        ),
    }
}

impl PaymentService {
    /// The service per `settings` (the gateway is off unless `payments_enabled`).
    pub fn new(writer: Writer, settings: &Settings) -> AppResult<Self> {
        let retry = RetryPolicy {
            retries: settings.payments_gateway_retries,
            timeout: Duration::from_millis(settings.payments_gateway_timeout_ms),
            ..RetryPolicy::default()
        };
        let store_id = settings.sslcommerz_store_id.clone().unwrap_or_default();
        let password = settings
            .sslcommerz_store_password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        let base_url = settings
            .payments_callback_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.http_addr));
        let client = |base: &str| {
            SslCommerz::new(base, &store_id, &password, retry).map_err(|e| {
                AppError::internal(std::io::Error::other(format!(
                    "the payment gateway client: {e}"
                )))
            })
        };
        let gateway = match (settings.payments_enabled, settings.payments_gateway) {
            (false, _) => Gateway::Off,
            (true, PaymentsGateway::Sslcommerz) => {
                let base = settings.sslcommerz_base_url.clone().unwrap_or_else(|| {
                    if settings.sslcommerz_sandbox {
                        SslCommerz::SANDBOX.to_owned()
                    } else {
                        SslCommerz::LIVE.to_owned()
                    }
                });
                Gateway::Remote(Arc::new(client(&base)?))
            }
            (true, PaymentsGateway::Simulator) => Gateway::Simulated {
                client: client(&base_url)?,
                simulator: Arc::new(Simulator::new(&store_id, &password)),
            },
        };
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                gateway,
                base_url: RwLock::new(base_url.trim_end_matches('/').to_owned()),
                base_configured: settings.payments_callback_url.is_some(),
                recovery_after: Duration::from_secs(settings.payments_recovery_after_secs),
                expire_after: Duration::from_secs(settings.payments_expire_after_secs),
            }),
        })
    }

    /// Registers the missed-callback recovery and the refund poll.
    pub fn register(&self, background: &mut Background) {
        if matches!(self.inner.gateway, Gateway::Off) {
            return;
        }
        let this = self.clone();
        background.periodic("payments_recovery", RECOVERY_CADENCE, move || {
            let this = this.clone();
            async move { this.recover().await }
        });
        let this = self.clone();
        background.periodic("payments_refund_poll", RECOVERY_CADENCE, move || {
            let this = this.clone();
            async move { this.poll_refunds().await }
        });
    }

    /// The API listener's address, once bound: the callback URLs point at it unless
    /// `payments_callback_url` says otherwise.
    pub fn listening_on(&self, addr: std::net::SocketAddr) {
        if !self.inner.base_configured {
            let mut base = self
                .inner
                .base_url
                .write()
                .unwrap_or_else(|p| p.into_inner());
            *base = format!("http://{addr}");
        }
    }

    fn base_url(&self) -> String {
        self.inner
            .base_url
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where the simulator's payment pages are (`…/pay/{session}`).
    pub fn simulator_pages(&self) -> String {
        format!("{}{SIMULATOR_PATH}/pay", self.base_url())
    }

    /// The simulator, when this deployment runs it.
    pub fn simulator(&self) -> Option<&Arc<Simulator>> {
        match &self.inner.gateway {
            Gateway::Simulated { simulator, .. } => Some(simulator),
            _ => None,
        }
    }

    fn gateway(&self) -> AppResult<Arc<dyn PaymentGateway>> {
        match &self.inner.gateway {
            Gateway::Off => Err(AppError::new(
                ErrorCode::PaymentsDisabled,
                "gateway payments are not enabled on this server (payments_enabled)",
            )),
            Gateway::Remote(g) => Ok(g.clone()),
            Gateway::Simulated { client, .. } => Ok(Arc::new(
                client.with_base(&format!("{}{SIMULATOR_PATH}", self.base_url())),
            )),
        }
    }

    fn reader(&self) -> &depot_store::DatabaseConnection {
        self.inner.writer.db().reader()
    }

    // --- reads ---

    /// A payment the caller may see (a sales user: those of their own orders).
    pub async fn get(&self, principal: &Principal, id: Uuid) -> AppResult<PaymentView> {
        Ok(views::payment(self.visible(principal, id).await?))
    }

    async fn visible(&self, principal: &Principal, id: Uuid) -> AppResult<payment::Model> {
        let p = payments::get(self.reader(), id)
            .await?
            .ok_or_else(not_found)?;
        if let Some(owner) = Acting::of(principal).only_owner() {
            let order = depot_store::repo::sales_orders::get(self.reader(), p.sales_order_id)
                .await?
                .ok_or_else(not_found)?;
            if order.0.owner_id != owner {
                return Err(not_found());
            }
        }
        Ok(p)
    }

    /// Payments, newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        mut filter: PaymentFilter,
        page: &PageRequest,
    ) -> AppResult<Page<PaymentView>> {
        filter.owner_id = Acting::of(principal).only_owner();
        let page = payments::list(self.reader(), &filter, page).await?;
        Ok(crate::catalog::map_page(page, views::payment))
    }

    // --- starting a gateway payment ---

    /// Opens a gateway session for what the order still owes: 201 with the gateway's page,
    /// or `payments.gateway_unavailable` (the payment is then `failed`, and a new attempt
    /// may start at once).
    pub async fn start(
        &self,
        principal: &Principal,
        input: NewGatewayPayment,
        client: &ClientInfo,
    ) -> AppResult<PaymentView> {
        if input.method != PaymentMethod::Sslcommerz {
            return Err(AppError::validation(vec![FieldError::new(
                "method",
                "not_gateway",
                "a gateway payment is sslcommerz; manual ones are recorded with an amount",
            )]));
        }
        let gateway = self.gateway()?;
        let acting = Acting::of(principal);
        let (row, request) =
            retry_transient(|| self.initiate(acting, input.order_id, client)).await?;
        // The call and the second unit run on their own task: a caller who gives up (or the
        // request timeout) never leaves the payment half-made.
        let this = self.clone();
        let client = client.clone();
        let finished = tokio::spawn(async move {
            let opened = gateway.open_session(&request).await;
            let row = retry_transient(|| this.opened(acting, row.id, &opened, &client)).await;
            (opened, row)
        })
        .await
        .map_err(|e| AppError::internal(std::io::Error::other(e.to_string())))?;
        let (opened, row) = (finished.0, finished.1?);
        match opened {
            Ok(_) => Ok(views::payment(row)),
            Err(e) => {
                tracing::warn!(payment = %row.id, error = %e, "the payment session was not opened");
                Err(gateway_error(&e))
            }
        }
    }

    /// The first short unit: the payment written `initiated`.
    async fn initiate(
        &self,
        acting: Acting,
        order_id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<(payment::Model, SessionRequest)> {
        let mut uow = self.inner.writer.begin(acting.actor(), client).await?;
        let (order, from, payable) = lock_payable(&uow, acting, order_id).await?;
        if !payable {
            return Err(not_payable(from));
        }
        let due = balance_due(&order);
        if due <= 0 {
            return Err(
                AppError::new(ErrorCode::PaymentsNothingDue, "the order owes nothing")
                    .with_details(serde_json::json!({ "balance_due": due })),
            );
        }
        let customer = customers::get(uow.tx(), order.0.customer_id).await?;
        let now = uow.now();
        let mut row = new_payment(
            &order,
            PaymentMethod::Sslcommerz,
            PaymentState::Initiated,
            due,
            acting.actor(),
            now,
        );
        let id = row.id;
        row.tran_id = Some(tran_id(id));
        row.attempts = 1;
        crate::sales::payments::insert(&uow, row.clone()).await?;
        uow.emit(&payment_transitioned(&row, None, now));
        uow.audit(
            AuditEntry::new("payment.initiated")
                .target("payment", id)
                .details(serde_json::json!({
                    "sales_order_id": order_id,
                    "method": row.method,
                    "amount": row.amount,
                    "currency": row.currency,
                    "tran_id": row.tran_id,
                })),
        )
        .await?;
        uow.commit().await?;
        let base = self.base_url();
        let request = SessionRequest {
            tran_id: row.tran_id.clone().unwrap_or_default(),
            total_amount: decimal_amount(row.amount),
            currency: row.currency.clone(),
            success_url: format!("{base}{RETURN_PATH}/success"),
            fail_url: format!("{base}{RETURN_PATH}/fail"),
            cancel_url: format!("{base}{RETURN_PATH}/cancel"),
            ipn_url: format!("{base}{IPN_PATH}"),
            product_name: format!("Sales order {order_id}"),
            product_category: "goods".to_owned(),
            num_of_item: u32::try_from(order.1.len()).unwrap_or(u32::MAX).max(1),
            customer: customer_fields(customer),
        };
        Ok((row, request))
    }

    /// The second short unit: `pending` with the gateway's page, or `failed`.
    async fn opened(
        &self,
        acting: Acting,
        id: Uuid,
        opened: &Result<Session, GatewayError>,
        client: &ClientInfo,
    ) -> AppResult<payment::Model> {
        let mut uow = self.inner.writer.begin(acting.actor(), client).await?;
        let mut row = payments::lock(uow.tx(), id).await?.ok_or_else(not_found)?;
        if state_of(&row) != PaymentState::Initiated {
            // A callback overtook the answer: it had the last word.
            return Ok(row);
        }
        let to = match opened {
            Ok(session) => {
                row.gateway_url = Some(session.gateway_url.clone());
                PaymentState::Pending
            }
            Err(e) => {
                row.failure = Some(e.to_string());
                PaymentState::Failed
            }
        };
        let row = transition(&mut uow, row, to, serde_json::json!({})).await?;
        uow.commit().await?;
        Ok(row)
    }
}

impl PaymentService {
    /// A payment held for review, approved by a person (`payments.refund`): `paid`, its
    /// order credited — refused while the order cannot take it.
    pub async fn approve(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PaymentView> {
        self.visible(principal, id).await?;
        let acting = Acting::of(principal);
        retry_transient(|| async {
            let mut uow = self.inner.writer.begin(acting.actor(), client).await?;
            let mut row = payments::lock(uow.tx(), id).await?.ok_or_else(not_found)?;
            let state = state_of(&row);
            if state != PaymentState::Review {
                return Err(invalid_state(state, "be approved"));
            }
            if row
                .flag
                .as_deref()
                .and_then(PaymentFlag::parse)
                .is_some_and(PaymentFlag::is_mismatch)
            {
                return Err(invalid_state(
                    state,
                    "be approved: the gateway's tran_id, amount or currency disagreed with it (cancel it)",
                ));
            }
            let (order, so_state, payable) = lock_payable(&uow, acting, row.sales_order_id).await?;
            if !payable {
                return Err(not_payable(so_state));
            }
            if balance_due(&order) < row.amount {
                return Err(AppError::new(
                    ErrorCode::PaymentsExceedsBalance,
                    "the payment is more than the order still owes",
                )
                .with_details(serde_json::json!({ "balance_due": balance_due(&order) })));
            }
            crate::sales::payments::credit(&mut uow, order, so_state, row.amount).await?;
            row.flag = None;
            let row = transition(
                &mut uow,
                row,
                PaymentState::Paid,
                serde_json::json!({ "approved": true }),
            )
            .await?;
            uow.commit().await?;
            Ok(views::payment(row))
        })
        .await
    }

    /// Cancels a payment still waiting for the gateway, or (with `payments.refund`) one held
    /// for review.
    pub async fn cancel(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientInfo,
    ) -> AppResult<PaymentView> {
        self.visible(principal, id).await?;
        let may_review = principal.has(depot_domain::auth::Permission::PaymentsRefund);
        retry_transient(|| async {
            let mut uow = self.inner.writer.begin(principal.actor(), client).await?;
            let row = payments::lock(uow.tx(), id).await?.ok_or_else(not_found)?;
            let state = state_of(&row);
            if !(state.awaits_gateway() || (state == PaymentState::Review && may_review)) {
                return Err(invalid_state(state, "be cancelled"));
            }
            let row = transition(
                &mut uow,
                row,
                PaymentState::Cancelled,
                serde_json::json!({}),
            )
            .await?;
            uow.commit().await?;
            Ok(views::payment(row))
        })
        .await
    }
}

/// The `cus_*` fields of a customer (the gateway requires name, email and phone: a customer
/// without them is sent placeholders it accepts).
fn customer_fields(c: Option<customer::Model>) -> Customer {
    let Some(c) = c else {
        return Customer::default();
    };
    Customer {
        name: c.name,
        email: c
            .email
            .unwrap_or_else(|| "noreply@example.invalid".to_owned()),
        phone: c.phone.unwrap_or_else(|| "0000000000".to_owned()),
        address: c.address.unwrap_or_else(|| "-".to_owned()),
        city: "-".to_owned(),
        postcode: "0000".to_owned(),
        country: "Bangladesh".to_owned(),
    }
}

/// Moves a (locked) payment to `to` — refused unless the state machine allows it — and
/// saves it with its audit row (`payment.<to>`, with `details`) and its
/// `payment.transitioned` event, in `uow`.
pub(crate) async fn transition(
    uow: &mut UnitOfWork,
    mut row: payment::Model,
    to: PaymentState,
    details: serde_json::Value,
) -> AppResult<payment::Model> {
    let from = state_of(&row);
    if !from.can_become(to) {
        return Err(invalid_state(from, to.as_str()));
    }
    let now = uow.now();
    row.state = to.as_str().to_owned();
    row.updated_at = now;
    if to == PaymentState::Paid && row.paid_at.is_none() {
        row.paid_at = Some(now);
    }
    let row = payments::save(uow.tx(), row).await?;
    uow.emit(&payment_transitioned(&row, Some(from), now));
    uow.audit(
        AuditEntry::new(audit_action(to))
            .target("payment", row.id)
            .change(
                serde_json::json!({ "state": from }),
                serde_json::json!({ "state": to }),
            )
            .details(details),
    )
    .await?;
    metrics::counter!("depot_payments_total", "method" => row.method.clone(), "state" => to.as_str())
        .increment(1);
    Ok(row)
}

fn audit_action(to: PaymentState) -> &'static str {
    use PaymentState as S;
    match to {
        S::Initiated => "payment.initiated",
        S::Pending => "payment.pending",
        S::Paid => "payment.paid",
        S::Failed => "payment.failed",
        S::Cancelled => "payment.cancelled",
        S::Expired => "payment.expired",
        S::Review => "payment.review",
        S::RefundPending => "payment.refund_pending",
        S::Refunded => "payment.refunded",
    }
}
