//! The harness's report: one [`Row`] per configuration, shown as a text table, a
//! JSON document and an SVG bar chart.

use std::fmt::Write as _;

use serde::Serialize;

use super::wrk::Outcome;

/// What was measured for one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The configuration's name, e.g. `memory/opaque` or `floor/opaque`.
    pub name: String,
    /// `floor` or `tessera`.
    pub server: String,
    /// The request mode (`opaque`, `jwt-es256`, `jwt-eddsa`, `jwt-rs256`,
    /// `introspect`); the floor of the same mode is the comparison.
    pub mode: String,
    /// The database of `tessera-server` (`memory`, `sqlite`, `postgres`); none for
    /// the floor.
    pub store: Option<String>,
    /// Server processes sharing the load (and the database).
    pub instances: u32,
    /// What wrk measured; none when the configuration failed.
    pub load: Option<Outcome>,
    /// Responses per second.
    pub requests_per_sec: Option<f64>,
    /// Server CPU time (user + system, all instances) per response, in µs.
    pub cpu_us_per_request: Option<f64>,
    /// wrk's own CPU time per response, in µs.
    pub loadgen_cpu_us_per_request: Option<f64>,
    /// Resident memory after start-up and one request, before any load, in KiB
    /// (summed over instances).
    pub idle_rss_kib: Option<u64>,
    /// The most memory ever resident, at the end of the load, in KiB (summed over
    /// instances).
    pub peak_rss_kib: Option<u64>,
    /// The share of the whole machine's CPU time that was busy during the measured
    /// load (servers, wrk, and anything else running), from 0 to 1.
    pub machine_busy_share: Option<f64>,
    /// The share of the whole machine's CPU time used during the measured load by
    /// anything but the servers, wrk and the harness (other processes, and
    /// interrupt time not charged to any process), from 0 to 1: a busy machine
    /// shows here.
    pub other_cpu_share: Option<f64>,
    /// The floor's responses per second in the same mode, this run.
    pub floor_requests_per_sec: Option<f64>,
    /// `requests_per_sec / floor_requests_per_sec`.
    pub ratio: Option<f64>,
    /// Why the configuration has no figures, or what went wrong while measuring
    /// (failed requests), if anything.
    pub error: Option<String>,
    /// The round this row was measured in (from 1), for a measured row; none for a
    /// summary of several rounds.
    pub round: Option<u32>,
    /// For a summary of several rounds: how many had figures, and the range of
    /// their requests per second.
    pub spread: Option<Spread>,
}

/// How several rounds of one configuration differed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// Rounds with figures.
    pub rounds: u32,
    /// The lowest requests per second of a round.
    pub min_requests_per_sec: f64,
    /// The highest requests per second of a round.
    pub max_requests_per_sec: f64,
    /// The lowest ratio to the floor of a round (Tessera rows).
    pub min_ratio: Option<f64>,
    /// The highest ratio to the floor of a round (Tessera rows).
    pub max_ratio: Option<f64>,
}

impl Row {
    /// A row with a name and nothing measured yet.
    pub fn new(name: &str, server: &str, mode: &str, store: Option<&str>, instances: u32) -> Self {
        Row {
            name: name.to_owned(),
            server: server.to_owned(),
            mode: mode.to_owned(),
            store: store.map(str::to_owned),
            instances,
            load: None,
            requests_per_sec: None,
            cpu_us_per_request: None,
            loadgen_cpu_us_per_request: None,
            idle_rss_kib: None,
            peak_rss_kib: None,
            machine_busy_share: None,
            other_cpu_share: None,
            floor_requests_per_sec: None,
            ratio: None,
            error: None,
            round: None,
            spread: None,
        }
    }

    /// Whether this row is a floor measurement.
    pub fn is_floor(&self) -> bool {
        self.server == "floor"
    }
}

