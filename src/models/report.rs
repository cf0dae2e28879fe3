//! `report.html` of a model version: the metrics next to the oracle's, and SVG charts
//! drawn with plotters: ROC, precision-recall, calibration, lift by decile, permutation
//! importance and (channel) the confusion matrix.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::train::Evaluation;
use crate::error::{Error, Result};

const MODEL: RGBColor = RGBColor(31, 119, 180);
const ORACLE: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(150, 150, 150);

pub(crate) fn chart_err(e: impl std::fmt::Display) -> Error {
    Error::Data(format!("report chart: {e}"))
}

pub(crate) fn svg(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        draw(&root)?;
        root.present().map_err(chart_err)?;
    }
    Ok(s)
}

/// A named, coloured curve.
type Series<'a> = (&'a str, RGBColor, &'a [(f64, f64)]);

fn curve_chart(
    title: &str,
    xd: &str,
    yd: &str,
    series: &[Series],
    diagonal: bool,
    markers: bool,
) -> Result<String> {
    svg(440, 400, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .x_desc(xd)
            .y_desc(yd)
            .draw()
            .map_err(chart_err)?;
        if diagonal {
            chart
                .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], GREY))
                .map_err(chart_err)?;
        }
        for (name, color, pts) in series {
            if pts.is_empty() {
                continue;
            }
            let c = *color;
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(chart_err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                });
            if markers {
                chart
                    .draw_series(pts.iter().map(|p| Circle::new(*p, 4, c.filled())))
                    .map_err(chart_err)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(chart_err)?;
        Ok(())
    })
}

pub(crate) fn bar_chart(
    title: &str,
    labels: &[String],
    values: &[f64],
    xdesc: &str,
) -> Result<String> {
    let n = labels.len();
    let h = 80 + 20 * n as u32;
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1e-9) * 1.1;
    let min = values.iter().copied().fold(0.0f64, f64::min);
    svg(640, h.max(200), |root| {
        // Row k (0 = first label) is drawn at the top: y from n − k − 1 to n − k.
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(230)
            .build_cartesian_2d(min..max, 0.0..n as f64)
            .map_err(chart_err)?;
        let labels = labels.to_vec();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n * 2 + 1)
            .y_label_formatter(&|v| {
                let k = v - v.floor();
                if (k - 0.5).abs() < 1e-6 {
                    let row = n as i64 - 1 - v.floor() as i64;
                    usize::try_from(row)
                        .ok()
                        .and_then(|r| labels.get(r).cloned())
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(xdesc)
            .x_labels(6)
            .x_label_formatter(&|v| {
                if max >= 1000.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.3}")
                }
            })
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let y = (n - 1 - i) as f64;
                Rectangle::new([(0.0, y + 0.15), (*v, y + 0.85)], MODEL.filled())
            }))
            .map_err(chart_err)?;
        Ok(())
    })
}

fn lift_chart(lift: &[f64]) -> Result<String> {
    svg(440, 400, |root| {
        let max = lift.iter().copied().fold(1.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption("Lift by decile", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((1..10usize).into_segmented(), 0.0..max)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("decile (highest scores first)")
            .y_desc("positive rate / overall rate")
            .draw()
            .map_err(chart_err)?;
        chart
            .draw_series(lift.iter().enumerate().map(|(i, v)| {
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i + 1), 0.0),
                        (SegmentValue::Exact(i + 2), *v),
                    ],
                    MODEL.filled(),
                )
            }))
            .map_err(chart_err)?;
        Ok(())
    })
}

fn calibration_chart(e: &Evaluation) -> Result<String> {
    let pts: Vec<(f64, f64)> = e
        .calibration_curve
        .iter()
        .map(|b| (b.mean_predicted, b.observed_rate))
        .collect();
    curve_chart(
        "Calibration (10 bins)",
        "mean predicted probability",
        "observed rate",
        &[("model", MODEL, &pts)],
        true,
        true,
    )
}

