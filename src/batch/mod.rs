//! Batch scoring: the server's [`Engine`] over batch (DataFusion) features for every
//! customer, then an allocation of at most one action per customer under per-action and
//! per-channel budgets ([`allocate`]), written as Parquet for a campaign tool.
//!
//! The path: [`crate::features::build_features`] as of `T` (events strictly before `T`),
//! the customers table for consents, deliveries and responses before `T` for the contact
//! policy (the same [`ContactHistory`] the server keeps), then [`Engine::decide`] at `T`
//! with exploration off ([`Engine::greedy`]). Batch and online therefore agree for every
//! customer; `tests/integration/batch.rs` checks it against the server's own state.
//!
//! Output rows (one per customer and ranked candidate, best first, at most `top` plus the
//! assigned one): `customer_id, as_of, rank, action_id, channel, p_response, value,
//! weight, cost, score, assigned, reasons`. A customer with no candidate above doing
//! nothing gets one `do_nothing` row.

pub mod allocate;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::prelude::{SessionContext, col, lit};
use rayon::prelude::*;
use serde::Serialize;

pub use allocate::{Allocation, Opt, Problem, allocate};

use crate::clv::{PurchaseDays, Rfm};
use crate::decide::{
    ContactHistory, CustomerView, DO_NOTHING, DecideInput, Engine, NO_CHANNEL, Name, Ranked,
};
use crate::error::{Error, Result};
use crate::features::{FeatureSet, build_features, events_from_batch, profiles_from_batch};
use crate::schema::CHANNELS;
use crate::store::ParquetSink;

/// What to score and under which budgets.
#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// Decision time and feature cutoff (µs): features from events strictly before it.
    pub as_of: i64,
    /// Ranked candidates written per customer (the assigned one is always written).
    pub top: usize,
    /// Only these channels may be used (`None`: every channel of the catalog).
    pub channels: Option<BTreeSet<String>>,
    /// At most this many customers per action.
    pub action_budgets: BTreeMap<String, u64>,
    /// At most this many customers per channel.
    pub channel_budgets: BTreeMap<String, u64>,
}

/// What the batch path knows about customers besides their features: consents, the
/// contact history and the RFM of the customer-value inputs, as the server holds them.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Consents of customers with a profile (customers table).
    pub consents: HashMap<String, [Option<bool>; 5]>,
    /// Deliveries and responses before `as_of`.
    pub contacts: HashMap<String, ContactHistory>,
    /// RFM at `as_of` ([`PurchaseDays::rfm`]) of customers with a purchase before its day.
    pub rfm: HashMap<String, Rfm>,
}

impl Inputs {
    /// Reads the customers table and the delivery, response and purchase events strictly
    /// before `as_of` from `ctx`.
    pub async fn load(ctx: &SessionContext, as_of: i64, keep_days: u32) -> Result<Self> {
        let mut consents = HashMap::new();
        if ctx.table_exist("customers")? {
            for b in ctx.table("customers").await?.collect().await? {
                for (id, p) in profiles_from_batch(&b)? {
                    consents.insert(id, p.consents);
                }
            }
        }
        let mut types = vec![lit("action_delivered"), lit("purchase")];
        types.extend(
            crate::decide::contact::RESPONSE_EVENTS
                .iter()
                .map(|t| lit(*t)),
        );
        let df = ctx
            .table("events")
            .await?
            .filter(
                col("ts")
                    .lt(crate::features::ts_lit(as_of))
                    .and(col("event_type").in_list(types, false)),
            )?
            .sort(vec![col("ts").sort(true, false)])?;
        let mut contacts: HashMap<String, ContactHistory> = HashMap::new();
        let mut purchases: HashMap<String, PurchaseDays> = HashMap::new();
        for b in df.collect().await? {
            for (id, e) in events_from_batch(&b)? {
                if e.event_type == "purchase" {
                    purchases
                        .entry(id)
                        .or_default()
                        .add(crate::features::day_of(e.ts), e.value);
                } else {
                    contacts.entry(id).or_default().apply_event(&e, keep_days);
                }
            }
        }
        let today = crate::features::day_of(as_of);
        let rfm = purchases
            .into_iter()
            .filter_map(|(id, p)| Some((id, p.rfm(today)?)))
            .collect();
        Ok(Self {
            consents,
            contacts,
            rfm,
        })
    }
}

