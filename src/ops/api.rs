//! The HTTP API for operators: status, Prometheus metrics, drain/undrain, manual failback
//! release, events and their history, recent probes, health/readiness probes, and the status
//! page (`ops::page`). It only sends commands to the publisher and
//! reads what it answers; it never touches the query path.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;
use tokio::sync::broadcast;
use tracing::debug;

use crate::model::name::Name;
use crate::ops::control::{ActionError, Control};
use crate::ops::doc::{ApiError, DrainReply, FailbackReply};
use crate::ops::events::Event;

/// The process-wide Prometheus recorder (installed once, before anything records).
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("weiche_probe_latency_seconds".into()), &buckets)
            .expect("valid buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a second server in one test process) is fine: this one is used.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

#[derive(Clone)]
pub struct ApiState {
    pub control: Control,
    pub events: broadcast::Sender<Event>,
    /// The event journal on disk, for `/history` (None: no `state_dir`).
    pub journal: Option<crate::ops::journal::Layout>,
    pub ready: Arc<AtomicBool>,
    pub token: Option<Arc<str>>,
}

pub fn router(state: ApiState) -> Router {
    // The page's files hold no data: the page asks for the token itself.
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(crate::ops::page::routes());
    let guarded = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .route("/events", get(events))
        .route("/history", get(history))
        .route("/probes", get(probes))
        .route("/targets/{address}/drain", post(drain))
        .route("/targets/{address}/undrain", post(undrain))
        .route("/pools/{name}/failback", post(failback))
        .route("/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    open.merge(guarded).with_state(state)
}

/// The most API connections open at once, and from one address: whoever can connect cannot
/// take every file descriptor (probes and DNS over TCP need them) before a token is asked for.
pub const MAX_CONNECTIONS: usize = 256;
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;
/// A request's headers must arrive within this, and an idle kept-alive connection is closed
/// after it: a client that sends nothing (or a byte at a time) holds no connection for long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until the task is dropped: HTTP/1.1 with a header timeout,
/// at most [`MAX_CONNECTIONS`] connections and [`MAX_CONNECTIONS_PER_CLIENT`] per address
/// (more are closed at once and counted in `weiche_api_refused_total`).
pub async fn serve(listener: std::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = router(state);
    let open = std::sync::Arc::new(std::sync::Mutex::new(Open::default()));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, most likely: try again shortly rather than spin.
                debug!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = Open::admit(&open, peer.ip()) else {
            metrics::counter!("weiche_api_refused_total").increment(1);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                debug!(client = %peer, error = %e, "API connection ended");
            }
        });
    }
}

/// API connections open, in all and per address.
#[derive(Default)]
struct Open {
    total: usize,
    per_client: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
struct Slot {
    open: std::sync::Arc<std::sync::Mutex<Open>>,
    client: std::net::IpAddr,
}

impl Open {
    /// A place for a connection from `peer`, if there is one. 127.0.0.1 and ::1 are always let
    /// in: the CLI on the host (which asks from there) reaches the API however full it is.
    fn admit(open: &std::sync::Arc<std::sync::Mutex<Open>>, peer: std::net::IpAddr) -> Option<Slot> {
        // As DNS over TCP counts them: an IPv4 address, or an IPv6 /64.
        let client = crate::dns::tcp::client_of(peer);
        let host = peer == std::net::IpAddr::from([127, 0, 0, 1])
            || peer == std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
        let mut o = open.lock().expect("not poisoned");
        let mine = o.per_client.get(&client).copied().unwrap_or(0);
        if !host && (o.total >= MAX_CONNECTIONS || mine >= MAX_CONNECTIONS_PER_CLIENT) {
            return None;
        }
        o.total += 1;
        o.per_client.insert(client, mine + 1);
        Some(Slot { open: open.clone(), client })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.lock().expect("not poisoned");
        o.total -= 1;
        if let Some(n) = o.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                o.per_client.remove(&self.client);
            }
        }
    }
}

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !token_matches(given, token) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (see api.token_file)");
        }
    }
    next.run(req).await
}

