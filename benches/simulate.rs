//! Simulator throughput and memory: runs `baton::sim::simulate` into a temporary data
//! directory and prints customers, days, events, wall seconds, events/s and peak RSS.
//!
//! ```text
//! cargo bench --bench simulate                                  # 100,000 × 180
//! BATON_SIM_CUSTOMERS=1000000 BATON_SIM_DAYS=180 cargo bench --bench simulate
//! cargo bench --bench simulate -- 20000 120                     # customers days
//! ```
//!
//! `BATON_SIM_DIR` keeps the output in that (empty) directory instead of a temporary one.

use std::time::Instant;

use baton::config::Config;
use baton::sim::{SimParams, simulate};
use baton::store::DataDir;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn arg_or_env(args: &[String], i: usize, var: &str, default: u64) -> u64 {
    args.get(i)
        .cloned()
        .or_else(|| std::env::var(var).ok())
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let m = e.metadata().expect("metadata");
                    if m.is_dir() {
                        dir_size(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; keep only the positional numbers.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let config = Config::default();
    let mut params = SimParams::from_config(&config).expect("default config");
    params.customers = arg_or_env(&args, 0, "BATON_SIM_CUSTOMERS", 100_000);
    params.days = arg_or_env(&args, 1, "BATON_SIM_DAYS", 180) as u32;
    params.seed = std::env::var("BATON_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(42);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = std::env::var("BATON_SIM_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| tmp.path().to_path_buf());
    let dir = DataDir::create(&root).expect("data dir");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "simulating {} customers x {} days (seed {}, {threads} threads) into {}",
        params.customers,
        params.days,
        params.seed,
        root.display()
    );
    let step = (params.customers / 10).max(1);
    let t0 = Instant::now();
    let progress = |done: u64| {
        if done % step < 1024 || done == params.customers {
            eprintln!("  {done} customers, {:.1}s", t0.elapsed().as_secs_f64());
        }
    };
    let s = simulate(&config, &params, &dir, &progress).expect("simulate");
    let wall = t0.elapsed().as_secs_f64();
    println!("customers      {}", s.customers);
    println!("days           {}", params.days);
    println!("events         {}", s.events);
    println!("decisions      {}", s.decisions);
    println!("churned        {}", s.churned);
    println!("wall_s         {wall:.2}");
    println!("events_per_s   {:.0}", s.events as f64 / wall);
    println!(
        "customer_days_per_s {:.0}",
        s.customers as f64 * params.days as f64 / wall
    );
    println!("output_mib     {:.1}", dir_size(&root) as f64 / 1048576.0);
    match peak_rss_mib() {
        Some(m) => println!("peak_rss_mib   {m:.1}"),
        None => println!("peak_rss_mib   n/a"),
    }
}
