//! What the server holds: the engine (swapped atomically on reload), every customer's
//! online features and contact history (sharded behind mutexes), the decisions awaiting
//! outcomes, and the write-ahead log. All of it is `Send + Sync` behind an `Arc`.
//!
//! Every change goes through a [`Record`]: first into the write-ahead log, then applied in
//! memory by the same function that replays the log at start.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use crate::config::{Config, ServeConfig};
use crate::decide::contact::RESPONSE_EVENTS;
use crate::decide::{ContactHistory, DO_NOTHING, DecisionRecord, Engine};
use crate::error::{Error, Result};
use crate::features::{
    DAY_US, Event, FeatureSet, OnlineState, events_from_batch, profiles_from_batch,
};
use crate::schema::{RowError, TableKind, Validator};
use crate::store::DataDir;
use crate::store::wal::Wal;

const SHARDS: usize = 64;

/// One customer's in-memory state.
#[derive(Debug, Clone)]
pub struct Customer {
    pub online: OnlineState,
    pub contacts: ContactHistory,
}

/// What a decision needs to accept its outcomes.
#[derive(Debug, Clone)]
pub struct DecisionMeta {
    pub customer_id: String,
    pub action_id: String,
    pub channel: String,
    pub ts: i64,
}

/// The decisions that still accept outcomes: those at most `keep` µs older than the
/// newest one. Sharded like the customers, so one shard's growth (a rehash of a large
/// map) or pruning holds up only the requests that hash to it. Each shard forgets its old
/// decisions each time the newest has moved on by an eighth of `keep` since it last did,
/// so it holds at most 9/8 of the window; a lookup applies the window exactly.
#[derive(Debug)]
struct Decisions {
    shards: Vec<Mutex<DecisionShard>>,
    /// The newest decision time seen (capped at a day past the clock), `i64::MIN` before
    /// the first.
    newest: AtomicI64,
}

#[derive(Debug, Default)]
struct DecisionShard {
    map: HashMap<String, DecisionMeta>,
    pruned_at: Option<i64>,
}

impl Default for Decisions {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(DecisionShard::default()))
                .collect(),
            newest: AtomicI64::new(i64::MIN),
        }
    }
}

impl Decisions {
    fn shard(&self, id: &str) -> MutexGuard<'_, DecisionShard> {
        self.shards[shard_of(id)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, id: String, meta: DecisionMeta, keep: i64) {
        // a timestamp far in the future must not make every decision look old
        let cap = chrono::Utc::now().timestamp_micros().saturating_add(DAY_US);
        let ts = meta.ts.min(cap);
        let newest = self.newest.fetch_max(ts, Ordering::Relaxed).max(ts);
        let mut shard = self.shard(&id);
        shard.map.insert(id, meta);
        let pruned_at = *shard.pruned_at.get_or_insert(newest);
        if newest - pruned_at > keep / 8 {
            let horizon = newest - keep;
            shard.map.retain(|_, m| m.ts >= horizon);
            shard.pruned_at = Some(newest);
        }
    }

    /// The decision `id` if it is within `keep` of the newest.
    fn get(&self, id: &str, keep: i64) -> Option<DecisionMeta> {
        let horizon = self.newest.load(Ordering::Relaxed).saturating_sub(keep);
        self.shard(id)
            .map
            .get(id)
            .filter(|m| m.ts >= horizon)
            .cloned()
    }

    /// The ids of `customer`'s decisions.
    fn of_customer(&self, customer: &str) -> HashSet<String> {
        let mut ids = HashSet::new();
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            ids.extend(
                s.map
                    .iter()
                    .filter(|(_, m)| m.customer_id == customer)
                    .map(|(k, _)| k.clone()),
            );
        }
        ids
    }

    fn remove(&self, id: &str) {
        self.shard(id).map.remove(id);
    }
}

/// An outcome of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    pub decision_id: String,
    pub action_id: String,
    /// µs since the epoch.
    pub ts: i64,
    pub kind: String,
    pub reward: f64,
}

