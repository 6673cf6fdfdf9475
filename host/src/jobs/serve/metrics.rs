//! `GET /metrics` in the Prometheus text format: requests by route and
//! status class, request latency, sandbox verdicts, live sessions and the
//! run queue's depth.

use super::AppState;
use crate::sandbox::Verdict;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Latency histogram bounds, in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Route {
    /// By status class: 2xx, 4xx, 5xx (and 1xx/3xx, rare).
    by_class: [u64; 5],
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_s: f64,
}

#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, Route>>,
    verdicts: [AtomicU64; Verdict::ALL.len()],
}

impl Metrics {
    pub fn verdict(&self, v: Verdict) {
        let i = Verdict::ALL.iter().position(|x| *x == v).unwrap_or(0);
        self.verdicts[i].fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, route: &str, status: u16, seconds: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = routes.entry(route.to_string()).or_default();
        r.by_class[(status / 100).clamp(1, 5) as usize - 1] += 1;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                r.buckets[i] += 1;
            }
        }
        r.count += 1;
        r.sum_s += seconds;
    }
}

/// Middleware: count and time every request by its route pattern.
pub async fn count(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    s.metrics.record(
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

pub async fn handle(State(s): State<Arc<AppState>>) -> Response {
    let mut t = String::new();
    let m = &s.metrics;
    t.push_str("# HELP leafe_requests_total HTTP requests by route and status class.\n");
    t.push_str("# TYPE leafe_requests_total counter\n");
    let routes = m.routes.lock().unwrap_or_else(|e| e.into_inner());
    for (route, r) in routes.iter() {
        for (i, n) in r.by_class.iter().enumerate() {
            if *n > 0 {
                let _ = writeln!(
                    t,
                    "leafe_requests_total{{route=\"{route}\",class=\"{}xx\"}} {n}",
                    i + 1
                );
            }
        }
    }
    t.push_str("# HELP leafe_request_seconds Request latency by route.\n");
    t.push_str("# TYPE leafe_request_seconds histogram\n");
    for (route, r) in routes.iter() {
        for (bound, n) in BUCKETS.iter().zip(r.buckets) {
            let _ = writeln!(
                t,
                "leafe_request_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            t,
            "leafe_request_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
            r.count
        );
        let _ = writeln!(
            t,
            "leafe_request_seconds_sum{{route=\"{route}\"}} {}",
            r.sum_s
        );
        let _ = writeln!(
            t,
            "leafe_request_seconds_count{{route=\"{route}\"}} {}",
            r.count
        );
    }
    drop(routes);
    t.push_str("# HELP leafe_sandbox_verdicts_total Sandbox runs by verdict.\n");
    t.push_str("# TYPE leafe_sandbox_verdicts_total counter\n");
    for (v, n) in Verdict::ALL.iter().zip(&m.verdicts) {
        let _ = writeln!(
            t,
            "leafe_sandbox_verdicts_total{{verdict=\"{v}\"}} {}",
            n.load(Ordering::Relaxed)
        );
    }
    t.push_str("# HELP leafe_sessions Live environment sessions.\n# TYPE leafe_sessions gauge\n");
    let _ = writeln!(t, "leafe_sessions {}", s.sessions.len());
    t.push_str(
        "# HELP leafe_run_queue Sandbox runs waiting for a slot.\n# TYPE leafe_run_queue gauge\n",
    );
    let _ = writeln!(t, "leafe_run_queue {}", s.queued());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t).into_response()
}
