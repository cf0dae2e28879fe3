//! Engine tests: eligibility, consent, contact policy, arbitration, exploration and
//! explanations, plus property tests that consent, caps and cooldowns always hold.

use std::sync::Arc;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::config::Config;
use crate::features::{DAY_US, FeatureSet, Task};
use crate::models::FeatureSchema;
use crate::models::toy::toy_logistic;
use crate::schema::CONSENT_COLUMNS;

/// 2025-03-01 12:00 UTC, µs.
const NOON: i64 = 1_740_830_400_000_000;

pub(crate) fn engine_with(config: &Config, churn: bool) -> Engine {
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions).unwrap());
    let schema = FeatureSchema::for_task(Task::Response, &set, &config.actions);
    let response = toy_logistic("response", schema, vec!["p".into()], 7);
    let response = ModelSlot::new("response", "v1", response.into_scorer(), &set).unwrap();
    let churn = churn.then(|| {
        let schema = FeatureSchema::for_task(Task::Churn, &set, &config.actions);
        let m = toy_logistic("churn", schema, vec!["p".into()], 8);
        ModelSlot::new("churn", "v2", m.into_scorer(), &set).unwrap()
    });
    let models = Models {
        response,
        churn,
        channel: None,
    };
    Engine::new(config, set, models).unwrap()
}

/// A feature row with `values` set by column name (everything else missing).
fn row(e: &Engine, values: &[(&str, f64)]) -> Vec<Option<f64>> {
    let set = e.feature_set();
    let mut r = vec![None; set.columns().len()];
    for (name, v) in values {
        let i = set.columns().iter().position(|c| c == name).unwrap();
        r[i] = Some(*v);
    }
    r
}

/// A customer for whom most of the default catalog is eligible.
fn busy(e: &Engine) -> Vec<Option<f64>> {
    row(
        e,
        &[
            ("purchases_90d", 3.0),
            ("purchase_count", 5.0),
            ("days_since_last_purchase", 40.0),
            ("cart_abandoned_7d", 1.0),
            ("support_contacts_30d", 1.0),
            ("tenure_days", 200.0),
            ("spend_90d", 300.0),
        ],
    )
}

const ALL: [Option<bool>; 5] = [Some(true); 5];

fn decide(
    e: &Engine,
    features: &[Option<f64>],
    consents: [Option<bool>; 5],
    contacts: &ContactHistory,
    now: i64,
    ctx: &serde_json::Map<String, serde_json::Value>,
    rng: &mut ChaCha8Rng,
) -> Decision {
    let view = CustomerView {
        customer_id: "c1",
        features,
        consents,
        rfm: None,
        known: true,
        contacts,
    };
    let input = DecideInput {
        now,
        context: ctx,
        limit: 50,
        explain: true,
    };
    e.decide(&view, &input, "d".into(), rng).unwrap()
}

fn greedy() -> Config {
    let mut c = Config::default();
    c.decide.exploration = Exploration::None;
    c
}

#[test]
fn ranks_by_expected_value_and_explains() {
    let e = engine_with(&greedy(), false);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let d = decide(
        &e,
        &f,
        ALL,
        &ContactHistory::default(),
        NOON,
        &Default::default(),
        &mut rng,
    );
    assert!(!d.candidates.is_empty());
    for w in d.candidates.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
    for r in &d.candidates {
        let want = r.p_response * r.value * r.weight - r.cost;
        assert!((r.score - want).abs() < 1e-12);
        assert!((0.0..=1.0).contains(&r.p_response));
    }
    // greedy: the best positive-scoring candidate, propensity 1, position 0
    assert_eq!(d.chosen.action_id, &*d.candidates[0].action_id);
    assert_eq!(
        (d.chosen.position, d.chosen.propensity, d.chosen.explore),
        (0, 1.0, false)
    );
    assert_eq!(d.actions[0], d.candidates[0]);
    // welcome_discount needs tenure <= 30: dropped as ineligible, with the reason
    assert!(
        d.dropped
            .iter()
            .any(|x| x.action_id == "welcome_discount" && x.reason == "ineligible")
    );
    assert_eq!(d.model_versions["response"], "v1");
}

