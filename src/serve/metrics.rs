//! Prometheus metrics: request counts by route and status, latency histograms by route,
//! decisions by chosen action and channel, events ingested. Lock-free counters on the hot
//! path; text exposition format on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    fn observe(&self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    decisions: Mutex<BTreeMap<(String, String), u64>>,
    events: AtomicU64,
    explored: AtomicU64,
}

impl Metrics {
    /// Records one request on `route` (the matched path) with `status` after `secs`.
    pub fn request(&self, route: &str, status: u16, secs: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route.to_string(), status))
            .or_default() += 1;
        let h = self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route.to_string())
            .or_default()
            .clone();
        h.observe(secs);
    }

    /// Records a decision's chosen action and channel.
    pub fn decision(&self, action: &str, channel: &str, explore: bool) {
        *self
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((action.to_string(), channel.to_string()))
            .or_default() += 1;
        if explore {
            self.explored.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records `n` events ingested durably.
    pub fn events(&self, n: usize) {
        self.events.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with `customers` held in memory.
    pub fn render(&self, customers: usize) -> String {
        let mut s = String::new();
        let esc = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        s.push_str("# HELP baton_http_requests_total HTTP requests by route and status.\n# TYPE baton_http_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "baton_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                esc(route)
            );
        }
        s.push_str("# HELP baton_http_request_duration_seconds Request latency by route.\n# TYPE baton_http_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let route = esc(route);
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.counts[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "baton_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cum}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                s,
                "baton_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                s,
                "baton_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                s,
                "baton_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        s.push_str("# HELP baton_decisions_total Decisions by chosen action and channel.\n# TYPE baton_decisions_total counter\n");
        for ((a, c), n) in self
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                s,
                "baton_decisions_total{{action=\"{}\",channel=\"{}\"}} {n}",
                esc(a),
                esc(c)
            );
        }
        let _ = writeln!(
            s,
            "# HELP baton_decisions_explored_total Decisions chosen by exploration.\n# TYPE baton_decisions_explored_total counter\nbaton_decisions_explored_total {}",
            self.explored.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP baton_events_ingested_total Events logged durably.\n# TYPE baton_events_ingested_total counter\nbaton_events_ingested_total {}",
            self.events.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP baton_customers Customers held in memory.\n# TYPE baton_customers gauge\nbaton_customers {customers}"
        );
        s
    }
}