/// A scored candidate, compact (a million customers keep about 25 each for the
/// allocation): indices into [`Catalog::actions`] and [`Catalog::channels`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cand {
    pub score: f64,
    pub p_response: f64,
    pub weight: f64,
    pub action: u16,
    pub channel: u16,
}

/// One customer's decision in batch: the candidates that beat doing nothing on the
/// allowed channels, best first.
#[derive(Debug, Clone)]
pub struct Scored {
    pub customer_id: String,
    pub candidates: Vec<Cand>,
    pub churn: Option<f64>,
}

/// The catalog's names and terms, by index: actions in catalog order, channels in
/// [`CHANNELS`] order.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub actions: Vec<String>,
    pub channels: Vec<String>,
    /// `actions` and `channels` as [`Name`]s, for the candidates written out.
    names: (Vec<Name>, Vec<Name>),
    /// Value of a response, by action.
    pub value: Vec<f64>,
    /// Delivery cost by action and channel (NaN where the action has no such channel).
    pub cost: Vec<Vec<f64>>,
}

impl Catalog {
    /// The engine's catalog.
    pub fn of(engine: &Engine) -> Self {
        let channels: Vec<String> = CHANNELS.iter().map(|c| c.to_string()).collect();
        let mut actions = Vec::new();
        let mut value = Vec::new();
        let mut cost = Vec::new();
        for (id, v, chans) in engine.catalog() {
            actions.push(id.to_string());
            value.push(v);
            let mut row = vec![f64::NAN; channels.len()];
            for (c, k) in chans {
                if let Some(i) = CHANNELS.iter().position(|x| *x == c) {
                    row[i] = k;
                }
            }
            cost.push(row);
        }
        let names = (
            actions.iter().map(|a| Name::new(a)).collect(),
            CHANNELS.iter().map(|c| Name::from_static(c)).collect(),
        );
        Self {
            actions,
            channels,
            names,
            value,
            cost,
        }
    }

    /// The action id of `c`.
    pub fn action(&self, c: &Cand) -> &str {
        &self.actions[c.action as usize]
    }

    /// The channel of `c`.
    pub fn channel(&self, c: &Cand) -> &str {
        &self.channels[c.channel as usize]
    }

    fn index(&self, r: &Ranked) -> Option<(u16, u16)> {
        let a = self.actions.iter().position(|a| **a == *r.action_id)?;
        let c = self.channels.iter().position(|c| **c == *r.channel)?;
        Some((a as u16, c as u16))
    }
}

