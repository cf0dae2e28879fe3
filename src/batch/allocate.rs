//! Allocation under budgets: at most one action per customer, at most `cap` customers per
//! capped action and per capped channel, maximising the total expected gain over doing
//! nothing.
//!
//! With caps on actions *and* channels the problem is an intersection of three partition
//! matroids (customer, action, channel), NP-hard in general, so at a million customers
//! the allocation is a Lagrangian one:
//!
//! 1. **Prices.** Every capped action `a` and channel `c` gets a price (`λ_a`, `μ_c` ≥ 0).
//!    A customer on their own would take the option of largest *adjusted* gain
//!    `g − λ_a − μ_c` (or nothing when no adjusted gain is positive). Prices are raised by
//!    block coordinate descent on the dual: with the other prices fixed, the price of a
//!    resource is set to the `(cap + 1)`-th largest margin by which customers prefer it,
//!    so that at most `cap` customers strictly want it. Every round is one pass over all
//!    options per capped resource; rounds stop when the prices settle.
//! 2. **Bound.** For any prices, `Σ_i max(0, max_o adjusted) + Σ_r price_r · cap_r` bounds
//!    the best total gain from above (weak duality), so every allocation comes with a
//!    certificate of how far from optimal it can be at most.
//! 3. **Assignment.** Customers take their options in the order of adjusted gain across
//!    all customers (a heap), skipping options whose resources are full; a second pass
//!    fills capacity left over by raw gain; then single moves into free capacity and, on
//!    problems up to [`EXCHANGE_LIMIT`] customers, ejection chains (a customer takes a
//!    full resource from its holder, who moves on, up to [`CHAIN_DEPTH`] deep) are
//!    applied while they raise the total.
//!
//! Budgets are never exceeded: every step checks them. The tests compare the result with
//! brute force on small problems: optimal on 4,998 of 5,000 random ones; the bound says
//! how close a large one is.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;

/// One option of one customer: a candidate with its gain over doing nothing (> 0) and
/// the indices of its action and channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opt {
    pub gain: f64,
    pub action: u32,
    pub channel: u32,
}

/// An allocation problem: every customer's options and the capacities.
#[derive(Debug, Clone, Default)]
pub struct Problem {
    options: Vec<Opt>,
    offsets: Vec<usize>,
    /// Capacity by action index (`None` = unlimited).
    pub action_caps: Vec<Option<u64>>,
    /// Capacity by channel index (`None` = unlimited).
    pub channel_caps: Vec<Option<u64>>,
}

impl Problem {
    /// An empty problem over `actions` and `channels` with their capacities.
    pub fn new(action_caps: Vec<Option<u64>>, channel_caps: Vec<Option<u64>>) -> Self {
        Self {
            options: Vec::new(),
            offsets: vec![0],
            action_caps,
            channel_caps,
        }
    }

    /// Adds a customer with `options`; options with a gain that is not positive and
    /// finite are left out (doing nothing is better).
    pub fn push_customer(&mut self, options: impl IntoIterator<Item = Opt>) {
        let (na, nc) = (
            self.action_caps.len() as u32,
            self.channel_caps.len() as u32,
        );
        self.options.extend(
            options
                .into_iter()
                .filter(|o| o.gain > 0.0 && o.gain.is_finite() && o.action < na && o.channel < nc),
        );
        self.offsets.push(self.options.len());
    }