/// Fills in [`Row::floor_requests_per_sec`] and [`Row::ratio`] of every Tessera row
/// from the floor row of its mode.
///
/// A mode without a floor ([`baseline_mode`]) is compared with the Tessera row of its
/// baseline mode on the same store instead.
pub fn compute_ratios(rows: &mut [Row]) {
    let floors: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.is_floor())
        .filter_map(|r| Some((r.mode.clone(), r.requests_per_sec?)))
        .collect();
    let tessera: Vec<(String, Option<String>, f64)> = rows
        .iter()
        .filter(|r| !r.is_floor() && r.instances == 1)
        .filter_map(|r| Some((r.mode.clone(), r.store.clone(), r.requests_per_sec?)))
        .collect();
    for row in rows.iter_mut().filter(|r| !r.is_floor()) {
        let floor = match baseline_mode(&row.mode) {
            None => floors.iter().find(|(mode, _)| *mode == row.mode).map(|(_, rps)| *rps),
            Some(baseline) => tessera
                .iter()
                .find(|(mode, store, _)| mode == baseline && *store == row.store)
                .map(|(_, _, rps)| *rps),
        };
        row.floor_requests_per_sec = floor;
        row.ratio = match (row.requests_per_sec, floor) {
            (Some(rps), Some(floor)) if floor > 0.0 => Some(rps / floor),
            _ => None,
        };
    }
}