/// Runs the engine (exploration off) for every row of a feature table
/// ([`crate::features::features_schema`] layout) at `opts.as_of`, in parallel.
pub fn score_features(
    engine: &Engine,
    features: &RecordBatch,
    inputs: &Inputs,
    opts: &ScoreOptions,
) -> Result<Vec<Scored>> {
    let engine = engine.greedy();
    let set: &FeatureSet = engine.feature_set();
    let width = set.columns().len();
    if features.num_columns() != width + 2 {
        return Err(Error::Invalid(format!(
            "the feature table has {} columns, the feature set needs {} (customer_id, as_of and {width} features)",
            features.num_columns(),
            width + 2
        )));
    }
    let ids = features.column(0).as_string_opt::<i32>().ok_or_else(|| {
        Error::Invalid("the feature table's first column (customer_id) is not text".into())
    })?;
    let cols: Vec<&Float64Array> = (0..width)
        .map(|k| {
            features.column(k + 2).as_primitive_opt().ok_or_else(|| {
                Error::Invalid(format!(
                    "feature column `{}` is not Float64",
                    set.columns()[k]
                ))
            })
        })
        .collect::<Result<_>>()?;
    let context = serde_json::Map::new();
    let input = DecideInput {
        now: opts.as_of,
        context: &context,
        limit: 1,
        explain: false,
    };
    let empty = ContactHistory::default();
    let floor = engine.config().do_nothing_score;
    let allowed = |c: &str| opts.channels.as_ref().is_none_or(|s| s.contains(c));
    let catalog = Catalog::of(&engine);
    // (action id, channel) of a candidate → catalog indices (short linear searches)
    let index = |r: &Ranked| -> Result<(u16, u16)> {
        catalog.index(r).ok_or_else(|| {
            Error::Invalid(format!(
                "candidate {}@{} is not in the catalog",
                r.action_id, r.channel
            ))
        })
    };
    // Rows are read a chunk at a time, column by column into a row-major buffer: reading
    // one row across ~100 columns at a time defeats the prefetcher.
    let n = features.num_rows();
    let chunks: Vec<std::ops::Range<usize>> = (0..n)
        .step_by(CHUNK)
        .map(|s| s..(s + CHUNK).min(n))
        .collect();
    let parts: Vec<Vec<Scored>> = chunks
        .into_par_iter()
        .map(|range| -> Result<Vec<Scored>> {
            let len = range.len();
            let mut buf: Vec<Option<f64>> = vec![None; len * width];
            for (k, c) in cols.iter().enumerate() {
                for (j, r) in range.clone().enumerate() {
                    buf[j * width + k] = c.is_valid(r).then(|| c.value(r));
                }
            }
            let mut rng = rand::rng();
            let mut out = Vec::with_capacity(len);
            for (j, r) in range.enumerate() {
                let id = ids.value(r);
                let consents = inputs.consents.get(id);
                let view = CustomerView {
                    customer_id: id,
                    features: &buf[j * width..(j + 1) * width],
                    consents: consents.copied().unwrap_or([None; 5]),
                    rfm: inputs.rfm.get(id).copied(),
                    known: consents.is_some(),
                    contacts: inputs.contacts.get(id).unwrap_or(&empty),
                };
                let d = engine.decide(&view, &input, String::new(), &mut rng)?;
                let mut candidates = Vec::new();
                for c in d
                    .candidates
                    .iter()
                    .filter(|c| c.score > floor && allowed(&c.channel))
                {
                    let (action, channel) = index(c)?;
                    candidates.push(Cand {
                        score: c.score,
                        p_response: c.p_response,
                        weight: c.weight,
                        action,
                        channel,
                    });
                }
                out.push(Scored {
                    customer_id: id.to_string(),
                    candidates,
                    churn: d.churn,
                });
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// Rows per chunk of [`score_features`].
const CHUNK: usize = 1024;

/// The allocation problem of scored customers: action and channel indices in catalog
/// and [`CHANNELS`] order.
pub struct Plan {
    pub problem: Problem,
    pub catalog: Catalog,
}

/// Builds the allocation problem; fails naming a budget for an action or channel that the
/// catalog does not have.
pub fn plan(engine: &Engine, scored: &[Scored], opts: &ScoreOptions) -> Result<Plan> {
    let catalog = Catalog::of(engine);
    let (actions, channels) = (&catalog.actions, &catalog.channels);
    for a in opts.action_budgets.keys() {
        if !actions.contains(a) {
            return Err(Error::Invalid(format!(
                "budget for unknown action `{a}` (actions: {})",
                actions.join(", ")
            )));
        }
    }
    for c in opts.channel_budgets.keys() {
        if !channels.contains(c) {
            return Err(Error::Invalid(format!(
                "budget for unknown channel `{c}` (channels: {})",
                channels.join(", ")
            )));
        }
    }
    let floor = engine.config().do_nothing_score;
    let mut problem = Problem::new(
        actions
            .iter()
            .map(|a| opts.action_budgets.get(a).copied())
            .collect(),
        channels
            .iter()
            .map(|c| opts.channel_budgets.get(c).copied())
            .collect(),
    );
    for s in scored {
        problem.push_customer(s.candidates.iter().map(|c| Opt {
            gain: c.score - floor,
            action: u32::from(c.action),
            channel: u32::from(c.channel),
        }));
    }
    Ok(Plan { problem, catalog })
}

/// Totals of a batch run (what `baton score` prints and writes to JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub as_of: String,
    pub customers: usize,
    /// Customers with at least one candidate that beats doing nothing.
    pub with_candidates: usize,
    pub candidates: usize,
    pub assigned: usize,
    /// Expected total gain over doing nothing of the assignment.
    pub value: f64,
    /// The same without budgets (every customer's best candidate).
    pub unconstrained: f64,
    /// Upper bound on the best total under the budgets, and the relative gap to it.
    pub bound: f64,
    pub gap: f64,
    pub price_rounds: usize,
    /// resource (`channel:sms`, `action:win_back`) → (assigned, budget or null).
    pub usage: BTreeMap<String, (u64, Option<u64>)>,
    pub seconds: BTreeMap<String, f64>,
}

/// A whole run: scored customers, the allocation and the summary.
pub struct Run {
    pub scored: Vec<Scored>,
    pub plan: Plan,
    pub allocation: Allocation,
    pub summary: Summary,
}

/// Scores every customer of the tables in `ctx` as of `opts.as_of` and allocates under
/// the budgets.
pub async fn score(ctx: &SessionContext, engine: &Engine, opts: &ScoreOptions) -> Result<Run> {
    let mut seconds = BTreeMap::new();
    let t = std::time::Instant::now();
    let features = build_features(ctx, engine.feature_set(), opts.as_of).await?;
    let inputs = Inputs::load(ctx, opts.as_of, engine.keep_days()).await?;
    seconds.insert("features".into(), t.elapsed().as_secs_f64());
    run_on(engine, &features, &inputs, opts, seconds)
}

/// [`score`] on a feature table already built.
pub fn run_on(
    engine: &Engine,
    features: &RecordBatch,
    inputs: &Inputs,
    opts: &ScoreOptions,
    mut seconds: BTreeMap<String, f64>,
) -> Result<Run> {
    let t = std::time::Instant::now();
    let scored = score_features(engine, features, inputs, opts)?;
    seconds.insert("decide".into(), t.elapsed().as_secs_f64());
    let t = std::time::Instant::now();
    let plan = plan(engine, &scored, opts)?;
    let allocation = allocate(&plan.problem);
    seconds.insert("allocate".into(), t.elapsed().as_secs_f64());
    let mut usage = BTreeMap::new();
    for (k, a) in plan.catalog.actions.iter().enumerate() {
        if allocation.action_used[k] > 0 || plan.problem.action_caps[k].is_some() {
            usage.insert(
                format!("action:{a}"),
                (allocation.action_used[k], plan.problem.action_caps[k]),
            );
        }
    }
    for (k, c) in plan.catalog.channels.iter().enumerate() {
        if allocation.channel_used[k] > 0 || plan.problem.channel_caps[k].is_some() {
            usage.insert(
                format!("channel:{c}"),
                (allocation.channel_used[k], plan.problem.channel_caps[k]),
            );
        }
    }
    let summary = Summary {
        as_of: crate::decide::engine::rfc3339(opts.as_of),
        customers: scored.len(),
        with_candidates: scored.iter().filter(|s| !s.candidates.is_empty()).count(),
        candidates: plan.problem.option_count(),
        assigned: allocation.pick.iter().filter(|p| p.is_some()).count(),
        value: allocation.value,
        unconstrained: allocation.unconstrained,
        bound: allocation.bound,
        gap: allocation.gap(),
        price_rounds: allocation.rounds,
        usage,
        seconds,
    };
    Ok(Run {
        scored,
        plan,
        allocation,
        summary,
    })
}

/// The schema of `baton score`'s output.
pub fn output_schema() -> SchemaRef {
    let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
    Arc::new(Schema::new(vec![
        f("customer_id", DataType::Utf8, false),
        f(
            "as_of",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        f("rank", DataType::UInt32, false),
        f("action_id", DataType::Utf8, false),
        f("channel", DataType::Utf8, false),
        f("p_response", DataType::Float64, true),
        f("value", DataType::Float64, true),
        f("weight", DataType::Float64, true),
        f("cost", DataType::Float64, true),
        f("score", DataType::Float64, false),
        f("assigned", DataType::Boolean, false),
        f("reasons", DataType::Utf8, false),
    ]))
}

/// The output columns being filled.
#[derive(Default)]
struct Rows {
    id: Vec<String>,
    rank: Vec<u32>,
    action: Vec<String>,
    channel: Vec<String>,
    p: Vec<Option<f64>>,
    value: Vec<Option<f64>>,
    weight: Vec<Option<f64>>,
    cost: Vec<Option<f64>>,
    score: Vec<f64>,
    assigned: Vec<bool>,
    reasons: Vec<String>,
}

impl Rows {
    /// A row of candidate `c`, or of doing nothing (`None`).
    fn push(&mut self, id: &str, rank: u32, c: Option<&Ranked>, assigned: bool, why: String) {
        self.id.push(id.to_string());
        self.rank.push(rank);
        self.action
            .push(c.map_or(DO_NOTHING.to_string(), |c| c.action_id.to_string()));
        self.channel
            .push(c.map_or(NO_CHANNEL.to_string(), |c| c.channel.to_string()));
        self.p.push(c.map(|c| c.p_response));
        self.value.push(c.map(|c| c.value));
        self.weight.push(c.map(|c| c.weight));
        self.cost.push(c.map(|c| c.cost));
        self.score.push(c.map_or(0.0, |c| c.score));
        self.assigned.push(assigned);
        self.reasons.push(why);
    }

    fn finish(self, as_of: i64) -> Result<RecordBatch> {
        let n = self.id.len();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.id)),
            Arc::new(TimestampMicrosecondArray::from(vec![as_of; n]).with_timezone("UTC")),
            Arc::new(UInt32Array::from(self.rank)),
            Arc::new(StringArray::from(self.action)),
            Arc::new(StringArray::from(self.channel)),
            Arc::new(Float64Array::from(self.p)),
            Arc::new(Float64Array::from(self.value)),
            Arc::new(Float64Array::from(self.weight)),
            Arc::new(Float64Array::from(self.cost)),
            Arc::new(Float64Array::from(self.score)),
            Arc::new(BooleanArray::from(self.assigned)),
            Arc::new(StringArray::from(self.reasons)),
        ];
        Ok(RecordBatch::try_new(output_schema(), cols)?)
    }
}

fn terms(c: &Ranked) -> String {
    format!(
        "p_response {:.4} × value {:.2} × weight {:.2} − cost {:.3} = {:.4}",
        c.p_response, c.value, c.weight, c.cost, c.score
    )
}

impl Run {
    /// A candidate with its names and terms.
    pub fn ranked(&self, c: &Cand) -> Ranked {
        let cat = &self.plan.catalog;
        Ranked {
            action_id: cat.names.0[c.action as usize],
            channel: cat.names.1[c.channel as usize],
            p_response: c.p_response,
            value: cat.value[c.action as usize],
            weight: c.weight,
            cost: cat.cost[c.action as usize][c.channel as usize],
            score: c.score,
        }
    }

    /// The resources (`sms budget 5000`, …) that are full among those `c` uses.
    fn full_for(&self, c: &Ranked) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(k) = self
            .plan
            .catalog
            .actions
            .iter()
            .position(|a| **a == *c.action_id)
            && let Some(cap) = self.plan.problem.action_caps[k]
            && self.allocation.action_used[k] >= cap
        {
            out.push(format!("action {} budget {cap}", c.action_id));
        }
        if let Some(k) = self
            .plan
            .catalog
            .channels
            .iter()
            .position(|x| **x == *c.channel)
            && let Some(cap) = self.plan.problem.channel_caps[k]
            && self.allocation.channel_used[k] >= cap
        {
            out.push(format!("{} budget {cap}", c.channel));
        }
        out
    }

    /// The output rows (see the module docs) as one batch.
    pub fn to_batch(&self, top: usize, as_of: i64) -> Result<RecordBatch> {
        let mut rows = Rows::default();
        for (i, s) in self.scored.iter().enumerate() {
            let pick = self.allocation.pick[i];
            let id = s.customer_id.as_str();
            if s.candidates.is_empty() {
                let why = "no eligible candidate beats doing nothing".to_string();
                rows.push(id, 1, None, true, why);
                continue;
            }
            let best = &self.ranked(&s.candidates[0]);
            let blocked = self.full_for(best);
            for (k, c) in s.candidates.iter().enumerate() {
                let is_pick = pick == Some(k);
                if k >= top.max(1) && !is_pick {
                    continue;
                }
                let c = &self.ranked(c);
                let why = match (is_pick, k) {
                    (true, 0) => format!("best candidate: {}", terms(c)),
                    (true, _) => format!(
                        "assigned instead of rank 1 ({}@{}), whose {} is spent on customers who gain more there: {}",
                        best.action_id,
                        best.channel,
                        blocked.join(" and "),
                        terms(c)
                    ),
                    (false, _) if pick.is_none() => {
                        let f = self.full_for(c);
                        let full = if f.is_empty() {
                            "budgets".to_string()
                        } else {
                            f.join(" and ")
                        };
                        format!("not assigned: {full} full: {}", terms(c))
                    }
                    (false, _) => format!("rank {}: {}", k + 1, terms(c)),
                };
                rows.push(id, k as u32 + 1, Some(c), is_pick, why);
            }
            if pick.is_none() {
                let rank = s.candidates.len().min(top.max(1)) as u32 + 1;
                let why = format!(
                    "do nothing: the budgets of every candidate are full ({})",
                    blocked.join(" and ")
                );
                rows.push(id, rank, None, true, why);
            }
        }
        rows.finish(as_of)
    }

    /// Writes the output rows to `out` (Parquet, atomically). Returns the row count.
    pub fn write(&self, out: &Path, top: usize, as_of: i64) -> Result<u64> {
        let batch = self.to_batch(top, as_of)?;
        let mut sink = ParquetSink::create(out, batch.schema())?;
        sink.write(&batch)?;
        sink.finish()
    }
}

