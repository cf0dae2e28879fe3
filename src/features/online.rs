//! Online feature state: one [`OnlineState`] per customer, updated by each event and read as
//! a feature vector at any time. It computes the same [`FeatureSet`] as the batch builder
//! (see the module docs of [`crate::features`] for windows, memory bounds and ordering).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::predicate::{self, Event, EventField, V};
use super::row::{Profile, day_of};
use super::spec::{Agg, Def, FeatureSet, Window};
use crate::clv::{PurchaseDays, Rfm};

/// The event type whose `value` is the spend of the customer-value inputs.
const PURCHASE: &str = "purchase";

/// One day's accumulator: `n` matching events, `x` their sum (count/sum/avg) or extreme
/// (min/max).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    day: i32,
    n: u32,
    x: f64,
}

#[derive(Debug, Clone)]
enum State {
    /// `all` window of count/sum/avg/min/max.
    Total { n: u64, x: f64 },
    /// Day buckets of a windowed count/sum/avg/min/max/days_since_*, sorted by day.
    Buckets(VecDeque<Bucket>),
    /// `last` (any window): the latest matching event; `ts == i64::MIN` when none.
    Last { ts: i64, x: f64 },
    /// `days_since_*` over `all`: first and last day seen.
    Span { first: i64, last: i64 },
    /// `distinct_count` of a text field: value → latest day seen.
    DistinctS(HashMap<Box<str>, i32>),
    /// `distinct_count` of a numeric field: bits of the value → latest day seen.
    DistinctN(HashMap<u64, i32>),
}

fn combine(agg: Agg, acc: f64, v: f64) -> f64 {
    match agg {
        Agg::Min => acc.min(v),
        Agg::Max => acc.max(v),
        _ => acc + v,
    }
}

fn init(agg: Agg) -> f64 {
    match agg {
        Agg::Min => f64::INFINITY,
        Agg::Max => f64::NEG_INFINITY,
        _ => 0.0,
    }
}

/// The incrementally maintained features of one customer.
#[derive(Debug, Clone)]
pub struct OnlineState {
    set: Arc<FeatureSet>,
    /// One state per aggregated feature, in feature order.
    states: Vec<State>,
    profile: Option<Profile>,
    /// Purchase days and spend, for the customer-value inputs ([`OnlineState::rfm`]).
    purchases: PurchaseDays,
    max_ts: i64,
    max_day: i64,
}

impl OnlineState {
    /// An empty state (no events) for a customer with `profile` (`None`: not in the
    /// customers table).
    pub fn new(set: Arc<FeatureSet>, profile: Option<Profile>) -> Self {
        let states = set
            .defs
            .iter()
            .filter_map(|d| match d {
                Def::Agg {
                    agg, window, field, ..
                } => Some(match (agg, window) {
                    (Agg::Last, _) => State::Last {
                        ts: i64::MIN,
                        x: 0.0,
                    },
                    (Agg::DistinctCount, _) if field.is_some_and(|f| f == EventField::Value) => {
                        State::DistinctN(HashMap::new())
                    }
                    (Agg::DistinctCount, _) => State::DistinctS(HashMap::new()),
                    (Agg::DaysSinceFirst | Agg::DaysSinceLast, Window::All) => State::Span {
                        first: i64::MAX,
                        last: i64::MIN,
                    },
                    (_, Window::All) => State::Total {
                        n: 0,
                        x: init(*agg),
                    },
                    (_, Window::Days(_)) => State::Buckets(VecDeque::new()),
                }),
                _ => None,
            })
            .collect();
        Self {
            set,
            states,
            profile,
            purchases: PurchaseDays::default(),
            max_ts: i64::MIN,
            max_day: i64::MIN,
        }
    }

    /// Replaces the profile (customers-table row).
    pub fn set_profile(&mut self, profile: Option<Profile>) {
        self.profile = profile;
    }

    /// The profile (customers-table row), `None` when the customer has none.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// The feature set this state computes.
    pub fn feature_set(&self) -> &Arc<FeatureSet> {
        &self.set
    }

    /// The latest event time applied (µs), `None` before the first event.
    pub fn latest_ts(&self) -> Option<i64> {
        (self.max_ts != i64::MIN).then_some(self.max_ts)
    }

    /// Whether a read at `now` is exact: every applied event is strictly before `now`.
    pub fn exact_at(&self, now: i64) -> bool {
        self.max_ts < now
    }

