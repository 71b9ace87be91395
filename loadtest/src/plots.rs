//! PNG plots of one compared scenario (plotters, bitmap backend): throughput and p99
//! latency over time for every target, the proxies' RSS and CPU over time, their CPU
//! seconds per GB, and throughput and p99 ratios against direct.
//!
//! Text is drawn with a font compiled in (`epaint_default_fonts`), so no system font
//! library is needed.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::compare_report::{ScenarioResult, TargetRun};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("drawing: {0}")]
    Draw(String),
}

fn draw_err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

static FONT: Once = Once::new();

fn register() {
    FONT.call_once(|| {
        // A font that fails to parse leaves text out; the plots still draw.
        let _ = register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

fn color(target: &str) -> RGBColor {
    match target {
        "direct" => RGBColor(40, 40, 40),
        "sluice" => RGBColor(31, 119, 180),
        _ => RGBColor(214, 39, 40),
    }
}

type Series = Vec<(f64, f64)>;
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// The top of a y axis: `headroom` × the largest finite value (never zero).
fn top(values: impl Iterator<Item = f64>, headroom: f64) -> f64 {
    values
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-6)
        * headroom
}

/// A titled chart frame with room for y labels.
fn frame<'a, 'b>(
    area: &'a Area<'b>,
    title: &str,
    x_labels: u32,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut b = ChartBuilder::on(area);
    b.caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(x_labels)
        .y_label_area_size(55);
    b
}

/// A line chart of one series per target.
fn lines(
    area: &Area<'_>,
    title: &str,
    y_label: &str,
    series: &[(String, Series)],
) -> Result<(), PlotError> {
    lines_with(area, title, y_label, series, &[])
}

/// As [`lines`], with `thin` series drawn thin in their target's colour, unlabelled
/// (p50 beside a p99).
fn lines_with(
    area: &Area<'_>,
    title: &str,
    y_label: &str,
    series: &[(String, Series)],
    thin: &[(String, Series)],
) -> Result<(), PlotError> {
    let x_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = top(series.iter().flat_map(|(_, s)| s.iter().map(|p| p.1)), 1.1);
    let mut chart = frame(area, title, 30)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw_err)?;
    // Only the bold mesh: the fine one triples the PNG's size and adds nothing.
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("seconds")
        .y_desc(y_label)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    for (name, s) in thin {
        chart
            .draw_series(LineSeries::new(
                s.iter().copied(),
                color(name).stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    for (name, s) in series {
        let c = color(name);
        chart
            .draw_series(LineSeries::new(s.iter().copied(), c.stroke_width(2)))
            .map_err(draw_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 12))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// Bars: one group of bars per label, one bar per (name, value).
fn bars(
    area: &Area<'_>,
    title: &str,
    groups: &[(String, Vec<(String, f64)>)],
    reference: Option<f64>,
) -> Result<(), PlotError> {
    let n: usize = groups
        .iter()
        .map(|(_, b)| b.len() + 1)
        .sum::<usize>()
        .max(1);
    let values = groups.iter().flat_map(|(_, b)| b.iter().map(|x| x.1));
    let y_max = top(values.chain(reference), 1.2);
    let mut chart = frame(area, title, 10)
        .build_cartesian_2d(0.0..n as f64, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .disable_x_mesh()
        .disable_x_axis()
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(draw_err)?;
    if let Some(r) = reference {
        chart
            .draw_series(LineSeries::new(
                [(0.0, r), (n as f64, r)],
                BLACK.stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    let mut x = 0.0;
    for (label, values) in groups {
        for (name, v) in values {
            let c = color(name);
            chart
                .draw_series([Rectangle::new([(x + 0.1, 0.0), (x + 0.9, *v)], c.filled())])
                .map_err(draw_err)?;
            chart
                .draw_series([Text::new(
                    format!("{name} {v:.2}"),
                    (x + 0.1, *v + y_max * 0.02),
                    ("sans-serif", 11),
                )])
                .map_err(draw_err)?;
            x += 1.0;
        }
        chart
            .draw_series([Text::new(
                label.clone(),
                (x - values.len() as f64, y_max * 0.95),
                ("sans-serif", 12),
            )])
            .map_err(draw_err)?;
        x += 1.0;
    }
    Ok(())
}

fn proxy_series(
    runs: &[TargetRun],
    f: impl Fn(f64, f64, u64, f64) -> f64,
) -> Vec<(String, Series)> {
    runs.iter()
        .filter_map(|r| {
            let p = r.proxy.as_ref()?;
            let mut prev = (0.0, 0.0);
            let s = p
                .samples
                .iter()
                .map(|x| {
                    let v = f(x.t_s - prev.0, x.cpu_s - prev.1, x.rss_kib, x.t_s);
                    prev = (x.t_s, x.cpu_s);
                    (x.t_s, v)
                })
                .collect();
            Some((r.target.clone(), s))
        })
        .collect()
}

/// Six panels for one scenario into `path`.
pub fn scenario(r: &ScenarioResult, path: &Path) -> Result<(), PlotError> {
    register();
    let root = BitMapBackend::new(path, (1200, 780)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root
        .titled(
            &format!("{}: {}", r.spec.scenario.name(), r.description),
            ("sans-serif", 16),
        )
        .map_err(draw_err)?;
    let panels = root.split_evenly((2, 3));
    let first_role = r.spec.groups.first().map_or("", |g| g.role);
    let tput: Vec<(String, Series)> = r
        .runs
        .iter()
        .map(|t| {
            let mut per_sec: Vec<(f64, f64)> = Vec::new();
            for g in &t.groups {
                for (i, iv) in g.timeline.iter().enumerate() {
                    match per_sec.get_mut(i) {
                        Some(p) => p.1 += iv.records as f64,
                        None => per_sec.push((iv.t_s, iv.records as f64)),
                    }
                }
            }
            (t.target.clone(), per_sec)
        })
        .collect();
    lines(&panels[0], "records/s (all groups)", "records/s", &tput)?;
    let percentile = |f: fn(&crate::latency::Interval) -> Option<f64>| -> Vec<(String, Series)> {
        r.runs
            .iter()
            .filter_map(|t| {
                let g = t.groups.iter().find(|g| g.role == first_role)?;
                Some((
                    t.target.clone(),
                    g.timeline
                        .iter()
                        .filter_map(|i| Some((i.t_s, f(i)?)))
                        .collect(),
                ))
            })
            .collect()
    };
    lines_with(
        &panels[1],
        &format!("{first_role} latency per second: p99 (thick), p50 (thin), ms"),
        "ms",
        &percentile(|i| i.p99_ms),
        &percentile(|i| i.p50_ms),
    )?;
    let rss = proxy_series(&r.runs, |_, _, rss, _| rss as f64 / 1024.0);
    lines(&panels[2], "proxy RSS (MiB)", "MiB", &rss)?;
    let cpu = proxy_series(
        &r.runs,
        |dt, dcpu, _, _| if dt > 0.0 { dcpu / dt * 100.0 } else { 0.0 },
    );
    lines(&panels[3], "proxy CPU (% of one core)", "%", &cpu)?;
    let per_gb: Vec<(String, f64)> = r
        .runs
        .iter()
        .filter_map(|t| Some((t.target.clone(), t.proxy.as_ref()?.cpu_s_per_gb?)))
        .collect();
    bars(
        &panels[4],
        "proxy CPU-s per GB (line: SPEC 11's 2)",
        &[("".into(), per_gb)],
        Some(2.0),
    )?;
    let ratio_bars =
        |f: &dyn Fn(&crate::compare_report::Ratio) -> Option<f64>| -> Vec<(String, f64)> {
            r.ratios
                .iter()
                .filter(|x| x.role == first_role)
                .filter_map(|x| Some((x.target.clone(), f(x)?)))
                .collect()
        };
    bars(
        &panels[5],
        &format!("vs direct, {first_role} (line: 1.0)"),
        &[
            ("throughput".into(), ratio_bars(&|x| x.throughput_ratio)),
            ("p99".into(), ratio_bars(&|x| x.p99_ratio)),
        ],
        Some(1.0),
    )?;
    root.present().map_err(draw_err)?;
    Ok(())
}