fn confusion_chart(e: &Evaluation) -> Result<Option<String>> {
    let Some(m) = &e.multiclass else {
        return Ok(None);
    };
    let k = e.classes.len();
    let rows = &m.confusion[..k];
    svg(520, 480, |root| {
        // Cell (predicted p, true t) spans x p..p+1 and y (k−1−t)..(k−t): the first class
        // is the top row.
        let mut chart = ChartBuilder::on(root)
            .caption("Confusion matrix (row-normalised)", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..k as f64, 0.0..k as f64)
            .map_err(chart_err)?;
        let classes = e.classes.clone();
        let centre = |v: f64| (v - v.floor() - 0.5).abs() < 1e-6;
        let xl = |v: &f64| {
            if centre(*v) {
                classes.get(v.floor() as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let yl = |v: &f64| {
            if centre(*v) {
                let t = k as i64 - 1 - v.floor() as i64;
                usize::try_from(t)
                    .ok()
                    .and_then(|t| classes.get(t).cloned())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(2 * k + 1)
            .y_labels(2 * k + 1)
            .x_label_formatter(&xl)
            .y_label_formatter(&yl)
            .x_desc("predicted")
            .y_desc("true")
            .draw()
            .map_err(chart_err)?;
        for (t, row) in rows.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            let y = (k - 1 - t) as f64;
            for (p, c) in row.iter().enumerate() {
                let share = *c as f64 / total;
                let shade = 255 - (share * 200.0) as u8;
                let x = p as f64;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x, y), (x + 1.0, y + 1.0)],
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(chart_err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{:.0}%", share * 100.0),
                        (x + 0.3, y + 0.6),
                        ("sans-serif", 13),
                    )))
                    .map_err(chart_err)?;
            }
        }
        Ok(())
    })
    .map(Some)
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "–".into())
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The report of one version as a standalone HTML document.
pub fn render_html(version: &str, e: &Evaluation) -> Result<String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Baton {task} model {version}</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}\
         .charts{{display:flex;flex-wrap:wrap;gap:12px}}</style></head><body>\
         <h1>{task} model {version} ({learner})</h1>\
         <p>Trained on {tr} rows in {fs:.1} s; calibration chosen on {tu} tune rows: <b>{cal}</b>; \
         every number below is on {te} test rows that took no part in fitting or choosing.</p>",
        task = escape(&e.task),
        learner = e.learner.as_str(),
        tr = e.rows_train,
        fs = e.fit_seconds,
        tu = e.rows_tune,
        cal = e.calibration,
        te = e.rows_test,
    );
    h.push_str("<table><tr><th>metric</th><th>model</th><th>oracle</th></tr>");
    let _ = write!(
        h,
        "<tr><td>AUC</td><td>{}</td><td>{}</td></tr><tr><td>oracle ratio (AUC−0.5)/(oracle−0.5)</td><td>{}</td><td></td></tr>",
        fmt(e.auc),
        fmt(e.oracle_auc),
        fmt(e.oracle_ratio)
    );
    if let Some(b) = &e.binary {
        let o = e.oracle_binary.as_ref();
        for (name, m, or) in [
            ("PR-AUC", b.pr_auc, o.and_then(|o| o.pr_auc)),
            ("log loss", Some(b.log_loss), o.map(|o| o.log_loss)),
            ("Brier", Some(b.brier), o.map(|o| o.brier)),
            ("ECE", Some(b.ece), o.map(|o| o.ece)),
            ("positive rate", Some(b.positive_rate), None),
        ] {
            let _ = write!(
                h,
                "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>",
                fmt(m),
                fmt(or)
            );
        }
    }
    if let Some(m) = &e.multiclass {
        let o = e.oracle_multiclass.as_ref();
        let _ = write!(
            h,
            "<tr><td>top-1 accuracy</td><td>{}</td><td>{}</td></tr><tr><td>log loss</td><td>{}</td><td></td></tr><tr><td>Brier</td><td>{}</td><td></td></tr>",
            fmt(Some(m.top1_accuracy)),
            fmt(o.map(|o| o.top1_accuracy)),
            fmt(Some(m.log_loss)),
            fmt(Some(m.brier))
        );
    }
    h.push_str("</table>");
    if !e.calibration_losses.is_empty() {
        h.push_str("<p>Calibration choice (2-fold cross-fitted log loss on tune rows): ");
        let parts: Vec<String> = e
            .calibration_losses
            .iter()
            .map(|(m, l)| format!("{m} {l:.5}"))
            .collect();
        h.push_str(&parts.join(", "));
        h.push_str("</p>");
    }
    if let Some(m) = &e.multiclass {
        h.push_str("<h2>One-vs-rest AUC per channel</h2><table><tr><th>channel</th><th>model</th><th>oracle</th></tr>");
        for (i, c) in e.classes.iter().enumerate() {
            let o = e
                .oracle_multiclass
                .as_ref()
                .and_then(|o| o.auc_per_class.get(i).copied().flatten());
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(c),
                fmt(m.auc_per_class[i]),
                fmt(o)
            );
        }
        h.push_str("</table><p>The oracle knows each customer's hidden session affinities for web, app and store only, so the headline AUC averages those three channels.</p>");
    }
    if !e.per_action.is_empty() {
        h.push_str("<h2>AUC per action</h2><table><tr><th>action</th><th>rows</th><th>response rate</th><th>model</th><th>oracle</th></tr>");
        for a in &e.per_action {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.action_id),
                a.rows,
                a.positive_rate,
                fmt(a.auc),
                fmt(a.oracle_auc)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h2>Charts</h2><div class=\"charts\">");
    if !e.roc.is_empty() {
        h.push_str(&curve_chart(
            "ROC",
            "false positive rate",
            "true positive rate",
            &[("model", MODEL, &e.roc), ("oracle", ORACLE, &e.oracle_roc)],
            true,
            false,
        )?);
        h.push_str(&curve_chart(
            "Precision-recall",
            "recall",
            "precision",
            &[("model", MODEL, &e.pr)],
            false,
            false,
        )?);
        h.push_str(&calibration_chart(e)?);
    }
    if let Some(b) = &e.binary
        && !b.lift.is_empty()
    {
        h.push_str(&lift_chart(&b.lift)?);
    }
    if let Some(c) = confusion_chart(e)? {
        h.push_str(&c);
    }
    h.push_str("</div>");
    if !e.importance.is_empty() {
        let top: Vec<&(String, f64)> = e.importance.iter().take(20).collect();
        let labels: Vec<String> = top.iter().map(|t| t.0.clone()).collect();
        let values: Vec<f64> = top.iter().map(|t| t.1).collect();
        h.push_str("<h2>Permutation importance (top 20)</h2>");
        h.push_str(&bar_chart(
            "AUC drop when the column is shuffled",
            &labels,
            &values,
            "AUC drop",
        )?);
    }
    h.push_str("</body></html>\n");
    Ok(h)
}