    /// Applies one event (of this customer). Events may come in any order.
    pub fn update(&mut self, e: &Event) {
        let set = &*self.set;
        let day = day_of(e.ts);
        self.max_ts = self.max_ts.max(e.ts);
        let advanced = day > self.max_day;
        if advanced {
            self.max_day = day;
        }
        if e.event_type == PURCHASE {
            self.purchases.add(day, e.value);
        }
        // Each distinct filter is evaluated at most once per event, and only when its
        // `event_type` guard admits the event's type.
        let cache = set.filters.len() <= 64;
        let candidates =
            set.by_type.get(e.event_type.as_str()).copied().unwrap_or(0) | set.unguarded;
        let (mut done, mut pass) = (!candidates, 0u64);
        let mut slot = 0;
        for d in &set.defs {
            let Def::Agg {
                agg,
                field,
                filter,
                window,
            } = d
            else {
                continue;
            };
            let state = &mut self.states[slot];
            slot += 1;
            let horizon = match window {
                Window::All => i64::MIN,
                Window::Days(w) => self.max_day - i64::from(*w),
            };
            if advanced {
                prune(state, horizon);
            }
            if day < horizon {
                continue; // older than any window a future read can cover
            }
            if let Some(f) = filter {
                let ok = if cache {
                    let bit = 1u64 << f;
                    if done & bit == 0 {
                        done |= bit;
                        if predicate::holds(&set.filters[*f], e, &set.action_kinds) {
                            pass |= bit;
                        }
                    }
                    pass & bit != 0
                } else {
                    predicate::holds(&set.filters[*f], e, &set.action_kinds)
                };
                if !ok {
                    continue;
                }
            }
            let v = match field {
                Some(f) => match e.get(*f, &set.action_kinds) {
                    V::Null => continue,
                    v => v,
                },
                None => V::Null,
            };
            apply(state, *agg, v, e.ts, day);
        }
    }

    /// The feature vector at `now` (µs), in [`FeatureSet::columns`] order. Exact when
    /// [`OnlineState::exact_at`]`(now)`.
    pub fn vector(&self, now: i64) -> Vec<Option<f64>> {
        let set = &*self.set;
        // Touch the newest bucket of every windowed state first: each lives in its own
        // heap block, usually out of the cache when a decision comes, and these loads do
        // not depend on one another, so their misses overlap instead of queueing behind
        // each read's binary search.
        let mut touched = 0;
        for s in &self.states {
            if let State::Buckets(q) = s {
                touched ^= q.back().map_or(0, |b| b.day);
            }
        }
        std::hint::black_box(touched);
        let mut row = vec![None; set.columns.len()];
        let today = day_of(now);
        let mut slot = 0;
        for (i, d) in set.defs.iter().enumerate() {
            let Def::Agg { agg, window, .. } = d else {
                continue;
            };
            let state = &self.states[slot];
            slot += 1;
            let start = window.start_day(today);
            row[set.offsets[i]] = read(state, *agg, start, today);
        }
        match &self.profile {
            Some(p) => {
                let attrs = [0, 1, 2].map(|k| p.attributes[k].as_deref());
                set.fill_profile(p.created_at, attrs, p.consents, true, now, &mut row);
            }
            None => set.fill_profile(None, [None; 3], [None; 5], false, now, &mut row),
        }
        set.finish_derived(&mut row);
        row
    }

    /// The customer's RFM at `now` (µs): purchases of the days strictly before `now`'s UTC
    /// day, as the training sets' customer-value columns read them. `None` without one.
    pub fn rfm(&self, now: i64) -> Option<Rfm> {
        self.purchases.rfm(day_of(now))
    }

    /// Approximate bytes this state holds (struct, buckets, distinct sets, profile
    /// strings), excluding the shared [`FeatureSet`].
    pub fn heap_bytes(&self) -> usize {
        let mut b = std::mem::size_of::<Self>()
            + self.states.capacity() * std::mem::size_of::<State>()
            + self.purchases.heap_bytes();
        for s in &self.states {
            b += match s {
                State::Buckets(q) => q.capacity() * std::mem::size_of::<Bucket>(),
                State::DistinctS(m) => {
                    m.capacity() * (std::mem::size_of::<(Box<str>, i32)>() + 1)
                        + m.keys().map(|k| k.len()).sum::<usize>()
                }
                State::DistinctN(m) => m.capacity() * (std::mem::size_of::<(u64, i32)>() + 1),
                _ => 0,
            };
        }
        if let Some(p) = &self.profile {
            b += std::mem::size_of::<Profile>()
                + p.attributes
                    .iter()
                    .flatten()
                    .map(String::capacity)
                    .sum::<usize>();
        }
        b
    }
}

