//! The bench harness works end to end: `starling-bench smoke` starts the mock and every
//! Starling target, runs each scenario briefly and writes its outputs. Nothing here asserts a
//! speed; only that each part measured something and said so.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn smoke_run_measures_every_target_and_writes_the_report() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_starling-bench"));
    let bin_dir = exe.parent().expect("binary dir").to_owned();
    assert!(
        bin_dir.join("starling").is_file(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins; \
         scripts/test.sh does)",
        bin_dir.join("starling").display()
    );
    let out = tempfile::tempdir().expect("temp dir");
    let status = Command::new(&exe)
        .arg("smoke")
        .arg("--out")
        .arg(out.path())
        .arg("--bin-dir")
        .arg(&bin_dir)
        .status()
        .expect("running starling-bench");
    assert!(status.success(), "starling-bench smoke failed: {status}");

    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("results.json")).expect("results.json"),
    )
    .expect("results.json parses");
    let rows = json["rates"].as_array().expect("rate rows");
    for target in [
        "direct",
        "starling",
        "starling-governed",
        "starling-cluster3",
    ] {
        for (format, stream) in [
            ("openai", false),
            ("openai", true),
            ("anthropic", false),
            ("anthropic", true),
        ] {
            let row = rows
                .iter()
                .find(|r| r["target"] == target && r["format"] == format && r["stream"] == stream)
                .unwrap_or_else(|| panic!("no row for {target} {format} stream={stream}"));
            assert!(
                row["load"]["ok"].as_u64().unwrap_or(0) > 0,
                "{target} {format} stream={stream} served nothing: {row}"
            );
            assert_eq!(row["load"]["status_errors"], 0, "{row}");
            if stream {
                assert!(row["load"]["ttft"]["p50_us"].is_u64(), "no TTFT: {row}");
            }
            if target != "direct" {
                assert!(row["added"]["p50_us"].is_i64(), "not compared: {row}");
                assert!(row["cpu_us_per_request"].as_f64().is_some(), "{row}");
            }
        }
    }
    let memory = json["memory"].as_array().expect("memory rows");
    assert_eq!(memory.len(), 1, "{memory:?}");
    assert_eq!(memory[0]["keys"], 50);
    assert!(memory[0]["rss_bytes"].as_u64().unwrap_or(0) > 0);

    assert_eq!(
        json["convergence"][0]["nodes"], 3,
        "{}",
        json["convergence"]
    );
    assert_eq!(json["idle_keys"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["update_rates"].as_array().map(Vec::len), Some(2));

    let md = std::fs::read_to_string(out.path().join("results.md")).expect("results.md");
    assert!(md.contains("| starling-governed |"), "{md}");
    assert!(md.contains("## Cluster scale"), "{md}");
    for name in [
        "latency-openai-plain.png",
        "latency-openai-stream.png",
        "latency-anthropic-plain.png",
        "latency-anthropic-stream.png",
        "convergence-vs-size.png",
    ] {
        let png = std::fs::read(out.path().join(name)).expect(name);
        assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    }
}
