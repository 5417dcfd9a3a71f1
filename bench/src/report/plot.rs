//! PNG line plots: latency against offered rate per target, and any x/y series (convergence
//! against cluster size).

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::font::{FontError, ensure_font};
use crate::load::ApiFormat;
use crate::scenarios::BenchReport;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 700;

/// A log axis cannot show zero: values are drawn no lower than this.
const LOG_FLOOR: f64 = 1.0;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Errors from drawing.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The font could not be set up.
    #[error(transparent)]
    Font(#[from] FontError),
    /// Drawing or writing the image failed.
    #[error("drawing plot {path}: {detail}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// What plotters reported.
        detail: String,
    },
}

/// One line of a plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its legend entry.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Dashed (a second figure of the same target, e.g. p99 beside p50).
    pub dashed: bool,
}

/// Latency (p50 solid, p99 dashed, log scale) against offered rate, one colour per target.
pub fn latency_vs_rate(
    report: &BenchReport,
    format: ApiFormat,
    stream: bool,
    path: &Path,
) -> Result<(), PlotError> {
    let mut targets: Vec<String> = Vec::new();
    for r in &report.rates {
        if !targets.contains(&r.target) {
            targets.push(r.target.clone());
        }
    }
    let mut series = Vec::new();
    for target in &targets {
        let rows: Vec<_> = report
            .rates
            .iter()
            .filter(|r| &r.target == target && r.format == format && r.stream == stream)
            .filter_map(|r| Some((r.load.offered_rps, r.load.latency?)))
            .collect();
        let line = |pick: fn(&crate::load::Percentiles) -> u64| {
            rows.iter()
                .map(|(rate, p)| (*rate, pick(p) as f64 / 1000.0))
                .collect()
        };
        series.push(Series {
            name: format!("{target} p50"),
            points: line(|p| p.p50_us),
            dashed: false,
        });
        series.push(Series {
            name: format!("{target} p99"),
            points: line(|p| p.p99_us),
            dashed: true,
        });
    }
    let title = format!(
        "Latency against offered rate ({} format, {})",
        format!("{format:?}").to_lowercase(),
        if stream { "streaming" } else { "non-streaming" }
    );
    line_plot(
        &title,
        "offered rate (requests/s)",
        "latency (ms, log)",
        &series,
        path,
    )
}

/// Write visibility (p50 solid, p99 dashed) and burst convergence against cluster size.
pub fn convergence_vs_size(report: &BenchReport, path: &Path) -> Result<(), PlotError> {
    let points = |pick: fn(&crate::scale::SizeResult) -> f64| {
        report
            .convergence
            .iter()
            .map(|r| (r.nodes as f64, pick(r)))
            .collect()
    };
    let series = [
        Series {
            name: "write visible on every node, p50".into(),
            points: points(|r| r.write_visible.p50_ms),
            dashed: false,
        },
        Series {
            name: "write visible on every node, p99".into(),
            points: points(|r| r.write_visible.p99_ms),
            dashed: true,
        },
        Series {
            name: "100-write burst until digests agree".into(),
            points: points(|r| r.burst.digests_equal_ms),
            dashed: false,
        },
        Series {
            name: "membership formed".into(),
            points: points(|r| r.formation.membership_ms),
            dashed: true,
        },
    ];
    line_plot(
        "Convergence against cluster size",
        "nodes",
        "time (ms, log)",
        &series,
        path,
    )
}

/// A line plot of `series` (pairs of lines of one colour: a solid one followed by a dashed
/// one), y on a log scale.
pub fn line_plot(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    path: &Path,
) -> Result<(), PlotError> {
    ensure_font()?;
    draw(title, x_label, y_label, series, path).map_err(|e| PlotError::Draw {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

fn draw(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, 0.0f64);
    for &(x, y) in series.iter().flat_map(|s| s.points.iter()) {
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    let floor = if y_min > y_max {
        LOG_FLOOR
    } else {
        (y_min * 0.8).max(LOG_FLOOR / 1000.0)
    };
    let ceiling = (y_max * 1.25).max(floor * 10.0);
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..x_max * 1.05, (floor..ceiling).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[(i / 2) % PALETTE.len()];
        let style = ShapeStyle::from(color).stroke_width(2);
        let points: Vec<(f64, f64)> = s.points.iter().map(|&(x, y)| (x, y.max(floor))).collect();
        let drawn = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))?
        };
        drawn
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, ShapeStyle::from(color).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
