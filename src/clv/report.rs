//! The CLV report: three SVG charts drawn with plotters (frequency histogram actual vs model,
//! holdout predicted vs actual by calibration frequency, P(alive) heat map by recency and
//! frequency) in `report.svg`, and `report.html` with the parameters, tables and the charts.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use super::artifact::ClvModel;
use super::value::BUCKETS;
use crate::error::{Error, IoContext, Result};

const ACTUAL: RGBColor = RGBColor(31, 119, 180);
const MODEL: RGBColor = RGBColor(255, 127, 14);

fn chart_err(e: impl std::fmt::Display) -> Error {
    Error::Data(format!("report chart: {e}"))
}

fn bucket_label(v: f64) -> String {
    let k = v.round();
    if (v - k).abs() > 1e-9 || k < 0.0 || k >= BUCKETS as f64 {
        String::new()
    } else if k as usize == BUCKETS - 1 {
        format!("{k}+")
    } else {
        format!("{k}")
    }
}

/// Renders the three charts side by side as one SVG document.
pub fn render_svg(model: &ClvModel, max_frequency: f64, max_t: f64) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1500, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let panels = root.split_evenly((1, 3));
        let x_range = -0.5..(BUCKETS as f64 - 0.5);

        // 1. Frequency histogram: customers per calibration frequency, actual vs model.
        let ymax = model
            .frequency_fit
            .iter()
            .map(|r| (r.actual as f64).max(r.expected))
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&panels[0])
            .caption(
                "Repeat purchases in calibration: actual vs BG/NBD",
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), 0.0..ymax)
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(BUCKETS + 1)
            .x_label_formatter(&|v| bucket_label(*v))
            .x_desc("repeat purchases (frequency)")
            .y_desc("customers")
            .draw()
            .map_err(chart_err)?;
        let bars = |offset: f64, color: RGBColor, value: fn(&super::value::FrequencyRow) -> f64| {
            model.frequency_fit.iter().enumerate().map(move |(k, r)| {
                let x = k as f64 + offset;
                Rectangle::new([(x, 0.0), (x + 0.38, value(r))], color.filled())
            })
        };
        chart
            .draw_series(bars(-0.4, ACTUAL, |r| r.actual as f64))
            .map_err(chart_err)?
            .label("actual")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], ACTUAL.filled()));
        chart
            .draw_series(bars(0.02, MODEL, |r| r.expected))
            .map_err(chart_err)?
            .label("model")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], MODEL.filled()));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(chart_err)?;

        // 2. Holdout: mean purchases per customer by calibration frequency.
        let title = format!(
            "Holdout ({:.1} {}): purchases per customer",
            model.holdout_length, model.unit
        );
        match &model.holdout {
            Some(rows) if !rows.is_empty() => {
                let pts = |f: fn(&super::value::HoldoutRow) -> f64| -> Vec<(f64, f64)> {
                    rows.iter()
                        .map(|r| {
                            (
                                r.bucket.trim_end_matches('+').parse::<f64>().unwrap_or(0.0),
                                f(r),
                            )
                        })
                        .collect()
                };
                let (actual, predicted) = (pts(|r| r.actual), pts(|r| r.predicted));
                let ymax = actual
                    .iter()
                    .chain(&predicted)
                    .map(|p| p.1)
                    .fold(0.1, f64::max)
                    * 1.1;
                let mut chart = ChartBuilder::on(&panels[1])
                    .caption(title, ("sans-serif", 17))
                    .margin(12)
                    .x_label_area_size(40)
                    .y_label_area_size(60)
                    .build_cartesian_2d(x_range, 0.0..ymax)
                    .map_err(chart_err)?;
                chart
                    .configure_mesh()
                    .x_labels(BUCKETS + 1)
                    .x_label_formatter(&|v| bucket_label(*v))
                    .x_desc("repeat purchases in calibration")
                    .y_desc("mean holdout purchases")
                    .draw()
                    .map_err(chart_err)?;
                for (series, color, name) in
                    [(actual, ACTUAL, "actual"), (predicted, MODEL, "predicted")]
                {
                    chart
                        .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
                        .map_err(chart_err)?
                        .label(name)
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2))
                        });
                    chart
                        .draw_series(series.iter().map(|p| Circle::new(*p, 4, color.filled())))
                        .map_err(chart_err)?;
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperLeft)
                    .border_style(BLACK)
                    .background_style(WHITE.mix(0.8))
                    .draw()
                    .map_err(chart_err)?;
            }
            _ => {
                panels[1]
                    .draw(&Text::new(
                        "No holdout period (fit with --calibration-end before the last purchase)",
                        (20, 220),
                        ("sans-serif", 14),
                    ))
                    .map_err(chart_err)?;
            }
        }

        // 3. P(alive) heat map for a customer of age max T, by recency and frequency.
        let p = model.bgnbd.params;
        let fmax = max_frequency.max(1.0).ceil();
        let cells = 40.0;
        let (dr, df) = (max_t / cells, (fmax / cells).ceil().max(1.0));
        let mut chart = ChartBuilder::on(&panels[2])
            .caption(
                format!(
                    "P(alive) at T = {max_t:.0} {} (red 0 → green 1)",
                    model.unit
                ),
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_t, 0.0..(fmax + df))
            .map_err(chart_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("recency ({})", model.unit))
            .y_desc("frequency")
            .draw()
            .map_err(chart_err)?;
        let mut rects = Vec::new();
        let mut f = 0.0;
        while f <= fmax {
            for i in 0..cells as usize {
                let r0 = i as f64 * dr;
                let rec = if f == 0.0 { 0.0 } else { r0 + dr / 2.0 };
                let v = p.p_alive(f, rec, max_t);
                let color = RGBColor((255.0 * (1.0 - v)) as u8, (200.0 * v) as u8, 60);
                rects.push(Rectangle::new([(r0, f), (r0 + dr, f + df)], color.filled()));
            }
            f += df;
        }
        chart.draw_series(rects).map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}

/// Writes `report.svg` and `report.html` into `dir`.
pub fn write_report(model: &ClvModel, max_frequency: f64, max_t: f64, dir: &Path) -> Result<()> {
    let svg = render_svg(model, max_frequency, max_t)?;
    let svg_path = dir.join("report.svg");
    std::fs::write(&svg_path, &svg).at(&svg_path)?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Baton CLV model</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}</style></head><body>\
         <h1>CLV model: BG/NBD + Gamma-Gamma</h1><pre>",
    );
    html.push_str(&escape(&model.summary()));
    html.push_str("</pre><h2>Customers per calibration frequency</h2><table><tr><th>frequency</th><th>actual</th><th>model</th></tr>");
    for r in &model.frequency_fit {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td></tr>",
            r.bucket, r.actual, r.expected
        );
    }
    html.push_str("</table><h2>Charts</h2>");
    html.push_str(&svg);
    html.push_str("</body></html>\n");
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html).at(&html_path)?;
    Ok(())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
