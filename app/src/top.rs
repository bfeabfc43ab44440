//! `temblor top --api ADDR`: a live terminal view of a running engine, from its `GET /status`
//! (polled every `--interval-ms`): per connector its state, events/s in and out, totals,
//! errors, restarts and batch latency; per pipeline the same counts. `q` (or Esc, Ctrl-C)
//! quits.
//!
//! Rates are the difference of two polls' totals over the time between them, so they need no
//! support from the engine.

use std::{
    collections::BTreeMap,
    io::Stdout,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use ratatui::{
    Terminal,
    backend::CrosstermBackend,
    crossterm::{
        event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
        execute,
        terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
    },
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style},
    text::Line,
    widgets::{Block, Borders, Paragraph, Row, Table},
};
use serde_json::Value as Json;

/// One row of a table: totals read from `/status`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    state: String,
    events_in: u64,
    events_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    errors: u64,
    restarts: u64,
    dropped: u64,
    /// Upper bound of the bucket holding the 99th percentile latency (sinks).
    p99_le_s: Option<f64>,
}

/// What one poll gave.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    at: Option<Instant>,
    healthy: bool,
    problems: Vec<String>,
    uptime_s: f64,
    rss_kb: u64,
    threads: u64,
    connectors: Vec<(String, Totals)>,
    pipelines: Vec<(String, Totals)>,
}

fn totals(v: &Json) -> Totals {
    let n = |k: &str| v.get(k).and_then(Json::as_u64).unwrap_or(0);
    Totals {
        state: v
            .get("state")
            .and_then(Json::as_str)
            .unwrap_or("?")
            .to_owned(),
        events_in: n("events_in"),
        events_out: n("events_out"),
        bytes_in: n("bytes_in"),
        bytes_out: n("bytes_out"),
        errors: n("errors"),
        restarts: n("restarts"),
        dropped: n("dropped"),
        p99_le_s: v
            .get("latency")
            .and_then(|l| l.get("p99_le_s"))
            .and_then(Json::as_f64),
    }
}

/// Reads a `/status` document.
fn parse(text: &str, at: Instant) -> Result<Snapshot> {
    let doc: Json = serde_json::from_str(text).context("/status is not JSON")?;
    let list = |key: &str| -> Vec<(String, Totals)> {
        doc.get(key)
            .and_then(Json::as_object)
            .map(|o| o.iter().map(|(id, v)| (id.clone(), totals(v))).collect())
            .unwrap_or_default()
    };
    let process = doc.get("process");
    let p = |k: &str| process.and_then(|p| p.get(k));
    Ok(Snapshot {
        at: Some(at),
        healthy: doc.get("healthy").and_then(Json::as_bool).unwrap_or(false),
        problems: doc
            .get("problems")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        uptime_s: p("uptime_s").and_then(Json::as_f64).unwrap_or(0.0),
        rss_kb: p("rss_kb").and_then(Json::as_u64).unwrap_or(0),
        threads: p("threads").and_then(Json::as_u64).unwrap_or(0),
        connectors: list("connectors"),
        pipelines: list("pipelines"),
    })
}

/// Events per second between two polls of the same row.
#[allow(clippy::cast_precision_loss)]
fn rate(now: u64, before: Option<u64>, seconds: f64) -> f64 {
    match before {
        Some(b) if seconds > 0.0 && now >= b => (now - b) as f64 / seconds,
        _ => 0.0,
    }
}

/// A count with a unit suffix (k, M, G), short enough for a column.
#[allow(clippy::cast_precision_loss)]
fn human(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.1}G", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[allow(clippy::cast_precision_loss)]
fn count(n: u64) -> String {
    human(n as f64)
}

fn latency(s: Option<f64>) -> String {
    match s {
        None => "-".to_owned(),
        Some(s) if s < 1e-3 => format!("≤{:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("≤{:.1}ms", s * 1e3),
        Some(s) => format!("≤{s:.1}s"),
    }
}

fn state_style(state: &str) -> Style {
    match state {
        "running" => Style::default().fg(Color::Green),
        "restarting" => Style::default().fg(Color::Yellow),
        "failed" => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        _ => Style::default(),
    }
}

/// The table rows of connectors (`pipelines` false) or pipelines, with rates against `prev`.
fn rows(now: &Snapshot, prev: &Snapshot, pipelines: bool) -> Vec<Vec<String>> {
    let seconds = match (now.at, prev.at) {
        (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
        _ => 0.0,
    };
    let (list, before) = if pipelines {
        (&now.pipelines, &prev.pipelines)
    } else {
        (&now.connectors, &prev.connectors)
    };
    let before: BTreeMap<&str, &Totals> = before.iter().map(|(id, t)| (id.as_str(), t)).collect();
    list.iter()
        .map(|(id, t)| {
            let b = before.get(id.as_str());
            let in_s = rate(t.events_in, b.map(|b| b.events_in), seconds);
            let out_s = rate(t.events_out, b.map(|b| b.events_out), seconds);
            let mut row = vec![
                id.clone(),
                t.state.clone(),
                human(in_s),
                human(out_s),
                count(t.events_in),
                count(t.events_out),
            ];
            if pipelines {
                row.extend([count(t.dropped), count(t.errors)]);
            } else {
                row.extend([
                    count(t.bytes_in),
                    count(t.bytes_out),
                    count(t.errors),
                    count(t.restarts),
                    latency(t.p99_le_s),
                ]);
            }
            row
        })
        .collect()
}

/// Restores the terminal however `run` ends.
struct Screen(Terminal<CrosstermBackend<Stdout>>);

impl Screen {
    fn new() -> Result<Self> {
        enable_raw_mode().context("temblor top needs a terminal")?;
        let mut out = std::io::stdout();
        execute!(out, EnterAlternateScreen)?;
        Ok(Self(Terminal::new(CrosstermBackend::new(out))?))
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = disable_raw_mode();
        let _ = execute!(self.0.backend_mut(), LeaveAlternateScreen);
        let _ = self.0.show_cursor();
    }
}

/// Polls `addr` every `interval` and draws until `q`.
///
/// # Errors
/// No terminal, or drawing failed.
pub fn run(addr: &str, interval: Duration) -> Result<()> {
    let mut screen = Screen::new()?;
    let mut prev = Snapshot::default();
    let mut now = Snapshot::default();
    let mut next_poll = Instant::now();
    loop {
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + interval;
            let polled = crate::api::get(addr, "/status", Duration::from_secs(2)).and_then(
                |(code, body)| {
                    anyhow::ensure!(code == 200, "GET /status answered {code}");
                    parse(&body, Instant::now())
                },
            );
            let error = match polled {
                Ok(s) => {
                    prev = std::mem::replace(&mut now, s);
                    None
                }
                Err(e) => Some(format!("{e:#}")),
            };
            screen
                .0
                .draw(|f| draw(f, addr, &now, &prev, error.as_deref()))?;
        }
        let wait = next_poll.saturating_duration_since(Instant::now());
        if event::poll(wait)?
            && let Event::Key(key) = event::read()?
            && key.kind == KeyEventKind::Press
        {
            let ctrl_c =
                key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
            if matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                return Ok(());
            }
        }
    }
}

