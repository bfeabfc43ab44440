//! An SVG bar chart of compile times: per scenario and profile, monolith beside plugins.

use std::fmt::Write as _;

use crate::compare_compile_times::Measurement;

const BAR_H: f64 = 14.0;
const GROUP_GAP: f64 = 12.0;
const LABEL_W: f64 = 190.0;
const PLOT_W: f64 = 520.0;

/// The chart: one group per scenario and profile, a bar per layout (median seconds, with a
/// line for min-max).
pub fn svg(results: &[Measurement]) -> String {
    let groups: Vec<(&str, &str)> = {
        let mut g: Vec<(&str, &str)> = Vec::new();
        for m in results {
            let key = (m.scenario.as_str(), m.profile.as_str());
            if !g.contains(&key) {
                g.push(key);
            }
        }
        g
    };
    let max = results
        .iter()
        .flat_map(|m| m.runs_s.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let height = 40.0 + groups.len() as f64 * (2.0 * BAR_H + GROUP_GAP) + 30.0;
    let width = LABEL_W + PLOT_W + 80.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="18" font-size="14">temblor compile times (s, median; line: min-max)</text>"#
    );
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="8" width="10" height="10" fill="#c0504d"/><text x="{}" y="17">monolith</text><rect x="{}" y="8" width="10" height="10" fill="#4f81bd"/><text x="{}" y="17">plugins</text>"##,
        LABEL_W + 250.0,
        LABEL_W + 264.0,
        LABEL_W + 330.0,
        LABEL_W + 344.0
    );
    let x = |s: f64| LABEL_W + s / max * PLOT_W;
    let mut y = 34.0;
    for (scenario, profile) in groups {
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{scenario} ({profile})</text>"#,
            LABEL_W - 6.0,
            y + BAR_H + 4.0
        );
        for (layout, color) in [("monolith", "#c0504d"), ("plugins", "#4f81bd")] {
            if let Some(m) = results
                .iter()
                .find(|m| m.scenario == scenario && m.profile == profile && m.layout == layout)
            {
                let median = m.median();
                let (lo, hi) = m
                    .runs_s
                    .iter()
                    .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &v| {
                        (lo.min(v), hi.max(v))
                    });
                let _ = writeln!(
                    out,
                    r#"<rect x="{LABEL_W}" y="{y}" width="{:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{}">{median:.2}</text>"#,
                    x(median) - LABEL_W,
                    BAR_H - 2.0,
                    x(hi.max(median)) + 4.0,
                    y + BAR_H - 4.0
                );
                if m.runs_s.len() > 1 {
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
}
