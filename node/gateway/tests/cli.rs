//! The `starling` binary as an operator runs it: embedded default, `--print-config`, config
//! errors, ready file, separate metrics port, graceful stop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// Kills the child if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &Path, child: &mut Child) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("starling exited early: {status}");
        }
        assert!(std::time::Instant::now() < deadline, "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn print_config_shows_the_embedded_default() {
    let out = Command::new(BIN)
        .args(["serve", "--print-config"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kind = \"demo\""), "{text}");
    assert!(text.contains("api_key_env = \"OPENAI_API_KEY\""), "{text}");
}

#[test]
fn print_config_redacts_client_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[auth]\nkeys = [\"sk-very-secret-key\"]\n").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--print-config", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("very-secret"), "{text}");
}

#[test]
fn invalid_config_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"https://x.openai.azure.com\"\n").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("providers[0].api_version"), "{err}");

    std::fs::write(&path, "[[providers]]\nname = \"o\"\nkind = \"openai\"\napi_key_env = \"STARLING_TEST_SURELY_UNSET\"\n").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("STARLING_TEST_SURELY_UNSET")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("providers[0].api_key_env") && err.contains("STARLING_TEST_SURELY_UNSET"),
        "{err}"
    );
}

/// `starling serve` with `args`, stopping at `--print-config` (so nothing is bound): the
/// config is loaded and validated as at a real start.
fn validate(config: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, config).expect("write");
    Command::new(BIN)
        .args(["serve", "--print-config", "--config"])
        .arg(&path)
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn open_access_on_a_public_address_must_be_asked_for() {
    let public = ["--listen", "0.0.0.0:8080"];
    let out = validate("", &public);
    assert!(!out.status.success(), "a public node started open");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth.open") && err.contains("0.0.0.0:8080") && err.contains("auth.keys"),
        "the error says why and what to set: {err}"
    );
    // Asked for, with static keys, or with virtual keys (a cluster): it starts.
    for (config, args) in [
        ("[auth]\nopen = true\n", &public[..]),
        ("[auth]\nkeys = [\"sk-static-key\"]\n", &public[..]),
        ("", &["--listen", "0.0.0.0:8080", "--node-id", "n1"][..]),
        // A file on a public address that leaves the node id to the command line.
        (
            "[server]\nlisten = \"0.0.0.0:8080\"\n",
            &["--node-id", "n1"][..],
        ),
        ("", &["--listen", "127.0.0.1:8080"][..]),
    ] {
        let out = validate(config, args);
        assert!(
            out.status.success(),
            "{config:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = validate("[auth]\nopen = true\nkeys = [\"sk-static-key\"]\n", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.open"));
}

/// Runs `command` (a `starling serve`) expecting it to refuse to start: returns its standard
/// error once it exits with a failure, and fails the test if it writes its ready file instead.
fn refused_start(mut command: Command) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready.json");
    let log = dir.path().join("stderr.log");
    let child = command
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawns");
    let mut child = Running(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            assert!(!status.success(), "exited cleanly instead of refusing");
            return std::fs::read_to_string(&log).expect("stderr");
        }
        assert!(
            !ready.exists(),
            "it started: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "neither refused nor started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_short_admin_token_is_refused_at_start() {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("STARLING_ADMIN_TOKEN", "short-token");
    let err = refused_start(command);
    assert!(
        err.contains("admin.token_env") && err.contains("at least 16"),
        "{err}"
    );
}

#[test]
fn skipping_the_rights_check_needs_a_test_cluster_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[governance]\nunsafe_skip_rights_check = true\n").expect("write");
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(&path)
        .args(["--listen", "127.0.0.1:0", "--node-id", "n1"])
        .args(["--gossip-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env(
            "STARLING_CLUSTER_SECRET",
            starling_cluster::tls::generate_secret().expect("secret"),
        )
        .env_remove("STARLING_ADMIN_TOKEN");
    let err = refused_start(command);
    assert!(
        err.contains("governance.unsafe_skip_rights_check") && err.contains("keygen --test"),
        "{err}"
    );
    // The hidden keygen flag makes a test secret, which the node accepts (it then serves,
    // so the check happens at a real start: see the Jepsen run with
    // --unsafe-skip-rights-check in scripts/test.sh).
    let out = Command::new(BIN)
        .args(["cluster", "keygen", "--test"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let test = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let parsed = starling_cluster::tls::ClusterSecret::parse(&test).expect("a secret");
    assert!(parsed.is_test());
    // The setting is hidden: the rendered config does not advertise it.
    let out = validate("", &[]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("unsafe_skip_rights_check"));
}

#[tokio::test]
async fn the_default_node_serves_the_demo_and_switches_providers_on_by_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready.json");
    let log = dir.path().join("stderr.log");
    let child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--ready-file",
        ])
        .arg(&ready)
        .env("OPENAI_API_KEY", "sk-from-env-not-logged")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawns");
    let mut node = Running(child);
    let addrs = wait_for_file(&ready, &mut node.0);
    let http = addrs["http"].as_str().expect("http addr").to_owned();
    let metrics = addrs["metrics"].as_str().expect("metrics addr").to_owned();

    starling_providers::ensure_crypto_provider();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{http}/v1/chat/completions"))
        .json(&json!({"model": "starling-demo", "messages": [{"role": "user", "content": "hi there"}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("hi there"))
    );

    // The Anthropic dialect works against the demo too, through translation.
    let r = client
        .post(format!("http://{http}/v1/messages"))
        .json(&json!({"model": "demo", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("body")
            .contains("event: message_stop")
    );

    // Anthropic is off (no key): its models are unknown.
    let r = client
        .post(format!("http://{http}/v1/messages"))
        .json(&json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);

    let m = client
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert!(
        m.text()
            .await
            .expect("text")
            .contains("starling_requests_total")
    );
    let r = client
        .get(format!("http://{http}/metrics"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404, "metrics live on their own port");

    // SIGTERM: a clean exit.
    let pid = node.0.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = node.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
    let logs = std::fs::read_to_string(&log).expect("logs");
    assert!(
        logs.contains("provider on") && logs.contains("\"openai\""),
        "{logs}"
    );
    assert!(logs.contains("open access"), "{logs}");
    assert!(
        !logs.contains("sk-from-env-not-logged"),
        "the key leaked into the logs"
    );
}
