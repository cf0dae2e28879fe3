//! Simulator integration tests: determinism, oracle calibration (responses and churn),
//! consent, logged propensities and eligibility, contact limits, config errors.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use baton::config::Config;
use baton::decide::expr::{Expr, Value};
use baton::schema::{CONSENT_COLUMNS, consent_column};
use baton::sim::{GROUND_TRUTH_DECISIONS_FILE, SimParams, SimSummary, simulate};
use baton::store::{DataDir, read_parquet};
use statrs::distribution::{ContinuousCDF, Normal};

fn params(customers: u64, days: u32, seed: u64, action_rate: f64) -> SimParams {
    SimParams {
        customers,
        days,
        seed,
        start: chrono::NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
        action_rate,
    }
}

fn run(p: &SimParams) -> (tempfile::TempDir, SimSummary) {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = DataDir::create(tmp.path()).unwrap();
    let s = simulate(&Config::default(), p, &dir, &|_| {}).unwrap();
    (tmp, s)
}

/// One shared, larger run for the statistical tests, in `CARGO_TARGET_TMPDIR`; left-over
/// runs of test processes that have exited are removed first.
fn shared() -> &'static (PathBuf, SimSummary) {
    static RUN: OnceLock<(PathBuf, SimSummary)> = OnceLock::new();
    RUN.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("sim-shared-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let root = base.join(format!("sim-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = DataDir::create(&root).unwrap();
        let s = simulate(
            &Config::default(),
            &params(6000, 120, 11, 0.15),
            &dir,
            &|_| {},
        )
        .unwrap();
        (root, s)
    })
}

fn table(path: &Path) -> RecordBatch {
    let (schema, batches) = read_parquet(path).unwrap();
    concat_batches(&schema, &batches).unwrap()
}

fn parts(dir: &Path) -> RecordBatch {
    let files = DataDir::parts(dir).unwrap();
    let batches: Vec<_> = files.iter().map(|f| table(f)).collect();
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn strs<'a>(b: &'a RecordBatch, c: &str) -> Vec<Option<&'a str>> {
    b.column_by_name(c)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .collect()
}
fn f64s(b: &RecordBatch, c: &str) -> Vec<Option<f64>> {
    b.column_by_name(c)
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}
fn bools(b: &RecordBatch, c: &str) -> Vec<Option<bool>> {
    b.column_by_name(c).unwrap().as_boolean().iter().collect()
}
fn tss(b: &RecordBatch, c: &str) -> Vec<i64> {
    b.column_by_name(c)
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec()
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let (a, sa) = run(&params(1500, 60, 3, 0.1));
    let (b, sb) = run(&params(1500, 60, 3, 0.1));
    let (c, _) = run(&params(1500, 60, 4, 0.1));
    let (fa, fb) = (all_files(a.path()), all_files(b.path()));
    assert_eq!(fa.len(), 6);
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(
            x.strip_prefix(a.path()).unwrap(),
            y.strip_prefix(b.path()).unwrap()
        );
        assert_eq!(table(x), table(y), "{}", x.display());
        assert_eq!(
            std::fs::read(x).unwrap(),
            std::fs::read(y).unwrap(),
            "{}",
            x.display()
        );
    }
    assert_eq!(
        (sa.events, sa.decisions, sa.churned),
        (sb.events, sb.decisions, sb.churned)
    );
    let ea = parts(&a.path().join("events"));
    let ec = parts(&c.path().join("events"));
    assert_ne!(ea, ec);
}