fn draw(
    f: &mut ratatui::Frame<'_>,
    addr: &str,
    now: &Snapshot,
    prev: &Snapshot,
    error: Option<&str>,
) {
    let [head, connectors, pipelines, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(4),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let health = if now.at.is_none() {
        Line::from("connecting...")
    } else if now.healthy {
        Line::styled("healthy", Style::default().fg(Color::Green))
    } else {
        Line::styled(
            format!("UNHEALTHY: {}", now.problems.join("; ")),
            Style::default().fg(Color::Red),
        )
    };
    let mut lines = vec![Line::from(format!(
        "temblor top  {addr}  up {:.0}s  rss {:.1} MiB  threads {}",
        now.uptime_s,
        now.rss_kb as f64 / 1024.0,
        now.threads
    ))];
    lines.push(match error {
        Some(e) => Line::styled(format!("error: {e}"), Style::default().fg(Color::Red)),
        None => health,
    });
    f.render_widget(Paragraph::new(lines), head);
    let table = |title: &str, header: &[&str], widths: &[u16], rows: Vec<Vec<String>>| {
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let rows = rows.into_iter().map(|r| {
            let style = state_style(&r[1]);
            Row::new(r).style(style)
        });
        Table::new(rows, widths.iter().map(|w| Constraint::Length(*w)))
            .header(Row::new(header.iter().map(|h| (*h).to_owned())).style(bold))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(title.to_owned()),
            )
    };
    f.render_widget(
        table(
            "connectors",
            &[
                "ID",
                "STATE",
                "IN/s",
                "OUT/s",
                "IN",
                "OUT",
                "BYTES IN",
                "BYTES OUT",
                "ERRORS",
                "RESTARTS",
                "LAT p99",
            ],
            &[14, 10, 8, 8, 8, 8, 9, 9, 7, 8, 9],
            rows(now, prev, false),
        ),
        connectors,
    );
    f.render_widget(
        table(
            "pipelines",
            &[
                "ID", "STATE", "IN/s", "OUT/s", "IN", "OUT", "DROPPED", "ERRORS",
            ],
            &[14, 10, 8, 8, 8, 8, 8, 7],
            rows(now, prev, true),
        ),
        pipelines,
    );
    f.render_widget(Paragraph::new("q quits"), foot);
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"{"elapsed_s":2.0,"healthy":false,"problems":["connector 'out' (sink) is failed"],
        "connectors":{"in":{"events_out":3000,"bytes_in":90000,"state":"running"},
                      "out":{"events_in":1000,"errors":2,"state":"failed","latency":{"p99_le_s":0.0025}}},
        "pipelines":{"main":{"events_in":3000,"events_out":3000,"state":"running"}},
        "process":{"uptime_s":2.5,"rss_kb":40960,"threads":9}}"#;

    #[test]
    fn rates_come_from_two_polls() {
        let t0 = Instant::now();
        let now = parse(STATUS, t0 + Duration::from_secs(2)).unwrap();
        let mut prev = now.clone();
        prev.at = Some(t0);
        prev.connectors[0].1.events_out = 1000;
        let r = rows(&now, &prev, false);
        assert_eq!(r[0][0], "in");
        assert_eq!(r[0][3], "1000", "(3000 - 1000) / 2 s: {r:?}");
        assert_eq!(r[1][1], "failed");
        assert_eq!(r[1][8], "2");
        assert_eq!(r[1][10], "≤2.5ms");
        let p = rows(&now, &prev, true);
        assert_eq!(p[0][0], "main");
        assert!(!now.healthy);
        assert_eq!(now.problems.len(), 1);
        assert_eq!(now.threads, 9);
    }

    #[test]
    fn numbers_fit_their_columns() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(12_345.0), "12.3k");
        assert_eq!(human(8_600_000.0), "8.6M");
        assert_eq!(latency(Some(0.000_05)), "≤50µs");
        assert_eq!(latency(None), "-");
    }
}
