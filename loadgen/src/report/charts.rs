//! Interactive charts for the HTML pages (report.html, capacity.html): what each chart shows
//! is decided here, in Rust, and written into the page as JSON; a small script of ours
//! (`assets/charts.js`) draws them with uPlot, which is inlined from `assets/uplot/` (a pinned
//! release, with its licence). Nothing is fetched from a network: the page opens offline.
//!
//! Each chart is a shared x axis and one line per series, with `null` where a series has no
//! value (a second with no sample), which is drawn as a gap, not bridged. Where a series has
//! no point at an x that another series has (two runs' seconds do not fall on the same
//! instants), the x is listed in its `absent` and the line runs straight past it. Colours are fixed per
//! transport or metric so one thing keeps one colour on every chart of a page.

use serde::Serialize;

/// uPlot, the pinned release in `assets/uplot/` (MIT; see its LICENSE there).
const UPLOT_JS: &str = include_str!("../../assets/uplot/uPlot.iife.min.js");
/// uPlot's own styles (legend, cursor, selection).
const UPLOT_CSS: &str = include_str!("../../assets/uplot/uPlot.min.css");
/// Our script: reads the charts' JSON and draws each one into its placeholder.
const CHARTS_JS: &str = include_str!("../../assets/charts.js");

/// Line colours, in turn: one per transport (or metric) on every chart of a page.
pub(crate) const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// What the x axis holds, which decides its scale and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum XKind {
    /// 1/(1−p) of a percentile p, on a log axis: 90 %, 99 %, 99.9 % … evenly spaced.
    Percentile,
    /// Seconds since the run started; the run's phases are shaded.
    Seconds,
    /// A rate (per second), on a linear axis.
    Rate,
}

/// How a series' values are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Style {
    /// A solid line.
    Line,
    /// A dashed line (a p50 beside its p99, a threshold).
    Dashed,
    /// A line with a filled dot at each value (a step that held).
    Dots,
    /// Open rings only, no line (steps that failed).
    Rings,
}

/// One line of a chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Line {
    pub label: String,
    pub colour: &'static str,
    pub style: Style,
    /// One per x; `None` is a gap.
    pub values: Vec<Option<f64>>,
    /// Indices of x this series has no point at (neither a value nor a gap): passed over.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub absent: Vec<usize>,
}

impl Line {
    /// A line with a value or a gap at every x.
    pub(crate) fn new(
        label: String,
        colour: &'static str,
        style: Style,
        values: Vec<Option<f64>>,
    ) -> Self {
        Self {
            label,
            colour,
            style,
            values,
            absent: Vec::new(),
        }
    }

    /// A line from aligned points: `None` is absent, `Some(None)` a gap.
    pub(crate) fn aligned(
        label: String,
        colour: &'static str,
        style: Style,
        points: Vec<Option<Option<f64>>>,
    ) -> Self {
        let absent = points
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_none())
            .map(|(i, _)| i)
            .collect();
        Self {
            label,
            colour,
            style,
            values: points.into_iter().map(Option::flatten).collect(),
            absent,
        }
    }
}

/// One chart.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Chart {
    pub title: String,
    pub x_kind: XKind,
    pub x_label: String,
    pub y_label: String,
    /// Increasing.
    pub x: Vec<f64>,
    pub lines: Vec<Line>,
    /// A vertical line at this x (the highest load that held).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark_x: Option<f64>,
    /// Horizontal dashed black lines across the whole plot at these y (SLO thresholds; a
    /// line of constant values would only span the first to the last point).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<f64>,
}

impl Chart {
    /// Whether any line has a value to draw.
    pub(crate) fn has_values(&self) -> bool {
        self.lines
            .iter()
            .any(|l| l.values.iter().any(Option::is_some))
    }
}

/// A phase of a run, shaded on charts over time.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Phase {
    pub name: &'static str,
    pub from_s: f64,
    pub to_s: f64,
}

/// Everything the script draws.
#[derive(Debug, Clone, Serialize)]
struct Charts<'a> {
    charts: &'a [Chart],
    phases: &'a [Phase],
}

/// The placeholder chart `index` of the page is drawn into, under `title` (already escaped
/// for HTML by the page).
pub(crate) fn placeholder(index: usize, title: &str) -> String {
    format!(
        "<figure class=\"chart\"><figcaption>{title}</figcaption><div id=\"chart-{index}\" \
         class=\"plot\"></div></figure>\n"
    )
}

/// uPlot's styles, for the page's `<style>`.
pub(crate) fn styles() -> &'static str {
    UPLOT_CSS
}

/// The scripts at the end of the page: the charts as JSON, uPlot, and ours.
pub(crate) fn scripts(charts: &[Chart], phases: &[Phase]) -> String {
    let json = serde_json::to_string(&Charts { charts, phases })
        // Only plain data is serialized; it cannot fail, and an empty set draws nothing.
        .unwrap_or_else(|_| "{\"charts\":[],\"phases\":[]}".to_string());
    // Inside <script>, "</" could end the element early; JSON allows "<\/" for it.
    let json = json.replace("</", "<\\/");
    format!(
        "<script type=\"application/json\" id=\"imbench-charts\">{json}</script>\n\
         <script>{UPLOT_JS}</script>\n<script>{CHARTS_JS}</script>\n"
    )
}

/// Aligns points `(x, y)` of several series on one x axis (the union of their x, rounded to
/// `step`), with `None` where a series has no point. Of two points of one series that round
/// to the same x, the later is kept.
pub(crate) fn align<T: Copy>(
    series: &[Vec<(f64, T)>],
    step: f64,
) -> (Vec<f64>, Vec<Vec<Option<T>>>) {
    let key = |x: f64| (x / step).round() as i64;
    let mut keys: Vec<i64> = series
        .iter()
        .flat_map(|s| s.iter().map(|p| key(p.0)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let values = series
        .iter()
        .map(|s| {
            let mut v = vec![None; keys.len()];
            for p in s {
                if let Ok(i) = keys.binary_search(&key(p.0)) {
                    v[i] = Some(p.1);
                }
            }
            v
        })
        .collect();
    (keys.iter().map(|&k| k as f64 * step).collect(), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_aligned_with_gaps_where_they_have_no_point() {
        let a = vec![(1.001, 10.0), (2.002, 20.0), (3.0, 30.0)];
        let b = vec![(0.998, 1.0), (3.003, 3.0)];
        let (x, v) = align(&[a, b], 1.0);
        assert_eq!(x, vec![1.0, 2.0, 3.0]);
        assert_eq!(v[0], vec![Some(10.0), Some(20.0), Some(30.0)]);
        assert_eq!(v[1], vec![Some(1.0), None, Some(3.0)]);
    }

    #[test]
    fn the_json_cannot_end_its_script_early() {
        let chart = Chart {
            title: "</script><b>".into(),
            x_kind: XKind::Rate,
            x_label: "x".into(),
            y_label: "y".into(),
            x: vec![1.0],
            lines: vec![],
            mark_x: None,
            thresholds: vec![],
        };
        let s = scripts(&[chart], &[]);
        let json_end = s.find("</script>").unwrap();
        assert!(s[..json_end].contains("<\\/script>"), "{}", &s[..json_end]);
        assert!(s.contains("uPlot"));
    }
}