#[test]
fn volumes_and_rates_are_realistic() {
    let (root, s) = shared();
    let events = parts(&root.join("events"));
    assert_eq!(events.num_rows() as u64, s.events);
    let per_day = s.events as f64 / (6000.0 * 120.0);
    assert!(
        (0.3..1.5).contains(&per_day),
        "{per_day} events per customer-day"
    );
    for t in [
        "visit",
        "purchase",
        "return",
        "support_contact",
        "survey_nps",
        "survey_csat",
        "app_open",
        "unsubscribe",
    ] {
        assert!(
            s.events_by_type.get(t).copied().unwrap_or(0) > 0,
            "no {t} events"
        );
    }
    assert_eq!(s.events_by_type["action_delivered"], s.decisions);
    for ((a, c), r) in &s.responses {
        assert!(r.converted <= r.clicked && r.clicked <= r.opened && r.opened <= r.delivered);
        if r.delivered >= 300 {
            let ctr = r.clicked as f64 / r.delivered as f64;
            assert!((0.005..0.45).contains(&ctr), "{a}/{c}: click rate {ctr}");
        }
    }
    let event_ids = strs(&events, "event_id");
    assert!(event_ids.iter().all(Option::is_some));
    assert_eq!(
        event_ids.iter().collect::<HashSet<_>>().len(),
        event_ids.len(),
        "unique event ids"
    );
    let decisions = parts(&root.join("decisions"));
    let ids = strs(&decisions, "decision_id");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "unique decision ids"
    );
}

fn z_bound(tests: usize) -> f64 {
    // two-sided 99% family-wise (Bonferroni over `tests`)
    Normal::new(0.0, 1.0)
        .unwrap()
        .inverse_cdf(1.0 - 0.01 / (2.0 * tests as f64))
}

#[test]
fn realised_responses_match_the_oracle() {
    let (root, _) = shared();
    let truth = table(&root.join(GROUND_TRUTH_DECISIONS_FILE));
    let outcomes = parts(&root.join("outcomes"));
    let mut realised: HashMap<(&str, &str), bool> = HashMap::new();
    for (d, k) in strs(&outcomes, "decision_id")
        .into_iter()
        .zip(strs(&outcomes, "kind"))
    {
        realised.insert((d.unwrap(), k.unwrap()), true);
    }
    let ids = strs(&truth, "decision_id");
    let (actions, channels) = (strs(&truth, "action_id"), strs(&truth, "channel"));
    // (action, channel, kind) -> (n, hits, sum p, sum p(1-p))
    type Cell = (u64, f64, f64, f64);
    let mut cells: HashMap<(&str, &str, &str), Cell> = HashMap::new();
    for (kind, col) in [
        ("opened", "p_open"),
        ("clicked", "p_click"),
        ("converted", "p_convert"),
    ] {
        for (i, p) in f64s(&truth, col).into_iter().enumerate() {
            let p = p.unwrap();
            let hit = realised.contains_key(&(ids[i].unwrap(), kind));
            let c = cells
                .entry((actions[i].unwrap(), channels[i].unwrap(), kind))
                .or_default();
            c.0 += 1;
            c.1 += f64::from(u8::from(hit));
            c.2 += p;
            c.3 += p * (1.0 - p);
        }
    }
    // cells with fewer than 200 deliveries or an expected count under 10 are skipped
    let tested: Vec<_> = cells
        .iter()
        .filter(|(_, c)| c.0 >= 200 && c.2 >= 10.0)
        .collect();
    assert!(tested.len() >= 30, "only {} testable cells", tested.len());
    let bound = z_bound(tested.len());
    for (key, (n, hits, sp, var)) in tested {
        let z = (hits - sp) / var.sqrt();
        assert!(
            z.abs() < bound,
            "{key:?}: n={n} realised {hits} vs expected {sp:.1} (z={z:.2}, bound {bound:.2})"
        );
    }
}