    /// Number of customers.
    pub fn customers(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Number of options over all customers.
    pub fn option_count(&self) -> usize {
        self.options.len()
    }

    /// The options of customer `i`.
    pub fn options(&self, i: usize) -> &[Opt] {
        &self.options[self.offsets[i]..self.offsets[i + 1]]
    }

    fn capped(&self) -> Vec<Resource> {
        let a = (0..self.action_caps.len())
            .filter(|&k| self.action_caps[k].is_some())
            .map(Resource::Action);
        let c = (0..self.channel_caps.len())
            .filter(|&k| self.channel_caps[k].is_some())
            .map(Resource::Channel);
        a.chain(c).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Action(usize),
    Channel(usize),
}

impl Resource {
    fn uses(self, o: &Opt) -> bool {
        match self {
            Resource::Action(k) => o.action as usize == k,
            Resource::Channel(k) => o.channel as usize == k,
        }
    }
}

/// The result of [`allocate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    /// For each customer, the index of the assigned option among theirs, or `None`.
    pub pick: Vec<Option<usize>>,
    /// Total gain of the assigned options.
    pub value: f64,
    /// Total gain with no budgets (every customer's best option): the budgets' cost is
    /// `unconstrained − value`.
    pub unconstrained: f64,
    /// Upper bound on the best feasible total (the dual bound); `value ≤ best ≤ bound`.
    pub bound: f64,
    /// Assigned customers by action and by channel.
    pub action_used: Vec<u64>,
    pub channel_used: Vec<u64>,
    /// The final prices by action and by channel (0 for uncapped ones).
    pub action_price: Vec<f64>,
    pub channel_price: Vec<f64>,
    /// Price rounds run.
    pub rounds: usize,
}

impl Allocation {
    /// The relative gap between the value and the bound (0 = proven optimal).
    pub fn gap(&self) -> f64 {
        if self.bound <= 0.0 {
            0.0
        } else {
            ((self.bound - self.value) / self.bound).max(0.0)
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
struct Key(f64, u32);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        // larger gain first; among equal gains, the lower customer index first
        self.0
            .total_cmp(&other.0)
            .then_with(|| other.1.cmp(&self.1))
    }
}

/// The most price rounds [`allocate`] runs.
pub const MAX_ROUNDS: usize = 30;

struct Prices {
    action: Vec<f64>,
    channel: Vec<f64>,
}

impl Prices {
    fn of(&self, o: &Opt) -> f64 {
        self.action[o.action as usize] + self.channel[o.channel as usize]
    }

    fn get(&self, r: Resource) -> f64 {
        match r {
            Resource::Action(k) => self.action[k],
            Resource::Channel(k) => self.channel[k],
        }
    }

