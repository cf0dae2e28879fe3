//! The scoring hot path allocates nothing: `Scorer::score_into` runs under
//! allocation-counter's per-thread counting allocator, after one warm-up call per learner
//! (the MLP's per-thread scratch buffer is allocated once).

use baton::config::Config;
use baton::features::{FeatureSet, Task};
use baton::models::calibrate::Calibrator;
use baton::models::data::{Part, Table};
use baton::models::{FeatureSchema, LearnerKind, Scorer, TrainConfig, train};

/// A small synthetic churn-shaped table: label depends on two of the inputs.
fn synthetic(schema: &FeatureSchema) -> Table {
    let n = 3000;
    let d = schema.width();
    let mut x = vec![0.0; n * d];
    let mut y = vec![0.0; n];
    let mut s = 1u64;
    let mut u = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    for i in 0..n {
        for j in 0..d {
            x[j * n + i] = if u() < 0.05 { f64::NAN } else { u() * 10.0 };
        }
        let z = 0.4 * (x[i] - 5.0) - 0.3 * (x[n + i] - 5.0);
        y[i] = if u() < 1.0 / (1.0 + (-z).exp()) {
            1.0
        } else {
            0.0
        };
    }
    Table {
        task: Task::Churn,
        n,
        d,
        x,
        y,
        classes: vec!["0".into(), "1".into()],
        part: (0..n)
            .map(|i| match i % 4 {
                0 => Part::Tune,
                1 => Part::Test,
                _ => Part::Train,
            })
            .collect(),
        customer_id: (0..n).map(|i| format!("c{i}")).collect(),
        action_id: None,
        oracle: None,
        oracle_classes: Vec::new(),
        clv: None,
    }
}

#[test]
fn score_into_does_not_allocate() {
    // The counter itself works: an allocation is seen.
    let probe = allocation_counter::measure(|| {
        std::hint::black_box(vec![0u8; 64]);
    });
    assert!(
        probe.count_total > 0,
        "the allocation counter is not active"
    );
    let c = Config::default();
    let set = FeatureSet::compile(&c.features, &c.actions).unwrap();
    let schema = FeatureSchema::for_task(Task::Churn, &set, &c.actions);
    let t = synthetic(&schema);
    let mut row = vec![0.0; t.d];
    t.row_into(7, &mut row);
    for learner in LearnerKind::ALL {
        let cfg = TrainConfig {
            learner,
            importance_rows: 100,
            ..TrainConfig::default()
        };
        let mut model = train(&t, &schema, &cfg, &|_| {}).unwrap().model;
        for calibrator in [
            Calibrator::None,
            Calibrator::Platt { a: 1.2, b: -0.1 },
            Calibrator::Isotonic {
                x: vec![0.1, 0.5, 0.9],
                y: vec![0.05, 0.5, 0.95],
            },
        ] {
            model.calibrator = calibrator;
            let scorer: &dyn Scorer = &model;
            let mut out = [0.0];
            scorer.score_into(&row, &mut out).unwrap(); // warm-up
            let info = allocation_counter::measure(|| {
                for _ in 0..1000 {
                    scorer.score_into(&row, &mut out).unwrap();
                }
            });
            assert_eq!(
                info.count_total, 0,
                "{learner:?} allocated while scoring: {} allocations, {} bytes",
                info.count_total, info.bytes_total
            );
            assert!((0.0..=1.0).contains(&out[0]));
        }
    }
}
