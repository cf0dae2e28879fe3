//! Feature specs (`[[features]]` in `baton.toml`) and their validation into a compiled
//! [`FeatureSet`]: filters parsed once into the expression AST and type-checked against the
//! event columns, windows parsed, derived features ordered topologically, output columns
//! laid out. Every error names the feature and the bad part, under the key
//! `features[i].<field>`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::predicate::{self, EventField, Ty};
use crate::config::ActionSpec;
use crate::decide::expr::{Expr, Value};
use crate::error::{Error, Result};
use crate::schema::CONSENT_COLUMNS;

/// One feature as written in `baton.toml`. Which keys apply depends on `aggregation`:
///
/// | aggregation | keys |
/// |---|---|
/// | `count` | `filter`, `window`, optional `field` (then only events where it is not null) |
/// | `sum`, `avg`, `min`, `max`, `last` | `field` (numeric: `value`), `filter`, `window` |
/// | `distinct_count` | `field` (any event column), `filter`, `window` |
/// | `days_since_first`, `days_since_last` | `filter`, `window` |
/// | `ratio` | `numerator`, `denominator` (feature names) |
/// | `expr` | `expr` (an expression over other features) |
/// | `attribute` | `column` (`age_band`, `region`, `segment`), `encoding`, `categories` |
/// | `consent` | `column` (one of the `consent_*` columns) |
/// | `tenure_days` | nothing |
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Unique name: lower-case letters, digits and `_`, starting with a letter.
    pub name: String,
    /// See the table above.
    pub aggregation: String,
    /// The event column aggregated (`value`, `item_id`, `channel`, `action_id`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A predicate over event columns (`event_type`, `channel`, `action_id`, `action_kind`,
    /// `decision_id`, `item_id`, `value`). Default: every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// `<n>d` or `all` (default). See the module docs of [`crate::features`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `ratio`: the numerator feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerator: Option<String>,
    /// `ratio`: the denominator feature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<String>,
    /// `expr`: an expression over other features (numeric or boolean result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
    /// `attribute` / `consent`: the customers column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// `attribute`: `one_hot` (default; one Float64 column per category, named
    /// `<name>__<category>`) or `ordinal` (the category's index).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `attribute`: the categories, in order. Values outside the list encode as all-zero
    /// (one-hot) or null (ordinal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Event aggregations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Last,
    DistinctCount,
    DaysSinceFirst,
    DaysSinceLast,
}

/// Every accepted `aggregation` value.
pub const AGGREGATIONS: [&str; 14] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "last",
    "distinct_count",
    "days_since_first",
    "days_since_last",
    "ratio",
    "expr",
    "attribute",
    "consent",
    "tenure_days",
];

/// The profile attribute columns of the customers table.
pub const ATTRIBUTE_COLUMNS: [&str; 3] = ["age_band", "region", "segment"];

/// A feature window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Every event before the as-of time.
    All,
    /// `W` days: events with `ts` in `[day_start(T) − W days, T)`.
    Days(u32),
}

impl Window {
    /// Parses `7d`, `30d`, `all`.
    pub fn parse(s: &str) -> std::result::Result<Window, String> {
        if s == "all" {
            return Ok(Window::All);
        }
        let n = s
            .strip_suffix('d')
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| {
                format!("malformed window `{s}`: expected `<days>d` (e.g. `7d`, `90d`) or `all`")
            })?;
        if n == 0 || n > 36_500 {
            return Err(format!("window `{s}` must be between 1d and 36500d"));
        }
        Ok(Window::Days(n))
    }

    /// The first day (days since the epoch, UTC) a window at `as_of_day` covers.
    pub fn start_day(self, as_of_day: i64) -> i64 {
        match self {
            Window::All => i64::MIN / 4,
            Window::Days(w) => as_of_day - i64::from(w),
        }
    }
}

/// A compiled feature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Def {
    Agg {
        agg: Agg,
        field: Option<EventField>,
        /// Index into [`FeatureSet::filters`].
        filter: Option<usize>,
        window: Window,
    },
    Ratio {
        num: usize,
        den: usize,
    },
    Expr {
        expr: Expr,
        boolean: bool,
    },
    Attribute {
        attr: usize,
        one_hot: bool,
        categories: Vec<String>,
    },
    Consent {
        idx: usize,
    },
    Tenure,
}