    fn set(&mut self, r: Resource, v: f64) {
        match r {
            Resource::Action(k) => self.action[k] = v,
            Resource::Channel(k) => self.channel[k] = v,
        }
    }
}

/// Allocates (see the module docs).
pub fn allocate(p: &Problem) -> Allocation {
    let n = p.customers();
    let capped = p.capped();
    let mut prices = Prices {
        action: vec![0.0; p.action_caps.len()],
        channel: vec![0.0; p.channel_caps.len()],
    };
    let unconstrained: f64 = (0..n)
        .into_par_iter()
        .map(|i| p.options(i).iter().map(|o| o.gain).fold(0.0, f64::max))
        .sum();
    let scale = p.options.iter().map(|o| o.gain).fold(0.0, f64::max);
    let mut best_bound = dual(p, &prices, &capped);
    let mut best_prices = (prices.action.clone(), prices.channel.clone());
    let mut rounds = 0;
    if !capped.is_empty() {
        for _ in 0..MAX_ROUNDS {
            rounds += 1;
            let mut moved: f64 = 0.0;
            for &r in &capped {
                let v = price_for(p, &prices, r);
                moved = moved.max((v - prices.get(r)).abs());
                prices.set(r, v);
            }
            let d = dual(p, &prices, &capped);
            if d < best_bound {
                best_bound = d;
                best_prices = (prices.action.clone(), prices.channel.clone());
            }
            if moved <= 1e-12 * (1.0 + scale) {
                break;
            }
        }
    }
    let last = assign(p, &prices);
    let best = if best_prices.0 != prices.action || best_prices.1 != prices.channel {
        let at_best = Prices {
            action: best_prices.0,
            channel: best_prices.1,
        };
        let a = assign(p, &at_best);
        if value_of(p, &a) > value_of(p, &last) {
            prices = at_best;
            a
        } else {
            last
        }
    } else {
        last
    };
    let mut action_used = vec![0u64; p.action_caps.len()];
    let mut channel_used = vec![0u64; p.channel_caps.len()];
    for (i, k) in best.iter().enumerate() {
        if let Some(k) = k {
            let o = p.options(i)[*k];
            action_used[o.action as usize] += 1;
            channel_used[o.channel as usize] += 1;
        }
    }
    let value = value_of(p, &best);
    Allocation {
        pick: best,
        value,
        unconstrained,
        bound: best_bound.min(unconstrained).max(value),
        action_used,
        channel_used,
        action_price: prices.action,
        channel_price: prices.channel,
        rounds,
    }
}

fn value_of(p: &Problem, pick: &[Option<usize>]) -> f64 {
    pick.iter()
        .enumerate()
        .filter_map(|(i, k)| k.map(|k| p.options(i)[k].gain))
        .sum()
}

/// The dual function at `prices`: an upper bound on the best feasible total.
fn dual(p: &Problem, prices: &Prices, capped: &[Resource]) -> f64 {
    let own: f64 = (0..p.customers())
        .into_par_iter()
        .map(|i| {
            p.options(i)
                .iter()
                .map(|o| o.gain - prices.of(o))
                .fold(0.0, f64::max)
        })
        .sum();
    let paid: f64 = capped
        .iter()
        .map(|&r| {
            let cap = match r {
                Resource::Action(k) => p.action_caps[k],
                Resource::Channel(k) => p.channel_caps[k],
            };
            prices.get(r) * cap.unwrap_or(0) as f64
        })
        .sum();
    own + paid
}

/// The price of `r` with the other prices fixed: the `(cap + 1)`-th largest margin by which
/// customers prefer an option using `r` to their best option without it (0 when at most
/// `cap` customers want `r` at all).
fn price_for(p: &Problem, prices: &Prices, r: Resource) -> f64 {
    let own = prices.get(r);
    let cap = match r {
        Resource::Action(k) => p.action_caps[k],
        Resource::Channel(k) => p.channel_caps[k],
    }
    .unwrap_or(u64::MAX) as usize;
    let mut margins: Vec<f64> = (0..p.customers())
        .into_par_iter()
        .filter_map(|i| {
            let mut with = f64::NEG_INFINITY;
            let mut without: f64 = 0.0;
            for o in p.options(i) {
                let adj = o.gain - prices.of(o);
                if r.uses(o) {
                    with = with.max(adj + own);
                } else {
                    without = without.max(adj);
                }
            }
            let m = with - without;
            (m > 0.0).then_some(m)
        })
        .collect();
    if margins.len() <= cap {
        return 0.0;
    }
    // the (cap + 1)-th largest: at most `cap` margins lie strictly above it
    let (_, v, _) = margins.select_nth_unstable_by(cap, |a, b| b.total_cmp(a));
    *v
}

/// A feasible assignment guided by `prices` (see the module docs, step 3).
fn assign(p: &Problem, prices: &Prices) -> Vec<Option<usize>> {
    let n = p.customers();
    let mut left_a: Vec<u64> = p
        .action_caps
        .iter()
        .map(|c| c.unwrap_or(u64::MAX))
        .collect();
    let mut left_c: Vec<u64> = p
        .channel_caps
        .iter()
        .map(|c| c.unwrap_or(u64::MAX))
        .collect();
    let mut pick: Vec<Option<usize>> = vec![None; n];
    // pass 1: by adjusted gain across customers (only positive adjusted gains)
    let order = ranked(p, |_| true, |o| o.gain - prices.of(o), true);
    greedy_pass(p, &order, &mut pick, &mut left_a, &mut left_c);
    // pass 2: capacity left over, by raw gain
    let unassigned: Vec<bool> = pick.iter().map(Option::is_none).collect();
    let raw = ranked(p, |i| unassigned[i], |o| o.gain, false);
    greedy_pass(p, &raw, &mut pick, &mut left_a, &mut left_c);
    improve(p, &mut pick, &mut left_a, &mut left_c);
    pick
}

/// For each customer `i` with `include(i)`, the indices of its options with their `key`,
/// largest first (ties by index); with `positive`, only keys above 0.
fn ranked(
    p: &Problem,
    include: impl Fn(usize) -> bool + Sync,
    key: impl Fn(&Opt) -> f64 + Sync,
    positive: bool,
) -> Vec<Vec<(f64, usize)>> {
    (0..p.customers())
        .into_par_iter()
        .map(|i| {
            if !include(i) {
                return Vec::new();
            }
            let mut v: Vec<(f64, usize)> = p
                .options(i)
                .iter()
                .enumerate()
                .map(|(k, o)| (key(o), k))
                .filter(|(x, _)| !positive || *x > 0.0)
                .collect();
            v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            v
        })
        .collect()
}

/// Customers take options in the order of their keys across all customers (a heap over
/// each customer's next option in `order`), skipping options whose resources are full.
fn greedy_pass(
    p: &Problem,
    order: &[Vec<(f64, usize)>],
    pick: &mut [Option<usize>],
    left_a: &mut [u64],
    left_c: &mut [u64],
) {
    let fits =
        |o: &Opt, la: &[u64], lc: &[u64]| la[o.action as usize] > 0 && lc[o.channel as usize] > 0;
    let mut cursor = vec![0usize; order.len()];
    let mut heap: BinaryHeap<Key> = (0..order.len())
        .filter(|&i| !order[i].is_empty())
        .map(|i| Key(order[i][0].0, i as u32))
        .collect();
    while let Some(Key(_, i)) = heap.pop() {
        let i = i as usize;
        let (_, k) = order[i][cursor[i]];
        let o = p.options(i)[k];
        if fits(&o, left_a, left_c) {
            left_a[o.action as usize] -= 1;
            left_c[o.channel as usize] -= 1;
            pick[i] = Some(k);
            continue;
        }
        cursor[i] += 1;
        while cursor[i] < order[i].len() {
            let (key, k) = order[i][cursor[i]];
            if fits(&p.options(i)[k], left_a, left_c) {
                heap.push(Key(key, i as u32));
                break;
            }
            cursor[i] += 1;
        }
    }
}

/// Local search: single moves into free capacity, then one-for-one exchanges of a
/// resource unit between two customers, while they raise the total.
fn improve(p: &Problem, pick: &mut [Option<usize>], left_a: &mut [u64], left_c: &mut [u64]) {
    let n = p.customers();
    let gain = |i: usize, k: Option<usize>| k.map_or(0.0, |k| p.options(i)[k].gain);
    for _ in 0..4 {
        let mut changed = false;
        // single moves: a customer switches to a better option that fits once its own
        // units are released
        #[allow(clippy::needless_range_loop)] // `pick[i]` changes inside the loop
        for i in 0..n {
            let cur = pick[i];
            let g0 = gain(i, cur);
            let (mut best, mut bg) = (None, g0);
            for (k, o) in p.options(i).iter().enumerate() {
                if o.gain <= bg || Some(k) == cur {
                    continue;
                }
                let own = cur.map(|c| p.options(i)[c]);
                let room_a = left_a[o.action as usize]
                    + u64::from(own.is_some_and(|c| c.action == o.action));
                let room_c = left_c[o.channel as usize]
                    + u64::from(own.is_some_and(|c| c.channel == o.channel));
                if room_a > 0 && room_c > 0 {
                    best = Some(k);
                    bg = o.gain;
                }
            }
            if let Some(k) = best {
                if let Some(c) = cur {
                    let c = p.options(i)[c];
                    left_a[c.action as usize] += 1;
                    left_c[c.channel as usize] += 1;
                }
                let o = p.options(i)[k];
                left_a[o.action as usize] -= 1;
                left_c[o.channel as usize] -= 1;
                pick[i] = Some(k);
                changed = true;
            }
        }
        // exchanges: customer i takes the option it wants from holder j, which moves to
        // its best option that then fits (or to nothing), when the total rises
        if n <= EXCHANGE_LIMIT && exchanges(p, pick, left_a, left_c) {
            changed = true;
        }
        if !changed {
            break;
        }
    }
}

/// Ejection chains look at every holder of a full resource: run only on problems up to
/// this many customers (the price step leaves few conflicts on large ones).
pub const EXCHANGE_LIMIT: usize = 1_000;

/// How many customers an ejection chain may move after the one that starts it, on problems
/// up to [`DEEP_LIMIT`] customers; one (a swap) above that, as the search grows with the
/// customers to the power of the depth.
pub const CHAIN_DEPTH: usize = 3;

/// See [`CHAIN_DEPTH`].
pub const DEEP_LIMIT: usize = 100;

/// A chain's total gain and its moves (customer, new option or nothing).
type Chain = (f64, Vec<(usize, Option<usize>)>);

struct Search<'a> {
    p: &'a Problem,
    pick: &'a [Option<usize>],
    left_a: Vec<u64>,
    left_c: Vec<u64>,
    moved: Vec<bool>,
}

impl Search<'_> {
    fn fits(&self, o: &Opt) -> bool {
        self.left_a[o.action as usize] > 0 && self.left_c[o.channel as usize] > 0
    }

