//! The report's plots, drawn as SVG with plotters.
//!
//! SVG keeps text as text (no font file has to be embedded or found on the machine) and the
//! output deterministic, and renders on any Markdown viewer.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::BenchError;

/// One named curve: points in drawing order.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Axes of one plot.
#[derive(Debug, Clone)]
pub(crate) struct Axes {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// Put the legend in the upper left corner (lower left otherwise).
    pub legend_upper: bool,
}

/// Draws `series` as lines with point markers into an SVG file at `path`.
pub(crate) fn line_plot(path: &Path, axes: &Axes, series: &[Series]) -> Result<(), BenchError> {
    let fail = |e: &dyn std::fmt::Display| BenchError::Plot {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let points: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    if points.is_empty() {
        return Err(fail(&"no points to draw"));
    }
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let x = range(points.iter().map(|p| p.0), axes.x_log);
    let y = range(points.iter().map(|p| p.1), axes.y_log);
    match (axes.x_log, axes.y_log) {
        (false, false) => draw(&root, axes, series, x, y),
        (true, false) => draw(&root, axes, series, x.log_scale(), y),
        (false, true) => draw(&root, axes, series, x, y.log_scale()),
        (true, true) => draw(&root, axes, series, x.log_scale(), y.log_scale()),
    }
    .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// The range of `values` with a margin (a factor on log axes, 5% of the span otherwise).
fn range(values: impl Iterator<Item = f64>, log: bool) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return if log { 0.1..10.0 } else { 0.0..1.0 };
    }
    if log {
        return lo / 1.3..hi * 1.3;
    }
    let margin = ((hi - lo) * 0.05).max(hi.abs() * 1e-3).max(1e-9);
    lo - margin..hi + margin
}

/// Draws the chart on `root` over the ranges `x` and `y` (plain or logarithmic).
fn draw<X, Y>(
    root: &DrawingArea<SVGBackend, Shift>,
    axes: &Axes,
    series: &[Series],
    x: X,
    y: Y,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&axes.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc(axes.x_label.as_str())
        .y_desc(axes.y_label.as_str())
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = color_for(&s.name, i);
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
        chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(if axes.legend_upper {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::LowerLeft
        })
        .draw()?;
    Ok(())
}

/// A fixed color per method (so every plot uses the same), a palette color otherwise.
fn color_for(name: &str, index: usize) -> RGBColor {
    let method = name.split_whitespace().next().unwrap_or(name);
    match method {
        "quant" => RGBColor(214, 39, 40),
        "pwl" => RGBColor(255, 127, 14),
        "lossless" => RGBColor(127, 127, 127),
        "nncodec" => RGBColor(31, 119, 180),
        "sz3" => RGBColor(44, 160, 44),
        "oracle" => RGBColor(0, 0, 0),
        "int8" => RGBColor(148, 103, 189),
        "zipnn" => RGBColor(140, 86, 75),
        "zstd" => RGBColor(188, 189, 34),
        _ => {
            let c = Palette99::pick(index).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}
