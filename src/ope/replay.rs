//! Off-policy inputs from Baton's own decision log (the `decisions` and `outcomes`
//! contracts, as the simulator and `baton log export` write them): each logged decision
//! is replayed — the customer's events strictly before it through the online features and
//! the contact history, as the server would have seen them — and the target engine ranks
//! the candidates that were offered then. The target's distribution over those candidates
//! and do-nothing comes from [`Engine::probabilities`]; the reward model is the target's
//! own response model, `r̂ = p_response × value − cost`, and do-nothing's reward is known
//! (0).
//!
//! The reward of a logged delivery is the action's value when an outcome of the
//! configured response kind (`clicked`, which a `converted` implies, or `converted`) was
//! recorded for its decision, minus the channel's cost; a logged do-nothing earns 0.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use rand::SeedableRng;
use rayon::prelude::*;

use super::estimators::Logged;
use crate::config::Config;
use crate::decide::{ContactHistory, CustomerView, DO_NOTHING, DecideInput, Engine};
use crate::error::{Error, Result};
use crate::features::OnlineState;
use crate::features::ResponseLabel;
use crate::store::{DataDir, read_parquet};

/// One logged decision.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedDecision {
    pub decision_id: String,
    pub customer_id: String,
    pub ts: i64,
    /// The (action, channel) pairs that were offered (empty: unknown).
    pub candidates: Vec<(String, String)>,
    pub action_id: String,
    pub channel: String,
    pub propensity: f64,
}

/// Where a decision log lives: the decision and outcome files.
#[derive(Debug, Clone)]
pub struct LogFiles {
    pub decisions: Vec<PathBuf>,
    pub outcomes: Vec<PathBuf>,
}

impl LogFiles {
    /// A data directory (`decisions/`, `outcomes/`), a `baton log export` directory
    /// (`decisions.parquet`, `outcomes.parquet`) or one decisions file (outcomes then from
    /// `data`).
    pub fn find(path: &Path, data: &DataDir) -> Result<Self> {
        if path.is_file() {
            return Ok(Self {
                decisions: vec![path.to_path_buf()],
                outcomes: DataDir::parts(&data.outcomes_dir())?,
            });
        }
        let dir = DataDir::open(path);
        let parts = DataDir::parts(&dir.decisions_dir())?;
        if !parts.is_empty() {
            return Ok(Self {
                decisions: parts,
                outcomes: DataDir::parts(&dir.outcomes_dir())?,
            });
        }
        let (d, o) = (
            path.join("decisions.parquet"),
            path.join("outcomes.parquet"),
        );
        if d.is_file() {
            return Ok(Self {
                decisions: vec![d],
                outcomes: o.is_file().then_some(o).into_iter().collect(),
            });
        }
        Err(Error::Invalid(format!(
            "{} holds no decision log: expected a data directory with decisions/part-*.parquet, a `baton log export` directory with decisions.parquet, or a decisions Parquet file",
            path.display()
        )))
    }
}

fn need<'a>(b: &'a RecordBatch, name: &str, file: &Path) -> Result<&'a Arc<dyn Array>> {
    b.column_by_name(name).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: the decision log has no `{name}` column (the decisions contract needs decision_id, customer_id, ts, candidates, action_id, channel, propensity)",
            file.display()
        ))
    })
}

