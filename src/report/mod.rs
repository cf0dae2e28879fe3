//! `baton report`: one standalone HTML page (inline SVG, no scripts, no server) over a data
//! directory and its models: the dataset summary, events by type and channel and by week,
//! the journey funnel with drop-off, response rates, the model comparison per task with
//! links to each version's own report, and the policy table, OPE check and batch-scoring
//! summary when the data directory's `reports/` holds them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use plotters::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::features::Task;
use crate::models::Registry;
use crate::models::report::{bar_chart, chart_err, escape, svg};
use crate::store::DataDir;
use crate::store::summary::{DataSummary, summarize};

/// The journey funnel's steps: event types in order.
pub const FUNNEL: [&str; 4] = ["visit", "product_view", "add_to_cart", "purchase"];

/// One funnel step: customers who had the step's event, having had every earlier one.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub event_type: String,
    pub customers: i64,
}

/// Counts the funnel: customers with a visit; of them, those with a product view; … .
pub async fn funnel(dir: &DataDir) -> Result<Vec<Step>> {
    let ctx = dir.session().await?;
    let mut steps = Vec::new();
    let cols: Vec<String> = FUNNEL
        .iter()
        .map(|t| format!("max(CASE WHEN event_type = '{t}' THEN 1 ELSE 0 END) AS has_{t}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM events GROUP BY customer_id",
        cols.join(", ")
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut counts = [0i64; FUNNEL.len()];
    for b in &batches {
        let cs: Vec<_> = (0..FUNNEL.len())
            .map(|k| arrow::compute::cast(b.column(k), &DataType::Int64))
            .collect::<std::result::Result<_, _>>()?;
        for r in 0..b.num_rows() {
            for (k, c) in cs.iter().enumerate() {
                let c = c.as_primitive::<Int64Type>();
                if c.is_null(r) || c.value(r) == 0 {
                    break;
                }
                counts[k] += 1;
            }
        }
    }
    for (k, t) in FUNNEL.iter().enumerate() {
        steps.push(Step {
            event_type: t.to_string(),
            customers: counts[k],
        });
    }
    Ok(steps)
}

/// Events per ISO week and channel: (week start `YYYY-MM-DD`, channel, count).
async fn weekly(dir: &DataDir) -> Result<Vec<(String, String, i64)>> {
    let ctx = dir.session().await?;
    let sql = "SELECT to_char(date_trunc('week', ts), '%Y-%m-%d') AS w, \
               coalesce(channel, '(none)') AS c, count(*) AS n \
               FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let w = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
        let c = arrow::compute::cast(b.column(1), &DataType::Utf8)?;
        let n = arrow::compute::cast(b.column(2), &DataType::Int64)?;
        let (w, c, n) = (
            w.as_string::<i32>(),
            c.as_string::<i32>(),
            n.as_primitive::<Int64Type>(),
        );
        for r in 0..b.num_rows() {
            out.push((w.value(r).to_string(), c.value(r).to_string(), n.value(r)));
        }
    }
    Ok(out)
}

const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn weekly_chart(rows: &[(String, String, i64)]) -> Result<String> {
    let mut weeks: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    weeks.dedup();
    let mut channels: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    channels.sort_unstable();
    channels.dedup();
    let max = rows.iter().map(|r| r.2).max().unwrap_or(1).max(1) as f64 * 1.1;
    let n = weeks.len().max(2);
    svg(760, 380, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Events per week by channel", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..(n - 1) as f64, 0.0..max)
            .map_err(chart_err)?;
        let labels: Vec<String> = weeks.iter().map(|w| w.to_string()).collect();
        chart
            .configure_mesh()
            .x_labels(8.min(n))
            .x_label_formatter(&|x| labels.get(x.round() as usize).cloned().unwrap_or_default())
            .x_desc("week starting")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("events")
            .draw()
            .map_err(chart_err)?;
        for (k, ch) in channels.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.1 == *ch)
                .filter_map(|r| {
                    weeks
                        .iter()
                        .position(|w| *w == r.0)
                        .map(|i| (i as f64, r.2 as f64))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(chart_err)?
                .label(ch.to_string())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::MiddleRight)
            .draw()
            .map_err(chart_err)?;
        Ok(())
    })
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

/// A path to `target` usable as a link from a page in `from_dir`: relative when both lie
/// under the same ancestor, else a `file://` URL.
fn link(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from_dir), abs(target));
    let common = from
        .components()
        .zip(to.components())
        .take_while(|(a, b)| a == b)
        .count();
    if common <= 1 {
        return format!("file://{}", to.display());
    }
    let mut rel = PathBuf::new();
    for _ in from.components().skip(common) {
        rel.push("..");
    }
    for c in to.components().skip(common) {
        rel.push(c);
    }
    rel.to_string_lossy().replace('\\', "/")
}

