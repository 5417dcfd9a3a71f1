//! A bench run's outputs: `results.json`, `results.md` (the tables docs/benchmarks.md quotes)
//! and the PNG plots.

mod font;
mod markdown;
mod plot;

use std::path::{Path, PathBuf};

use crate::scenarios::BenchReport;

pub use font::{FONT_PATHS, FontError, ensure_font};
pub use markdown::render as markdown;
pub use plot::{PlotError, Series, convergence_vs_size, latency_vs_rate, line_plot};

/// Errors from writing the outputs.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// Writes `results.json`, `results.md` and the latency plots into `dir`; returns the files.
pub fn write(report: &BenchReport, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut files = Vec::new();

    let json = dir.join("results.json");
    let text = serde_json::to_string_pretty(report).map_err(|e| ReportError::Io {
        path: json.clone(),
        source: e.into(),
    })?;
    std::fs::write(&json, text).map_err(io(&json))?;
    files.push(json);

    let md = dir.join("results.md");
    std::fs::write(&md, markdown(report)).map_err(io(&md))?;
    files.push(md);

    let modes = report.modes();
    for (format, stream) in modes {
        let name = format!(
            "latency-{}-{}.png",
            format!("{format:?}").to_lowercase(),
            if stream { "stream" } else { "plain" }
        );
        let path = dir.join(name);
        latency_vs_rate(report, format, stream, &path)?;
        files.push(path);
    }
    if !report.convergence.is_empty() {
        let path = dir.join("convergence-vs-size.png");
        convergence_vs_size(report, &path)?;
        files.push(path);
    }
    Ok(files)
}