fn prune(state: &mut State, horizon: i64) {
    match state {
        State::Buckets(q) => {
            while q.front().is_some_and(|b| i64::from(b.day) < horizon) {
                q.pop_front();
            }
        }
        State::DistinctS(m) if horizon > i64::MIN => m.retain(|_, d| i64::from(*d) >= horizon),
        State::DistinctN(m) if horizon > i64::MIN => m.retain(|_, d| i64::from(*d) >= horizon),
        _ => {}
    }
}

fn apply(state: &mut State, agg: Agg, v: V, ts: i64, day: i64) {
    let x = match v {
        V::Num(x) => x,
        _ => 1.0,
    };
    match state {
        State::Total { n, x: acc } => {
            *n += 1;
            *acc = combine(agg, *acc, x);
        }
        State::Buckets(q) => {
            let day = day as i32;
            // Usually the last bucket; late events binary-search their day.
            let pos = match q.back() {
                Some(b) if b.day == day => q.len() - 1,
                Some(b) if b.day < day => {
                    q.push_back(Bucket {
                        day,
                        n: 0,
                        x: init(agg),
                    });
                    q.len() - 1
                }
                None => {
                    q.push_back(Bucket {
                        day,
                        n: 0,
                        x: init(agg),
                    });
                    0
                }
                Some(_) => match q.binary_search_by_key(&day, |b| b.day) {
                    Ok(p) => p,
                    Err(p) => {
                        q.insert(
                            p,
                            Bucket {
                                day,
                                n: 0,
                                x: init(agg),
                            },
                        );
                        p
                    }
                },
            };
            let b = &mut q[pos];
            b.n += 1;
            b.x = combine(agg, b.x, x);
        }
        State::Last { ts: t, x: acc } => {
            if ts > *t || (ts == *t && x > *acc) {
                *t = ts;
                *acc = x;
            }
        }
        State::Span { first, last } => {
            *first = (*first).min(day);
            *last = (*last).max(day);
        }
        State::DistinctS(m) => {
            let V::Str(s) = v else { return };
            let day = day as i32;
            match m.get_mut(s) {
                Some(d) => *d = (*d).max(day),
                None => {
                    m.insert(s.into(), day);
                }
            }
        }
        State::DistinctN(m) => {
            let V::Num(x) = v else { return };
            let day = day as i32;
            let d = m
                .entry(if x == 0.0 { 0 } else { x.to_bits() })
                .or_insert(day);
            *d = (*d).max(day);
        }
    }
}

fn read(state: &State, agg: Agg, start: i64, today: i64) -> Option<f64> {
    let since = |d: i64| Some((today - d) as f64);
    match state {
        State::Total { n, x } => match agg {
            Agg::Count => Some(*n as f64),
            Agg::Sum => Some(*x),
            _ if *n == 0 => None,
            Agg::Avg => Some(*x / *n as f64),
            _ => Some(*x),
        },
        State::Buckets(q) => {
            let from = q.partition_point(|b| i64::from(b.day) < start);
            let live = q.range(from..);
            match agg {
                Agg::DaysSinceFirst => q.get(from).and_then(|b| since(i64::from(b.day))),
                Agg::DaysSinceLast => q
                    .back()
                    .filter(|b| i64::from(b.day) >= start)
                    .and_then(|b| since(i64::from(b.day))),
                Agg::Count => Some(live.map(|b| f64::from(b.n)).sum()),
                Agg::Sum => Some(live.map(|b| b.x).sum()),
                _ => {
                    let (mut n, mut x) = (0u64, init(agg));
                    for b in live {
                        n += u64::from(b.n);
                        x = combine(agg, x, b.x);
                    }
                    match (n, agg) {
                        (0, _) => None,
                        (_, Agg::Avg) => Some(x / n as f64),
                        _ => Some(x),
                    }
                }
            }
        }
        State::Last { ts, x } => (*ts != i64::MIN && day_of(*ts) >= start).then_some(*x),
        State::Span { first, last } => match agg {
            _ if *last == i64::MIN => None,
            Agg::DaysSinceFirst => since(*first),
            _ => since(*last),
        },
        State::DistinctS(m) => Some(m.values().filter(|d| i64::from(**d) >= start).count() as f64),
        State::DistinctN(m) => Some(m.values().filter(|d| i64::from(**d) >= start).count() as f64),
    }
}