#[test]
fn consent_and_presence_gate_channels() {
    let e = engine_with(&greedy(), false);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let none = [None, Some(false), None, None, None];
    let mut ctx = serde_json::Map::new();
    ctx.insert("channel".into(), "web".into());
    let d = decide(
        &e,
        &f,
        none,
        &ContactHistory::default(),
        NOON,
        &ctx,
        &mut rng,
    );
    for r in &d.candidates {
        assert_eq!(&*r.channel, "web", "{r:?}");
    }
    assert!(
        d.dropped
            .iter()
            .any(|x| x.reason == "no_consent" && x.channel.as_deref() == Some("email"))
    );
    assert!(
        d.dropped
            .iter()
            .any(|x| x.reason == "not_present" && x.channel.as_deref() == Some("app"))
    );
}

#[test]
fn contact_limits_and_quiet_hours() {
    let e = engine_with(&greedy(), false);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut h = ContactHistory::default();
    // cross_sell: 3 per 30 days, cooldown 5 days
    for d in [20, 12, 6] {
        h.record_delivery(NOON - d * DAY_US, "cross_sell", "web", None, 90);
    }
    // three emails this week: the email cap (3 per 7 days) is reached
    for d in 1..=3 {
        h.record_delivery(NOON - d * DAY_US, "survey_request", "email", None, 90);
    }
    // loyalty_points yesterday: 14-day cooldown, but 1 per 30 days hits first
    h.record_delivery(NOON - DAY_US, "win_back", "sms", None, 90);
    let late = NOON + 10 * 3_600_000_000; // 22:00 UTC
    let d = decide(&e, &f, ALL, &h, late, &Default::default(), &mut rng);
    let why = |a: &str, c: Option<&str>| {
        d.dropped
            .iter()
            .find(|x| x.action_id == a && (c.is_none() || x.channel.as_deref() == c))
            .map(|x| x.reason.clone())
    };
    assert_eq!(why("cross_sell", None).as_deref(), Some("action_cap"));
    assert_eq!(why("win_back", None).as_deref(), Some("action_cap"));
    assert_eq!(
        why("cart_reminder", Some("email")).as_deref(),
        Some("channel_cap")
    );
    assert_eq!(
        why("cart_reminder", Some("sms")).as_deref(),
        Some("quiet_hours")
    );
    assert_eq!(
        why("service_call", Some("call_center")).as_deref(),
        Some("quiet_hours")
    );
    for r in &d.candidates {
        assert!(
            !["email", "sms", "push", "call_center"].contains(&&*r.channel),
            "{r:?}"
        );
    }
}

#[test]
fn cooldown_and_suppression() {
    let mut c = greedy();
    c.actions.iter_mut().for_each(|a| a.max_contacts = 10);
    let e = engine_with(&c, false);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut h = ContactHistory::default();
    h.record_delivery(NOON - 2 * DAY_US, "cart_reminder", "push", None, 90);
    for d in [40, 30, 20] {
        h.record_delivery(NOON - d * DAY_US, "cross_sell", "web", None, 90);
    }
    let d = decide(&e, &f, ALL, &h, NOON, &Default::default(), &mut rng);
    let r = d
        .dropped
        .iter()
        .find(|x| x.action_id == "cart_reminder")
        .unwrap();
    assert_eq!(r.reason, "cooldown");
    let r = d
        .dropped
        .iter()
        .find(|x| x.action_id == "cross_sell")
        .unwrap();
    assert_eq!(r.reason, "suppressed", "{r:?}");
}

#[test]
fn do_nothing_wins_when_nothing_beats_it() {
    let mut c = greedy();
    c.decide.do_nothing_score = 1e9;
    let e = engine_with(&c, false);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let d = decide(
        &e,
        &f,
        ALL,
        &ContactHistory::default(),
        NOON,
        &Default::default(),
        &mut rng,
    );
    assert_eq!(d.chosen.action_id, DO_NOTHING);
    assert_eq!(d.chosen.channel, NO_CHANNEL);
    assert_eq!((d.chosen.position, d.chosen.propensity), (0, 1.0));
    assert!(d.actions.is_empty());
    assert!(!d.candidates.is_empty());
}

