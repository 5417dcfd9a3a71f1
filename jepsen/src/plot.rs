//! A PNG of a run's latency and throughput over time, with the fault windows shaded.
//!
//! The picture answers "what did clients see while each fault was active": a band at the top
//! lays out every fault as a bar with its label, in one lane per kind of fault (labels that
//! would overlap go to another row of their lane), the panel below shows latency percentiles
//! per time bucket on a log scale, the bottom one operations per second by outcome, and both
//! shade every fault window in its lane's colour so that dips and spikes line up with their
//! cause.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::{Deserialize, Serialize};

/// Image size in pixels: wide, because runs are long and the time axis carries the story. The
/// fault band adds its own height to [`HEIGHT`].
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 800;

/// Every panel's margins and y label area, in pixels: the same in all three, so that their
/// time axes line up.
const MARGIN: u32 = 10;
const MARGIN_RIGHT: u32 = 25;
const Y_LABEL_AREA: u32 = 70;

/// Height of the title band, in pixels, and the largest and smallest title font sizes: a
/// title too wide at the largest size is set smaller, then cut with an ellipsis.
const TITLE_BAND: u32 = 40;
const TITLE_FONT_MAX: u32 = 24;
const TITLE_FONT_MIN: u32 = 13;

/// One row of the fault band, in pixels, and its label font size.
const LANE_ROW_PX: u32 = 20;
const LANE_FONT: u32 = 12;

/// Pixels kept free between two labels (or bars) in one row.
const LABEL_GAP_PX: i32 = 8;

/// Latencies are drawn no lower than this, in ms: a log axis cannot show zero.
pub const LATENCY_FLOOR_MS: f64 = 0.1;

/// Latencies are drawn no higher than this, in ms (about 30 years): plotters' log axis loops
/// practically forever when the ratio of its bounds overflows to infinity.
const LATENCY_CEILING_MS: f64 = 1e12;

/// Times beyond this many seconds (about 30 years) either way are treated as garbage: plotters'
/// axis code loops practically forever when the span of an axis overflows to infinity.
const TIME_LIMIT_S: f64 = 1e9;

/// Rates are drawn no higher than this, in operations per second, for the same reason.
const RATE_CEILING: f64 = 1e15;

/// Bucket width assumed when a bucket's own width is unusable (zero, negative, not finite).
const DEFAULT_BUCKET_S: f64 = 1.0;

/// `bucketize` stops here so that a wild `until_s / bucket_s` cannot exhaust memory; a
/// million one-second buckets is over eleven days, far beyond any run.
const MAX_BUCKETS: usize = 1_000_000;

/// Rows a lane may take for its labels; a fault whose label fits in none of them is drawn as
/// a bar alone (long runs on a narrow time axis), and the timeline lists it.
const MAX_LANE_ROWS: usize = 3;

/// Colours of the harness's lanes, so that a kind of fault looks the same in every report;
/// other lanes take [`OTHER_LANE_COLORS`] in order of first appearance.
const LANE_COLORS: [(&str, RGBColor); 6] = [
    ("partition", RGBColor(148, 103, 189)),
    ("network", RGBColor(140, 86, 75)),
    ("process", RGBColor(214, 39, 40)),
    ("pause", RGBColor(127, 127, 127)),
    ("clock", RGBColor(23, 190, 207)),
    ("storage", RGBColor(188, 189, 34)),
];
const OTHER_LANE_COLORS: [RGBColor; 3] = [
    RGBColor(227, 119, 194),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
];

const P50_COLOR: RGBColor = RGBColor(31, 119, 180);
const P99_COLOR: RGBColor = RGBColor(255, 127, 14);
const MAX_COLOR: RGBColor = RGBColor(214, 39, 40);
const OK_COLOR: RGBColor = RGBColor(44, 160, 44);
const REJECTED_COLOR: RGBColor = RGBColor(255, 127, 14);
const FAILED_COLOR: RGBColor = RGBColor(214, 39, 40);

/// Errors from drawing a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The font could not be set up.
    #[error(transparent)]
    Font(#[from] starling_bench::report::FontError),
    /// The output path does not end in `.png`; the encoder picks the format by extension, so
    /// anything else would either fail later or silently write another format.
    #[error("plot path {path} must end in .png")]
    NotPng {
        /// The path given to [`draw`].
        path: PathBuf,
    },
    /// Drawing or writing the image failed.
    #[error("drawing plot {path}: {source}")]
    Draw {
        /// The path given to [`draw`].
        path: PathBuf,
        /// What plotters or the image encoder reported.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// One time bucket (typically 1 s) of client operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, in seconds since the run's start.
    pub t_start_s: f64,
    /// Width of the bucket in seconds; turns counts into operations per second. Values that are
    /// not positive and finite are read as 1 s.
    pub width_s: f64,
    /// Operations answered successfully.
    pub ok: u64,
    /// Operations refused by the gateway (e.g. a budget or rate limit said no).
    pub rejected: u64,
    /// Operations that got no proper answer (transport error, timeout, 5xx).
    pub failed: u64,
    /// Median latency in ms, `None` when the bucket has no latency samples.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in ms, `None` when the bucket has no latency samples.
    pub p99_ms: Option<f64>,
    /// Highest latency in ms, `None` when the bucket has no latency samples.
    pub max_ms: Option<f64>,
}

/// A fault's active window, in seconds since the run's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// When the fault was injected.
    pub start_s: f64,
    /// When it was healed. It may lie past the last bucket, and the time axis then extends to
    /// it, so that a fault outlasting the load shows; an infinite end (never healed) runs to
    /// the edge of the plot.
    pub end_s: f64,
    /// Short text written by the window's bar, e.g. "partition n1|n2,n3".
    pub label: String,
    /// The kind of fault, e.g. `partition`: faults of one kind share a lane of the fault band
    /// and a colour. Empty reads as `fault`.
    #[serde(default)]
    pub lane: String,
}

