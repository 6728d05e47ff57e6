//! Outgoing mail behind one trait: `.eml` files in a directory (embedded default, one readable
//! file per message) or SMTP through `lettre` (STARTTLS/TLS per the URL scheme, authentication
//! from the URL, pooled connections, timeouts).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Attachment as Part, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// One outgoing message: plain text, with text attachments (a CSV, say) when any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type such as `text/csv`.
    pub content_type: String,
    pub content: String,
}

/// Why a send failed; safe to store (no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError {
    pub message: String,
    /// True when retrying cannot help (a malformed address).
    pub permanent: bool,
}

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MailError {}

fn permanent(message: String) -> MailError {
    MailError {
        message,
        permanent: true,
    }
}

fn transient(message: String) -> MailError {
    MailError {
        message,
        permanent: false,
    }
}

#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

fn build(from: &Mailbox, email: &Email) -> Result<Message, MailError> {
    let to: Mailbox = email
        .to
        .parse()
        .map_err(|e| permanent(format!("invalid recipient address: {e}")))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone());
    let built = if email.attachments.is_empty() {
        builder
            .header(ContentType::TEXT_PLAIN)
            .body(email.text.clone())
    } else {
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(email.text.clone()));
        for a in &email.attachments {
            let kind = ContentType::parse(&a.content_type)
                .map_err(|e| permanent(format!("invalid attachment type: {e}")))?;
            parts = parts.singlepart(Part::new(a.filename.clone()).body(a.content.clone(), kind));
        }
        builder.multipart(parts)
    };
    built.map_err(|e| permanent(format!("cannot build the message: {e}")))
}

/// Writes each message as an RFC 5322 `.eml` file.
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
}

impl FileMailer {
    pub fn new(dir: PathBuf, from: &str) -> Result<Self, MailError> {
        let from = from
            .parse()
            .map_err(|e| permanent(format!("invalid sender address: {e}")))?;
        Ok(Self { dir, from })
    }
}

#[async_trait]
impl Mailer for FileMailer {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = build(&self.from, email)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| transient(format!("cannot create the mail directory: {e}")))?;
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
            depot_domain::id::new_id().simple()
        );
        // Write then rename, so a reader never sees half a message.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, message.formatted())
            .await
            .map_err(|e| transient(format!("cannot write the message: {e}")))?;
        tokio::fs::rename(&tmp, self.dir.join(&name))
            .await
            .map_err(|e| transient(format!("cannot store the message: {e}")))
    }
}

/// Sends through an SMTP server named by URL: `smtp://user:pass@host:587` (STARTTLS required),
/// `smtps://…:465` (implicit TLS), or `smtp://host:25?tls=none` for a trusted relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let from = from
            .parse()
            .map_err(|e| permanent(format!("invalid sender address: {e}")))?;
        let effective = effective_smtp_url(url);
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&effective)
            .map_err(|e| {
                permanent(format!(
                    "invalid SMTP URL: {}",
                    e.to_string().replace(url, "<url>")
                ))
            })?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(4))
            .build();
        Ok(Self { transport, from })
    }
}

/// `smtp://` without a `tls` parameter means STARTTLS *required* (lettre would otherwise speak
/// plaintext); `tls=none` explicitly allows plaintext to a trusted relay.
fn effective_smtp_url(url: &str) -> String {
    if !url.starts_with("smtp://") {
        return url.to_owned();
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    if params.contains(&"tls=none") {
        params.retain(|p| *p != "tls=none");
    } else if !params.iter().any(|p| p.starts_with("tls=")) {
        params.push("tls=required");
    }
    if params.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", params.join("&"))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = build(&self.from, email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(permanent(format!(
                "the SMTP server refused the message: {e}"
            ))),
            Err(e) => Err(transient(format!("SMTP delivery failed: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_mailer_writes_a_readable_eml() {
        let dir = std::env::temp_dir().join(format!(
            "depot-mail-{}",
            depot_domain::id::new_id().simple()
        ));
        let mailer = FileMailer::new(dir.clone(), "Depot <depot@example.com>")
            .unwrap_or_else(|e| panic!("{e}"));
        mailer
            .send(&Email {
                to: "ops@example.com".into(),
                subject: "Low stock".into(),
                text: "Widget is below its reorder point.".into(),
                attachments: vec![],
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let files: Vec<_> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert_eq!(files.len(), 1);
        let text = std::fs::read_to_string(files[0].path()).unwrap_or_default();
        assert!(text.contains("To: ops@example.com"), "{text}");
        assert!(text.contains("Subject: Low stock"), "{text}");
        assert!(
            text.contains("Widget is below its reorder point."),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_attachment_makes_a_multipart_message_carrying_the_file() {
        let from: Mailbox = "depot@example.com"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let message = build(
            &from,
            &Email {
                to: "supplier@example.com".into(),
                subject: "PO".into(),
                text: "Lines below.".into(),
                attachments: vec![Attachment {
                    filename: "po.csv".into(),
                    content_type: "text/csv".into(),
                    content: "sku,quantity\nW-1,100\n".into(),
                }],
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&message.formatted()).into_owned();
        assert!(text.contains("multipart/mixed"), "{text}");
        assert!(text.contains("filename=\"po.csv\""), "{text}");
        assert!(text.contains("Content-Type: text/csv"), "{text}");
        assert!(text.contains("W-1,100"), "{text}");
    }

    #[test]
    fn smtp_urls_require_starttls_unless_told_otherwise() {
        assert_eq!(
            effective_smtp_url("smtp://u:p@mx:587"),
            "smtp://u:p@mx:587?tls=required"
        );
        assert_eq!(effective_smtp_url("smtp://mx:25?tls=none"), "smtp://mx:25");
        assert_eq!(
            effective_smtp_url("smtp://mx?tls=opportunistic"),
            "smtp://mx?tls=opportunistic"
        );
        assert_eq!(effective_smtp_url("smtps://u:p@mx"), "smtps://u:p@mx");
    }

    #[tokio::test]
    async fn a_malformed_address_is_a_permanent_failure() {
        let dir = std::env::temp_dir().join("depot-mail-never");
        let mailer = FileMailer::new(dir, "depot@example.com").unwrap_or_else(|e| panic!("{e}"));
        let err = mailer
            .send(&Email {
                to: "not an address".into(),
                subject: "x".into(),
                text: "y".into(),
                attachments: vec![],
            })
            .await
            .err();
        assert_eq!(err.map(|e| e.permanent), Some(true));
    }
}