    fn take(&mut self, o: &Opt) {
        self.left_a[o.action as usize] -= 1;
        self.left_c[o.channel as usize] -= 1;
    }

    fn give(&mut self, o: &Opt) {
        self.left_a[o.action as usize] += 1;
        self.left_c[o.channel as usize] += 1;
    }

    /// The best total gain of placing customer `i` (already released) into option `k`,
    /// ejecting at most `depth` holders in a chain, each re-placed in its best option or
    /// left with nothing; with the moves. The capacities are as they were on return.
    fn place(&mut self, i: usize, k: usize, depth: usize) -> Option<Chain> {
        let want = self.p.options(i)[k];
        if self.fits(&want) {
            return Some((want.gain, vec![(i, Some(k))]));
        }
        if depth == 0 {
            return None;
        }
        let lacks_a = self.left_a[want.action as usize] == 0;
        let lacks_c = self.left_c[want.channel as usize] == 0;
        let mut best: Option<Chain> = None;
        for j in 0..self.p.customers() {
            if self.moved[j] {
                continue;
            }
            let Some(h) = self.pick[j] else { continue };
            let held = self.p.options(j)[h];
            if (lacks_a && held.action != want.action) || (lacks_c && held.channel != want.channel)
            {
                continue;
            }
            self.give(&held);
            if self.fits(&want) {
                self.take(&want);
                self.moved[j] = true;
                // j goes to its best re-placement, or to nothing
                let mut sub: Chain = (0.0, vec![(j, None)]);
                for m in 0..self.p.options(j).len() {
                    if m == h || self.p.options(j)[m].gain <= sub.0 {
                        continue;
                    }
                    if let Some(r) = self.place(j, m, depth - 1)
                        && r.0 > sub.0
                    {
                        sub = r;
                    }
                }
                self.moved[j] = false;
                self.give(&want);
                let total = want.gain - held.gain + sub.0;
                if best.as_ref().is_none_or(|b| total > b.0) {
                    let mut moves = vec![(i, Some(k))];
                    moves.extend(sub.1);
                    best = Some((total, moves));
                }
            }
            self.take(&held);
        }
        best
    }
}

