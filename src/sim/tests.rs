//! Unit tests of the simulator's model: oracle probabilities, hazard, continuation and a
//! tiny end-to-end run.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::customer::ch;
use super::*;

fn params(customers: u64, days: u32) -> SimParams {
    SimParams {
        customers,
        days,
        seed: 5,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        action_rate: 0.1,
    }
}

fn setup() -> (Oracle, Customer, State) {
    let o = Oracle::new(&Config::default(), &params(10, 90)).unwrap();
    let mut c = o.customer(3);
    c.created_day = -400;
    c.traits.annoyed_by = [false; 3];
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let s = State::initial(&c, o.actions.len(), &mut rng);
    (o, c, s)
}

fn action(o: &Oracle, id: &str) -> usize {
    o.action_ids().position(|a| a == id).unwrap()
}

#[test]
fn responses_are_nested_probabilities() {
    let (o, c, s) = setup();
    for a in 0..o.actions.len() {
        for &chn in &o.actions[a].channels {
            let p = o.response(&c, &s, a, chn as usize, 10);
            assert!(
                0.0 < p.p_convert
                    && p.p_convert <= p.p_click
                    && p.p_click <= p.p_open
                    && p.p_open < 1.0,
                "{p:?}"
            );
        }
    }
}

#[test]
fn fresh_abandoned_cart_boosts_the_reminder_and_annoyance_lowers_it() {
    let (o, mut c, mut s) = setup();
    let a = action(&o, "cart_reminder");
    s.last_abandon_day = Some(2);
    let stale = o.response(&c, &s, a, ch::EMAIL as usize, 8).p_click;
    let fresh = o.response(&c, &s, a, ch::EMAIL as usize, 2).p_click;
    assert!(fresh > 1.5 * stale, "{fresh} vs {stale}");
    c.traits.annoyed_by[1] = true;
    let annoyed = o.response(&c, &s, a, ch::EMAIL as usize, 2).p_click;
    assert!(annoyed < 0.5 * fresh, "{annoyed} vs {fresh}");
}

#[test]
fn irritation_raises_and_retention_lowers_the_hazard() {
    let (o, c, mut s) = setup();
    let h0 = o.churn_hazard(&c, &s);
    s.irritation = 1.0;
    let h1 = o.churn_hazard(&c, &s);
    s.irritation = 0.0;
    s.retention_boost = 1.0;
    let h2 = o.churn_hazard(&c, &s);
    assert!(h1 > 2.0 * h0 && h2 < 0.6 * h0, "{h0} {h1} {h2}");
}

#[test]
fn horizon_leaves_the_state_alone_and_is_a_probability() {
    let (o, c, s) = setup();
    let before = format!("{s:?}");
    let h = o.horizon(&c, &s, 30, 30);
    assert_eq!(before, format!("{s:?}"));
    assert!(
        (0.0..=1.0).contains(&h.p_churn) && (0.0..=1.0).contains(&h.p_no_purchase),
        "{h:?}"
    );
    assert_eq!(h, o.horizon(&c, &s, 30, 30), "deterministic");
    // a 30-day horizon with a hazard at least the base one
    assert!(h.p_churn > 1.0 - (1.0 - c.traits.base_hazard * 0.2).powi(30));
}

#[test]
fn customers_are_regenerated_exactly() {
    let o = Oracle::new(&Config::default(), &params(10, 90)).unwrap();
    assert_eq!(o.customer(7), o.customer(7));
    assert_ne!(o.customer(7).traits, o.customer(8).traits);
    assert_ne!(mix(&[1, 2]), mix(&[2, 1]));
}

#[test]
fn unknown_variable_names_the_action() {
    let mut config = Config::default();
    config.actions[2].eligibility = "tenure_days < 30 and loyalty_tier = 'gold'".into();
    let err = Oracle::new(&config, &params(10, 90))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("welcome_discount") && err.contains("loyalty_tier"),
        "{err}"
    );
}

#[test]
fn tiny_run_writes_every_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::create(tmp.path()).unwrap();
    let s = simulate(&Config::default(), &params(300, 60), &dir, &|_| {}).unwrap();
    assert_eq!(s.customers, 300);
    assert!(s.events > 300 * 10 && s.decisions > 0, "{s:?}");
    for p in [
        dir.customers_path(),
        dir.ground_truth_path(),
        dir.root().join(GROUND_TRUTH_DECISIONS_FILE),
    ] {
        assert!(p.exists(), "{}", p.display());
    }
    assert_eq!(DataDir::parts(&dir.events_dir()).unwrap().len(), 1);
    let again = simulate(&Config::default(), &params(300, 60), &dir, &|_| {});
    assert!(again.is_err(), "refuses a non-empty directory");
}
