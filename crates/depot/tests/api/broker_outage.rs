//! RabbitMQ goes away and comes back (a TCP proxy in front of the real broker is cut and
//! restored): events recorded meanwhile stay pending in the outbox, then go out and are handled
//! exactly once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use depot_app::config::ServiceUrl;
use depot_store::entity::outbox;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

use crate::helpers::spawn_app_with;
use crate::messaging::{handled_count, ping};

/// A TCP proxy that can be cut (every connection dropped, new ones refused) and restored.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = {
            let (up, links) = (up.clone(), links.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropped: the broker is "down"
                    }
                    let target = target.clone();
                    let link = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    links.lock().await.push(link.abort_handle());
                }
            })
            .abort_handle()
        };
        Self {
            addr,
            up,
            links,
            accept,
        }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[tokio::test]
async fn events_recorded_while_rabbitmq_is_down_go_out_after_it_returns() {
    let Some(amqp) = depot_testkit::amqp_url() else {
        depot_testkit::skip(
            "broker_outage::events_recorded_while_rabbitmq_is_down",
            "rabbitmq",
            "DEPOT_TEST_AMQP_URL",
        );
        return;
    };
    // amqp://user:pass@host:port/vhost → the proxy stands in for host:port.
    let (credentials, rest) = amqp.split_once('@').unwrap();
    let (target, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let proxy = Proxy::start(target.to_owned()).await;
    let via_proxy = format!("{credentials}@{}/{vhost}", proxy.addr);
    let app = spawn_app_with(|s| s.amqp_url = Some(ServiceUrl::new(via_proxy.clone()))).await;
    assert_eq!(app.context.broker().kind(), "rabbitmq");

    let warm = ping(&app, serde_json::json!({})).await;
    wait_for(
        Duration::from_secs(30),
        "the first ping handled",
        || async { handled_count(&app.store, warm).await == 1 },
    )
    .await;

    proxy.cut().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(ping(&app, serde_json::json!({})).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unpublished = || async {
        outbox::Entity::find()
            .filter(outbox::Column::Id.is_in(ids.clone()))
            .filter(outbox::Column::Status.ne("published"))
            .count(app.store.reader())
            .await
            .unwrap()
    };
    assert_eq!(
        unpublished().await,
        5,
        "nothing is lost or marked sent while down"
    );

    proxy.restore();
    wait_for(Duration::from_secs(60), "every event published", || async {
        unpublished().await == 0
    })
    .await;
    for id in &ids {
        let id = *id;
        wait_for(Duration::from_secs(60), "every event handled", || async {
            handled_count(&app.store, id).await >= 1
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        assert_eq!(handled_count(&app.store, *id).await, 1, "exactly once");
    }
    app.stop().await;
}

async fn wait_for<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
