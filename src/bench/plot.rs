//! The report's charts, drawn with plotters' SVG backend (its own `<text>` elements, so
//! no font library is needed): throughput over time, a line per job, and latency
//! percentile curves on HdrHistogram's "nines" scale, a line per job and direction.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::duration;

/// Size of one chart, pixels.
pub const WIDTH: u32 = 960;
pub const HEIGHT: u32 = 420;

/// What a chart's axes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Seconds since the job started against MB/s.
    MbPerSec,
    /// Seconds since the job started against files/s.
    FilesPerSec,
    /// Percentile against latency, both on log scales.
    Latency,
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    /// (x, y) in the chart's own units: seconds and a rate, or (percentile, ns).
    pub points: Vec<(f64, f64)>,
}

/// One chart: a title, its kind and its lines.
#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub kind: Kind,
    pub lines: Vec<Line>,
}

/// A chart as a standalone `<svg>` element.
pub fn svg(chart: &Chart) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart)?;
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

/// Several charts one under another in a single `<svg>`, under `title`.
pub fn svg_of_all(title: &str, charts: &[Chart]) -> Result<String> {
    const TITLE: u32 = 40;
    let mut out = String::new();
    {
        let height = HEIGHT * charts.len().max(1) as u32 + TITLE;
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let body = root.titled(title, ("sans-serif", 14)).map_err(drawing)?;
        for (area, chart) in body
            .split_evenly((charts.len().max(1), 1))
            .iter()
            .zip(charts)
        {
            draw(area, chart)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(out)
}

fn drawing(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the report: {err}")
}

/// Where a percentile sits on the nines scale: 0 at 0%, 1 at 90%, 2 at 99%, 3 at 99.9%.
fn nines(percentile: f64) -> f64 {
    -(1.0 - percentile / 100.0).max(1e-9).log10()
}

/// A tick of the nines scale as the percentile it stands for.
fn nines_label(x: &f64) -> String {
    let pct = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.ceil() as i32 - 2).max(0) as usize;
    format!("{pct:.decimals$}%")
}

/// The points as drawn: latency curves on the nines scale and log10 of the latency;
/// the 100th percentile (the maximum, infinitely far on that scale) only when it is all
/// a curve has.
fn plotted(kind: Kind, points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if kind != Kind::Latency {
        return points.to_vec();
    }
    let mut out: Vec<(f64, f64)> = points
        .iter()
        .filter(|(p, ns)| *p < 100.0 && *ns > 0.0)
        .map(|&(p, ns)| (nines(p), ns.log10()))
        .collect();
    if out.len() < 2
        && let Some(&(_, max)) = points.iter().rfind(|(_, ns)| *ns > 0.0)
    {
        let x = out.last().map_or(0.0, |(x, _)| x + 1.0);
        out.push((x, max.log10()));
    }
    out
}

/// The ranges of the axes: from 0 (or the lowest latency) to a little above the top.
fn ranges(kind: Kind, lines: &[Vec<(f64, f64)>]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let all = || lines.iter().flatten();
    let x_max = all().map(|p| p.0).fold(0.0, f64::max);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max);
    match kind {
        Kind::Latency => {
            let y_min = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let y_min = if y_min.is_finite() {
                y_min.floor()
            } else {
                0.0
            };
            (
                0.0..(x_max + 0.25).max(2.0),
                y_min..(y_max.ceil()).max(y_min + 1.0),
            )
        }
        Kind::MbPerSec | Kind::FilesPerSec => (0.0..x_max.max(0.1), 0.0..(y_max * 1.1).max(1e-3)),
    }
}

/// Draws `chart` on `area`: mesh, one line per series, and a legend naming each.
fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, chart: &Chart) -> Result<()> {
    area.fill(&WHITE).map_err(drawing)?;
    let lines: Vec<Vec<(f64, f64)>> = chart
        .lines
        .iter()
        .map(|l| plotted(chart.kind, &l.points))
        .collect();
    let (x, y) = ranges(chart.kind, &lines);
    // On log scales, ticks at whole decades and whole nines only.
    let (x_ticks, y_ticks) = (
        x.end.ceil() as usize + 1,
        (y.end - y.start).ceil() as usize + 1,
    );
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)
        .map_err(drawing)?;
    let latency_label = |y: &f64| duration(10f64.powf(*y));
    let mut mesh = c.configure_mesh();
    match chart.kind {
        Kind::Latency => mesh
            .x_desc("percentile")
            .y_desc("latency")
            .x_labels(x_ticks)
            .y_labels(y_ticks)
            .x_label_formatter(&nines_label)
            .y_label_formatter(&latency_label),
        Kind::MbPerSec => mesh.x_desc("seconds").y_desc("MB/s"),
        Kind::FilesPerSec => mesh.x_desc("seconds").y_desc("files/s"),
    };
    mesh.draw().map_err(drawing)?;
    for (i, (line, points)) in chart.lines.iter().zip(lines).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(drawing)?
            .label(&line.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    c.configure_series_labels()
        .position(match chart.kind {
            Kind::Latency => SeriesLabelPosition::UpperLeft,
            _ => SeriesLabelPosition::LowerRight,
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_scale_labels_the_tail() {
        assert_eq!(nines_label(&0.0), "0%");
        assert_eq!(nines_label(&1.0), "90%");
        assert_eq!(nines_label(&2.0), "99%");
        assert_eq!(nines_label(&3.0), "99.9%");
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
    }
}
