//! Outgoing email. Requests are persisted (`outbound_emails`) in the caller's transaction and
//! sent by the background sender — never inline in a request — with retries and backoff; the
//! row keeps status, attempts and the last error. The sender holds no database transaction
//! while it talks to the mail server.

use std::sync::Arc;
use std::time::Duration;

use chrono::SubsecRound;
use depot_adapters::broker::jitter;
use depot_adapters::mail::{Email, Mailer};
use depot_domain::message::backoff_delay;
use depot_domain::notify::NotificationStatus;
use depot_domain::{AppResult, Validator};
use depot_store::DatabaseTransaction;
use depot_store::repo::emails;
pub use depot_store::repo::emails::NewEmail;
use depot_store::repo::notifications::{self, EmailOutcome};
use uuid::Uuid;

use crate::uow::Writer;

/// Sending attempts a message is queued with (the sender applies `mail_max_attempts`).
pub const MAX_ATTEMPTS: i32 = 6;
const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// How often the sender looks for due messages when idle.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How long a claimed batch is reserved for one sender: longer than 20 sends can take.
const SEND_LEASE: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct MailService {
    writer: Writer,
    mailer: Arc<dyn Mailer>,
    backoff_base: Duration,
    max_attempts: i32,
}

/// Queues `email` inside `tx`, so it is sent if and only if the transaction commits.
pub async fn queue(
    tx: &DatabaseTransaction,
    email: NewEmail,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<Uuid> {
    let mut v = Validator::new();
    v.check(
        email.to.contains('@') && !email.to.contains(char::is_whitespace),
        "to",
        "invalid",
        "is not an email address",
    )
    .check(
        !email.subject.trim().is_empty(),
        "subject",
        "required",
        "must not be empty",
    );
    v.finish()?;
    emails::enqueue(tx, email, MAX_ATTEMPTS, now).await
}

impl MailService {
    /// A sender that retries a failed message after `backoff_base` (doubling, capped at an
    /// hour) and gives up after `max_attempts`.
    pub fn new(
        writer: Writer,
        mailer: Arc<dyn Mailer>,
        backoff_base: Duration,
        max_attempts: u32,
    ) -> Self {
        Self {
            writer,
            mailer,
            backoff_base,
            max_attempts: i32::try_from(max_attempts).unwrap_or(i32::MAX).max(1),
        }
    }

    /// Registers the sender of due emails.
    pub fn register(&self, background: &mut crate::background::Background) {
        let this = self.clone();
        background.sender("email", IDLE_POLL, move || {
            let this = this.clone();
            async move { this.send_due(20).await }
        });
    }

    pub fn mailer_kind(&self) -> &'static str {
        self.mailer.kind()
    }

    /// Queues one email in its own transaction.
    pub async fn request(&self, email: NewEmail) -> AppResult<Uuid> {
        let tx = self.writer.db().begin().await?;
        let id = queue(&tx, email, self.writer.now()).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Sends the messages that are due; returns how many were attempted.
    pub async fn send_due(&self, batch: u64) -> AppResult<usize> {
        let now = self.writer.now();
        // Stored and compared exactly: both databases keep milliseconds.
        let until =
            (now + chrono::Duration::from_std(SEND_LEASE).unwrap_or_default()).trunc_subsecs(3);
        let tx = self.writer.db().begin().await?;
        let claimed = emails::claim_due(&*tx, batch, now, until).await?;
        tx.commit().await?;
        let n = claimed.len();
        for row in claimed {
            let email = Email {
                to: row.to_address.clone(),
                subject: row.subject.clone(),
                text: row.body.clone(),
                attachments: row
                    .attachments
                    .as_deref()
                    .and_then(|json| serde_json::from_str(json).ok())
                    .unwrap_or_default(),
            };
            let result = self.mailer.send(&email).await;
            let now = self.writer.now();
            let (id, attempts, max) = (row.id, row.attempts, self.max_attempts);
            let outcome = match result {
                Ok(()) => {
                    metrics::counter!("emails_sent_total", "result" => "sent").increment(1);
                    None
                }
                Err(err) => {
                    let retry = !err.permanent && attempts < max;
                    let label = if retry { "retry" } else { "dead" };
                    metrics::counter!("emails_sent_total", "result" => label).increment(1);
                    tracing::warn!(email_id = %id, attempts, error = %err, "sending an email failed");
                    let retry_at = retry.then(|| {
                        let attempt = u32::try_from(attempts).unwrap_or(1);
                        now + chrono::Duration::from_std(backoff_delay(
                            attempt,
                            self.backoff_base,
                            BACKOFF_CAP,
                            jitter(),
                        ))
                        .unwrap_or_default()
                    });
                    Some((err.message, retry_at))
                }
            };
            let tx = self.writer.db().begin().await?;
            let mirrored = match outcome {
                None => {
                    if !emails::mark_sent(&*tx, id, until, now).await? {
                        continue;
                    }
                    EmailOutcome {
                        status: NotificationStatus::Sent,
                        attempts,
                        error: None,
                        next_attempt_at: None,
                        sent_at: Some(now),
                    }
                }
                Some((error, retry_at)) => {
                    if !emails::mark_failed(&*tx, id, until, &error, retry_at, now).await? {
                        continue;
                    }
                    EmailOutcome {
                        status: if retry_at.is_some() {
                            NotificationStatus::Failed
                        } else {
                            NotificationStatus::Dead
                        },
                        attempts,
                        error: Some(error),
                        next_attempt_at: retry_at,
                        sent_at: None,
                    }
                }
            };
            // A notification the email carries follows it, in the same transaction.
            notifications::mirror_email(&*tx, id, mirrored).await?;
            tx.commit().await?;
        }
        Ok(n)
    }
}