/// Ejection chains: a customer takes an option whose resource is full from its holder,
/// who moves to its best option that then fits (possibly ejecting another, up to
/// [`CHAIN_DEPTH`]) or to nothing; applied when the total rises.
fn exchanges(
    p: &Problem,
    pick: &mut [Option<usize>],
    left_a: &mut [u64],
    left_c: &mut [u64],
) -> bool {
    let mut changed = false;
    for i in 0..p.customers() {
        let current = pick[i].map_or(0.0, |k| p.options(i)[k].gain);
        let mut s = Search {
            p,
            pick,
            left_a: left_a.to_vec(),
            left_c: left_c.to_vec(),
            moved: vec![false; p.customers()],
        };
        if let Some(c) = pick[i] {
            s.give(&p.options(i)[c]);
        }
        s.moved[i] = true;
        let mut best: Option<Chain> = None;
        for k in 0..p.options(i).len() {
            if Some(k) == pick[i] || p.options(i)[k].gain <= current {
                continue;
            }
            let depth = if p.customers() <= DEEP_LIMIT {
                CHAIN_DEPTH
            } else {
                1
            };
            if let Some(r) = s.place(i, k, depth)
                && best.as_ref().is_none_or(|b| r.0 > b.0)
            {
                best = Some(r);
            }
        }
        let Some((total, moves)) = best else { continue };
        // the chain's total counts the gains of the moved customers after, minus before
        if total - current <= 1e-12 {
            continue;
        }
        for &(j, _) in &moves {
            if let Some(c) = pick[j] {
                let o = p.options(j)[c];
                left_a[o.action as usize] += 1;
                left_c[o.channel as usize] += 1;
            }
        }
        for &(j, k) in &moves {
            pick[j] = k;
            if let Some(k) = k {
                let o = p.options(j)[k];
                left_a[o.action as usize] -= 1;
                left_c[o.channel as usize] -= 1;
            }
        }
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The best feasible total by enumeration.
    fn brute(p: &Problem) -> f64 {
        fn go(p: &Problem, i: usize, la: &mut [u64], lc: &mut [u64]) -> f64 {
            if i == p.customers() {
                return 0.0;
            }
            let mut best = go(p, i + 1, la, lc);
            for o in p.options(i) {
                let (a, c) = (o.action as usize, o.channel as usize);
                if la[a] > 0 && lc[c] > 0 {
                    la[a] -= 1;
                    lc[c] -= 1;
                    best = best.max(o.gain + go(p, i + 1, la, lc));
                    la[a] += 1;
                    lc[c] += 1;
                }
            }
            best
        }
        let mut la: Vec<u64> = p
            .action_caps
            .iter()
            .map(|c| c.unwrap_or(u64::MAX))
            .collect();
        let mut lc: Vec<u64> = p
            .channel_caps
            .iter()
            .map(|c| c.unwrap_or(u64::MAX))
            .collect();
        go(p, 0, &mut la, &mut lc)
    }

    fn check_feasible(p: &Problem, a: &Allocation) {
        let mut ua = vec![0u64; p.action_caps.len()];
        let mut uc = vec![0u64; p.channel_caps.len()];
        for (i, k) in a.pick.iter().enumerate() {
            if let Some(k) = k {
                let o = p.options(i)[*k];
                ua[o.action as usize] += 1;
                uc[o.channel as usize] += 1;
            }
        }
        assert_eq!(ua, a.action_used);
        assert_eq!(uc, a.channel_used);
        for (u, c) in ua.iter().zip(&p.action_caps) {
            assert!(
                c.is_none_or(|c| *u <= c),
                "action budget exceeded: {u} > {c:?}"
            );
        }
        for (u, c) in uc.iter().zip(&p.channel_caps) {
            assert!(
                c.is_none_or(|c| *u <= c),
                "channel budget exceeded: {u} > {c:?}"
            );
        }
    }

    fn problem() -> impl Strategy<Value = Problem> {
        (1usize..=7, 1usize..=3, 1usize..=3).prop_flat_map(|(n, na, nc)| {
            let caps = |m: usize| prop::collection::vec(prop::option::of(0u64..=3), m);
            let opts = prop::collection::vec(
                prop::collection::vec((1u32..=100, 0..na as u32, 0..nc as u32), 0..=4),
                n,
            );
            (caps(na), caps(nc), opts).prop_map(|(ca, cc, opts)| {
                let mut p = Problem::new(ca, cc);
                for o in opts {
                    p.push_customer(o.into_iter().map(|(g, a, c)| Opt {
                        gain: f64::from(g),
                        action: a,
                        channel: c,
                    }));
                }
                p
            })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Budgets are never exceeded and the bound is a true upper bound on the
        /// brute-force optimum.
        #[test]
        fn never_over_budget_and_bounded_on_small_problems(p in problem()) {
            let a = allocate(&p);
            check_feasible(&p, &a);
            let best = brute(&p);
            prop_assert!(a.value <= best + 1e-9);
            prop_assert!(a.bound + 1e-9 >= best, "bound {} below the optimum {best}", a.bound);
        }
    }

    /// Over 5,000 random problems (fixed seed) of up to 7 customers, 3 actions and 3
    /// channels with random caps: the share the allocation solves exactly (measured:
    /// 4,998; the two misses need a chain that ejects two holders at once, one per full
    /// resource, at 0.87 and 0.94 of the optimum).
    #[test]
    fn optimal_on_almost_every_brute_forceable_case() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (mut exact, mut worst, total) = (0, 1.0f64, 5000);
        for _ in 0..total {
            let (n, na, nc) = (
                rng.random_range(1..=7),
                rng.random_range(1..=3),
                rng.random_range(1..=3),
            );
            let cap = |rng: &mut rand_chacha::ChaCha8Rng| {
                rng.random_bool(0.6).then(|| rng.random_range(0..=3u64))
            };
            let ca = (0..na).map(|_| cap(&mut rng)).collect();
            let cc = (0..nc).map(|_| cap(&mut rng)).collect();
            let mut p = Problem::new(ca, cc);
            for _ in 0..n {
                let k = rng.random_range(0..=4);
                let opts: Vec<Opt> = (0..k)
                    .map(|_| Opt {
                        gain: f64::from(rng.random_range(1..=100u32)),
                        action: rng.random_range(0..na as u32),
                        channel: rng.random_range(0..nc as u32),
                    })
                    .collect();
                p.push_customer(opts);
            }
            let a = allocate(&p);
            check_feasible(&p, &a);
            let best = brute(&p);
            if (a.value - best).abs() < 1e-9 {
                exact += 1;
            } else {
                println!("miss: {} of {best}", a.value);
                worst = worst.min(a.value / best);
            }
        }
        let share = exact as f64 / total as f64;
        println!(
            "optimal on {exact} of {total} ({:.2}%); worst ratio to the optimum {worst:.3}",
            100.0 * share
        );
        assert!(share >= 0.995, "optimal on only {exact} of {total}");
        assert!(worst >= 0.8, "worst ratio {worst}");
    }

    /// The largest problem that runs the exchanges: 1,000 customers × 20 options under
    /// tight caps on both families (feasible, and no worse than without the exchanges).
    #[test]
    fn exchanges_on_the_largest_problem_that_runs_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut p = Problem::new(
            vec![Some(150), None, Some(300), None],
            vec![Some(200), Some(250), None],
        );
        for _ in 0..EXCHANGE_LIMIT {
            let opts: Vec<Opt> = (0..20)
                .map(|_| Opt {
                    gain: rng.random_range(1.0..100.0),
                    action: rng.random_range(0..4),
                    channel: rng.random_range(0..3),
                })
                .collect();
            p.push_customer(opts);
        }
        let t = std::time::Instant::now();
        let a = allocate(&p);
        println!(
            "{} customers: {:.2}s, gap {:.5}",
            p.customers(),
            t.elapsed().as_secs_f64(),
            a.gap()
        );
        check_feasible(&p, &a);
        assert!(a.value <= a.bound + 1e-9);
        assert!(a.gap() < 0.01, "gap {}", a.gap());
    }

    #[test]
    fn no_budgets_gives_every_customer_its_best() {
        let mut p = Problem::new(vec![None; 2], vec![None; 2]);
        p.push_customer([
            Opt {
                gain: 1.0,
                action: 0,
                channel: 0,
            },
            Opt {
                gain: 3.0,
                action: 1,
                channel: 1,
            },
        ]);
        p.push_customer([Opt {
            gain: -1.0,
            action: 0,
            channel: 0,
        }]);
        let a = allocate(&p);
        assert_eq!(a.pick, vec![Some(1), None]);
        assert_eq!(a.value, 3.0);
        assert_eq!(a.gap(), 0.0);
    }

    #[test]
    fn a_full_channel_sends_the_customer_with_the_smaller_loss_elsewhere() {
        // one sms; customer 0 gains 10 by sms or 9 by email, customer 1 10 by sms or 2 by
        // email: greedy by gain could give sms to 0; the optimum gives it to 1
        let mut p = Problem::new(vec![None], vec![Some(1), None]);
        p.push_customer([
            Opt {
                gain: 10.0,
                action: 0,
                channel: 0,
            },
            Opt {
                gain: 9.0,
                action: 0,
                channel: 1,
            },
        ]);
        p.push_customer([
            Opt {
                gain: 10.0,
                action: 0,
                channel: 0,
            },
            Opt {
                gain: 2.0,
                action: 0,
                channel: 1,
            },
        ]);
        let a = allocate(&p);
        assert_eq!(a.pick, vec![Some(1), Some(0)]);
        assert_eq!(a.value, 19.0);
        assert_eq!(a.channel_used, vec![1, 1]);
    }
}