/// A validated, compiled list of features: the one definition both the batch builder and
/// the online state compute.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    pub(crate) specs: Vec<FeatureSpec>,
    pub(crate) defs: Vec<Def>,
    /// Distinct filter predicates (parsed once), shared by features with the same text.
    pub(crate) filters: Vec<Expr>,
    /// Filters (as a bit mask, when there are at most 64) that can hold for an event of a
    /// given type; filters without an `event_type` guard are in `unguarded`. Derived from
    /// the AST: a top-level conjunct `event_type = 'x'` / `event_type in (…)` is false for
    /// every other type (event_type is never null), so the filter cannot hold.
    pub(crate) by_type: HashMap<String, u64>,
    pub(crate) unguarded: u64,
    pub(crate) columns: Vec<String>,
    /// First output column of each feature.
    pub(crate) offsets: Vec<usize>,
    /// Derived features (ratio, expr) in dependency order.
    pub(crate) derived_order: Vec<usize>,
    pub(crate) by_name: HashMap<String, usize>,
    /// action id → kind, from the catalog (the `action_kind` event column).
    pub(crate) action_kinds: HashMap<String, &'static str>,
}

fn fail(i: usize, spec: &FeatureSpec, field: &str, message: impl std::fmt::Display) -> Error {
    Error::config(
        format!("features[{i}].{field}"),
        format!("feature `{}`: {message}", spec.name),
    )
}

fn expr_error(i: usize, spec: &FeatureSpec, field: &str, src: &str, e: Error) -> Error {
    match e {
        Error::Expression {
            position, message, ..
        } => fail(
            i,
            spec,
            field,
            format!("{message} at position {position} in `{src}`"),
        ),
        other => other,
    }
}