/// Everything [`draw`] needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlotInput {
    /// Written above both panels.
    pub title: String,
    /// Time buckets, in any order; those starting more than 1e9 s (about 30 years) before or
    /// after the run's start, or at a non-finite time, are skipped.
    pub buckets: Vec<Bucket>,
    /// Fault windows; they may overlap each other and extend past the data.
    pub faults: Vec<FaultWindow>,
}

/// One client operation, as [`bucketize`] consumes it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Completion time, in seconds since the run's start.
    pub t_s: f64,
    /// Time from sending the request to its outcome, in ms.
    pub latency_ms: f64,
    /// How the operation ended.
    pub kind: SampleKind,
}

/// How a client operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SampleKind {
    /// Answered successfully.
    Ok,
    /// Refused by the gateway with a proper answer.
    Rejected,
    /// No proper answer: transport error, timeout, server error.
    Failed,
}

/// Groups samples into consecutive buckets of `bucket_s` seconds covering `[0, until_s)`.
///
/// A sample belongs to the bucket its completion time `t_s` falls in; samples outside
/// `[0, until_s)` or with a non-finite time are ignored. Every bucket is returned, also empty
/// ones (zero counts, `None` percentiles), so that gaps in service show as gaps.
///
/// Percentiles and the maximum are taken over the latencies of **ok and rejected** operations:
/// both are answers the gateway gave, while a failed operation's latency mostly measures the
/// client's timeout. Failed operations are only counted. Percentiles use the nearest-rank
/// method (the smallest sample with at least p % of the samples at or below it), so every
/// reported value is one that was observed. Non-finite latencies are counted but not used.
///
/// Returns no buckets when `bucket_s` or `until_s` is not positive and finite. Returns at most
/// one million buckets; samples after the last of them are ignored.
pub fn bucketize(samples: &[Sample], bucket_s: f64, until_s: f64) -> Vec<Bucket> {
    if !(bucket_s.is_finite() && bucket_s > 0.0 && until_s.is_finite() && until_s > 0.0) {
        return Vec::new();
    }
    // Float-to-int `as` saturates, so a huge ratio lands on the cap instead of wrapping.
    let n = ((until_s / bucket_s).ceil() as usize).min(MAX_BUCKETS);
    if n == 0 {
        // `until_s / bucket_s` underflowed.
        return Vec::new();
    }
    let end_s = until_s.min(n as f64 * bucket_s);

    #[derive(Clone, Default)]
    struct Acc {
        ok: u64,
        rejected: u64,
        failed: u64,
        latencies: Vec<f64>,
    }
    let mut accs = vec![Acc::default(); n];
    for s in samples {
        if !(s.t_s >= 0.0 && s.t_s < end_s) {
            continue;
        }
        // Rounding can put a time just below `end_s` one past the last bucket, where it
        // still belongs.
        let i = ((s.t_s / bucket_s) as usize).min(n - 1);
        let Some(acc) = accs.get_mut(i) else { continue };
        match s.kind {
            SampleKind::Ok => acc.ok += 1,
            SampleKind::Rejected => acc.rejected += 1,
            SampleKind::Failed => acc.failed += 1,
        }
        if s.kind != SampleKind::Failed && s.latency_ms.is_finite() {
            acc.latencies.push(s.latency_ms);
        }
    }
    accs.into_iter()
        .enumerate()
        .map(|(i, mut acc)| {
            acc.latencies.sort_by(f64::total_cmp);
            Bucket {
                t_start_s: i as f64 * bucket_s,
                width_s: bucket_s,
                ok: acc.ok,
                rejected: acc.rejected,
                failed: acc.failed,
                p50_ms: nearest_rank(&acc.latencies, 50.0),
                p99_ms: nearest_rank(&acc.latencies, 99.0),
                max_ms: acc.latencies.last().copied(),
            }
        })
        .collect()
}

