//! Filter predicates: the event columns they may read, a static type check, and the two
//! evaluations of the SAME parsed [`Expr`]: translated to a DataFusion expression for the
//! batch builder, and evaluated on one event (without allocating) for the online state.
//!
//! The type check makes both evaluations agree with [`Expr::eval`]: comparisons only between
//! values of one type (text with text, numbers with numbers), `in` lists of literals of the
//! expression's type, no `null` literals outside `is [not] null`, and a boolean result. On
//! that subset our three-valued logic is SQL's. Division by zero is `null` in both paths
//! (translated to `CASE WHEN d = 0 THEN NULL ELSE n / d END`).

use std::collections::HashMap;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr as DfExpr, Operator, binary_expr, col, lit, when};

use crate::decide::expr::{BinOp, Expr, Value};

/// Static types of the expression language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Num,
    Str,
    Bool,
    /// The `null` literal.
    Null,
}

/// The event columns a filter or a feature's `field` may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventField {
    EventType,
    Channel,
    ActionId,
    /// The catalog kind (`offer`, `message`, `service`) of the event's `action_id`.
    ActionKind,
    DecisionId,
    ItemId,
    Value,
}

impl EventField {
    /// Column names, in the order of the variants.
    pub const NAMES: [&'static str; 7] = [
        "event_type",
        "channel",
        "action_id",
        "action_kind",
        "decision_id",
        "item_id",
        "value",
    ];
    const ALL: [EventField; 7] = [
        EventField::EventType,
        EventField::Channel,
        EventField::ActionId,
        EventField::ActionKind,
        EventField::DecisionId,
        EventField::ItemId,
        EventField::Value,
    ];

    /// The field called `name`.
    pub fn parse(name: &str) -> Option<EventField> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// Its column name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Its type.
    pub fn ty(self) -> Ty {
        if self == EventField::Value {
            Ty::Num
        } else {
            Ty::Str
        }
    }

    /// The DataFusion expression reading it (`action_kind` is a `CASE` over the catalog).
    pub(crate) fn df(self, kinds: &HashMap<String, &'static str>) -> DfExpr {
        if self != EventField::ActionKind {
            return col(self.name());
        }
        let mut arms: Vec<_> = kinds.iter().collect();
        arms.sort();
        let null = lit(ScalarValue::Utf8(None));
        let Some(((id0, k0), rest)) = arms.split_first() else {
            return null;
        };
        let mut case = when(col("action_id").eq(lit(id0.as_str())), lit(**k0));
        for (id, k) in rest {
            case = case.when(col("action_id").eq(lit(id.as_str())), lit(**k));
        }
        case.otherwise(null).expect("a CASE with arms")
    }
}

/// One event as the online state sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Event time, µs since the epoch (UTC).
    pub ts: i64,
    pub event_type: String,
    pub channel: Option<String>,
    pub action_id: Option<String>,
    pub decision_id: Option<String>,
    pub item_id: Option<String>,
    pub value: Option<f64>,
}

/// A borrowed runtime value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum V<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
}

impl Event {
    /// The value of `f` for this event.
    pub(crate) fn get<'a>(
        &'a self,
        f: EventField,
        kinds: &'a HashMap<String, &'static str>,
    ) -> V<'a> {
        let s = |o: &'a Option<String>| o.as_deref().map_or(V::Null, V::Str);
        match f {
            EventField::EventType => V::Str(&self.event_type),
            EventField::Channel => s(&self.channel),
            EventField::ActionId => s(&self.action_id),
            EventField::ActionKind => self
                .action_id
                .as_deref()
                .and_then(|a| kinds.get(a))
                .map_or(V::Null, |k| V::Str(k)),
            EventField::DecisionId => s(&self.decision_id),
            EventField::ItemId => s(&self.item_id),
            EventField::Value => self.value.map_or(V::Null, V::Num),
        }
    }

    /// The value of `f` as an expression [`Value`] (used by tests against [`Expr::eval`]).
    pub fn value_of(&self, name: &str, kinds: &HashMap<String, &'static str>) -> Value {
        match EventField::parse(name).map(|f| self.get(f, kinds)) {
            Some(V::Str(s)) => Value::Str(s.to_string()),
            Some(V::Num(x)) => Value::Num(x),
            Some(V::Bool(b)) => Value::Bool(b),
            _ => Value::Null,
        }
    }
}

fn first_pos(e: &Expr) -> usize {
    e.variables().first().map_or(0, |(_, p)| *p)
}