#[test]
fn realised_churn_matches_the_oracle() {
    let (root, _) = shared();
    let gt = table(&root.join("ground_truth.parquet"));
    let alive = bools(&gt, "alive_at_cutoff");
    let p = f64s(&gt, "p_churn_30d");
    let y = bools(&gt, "churned_within_30d");
    let pn = f64s(&gt, "p_no_purchase_30d");
    let yn = bools(&gt, "no_purchase_within_30d");
    assert_eq!(
        gt.num_rows(),
        6000 * 3,
        "3 cutoffs (30, 60, 90) for 120 days"
    );
    let (mut n, mut hits, mut sp, mut var) = (0.0, 0.0, 0.0, 0.0);
    let (mut hn, mut spn, mut varn) = (0.0, 0.0, 0.0);
    for i in 0..gt.num_rows() {
        if !alive[i].unwrap() {
            assert!(p[i].is_none() && y[i].is_none());
            continue;
        }
        let (p, pn) = (p[i].unwrap(), pn[i].unwrap());
        n += 1.0;
        hits += f64::from(u8::from(y[i].unwrap()));
        sp += p;
        var += p * (1.0 - p);
        hn += f64::from(u8::from(yn[i].unwrap()));
        spn += pn;
        varn += pn * (1.0 - pn);
    }
    assert!(n > 10_000.0, "{n}");
    let rate = sp / n;
    assert!(
        (0.05..0.20).contains(&rate),
        "mean 30-day churn probability {rate}"
    );
    let bound = z_bound(2);
    let z = (hits - sp) / var.sqrt();
    assert!(
        z.abs() < bound,
        "churn: realised {hits} vs expected {sp:.1} (z={z:.2})"
    );
    let zn = (hn - spn) / varn.sqrt();
    assert!(
        zn.abs() < bound,
        "no purchase: realised {hn} vs expected {spn:.1} (z={zn:.2})"
    );
}

fn candidates(d: &RecordBatch, row: usize) -> Vec<(String, String)> {
    let list = d
        .column_by_name("candidates")
        .unwrap()
        .as_list::<i32>()
        .value(row);
    let s = list.as_struct();
    let (a, c) = (
        s.column(0).as_string::<i32>(),
        s.column(1).as_string::<i32>(),
    );
    assert_eq!(
        s.column(2).null_count(),
        s.len(),
        "p_response is null for the random policy"
    );
    (0..s.len())
        .map(|i| (a.value(i).to_string(), c.value(i).to_string()))
        .collect()
}

#[test]
fn policy_respects_consent_and_presence() {
    let (root, _) = shared();
    let d = parts(&root.join("decisions"));
    let customers = table(&root.join("customers.parquet"));
    let events = parts(&root.join("events"));
    let cid = strs(&customers, "customer_id");
    let consent: HashMap<(&str, &str), bool> = CONSENT_COLUMNS
        .iter()
        .flat_map(|(col, chn)| {
            let v = bools(&customers, col);
            cid.iter()
                .zip(v)
                .map(move |(c, v)| ((c.unwrap(), *chn), v == Some(true)))
                .collect::<Vec<_>>()
        })
        .collect();
    // unsubscribes and inbound presence, from the events
    let (ec, et, ech, ets) = (
        strs(&events, "customer_id"),
        strs(&events, "event_type"),
        strs(&events, "channel"),
        tss(&events, "ts"),
    );
    let mut unsub: HashMap<(&str, &str), i64> = HashMap::new();
    let mut present: HashMap<(&str, &str, i64), Vec<i64>> = HashMap::new();
    for i in 0..events.num_rows() {
        let (c, t, ch) = (ec[i].unwrap(), et[i].unwrap(), ech[i]);
        if t == "unsubscribe" {
            unsub.insert((c, ch.unwrap()), ets[i]);
        }
        if matches!(t, "visit" | "support_contact") {
            present
                .entry((c, ch.unwrap(), ets[i].div_euclid(86_400_000_000)))
                .or_default()
                .push(ets[i]);
        }
    }
    let (dc, dts, dch) = (strs(&d, "customer_id"), tss(&d, "ts"), strs(&d, "channel"));
    let reachable = |c: &str, chn: &str, ts: i64| match consent_column(chn) {
        Some(_) => consent[&(c, chn)] || unsub.get(&(c, chn)).is_some_and(|u| *u > ts),
        None => present
            .get(&(c, chn, ts.div_euclid(86_400_000_000)))
            .is_some_and(|v| v.iter().any(|t| *t < ts)),
    };
    let mut outbound = 0;
    for i in 0..d.num_rows() {
        let c = dc[i].unwrap();
        assert!(
            reachable(c, dch[i].unwrap(), dts[i]),
            "decision {i}: {c} not reachable on {:?}",
            dch[i]
        );
        for (_, chn) in candidates(&d, i) {
            assert!(
                reachable(c, &chn, dts[i]),
                "decision {i}: candidate channel {chn} for {c}"
            );
            outbound += usize::from(consent_column(&chn).is_some());
        }
    }
    assert!(outbound > 1000);
}

