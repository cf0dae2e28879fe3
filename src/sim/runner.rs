//! Simulating customers: one customer's whole journey (day loop, churn draw, oracle at the
//! cutoffs) and a chunk of consecutive customers into Arrow batches plus counters.
//!
//! Every customer has its own RNG seeded from `(seed, index)`, and the oracle's
//! continuations use separate streams, so a customer's rows do not depend on chunking,
//! threading, or on anything else being simulated.

use std::ops::Range;

use arrow::record_batch::RecordBatch;
use rand::Rng;

use super::customer::Customer;
use super::journey::DayLog;
use super::marketing::Uniform;
use super::oracle::Oracle;
use super::output::JourneyRows;
use super::state::State;
use super::truth::{CutoffRow, TruthRows, cutoff_days};
use crate::error::Result;

/// Counters of one chunk, by index (event type, channel, action × channel).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    pub customers: u64,
    pub events: u64,
    pub decisions: u64,
    pub churned: u64,
    pub by_type: [u64; 17],
    pub by_channel: [u64; 9],
    /// `[action * 9 + channel] = [delivered, opened, clicked, converted]`.
    pub responses: Vec<[u64; 4]>,
}

impl Counts {
    fn new(n_actions: usize) -> Self {
        Counts {
            responses: vec![[0; 4]; n_actions * 9],
            ..Default::default()
        }
    }

    /// Adds another chunk's counters.
    pub(crate) fn merge(&mut self, o: &Counts) {
        self.customers += o.customers;
        self.events += o.events;
        self.decisions += o.decisions;
        self.churned += o.churned;
        self.by_type
            .iter_mut()
            .zip(o.by_type)
            .for_each(|(a, b)| *a += b);
        self.by_channel
            .iter_mut()
            .zip(o.by_channel)
            .for_each(|(a, b)| *a += b);
        if self.responses.len() < o.responses.len() {
            self.responses.resize(o.responses.len(), [0; 4]);
        }
        for (a, b) in self.responses.iter_mut().zip(&o.responses) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }

    fn day(&mut self, log: &DayLog) {
        for e in &log.events {
            self.events += 1;
            self.by_type[e.kind as usize] += 1;
            if let Some(c) = e.channel {
                self.by_channel[c as usize] += 1;
            }
        }
        if let Some(d) = &log.decision {
            self.decisions += 1;
            let (a, c) = d.candidates[d.chosen];
            let r = &mut self.responses[a as usize * 9 + c as usize];
            r[0] += 1;
            r[1] += u64::from(d.opened);
            r[2] += u64::from(d.clicked);
            r[3] += u64::from(d.converted);
        }
    }
}

/// The batches of one chunk: events, decisions, outcomes, decision truth, customers,
/// ground truth.
pub(crate) struct ChunkOut {
    pub batches: [RecordBatch; 6],
    pub counts: Counts,
}

/// Simulates customers `range`.
pub(crate) fn run_chunk(o: &Oracle, range: Range<u64>) -> Result<ChunkOut> {
    let mut journeys = JourneyRows::new();
    let mut truth = TruthRows::new();
    let mut counts = Counts::new(o.actions.len());
    let cutoffs = cutoff_days(o.days);
    let mut log = DayLog {
        want_context: true,
        ..Default::default()
    };
    let mut rows = Vec::with_capacity(cutoffs.len());
    let mut purchase_days = Vec::new();
    for index in range {
        rows.clear();
        purchase_days.clear();
        let mut rng = o.customer_rng(index);
        let c = Customer::generate(index, o.days, &mut rng);
        let mut s = State::initial(&c, o.actions.len(), &mut rng);
        let mut next_cutoff = 0;
        let mut seq = 0;
        for day in 0..o.days as i32 {
            if cutoffs.get(next_cutoff) == Some(&day) {
                next_cutoff += 1;
                let alive = c.created_day < day && s.alive();
                let t = alive.then(|| {
                    let h = o.horizon(&c, &s, day, 30);
                    (h, s.satisfaction, s.irritation, o.churn_hazard(&c, &s))
                });
                rows.push(CutoffRow { day, truth: t });
            }
            if day < c.created_day || !s.alive() {
                continue;
            }
            o.run_day(&c, &mut s, day, &mut rng, &mut log, &mut Uniform);
            if log.purchased {
                purchase_days.push(day);
            }
            journeys.push_day(o, &c, day, &log, &mut seq);
            counts.day(&log);
            if rng.random::<f64>() < o.churn_hazard(&c, &s) {
                s.churned_day = Some(day);
                counts.churned += 1;
            }
        }
        truth.push(o, &c, &s, &rows, &purchase_days);
        counts.customers += 1;
    }
    let [events, decisions, outcomes, dtruth] = journeys.finish()?;
    let [customers, gtruth] = truth.finish()?;
    Ok(ChunkOut {
        batches: [events, decisions, outcomes, dtruth, customers, gtruth],
        counts,
    })
}