/// Whether `given` is the token, compared in constant time: how soon a wrong token is refused
/// tells nothing of how much of it was right (only its length, which is no secret).
fn token_matches(given: Option<&str>, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(token.as_bytes())))
}

/// The answer to an operator action that did not take full effect.
fn not_done(e: ActionError) -> Response {
    let code = match e {
        ActionError::NotFound(_) => StatusCode::NOT_FOUND,
        ActionError::Conflict(_) => StatusCode::CONFLICT,
        ActionError::NotPersisted(_) => StatusCode::INTERNAL_SERVER_ERROR,
        ActionError::NotAgreed(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, e.to_string())
}

fn error(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, Json(ApiError { error: msg.into() })).into_response()
}

fn gone() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if let Some(why) = crate::fatal::failed() {
        (StatusCode::SERVICE_UNAVAILABLE, format!("failed, stopping: {why}\n")).into_response()
    } else if s.ready.load(Ordering::Relaxed) {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting: zones loading or first probe round running\n").into_response()
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    events: Option<usize>,
}

async fn status(State(s): State<ApiState>, Query(q): Query<StatusQuery>) -> Response {
    match s.control.status(q.events.unwrap_or(20)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => gone(),
    }
}

async fn probes(State(s): State<ApiState>) -> Response {
    match s.control.probes().await {
        Ok(v) => Json(v).into_response(),
        Err(_) => gone(),
    }
}

async fn metrics_text() -> Response {
    crate::dns::stats::export();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], metrics_handle().render()).into_response()
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<u64>,
    limit: Option<usize>,
    /// Seconds to wait for a new event when there is none (long poll; at most 60).
    wait: Option<u64>,
}

async fn events(State(s): State<ApiState>, Query(q): Query<EventsQuery>) -> Response {
    let since = q.since.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).min(crate::ops::events::KEEP);
    // Subscribe first, so nothing published between the look and the wait is missed.
    let mut rx = s.events.subscribe();
    let Ok(found) = s.control.events(since, limit).await else {
        return gone();
    };
    if !found.is_empty() || q.wait.unwrap_or(0) == 0 {
        return Json(found).into_response();
    }
    let wait = Duration::from_secs(q.wait.unwrap_or(0).min(60));
    let newer = tokio::time::timeout(wait, async {
        loop {
            match rx.recv().await {
                Ok(e) if e.seq > since => return vec![e],
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Vec::new(),
            }
        }
    })
    .await
    .unwrap_or_default();
    Json(newer).into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    /// A duration back from now (`24h`) or an RFC 3339 time; default 1h.
    since: Option<String>,
    pool: Option<String>,
    /// Kinds to keep, comma-separated (default: all).
    kind: Option<String>,
    limit: Option<usize>,
}

/// The most events one `/history` answer holds (the newest of them).
pub const HISTORY_LIMIT: usize = 100_000;