fn lit_ty(v: &Value) -> Ty {
    match v {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Bool,
        Value::Num(_) => Ty::Num,
        Value::Str(_) => Ty::Str,
    }
}

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::Num => "a number",
        Ty::Str => "text",
        Ty::Bool => "a boolean",
        Ty::Null => "null",
    }
}

/// The static type of `e`, with variables typed by `var` (`None`: unknown variable).
/// Errors give a byte position and a message.
pub fn type_of(e: &Expr, var: &dyn Fn(&str) -> Option<Ty>) -> Result<Ty, (usize, String)> {
    let expect = |sub: &Expr, want: Ty, what: &str| -> Result<(), (usize, String)> {
        let t = type_of(sub, var)?;
        if t == want {
            Ok(())
        } else {
            Err((
                first_pos(sub),
                format!("{what} needs {}, got {}", ty_name(want), ty_name(t)),
            ))
        }
    };
    Ok(match e {
        Expr::Lit(v) => lit_ty(v),
        Expr::Var(name, at) => {
            var(name).ok_or_else(|| (*at, format!("unknown column `{name}`")))?
        }
        Expr::Neg(x) => {
            expect(x, Ty::Num, "`-`")?;
            Ty::Num
        }
        Expr::Not(x) => {
            expect(x, Ty::Bool, "`not`")?;
            Ty::Bool
        }
        Expr::Bin(op, a, b) => match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                expect(a, Ty::Num, "arithmetic")?;
                expect(b, Ty::Num, "arithmetic")?;
                Ty::Num
            }
            BinOp::And | BinOp::Or => {
                expect(a, Ty::Bool, "`and`/`or`")?;
                expect(b, Ty::Bool, "`and`/`or`")?;
                Ty::Bool
            }
            _ => {
                let (ta, tb) = (type_of(a, var)?, type_of(b, var)?);
                if ta == Ty::Null || tb == Ty::Null {
                    return Err((
                        first_pos(e),
                        "comparing with `null` is always null; use `is null`".into(),
                    ));
                }
                if ta != tb {
                    return Err((
                        first_pos(e),
                        format!("cannot compare {} with {}", ty_name(ta), ty_name(tb)),
                    ));
                }
                if ta == Ty::Bool && !matches!(op, BinOp::Eq | BinOp::Ne) {
                    return Err((
                        first_pos(e),
                        "booleans compare only with `=` and `!=`".into(),
                    ));
                }
                Ty::Bool
            }
        },
        Expr::In { expr, list, .. } => {
            let t = type_of(expr, var)?;
            for v in list {
                if lit_ty(v) != t {
                    return Err((
                        first_pos(expr),
                        format!(
                            "`in` list holds {}, the expression is {}",
                            ty_name(lit_ty(v)),
                            ty_name(t)
                        ),
                    ));
                }
            }
            Ty::Bool
        }
        Expr::IsNull { expr, .. } => {
            type_of(expr, var)?;
            Ty::Bool
        }
    })
}

/// Checks a filter predicate: event columns only, boolean result.
pub fn check_filter(e: &Expr) -> Result<(), (usize, String)> {
    let var = |name: &str| EventField::parse(name).map(EventField::ty);
    let ty = type_of(e, &var).map_err(|(p, m)| {
        if m.starts_with("unknown column") {
            (
                p,
                format!("{m} (event columns: {})", EventField::NAMES.join(", ")),
            )
        } else {
            (p, m)
        }
    })?;
    if ty != Ty::Bool {
        return Err((
            first_pos(e),
            format!("a filter must be a condition, got {}", ty_name(ty)),
        ));
    }
    Ok(())
}

fn truth(v: V) -> Option<bool> {
    match v {
        V::Bool(b) => Some(b),
        V::Num(x) => Some(x != 0.0),
        _ => None,
    }
}

fn num(v: V) -> Option<f64> {
    match v {
        V::Num(x) => Some(x),
        V::Bool(b) => Some(f64::from(u8::from(b))),
        _ => None,
    }
}

fn lit_v(v: &Value) -> V<'_> {
    match v {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Num(x) => V::Num(*x),
        Value::Str(s) => V::Str(s),
    }
}

fn compare(op: BinOp, l: V, r: V) -> V<'static> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (l, r) {
        (V::Null, _) | (_, V::Null) => return V::Null,
        (V::Str(a), V::Str(b)) => Some(a.cmp(b)),
        (a, b) => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    crate::decide::expr::compare_result(op, ord).map_or(V::Null, V::Bool)
}

