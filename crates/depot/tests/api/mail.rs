//! Email: queued in a transaction, sent by the background sender, retried, readable `.eml` files
//! in dev and real SMTP (against a real SMTP server, `aiosmtpd`, started by the test).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use depot_app::config::ServiceUrl;
use depot_store::entity::outbound_email;
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::helpers::{TestApp, assert_envelope, spawn_app, spawn_app_with};
use crate::messaging::eventually;

async fn request(app: &TestApp, to: &str) -> Uuid {
    let response = app
        .post_json(
            "/api/v1/_debug/emails",
            &serde_json::json!({ "to": to, "subject": "Stock alert", "text": "Widget is low." }),
        )
        .await;
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    body["email_id"].as_str().unwrap().parse().unwrap()
}

async fn row(app: &TestApp, id: Uuid) -> outbound_email::Model {
    outbound_email::Entity::find_by_id(id)
        .one(app.store.reader())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn dev_mail_lands_as_a_readable_eml_file() {
    let app = spawn_app().await;
    let id = request(&app, "ops@example.com").await;
    let dir = app.context.settings().data_dir.join("mail");
    // The mailer writes a temporary file and renames it: wait for the finished one.
    let finished = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("eml"))
                    .collect()
            })
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(10), ".eml written", || {
        let dir = dir.clone();
        async move { finished(&dir).len() == 1 }
    })
    .await;
    let file = finished(&dir).remove(0);
    let text = std::fs::read_to_string(file).unwrap();
    assert!(
        text.contains("To: ops@example.com") && text.contains("Subject: Stock alert"),
        "{text}"
    );
    eventually(Duration::from_secs(5), "row marked sent", || async {
        row(&app, id).await.status == "sent"
    })
    .await;
    let sent = row(&app, id).await;
    assert_eq!(sent.attempts, 1);
    assert!(sent.sent_at.is_some());
    app.stop().await;
}

#[tokio::test]
async fn an_invalid_recipient_is_refused_before_anything_is_queued() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/_debug/emails",
            &serde_json::json!({ "to": "nobody", "subject": " ", "text": "x" }),
        )
        .await;
    let body = assert_envelope(response, 422, "validation", "validation.failed").await;
    assert_eq!(body["details"]["fields"].as_array().unwrap().len(), 2);
    assert!(
        outbound_email::Entity::find()
            .all(app.store.reader())
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_smtp_server_means_retry_later_with_the_reason_kept() {
    let app =
        spawn_app_with(|s| s.smtp_url = Some(ServiceUrl::new("smtp://127.0.0.1:1?tls=none"))).await;
    let id = request(&app, "ops@example.com").await;
    eventually(Duration::from_secs(15), "first attempt failed", || async {
        row(&app, id).await.attempts >= 1 && row(&app, id).await.status == "pending"
    })
    .await;
    let failed = row(&app, id).await;
    assert!(
        failed.last_error.as_deref().unwrap_or("").contains("SMTP"),
        "{failed:?}"
    );
    assert!(
        failed.next_attempt_at > chrono::Utc::now(),
        "retried later, with backoff"
    );
    app.stop().await;
}

pub(crate) struct SmtpServer {
    child: Child,
    pub port: u16,
    pub maildir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (yet).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (Python's aiosmtpd) storing what it receives in a maildir.
pub(crate) fn smtp_server() -> Option<SmtpServer> {
    smtp_server_at(free_port())
}

/// [`smtp_server`] on `port`.
pub(crate) fn smtp_server_at(port: u16) -> Option<SmtpServer> {
    let available = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install aiosmtpd (pip install aiosmtpd)"
        );
        depot_testkit::skip(
            "mail::smtp_delivers_to_a_real_server",
            "smtp",
            "python3 with aiosmtpd",
        );
        return None;
    }
    let maildir = tempfile::tempdir().unwrap();
    let mut child = Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir.path().join("box"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(SmtpServer {
                child,
                port,
                maildir,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("aiosmtpd did not start");
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server() {
    let Some(server) = smtp_server() else { return };
    let url = format!("smtp://127.0.0.1:{}?tls=none", server.port);
    let app = spawn_app_with(|s| s.smtp_url = Some(ServiceUrl::new(url))).await;
    assert_eq!(app.context.mail().mailer_kind(), "smtp");
    let id = request(&app, "buyer@example.com").await;
    eventually(Duration::from_secs(15), "sent over SMTP", || async {
        row(&app, id).await.status == "sent"
    })
    .await;
    let new = server.maildir.path().join("box").join("new");
    let files: Vec<_> = std::fs::read_dir(&new).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let received = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(received.contains("To: buyer@example.com"), "{received}");
    assert!(received.contains("Subject: Stock alert"), "{received}");
    assert!(received.contains("Widget is low."), "{received}");
    app.stop().await;
}