/// Parses budgets `NAME=N` (`channel:NAME=N`, `action:NAME=N`; a bare name is a channel
/// when it is one, else an action) into (action budgets, channel budgets).
pub fn parse_budgets(
    specs: &[String],
    actions: &[String],
) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
    let mut a = BTreeMap::new();
    let mut c = BTreeMap::new();
    for s in specs {
        let (name, n) = s
            .split_once('=')
            .ok_or_else(|| Error::Invalid(format!("budget `{s}` is not NAME=N (e.g. sms=5000)")))?;
        let n: u64 = n.trim().parse().map_err(|_| {
            Error::Invalid(format!(
                "budget `{s}`: `{n}` is not a whole number of customers"
            ))
        })?;
        let name = name.trim();
        let (kind, name) = match name.split_once(':') {
            Some((k @ ("channel" | "action"), x)) => (Some(k), x),
            Some((k, _)) => {
                return Err(Error::Invalid(format!(
                    "budget `{s}`: `{k}:` must be `channel:` or `action:`"
                )));
            }
            None => (None, name),
        };
        let is_channel = CHANNELS.contains(&name);
        let is_action = actions.iter().any(|x| x == name);
        match kind {
            Some("channel") | None if is_channel => {
                c.insert(name.to_string(), n);
            }
            Some("action") | None if is_action => {
                a.insert(name.to_string(), n);
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "budget `{s}`: `{name}` is not a {} (channels: {}; actions: {})",
                    kind.unwrap_or("channel or action"),
                    CHANNELS.join(", "),
                    actions.join(", ")
                )));
            }
        }
    }
    Ok((a, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_name_what_is_wrong() {
        let actions = vec!["win_back".to_string(), "sms".to_string()];
        let (a, c) = parse_budgets(
            &[
                "sms=5000".into(),
                "action:sms=3".into(),
                "win_back=10".into(),
            ],
            &actions,
        )
        .unwrap();
        assert_eq!(c.get("sms"), Some(&5000));
        assert_eq!(a.get("sms"), Some(&3));
        assert_eq!(a.get("win_back"), Some(&10));
        let e = parse_budgets(&["fax=1".into()], &actions)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`fax` is not a channel or action"), "{e}");
        let e = parse_budgets(&["sms=lots".into()], &actions)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a whole number"), "{e}");
        let e = parse_budgets(&["sms".into()], &actions)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NAME=N"), "{e}");
        let e = parse_budgets(&["foo:sms=1".into()], &actions)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`channel:` or `action:`"), "{e}");
    }
}
