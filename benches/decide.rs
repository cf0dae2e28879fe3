//! Engine `decide` latency for catalogs of 10, 50 and 200 (action, channel) candidates,
//! with a fixed-weight logistic response model and a churn model (see
//! `baton::models::toy`), both with a customer-value fit, for a customer with three
//! purchases. Run: `cargo bench --bench decide`.

use std::sync::Arc;

use baton::clv::{BgNbdParams, ClvInputs, GammaGammaParams};
use baton::config::{ActionKind, ActionSpec, Config};
use baton::decide::{ContactHistory, CustomerView, DecideInput, Engine, ModelSlot, Models};
use baton::features::{Event, FeatureSet, OnlineState, Profile, Task};
use baton::models::FeatureSchema;
use baton::models::toy::toy_logistic;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::SeedableRng;

/// A catalog of `n` candidates: n/5 actions on 5 channels each, always eligible.
fn catalog(n: usize) -> Vec<ActionSpec> {
    let channels = ["email", "web", "app", "push", "sms"];
    (0..n / channels.len())
        .map(|i| ActionSpec {
            id: format!("a{i:03}"),
            name: String::new(),
            kind: ActionKind::ALL[i % 3],
            channels: channels.iter().map(|c| c.to_string()).collect(),
            value: 10.0 + i as f64,
            cost: channels.iter().map(|c| (c.to_string(), 0.01)).collect(),
            eligibility: if i % 2 == 0 {
                "purchases_90d >= 0".into()
            } else {
                "true".into()
            },
            max_contacts: 3,
            per_days: 30,
            cooldown_days: 1,
            weight: 1.0,
            start: None,
            end: None,
        })
        .collect()
}

/// A customer-value fit of the size the quickstart's are.
fn fit() -> ClvInputs {
    ClvInputs {
        calibration_end: "2025-02-27".into(),
        bgnbd: BgNbdParams::new(0.6, 20.0, 0.7, 2.5).unwrap(),
        gamma_gamma: Some(GammaGammaParams::new(5.0, 4.0, 12.0).unwrap()),
    }
}

fn engine(n: usize) -> (Engine, Arc<FeatureSet>) {
    let mut config = Config {
        actions: catalog(n),
        ..Config::default()
    };
    config.decide.retention_actions = vec!["a000".into()];
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions).unwrap());
    let slot = |task, name, seed| {
        let mut schema = FeatureSchema::for_task(task, &set, &config.actions);
        // the customer-value inputs are computed per decision, as with a trained model
        schema.clv = Some(fit());
        let m = toy_logistic(name, schema, vec!["p".into()], seed);
        ModelSlot::new(name, "v1", m.into_scorer(), &set).unwrap()
    };
    let models = Models {
        response: slot(Task::Response, "response", 1),
        churn: Some(slot(Task::Churn, "churn", 2)),
        channel: None,
    };
    (Engine::new(&config, set.clone(), models).unwrap(), set)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide");
    let now = 1_740_830_400_000_000; // 2025-03-01 12:00 UTC
    for n in [10, 50, 200] {
        let (e, set) = engine(n);
        assert_eq!(e.candidate_count(), n);
        let profile = Profile {
            consents: [Some(true); 5],
            ..Profile::default()
        };
        let mut state = OnlineState::new(set, Some(profile.clone()));
        for (day, value) in [(40, 25.0), (25, 40.0), (9, 18.0)] {
            state.update(&Event {
                ts: now - 86_400_000_000 * day,
                event_type: "purchase".into(),
                channel: Some("web".into()),
                action_id: None,
                decision_id: None,
                item_id: None,
                value: Some(value),
            });
        }
        let mut contacts = ContactHistory::default();
        contacts.record_delivery(now - 86_400_000_000 * 3, "a001", "email", None, 60);
        let ctx = serde_json::Map::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let features = state.vector(now);
                let view = CustomerView {
                    customer_id: "c1",
                    features: &features,
                    consents: profile.consents,
                    rfm: state.rfm(now),
                    known: true,
                    contacts: &contacts,
                };
                let input = DecideInput {
                    now,
                    context: &ctx,
                    limit: 3,
                    explain: false,
                };
                e.decide(&view, &input, "d".into(), &mut rng).unwrap()
            })
        });
    }
    // of which: the customer-value inputs (once per decision; the two models share the fit)
    let (fit, rfm) = (
        fit(),
        baton::clv::Rfm {
            frequency: 2.0,
            recency: 31.0,
            t: 39.0,
            monetary: 29.0,
        },
    );
    g.bench_function("clv_inputs", |b| {
        b.iter(|| fit.values(Some(std::hint::black_box(&rfm))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
