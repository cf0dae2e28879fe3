//! Prometheus metrics: request counts by route and status, latency histograms by route,
//! decisions by chosen action and channel, events ingested. One short lock per request on the
//! hot path; text exposition format on `GET /metrics`.

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
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_ns: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum_ns += (secs * 1e9) as u64;
    }
}

/// One route's request counts by status and its latency histogram.
#[derive(Debug, Default)]
struct Route {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

/// The server's metrics. A request takes one lock and allocates only the first time its
/// route (or a decision's action and channel) is seen.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, Route>>,
    /// action → channel → decisions.
    decisions: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
    events: AtomicU64,
    explored: AtomicU64,
}

/// `map[key]`, inserted with a default the first time (the key is copied only then).
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Metrics {
    /// Records one request on `route` (the matched path) with `status` after `secs`.
    pub fn request(&self, route: &str, status: u16, secs: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let r = entry(&mut routes, route);
        *r.statuses.entry(status).or_default() += 1;
        r.latency.observe(secs);
    }

    /// Records a decision's chosen action and channel.
    pub fn decision(&self, action: &str, channel: &str, explore: bool) {
        {
            let mut d = self.decisions.lock().unwrap_or_else(|e| e.into_inner());
            *entry(entry(&mut d, action), channel) += 1;
        }
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
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        for (route, r) in routes.iter() {
            for (status, n) in &r.statuses {
                let _ = writeln!(
                    s,
                    "baton_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    esc(route)
                );
            }
        }
        s.push_str("# HELP baton_http_request_duration_seconds Request latency by route.\n# TYPE baton_http_request_duration_seconds histogram\n");
        for (route, r) in routes.iter() {
            let h = &r.latency;
            let route = esc(route);
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.counts[i];
                let _ = writeln!(
                    s,
                    "baton_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {cum}"
                );
            }
            let count = h.count;
            let _ = writeln!(
                s,
                "baton_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                s,
                "baton_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum_ns as f64 / 1e9
            );
            let _ = writeln!(
                s,
                "baton_http_request_duration_seconds_count{{route=\"{route}\"}} {count}"
            );
        }
        s.push_str("# HELP baton_decisions_total Decisions by chosen action and channel.\n# TYPE baton_decisions_total counter\n");
        drop(routes);
        for (a, by_channel) in self
            .decisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (c, n) in by_channel {
                let _ = writeln!(
                    s,
                    "baton_decisions_total{{action=\"{}\",channel=\"{}\"}} {n}",
                    esc(a),
                    esc(c)
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_counts_by_route_status_action_and_channel() {
        let m = Metrics::default();
        m.request("/v1/decide", 200, 0.0003);
        m.request("/v1/decide", 200, 0.003);
        m.request("/v1/decide", 400, 0.00005);
        m.request("/v1/events", 200, 2.0);
        m.decision("a1", "email", false);
        m.decision("a1", "email", true);
        m.decision("a1", "sms", false);
        m.decision("a\"2", "web", false);
        let s = m.render(7);
        for line in [
            "baton_http_requests_total{route=\"/v1/decide\",status=\"200\"} 2",
            "baton_http_requests_total{route=\"/v1/decide\",status=\"400\"} 1",
            "baton_http_requests_total{route=\"/v1/events\",status=\"200\"} 1",
            // cumulative buckets: 50 µs ≤ 100 µs, 300 µs ≤ 500 µs, 3 ms ≤ 5 ms
            "baton_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"0.0001\"} 1",
            "baton_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"0.00025\"} 1",
            "baton_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"0.0005\"} 2",
            "baton_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"0.005\"} 3",
            "baton_http_request_duration_seconds_bucket{route=\"/v1/decide\",le=\"+Inf\"} 3",
            "baton_http_request_duration_seconds_count{route=\"/v1/decide\"} 3",
            "baton_http_request_duration_seconds_bucket{route=\"/v1/events\",le=\"1\"} 0",
            "baton_http_request_duration_seconds_bucket{route=\"/v1/events\",le=\"5\"} 1",
            "baton_http_request_duration_seconds_sum{route=\"/v1/events\"} 2",
            "baton_decisions_total{action=\"a1\",channel=\"email\"} 2",
            "baton_decisions_total{action=\"a1\",channel=\"sms\"} 1",
            "baton_decisions_total{action=\"a\\\"2\",channel=\"web\"} 1",
            "baton_decisions_explored_total 1",
            "baton_customers 7",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
    }
}