#[test]
fn retention_weight_follows_churn() {
    let e = engine_with(&greedy(), true);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let d = decide(
        &e,
        &f,
        ALL,
        &ContactHistory::default(),
        NOON,
        &Default::default(),
        &mut rng,
    );
    let churn = d.churn.unwrap();
    assert!(churn > 0.0 && churn < 1.0);
    for r in &d.candidates {
        let want = if ["win_back", "service_call"].contains(&&*r.action_id) {
            1.0 + churn
        } else if &*r.action_id == "survey_request" {
            0.5
        } else {
            1.0
        };
        assert!((r.weight - want).abs() < 1e-12, "{r:?}");
    }
}

#[test]
fn expressions_read_scores_and_context() {
    let mut c = greedy();
    c.actions[1].eligibility = "churn > 0.0 and ctx_page = 'checkout'".into();
    let e = engine_with(&c, true);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let h = ContactHistory::default();
    let d = decide(&e, &f, ALL, &h, NOON, &Default::default(), &mut rng);
    assert!(d.candidates.iter().all(|r| &*r.action_id != "win_back"));
    let mut ctx = serde_json::Map::new();
    ctx.insert("page".into(), "checkout".into());
    let d = decide(&e, &f, ALL, &h, NOON, &ctx, &mut rng);
    assert!(d.candidates.iter().any(|r| &*r.action_id == "win_back"));
    // an unknown variable is refused at load, naming action and position
    c.actions[1].eligibility = "churn > 0.4 and bogus = 1".into();
    let set = e.feature_set().clone();
    let err = Engine::new(&c, set, e.models().clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("actions[1].eligibility") && err.contains("win_back"),
        "{err}"
    );
    assert!(
        err.contains("bogus") && err.contains("position 16"),
        "{err}"
    );
    // `churn` without a churn model is unknown too
    c.actions[1].eligibility = "churn > 0.4".into();
    let without = engine_with(&greedy(), false);
    let err = Engine::new(&c, without.feature_set().clone(), without.models().clone());
    assert!(err.unwrap_err().to_string().contains("churn"));
}

/// Empirical choice frequencies match the logged propensities.
fn check_propensities(c: Config) {
    let e = engine_with(&c, false);
    let f = busy(&e);
    let h = ContactHistory::default();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let n = 20_000;
    let mut seen: std::collections::HashMap<(String, String), (usize, f64)> = Default::default();
    for _ in 0..n {
        let d = decide(&e, &f, ALL, &h, NOON, &Default::default(), &mut rng);
        let k = seen
            .entry((d.chosen.action_id, d.chosen.channel))
            .or_insert((0, d.chosen.propensity));
        k.0 += 1;
        assert!(
            (k.1 - d.chosen.propensity).abs() < 1e-12,
            "same option, same propensity"
        );
    }
    let total: f64 = seen.values().map(|(_, p)| p).sum();
    assert!(total <= 1.0 + 1e-9);
    for ((a, ch), (count, p)) in &seen {
        let freq = *count as f64 / n as f64;
        let sd = (p * (1.0 - p) / n as f64).sqrt();
        assert!(
            (freq - p).abs() < 5.0 * sd + 1e-3,
            "{a}/{ch}: freq {freq} vs propensity {p}"
        );
    }
}

#[test]
fn epsilon_greedy_propensities_are_exact() {
    let mut c = Config::default();
    c.decide.exploration = Exploration::EpsilonGreedy;
    c.decide.epsilon = 0.3;
    check_propensities(c);
}

#[test]
fn softmax_propensities_are_exact() {
    let mut c = Config::default();
    c.decide.exploration = Exploration::Softmax;
    c.decide.temperature = 0.5;
    check_propensities(c);
}