/// Reads and checks the decisions: every propensity in (0, 1], every action in the
/// catalog (or do-nothing). Errors name the file, the row and the decision.
pub fn read_decisions(files: &[PathBuf], config: &Config) -> Result<Vec<LoggedDecision>> {
    let mut out = Vec::new();
    for file in files {
        let (_, batches) = read_parquet(file)?;
        let mut row0 = 0;
        for b in &batches {
            let s = |n: &str| -> Result<Arc<dyn Array>> {
                Ok(cast(need(b, n, file)?, &DataType::Utf8)?)
            };
            let (id, cid, act, chn) = (
                s("decision_id")?,
                s("customer_id")?,
                s("action_id")?,
                s("channel")?,
            );
            let ts = cast(need(b, "ts", file)?, &DataType::Int64)?;
            let prop = cast(need(b, "propensity", file)?, &DataType::Float64)?;
            let cands = need(b, "candidates", file)?
                .as_list_opt::<i32>()
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: `candidates` is not a list of (action_id, channel, …)",
                        file.display()
                    ))
                })?;
            let (ts, prop) = (
                ts.as_primitive::<Int64Type>(),
                prop.as_primitive::<Float64Type>(),
            );
            let (id, cid, act, chn) = (
                id.as_string::<i32>(),
                cid.as_string::<i32>(),
                act.as_string::<i32>(),
                chn.as_string::<i32>(),
            );
            for r in 0..b.num_rows() {
                let at = || {
                    format!(
                        "{} row {} (decision `{}`)",
                        file.display(),
                        row0 + r,
                        id.value(r)
                    )
                };
                if prop.is_null(r) {
                    return Err(Error::Invalid(format!(
                        "{}: no propensity; off-policy evaluation needs the logging policy's probability of each logged action",
                        at()
                    )));
                }
                let p = prop.value(r);
                if !(p > 0.0 && p <= 1.0) {
                    return Err(Error::Invalid(format!(
                        "{}: propensity {p} is not in (0, 1]",
                        at()
                    )));
                }
                let action = act.value(r).to_string();
                if action != DO_NOTHING && config.action(&action).is_none() {
                    return Err(Error::Invalid(format!(
                        "{}: unknown action `{action}` (not in the catalog of baton.toml)",
                        at()
                    )));
                }
                let mut candidates = Vec::new();
                if cands.is_valid(r) {
                    let items = cands.value(r);
                    let items = items.as_struct();
                    let a = cast(
                        items.column_by_name("action_id").ok_or_else(|| {
                            Error::Invalid(format!("{}: candidates lack action_id", at()))
                        })?,
                        &DataType::Utf8,
                    )?;
                    let c = cast(
                        items.column_by_name("channel").ok_or_else(|| {
                            Error::Invalid(format!("{}: candidates lack channel", at()))
                        })?,
                        &DataType::Utf8,
                    )?;
                    let (a, c) = (a.as_string::<i32>(), c.as_string::<i32>());
                    candidates.extend(
                        (0..a.len()).map(|k| (a.value(k).to_string(), c.value(k).to_string())),
                    );
                }
                out.push(LoggedDecision {
                    decision_id: id.value(r).to_string(),
                    customer_id: cid.value(r).to_string(),
                    ts: ts.value(r),
                    candidates,
                    action_id: action,
                    channel: chn.value(r).to_string(),
                    propensity: p,
                });
            }
            row0 += b.num_rows();
        }
    }
    Ok(out)
}

/// The decisions that got the response.
pub fn responded(files: &[PathBuf], response: ResponseLabel) -> Result<HashSet<String>> {
    let kinds: &[&str] = match response {
        ResponseLabel::Click => &["clicked", "converted"],
        ResponseLabel::Conversion => &["converted"],
    };
    let mut out = HashSet::new();
    for file in files {
        for b in read_parquet(file)?.1 {
            let id = cast(need(&b, "decision_id", file)?, &DataType::Utf8)?;
            let kind = cast(need(&b, "kind", file)?, &DataType::Utf8)?;
            let (id, kind) = (id.as_string::<i32>(), kind.as_string::<i32>());
            for r in 0..b.num_rows() {
                if kinds.contains(&kind.value(r)) {
                    out.insert(id.value(r).to_string());
                }
            }
        }
    }
    Ok(out)
}

pub use crate::features::History;

/// Replays every decision of `decisions` (see the module docs) and calls `f` with it, the
/// customer's view at that moment (features strictly before it, contacts, consents) and
/// the index of the decision; the results come back in the order of `decisions`.
pub fn replay<T: Send>(
    engine: &Engine,
    decisions: &[LoggedDecision],
    history: &History,
    f: impl Fn(&LoggedDecision, &CustomerView<'_>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let mut by_customer: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, d) in decisions.iter().enumerate() {
        by_customer
            .entry(d.customer_id.as_str())
            .or_default()
            .push(i);
    }
    let groups: Vec<(&str, Vec<usize>)> = by_customer.into_iter().collect();
    let empty = Vec::new();
    let parts: Vec<Vec<(usize, T)>> = groups
        .par_iter()
        .map(|(cid, idx)| -> Result<Vec<(usize, T)>> {
            let mut idx = idx.clone();
            idx.sort_by_key(|&i| decisions[i].ts);
            let profile = history.profiles.get(*cid).cloned();
            let known = profile.is_some();
            let consents = profile.as_ref().map_or([None; 5], |p| p.consents);
            let mut online = OnlineState::new(Arc::clone(engine.feature_set()), profile);
            let mut contacts = ContactHistory::default();
            let events = history.events.get(*cid).unwrap_or(&empty);
            let mut next = 0;
            let mut out = Vec::with_capacity(idx.len());
            for i in idx {
                let d = &decisions[i];
                while next < events.len() && events[next].ts < d.ts {
                    online.update(&events[next]);
                    contacts.apply_event(&events[next], engine.keep_days());
                    next += 1;
                }
                let features = online.vector(d.ts);
                let view = CustomerView {
                    customer_id: cid,
                    features: &features,
                    consents,
                    rfm: online.rfm(d.ts),
                    known,
                    contacts: &contacts,
                };
                out.push((i, f(d, &view)?));
            }
            Ok(out)
        })
        .collect::<Result<_>>()?;
    let mut rows: Vec<Option<T>> = (0..decisions.len()).map(|_| None).collect();
    for (i, x) in parts.into_iter().flatten() {
        rows[i] = Some(x);
    }
    Ok(rows
        .into_iter()
        .map(|x| x.expect("every decision replayed"))
        .collect())
}

