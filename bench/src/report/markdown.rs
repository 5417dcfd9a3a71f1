//! The markdown tables of a run.

use std::fmt::Write;

use crate::load::Percentiles;
use crate::scenarios::BenchReport;
use crate::scenarios::rates::RateRow;

/// Renders the report as markdown: the machine, then one table per scenario.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let env = &report.environment;
    let _ = writeln!(out, "## Machine and command\n");
    let _ = writeln!(
        out,
        "- {} × {} , {:.1} GiB, Linux {}",
        env.cpus,
        env.cpu_model,
        env.memory_bytes as f64 / (1u64 << 30) as f64,
        env.kernel
    );
    let _ = writeln!(out, "- `{}`", env.command);
    let _ = writeln!(out, "- started {}", env.started);
    if let Some(s) = &env.settings {
        let _ = writeln!(
            out,
            "- each run: {:?} warm-up, {:?} measured, {} connections, max_tokens {}",
            s.warmup, s.duration, s.connections, s.max_tokens
        );
    }

    if !report.idle.is_empty() {
        let _ = writeln!(
            out,
            "\n## Idle cost (no traffic, before each target's load)\n"
        );
        let _ = writeln!(out, "| target | CPU ms per s | RSS |");
        let _ = writeln!(out, "|---|---|---|");
        for r in &report.idle {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} |",
                r.target,
                r.cpu_ms_per_s,
                mb(r.rss_bytes)
            );
        }
    }

    let modes = report.modes();
    for (format, stream) in modes {
        let rows: Vec<&RateRow> = report
            .rates
            .iter()
            .filter(|r| r.format == format && r.stream == stream)
            .collect();
        let _ = writeln!(
            out,
            "\n## Fixed rates: {} format, {}\n",
            format!("{format:?}").to_lowercase(),
            if stream { "streaming" } else { "non-streaming" }
        );
        let _ = writeln!(
            out,
            "| target | offered/s | achieved/s | p50 | p90 | p99 | p99.9 | added p50 | added p99 | added p99.9 | errors | CPU-µs/req | peak RSS |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &rows {
            let p = r.load.latency.unwrap_or_default();
            let a = r.added.unwrap_or_default();
            let has_added = r.added.is_some();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.target,
                r.load.offered_rps,
                r.load.achieved_rps,
                us(p.p50_us),
                us(p.p90_us),
                us(p.p99_us),
                us(p.p999_us),
                added(has_added, a.p50_us),
                added(has_added, a.p99_us),
                added(has_added, a.p999_us),
                r.load.errors(),
                r.cpu_us_per_request
                    .map_or("–".into(), |c| format!("{c:.1}")),
                r.peak_rss_bytes.map_or("–".into(), mb),
            );
        }
        if stream {
            let _ = writeln!(
                out,
                "\n| target | offered/s | TTFT p50 | TTFT p99 | added TTFT p50 | added TTFT p99 | inter-token p50 | inter-token p99 | added inter-token p50 | added inter-token p99 |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
            for r in &rows {
                let t = r.load.ttft.unwrap_or_default();
                let g = r.load.inter_token.unwrap_or_default();
                let at = r.added_ttft.unwrap_or_default();
                let ag = r.added_inter_token.unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.target,
                    r.load.offered_rps,
                    us(t.p50_us),
                    us(t.p99_us),
                    added(r.added_ttft.is_some(), at.p50_us),
                    added(r.added_ttft.is_some(), at.p99_us),
                    us(g.p50_us),
                    us(g.p99_us),
                    added(r.added_inter_token.is_some(), ag.p50_us),
                    added(r.added_inter_token.is_some(), ag.p99_us),
                );
            }
        }
    }

    if !report.max_sustainable.is_empty() {
        let bound = report.max_p99_us.unwrap_or_default();
        let _ = writeln!(
            out,
            "\n## Highest sustained rate with p99 < {}\n",
            us(bound)
        );
        let _ = writeln!(out, "| target | rate/s | p50 | p99 | CPU-µs/req |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for r in &report.max_sustainable {
            let p: Percentiles = r.load.latency.unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} |",
                r.target,
                r.load.achieved_rps,
                us(p.p50_us),
                us(p.p99_us),
                r.cpu_us_per_request
                    .map_or("–".into(), |c| format!("{c:.1}")),
            );
        }
    }

    if !report.memory.is_empty() {
        let _ = writeln!(
            out,
            "\n## Memory against virtual keys (one governed node)\n"
        );
        let _ = writeln!(out, "| keys | RSS | peak RSS | keys created/s |");
        let _ = writeln!(out, "|---|---|---|---|");
        for m in &report.memory {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} |",
                m.keys,
                mb(m.rss_bytes),
                mb(m.peak_rss_bytes),
                m.create_rate
            );
        }
    }
    scale(report, &mut out);
    out
}

/// The cluster-scale tables.
fn scale(report: &BenchReport, out: &mut String) {
    if !report.convergence.is_empty() {
        let _ = writeln!(
            out,
            "\n## Cluster scale: convergence and bandwidth against cluster size\n"
        );
        let _ = writeln!(
            out,
            "| nodes | membership formed | write visible everywhere p50 | p99 | max | 100-write burst: digests equal | idle bandwidth per node | with 10 writes/s |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for r in &report.convergence {
            let _ = writeln!(
                out,
                "| {} | {:.0} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms | {} | {} |",
                r.nodes,
                r.formation.membership_ms,
                r.write_visible.p50_ms,
                r.write_visible.p99_ms,
                r.write_visible.max_ms,
                r.burst.digests_equal_ms,
                rate(r.idle.total_bps),
                rate(r.steady.bandwidth.total_bps),
            );
        }
    }
    if !report.idle_keys.is_empty() {
        let _ = writeln!(out, "\n## Idle sync bandwidth against keys held\n");
        let _ = writeln!(
            out,
            "| catalog entries | state size | gossip per node | sync pull per node | total per node |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for r in &report.idle_keys {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                r.keys,
                mb(r.state_bytes as u64),
                rate(r.idle.gossip_bps),
                rate(r.idle.sync_pull_bps),
                rate(r.idle.total_bps),
            );
        }
    }
    if !report.update_rates.is_empty() {
        let _ = writeln!(out, "\n## Sync bandwidth against counter updates\n");
        let _ = writeln!(
            out,
            "| updates/s (cluster) | achieved | sync push per node | total per node | push bytes per update per peer |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for r in &report.update_rates {
            let n = r.nodes as f64;
            let per_update = if r.achieved_rate > 0.0 && r.nodes > 1 {
                // Every update is pushed from its node to each of the others.
                let cluster_push = r.bandwidth.sync_push_bps * n;
                format!("{:.0} B", cluster_push / r.achieved_rate / (n - 1.0))
            } else {
                "–".into()
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} |",
                r.target_rate,
                r.achieved_rate,
                rate(r.bandwidth.sync_push_bps),
                rate(r.bandwidth.total_bps),
                per_update,
            );
        }
    }
}

/// Bytes per second, in KB/s.
fn rate(bytes_per_s: f64) -> String {
    format!("{:.1} KB/s", bytes_per_s / 1000.0)
}

fn us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

fn added(present: bool, v: i64) -> String {
    if !present {
        return "–".into();
    }
    if v.unsigned_abs() >= 10_000 {
        format!("{:+.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v:+} µs")
    }
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