/// Evaluates `e` on one event with the semantics of [`Expr::eval`], borrowing strings.
pub(crate) fn eval<'a>(
    e: &'a Expr,
    ev: &'a Event,
    kinds: &'a HashMap<String, &'static str>,
) -> V<'a> {
    match e {
        Expr::Lit(v) => lit_v(v),
        Expr::Var(name, _) => EventField::parse(name).map_or(V::Null, |f| ev.get(f, kinds)),
        Expr::Neg(x) => num(eval(x, ev, kinds)).map_or(V::Null, |x| V::Num(-x)),
        Expr::Not(x) => truth(eval(x, ev, kinds)).map_or(V::Null, |b| V::Bool(!b)),
        Expr::Bin(BinOp::And, a, b) => {
            let l = truth(eval(a, ev, kinds));
            if l == Some(false) {
                return V::Bool(false);
            }
            match (l, truth(eval(b, ev, kinds))) {
                (_, Some(false)) => V::Bool(false),
                (Some(true), Some(true)) => V::Bool(true),
                _ => V::Null,
            }
        }
        Expr::Bin(BinOp::Or, a, b) => {
            let l = truth(eval(a, ev, kinds));
            if l == Some(true) {
                return V::Bool(true);
            }
            match (l, truth(eval(b, ev, kinds))) {
                (_, Some(true)) => V::Bool(true),
                (Some(false), Some(false)) => V::Bool(false),
                _ => V::Null,
            }
        }
        Expr::Bin(op @ (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div), a, b) => {
            match (num(eval(a, ev, kinds)), num(eval(b, ev, kinds))) {
                (Some(x), Some(y)) => {
                    let v = match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        _ => x / y,
                    };
                    if v.is_finite() { V::Num(v) } else { V::Null }
                }
                _ => V::Null,
            }
        }
        Expr::Bin(op, a, b) => compare(*op, eval(a, ev, kinds), eval(b, ev, kinds)),
        Expr::In {
            expr,
            list,
            negated,
        } => {
            let v = eval(expr, ev, kinds);
            if v == V::Null {
                return V::Null;
            }
            let hit = list
                .iter()
                .any(|item| compare(BinOp::Eq, v, lit_v(item)) == V::Bool(true));
            V::Bool(hit != *negated)
        }
        Expr::IsNull { expr, negated } => V::Bool((eval(expr, ev, kinds) == V::Null) != *negated),
    }
}

/// Whether the filter holds for the event (`WHERE` semantics: only `true` passes).
pub(crate) fn holds(e: &Expr, ev: &Event, kinds: &HashMap<String, &'static str>) -> bool {
    truth(eval(e, ev, kinds)) == Some(true)
}

