//! Notifications: every failover, failback, all-down, recovery, drain and undrain event is POSTed
//! to each configured webhook and handed to each configured command.
//!
//! Delivery runs in its own tasks, fed by the event broadcast: a slow or dead receiver never
//! delays the monitor, the publisher, the query path, or the other receivers. Each delivery has a timeout and a
//! bounded number of retries with exponential backoff; then it is logged and dropped.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::{NotifyCommand, Webhook, WebhookFormat};
use crate::ops::events::Event;
use crate::ops::reload::Notifiers;

/// First wait before a retry; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// The body a webhook receives for an event.
pub fn body(format: WebhookFormat, e: &Event) -> serde_json::Value {
    match format {
        WebhookFormat::Json => serde_json::to_value(e).expect("events serialize"),
        WebhookFormat::Slack => serde_json::json!({ "text": format!("weiche: {}", e.message) }),
    }
}

/// Events waiting per receiver before new ones are dropped (a receiver that far behind is down).
const QUEUE: usize = 1000;

/// Delivers notifying events until the event stream closes. Each webhook and command has its
/// own worker, fed in order: a slow receiver delays only itself. When `notifiers` changes (a
/// reload of weiche.toml), new workers take the events from then on; the old ones finish what
/// they were given.
pub async fn run(mut events: broadcast::Receiver<Event>, mut notifiers: watch::Receiver<Notifiers>) {
    crate::config::install_crypto_provider();
    let client = reqwest::Client::builder()
        .user_agent(concat!("weiche/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .build()
        .expect("an HTTP client");
    // Workers of earlier configurations, finishing their queues.
    let mut retired: Vec<JoinSet<()>> = Vec::new();
    loop {
        let current = notifiers.borrow_and_update().clone();
        let (queues, workers) = start(&client, current);
        loop {
            tokio::select! {
                e = events.recv() => {
                    let e = match e {
                        Ok(e) => e,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            warn!(missed = n, "notifications fell behind; some events were not sent");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if !e.kind.is_some_and(|k| k.notifies()) {
                        continue;
                    }
                    let e = Arc::new(e);
                    for q in &queues {
                        if q.try_send(e.clone()).is_err() {
                            warn!(event = e.seq, "a notification receiver is {QUEUE} events behind; this event is not sent to it");
                        }
                    }
                }
                changed = notifiers.changed() => {
                    if changed.is_err() {
                        // Nothing reloads any more: keep delivering to these.
                        std::future::pending::<()>().await;
                    }
                    break;
                }
            }
        }
        // Closing the queues lets the old workers end once they have delivered what they hold.
        drop(queues);
        retired.retain(|w| !w.is_empty());
        for w in &mut retired {
            while w.try_join_next().is_some() {}
        }
        retired.push(workers);
    }
}

/// A worker per webhook and command, and the queues that feed them.
fn start(client: &reqwest::Client, n: Notifiers) -> (Vec<mpsc::Sender<Arc<Event>>>, JoinSet<()>) {
    let mut workers = JoinSet::new();
    let mut queues = Vec::new();
    for w in n.webhooks {
        let (tx, mut rx) = mpsc::channel::<Arc<Event>>(QUEUE);
        let client = client.clone();
        workers.spawn(async move {
            while let Some(e) = rx.recv().await {
                deliver(&client, &w, &e).await;
            }
        });
        queues.push(tx);
    }
    for c in n.commands {
        let (tx, mut rx) = mpsc::channel::<Arc<Event>>(QUEUE);
        workers.spawn(async move {
            while let Some(e) = rx.recv().await {
                command(&c, &e).await;
            }
        });
        queues.push(tx);
    }
    (queues, workers)
}

async fn deliver(client: &reqwest::Client, w: &Webhook, e: &Event) {
    let body = body(w.format, e);
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=w.retries {
        let result = client.post(&w.url).timeout(w.timeout).json_body(&body).send().await;
        let problem = match result {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(err) if err.is_timeout() => {
                format!("no answer within {}", crate::monitor::probe::fmt_duration(w.timeout))
            }
            Err(err) => err.without_url().to_string(),
        };
        if attempt == w.retries {
            warn!(url = %w.url, event = e.seq, tries = attempt + 1, problem = %problem, "webhook failed; giving up on this event");
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
}

/// JSON bodies without reqwest's `json` feature.
trait JsonBody {
    fn json_body(self, v: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &serde_json::Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json").body(v.to_string())
    }
}

async fn command(c: &NotifyCommand, e: &Event) {
    let program = &c.argv[0];
    let spawned = tokio::process::Command::new(program)
        .args(&c.argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(ch) => ch,
        Err(err) => {
            warn!(command = %program, error = %err, "notify command could not start");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let mut json = serde_json::to_vec(e).expect("events serialize");
        json.push(b'\n');
        let _ = stdin.write_all(&json).await;
    }
    match tokio::time::timeout(c.timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let text = |b: &[u8]| String::from_utf8_lossy(b).trim().chars().take(500).collect::<String>();
            if out.status.success() {
                info!(command = %program, event = e.seq, output = %text(&out.stdout), "notify command ran");
            } else {
                warn!(command = %program, event = e.seq, status = %out.status, stderr = %text(&out.stderr), "notify command failed");
            }
        }
        Ok(Err(err)) => warn!(command = %program, error = %err, "notify command failed"),
        Err(_) => {
            warn!(command = %program, event = e.seq, timeout = %crate::monitor::probe::fmt_duration(c.timeout), "notify command timed out and was killed")
        }
    }
}
