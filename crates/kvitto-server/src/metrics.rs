//! `/metrics`: Prometheus text exposition. Labels are route templates (`/v1/events`) and
//! status codes only — never a path with values, a query, a token id or a customer reference.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the request duration histogram.
const DURATION_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Upper bounds (events) of the events-per-append-request histogram.
const EVENT_BUCKETS: [f64; 6] = [1.0, 8.0, 64.0, 512.0, 4096.0, 10_000.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], value: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        if let Some(i) = bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in bounds.iter().enumerate() {
            cumulative += self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braced = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braced} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braced} {}", self.count);
    }
}

/// One route template's answers: counts by status, and the time they took.
#[derive(Debug, Default)]
struct Route {
    statuses: BTreeMap<u16, u64>,
    durations: Histogram,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, Route>>,
    append_sizes: Mutex<Histogram>,
    appended: AtomicU64,
    in_flight: AtomicU64,
}

impl Metrics {
    /// One answered request on `route` (a template).
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        if let Ok(mut routes) = self.routes.lock() {
            // A handful of templates: the name is copied once, on its first answer.
            if !routes.contains_key(route) {
                routes.insert(route.to_string(), Route::default());
            }
            if let Some(r) = routes.get_mut(route) {
                *r.statuses.entry(status).or_default() += 1;
                r.durations.observe(&DURATION_BUCKETS, took.as_secs_f64());
            }
        }
    }

    /// One append request whose `events` are durable.
    pub fn appended(&self, events: usize) {
        self.appended.fetch_add(events as u64, Ordering::Relaxed);
        if let Ok(mut h) = self.append_sizes.lock() {
            h.observe(&EVENT_BUCKETS, events as f64);
        }
    }

    /// A request entered (`+1`) or left (`-1`) a slot.
    pub fn in_flight(&self, entered: bool) {
        if entered {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        } else {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Requests holding a slot now.
    pub fn in_flight_now(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The exposition, with the ledger's own counters.
    pub fn render(&self, ledger: &kvitto::Ledger) -> String {
        let mut out = String::with_capacity(4096);
        let help = |out: &mut String, name: &str, kind: &str, text: &str| {
            let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
        };
        // A metric of one unlabelled value.
        let single = |out: &mut String, name: &str, kind: &str, text: &str, value: &dyn std::fmt::Display| {
            help(out, name, kind, text);
            let _ = writeln!(out, "{name} {value}");
        };
        if let Ok(routes) = self.routes.lock() {
            let name = "kvitto_http_requests_total";
            help(&mut out, name, "counter", "HTTP requests answered, by route template and status.");
            for (route, r) in routes.iter() {
                for (status, n) in &r.statuses {
                    let _ = writeln!(out, "{name}{{route=\"{route}\",status=\"{status}\"}} {n}");
                }
            }
            let name = "kvitto_http_request_duration_seconds";
            help(&mut out, name, "histogram", "Time to answer, by route template.");
            for (route, r) in routes.iter() {
                r.durations.write(&mut out, name, &format!("route=\"{route}\""), &DURATION_BUCKETS);
            }
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        single(&mut out, "kvitto_http_in_flight", "gauge", "Requests holding a concurrency slot.", &in_flight);
        let appended = self.appended.load(Ordering::Relaxed);
        let text = "Events appended over HTTP (durable, receipt sent).";
        single(&mut out, "kvitto_appended_events_total", "counter", text, &appended);
        if let Ok(h) = self.append_sizes.lock() {
            help(&mut out, "kvitto_append_request_events", "histogram", "Events per successful append request.");
            h.write(&mut out, "kvitto_append_request_events", "", &EVENT_BUCKETS);
        }
        let w = ledger.write_stats();
        let counters: [(&str, &str, &dyn std::fmt::Display); 5] = [
            ("kvitto_commit_groups_total", "Commit groups made durable since the ledger opened.", &w.groups),
            ("kvitto_commit_events_total", "Events in those groups.", &w.events),
            (
                "kvitto_commit_failed_groups_total",
                "Commit groups that failed (the ledger handle is poisoned).",
                &w.failed_groups,
            ),
            ("kvitto_commit_sync_seconds_total", "Time spent making groups durable (fdatasync).", &w.sync_seconds),
            (
                "kvitto_commit_group_seconds_total",
                "Time from a group's first request to its durability, summed.",
                &w.group_seconds,
            ),
        ];
        for (name, text, value) in counters {
            single(&mut out, name, "counter", text, value);
        }
        help(&mut out, "kvitto_commit_group_events", "histogram", "Events per commit group.");
        let mut cumulative = 0;
        for (i, b) in kvitto::GROUP_BUCKETS.iter().enumerate() {
            cumulative += w.group_sizes[i];
            let le = if *b == u64::MAX { "+Inf".to_string() } else { b.to_string() };
            let _ = writeln!(out, "kvitto_commit_group_events_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "kvitto_commit_group_events_sum {}", w.events);
        let _ = writeln!(out, "kvitto_commit_group_events_count {}", w.groups);
        single(&mut out, "kvitto_ledger_events", "gauge", "Events in the ledger.", &ledger.len());
        let poisoned = u8::from(ledger.is_poisoned());
        let text = "1 when a storage failure poisoned the ledger handle.";
        single(&mut out, "kvitto_ledger_poisoned", "gauge", text, &poisoned);
        out
    }
}