/// The event types a top-level conjunct `event_type = 'x'` or `event_type in (…)` of `e`
/// admits (`None`: no such conjunct).
fn guard(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Bin(BinOp::And, a, b) => match (guard(a), guard(b)) {
            (Some(x), Some(y)) => Some(x.into_iter().filter(|t| y.contains(t)).collect()),
            (x, y) => x.or(y),
        },
        Expr::Bin(BinOp::Eq, a, b) => match (a.as_ref(), b.as_ref()) {
            (Expr::Var(n, _), Expr::Lit(Value::Str(t)))
            | (Expr::Lit(Value::Str(t)), Expr::Var(n, _))
                if n == "event_type" =>
            {
                Some(vec![t.clone()])
            }
            _ => None,
        },
        Expr::In {
            expr,
            list,
            negated: false,
        } if matches!(expr.as_ref(), Expr::Var(n, _) if n == "event_type") => Some(
            list.iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Per event type, the mask of filters that may hold; and the mask of unguarded filters.
/// Empty when there are more than 64 filters (then every filter is evaluated).
pub(crate) fn type_guards(filters: &[Expr]) -> (HashMap<String, u64>, u64) {
    let mut by_type: HashMap<String, u64> = HashMap::new();
    let mut unguarded = 0u64;
    if filters.len() > 64 {
        return (by_type, u64::MAX);
    }
    for (i, f) in filters.iter().enumerate() {
        match guard(f) {
            Some(types) => {
                for t in types {
                    *by_type.entry(t).or_default() |= 1 << i;
                }
            }
            None => unguarded |= 1 << i,
        }
    }
    (by_type, unguarded)
}

fn df_lit(v: &Value) -> DfExpr {
    match v {
        Value::Null => lit(ScalarValue::Null),
        Value::Bool(b) => lit(*b),
        Value::Num(x) => lit(*x),
        Value::Str(s) => lit(s.as_str()),
    }
}

/// Translates a type-checked filter into a DataFusion expression over the events table.
pub(crate) fn to_datafusion(e: &Expr, kinds: &HashMap<String, &'static str>) -> DfExpr {
    let go = |x: &Expr| to_datafusion(x, kinds);
    match e {
        Expr::Lit(v) => df_lit(v),
        Expr::Var(name, _) => {
            EventField::parse(name).map_or(lit(ScalarValue::Null), |f| f.df(kinds))
        }
        Expr::Neg(x) => DfExpr::Negative(Box::new(go(x))),
        Expr::Not(x) => datafusion::logical_expr::not(go(x)),
        Expr::Bin(op, a, b) => {
            let (l, r) = (go(a), go(b));
            let op = match op {
                BinOp::Add => Operator::Plus,
                BinOp::Sub => Operator::Minus,
                BinOp::Mul => Operator::Multiply,
                BinOp::Div => {
                    return when(r.clone().eq(lit(0.0)), lit(ScalarValue::Float64(None)))
                        .otherwise(binary_expr(l, Operator::Divide, r))
                        .expect("a CASE with an arm");
                }
                BinOp::Eq => Operator::Eq,
                BinOp::Ne => Operator::NotEq,
                BinOp::Lt => Operator::Lt,
                BinOp::Le => Operator::LtEq,
                BinOp::Gt => Operator::Gt,
                BinOp::Ge => Operator::GtEq,
                BinOp::And => Operator::And,
                BinOp::Or => Operator::Or,
            };
            binary_expr(l, op, r)
        }
        Expr::In {
            expr,
            list,
            negated,
        } => go(expr).in_list(list.iter().map(df_lit).collect(), *negated),
        Expr::IsNull { expr, negated } => {
            if *negated {
                go(expr).is_not_null()
            } else {
                go(expr).is_null()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds() -> HashMap<String, &'static str> {
        [("a1".to_string(), "offer"), ("a2".to_string(), "message")]
            .into_iter()
            .collect()
    }

    #[test]
    fn type_errors_have_positions() {
        for (src, needle) in [
            ("event_type = 3", "cannot compare"),
            ("chanel = 'web'", "unknown column `chanel`"),
            ("value + 1", "must be a condition"),
            ("channel in ('web', 2)", "`in` list"),
            ("value = null", "is null"),
        ] {
            let e = Expr::parse(src).unwrap();
            let (_, m) = check_filter(&e).unwrap_err();
            assert!(m.contains(needle), "{src}: {m}");
        }
        let e = Expr::parse("event_type = 'x' and chanel = 'web'").unwrap();
        assert_eq!(check_filter(&e).unwrap_err().0, 21);
    }

    fn arb_event() -> impl Strategy<Value = Event> {
        let s = |xs: &'static [&'static str]| {
            proptest::option::of(proptest::sample::select(xs.to_vec()).prop_map(String::from))
        };
        (
            proptest::sample::select(vec!["visit", "purchase", "x"]),
            s(&["web", "app", "email"]),
            s(&["a1", "a2", "a3"]),
            proptest::option::of(-5.0f64..50.0),
        )
            .prop_map(|(t, c, a, v)| Event {
                ts: 0,
                event_type: t.into(),
                channel: c,
                action_id: a,
                value: v,
                ..Default::default()
            })
    }

    proptest! {
        #[test]
        fn borrowed_eval_matches_expr_eval(ev in arb_event(), k in 0usize..8) {
            let srcs = [
                "event_type = 'purchase' and channel in ('web','app')",
                "not (channel = 'web') or value > 10",
                "value / (value - 5) >= 1 or channel is null",
                "action_kind = 'offer' and value * 2 - 1 < 30",
                "channel not in ('email') and not (value is null)",
                "-value <= -3 or action_id != 'a2'",
                "event_type >= 'visit' and (value is not null or action_kind is null)",
                "value = 0 or channel <> 'app'",
            ];
            let e = Expr::parse(srcs[k]).unwrap();
            check_filter(&e).unwrap();
            let kinds = kinds();
            let want = e.holds(&|n: &str| ev.value_of(n, &kinds));
            prop_assert_eq!(holds(&e, &ev, &kinds), want);
        }
    }
}
