//! Feature computation: the DataFusion batch builder over simulated events (wall time,
//! events/s) against the same features computed by hand-written single-threaded Rust (the
//! online state fed every event), online ns per event update, µs per vector read and bytes
//! of online state per customer.
//!
//! ```text
//! cargo bench --bench features                       # 135,000 customers × 90 days ≈ 10M events
//! cargo bench --bench features -- 20000 90           # customers days
//! BATON_FEATURES_DIR=/tmp/sim cargo bench --bench features   # reuse (or create) a data dir
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use baton::config::Config;
use baton::features::{
    DAY_US, FeatureSet, OnlineState, build_features, events_from_batch, profiles_from_batch,
};
use baton::sim::{SimParams, simulate};
use baton::store::{DataDir, read_parquet};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let customers = args.first().copied().unwrap_or(135_000);
    let days = args.get(1).copied().unwrap_or(90) as u32;
    let config = Config::default();
    let mut params = SimParams::from_config(&config).expect("default config");
    params.customers = customers;
    params.days = days;

    let tmp;
    let dir = match std::env::var("BATON_FEATURES_DIR") {
        Ok(p) => DataDir::create(p).expect("data dir"),
        Err(_) => {
            tmp = tempfile::tempdir().expect("tempdir");
            DataDir::create(tmp.path()).expect("data dir")
        }
    };
    if DataDir::parts(&dir.events_dir()).expect("parts").is_empty() {
        let t = Instant::now();
        let s = simulate(&config, &params, &dir, &|_| {}).expect("simulate");
        println!(
            "simulated {} customers x {days} days: {} events in {:.1}s",
            s.customers,
            s.events,
            t.elapsed().as_secs_f64()
        );
    }
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions).expect("features"));
    let start = params
        .start
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    let as_of = start + i64::from(days) * DAY_US;
    println!(
        "{} features ({} columns), as of day {days}",
        set.specs().len(),
        set.columns().len()
    );

    // Batch: DataFusion, all cores.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut best = f64::INFINITY;
    let mut rows = 0;
    for _ in 0..2 {
        let t = Instant::now();
        let b = rt.block_on(async {
            let ctx = dir.session().await.expect("session");
            build_features(&ctx, &set, as_of).await.expect("batch")
        });
        best = best.min(t.elapsed().as_secs_f64());
        rows = b.num_rows();
    }

    let batch_rss = peak_rss_mib();

    // Hand-written single thread: the online state fed every event, then read.
    let profiles = profiles_from_batch(&{
        let (s, b) = read_parquet(&dir.customers_path()).expect("customers");
        arrow::compute::concat_batches(&s, &b).expect("concat")
    })
    .expect("profiles");
    let mut states: HashMap<String, OnlineState> = HashMap::with_capacity(profiles.len());
    let (mut decode_s, mut update_s, mut events) = (0.0, 0.0, 0u64);
    for part in DataDir::parts(&dir.events_dir()).expect("parts") {
        let (_, batches) = read_parquet(&part).expect("events");
        for b in batches {
            let t = Instant::now();
            let evs = events_from_batch(&b).expect("decode");
            decode_s += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for (c, e) in &evs {
                if e.ts >= as_of {
                    continue;
                }
                match states.get_mut(c) {
                    Some(s) => s.update(e),
                    None => {
                        let mut s = OnlineState::new(set.clone(), profiles.get(c).cloned());
                        s.update(e);
                        states.insert(c.clone(), s);
                    }
                }
                events += 1;
            }
            update_s += t.elapsed().as_secs_f64();
        }
    }
    let t = Instant::now();
    let mut checksum = 0.0;
    for s in states.values() {
        checksum += s.vector(as_of).iter().flatten().sum::<f64>();
    }
    let read_s = t.elapsed().as_secs_f64();
    let bytes: usize = states.values().map(OnlineState::heap_bytes).sum();
    let per_customer = bytes as f64 / states.len() as f64;
    let max_bytes = states
        .values()
        .map(OnlineState::heap_bytes)
        .max()
        .unwrap_or(0);
    let hand = update_s + read_s;

    println!(
        "events: {events}, customers with events: {}, batch rows: {rows}",
        states.len()
    );
    println!(
        "batch (DataFusion, {threads} threads): {best:.2}s best of 2 = {:.1}M events/s",
        events as f64 / best / 1e6
    );
    println!(
        "hand-written single-thread (online state): {hand:.2}s = {:.1}M events/s (update {update_s:.2}s + read {read_s:.2}s; Arrow decode {decode_s:.2}s not counted); batch/hand = {:.2}",
        events as f64 / hand / 1e6,
        best / hand
    );
    println!(
        "online: {:.0} ns per event update, {:.1} µs per vector read",
        update_s / events as f64 * 1e9,
        read_s / states.len() as f64 * 1e6
    );
    println!("online state: {per_customer:.0} bytes per customer on average, {max_bytes} max");
    if let (Some(b), Some(rss)) = (batch_rss, peak_rss_mib()) {
        println!(
            "peak RSS: {b:.0} MiB after the batch runs, {rss:.0} MiB at the end (checksum {checksum:.3e})"
        );
    }
}
