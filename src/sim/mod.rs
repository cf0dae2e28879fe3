//! Journey simulator with a ground-truth oracle: Baton's lab.
//!
//! [`simulate`] draws a population of customers with hidden traits (engagement, price
//! sensitivity, channel affinities and responsiveness, churn hazard, action kinds that
//! annoy them, …), plays their daily journeys (sessions, carts, orders, returns, support
//! contacts, surveys) and a uniform-random behaviour policy over the action catalog, and
//! writes everything into a [`DataDir`] in Baton's data contracts:
//!
//! - `events/part-N.parquet`, `customers.parquet`, `decisions/part-N.parquet`,
//!   `outcomes/part-N.parquet` (see [`crate::schema`]). Event ids are `e<index>-<seq>`,
//!   decision ids `d<index>-<day>`. Consents in `customers.parquet` are as of the end of
//!   the run: an `unsubscribe` event (after an unwanted delivery) withdraws one, and
//!   `updated_at` is then its time. Each decision's `context` is a JSON object of the
//!   eligibility variables at that moment plus the inbound channels visited earlier that
//!   day;
//! - `ground_truth.parquet`: per customer × cutoff, the oracle's true 30-day churn and
//!   no-purchase probabilities, what was realised, latent state and static traits (see
//!   [`truth`]);
//! - `ground_truth_decisions.parquet`: per decision, the true P(open), P(click),
//!   P(convert) of the chosen pair and the realised responses.
//!
//! The [`Oracle`] is the world model itself: the simulator draws every response from
//! [`Oracle::response`] and every churn event from [`Oracle::churn_hazard`].
//!
//! Customers are independent and each has its own RNG seeded from `(seed, index)`, so
//! output is byte-identical for a seed whatever the number of threads. Customers are
//! simulated in chunks by worker threads and written in order, in bounded memory.

pub mod closed_loop;
mod customer;
mod journey;
mod marketing;
mod oracle;
mod output;
mod runner;
mod state;
pub mod truth;

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use customer::{AGE_BANDS, Customer, REGIONS, SEGMENTS, Traits, customer_id};
pub use oracle::{HorizonTruth, ORACLE_PATHS, Oracle, ResponseProbs, ResponseTraits};
pub use output::{POLICY_VERSION, decision_id, ground_truth_decisions_schema};
pub use state::{State, Vars};
pub use truth::{cutoff_days, ground_truth_schema};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::schema::{self, CHANNELS, EVENT_TYPES};
use crate::store::{DataDir, ParquetSink};

/// The variables the simulator's state offers to eligibility expressions.
/// `days_since_last_purchase` is null when the customer never ordered; `last_nps` and
/// `last_csat` are null when never surveyed; `cart_abandoned_7d` is a boolean (a cart
/// abandoned in the last 7 days and not followed by an order).
pub const ELIGIBILITY_VARIABLES: &[&str] = &[
    "tenure_days",
    "purchase_count",
    "days_since_last_purchase",
    "purchases_90d",
    "spend_90d",
    "visits_30d",
    "cart_abandoned_7d",
    "support_contacts_30d",
    "last_nps",
    "last_csat",
    "segment",
    "age_band",
    "region",
];

/// File name of the per-decision ground truth inside the data directory.
pub const GROUND_TRUTH_DECISIONS_FILE: &str = "ground_truth_decisions.parquet";

/// Customers simulated per chunk (the unit of work and of memory).
const CHUNK: u64 = 1024;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct SimParams {
    /// Number of customers.
    pub customers: u64,
    /// Number of simulated days.
    pub days: u32,
    /// Random seed.
    pub seed: u64,
    /// First simulated day.
    pub start: chrono::NaiveDate,
    /// Daily probability of a decision point for an alive customer.
    pub action_rate: f64,
}

impl SimParams {
    /// The `[simulate]` section of a configuration.
    pub fn from_config(c: &Config) -> Result<Self> {
        Ok(SimParams {
            customers: c.simulate.customers,
            days: c.simulate.days,
            seed: c.simulate.seed,
            start: c.simulate_start()?,
            action_rate: c.simulate.action_rate,
        })
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.customers == 0 {
            return Err(Error::config("simulate.customers", "must be at least 1"));
        }
        if self.days == 0 {
            return Err(Error::config("simulate.days", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.action_rate) {
            return Err(Error::config(
                "simulate.action_rate",
                "must be within [0, 1]",
            ));
        }
        Ok(())
    }
}

/// Responses to the deliveries of one (action, channel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseCounts {
    pub delivered: u64,
    pub opened: u64,
    pub clicked: u64,
    pub converted: u64,
}

/// What a simulation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimSummary {
    pub customers: u64,
    pub events: u64,
    pub decisions: u64,
    pub events_by_type: BTreeMap<String, u64>,
    pub events_by_channel: BTreeMap<String, u64>,
    /// Customers whose latent churn event happened within the simulation.
    pub churned: u64,
    /// (action, channel) → response counts.
    pub responses: BTreeMap<(String, String), ResponseCounts>,
    pub elapsed: Duration,
}