/// Nearest-rank percentile of an ascending slice.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Draws `input` as a PNG at `path` (which must end in `.png`), replacing any file there.
///
/// Needs DejaVu Sans (Debian package fonts-dejavu-core) for text; see [`PlotError`]. Odd input
/// (no buckets, zero latencies, faults past the end or with swapped or non-finite bounds) is
/// drawn as well as it can be rather than refused.
pub fn draw(path: &Path, input: &PlotInput) -> Result<(), PlotError> {
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        return Err(PlotError::NotPng {
            path: path.to_path_buf(),
        });
    }
    starling_bench::report::ensure_font()?;
    render(path, input).map_err(|source| PlotError::Draw {
        path: path.to_path_buf(),
        source,
    })
}

/// Whether the font has been registered with plotters, or why registering it failed.
///
type DrawResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A bucket cleaned up for drawing: a usable width and its time at the bucket's middle.
struct Point<'a> {
    mid_s: f64,
    width_s: f64,
    bucket: &'a Bucket,
}

/// A fault window with ordered bounds, clamped to the time axis.
struct Shade<'a> {
    start_s: f64,
    end_s: f64,
    label: &'a str,
    /// Index into the lanes.
    lane: usize,
    color: RGBColor,
}

/// The colour of lane `name`, the `index`-th to appear.
fn lane_color(name: &str, index: usize) -> RGBColor {
    LANE_COLORS.iter().find(|(lane, _)| *lane == name).map_or(
        OTHER_LANE_COLORS[index % OTHER_LANE_COLORS.len()],
        |(_, color)| *color,
    )
}

/// Where a fault goes in the fault band.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    /// Row from the top of the band.
    row: usize,
    /// Whether its label is drawn (it fitted in a row of its lane).
    labelled: bool,
}

/// Lays the faults out in the fault band. `items` are (lane, bar from, bar to, label width),
/// in pixels along the time axis of width `width`. Each lane gets the rows its labels need
/// (at most [`MAX_LANE_ROWS`]), in lane order; within a lane, a fault goes to the first row
/// where its bar and label clear everything already there by [`LABEL_GAP_PX`]. A fault that
/// fits nowhere is drawn as a bar alone, in the first row where the bar fits (else its lane's
/// first). Returns each fault's slot, and each lane's first row and row count.
fn lay_out(
    items: &[(usize, i32, i32, i32)],
    lanes: usize,
    width: i32,
) -> (Vec<Slot>, Vec<(usize, usize)>) {
    // Per lane, per row: the rightmost pixel taken so far.
    let mut rows: Vec<Vec<i32>> = vec![Vec::new(); lanes];
    let mut placed = vec![(0usize, 0usize, false); items.len()];
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].1, i));
    for i in order {
        let (lane, from, to, label_w) = items[i];
        let Some(taken) = rows.get_mut(lane) else {
            continue;
        };
        let (start, end) = label_extent(from, to, label_w, width);
        let fits = |right: &i32| *right + LABEL_GAP_PX <= start;
        let row = match taken.iter().position(fits) {
            Some(row) => Some(row),
            None if taken.len() < MAX_LANE_ROWS => {
                taken.push(i32::MIN);
                Some(taken.len() - 1)
            }
            None => None,
        };
        placed[i] = match row {
            Some(row) => {
                taken[row] = end;
                (lane, row, true)
            }
            None => {
                let row = taken
                    .iter()
                    .position(|right| *right + LABEL_GAP_PX <= from)
                    .unwrap_or(0);
                taken[row] = taken[row].max(to);
                (lane, row, false)
            }
        };
    }
    let mut first = Vec::with_capacity(lanes);
    let mut next = 0;
    for taken in &rows {
        let count = taken.len().max(1);
        first.push((next, count));
        next += count;
    }
    let slots = placed
        .into_iter()
        .map(|(lane, row, labelled)| Slot {
            row: first.get(lane).map_or(0, |f| f.0) + row,
            labelled,
        })
        .collect();
    (slots, first)
}

/// Where a fault's label starts: just inside its bar, moved left if it would run past the
/// right edge of the time axis (`width` pixels).
fn label_start(from: i32, label_w: i32, width: i32) -> i32 {
    (from + 3).min(width - label_w - 3).max(0)
}

/// The pixels a fault's bar and label take together.
fn label_extent(from: i32, to: i32, label_w: i32, width: i32) -> (i32, i32) {
    let label_from = label_start(from, label_w, width);
    (from.min(label_from), to.max(label_from + label_w))
}

