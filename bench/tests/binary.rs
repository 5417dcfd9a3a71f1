//! The `starling-mock` binary: ready file, serving, clean exit on SIGTERM.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("starling-mock-test-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[tokio::test]
async fn binary_writes_ready_file_serves_and_exits_on_sigterm() {
    let dir = scratch_dir();
    let ready = dir.join("ready.json");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_starling-mock"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--output-tokens",
            "4",
            "--ready-file",
        ])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn starling-mock");

    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            let v: Value = serde_json::from_str(&text).expect("ready file is complete JSON");
            break v["http"]
                .as_str()
                .expect("http address")
                .parse()
                .expect("socket address");
        }
        assert!(Instant::now() < deadline, "ready file never appeared");
        assert!(
            child.try_wait().expect("child status").is_none(),
            "mock exited early"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    assert_eq!(get(addr, "/_mock/health", &[]).await.status, 200);
    let v = chat(
        addr,
        &json!({"model": "gpt-4o-mini", "messages": user("hello")}),
    )
    .await
    .json();
    assert_eq!(
        v["usage"]["completion_tokens"], 4,
        "--output-tokens is the default length"
    );

    let pid = child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("mock exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "clean exit, got {exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