/// The answer's actions: the chosen pair first (explored or not), then the best of the
/// others above "do nothing", at most `limit` of them.
#[test]
fn answer_lists_the_chosen_pair_then_the_best_others_up_to_the_limit() {
    let mut c = Config::default();
    c.decide.exploration = Exploration::EpsilonGreedy;
    c.decide.epsilon = 0.9;
    let e = engine_with(&c, false);
    let f = busy(&e);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut explored_below_top = 0;
    for limit in [1usize, 2, 3, 5, 50] {
        for _ in 0..40 {
            let view = CustomerView {
                customer_id: "c1",
                features: &f,
                consents: ALL,
                rfm: None,
                known: true,
                contacts: &ContactHistory::default(),
            };
            let input = DecideInput {
                now: NOON,
                context: &Default::default(),
                limit,
                explain: false,
            };
            let d = e.decide(&view, &input, "d".into(), &mut rng).unwrap();
            let above: Vec<&Ranked> = d
                .candidates
                .iter()
                .filter(|r| r.score > d.do_nothing_score)
                .collect();
            let mut want: Vec<&Ranked> = Vec::new();
            let mut chosen_at = None;
            if d.chosen.action_id != DO_NOTHING {
                let chosen = d
                    .candidates
                    .iter()
                    .find(|r| *r.action_id == d.chosen.action_id && *r.channel == d.chosen.channel)
                    .expect("the chosen pair is a candidate");
                if !std::ptr::eq(chosen, d.candidates.first().unwrap()) {
                    explored_below_top += 1;
                }
                want.push(chosen);
                chosen_at = Some(chosen as *const Ranked);
            }
            want.extend(
                above
                    .iter()
                    .copied()
                    .filter(|r| chosen_at != Some(*r as *const Ranked)),
            );
            want.truncate(limit);
            assert_eq!(d.actions.len(), want.len(), "limit {limit}");
            for (got, w) in d.actions.iter().zip(want) {
                assert_eq!(got, w, "limit {limit}");
            }
        }
    }
    assert!(
        explored_below_top > 0,
        "exploration never picked below the top"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Decide {
        hours: u8,
        ctx_web: bool,
    },
    Deliver {
        action: usize,
        channel: usize,
        hours: u8,
    },
    Respond,
    Wait {
        hours: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..24, any::<bool>()).prop_map(|(hours, ctx_web)| Op::Decide { hours, ctx_web }),
        2 => (0usize..8, 0usize..9, 0u8..24).prop_map(|(action, channel, hours)| Op::Deliver { action, channel, hours }),
        1 => Just(Op::Respond),
        2 => (1u16..400).prop_map(|hours| Op::Wait { hours }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the sequence of decisions, outside deliveries and responses: a chosen
    /// channel always has consent, and no cap, cooldown or quiet hour is broken by a
    /// decision.
    #[test]
    fn consent_caps_and_cooldowns_hold(
        consents in proptest::array::uniform5(proptest::option::of(any::<bool>())),
        epsilon in 0.0f64..1.0,
        softmax in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..80),
        seed in any::<u64>(),
    ) {
        let mut c = Config::default();
        c.decide.exploration = if softmax { Exploration::Softmax } else { Exploration::EpsilonGreedy };
        c.decide.epsilon = epsilon;
        let e = engine_with(&c, true);
        let f = busy(&e);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut h = ContactHistory::default();
        let mut now = NOON;
        for op in ops {
            match op {
                Op::Wait { hours } => now += i64::from(hours) * 3_600_000_000,
                Op::Respond => {
                    if let Some(d) = h.deliveries().last().cloned() {
                        h.record_response(now, &d.action_id, d.decision_id.as_deref());
                    }
                }
                Op::Deliver { action, channel, hours } => {
                    let t = now - i64::from(hours) * 3_600_000_000;
                    let a = &c.actions[action].id;
                    h.record_delivery(t, a, crate::schema::CHANNELS[channel], None, e.keep_days());
                }
                Op::Decide { hours, ctx_web } => {
                    let t = now - now.rem_euclid(DAY_US) + i64::from(hours) * 3_600_000_000;
                    let t = t.max(now);
                    now = t;
                    let mut ctx = serde_json::Map::new();
                    if ctx_web { ctx.insert("channel".into(), "web".into()); }
                    let d = decide(&e, &f, consents, &h, now, &ctx, &mut rng);
                    prop_assert!(d.chosen.propensity > 0.0 && d.chosen.propensity <= 1.0);
                    if d.chosen.action_id == DO_NOTHING { continue; }
                    let a = c.action(&d.chosen.action_id).unwrap();
                    let ch = d.chosen.channel.as_str();
                    prop_assert!(a.channels.iter().any(|x| x == ch));
                    if let Some(k) = CONSENT_COLUMNS.iter().position(|(_, x)| *x == ch) {
                        prop_assert_eq!(consents[k], Some(true), "no consent for {}", ch);
                    } else if ctx_web {
                        prop_assert_eq!(ch, "web");
                    }
                    prop_assert!(h.action_count(&a.id, a.per_days, now) < a.max_contacts);
                    if let Some(last) = h.last_delivery(&a.id, now) {
                        prop_assert!(now - last >= i64::from(a.cooldown_days) * DAY_US);
                    }
                    if let Some(cap) = c.decide.channel_caps.get(ch) {
                        prop_assert!(h.channel_count(ch, cap.per_days, now) < cap.max);
                    }
                    if let Some(q) = c.decide.quiet_hours.get(ch) {
                        prop_assert!(!q.contains((now.rem_euclid(DAY_US) / 3_600_000_000) as u32));
                    }
                    h.record_delivery(now, &a.id, ch, Some(&format!("d{now}")), e.keep_days());
                }
            }
        }
    }
}

/// A model trained with a customer-value fit reads `clv_p_alive` and `clv_value_365d` from
/// the customer's RFM through that fit; without a fit (older models) they are missing.
#[test]
fn customer_value_inputs_come_from_the_models_fit() {
    use crate::clv::{BgNbdParams, ClvInputs, GammaGammaParams, Rfm};
    let config = greedy();
    let set = Arc::new(FeatureSet::compile(&config.features, &config.actions).unwrap());
    let fit = ClvInputs {
        calibration_end: "2025-02-28".into(),
        bgnbd: BgNbdParams::new(0.6, 20.0, 0.7, 2.5).unwrap(),
        gamma_gamma: Some(GammaGammaParams::new(5.0, 4.0, 12.0).unwrap()),
    };
    let engine = |clv: Option<ClvInputs>| {
        let mut schema = FeatureSchema::for_task(Task::Response, &set, &config.actions);
        schema.clv = clv;
        let m = toy_logistic("response", schema, vec!["p".into()], 7);
        let models = Models {
            response: ModelSlot::new("response", "v1", m.into_scorer(), &set).unwrap(),
            churn: None,
            channel: None,
        };
        Engine::new(&config, Arc::clone(&set), models).unwrap()
    };
    let (with, without) = (engine(Some(fit.clone())), engine(None));
    let f = busy(&with);
    let contacts = ContactHistory::default();
    let rfm = Rfm {
        frequency: 4.0,
        recency: 50.0,
        t: 60.0,
        monetary: 35.0,
    };
    let p = |e: &Engine, rfm: Option<Rfm>| {
        let view = CustomerView {
            customer_id: "c1",
            features: &f,
            consents: ALL,
            rfm,
            known: true,
            contacts: &contacts,
        };
        let input = DecideInput {
            now: NOON,
            context: &Default::default(),
            limit: 50,
            explain: false,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = e.decide(&view, &input, "d".into(), &mut rng).unwrap();
        let mut p: Vec<(String, String, f64)> = d
            .candidates
            .iter()
            .map(|c| (c.action_id.to_string(), c.channel.to_string(), c.p_response))
            .collect();
        p.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert!(!p.is_empty());
        p
    };
    // the fit moves the score with the RFM, and no purchase reads as missing
    assert_ne!(p(&with, Some(rfm)), p(&with, None));
    assert_eq!(p(&with, None), p(&without, Some(rfm)));
    assert_eq!(p(&without, Some(rfm)), p(&without, None));
}