fn render(path: &Path, input: &PlotInput) -> DrawResult<()> {
    let mut points: Vec<Point<'_>> = input
        .buckets
        .iter()
        .filter(|b| b.t_start_s.abs() <= TIME_LIMIT_S)
        .map(|b| {
            let width_s = if b.width_s.is_finite() && b.width_s > 0.0 {
                b.width_s.min(TIME_LIMIT_S)
            } else {
                DEFAULT_BUCKET_S
            };
            Point {
                mid_s: b.t_start_s + width_s / 2.0,
                width_s,
                bucket: b,
            }
        })
        .collect();
    points.sort_by(|a, b| a.mid_s.total_cmp(&b.mid_s));

    // The axis covers the data and every finite fault bound, so a fault that outlasted the
    // load is visible as a shaded stretch without samples.
    let mut x_min = 0.0f64;
    let mut x_max = 0.0f64;
    for p in &points {
        x_min = x_min.min(p.bucket.t_start_s);
        x_max = x_max.max(p.bucket.t_start_s + p.width_s);
    }
    for f in &input.faults {
        for t in [f.start_s, f.end_s] {
            if t.is_finite() {
                x_min = x_min.min(t.max(-TIME_LIMIT_S));
                x_max = x_max.max(t.min(TIME_LIMIT_S));
            }
        }
    }
    if x_max - x_min < DEFAULT_BUCKET_S {
        x_max = x_min + DEFAULT_BUCKET_S;
    }
    let mut lanes: Vec<&str> = Vec::new();
    let mut by_start: Vec<&FaultWindow> = input
        .faults
        .iter()
        .filter(|f| !f.start_s.is_nan() && !f.end_s.is_nan())
        .collect();
    by_start.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    for f in &by_start {
        let lane = lane_name(f);
        if !lanes.contains(&lane) {
            lanes.push(lane);
        }
    }
    let shades: Vec<Shade<'_>> = by_start
        .iter()
        .map(|f| {
            let lane = lanes.iter().position(|l| *l == lane_name(f)).unwrap_or(0);
            Shade {
                start_s: f.start_s.min(f.end_s).clamp(x_min, x_max),
                end_s: f.start_s.max(f.end_s).clamp(x_min, x_max),
                label: &f.label,
                lane,
                color: lane_color(lane_name(f), lane),
            }
        })
        .collect();

    // The fault band's layout decides the image's height, so it is worked out first, on the
    // width every panel's plotting area will have.
    let plot_w = (WIDTH - MARGIN - MARGIN_RIGHT - Y_LABEL_AREA) as i32;
    let px = |t: f64| ((t - x_min) / (x_max - x_min) * f64::from(plot_w)).round() as i32;
    let label_font = ("sans-serif", LANE_FONT).into_font();
    let items: Vec<(usize, i32, i32, i32)> = shades
        .iter()
        .map(|s| {
            let width = label_font.box_size(s.label).map_or(0, |(w, _)| w as i32);
            (
                s.lane,
                px(s.start_s),
                px(s.end_s).max(px(s.start_s) + 2),
                width,
            )
        })
        .collect();
    let (slots, lane_rows) = lay_out(&items, lanes.len(), plot_w);
    let mut rows: usize = lane_rows.iter().map(|(_, count)| count).sum();
    if slots.iter().any(|s| !s.labelled) {
        // A row for the note that says so.
        rows += 1;
    }
    let band_h = if rows == 0 {
        0
    } else {
        rows as u32 * LANE_ROW_PX + 2 * MARGIN
    };

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT + band_h)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = if input.title.is_empty() {
        "Starling Jepsen run"
    } else {
        &input.title
    };
    let (head, body) = root.split_vertically(TITLE_BAND);
    draw_title(&head, title)?;
    let (band_area, panels) = body.split_vertically(band_h);
    if rows > 0 {
        let band = Band {
            shades: &shades,
            slots: &slots,
            lanes: &lanes,
            lane_rows: &lane_rows,
            rows,
        };
        fault_band(&band_area, &band, x_min..x_max)?;
    }
    let (top, bottom) = panels.split_vertically(panels.dim_in_pixel().1 / 2);
    latency_panel(&top, &points, &shades, x_min..x_max)?;
    throughput_panel(&bottom, &points, &shades, x_min..x_max)?;
    root.present()?;
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The lane of a fault window.
fn lane_name(f: &FaultWindow) -> &str {
    if f.lane.is_empty() { "fault" } else { &f.lane }
}

/// Writes the title centred in `area`, at the largest size that fits, cut with an ellipsis if
/// even the smallest does not.
fn draw_title(area: &Area<'_>, title: &str) -> DrawResult<()> {
    let (w, h) = area.dim_in_pixel();
    let room = w.saturating_sub(2 * MARGIN);
    let fits = |text: &str, size: u32| {
        ("sans-serif", size)
            .into_font()
            .box_size(text)
            .is_ok_and(|(tw, _)| tw <= room)
    };
    let size = (TITLE_FONT_MIN..=TITLE_FONT_MAX)
        .rev()
        .find(|&size| fits(title, size))
        .unwrap_or(TITLE_FONT_MIN);
    let mut text = title.to_owned();
    while !fits(&text, size) && text.pop().is_some() {
        // Dropped a character; the ellipsis goes on below.
        text = text.trim_end().to_owned();
        if fits(&format!("{text}…"), size) {
            text.push('…');
            break;
        }
    }
    let style = ("sans-serif", size)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text, (w as i32 / 2, h as i32 / 2 + 2), style))?;
    Ok(())
}

/// What the fault band draws.
struct Band<'a> {
    shades: &'a [Shade<'a>],
    slots: &'a [Slot],
    lanes: &'a [&'a str],
    /// Per lane: its first row and row count.
    lane_rows: &'a [(usize, usize)],
    rows: usize,
}

