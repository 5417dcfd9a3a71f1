//! The report directory of a run:
//!
//! - `history.jsonl`: every operation (written during the run);
//! - `ledger.jsonl`: every upstream call the mock served;
//! - `timeline.json`, `timeline.txt`: the faults and their windows;
//! - `logs/`: every node's log;
//! - `verdict.txt`: each checker's verdict and figures; `summary.json`: the same, with the
//!   run's parameters;
//! - `plot.png`: latency and throughput over time, fault windows shaded.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;

use crate::check::{Evidence, Verdict};
use crate::history::{OpKind, Outcome};
use crate::plot::{self, FaultWindow, PlotInput, Sample, SampleKind};
use crate::run::{RunSpec, describe};

/// Writes everything but the history (already written) into the report directory.
pub fn write(
    spec: &RunSpec,
    ev: &Evidence,
    verdicts: &[Verdict],
    started_ms: u64,
) -> anyhow::Result<()> {
    let dir = &spec.report_dir;
    let mut ledger = std::io::BufWriter::new(std::fs::File::create(dir.join("ledger.jsonl"))?);
    for entry in &ev.ledger {
        writeln!(ledger, "{}", serde_json::to_string(entry)?)?;
    }
    ledger.flush()?;
    std::fs::write(
        dir.join("timeline.json"),
        serde_json::to_string_pretty(&ev.timeline)?,
    )?;
    let mut timeline = String::new();
    for r in &ev.timeline {
        let _ = writeln!(
            timeline,
            "{:>8.1} s – {:>8.1} s  {}{}",
            secs(r.start_ms, started_ms),
            secs(r.end_ms, started_ms),
            r.label,
            r.storage
                .as_ref()
                .map_or_else(String::new, |s| format!(" — {}", s.summary()))
        );
    }
    std::fs::write(dir.join("timeline.txt"), timeline)?;
    let passed = verdicts.iter().filter(|v| v.ok).count();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "starling-jepsen: seed {}, {} nodes, {} s, nemeses [{}], workloads {:?}",
        spec.seed,
        spec.nodes,
        spec.time_limit.as_secs(),
        spec.nemeses
            .iter()
            .map(|n| n.name())
            .collect::<Vec<_>>()
            .join(","),
        spec.workloads
    );
    let chats = ev
        .ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Chat { .. }));
    let count = |outcome| chats.clone().filter(|o| o.outcome == outcome).count();
    let _ = writeln!(
        text,
        "operations: {} ok, {} rejected, {} failed, {} indeterminate; {} upstream calls; {} faults\n",
        count(Outcome::Ok),
        count(Outcome::Rejected),
        count(Outcome::Failed),
        count(Outcome::Indeterminate),
        ev.ledger.len(),
        ev.timeline.len()
    );
    for v in verdicts {
        text.push_str(&v.render());
    }
    let _ = writeln!(
        text,
        "\ncheckers: {passed} of {} hold{}",
        verdicts.len(),
        if passed == verdicts.len() {
            ""
        } else {
            " — VIOLATIONS FOUND"
        }
    );
    std::fs::write(dir.join("verdict.txt"), &text)?;
    print!("{text}");
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&json!({
            "run": describe(spec),
            "verdicts": verdicts,
            "operations": ev.ops.len(),
            "upstream_calls": ev.ledger.len(),
        }))?,
    )?;
    draw_plot(spec, ev, started_ms).context("drawing plot.png")?;
    Ok(())
}

/// Copies the nodes' logs into `logs/` of the report (before the work dir is removed).
pub fn copy_logs(dir: &Path, logs: &[PathBuf]) -> anyhow::Result<()> {
    let logs_dir = dir.join("logs");
    std::fs::create_dir_all(&logs_dir)?;
    for log in logs {
        if let Some(name) = log.file_name() {
            // A node that never started has no log; the verdicts say so already.
            let _ = std::fs::copy(log, logs_dir.join(name));
        }
    }
    Ok(())
}

fn secs(ms: u64, start: u64) -> f64 {
    ms.saturating_sub(start) as f64 / 1_000.0
}

fn draw_plot(spec: &RunSpec, ev: &Evidence, started_ms: u64) -> anyhow::Result<()> {
    let samples: Vec<Sample> = ev
        .ops
        .iter()
        .filter(|o| matches!(o.kind, OpKind::Chat { .. }))
        .map(|o| Sample {
            t_s: secs(o.complete_ms, started_ms),
            latency_ms: o.latency_ms() as f64,
            kind: match o.outcome {
                Outcome::Ok => SampleKind::Ok,
                Outcome::Rejected => SampleKind::Rejected,
                Outcome::Failed | Outcome::Indeterminate => SampleKind::Failed,
            },
        })
        .collect();
    let until = samples.iter().map(|s| s.t_s).fold(0.0, f64::max);
    let input = PlotInput {
        title: format!(
            "starling-jepsen seed {} — {} nodes, {} s, nemeses {}{}",
            spec.seed,
            spec.nodes,
            spec.time_limit.as_secs(),
            crate::nemesis::describe_list(&spec.nemeses),
            if spec.combine { " (two at once)" } else { "" }
        ),
        buckets: plot::bucketize(&samples, 1.0, until),
        faults: ev
            .timeline
            .iter()
            .map(|r| FaultWindow {
                start_s: secs(r.start_ms, started_ms),
                end_s: secs(r.end_ms, started_ms),
                label: r.label.clone(),
                lane: r.fault.lane().to_owned(),
            })
            .collect(),
    };
    plot::draw(&spec.report_dir.join("plot.png"), &input)?;
    Ok(())
}