/// Events since a time, from the journal on disk and the recent ones in memory (which the disk
/// may not hold yet), oldest first, optionally of one pool and some kinds.
async fn history(State(s): State<ApiState>, Query(q): Query<HistoryQuery>) -> Response {
    let since = match crate::ops::journal::parse_since(q.since.as_deref().unwrap_or("1h"), std::time::SystemTime::now())
    {
        Ok(t) => t,
        Err(m) => return error(StatusCode::BAD_REQUEST, format!("since: {m}")),
    };
    let kinds: Option<Vec<&str>> = q.kind.as_deref().map(|k| k.split(',').map(str::trim).collect());
    let limit = q.limit.unwrap_or(10_000).min(HISTORY_LIMIT);
    let Ok(recent) = s.control.events(0, crate::ops::events::KEEP).await else {
        return gone();
    };
    let mut found = match s.journal.clone() {
        Some(layout) => {
            match tokio::task::spawn_blocking(move || crate::ops::journal::read_since(&layout, since)).await {
                Ok(Ok((events, _skipped))) => events,
                Ok(Err(e)) => {
                    return error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the event journal: {e}"));
                }
                Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the journal failed: {e}")),
            }
        }
        None => Vec::new(),
    };
    let on_disk: std::collections::HashSet<u64> = found.iter().map(|e| e.seq).collect();
    let since_ok = |e: &Event| crate::ops::journal::time_of(e).is_none_or(|t| t >= since);
    found.extend(recent.into_iter().filter(|e| !on_disk.contains(&e.seq) && since_ok(e)));
    found.sort_by_key(|e| e.seq);
    found.retain(|e| {
        q.pool.as_deref().is_none_or(|p| crate::ops::journal::about_pool(e, p))
            && kinds.as_ref().is_none_or(|k| e.kind.is_some_and(|kind| k.contains(&kind.name())))
    });
    // A pool no event found names and none is served by is a typo, not a quiet history.
    if let Some(p) = q.pool.as_deref().filter(|_| found.is_empty()) {
        let Ok(status) = s.control.status(0).await else { return gone() };
        let want = p.trim_end_matches('.');
        if !status.pools.iter().any(|x| x.pool.trim_end_matches('.').eq_ignore_ascii_case(want)) {
            return error(
                StatusCode::NOT_FOUND,
                format!("no pool {p:?} is served, and no event of that time (and kind) names it"),
            );
        }
    }
    let extra = found.len().saturating_sub(limit);
    found.drain(..extra);
    Json(found).into_response()
}

#[derive(Deserialize)]
struct PoolQuery {
    pool: Option<String>,
}

fn pool_name(s: &str) -> Result<Name, String> {
    let text = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::parse(&text, None).map_err(|e| format!("pool name {s:?}: {e}"))
}

async fn set_drain(s: ApiState, address: String, q: PoolQuery, drain: bool) -> Response {
    let Ok(address) = address.parse::<IpAddr>() else {
        return error(StatusCode::BAD_REQUEST, format!("{address:?} is not an IP address"));
    };
    let pool = match q.pool.as_deref().map(pool_name).transpose() {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match s.control.drain(address, pool, drain).await {
        Ok(Ok(())) => Json(DrainReply { ok: true, address, drained: drain }).into_response(),
        Ok(Err(e)) => not_done(e),
        Err(_) => gone(),
    }
}

async fn drain(State(s): State<ApiState>, Path(address): Path<String>, Query(q): Query<PoolQuery>) -> Response {
    set_drain(s, address, q, true).await
}

async fn undrain(State(s): State<ApiState>, Path(address): Path<String>, Query(q): Query<PoolQuery>) -> Response {
    set_drain(s, address, q, false).await
}

async fn failback(State(s): State<ApiState>, Path(name): Path<String>) -> Response {
    let pool = match pool_name(&name) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    match s.control.release_failback(pool.clone()).await {
        Ok(Ok(())) => Json(FailbackReply { ok: true, pool: pool.to_string() }).into_response(),
        Ok(Err(e)) => not_done(e),
        Err(_) => gone(),
    }
}

/// Reads weiche.toml again and looks at the zones: 200 with what changed, or 422 with why the
/// file was not taken (the previous configuration stays).
async fn reload(State(s): State<ApiState>) -> Response {
    match s.control.reload().await {
        Ok(r) if r.ok => Json(r).into_response(),
        // The whole answer, with its `error`: what was applied, what waits for a restart, and
        // which zone files did not load.
        Ok(mut r) => {
            r.error.get_or_insert_with(|| "the configuration was not reloaded".into());
            (StatusCode::UNPROCESSABLE_ENTITY, Json(r)).into_response()
        }
        Err(_) => gone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_itself_matches() {
        let token = "s3cret-token-0123456789";
        assert!(token_matches(Some(token), token));
        for wrong in [
            None,
            Some(""),
            Some("s3cret-token-012345678"),
            Some("s3cret-token-01234567890"),
            Some("S3cret-token-0123456789"),
        ] {
            assert!(!token_matches(wrong, token), "{wrong:?}");
        }
    }
}