/// The fault band: each fault a bar in its lane's colour over its window, its label beside
/// it, the lane names on the left, and a note of labels left out for lack of room.
fn fault_band(area: &Area<'_>, band: &Band<'_>, x: std::ops::Range<f64>) -> DrawResult<()> {
    let rows = band.rows as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, 0.0..rows)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .disable_x_axis()
        .light_line_style(BLACK.mix(0.03))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    // Row r (from the top) spans y in [rows - r - 1, rows - r].
    let top = |row: usize| rows - row as f64;
    // Lane bands, alternately tinted, so that each lane's rows read as one.
    for (i, &(first, count)) in band.lane_rows.iter().enumerate() {
        if i % 2 == 1 {
            let (x0, x1) = (chart.x_range().start, chart.x_range().end);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, top(first)), (x1, top(first + count))],
                BLACK.mix(0.04).filled(),
            )))?;
        }
    }
    let bars = band.shades.iter().zip(band.slots).map(|(s, slot)| {
        let y = top(slot.row);
        Rectangle::new(
            [(s.start_s, y - 0.15), (s.end_s, y - 0.85)],
            s.color.mix(0.45).filled(),
        )
    });
    chart.draw_series(bars)?;
    let font = ("sans-serif", LANE_FONT)
        .into_font()
        .color(&BLACK.mix(0.85))
        .pos(Pos::new(HPos::Left, VPos::Center));
    let plot_w = chart.plotting_area().dim_in_pixel().0 as i32;
    let (x0, x1) = (chart.x_range().start, chart.x_range().end);
    let px = |t: f64| ((t - x0) / (x1 - x0) * f64::from(plot_w)).round() as i32;
    let labels = band
        .shades
        .iter()
        .zip(band.slots)
        .filter(|(_, slot)| slot.labelled)
        .map(|(s, slot)| {
            let label_w = font.font.box_size(s.label).map_or(0, |(w, _)| w as i32);
            let from = label_start(px(s.start_s), label_w, plot_w);
            // Pixel offset from the row's left end, so that the label sits where the layout
            // put it whatever the scale.
            EmptyElement::at((x0, top(slot.row) - 0.5))
                + Text::new(s.label.to_owned(), (from, 0), font.clone())
        });
    chart.draw_series(labels)?;
    let lane_font = ("sans-serif", LANE_FONT)
        .into_font()
        .color(&BLACK.mix(0.8))
        .pos(Pos::new(HPos::Right, VPos::Center));
    let names = band
        .lanes
        .iter()
        .zip(band.lane_rows)
        .map(|(name, &(first, count))| {
            let middle = top(first) - count as f64 / 2.0;
            EmptyElement::at((x0, middle))
                + Text::new((*name).to_owned(), (-8, 0), lane_font.clone())
        });
    chart.draw_series(names)?;
    let unlabelled = band.slots.iter().filter(|s| !s.labelled).count();
    if unlabelled > 0 {
        // The bottom row is kept for this note.
        let note = ("sans-serif", LANE_FONT)
            .into_font()
            .color(&BLACK.mix(0.6))
            .pos(Pos::new(HPos::Right, VPos::Center));
        chart.draw_series(std::iter::once(
            EmptyElement::at((x1, 0.5))
                + Text::new(
                    format!(
                        "{unlabelled} faults without a label for lack of room: see timeline.txt"
                    ),
                    (-4, 0),
                    note,
                ),
        ))?;
    }
    Ok(())
}