/// What the page is drawn from.
pub struct Inputs<'a> {
    pub data: &'a DataDir,
    pub models: &'a Path,
    /// Where the page will be written (links are relative to it).
    pub out: &'a Path,
}

/// Renders the page.
pub async fn render(inputs: &Inputs<'_>) -> Result<String> {
    let data = inputs.data;
    let s: DataSummary = summarize(data).await?;
    let steps = funnel(data).await?;
    let weeks = weekly(data).await?;
    let out_dir = inputs
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Baton report: {root}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1500px;color:#222}}\
         table{{border-collapse:collapse;margin:0.6em 0 1.2em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th{{background:#f4f4f4}}td:first-child,th:first-child{{text-align:left}}\
         .charts{{display:flex;flex-wrap:wrap;gap:12px}}h2{{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}}\
         .note{{color:#666;font-size:90%}}</style></head><body>\
         <h1>Baton report</h1><p class=\"note\">Data directory <code>{root}</code>, models <code>{models}</code>; \
         generated {now} by <code>baton report</code>.</p>",
        root = escape(&data.root().display().to_string()),
        models = escape(&inputs.models.display().to_string()),
        now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    // dataset
    h.push_str("<h2 id=\"dataset\">Dataset</h2><table>");
    let _ = write!(
        h,
        "<tr><td>customers</td><td>{}</td></tr><tr><td>events</td><td>{}</td></tr>\
         <tr><td>first event</td><td>{}</td></tr><tr><td>last event</td><td>{}</td></tr>\
         <tr><td>decisions logged</td><td>{}</td></tr>\
         <tr><td>lapsed (purchased before the last 30 days, not within)</td><td>{}</td></tr>",
        s.customers,
        s.events,
        escape(s.first_event.as_deref().unwrap_or("–")),
        escape(s.last_event.as_deref().unwrap_or("–")),
        s.decisions,
        fmt(s.lapsed_30d.map(|x| 100.0 * x), 1) + "%",
    );
    if let Some((real, oracle)) = s.churn_30d {
        let _ = write!(
            h,
            "<tr><td>30-day churn (simulator truth) / oracle mean</td><td>{:.1}% / {:.1}%</td></tr>",
            100.0 * real,
            100.0 * oracle
        );
    }
    h.push_str("</table><div class=\"charts\">");
    let labels = |v: &[(String, i64)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    let values = |v: &[(String, i64)]| v.iter().map(|x| x.1 as f64).collect::<Vec<_>>();
    if !s.by_type.is_empty() {
        h.push_str(&bar_chart(
            "Events by type",
            &labels(&s.by_type),
            &values(&s.by_type),
            "events",
        )?);
    }
    if !s.by_channel.is_empty() {
        h.push_str(&bar_chart(
            "Events by channel",
            &labels(&s.by_channel),
            &values(&s.by_channel),
            "events",
        )?);
    }
    if !weeks.is_empty() {
        h.push_str(&weekly_chart(&weeks)?);
    }
    h.push_str("</div>");
    // funnel
    h.push_str("<h2 id=\"funnel\">Journey funnel</h2><p class=\"note\">Customers who had each step, having had every earlier one (at any time in the data).</p><div class=\"charts\"><table><tr><th>step</th><th>customers</th><th>of previous</th><th>drop-off</th></tr>");
    for (k, st) in steps.iter().enumerate() {
        let prev = if k == 0 {
            None
        } else {
            Some(steps[k - 1].customers)
        };
        let of_prev = prev
            .filter(|p| *p > 0)
            .map(|p| 100.0 * st.customers as f64 / p as f64);
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            st.event_type,
            st.customers,
            of_prev.map_or("–".into(), |x| format!("{x:.1}%")),
            of_prev.map_or("–".into(), |x| format!("{:.1}%", 100.0 - x)),
        );
    }
    h.push_str("</table>");
    if steps.iter().any(|s| s.customers > 0) {
        h.push_str(&bar_chart(
            "Funnel",
            &steps
                .iter()
                .map(|s| s.event_type.clone())
                .collect::<Vec<_>>(),
            &steps.iter().map(|s| s.customers as f64).collect::<Vec<_>>(),
            "customers",
        )?);
    }
    h.push_str("</div>");
    // responses
    if !s.responses.is_empty() {
        h.push_str("<h2 id=\"responses\">Responses by action and channel</h2><table><tr><th>action</th><th>channel</th><th>delivered</th><th>opened</th><th>clicked</th><th>converted</th><th>click rate</th></tr>");
        for r in &s.responses {
            let rate = (r.delivered > 0).then(|| 100.0 * r.clicked as f64 / r.delivered as f64);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&r.action_id),
                escape(&r.channel),
                r.delivered,
                r.opened,
                r.clicked,
                r.converted,
                rate.map_or("–".into(), |x| format!("{x:.2}%"))
            );
        }
        h.push_str("</table>");
    }
    // models
    h.push_str("<h2 id=\"models\">Models</h2>");
    let registry = Registry::open(inputs.models);
    let mut any = false;
    for task in [Task::Churn, Task::Response, Task::Channel] {
        let versions = match registry.versions(task) {
            Ok(v) => v,
            Err(e) => {
                let _ = write!(
                    h,
                    "<p>{task:?}: the registry could not be read: {}</p>",
                    escape(&e.to_string())
                );
                continue;
            }
        };
        if versions.is_empty() {
            continue;
        }
        any = true;
        let _ = write!(
            h,
            "<h3>{task:?}</h3><table><tr><th>version</th><th>aliases</th><th>learner</th><th>AUC</th><th>oracle AUC</th><th>oracle ratio</th><th>log loss</th><th>Brier</th><th>ECE</th><th>top-1</th><th>fit s</th><th>report</th></tr>"
        );
        for v in &versions {
            let e = &v.evaluation;
            let (ll, brier, ece) = match (&e.binary, &e.multiclass) {
                (Some(b), _) => (Some(b.log_loss), Some(b.brier), Some(b.ece)),
                (None, Some(m)) => (Some(m.log_loss), Some(m.brier), None),
                _ => (None, None, None),
            };
            let report = registry.version_dir(task, &v.version).join("report.html");
            let cell = if report.is_file() {
                format!("<a href=\"{}\">report</a>", escape(&link(out_dir, &report)))
            } else {
                "–".into()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{cell}</td></tr>",
                escape(&v.version),
                escape(&v.aliases.join(", ")),
                e.learner.as_str(),
                fmt(e.auc, 4),
                fmt(e.oracle_auc, 4),
                fmt(e.oracle_ratio, 3),
                fmt(ll, 4),
                fmt(brier, 4),
                fmt(ece, 4),
                fmt(e.multiclass.as_ref().map(|m| m.top1_accuracy), 3),
                e.fit_seconds,
            );
        }
        h.push_str("</table>");
    }
    if !any {
        let _ = write!(
            h,
            "<p>No models in <code>{}</code> yet: <code>baton train --task churn --learner gbdt --promote champion</code>.</p>",
            escape(&inputs.models.display().to_string())
        );
    }
    // policies
    let reports = data.root().join("reports");
    h.push_str("<h2 id=\"policies\">Policies</h2>");
    match read_json(&reports.join("policies.json")) {
        Some(serde_json::Value::Array(rows)) if !rows.is_empty() => {
            h.push_str("<p class=\"note\">Closed loop against the simulator's hidden truth (<code>baton simulate --policy all</code>). <code>oracle</code> knows the true response probabilities; <code>bayes</code> knows all but each customer's hidden response traits, which it learns from their responses: the most any model trained on the events could know. The <code>-limited</code> ones keep the engine's contact policy. Recovery is (value − random) / (oracle − random); within limits, against oracle-limited.</p><div class=\"charts\"><table><tr><th>policy</th><th>value / customer</th><th>response rate</th><th>churn rate</th><th>contacts / customer</th><th>recovery</th><th>within limits</th></tr>");
            // recovery of the oracle's gain over random, when the rows parse as policy rows
            let parsed: Vec<crate::ope::PolicyRow> =
                serde_json::from_value(serde_json::Value::Array(rows.clone())).unwrap_or_default();
            let pct = |x: Option<f64>| x.map_or("–".to_string(), |x| format!("{:.0}%", 100.0 * x));
            let mut names = Vec::new();
            let mut vals = Vec::new();
            for r in &rows {
                let name = r["policy"].as_str().unwrap_or("?").to_string();
                let v = r["value_per_customer"].as_f64();
                let (rec, within) = match name.as_str() {
                    "random" | "oracle" => ("–".to_string(), "–".to_string()),
                    crate::ope::ORACLE_LIMITED | crate::ope::BAYES => {
                        (pct(crate::ope::recovery(&parsed, &name)), "–".to_string())
                    }
                    _ => (
                        pct(crate::ope::recovery(&parsed, &name)),
                        pct(crate::ope::recovery_within_limits(&parsed, &name)),
                    ),
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&name),
                    fmt(v, 3),
                    fmt(r["response_rate"].as_f64().map(|x| 100.0 * x), 2) + "%",
                    fmt(r["churn_rate"].as_f64().map(|x| 100.0 * x), 2) + "%",
                    fmt(r["contacts_per_customer"].as_f64(), 2),
                    rec,
                    within,
                );
                names.push(name);
                vals.push(v.unwrap_or(0.0));
            }
            h.push_str("</table>");
            h.push_str(&bar_chart(
                "Value per customer by policy",
                &names,
                &vals,
                "value per customer",
            )?);
            h.push_str("</div>");
        }
        _ => h.push_str("<p>No policy table yet: <code>baton simulate --policy all --days 60</code> writes <code>reports/policies.json</code>.</p>"),
    }
    if let Some(v) = read_json(&reports.join("ope_vs_truth.json")) {
        let _ = write!(
            h,
            "<h3>Off-policy estimates against the realised value</h3><pre>{}</pre>",
            escape(&serde_json::to_string_pretty(&v).unwrap_or_default())
        );
    }
    if let Some(v) = read_json(&reports.join("score.json")) {
        h.push_str("<h2 id=\"scoring\">Batch scoring</h2><table>");
        for k in [
            "as_of",
            "customers",
            "with_candidates",
            "assigned",
            "value",
            "unconstrained",
            "bound",
            "gap",
        ] {
            let val = &v[k];
            let text = match val {
                serde_json::Value::Number(n) => n.as_f64().map_or(n.to_string(), |x| {
                    if x.fract() == 0.0 {
                        format!("{x:.0}")
                    } else {
                        format!("{x:.4}")
                    }
                }),
                serde_json::Value::String(s) => s.clone(),
                _ => "–".into(),
            };
            let _ = write!(h, "<tr><td>{k}</td><td>{}</td></tr>", escape(&text));
        }
        h.push_str("</table>");
        if let Some(u) = v["usage"].as_object() {
            h.push_str("<table><tr><th>resource</th><th>assigned</th><th>budget</th></tr>");
            for (k, x) in u {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(k),
                    x[0].as_u64().unwrap_or(0),
                    x[1].as_u64().map_or("–".into(), |c| c.to_string())
                );
            }
            h.push_str("</table>");
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Renders the page of `inputs` and writes it to `inputs.out` (atomically).
pub async fn write(inputs: &Inputs<'_>) -> Result<()> {
    if !inputs.data.events_dir().is_dir() {
        return Err(Error::Invalid(format!(
            "{} has no events (run `baton simulate` or `baton ingest` first)",
            inputs.data.root().display()
        )));
    }
    let html = render(inputs).await?;
    let out = inputs.out;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).at(parent)?;
    }
    let tmp = out.with_extension("html.tmp");
    std::fs::write(&tmp, html).at(&tmp)?;
    std::fs::rename(&tmp, out).at(out)?;
    Ok(())
}