/// The reward of a logged decision (see the module docs).
pub fn reward(config: &Config, d: &LoggedDecision, rewarded: &HashSet<String>) -> f64 {
    if d.action_id == DO_NOTHING {
        return 0.0;
    }
    let hit = rewarded.contains(&d.decision_id);
    config.action(&d.action_id).map_or(0.0, |s| {
        (if hit { s.value } else { 0.0 }) - s.cost_on(&d.channel)
    })
}

/// The estimator rows of `engine` as the target policy on `decisions` (see the module
/// docs), in the order of `decisions`.
pub fn target_rows(
    engine: &Engine,
    config: &Config,
    decisions: &[LoggedDecision],
    rewarded: &HashSet<String>,
    history: &History,
) -> Result<Vec<Logged>> {
    let context = serde_json::Map::new();
    replay(engine, decisions, history, |d, view| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let input = DecideInput {
            now: d.ts,
            context: &context,
            limit: 1,
            explain: false,
        };
        let dec = engine.decide(view, &input, String::new(), &mut rng)?;
        let offered = |a: &str, c: &str| {
            d.candidates.is_empty() || d.candidates.iter().any(|(x, y)| x == a && y == c)
        };
        let ranked: Vec<_> = dec
            .candidates
            .iter()
            .filter(|r| offered(&r.action_id, &r.channel))
            .collect();
        let scores: Vec<f64> = ranked.iter().map(|r| r.score).collect();
        let probs = engine.probabilities(&scores);
        let rhat: Vec<f64> = ranked
            .iter()
            .map(|r| r.p_response * r.value - r.cost)
            .collect();
        let direct: f64 = rhat.iter().zip(&probs).map(|(r, p)| r * p).sum();
        let (target, predicted) = if d.action_id == DO_NOTHING {
            (probs[ranked.len()], 0.0)
        } else {
            ranked
                .iter()
                .position(|r| *r.action_id == *d.action_id && *r.channel == *d.channel)
                .map_or((0.0, 0.0), |k| (probs[k], rhat[k]))
        };
        Ok(Logged {
            propensity: d.propensity,
            reward: reward(config, d, rewarded),
            target,
            predicted,
            direct,
            known_mass: probs[ranked.len()],
        })
    })
}

/// The decisions as a bandit table ([`super::bandit`]): the features at each decision as
/// context, `action@channel` as the action, the reward and the logged propensity — so a
/// policy can be learned from Baton's own log like from any other.
pub fn bandit_table(
    engine: &Engine,
    config: &Config,
    decisions: &[LoggedDecision],
    rewarded: &HashSet<String>,
    history: &History,
) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    let rows = replay(engine, decisions, history, |_, view| {
        Ok(view.features.to_vec())
    })?;
    let names = engine.feature_set().columns();
    let mut fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(n, DataType::Float64, true))
        .collect();
    let mut cols: Vec<ArrayRef> = (0..names.len())
        .map(|k| Arc::new(rows.iter().map(|r| r[k]).collect::<Float64Array>()) as ArrayRef)
        .collect();
    let b = super::bandit::ACTION;
    fields.push(Field::new(b, DataType::Utf8, false));
    cols.push(Arc::new(StringArray::from_iter_values(
        decisions
            .iter()
            .map(|d| format!("{}@{}", d.action_id, d.channel)),
    )));
    fields.push(Field::new(super::bandit::POSITION, DataType::Int64, true));
    cols.push(Arc::new(Int64Array::from(vec![None; decisions.len()])));
    fields.push(Field::new(super::bandit::CANDIDATES, DataType::Utf8, true));
    cols.push(Arc::new(StringArray::from_iter(decisions.iter().map(
        |d| {
            (!d.candidates.is_empty()).then(|| {
                d.candidates
                    .iter()
                    .map(|(a, c)| format!("{a}@{c}"))
                    .collect::<Vec<_>>()
                    .join("|")
            })
        },
    ))));
    fields.push(Field::new(super::bandit::REWARD, DataType::Float64, false));
    cols.push(Arc::new(Float64Array::from_iter_values(
        decisions.iter().map(|d| reward(config, d, rewarded)),
    )));
    fields.push(Field::new(
        super::bandit::PROPENSITY,
        DataType::Float64,
        false,
    ));
    cols.push(Arc::new(Float64Array::from_iter_values(
        decisions.iter().map(|d| d.propensity),
    )));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
}