#[test]
fn propensities_are_uniform_and_candidates_eligible() {
    let (root, _) = shared();
    let d = parts(&root.join("decisions"));
    let config = Config::default();
    let exprs: HashMap<&str, Expr> = config
        .actions
        .iter()
        .map(|a| (a.id.as_str(), a.eligibility_expr().unwrap()))
        .collect();
    let prop = f64s(&d, "propensity");
    let pos = d
        .column_by_name("position")
        .unwrap()
        .as_primitive::<Int32Type>();
    let (action, channel, context) = (
        strs(&d, "action_id"),
        strs(&d, "channel"),
        strs(&d, "context"),
    );
    let explore = bools(&d, "explore");
    let policy = strs(&d, "policy_version");
    for i in 0..d.num_rows() {
        let cands = candidates(&d, i);
        assert!(!cands.is_empty());
        assert_eq!(prop[i].unwrap(), 1.0 / cands.len() as f64, "decision {i}");
        let chosen = &cands[pos.value(i) as usize];
        assert_eq!(
            (chosen.0.as_str(), chosen.1.as_str()),
            (action[i].unwrap(), channel[i].unwrap())
        );
        assert_eq!(explore[i], Some(true));
        assert_eq!(policy[i], Some("random-v1"));
        let ctx: serde_json::Value = serde_json::from_str(context[i].unwrap()).unwrap();
        let lookup = |name: &str| match &ctx[name] {
            serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            _ => Value::Null,
        };
        for (a, chn) in &cands {
            assert!(
                exprs[a.as_str()].holds(&lookup),
                "decision {i}: {a} not eligible under {ctx}"
            );
            assert!(config.action(a).unwrap().channels.contains(chn));
        }
    }
}

#[test]
fn contact_limits_hold_in_the_log() {
    let (root, _) = shared();
    let d = parts(&root.join("decisions"));
    let config = Config::default();
    let (dc, da, dts) = (
        strs(&d, "customer_id"),
        strs(&d, "action_id"),
        tss(&d, "ts"),
    );
    let mut days: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for i in 0..d.num_rows() {
        days.entry((dc[i].unwrap(), da[i].unwrap()))
            .or_default()
            .push(dts[i].div_euclid(86_400_000_000));
    }
    for ((_, a), mut v) in days {
        let spec = config.action(a).unwrap();
        v.sort_unstable();
        for w in v.windows(2) {
            assert!(w[1] - w[0] >= spec.cooldown_days as i64, "{a}: cooldown");
        }
        for (i, day) in v.iter().enumerate() {
            let within = v[..=i]
                .iter()
                .filter(|x| **x > day - spec.per_days as i64)
                .count();
            assert!(
                within <= spec.max_contacts as usize,
                "{a}: {within} within {} days",
                spec.per_days
            );
        }
    }
}

#[test]
fn unknown_eligibility_variable_fails_naming_the_action() {
    let mut config = Config::default();
    config.actions[1].eligibility = "days_since_last_purchase >= 30 and churn_score > 0.5".into();
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path()).unwrap();
    let err = simulate(&config, &params(10, 30, 1, 0.1), &dir, &|_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("win_back") && err.contains("churn_score"),
        "{err}"
    );
    assert!(!dir.customers_path().exists());
}