/// One entry of the write-ahead log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// Events as received (validated), one JSON object each.
    Events {
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
    },
    /// A customer upsert in the customers contract.
    Customer {
        row: serde_json::Map<String, serde_json::Value>,
    },
    Decision(Box<DecisionRecord>),
    Outcome(OutcomeRecord),
}

impl Record {
    /// The write-ahead log line of a decision: what `serde_json` writes for
    /// `Record::Decision(d)`, written by hand ([`DecisionRecord::write_json_fields`]).
    pub fn decision_line(d: &DecisionRecord) -> String {
        // sized for the record up front: growing a 2 KB line by doubling copied it 4 times
        let mut buf = Vec::with_capacity(512 + 48 * d.candidates.len());
        buf.extend_from_slice(br#"{"t":"decision","#);
        d.write_json_fields(&mut buf);
        buf.push(b'}');
        // only whole strings and ASCII went in
        String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The customer this record is about (`None` for an outcome, found via its decision).
    fn customer(&self) -> Vec<&str> {
        match self {
            Record::Events { rows } => rows
                .iter()
                .filter_map(|r| r.get("customer_id").and_then(|v| v.as_str()))
                .collect(),
            Record::Customer { row } => row
                .get("customer_id")
                .and_then(|v| v.as_str())
                .into_iter()
                .collect(),
            Record::Decision(d) => vec![d.customer_id.as_str()],
            Record::Outcome(_) => Vec::new(),
        }
    }
}

/// Where the server loads from and reloads from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `baton.toml` (may be missing: defaults).
    pub config_path: PathBuf,
    pub data: DataDir,
    pub models: PathBuf,
}

/// Validates JSON rows against a contract; all-or-nothing.
pub fn validate_rows(
    kind: TableKind,
    source: &str,
    rows: &[serde_json::Map<String, serde_json::Value>],
) -> std::result::Result<arrow::array::RecordBatch, Vec<RowError>> {
    let mut v = Validator::new(kind, source);
    for (i, row) in rows.iter().enumerate() {
        let fields: Vec<(&str, crate::schema::Cell<'_>)> = row
            .iter()
            .map(|(k, x)| (k.as_str(), crate::store::ingest::json_cell(x)))
            .collect();
        v.push(i as u64, &fields);
    }
    if !v.errors.is_empty() {
        return Err(std::mem::take(&mut v.errors));
    }
    v.take().map(|x| x.batch).map_err(|e| {
        vec![RowError {
            file: source.into(),
            row: 0,
            column: "<row>".into(),
            reason: e.to_string(),
        }]
    })
}

fn fingerprint(id: &str) -> u128 {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for x in id.bytes() {
        a = (a ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        b = (b ^ u64::from(x)).wrapping_mul(0x0000_0100_0000_01b3 ^ 0x1f);
    }
    (u128::from(a) << 64) | u128::from(b)
}

/// The server's state.
pub struct AppState {
    engine: ArcSwap<Engine>,
    config: ArcSwap<Config>,
    shards: Vec<Mutex<HashMap<String, Customer>>>,
    decisions: Decisions,
    event_ids: Mutex<HashSet<u128>>,
    pub wal: Wal,
    pub metrics: Metrics,
    pub serve: ServeConfig,
    pub sources: Sources,
    reload: tokio::sync::Mutex<()>,
    ready: AtomicBool,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("wal", &self.wal.path())
            .finish_non_exhaustive()
    }
}

fn shard_of(id: &str) -> usize {
    (fingerprint(id) as usize) % SHARDS
}

impl AppState {
    /// Builds the state: the engine from `config` and the registry, history from the data
    /// directory's Parquet files, then the write-ahead log replayed on top.
    pub fn open(config: Config, sources: Sources) -> Result<Arc<Self>> {
        let set = Arc::new(FeatureSet::compile(&config.features, &config.actions)?);
        let engine = crate::decide::load_engine(
            &config,
            set.clone(),
            &sources.models,
            &config.serve.model_alias,
        )?;
        Self::with_engine(config, engine, sources)
    }

    /// Like [`AppState::open`] with an engine already built.
    pub fn with_engine(config: Config, engine: Engine, sources: Sources) -> Result<Arc<Self>> {
        let wal_path = sources.data.root().join("wal").join("server.wal");
        let (wal, records) = Wal::open(&wal_path)?;
        let state = Arc::new(Self {
            engine: ArcSwap::from_pointee(engine),
            serve: config.serve.clone(),
            config: ArcSwap::from_pointee(config),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            decisions: Decisions::default(),
            event_ids: Mutex::new(HashSet::new()),
            wal,
            metrics: Metrics::default(),
            sources,
            reload: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
        });
        state.load_history()?;
        let n = records.len();
        for (i, line) in records.iter().enumerate() {
            let r: Record = serde_json::from_str(line).map_err(|e| Error::Contract {
                path: wal_path.clone(),
                message: format!("record {} of {n} is not a valid record: {e}", i + 1),
            })?;
            state.apply(&r)?;
        }
        if n > 0 {
            tracing::info!(
                "replayed {n} write-ahead log records from {}",
                wal_path.display()
            );
        }
        state.ready.store(true, Ordering::SeqCst);
        Ok(state)
    }

    fn load_history(&self) -> Result<()> {
        let data = &self.sources.data;
        let set = self.engine().feature_set().clone();
        let keep = self.engine().keep_days();
        let customers = data.customers_path();
        if customers.exists() {
            let (_, batches) = crate::store::read_parquet(&customers)?;
            for b in &batches {
                for (id, p) in profiles_from_batch(b)? {
                    self.with_customer(&id, &set, |c| c.online.set_profile(Some(p)));
                }
            }
        }
        let mut n = 0usize;
        for part in DataDir::parts(&data.events_dir())? {
            let (_, batches) = crate::store::read_parquet(&part)?;
            for b in &batches {
                self.remember_event_ids(b);
                for (id, e) in events_from_batch(b)? {
                    self.with_customer(&id, &set, |c| {
                        c.online.update(&e);
                        c.contacts.apply_event(&e, keep);
                    });
                    n += 1;
                }
            }
        }
        if n > 0 {
            tracing::info!(
                "loaded {n} events of history from {}",
                data.root().display()
            );
        }
        Ok(())
    }

    fn remember_event_ids(&self, b: &arrow::array::RecordBatch) -> usize {
        use arrow::array::AsArray;
        let Some(col) = b.column_by_name("event_id") else {
            return 0;
        };
        let Some(ids) = col.as_string_opt::<i32>() else {
            return 0;
        };
        let mut seen = self.lock_ids();
        ids.iter()
            .flatten()
            .filter(|id| !seen.insert(fingerprint(id)))
            .count()
    }

    /// Whether the state has loaded and may serve.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The engine now in use (requests hold their own `Arc`, so a reload never changes
    /// the engine under a request in flight).
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// The configuration now in use.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    fn lock_ids(&self) -> MutexGuard<'_, HashSet<u128>> {
        self.event_ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the customer's state, creating an empty one (no profile) if needed.
    pub fn with_customer<T>(
        &self,
        id: &str,
        set: &Arc<FeatureSet>,
        f: impl FnOnce(&mut Customer) -> T,
    ) -> T {
        let mut shard = self.shards[shard_of(id)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // looked up first: a decision for a known customer allocates no key
        if let Some(c) = shard.get_mut(id) {
            return f(c);
        }
        let c = shard.entry(id.to_string()).or_insert_with(|| Customer {
            online: OnlineState::new(set.clone(), None),
            contacts: ContactHistory::default(),
        });
        f(c)
    }

    /// Runs `f` on the customer's state if the customer exists.
    pub fn read_customer<T>(&self, id: &str, f: impl FnOnce(&Customer) -> T) -> Option<T> {
        let shard = self.shards[shard_of(id)]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        shard.get(id).map(f)
    }

    /// The decision `id`, if known.
    pub fn decision(&self, id: &str) -> Option<DecisionMeta> {
        let keep = i64::from(self.serve.outcome_days) * DAY_US;
        self.decisions.get(id, keep)
    }

    /// Keeps what outcomes of decision `d` need.
    pub fn remember_decision(&self, d: &DecisionRecord) {
        let keep = i64::from(self.serve.outcome_days) * DAY_US;
        self.decisions.insert(
            d.decision_id.clone(),
            DecisionMeta {
                customer_id: d.customer_id.clone(),
                action_id: d.action_id.clone(),
                channel: d.channel.clone(),
                ts: d.ts,
            },
            keep,
        );
    }

    /// Drops events whose `event_id` was seen before; returns how many were dropped.
    pub fn dedupe_events(
        &self,
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
    ) -> (Vec<serde_json::Map<String, serde_json::Value>>, usize) {
        let mut seen = self.lock_ids();
        let before = rows.len();
        let kept: Vec<_> = rows
            .into_iter()
            .filter(|r| match r.get("event_id").and_then(|v| v.as_str()) {
                // marked seen now, so two concurrent requests cannot both store it
                Some(id) => seen.insert(fingerprint(id)),
                None => true,
            })
            .collect();
        let dropped = before - kept.len();
        (kept, dropped)
    }

    /// Applies a record in memory (after it is in the log, or while replaying it).
    pub fn apply(&self, r: &Record) -> Result<()> {
        let engine = self.engine();
        let set = engine.feature_set().clone();
        let keep = engine.keep_days();
        match r {
            Record::Events { rows } => {
                let batch = validate_rows(TableKind::Events, "events", rows).map_err(|e| {
                    Error::Invalid(format!(
                        "a logged event no longer validates: {}",
                        e.first().map(ToString::to_string).unwrap_or_default()
                    ))
                })?;
                self.remember_event_ids(&batch);
                for (id, e) in events_from_batch(&batch)? {
                    self.apply_event(&id, &e, &set, keep);
                }
            }
            Record::Customer { row } => {
                let batch =
                    validate_rows(TableKind::Customers, "customer", std::slice::from_ref(row))
                        .map_err(|e| {
                            Error::Invalid(format!(
                                "a logged customer no longer validates: {}",
                                e.first().map(ToString::to_string).unwrap_or_default()
                            ))
                        })?;
                for (id, p) in profiles_from_batch(&batch)? {
                    self.with_customer(&id, &set, |c| c.online.set_profile(Some(p)));
                }
            }
            Record::Decision(d) => {
                if d.action_id != DO_NOTHING {
                    self.with_customer(&d.customer_id, &set, |c| {
                        c.contacts.record_delivery(
                            d.ts,
                            &d.action_id,
                            &d.channel,
                            Some(&d.decision_id),
                            keep,
                        )
                    });
                }
                self.remember_decision(d);
            }
            Record::Outcome(o) => {
                let Some(meta) = self.decision(&o.decision_id) else {
                    return Ok(());
                };
                let responded = matches!(o.kind.as_str(), "opened" | "clicked" | "converted");
                if responded {
                    self.with_customer(&meta.customer_id, &set, |c| {
                        c.contacts
                            .record_response(o.ts, &o.action_id, Some(&o.decision_id))
                    });
                }
            }
        }
        Ok(())
    }

    fn apply_event(&self, id: &str, e: &Event, set: &Arc<FeatureSet>, keep: u32) {
        self.with_customer(id, set, |c| {
            c.online.update(e);
            if e.event_type == "action_delivered"
                || RESPONSE_EVENTS.contains(&e.event_type.as_str())
            {
                c.contacts.apply_event(e, keep);
            }
        });
    }

    /// Logs `records` durably, then applies them.
    pub async fn commit(&self, records: Vec<Record>) -> Result<()> {
        let lines = records
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.wal.append(lines).await?;
        for r in &records {
            self.apply(r)?;
        }
        Ok(())
    }

    /// Erases a customer: their rows in the data directory's Parquet files, their records
    /// in the write-ahead log and their in-memory state. Returns whether anything was held.
    pub async fn erase(&self, id: &str) -> Result<bool> {
        let decisions = self.decisions.of_customer(id);
        let in_store = crate::store::erase::erase_customer(&self.sources.data, id)?;
        let who = id.to_string();
        let ids = decisions.clone();
        self.wal
            .rewrite(move |line| {
                let Ok(r) = serde_json::from_str::<Record>(line) else {
                    return Some(line.to_string());
                };
                match r {
                    Record::Outcome(o) if ids.contains(&o.decision_id) => None,
                    // a request's events may be about several customers: keep the others'
                    Record::Events { mut rows } => {
                        let before = rows.len();
                        rows.retain(|row| {
                            row.get("customer_id").and_then(|v| v.as_str()) != Some(who.as_str())
                        });
                        if rows.len() == before {
                            Some(line.to_string())
                        } else if rows.is_empty() {
                            None
                        } else {
                            serde_json::to_string(&Record::Events { rows }).ok()
                        }
                    }
                    r if r.customer().contains(&who.as_str()) => None,
                    _ => Some(line.to_string()),
                }
            })
            .await?;
        let held = self.shards[shard_of(id)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .is_some();
        for k in &decisions {
            self.decisions.remove(k);
        }
        Ok(held || in_store > 0 || !decisions.is_empty())
    }

    /// Number of customers held in memory.
    pub fn customer_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Swaps in a new engine built from the current configuration file and registry. The
    /// old engine stays when anything fails. Feature definitions cannot change on reload
    /// (online state is built for them): that needs a restart.
    pub async fn reload(&self) -> Result<(Arc<Engine>, Arc<Engine>)> {
        let _guard = self.reload.lock().await;
        let src = self.sources.clone();
        let old = self.engine();
        let old_config = self.config();
        let alias = self.serve.model_alias.clone();
        let (config, engine) = tokio::task::spawn_blocking(move || -> Result<(Config, Engine)> {
            let config = Config::load(&src.config_path, false)?;
            if config.features != old_config.features {
                return Err(Error::Invalid(
                    "the feature definitions in the configuration changed; restart the server to rebuild online features".into(),
                ));
            }
            let set = old.feature_set().clone();
            let engine = crate::decide::load_engine(&config, set, &src.models, &alias)?;
            Ok((config, engine))
        })
        .await
        .map_err(|e| Error::Invalid(format!("reload task failed: {e}")))??;
        let new = Arc::new(engine);
        let previous = self.engine.swap(new.clone());
        self.config.store(Arc::new(config));
        Ok((previous, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde writes, read back (a `to_value` keeps f32s unrounded, text does not).
    fn text_value<T: serde::Serialize>(t: &T) -> serde_json::Value {
        serde_json::from_str(&serde_json::to_string(t).unwrap()).unwrap()
    }

    #[test]
    fn state_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<AppState>();
        check::<Arc<AppState>>();
        check::<Engine>();
    }

    /// The hand-written decision line is the line serde writes for the record, value
    /// for value, and reads back as the same record.
    #[test]
    fn the_decision_line_is_the_serde_record() {
        use crate::decide::LoggedCandidate;
        let d = DecisionRecord {
            decision_id: "d-9".into(),
            customer_id: "c0000001".into(),
            ts: 1_746_100_800_000_000,
            context: "{}".into(),
            candidates: (0..50)
                .map(|i| {
                    LoggedCandidate(
                        format!("a{}", i % 10).as_str().into(),
                        ["web", "app", "store", "chat", "email"][i / 10].into(),
                        0.01 * i as f64,
                        10.0 + (i % 10) as f64 * 3.0,
                        0.3 * i as f64 - 0.01,
                    )
                })
                .collect(),
            action_id: "a9".into(),
            channel: "web".into(),
            position: 0,
            propensity: 0.950_980_392_156_862_7,
            explore: false,
            policy_version: "pac590a9f".into(),
            model_versions: r#"{"churn":"v2","response":"v1"}"#.into(),
        };
        let line = Record::decision_line(&d);
        let record = Record::Decision(Box::new(d));
        let ours: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ours, text_value(&record));
        let Record::Decision(back) = serde_json::from_str::<Record>(&line).unwrap() else {
            panic!("not a decision: {line}");
        };
        let Record::Decision(d) = record else {
            unreachable!()
        };
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&d).unwrap()
        );
    }
}
