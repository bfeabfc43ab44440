//! An SVG bar chart of compile times: per scenario and profile, monolith beside plugins.

use std::fmt::Write as _;

use crate::compare_compile_times::Measurement;

const BAR_H: f64 = 14.0;
const GROUP_GAP: f64 = 12.0;
const LABEL_W: f64 = 190.0;
const PLOT_W: f64 = 520.0;

/// One bar of a group: its series (a layout) and the values measured (the median is drawn,
/// with a line for min-max when there are several).
#[derive(Debug, Clone)]
pub struct Bar {
    pub series: String,
    pub values: Vec<f64>,
}

/// A labelled group of bars (a scenario, with its profile).
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub bars: Vec<Bar>,
}

/// The series' colours, in the order series first appear.
const COLORS: [&str; 4] = ["#c0504d", "#4f81bd", "#9bbb59", "#8064a2"];

/// The chart: one group per scenario and profile, a bar per layout (median seconds, with a
/// line for min-max).
pub fn svg(results: &[Measurement]) -> String {
    let mut groups: Vec<Group> = Vec::new();
    for m in results {
        let label = format!("{} ({})", m.scenario, m.profile);
        if !groups.iter().any(|g| g.label == label) {
            groups.push(Group {
                label,
                bars: Vec::new(),
            });
        }
    }
    for g in &mut groups {
        for layout in ["monolith", "plugins"] {
            if let Some(m) = results.iter().find(|m| {
                m.layout == layout && format!("{} ({})", m.scenario, m.profile) == g.label
            }) {
                g.bars.push(Bar {
                    series: layout.to_owned(),
                    values: m.runs_s.clone(),
                });
            }
        }
    }
    bars(
        "temblor compile times (s, median; line: min-max)",
        &["monolith", "plugins"],
        &groups,
    )
}

/// The throughput chart of `cargo xtask bench`: `(scenario, layout, MB/s of each run)`, one
/// group per scenario, a bar per layout.
pub fn throughput(cells: &[(&str, &str, Vec<f64>)]) -> String {
    let mut groups: Vec<Group> = Vec::new();
    let mut series: Vec<&str> = Vec::new();
    for (scenario, layout, runs) in cells {
        if !series.contains(layout) {
            series.push(layout);
        }
        let bar = Bar {
            series: (*layout).to_owned(),
            values: runs.clone(),
        };
        match groups.iter_mut().find(|g| g.label == *scenario) {
            Some(g) => g.bars.push(bar),
            None => groups.push(Group {
                label: (*scenario).to_owned(),
                bars: vec![bar],
            }),
        }
    }
    bars(
        "temblor throughput (MB/s, median; line: min-max)",
        &series,
        &groups,
    )
}

/// A horizontal bar chart: `series` names the legend (and the colours, in order); each group
/// shows one row per series, empty when that series has no bar in it.
pub fn bars(title: &str, series: &[&str], groups: &[Group]) -> String {
    let median = |v: &[f64]| crate::compare_compile_times::median(v);
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().flat_map(|b| b.values.iter().copied()))
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let rows = series.len().max(1) as f64;
    let height = 40.0 + groups.len() as f64 * (rows * BAR_H + GROUP_GAP) + 30.0;
    let width = LABEL_W + PLOT_W + 80.0;
    let color = |name: &str| {
        series
            .iter()
            .position(|s| *s == name)
            .map_or("#808080", |i| COLORS[i % COLORS.len()])
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<text x="10" y="18" font-size="14">{title}</text>"#);
    for (i, name) in series.iter().enumerate() {
        let at = LABEL_W + 250.0 + 80.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{at}" y="8" width="10" height="10" fill="{}"/><text x="{}" y="17">{name}</text>"#,
            color(name),
            at + 14.0
        );
    }
    let x = |s: f64| LABEL_W + s / max * PLOT_W;
    let mut y = 34.0;
    for g in groups {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 6.0,
            y + BAR_H + 4.0,
            g.label
        );
        for name in series {
            if let Some(b) = g.bars.iter().find(|b| b.series == *name)
                && !b.values.is_empty()
            {
                let median = median(&b.values);
                let (lo, hi) = b
                    .values
                    .iter()
                    .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                let _ = writeln!(
                    out,
                    r#"<rect x="{LABEL_W}" y="{y}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{median:.2}</text>"#,
                    x(median) - LABEL_W,
                    BAR_H - 2.0,
                    color(name),
                    x(hi.max(median)) + 4.0,
                    y + BAR_H - 4.0
                );
                if b.values.len() > 1 {
                    let mid = y + (BAR_H - 2.0) / 2.0;
                    let _ = writeln!(
                        out,
                        r#"<line x1="{:.1}" x2="{:.1}" y1="{mid}" y2="{mid}" stroke="black"/>"#,
                        x(lo),
                        x(hi)
                    );
                }
            }
            y += BAR_H;
        }
        y += GROUP_GAP;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_layout_and_group() {
        let m = |scenario: &str, layout: &str, s: f64| Measurement {
            scenario: scenario.into(),
            profile: "dev".into(),
            layout: layout.into(),
            runs_s: vec![s, s * 1.1],
            command: String::new(),
        };
        let svg = svg(&[
            m("clean", "monolith", 100.0),
            m("clean", "plugins", 120.0),
            m("noop", "monolith", 0.5),
            m("noop", "plugins", 0.4),
        ]);
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<rect x=\"190\"").count(), 4);
        assert_eq!(svg.matches("<line").count(), 4);
        assert!(svg.contains("clean (dev)") && svg.contains("noop (dev)"));
    }

    #[test]
    fn a_series_missing_from_a_group_leaves_its_row_empty() {
        let bar = |series: &str, v: f64| Bar {
            series: series.into(),
            values: vec![v],
        };
        let svg = bars(
            "throughput",
            &["plugins", "monolith", "raw"],
            &[
                Group {
                    label: "a".into(),
                    bars: vec![
                        bar("plugins", 500.0),
                        bar("monolith", 510.0),
                        bar("raw", 400.0),
                    ],
                },
                Group {
                    label: "b".into(),
                    bars: vec![bar("plugins", 9000.0), bar("monolith", 9100.0)],
                },
            ],
        );
        assert_eq!(svg.matches("<rect x=\"190\"").count(), 5);
        assert_eq!(svg.matches("<line").count(), 0);
        assert!(svg.contains(">throughput<") && svg.contains(">raw<"));
    }
}