/// SplitMix64 over a sequence of words: seeds for per-customer RNG streams.
pub(crate) fn mix(words: &[u64]) -> u64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in words {
        let mut z = h ^ w.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h = z ^ (z >> 31);
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    }
    h
}

/// Simulates `params.customers` customers over `params.days` days with the catalog of
/// `config` and writes everything into `dir` (see the module docs). `progress` is called
/// with the number of customers done. Fails if an eligibility expression uses a variable
/// outside [`ELIGIBILITY_VARIABLES`] (naming the action), or if `dir` already holds events
/// or customers.
pub fn simulate(
    config: &Config,
    params: &SimParams,
    dir: &DataDir,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SimSummary> {
    let started = Instant::now();
    params.validate()?;
    let oracle = Oracle::new(config, params)?;
    if dir.customers_path().exists() || !DataDir::parts(&dir.events_dir())?.is_empty() {
        return Err(Error::Invalid(format!(
            "{} is not empty (it already holds customers or events); simulate into a new or empty data directory",
            dir.root().display()
        )));
    }
    let mut sinks = [
        ParquetSink::create(
            DataDir::next_part_path(&dir.events_dir())?,
            schema::events_schema(),
        )?,
        ParquetSink::create(
            DataDir::next_part_path(&dir.decisions_dir())?,
            schema::decisions_schema(),
        )?,
        ParquetSink::create(
            DataDir::next_part_path(&dir.outcomes_dir())?,
            schema::outcomes_schema(),
        )?,
        ParquetSink::create(
            dir.root().join(GROUND_TRUTH_DECISIONS_FILE),
            ground_truth_decisions_schema(),
        )?,
        ParquetSink::create(dir.customers_path(), schema::customers_schema())?,
        ParquetSink::create(dir.ground_truth_path(), ground_truth_schema())?,
    ];
    let n_chunks = params.customers.div_ceil(CHUNK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(n_chunks as usize)
        .max(1);
    let mut counts = runner::Counts::default();
    std::thread::scope(|scope| -> Result<()> {
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = mpsc::sync_channel(1);
            receivers.push(rx);
            let oracle = &oracle;
            scope.spawn(move || {
                for k in (w as u64..n_chunks).step_by(workers) {
                    let range = k * CHUNK..((k + 1) * CHUNK).min(params.customers);
                    if tx.send(runner::run_chunk(oracle, range)).is_err() {
                        break;
                    }
                }
            });
        }
        for k in 0..n_chunks {
            let out = receivers[(k % workers as u64) as usize]
                .recv()
                .map_err(|_| Error::Data("a simulation worker stopped".into()))??;
            for (sink, batch) in sinks.iter_mut().zip(&out.batches) {
                sink.write(batch)?;
            }
            counts.merge(&out.counts);
            progress(counts.customers);
        }
        Ok(())
    })?;
    for sink in sinks {
        sink.finish()?;
    }
    let mut summary = SimSummary {
        customers: counts.customers,
        events: counts.events,
        decisions: counts.decisions,
        churned: counts.churned,
        ..Default::default()
    };
    for (t, n) in EVENT_TYPES.iter().zip(counts.by_type) {
        if n > 0 {
            summary.events_by_type.insert(t.to_string(), n);
        }
    }
    for (c, n) in CHANNELS.iter().zip(counts.by_channel) {
        if n > 0 {
            summary.events_by_channel.insert(c.to_string(), n);
        }
    }
    for (i, r) in counts.responses.iter().enumerate() {
        if r[0] > 0 {
            let key = (
                oracle.actions[i / 9].id.clone(),
                CHANNELS[i % 9].to_string(),
            );
            summary.responses.insert(
                key,
                ResponseCounts {
                    delivered: r[0],
                    opened: r[1],
                    clicked: r[2],
                    converted: r[3],
                },
            );
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

#[cfg(test)]
mod tests;