fn latency_panel(
    area: &Area<'_>,
    points: &[Point<'_>],
    shades: &[Shade<'_>],
    x: std::ops::Range<f64>,
) -> DrawResult<()> {
    let clamp = |v: Option<f64>| {
        v.filter(|v| !v.is_nan())
            .map(|v| v.clamp(LATENCY_FLOOR_MS, LATENCY_CEILING_MS))
    };
    let highest = points
        .iter()
        .flat_map(|p| [p.bucket.p50_ms, p.bucket.p99_ms, p.bucket.max_ms])
        .filter_map(clamp)
        .fold(1.0f64, f64::max);
    // Headroom above the highest line keeps the fault labels and the legend off the data; the
    // minimum keeps a few decades, and so labelled ticks, on an axis with little or no data.
    let y_top = (highest * 8.0).max(100.0);
    let mut chart = ChartBuilder::on(area)
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(30)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, (LATENCY_FLOOR_MS..y_top).log_scale())?;
    chart
        .configure_mesh()
        .y_desc("latency (ms, log; floor 0.1)")
        .y_label_formatter(&|v| format_number(*v))
        .x_label_formatter(&|v| format_number(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(BLACK.mix(0.03))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    shade_faults(&mut chart, shades, LATENCY_FLOOR_MS, y_top)?;

    let line = |value: fn(&Bucket) -> Option<f64>| {
        points
            .iter()
            .map(move |p| (p.mid_s, clamp(value(p.bucket))))
    };
    // Highest first, so that where the lines coincide (few samples) the lower percentile stays
    // visible on top, and the legend lists them in their vertical order.
    draw_broken_line(&mut chart, line(|b| b.max_ms), "max", MAX_COLOR)?;
    draw_broken_line(&mut chart, line(|b| b.p99_ms), "p99", P99_COLOR)?;
    draw_broken_line(&mut chart, line(|b| b.p50_ms), "p50", P50_COLOR)?;
    finish_panel(&mut chart, !points.is_empty())
}

fn throughput_panel(
    area: &Area<'_>,
    points: &[Point<'_>],
    shades: &[Shade<'_>],
    x: std::ops::Range<f64>,
) -> DrawResult<()> {
    let rate = |n: u64, p: &Point<'_>| (n as f64 / p.width_s).min(RATE_CEILING);
    let highest = points
        .iter()
        .flat_map(|p| {
            [
                rate(p.bucket.ok, p),
                rate(p.bucket.rejected, p),
                rate(p.bucket.failed, p),
            ]
        })
        .fold(1.0f64, f64::max);
    let y_top = highest * 1.3;
    let mut chart = ChartBuilder::on(area)
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(40)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, 0.0..y_top)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("operations / s")
        .y_label_formatter(&|v| format_number(*v))
        .x_label_formatter(&|v| format_number(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(BLACK.mix(0.03))
        .bold_line_style(BLACK.mix(0.12))
        .draw()?;
    shade_faults(&mut chart, shades, 0.0, y_top)?;

    let line = |count: fn(&Bucket) -> u64| {
        points
            .iter()
            .map(move |p| (p.mid_s, Some(rate(count(p.bucket), p))))
    };
    draw_broken_line(&mut chart, line(|b| b.ok), "ok", OK_COLOR)?;
    draw_broken_line(&mut chart, line(|b| b.rejected), "rejected", REJECTED_COLOR)?;
    draw_broken_line(&mut chart, line(|b| b.failed), "failed", FAILED_COLOR)?;
    finish_panel(&mut chart, !points.is_empty())
}

/// Shades each window over the panel's full height in its lane's colour (the fault band above
/// names them).
fn shade_faults<'a, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    shades: &[Shade<'_>],
    y_bottom: Y::ValueType,
    y_top: Y::ValueType,
) -> DrawResult<()>
where
    Y: Ranged,
    Y::ValueType: Copy + 'static,
{
    let rects = shades.iter().map(|s| {
        Rectangle::new(
            [(s.start_s, y_bottom), (s.end_s, y_top)],
            s.color.mix(0.13).filled(),
        )
    });
    chart.draw_series(rects)?;
    Ok(())
}

/// Draws a line that is interrupted wherever the value is `None`, with one legend entry.
fn draw_broken_line<'a, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    series: impl Iterator<Item = (f64, Option<f64>)>,
    name: &str,
    color: RGBColor,
) -> DrawResult<()>
where
    Y: Ranged<ValueType = f64>,
{
    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in series {
        match (y, segments.last_mut()) {
            (Some(y), Some(segment)) => segment.push((x, y)),
            (None, Some(segment)) if !segment.is_empty() => segments.push(Vec::new()),
            _ => {}
        }
    }
    let style = color.stroke_width(2);
    for segment in &segments {
        if let [only] = segment.as_slice() {
            // A lone bucket between gaps has no line to show.
            chart.draw_series(std::iter::once(Circle::new(*only, 3, style.filled())))?;
        }
        // Pair by pair rather than as one polyline: plotters joins wide polylines with unlimited
        // miters, which shoot long spikes out of sharp turns in noisy data.
        let pairs = segment
            .windows(2)
            .map(|pair| PathElement::new(pair.to_vec(), style));
        chart.draw_series(pairs)?;
    }
    // An empty series carries the legend entry, so the legend is complete even without data.
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
    Ok(())
}

/// Draws the legend, and says so when there is no data rather than leaving a blank panel that
/// looks like a broken plot.
fn finish_panel<'a, Y: Ranged>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    has_data: bool,
) -> DrawResult<()> {
    if !has_data {
        let area = chart.plotting_area().strip_coord_spec();
        let (w, h) = area.dim_in_pixel();
        let style = ("sans-serif", 20)
            .into_font()
            .color(&BLACK.mix(0.5))
            .pos(Pos::new(HPos::Center, VPos::Center));
        area.draw(&Text::new(
            "no samples",
            (w as i32 / 2, h as i32 / 2),
            style,
        ))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}

/// Axis labels without float noise: "0.3", "2.5", "1000" rather than "0.30000000000000004".
fn format_number(v: f64) -> String {
    if v.abs() >= 1e6 {
        return format!("{v:.1e}");
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, latency_ms: f64, kind: SampleKind) -> Sample {
        Sample {
            t_s,
            latency_ms,
            kind,
        }
    }

    #[test]
    fn plot_bucketize_counts_and_nearest_rank_percentiles() {
        let mut samples = Vec::new();
        // Bucket 0: ok latencies 1..=9 plus one rejected at 10 ms, and a failed one whose
        // 5000 ms must not show up in the percentiles.
        for ms in 1..=9 {
            samples.push(sample(0.05 * ms as f64, ms as f64, SampleKind::Ok));
        }
        samples.push(sample(0.9, 10.0, SampleKind::Rejected));
        samples.push(sample(0.95, 5000.0, SampleKind::Failed));
        // Bucket 1 stays empty. Bucket 2: one failed operation only.
        samples.push(sample(2.5, 30_000.0, SampleKind::Failed));
        // Bucket 3 (partial, until_s = 3.5): a single ok sample.
        samples.push(sample(3.2, 7.0, SampleKind::Ok));
        // Outside the range or unusable: ignored.
        samples.push(sample(-0.1, 1.0, SampleKind::Ok));
        samples.push(sample(3.5, 1.0, SampleKind::Ok));
        samples.push(sample(f64::NAN, 1.0, SampleKind::Ok));

        let b = bucketize(&samples, 1.0, 3.5);
        assert_eq!(b.len(), 4);
        assert_eq!(
            b.iter().map(|b| b.t_start_s).collect::<Vec<_>>(),
            [0.0, 1.0, 2.0, 3.0]
        );
        assert!(b.iter().all(|b| b.width_s == 1.0));

        assert_eq!((b[0].ok, b[0].rejected, b[0].failed), (9, 1, 1));
        // Ten latencies 1..=10: rank ceil(0.5 * 10) = 5, rank ceil(0.99 * 10) = 10.
        assert_eq!(b[0].p50_ms, Some(5.0));
        assert_eq!(b[0].p99_ms, Some(10.0));
        assert_eq!(b[0].max_ms, Some(10.0));

        assert_eq!((b[1].ok, b[1].rejected, b[1].failed), (0, 0, 0));
        assert_eq!((b[1].p50_ms, b[1].p99_ms, b[1].max_ms), (None, None, None));

        assert_eq!((b[2].ok, b[2].rejected, b[2].failed), (0, 0, 1));
        assert_eq!((b[2].p50_ms, b[2].p99_ms, b[2].max_ms), (None, None, None));

        assert_eq!((b[3].ok, b[3].rejected, b[3].failed), (1, 0, 0));
        assert_eq!(
            (b[3].p50_ms, b[3].p99_ms, b[3].max_ms),
            (Some(7.0), Some(7.0), Some(7.0))
        );
    }

    #[test]
    fn plot_bucketize_p99_of_a_hundred() {
        let samples: Vec<Sample> = (1..=100)
            .rev()
            .map(|ms| sample(0.5, ms as f64, SampleKind::Ok))
            .collect();
        let b = bucketize(&samples, 2.0, 2.0);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].p50_ms, Some(50.0));
        assert_eq!(b[0].p99_ms, Some(99.0));
        assert_eq!(b[0].max_ms, Some(100.0));
    }

    #[test]
    fn plot_bucketize_degenerate_arguments() {
        let s = [sample(0.5, 1.0, SampleKind::Ok)];
        assert!(bucketize(&s, 0.0, 10.0).is_empty());
        assert!(bucketize(&s, -1.0, 10.0).is_empty());
        assert!(bucketize(&s, f64::NAN, 10.0).is_empty());
        assert!(bucketize(&s, 1.0, 0.0).is_empty());
        assert!(bucketize(&s, 1.0, f64::INFINITY).is_empty());
        assert_eq!(bucketize(&s, 1e-300, 1.0).len(), MAX_BUCKETS);
        assert_eq!(bucketize(&[], 1.0, 3.0).len(), 3);
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).expect("plot file written");
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "not a PNG signature"
        );
        assert!(
            bytes.len() > 10_000,
            "PNG suspiciously small: {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn plot_draws_a_run_with_overlapping_faults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.png");
        let mut samples = Vec::new();
        for i in 0..6000 {
            let t = i as f64 / 100.0;
            let in_fault = (20.0..35.0).contains(&t);
            let kind = match i % 50 {
                0 if in_fault => SampleKind::Failed,
                1..=3 if in_fault => SampleKind::Rejected,
                7 => SampleKind::Rejected,
                _ => SampleKind::Ok,
            };
            let latency = if in_fault {
                40.0 + (i % 97) as f64 * 3.0
            } else {
                2.0 + (i % 13) as f64
            };
            if !(45.0..47.0).contains(&t) {
                samples.push(sample(t, latency, kind));
            }
        }
        let input = PlotInput {
            title: "partition + clock skew".into(),
            buckets: bucketize(&samples, 1.0, 60.0),
            faults: vec![
                FaultWindow {
                    start_s: 20.0,
                    end_s: 35.0,
                    label: "partition n1 | n2 n3".into(),
                    lane: "partition".into(),
                },
                FaultWindow {
                    start_s: 28.0,
                    end_s: 50.0,
                    label: "clock skew n2 +5s".into(),
                    lane: "clock".into(),
                },
                FaultWindow {
                    start_s: 21.0,
                    end_s: 30.0,
                    label: "an unknown kind of fault with a long label".into(),
                    lane: "other".into(),
                },
            ],
        };
        draw(&path, &input).expect("draw");
        assert_png(&path);
    }

    #[test]
    fn plot_draws_the_empty_input() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.png");
        draw(&path, &PlotInput::default()).expect("draw");
        assert_png(&path);
    }

    #[test]
    fn plot_draws_odd_inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let zero = Bucket {
            t_start_s: 0.0,
            width_s: 0.0,
            ok: 3,
            rejected: 0,
            failed: 0,
            p50_ms: Some(0.0),
            p99_ms: Some(0.0),
            max_ms: Some(0.0),
        };
        let faults = vec![
            FaultWindow {
                start_s: 0.5,
                end_s: 100.0,
                label: "past the end".into(),
                lane: String::new(),
            },
            FaultWindow {
                start_s: 3.0,
                end_s: f64::INFINITY,
                label: "never healed".into(),
                lane: String::new(),
            },
            FaultWindow {
                start_s: 2.0,
                end_s: 1.0,
                label: "swapped".into(),
                lane: String::new(),
            },
            FaultWindow {
                start_s: f64::NAN,
                end_s: 1.0,
                label: "nan".into(),
                lane: String::new(),
            },
            FaultWindow {
                start_s: 0.0,
                end_s: 0.0,
                label: "分区 ⚡ \u{0}\n".into(),
                lane: String::new(),
            },
        ];
        let inputs = [
            PlotInput {
                title: "single zero-latency bucket".into(),
                buckets: vec![zero.clone()],
                faults: faults.clone(),
            },
            PlotInput {
                title: "faults only".into(),
                buckets: Vec::new(),
                faults,
            },
            PlotInput {
                title: "no latencies, NaN start".into(),
                buckets: vec![
                    Bucket {
                        p50_ms: None,
                        p99_ms: None,
                        max_ms: Some(f64::NAN),
                        failed: 7,
                        ..zero.clone()
                    },
                    Bucket {
                        t_start_s: f64::NAN,
                        ..zero
                    },
                ],
                faults: Vec::new(),
            },
        ];
        for (i, input) in inputs.iter().enumerate() {
            let path = dir.path().join(format!("odd{i}.png"));
            draw(&path, input).expect("draw");
            assert_png(&path);
        }
    }

    #[test]
    fn plot_fault_labels_never_overlap_in_a_row() {
        // (lane, bar from, bar to, label width) in pixels on a 1000-pixel axis.
        let items = [
            (0, 100, 140, 200),  // a long label: takes 103..303
            (0, 200, 240, 50),   // starts inside the first's label: a second row
            (1, 200, 240, 50),   // another lane: its own row
            (0, 320, 360, 50),   // clears the first by more than the gap: back to row 0
            (0, 980, 1000, 100), // at the right edge: the label moves left of the bar
            (0, 950, 960, 60),   // where that label now is: a second row
        ];
        let (slots, lanes) = lay_out(&items, 2, 1000);
        assert_eq!(lanes, [(0, 2), (2, 1)]);
        let rows: Vec<usize> = slots.iter().map(|s| s.row).collect();
        assert_eq!(rows, [0, 1, 2, 0, 1, 0]);
        assert!(slots.iter().all(|s| s.labelled));
        assert_eq!(label_start(980, 100, 1000), 897);
        // Within every row, the extents (bar and label) are apart by the gap.
        for row in 0..3 {
            let mut extents: Vec<(i32, i32)> = items
                .iter()
                .zip(&slots)
                .filter(|(_, s)| s.row == row)
                .map(|(&(_, from, to, w), _)| label_extent(from, to, w, 1000))
                .collect();
            extents.sort_unstable();
            for pair in extents.windows(2) {
                assert!(pair[0].1 + LABEL_GAP_PX <= pair[1].0, "row {row}: {pair:?}");
            }
        }
    }

    #[test]
    fn plot_a_crowded_lane_keeps_its_rows_and_drops_labels() {
        // Twenty short faults 10 pixels apart, each with a 150-pixel label: the first three
        // take the three rows; the next ones fit nowhere and are drawn as bars alone (in the
        // first row, which they extend), until the labels of rows 1 and 2 end.
        let items: Vec<(usize, i32, i32, i32)> =
            (0..20).map(|i| (0, i * 10, i * 10 + 5, 150)).collect();
        let (slots, lanes) = lay_out(&items, 1, 1000);
        assert_eq!(lanes, [(0, MAX_LANE_ROWS)]);
        let labelled: Vec<usize> = (0..20).filter(|&i| slots[i].labelled).collect();
        assert_eq!(labelled, [0, 1, 2, 18, 19]);
        assert!(slots.iter().all(|s| s.row < MAX_LANE_ROWS));
    }

    #[test]
    fn plot_axis_numbers() {
        assert_eq!(format_number(0.1), "0.1");
        assert_eq!(format_number(0.30000000000000004), "0.3");
        assert_eq!(format_number(0.9999999999), "1");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(60.0), "60");
        assert_eq!(format_number(1000.0), "1000");
        assert_eq!(format_number(2.5e7), "2.5e7");
    }

    #[test]
    fn plot_refuses_other_extensions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = draw(&dir.path().join("run.jpg"), &PlotInput::default());
        assert!(matches!(err, Err(PlotError::NotPng { .. })));
    }
}