/// The mode a mode without a floor is compared with, on the same store: the
/// management API's `get-user` with `introspect` (both check a token and read a
/// user); `None` for a mode the floor serves.
pub fn baseline_mode(mode: &str) -> Option<&'static str> {
    match mode {
        "get-user" => Some("introspect"),
        _ => None,
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// One row per configuration summarizing its rounds (`rows` holds every round's
/// rows, each with its ratio computed within its round). The summary holds the
/// figures of the median round by requests per second (its latencies, CPU time
/// and memory), the median of the rounds' ratios, the highest peak memory, and the
/// [`Spread`]. With one round per configuration the rows are returned as they are.
pub fn summarize(rows: &[Row]) -> Vec<Row> {
    let mut names: Vec<&str> = Vec::new();
    for row in rows {
        if !names.contains(&row.name.as_str()) {
            names.push(&row.name);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let rounds: Vec<&Row> = rows.iter().filter(|r| r.name == name).collect();
        if rounds.len() == 1 {
            out.push(rounds[0].clone());
            continue;
        }
        let mut measured: Vec<&Row> =
            rounds.iter().copied().filter(|r| r.requests_per_sec.is_some()).collect();
        measured.sort_by(|a, b| {
            a.requests_per_sec
                .unwrap_or_default()
                .total_cmp(&b.requests_per_sec.unwrap_or_default())
        });
        let errors: Vec<String> = rounds
            .iter()
            .filter_map(|r| Some(format!("round {}: {}", r.round?, r.error.as_ref()?)))
            .collect();
        let Some(middle) = measured.get(measured.len() / 2) else {
            let mut failed = rounds[0].clone();
            failed.round = None;
            failed.error = Some(errors.join("; "));
            out.push(failed);
            continue;
        };
        let mut summary = (*middle).clone();
        summary.round = None;
        let mut ratios: Vec<f64> = measured.iter().filter_map(|r| r.ratio).collect();
        let mut floors: Vec<f64> =
            measured.iter().filter_map(|r| r.floor_requests_per_sec).collect();
        summary.ratio = median(&mut ratios);
        summary.floor_requests_per_sec = median(&mut floors);
        summary.peak_rss_kib = measured.iter().filter_map(|r| r.peak_rss_kib).max();
        summary.error = (!errors.is_empty()).then(|| errors.join("; "));
        summary.spread = Some(Spread {
            rounds: measured.len() as u32,
            min_requests_per_sec: measured[0].requests_per_sec.unwrap_or_default(),
            max_requests_per_sec: measured[measured.len() - 1].requests_per_sec.unwrap_or_default(),
            min_ratio: ratios.first().copied(),
            max_ratio: ratios.last().copied(),
        });
        out.push(summary);
    }
    out
}

/// A latency for people: `412 µs`, `3.4 ms`, `1.20 s`.
pub fn latency(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..10_000 => format!("{:.2} ms", us as f64 / 1e3),
        10_000..1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// A memory size for people, from KiB: `14.2 MiB`.
pub fn mebibytes(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A count with thousands separators: `83,412`.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The text table: configuration, requests/s, p50, p99, server CPU per request,
/// idle and peak RSS, the ratio to the floor, and notes.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "configuration",
        "req/s",
        "p50",
        "p99",
        "CPU µs/req",
        "idle RSS",
        "peak RSS",
        "ratio",
        "notes",
    ];
    let dash = || "—".to_owned();
    let mut lines: Vec<Vec<String>> = Vec::new();
    for row in rows {
        let load = row.load.as_ref();
        let mut notes = Vec::new();
        if row.instances > 1 {
            notes.push(format!("{} instances", row.instances));
        }
        if let (Some(baseline), Some(store)) = (baseline_mode(&row.mode), row.store.as_deref()) {
            notes.push(format!("ratio to {store}/{baseline}"));
        }
        if let Some(spread) = &row.spread {
            let mut note = format!(
                "median of {}: {}–{} req/s",
                spread.rounds,
                thousands(spread.min_requests_per_sec),
                thousands(spread.max_requests_per_sec)
            );
            if let (Some(low), Some(high)) = (spread.min_ratio, spread.max_ratio) {
                note.push_str(&format!(", ratio {low:.2}–{high:.2}"));
            }
            notes.push(note);
        }
        if let Some(load) = load.filter(|l| l.errors.total() > 0) {
            notes.push(format!("{} failed requests", load.errors.total()));
        }
        if let Some(other) = row.other_cpu_share.filter(|o| *o >= 0.1) {
            // A database server on the same machine counts among the others.
            let others = match row.store.as_deref() {
                Some("postgres") => "others (the database included)",
                _ => "others",
            };
            notes.push(format!("{others} used {:.0} % of the CPU", other * 100.0));
        }
        if let Some(error) = &row.error {
            notes.push(error.lines().next().unwrap_or_default().chars().take(100).collect());
        }
        lines.push(vec![
            row.name.clone(),
            row.requests_per_sec.map_or_else(dash, thousands),
            load.map_or_else(dash, |l| latency(l.p50_us)),
            load.map_or_else(dash, |l| latency(l.p99_us)),
            row.cpu_us_per_request.map_or_else(dash, |c| format!("{c:.1}")),
            row.idle_rss_kib.map_or_else(dash, mebibytes),
            row.peak_rss_kib.map_or_else(dash, mebibytes),
            if row.is_floor() {
                "floor".to_owned()
            } else {
                row.ratio.map_or_else(dash, |r| format!("{r:.2}"))
            },
            notes.join("; "),
        ]);
    }
    let width = |i: usize| {
        lines
            .iter()
            .map(|l| l[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let render = |cells: &[String]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i] - cell.chars().count();
            if i > 0 {
                line.push_str("  ");
            }
            // Names and notes left-aligned, figures right-aligned.
            if i == 0 || i == header.len() - 1 {
                line.push_str(cell);
                if i != header.len() - 1 {
                    line.push_str(&" ".repeat(pad));
                }
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        line.trim_end().to_owned()
    };
    let mut out = render(&header.map(str::to_owned));
    out.push('\n');
    out.push_str(&render(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()));
    out.push('\n');
    for line in &lines {
        out.push_str(&render(line));
        out.push('\n');
    }
    out
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round step for about `target` grid lines up to `max`.
fn grid_step(max: f64, target: f64) -> f64 {
    let raw = (max / target).max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// One bar of the chart.
struct Bar {
    label: &'static str,
    value: f64,
    floor: bool,
    /// The ratio to the floor, shown after the value of a Tessera bar.
    ratio: Option<f64>,
}

/// The bar chart: requests per second of each Tessera configuration, with the floor
/// of its mode, measured in the same run, beside it. Floor rows without a Tessera
/// configuration of their mode get a bar of their own. `subtitle` says how the
/// figures were taken.
pub fn svg(rows: &[Row], subtitle: &str) -> String {
    // Bars grouped per configuration.
    let mut groups: Vec<(String, Vec<Bar>)> = Vec::new();
    for row in rows {
        let Some(rps) = row.requests_per_sec else { continue };
        if row.is_floor() {
            let beside_tessera = rows
                .iter()
                .any(|r| !r.is_floor() && r.mode == row.mode && r.requests_per_sec.is_some());
            if !beside_tessera {
                groups.push((
                    row.name.clone(),
                    vec![Bar { label: "floor", value: rps, floor: true, ratio: None }],
                ));
            }
            continue;
        }
        let mut bars = vec![Bar { label: "tessera", value: rps, floor: false, ratio: row.ratio }];
        if let Some(floor) = row.floor_requests_per_sec {
            bars.push(Bar { label: "floor", value: floor, floor: true, ratio: None });
        }
        groups.push((row.name.clone(), bars));
    }
    let max =
        groups.iter().flat_map(|(_, b)| b.iter().map(|bar| bar.value)).fold(0.0, f64::max).max(1.0);
    let step = grid_step(max, 5.0);
    let axis_max = (max / step).ceil() * step;

    let (left, plot_w, right) = (190.0, 520.0, 170.0);
    let (top, bar_h, bar_gap, group_gap) = (78.0, 16.0, 3.0, 14.0);
    let plot_h: f64 = groups
        .iter()
        .map(|(_, b)| b.len() as f64 * (bar_h + bar_gap) - bar_gap + group_gap)
        .sum::<f64>()
        + group_gap;
    let width = left + plot_w + right;
    let height = top + plot_h + 40.0;
    let x = |v: f64| left + v / axis_max * plot_w;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="22" font-size="15" font-weight="bold" fill="#222">Requests per second: tessera-server and the floor</text>"##
    );
    let _ = writeln!(out, r##"<text x="{left}" y="40" fill="#555">{}</text>"##, xml(subtitle));
    // Legend.
    let _ = writeln!(out, r##"<rect x="{left}" y="50" width="12" height="12" fill="#2f6fb3"/>"##);
    let _ =
        writeln!(out, r##"<text x="{}" y="60" fill="#222">tessera-server</text>"##, left + 17.0);
    let _ = writeln!(
        out,
        r##"<rect x="{}" y="50" width="12" height="12" fill="#b0b0b0"/>"##,
        left + 120.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="60" fill="#222">floor (same mode, same run)</text>"##,
        left + 137.0
    );
    // Grid and axis.
    let mut tick = 0.0;
    while tick <= axis_max + step / 2.0 {
        let tx = x(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{top}" x2="{tx:.1}" y2="{:.1}" stroke="#e4e4e4"/>"##,
            top + plot_h
        );
        let _ = writeln!(
            out,
            r##"<text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            top + plot_h + 16.0,
            thousands(tick)
        );
        tick += step;
    }
    let _ = writeln!(
        out,
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#888"/>"##,
        top + plot_h
    );
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">requests/s</text>"##,
        left + plot_w / 2.0,
        top + plot_h + 34.0
    );
    // Bars.
    let mut y = top + group_gap;
    for (name, bars) in &groups {
        let group_h = bars.len() as f64 * (bar_h + bar_gap) - bar_gap;
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#222">{}</text>"##,
            left - 8.0,
            y + group_h / 2.0 + 4.0,
            xml(name)
        );
        for bar in bars {
            let fill = if bar.floor { "#b0b0b0" } else { "#2f6fb3" };
            let w = (x(bar.value) - left).max(1.0);
            let _ = writeln!(
                out,
                r##"<rect class="bar" x="{left}" y="{y:.1}" width="{w:.1}" height="{bar_h}" fill="{fill}"><title>{}: {} {} req/s</title></rect>"##,
                xml(name),
                bar.label,
                thousands(bar.value)
            );
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" fill="#222">{}</text>"##,
                left + w + 4.0,
                y + bar_h - 4.0,
                match bar.ratio {
                    Some(ratio) => format!("{} ({ratio:.2} × floor)", thousands(bar.value)),
                    None => thousands(bar.value),
                }
            );
            y += bar_h + bar_gap;
        }
        y += group_gap - bar_gap;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::wrk::Errors;

    fn measured(name: &str, server: &str, mode: &str, rps: f64) -> Row {
        let mut row = Row::new(name, server, mode, (server == "tessera").then_some("memory"), 1);
        row.requests_per_sec = Some(rps);
        row.load = Some(Outcome {
            requests: rps as u64 * 5,
            duration_us: 5_000_000,
            bytes: 0,
            errors: Errors::default(),
            p50_us: 350,
            p90_us: 500,
            p99_us: 1_250,
            p999_us: 4_000,
            max_us: 9_000,
            mean_us: 360.0,
            loadgen_cpu_us: 0,
        });
        row.cpu_us_per_request = Some(9.6);
        row.idle_rss_kib = Some(4096);
        row.peak_rss_kib = Some(10240);
        row
    }

    #[test]
    fn ratios_compare_with_the_floor_of_the_same_mode() {
        let mut rows = vec![
            measured("floor/opaque", "floor", "opaque", 80_000.0),
            measured("memory/opaque", "tessera", "opaque", 40_000.0),
            measured("memory/jwt-es256", "tessera", "jwt-es256", 10_000.0),
        ];
        compute_ratios(&mut rows);
        assert_eq!(rows[1].ratio, Some(0.5));
        assert_eq!(rows[2].ratio, None, "no floor measured for this mode");
        let table = table(&rows);
        assert!(table.contains("memory/opaque"), "{table}");
        assert!(table.contains("40,000"), "{table}");
        assert!(table.contains("1.25 ms"), "{table}");
        assert!(table.contains("0.50"), "{table}");
        let svg = svg(&rows, "test");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 3, "two bars for opaque, one for ES256");
        assert!(svg.contains("40,000 (0.50 × floor)"), "{svg}");
    }

    #[test]
    fn rounds_summarize_to_the_median() {
        let mut rows = Vec::new();
        for (round, floor, tessera) in
            [(1, 80_000.0, 40_000.0), (2, 60_000.0, 45_000.0), (3, 100_000.0, 20_000.0)]
        {
            let mut these = vec![
                measured("floor/opaque", "floor", "opaque", floor),
                measured("memory/opaque", "tessera", "opaque", tessera),
            ];
            compute_ratios(&mut these);
            for row in &mut these {
                row.round = Some(round);
            }
            rows.extend(these);
        }
        let summary = summarize(&rows);
        assert_eq!(summary.len(), 2);
        assert_eq!(summary[0].requests_per_sec, Some(80_000.0));
        assert_eq!(summary[1].requests_per_sec, Some(40_000.0));
        // Ratios per round: 0.5, 0.75, 0.2.
        assert_eq!(summary[1].ratio, Some(0.5));
        let spread = summary[1].spread.expect("a spread");
        assert_eq!((spread.rounds, spread.min_ratio, spread.max_ratio), (3, Some(0.2), Some(0.75)));
        assert!(table(&summary).contains("median of 3: 20,000–45,000 req/s, ratio 0.20–0.75"));
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), Some(2.5));
        assert_eq!(summarize(&rows[..2]).len(), 2, "one round: rows as they are");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(latency(412), "412 µs");
        assert_eq!(latency(3_456), "3.46 ms");
        assert_eq!(latency(199_000), "199.0 ms");
        assert_eq!(mebibytes(2048), "2.0 MiB");
        assert_eq!(grid_step(96_000.0, 5.0), 20_000.0);
    }
}