fn is_ident(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

impl FeatureSet {
    /// Validates and compiles `specs`; `actions` gives the `action_kind` of each action id.
    pub fn compile(specs: &[FeatureSpec], actions: &[ActionSpec]) -> Result<FeatureSet> {
        let mut by_name = HashMap::new();
        for (i, s) in specs.iter().enumerate() {
            if !is_ident(&s.name) {
                return Err(fail(
                    i,
                    s,
                    "name",
                    "names are lower-case letters, digits and `_`, starting with a letter",
                ));
            }
            if by_name.insert(s.name.clone(), i).is_some() {
                return Err(fail(i, s, "name", "duplicate feature name"));
            }
        }
        let mut filters: Vec<Expr> = Vec::new();
        let mut filter_src: HashMap<String, usize> = HashMap::new();
        let mut defs = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            defs.push(compile_one(i, s, &by_name, &mut filters, &mut filter_src)?);
        }
        // Types of features for expr checks, then expr features (which may depend on
        // each other: iterate to a fixed point, cycles are caught below).
        let ty_of = |defs: &[Def], j: usize| match &defs[j] {
            Def::Attribute { .. } => Ty::Str,
            Def::Consent { .. } => Ty::Bool,
            Def::Expr { boolean: true, .. } => Ty::Bool,
            _ => Ty::Num,
        };
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        for i in 0..specs.len() {
            match &defs[i] {
                Def::Ratio { num, den } => deps[i] = vec![*num, *den],
                Def::Expr { expr, .. } => {
                    deps[i] = expr.variables().iter().map(|(v, _)| by_name[*v]).collect();
                }
                _ => {}
            }
        }
        let derived_order = topo_order(specs, &deps)?;
        for &i in &derived_order {
            let s = &specs[i];
            match &defs[i] {
                Def::Expr { expr, .. } => {
                    let src = s.expr.as_deref().unwrap_or_default();
                    let t = predicate::type_of(expr, &|v| by_name.get(v).map(|&j| ty_of(&defs, j)))
                        .map_err(|(pos, m)| {
                            fail(i, s, "expr", format!("{m} at position {pos} in `{src}`"))
                        })?;
                    if t == Ty::Str {
                        return Err(fail(
                            i,
                            s,
                            "expr",
                            "the result must be a number or a boolean, not a string",
                        ));
                    }
                    if let Def::Expr { boolean, .. } = &mut defs[i] {
                        *boolean = t == Ty::Bool;
                    }
                }
                Def::Ratio { num, den } => {
                    for (j, key) in [(*num, "numerator"), (*den, "denominator")] {
                        if ty_of(&defs, j) != Ty::Num {
                            return Err(fail(
                                i,
                                s,
                                key,
                                format!("`{}` is not numeric", specs[j].name),
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut columns = Vec::new();
        let mut offsets = Vec::with_capacity(specs.len());
        for (s, d) in specs.iter().zip(&defs) {
            offsets.push(columns.len());
            match d {
                Def::Attribute {
                    one_hot: true,
                    categories,
                    ..
                } => columns.extend(categories.iter().map(|c| format!("{}__{c}", s.name))),
                _ => columns.push(s.name.clone()),
            }
        }
        let mut seen = std::collections::HashSet::new();
        for c in &columns {
            if !seen.insert(c.as_str()) || c == "customer_id" || c == "as_of" {
                let i = specs
                    .iter()
                    .position(|s| c.starts_with(&s.name))
                    .unwrap_or(0);
                return Err(fail(
                    i,
                    &specs[i],
                    "name",
                    format!("output column `{c}` is not unique"),
                ));
            }
        }
        let (by_type, unguarded) = predicate::type_guards(&filters);
        let action_kinds = actions
            .iter()
            .map(|a| (a.id.clone(), a.kind.as_str()))
            .collect();
        Ok(FeatureSet {
            specs: specs.to_vec(),
            defs,
            filters,
            by_type,
            unguarded,
            columns,
            offsets,
            derived_order,
            by_name,
            action_kinds,
        })
    }

    /// The specs, in order.
    pub fn specs(&self) -> &[FeatureSpec] {
        &self.specs
    }

    /// Output column names, in order (one-hot attributes expand to one column per category).
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Index of the feature called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The value of feature `name` in a feature vector, decoded for expressions:
    /// attributes as strings, consents and boolean `expr` features as booleans, the rest as
    /// numbers; `Null` for missing values and unknown names.
    pub fn value(&self, row: &[Option<f64>], name: &str) -> Value {
        match self.index(name) {
            Some(i) => self.value_of(row, i),
            None => Value::Null,
        }
    }

    pub(crate) fn value_of(&self, row: &[Option<f64>], i: usize) -> Value {
        let at = self.offsets[i];
        match &self.defs[i] {
            Def::Attribute {
                one_hot: true,
                categories,
                ..
            } => categories
                .iter()
                .enumerate()
                .find(|(k, _)| row[at + k] == Some(1.0))
                .map_or(Value::Null, |(_, c)| Value::Str(c.clone())),
            Def::Attribute { categories, .. } => row[at]
                .and_then(|x| categories.get(x as usize))
                .map_or(Value::Null, |c| Value::Str(c.clone())),
            Def::Consent { .. } | Def::Expr { boolean: true, .. } => {
                row[at].map_or(Value::Null, |x| Value::Bool(x != 0.0))
            }
            _ => row[at].map_or(Value::Null, Value::Num),
        }
    }

    /// Whether output column `c` holds a count (compared exactly in parity tests).
    pub fn is_count_column(&self, c: usize) -> bool {
        let i = self.offsets.partition_point(|&o| o <= c) - 1;
        matches!(
            self.defs[i],
            Def::Agg {
                agg: Agg::Count | Agg::DistinctCount | Agg::DaysSinceFirst | Agg::DaysSinceLast,
                ..
            } | Def::Tenure
                | Def::Consent { .. }
                | Def::Attribute { .. }
        )
    }
}

fn compile_one(
    i: usize,
    s: &FeatureSpec,
    by_name: &HashMap<String, usize>,
    filters: &mut Vec<Expr>,
    filter_src: &mut HashMap<String, usize>,
) -> Result<Def> {
    let agg = match s.aggregation.as_str() {
        "count" => Some(Agg::Count),
        "sum" => Some(Agg::Sum),
        "avg" => Some(Agg::Avg),
        "min" => Some(Agg::Min),
        "max" => Some(Agg::Max),
        "last" => Some(Agg::Last),
        "distinct_count" => Some(Agg::DistinctCount),
        "days_since_first" => Some(Agg::DaysSinceFirst),
        "days_since_last" => Some(Agg::DaysSinceLast),
        "ratio" | "expr" | "attribute" | "consent" | "tenure_days" => None,
        other => {
            return Err(fail(
                i,
                s,
                "aggregation",
                format!(
                    "unknown aggregation `{other}` (known: {})",
                    AGGREGATIONS.join(", ")
                ),
            ));
        }
    };
    let forbid = |key: &str, present: bool| -> Result<()> {
        if present {
            Err(fail(
                i,
                s,
                key,
                format!("`{key}` does not apply to aggregation `{}`", s.aggregation),
            ))
        } else {
            Ok(())
        }
    };
    let is_agg = agg.is_some();
    forbid("filter", !is_agg && s.filter.is_some())?;
    forbid("window", !is_agg && s.window.is_some())?;
    forbid("field", !is_agg && s.field.is_some())?;
    let is_ratio = s.aggregation == "ratio";
    forbid("numerator", !is_ratio && s.numerator.is_some())?;
    forbid("denominator", !is_ratio && s.denominator.is_some())?;
    forbid("expr", s.aggregation != "expr" && s.expr.is_some())?;
    let profile = matches!(s.aggregation.as_str(), "attribute" | "consent");
    forbid("column", !profile && s.column.is_some())?;
    forbid(
        "encoding",
        s.aggregation != "attribute" && s.encoding.is_some(),
    )?;
    forbid(
        "categories",
        s.aggregation != "attribute" && !s.categories.is_empty(),
    )?;
    if let Some(agg) = agg {
        let window = match &s.window {
            None => Window::All,
            Some(w) => Window::parse(w).map_err(|m| fail(i, s, "window", m))?,
        };
        let field = match &s.field {
            None => None,
            Some(f) => Some(EventField::parse(f).ok_or_else(|| {
                fail(
                    i,
                    s,
                    "field",
                    format!(
                        "unknown column `{f}` (event columns: {})",
                        EventField::NAMES.join(", ")
                    ),
                )
            })?),
        };
        match agg {
            Agg::Sum | Agg::Avg | Agg::Min | Agg::Max | Agg::Last => match field {
                None => {
                    return Err(fail(
                        i,
                        s,
                        "field",
                        format!("`{}` needs a numeric `field` (e.g. `value`)", s.aggregation),
                    ));
                }
                Some(f) if f.ty() != Ty::Num => {
                    return Err(fail(
                        i,
                        s,
                        "field",
                        format!(
                            "`{}` needs a numeric field; `{}` is text",
                            s.aggregation,
                            f.name()
                        ),
                    ));
                }
                _ => {}
            },
            Agg::DistinctCount if field.is_none() => {
                return Err(fail(i, s, "field", "`distinct_count` needs a `field`"));
            }
            _ => {}
        }
        let filter = match &s.filter {
            None => None,
            Some(src) => {
                let idx = match filter_src.get(src) {
                    Some(&k) => k,
                    None => {
                        let e = Expr::parse(src).map_err(|e| expr_error(i, s, "filter", src, e))?;
                        predicate::check_filter(&e).map_err(|(pos, m)| {
                            fail(i, s, "filter", format!("{m} at position {pos} in `{src}`"))
                        })?;
                        filters.push(e);
                        filter_src.insert(src.clone(), filters.len() - 1);
                        filters.len() - 1
                    }
                };
                Some(idx)
            }
        };
        return Ok(Def::Agg {
            agg,
            field,
            filter,
            window,
        });
    }
    let feature = |key: &str, v: &Option<String>| -> Result<usize> {
        let name = v
            .as_deref()
            .ok_or_else(|| fail(i, s, key, format!("`{}` needs `{key}`", s.aggregation)))?;
        by_name
            .get(name)
            .copied()
            .ok_or_else(|| fail(i, s, key, format!("unknown feature `{name}`")))
    };
    Ok(match s.aggregation.as_str() {
        "ratio" => Def::Ratio {
            num: feature("numerator", &s.numerator)?,
            den: feature("denominator", &s.denominator)?,
        },
        "expr" => {
            let src = s
                .expr
                .as_deref()
                .ok_or_else(|| fail(i, s, "expr", "`expr` features need an `expr`"))?;
            let e = Expr::parse(src).map_err(|e| expr_error(i, s, "expr", src, e))?;
            e.check_variables(|v| by_name.contains_key(v))
                .map_err(|e| expr_error(i, s, "expr", src, e))?;
            Def::Expr {
                expr: e,
                boolean: false,
            }
        }
        "attribute" => {
            let col = s.column.as_deref().unwrap_or(&s.name);
            let attr = ATTRIBUTE_COLUMNS
                .iter()
                .position(|c| *c == col)
                .ok_or_else(|| {
                    fail(
                        i,
                        s,
                        "column",
                        format!(
                            "unknown column `{col}` (attribute columns: {})",
                            ATTRIBUTE_COLUMNS.join(", ")
                        ),
                    )
                })?;
            let one_hot = match s.encoding.as_deref().unwrap_or("one_hot") {
                "one_hot" => true,
                "ordinal" => false,
                other => {
                    return Err(fail(
                        i,
                        s,
                        "encoding",
                        format!("unknown encoding `{other}` (one_hot or ordinal)"),
                    ));
                }
            };
            if s.categories.is_empty() {
                return Err(fail(
                    i,
                    s,
                    "categories",
                    "an attribute needs its list of categories",
                ));
            }
            Def::Attribute {
                attr,
                one_hot,
                categories: s.categories.clone(),
            }
        }
        "consent" => {
            let col = s.column.as_deref().unwrap_or(&s.name);
            let idx = CONSENT_COLUMNS
                .iter()
                .position(|(c, _)| *c == col)
                .ok_or_else(|| {
                    let known: Vec<_> = CONSENT_COLUMNS.iter().map(|(c, _)| *c).collect();
                    fail(
                        i,
                        s,
                        "column",
                        format!(
                            "unknown column `{col}` (consent columns: {})",
                            known.join(", ")
                        ),
                    )
                })?;
            Def::Consent { idx }
        }
        _ => Def::Tenure,
    })
}

/// Orders the derived features so each comes after its dependencies; fails on a cycle.
fn topo_order(specs: &[FeatureSpec], deps: &[Vec<usize>]) -> Result<Vec<usize>> {
    // 0 = unvisited, 1 = on the stack, 2 = done.
    fn visit(
        i: usize,
        specs: &[FeatureSpec],
        deps: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> std::result::Result<(), Vec<usize>> {
        match state[i] {
            2 => return Ok(()),
            1 => {
                let from = stack.iter().position(|&j| j == i).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(i);
                return Err(cycle);
            }
            _ => {}
        }
        state[i] = 1;
        stack.push(i);
        for &d in &deps[i] {
            visit(d, specs, deps, state, stack, out)?;
        }
        stack.pop();
        state[i] = 2;
        if matches!(specs[i].aggregation.as_str(), "ratio" | "expr") {
            out.push(i);
        }
        Ok(())
    }
    let mut state = vec![0u8; specs.len()];
    let mut out = Vec::new();
    for i in 0..specs.len() {
        let mut stack = Vec::new();
        if let Err(cycle) = visit(i, specs, deps, &mut state, &mut stack, &mut out) {
            let names: Vec<_> = cycle.iter().map(|&j| specs[j].name.as_str()).collect();
            let first = cycle[0];
            let key = if specs[first].aggregation == "ratio" {
                "numerator"
            } else {
                "expr"
            };
            return Err(fail(
                first,
                &specs[first],
                key,
                format!("cycle between features: {}", names.join(" -> ")),
            ));
        }
    }
    Ok(out)
}
