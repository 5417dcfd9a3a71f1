//! The monitoring shipped in deploy/ against real `starling` processes:
//!
//! - every metric the Grafana dashboard and the Prometheus alert rules name is exported by a
//!   node that has served some traffic (with the label values they select on);
//! - a real Prometheus (Debian's package) with the shipped scrape job and alert rules scrapes a
//!   3-node cluster on loopback, and one of the dashboard's expressions gives the right answer.
//!
//! The nodes, the virtual key and the Prometheus process come from the bench's target helpers
//! (`starling_bench::targets`), which start processes with ready files on OS-assigned ports and
//! kill them on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use starling_bench::targets::{
    ADMIN_TOKEN, Governance, PeerCommand, StarlingSetup, Target, start_command,
};
use starling_bench::{MockConfig, MockServer};

mod common;
use common::{admin_post, is_root, wait_for};

const BIN: &str = env!("CARGO_BIN_EXE_starling");

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn dashboard() -> Value {
    let path = deploy_dir().join("grafana/dashboards/starling.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("json")
}

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr" | "definition" | "query", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    walk(&dashboard["templating"], &mut out);
    // The data source variable's `query` is a plugin type, not PromQL.
    out.retain(|e| e != "prometheus");
    out
}

fn alert_rules() -> Vec<serde_yaml_ng::Value> {
    let path = deploy_dir().join("prometheus/alerts.yml");
    let rules: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("rules")).expect("yaml");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").clone())
        .collect()
}

fn alert_exprs() -> Vec<String> {
    alert_rules()
        .iter()
        .map(|r| r["expr"].as_str().expect("expr").to_owned())
        .collect()
}

/// A selector in an expression: a `starling_*` metric name and the exact-match label values it
/// selects on (`label="value"`, not `=~` or `!=`), leaving out the labels Prometheus adds
/// (`job`, `instance`) and Grafana variables.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    metric: String,
    labels: Vec<(String, String)>,
}

/// The `starling_*` selectors of a PromQL expression. Quoted strings are skipped when looking
/// for names, so a label value never counts as a metric.
fn selectors(expr: &str) -> Vec<Selector> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'"' || c == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != c {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && expr[i..].starts_with("starling_") {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(expr.len(), |n| i + n);
            let metric = expr[i..end].to_owned();
            let mut labels = Vec::new();
            let mut next = end;
            if expr[end..].starts_with('{') {
                let close = expr[end..]
                    .find('}')
                    .map(|n| end + n)
                    .expect("closed selector");
                for matcher in expr[end + 1..close].split(',') {
                    let Some((name, value)) = matcher.split_once('=') else {
                        continue;
                    };
                    let name = name.trim();
                    // `=~`, `!=` and `!~` select on patterns: not a single value to look for.
                    if name.ends_with('!') || value.starts_with('~') {
                        continue;
                    }
                    let value = value.trim().trim_matches('"');
                    if name == "job" || name == "instance" || value.contains('$') {
                        continue;
                    }
                    labels.push((name.to_owned(), value.to_owned()));
                }
                next = close + 1;
            }
            out.push(Selector { metric, labels });
            i = next;
            continue;
        }
        i += 1;
    }
    out
}

/// The series of a Prometheus text exposition: metric name → label sets.
fn series(exposition: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in exposition.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let mut labels = BTreeMap::new();
        if line[name_end..].starts_with('{')
            && let Some(close) = line.find('}')
        {
            for pair in line[name_end + 1..close].split(',') {
                if let Some((k, v)) = pair.split_once('=') {
                    labels.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
        }
        out.entry(line[..name_end].to_owned())
            .or_default()
            .push(labels);
    }
    out
}

/// What in `selectors` the exposition lacks: names it does not export, or no series with the
/// selected label values.
fn missing(exposition: &str, selectors: &BTreeSet<Selector>) -> Vec<String> {
    let series = series(exposition);
    let mut missing = Vec::new();
    for s in selectors {
        match series.get(&s.metric) {
            None => missing.push(s.metric.clone()),
            Some(sets) => {
                let found = sets.iter().any(|set| {
                    s.labels
                        .iter()
                        .all(|(k, v)| set.get(k).is_some_and(|x| x == v))
                });
                if !found {
                    missing.push(format!("{}{:?}", s.metric, s.labels));
                }
            }
        }
    }
    missing
}

fn all_selectors() -> BTreeSet<Selector> {
    dashboard_exprs(&dashboard())
        .iter()
        .chain(alert_exprs().iter())
        .flat_map(|e| selectors(e))
        .collect()
}

/// Governed nodes in front of `mock`, with per-budget metrics on (the dashboard's budget
/// utilisation panel reads them).
async fn start_nodes(mock: &MockServer, work: &Path, nodes: usize) -> Target {
    starling_providers::ensure_crypto_provider();
    let setup = StarlingSetup {
        binary: PathBuf::from(BIN),
        work: work.to_owned(),
        cpus: None,
        usage_durability: "acknowledged".into(),
        governance_extra: "per_key_metrics = true".into(),
        // A model whose only deployment and fallback both fail on request: retries,
        // cooldowns and a fallback in one request.
        extra_config: "\n[[models]]\nname = \"flaky\"\nfallbacks = [\"gpt-4.1-mini\"]\n\
                       deployments = [{ provider = \"mock-openai\", model = \"gpt-4.1-nano\" }]\n"
            .into(),
    };
    setup
        .start(mock.addr(), Governance::On, nodes)
        .await
        .expect("nodes start")
}

async fn scrape(client: &reqwest::Client, node: std::net::SocketAddr) -> String {
    client
        .get(format!("http://{node}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

#[test]
fn the_expression_parser_finds_names_and_exact_labels() {
    let found = selectors(
        r#"sum by (le) (rate(starling_x_bucket{job="starling", instance=~"$instance", result="rate_limit_exceeded", status=~"5..", kind!="input"}[$__rate_interval])) / on() starling_y and up{state="live"} > "starling_in_string""#,
    );
    assert_eq!(
        found,
        vec![
            Selector {
                metric: "starling_x_bucket".into(),
                labels: vec![("result".into(), "rate_limit_exceeded".into())],
            },
            Selector {
                metric: "starling_y".into(),
                labels: vec![],
            },
        ]
    );
    let exposition = "# TYPE starling_y counter\nstarling_y{a=\"1\"} 3\nstarling_x_bucket{le=\"0.1\",result=\"admitted\"} 1\n";
    let wanted: BTreeSet<Selector> = found.into_iter().collect();
    assert_eq!(
        missing(exposition, &wanted),
        vec!["starling_x_bucket[(\"result\", \"rate_limit_exceeded\")]".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_use_is_exported() {
    let wanted = all_selectors();
    // Enough to mean the files were read: the dashboard alone names over 25 metrics.
    let names: BTreeSet<&str> = wanted.iter().map(|s| s.metric.as_str()).collect();
    assert!(names.len() >= 25, "too few metric names found: {names:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let mock = MockServer::bind(MockConfig {
        inter_token_ms: 20,
        ..MockConfig::default()
    })
    .await
    .expect("mock");
    let target = start_nodes(&mock, dir.path(), 1).await;
    let node = target.addrs[0];
    let client = reqwest::Client::new();
    let chat = |key: &str, body: Value| {
        client
            .post(format!("http://{node}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let key = target.api_key.as_str();

    // Plain and streaming, both dialects: requests, latency, tokens, cost, time to first token.
    let plain = chat(
        key,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .expect("answer");
    assert_eq!(plain.status(), 200);
    let stream = chat(
        key,
        json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "count"}]}),
    )
    .await
    .expect("answer");
    assert_eq!(stream.status(), 200);
    stream.bytes().await.expect("whole stream");
    let messages = client
        .post(format!("http://{node}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(
            &json!({"model": "claude-sonnet-4-5", "max_tokens": 32, "stream": true,
                      "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(messages.status(), 200);
    messages.bytes().await.expect("whole stream");

    // A rate-limit refusal: a key allowed one request a minute, asked until it refuses.
    let limited = admin_post(
        &client,
        format!("http://{node}/admin/v1/keys"),
        ADMIN_TOKEN,
        json!({"name": "one-a-minute", "rpm": 1}),
    )
    .await;
    let limited = limited["key"].as_str().expect("key").to_owned();
    wait_for("a rate-limit refusal", async || {
        let r = chat(
            &limited,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "again"}]}),
        )
        .await
        .ok()?;
        (r.status() == 429).then_some(())
    })
    .await;

    // A stream the client abandons after its first bytes (the mock sends a token every 20 ms,
    // so the rest is still to come).
    let mut abandoned = chat(
        key,
        json!({"model": "gpt-4o-mini", "stream": true,
               "messages": [{"role": "user", "content": "[mock:tokens 500] go on"}]}),
    )
    .await
    .expect("answer");
    assert_eq!(abandoned.status(), 200);
    abandoned.chunk().await.expect("first chunk");
    drop(abandoned);

    // An upstream that keeps failing: retries, cooldowns, a fallback, and a 5xx to the client.
    // Models of their own, so their cooldowns hold back nothing above.
    let failing = chat(
        key,
        json!({"model": "flaky", "messages": [{"role": "user", "content": "[mock:error 500]"}]}),
    )
    .await
    .expect("answer");
    assert!(failing.status().is_server_error(), "{}", failing.status());

    // Budget and cluster gauges are refreshed in the background (every 400 ms) and at scrape
    // time: wait until everything is there rather than guessing how long that takes.
    let mut last = Vec::new();
    let all_there = wait_for_all(&client, node, &wanted, &mut last).await;
    assert!(
        all_there,
        "exported metrics lack what deploy/ uses: {last:#?}"
    );
}

/// Scrapes until nothing in `wanted` is missing (true) or 30 s pass (false, with the last
/// list of what was missing in `last`).
async fn wait_for_all(
    client: &reqwest::Client,
    node: std::net::SocketAddr,
    wanted: &BTreeSet<Selector>,
    last: &mut Vec<String>,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        *last = missing(&scrape(client, node).await, wanted);
        if last.is_empty() {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find_prometheus() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// The shipped prometheus.yml made to scrape `nodes` every second, with the shipped rules.
fn prometheus_config(nodes: &[std::net::SocketAddr]) -> String {
    let path = deploy_dir().join("prometheus/prometheus.yml");
    let mut config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("config")).expect("yaml");
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    let rules = deploy_dir().join("prometheus/alerts.yml");
    config["rule_files"] = serde_yaml_ng::Value::Sequence(vec![
        rules
            .canonicalize()
            .expect("rules")
            .display()
            .to_string()
            .into(),
    ]);
    let jobs = config["scrape_configs"].as_sequence_mut().expect("jobs");
    // Only the shipped `starling` job, with its targets swapped for the loopback nodes.
    jobs.retain(|j| j["job_name"] == "starling");
    assert_eq!(jobs.len(), 1, "prometheus.yml has a `starling` job");
    let targets: Vec<serde_yaml_ng::Value> = nodes.iter().map(|a| a.to_string().into()).collect();
    jobs[0]["static_configs"] =
        serde_yaml_ng::to_value(vec![serde_yaml_ng::Mapping::from_iter([(
            "targets".into(),
            targets.into(),
        )])])
        .expect("yaml");
    serde_yaml_ng::to_string(&config).expect("yaml")
}

/// The expression of the dashboard panel titled `title`, with Grafana's variables filled in.
fn panel_expr(dashboard: &Value, title: &str) -> String {
    let panel = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"));
    panel["targets"][0]["expr"]
        .as_str()
        .expect("expr")
        .replace("$instance", ".*")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
}

async fn query(client: &reqwest::Client, prometheus: &str, expr: &str) -> Option<f64> {
    let url =
        reqwest::Url::parse_with_params(&format!("{prometheus}/api/v1/query"), [("query", expr)])
            .ok()?;
    let body = get_json(client, url).await?;
    let result = body["data"]["result"].as_array()?;
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// A GET's JSON answer (None while the server is not answering, or not with JSON).
async fn get_json(client: &reqwest::Client, url: impl reqwest::IntoUrl) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_three_node_cluster_with_the_shipped_config_and_rules() {
    let Some(prometheus) = find_prometheus() else {
        assert!(
            !is_root(),
            "no prometheus binary on PATH: as root, scripts/test.sh installs it (scripts/deploy-setup.sh)"
        );
        eprintln!(
            "SKIPPED: no prometheus binary on PATH (Debian package `prometheus`; scripts/deploy-setup.sh installs it as root)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mock = MockServer::bind(MockConfig::default()).await.expect("mock");
    let cluster = start_nodes(&mock, dir.path(), 3).await;

    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, prometheus_config(&cluster.addrs)).expect("config");
    let peer = PeerCommand {
        name: "prometheus".into(),
        command: format!(
            "{} --config.file={} --storage.tsdb.path={} --web.listen-address=127.0.0.1:{{port}}",
            prometheus.display(),
            config.display(),
            dir.path().join("tsdb").display()
        ),
        config: None,
    };
    let prom = tokio::task::block_in_place(|| start_command(&peer, mock.addr(), dir.path(), None))
        .expect("prometheus starts");
    let base = format!("http://{}", prom.addrs[0]);
    let client = reqwest::Client::new();

    // Every node is a healthy target.
    wait_for("three healthy starling targets", async || {
        let body = get_json(&client, format!("{base}/api/v1/targets")).await?;
        let up = body["data"]["activeTargets"]
            .as_array()?
            .iter()
            .filter(|t| t["labels"]["job"] == "starling" && t["health"] == "up")
            .count();
        (up == 3).then_some(())
    })
    .await;

    // The dashboard's own expressions: three nodes up, each seeing three live members.
    let dashboard = dashboard();
    let up = panel_expr(&dashboard, "Nodes up");
    let members = panel_expr(&dashboard, "Live members (sum over nodes)");
    wait_for("the dashboard's cluster figures", async || {
        let up = query(&client, &base, &up).await?;
        let members = query(&client, &base, &members).await?;
        (up == 3.0 && members == 9.0).then_some(())
    })
    .await;

    // The shipped rules load and evaluate without errors, and on a healthy cluster the
    // cluster alerts stay quiet.
    let names: BTreeSet<String> = alert_rules()
        .iter()
        .map(|r| r["alert"].as_str().expect("alert").to_owned())
        .collect();
    // The rules as Prometheus last evaluated them, and when (the group's lastEvaluation).
    let snapshot = async || -> Option<(String, Vec<Value>)> {
        let body = get_json(&client, format!("{base}/api/v1/rules")).await?;
        let groups = body["data"]["groups"].as_array()?;
        let at = groups.first()?["lastEvaluation"].as_str()?.to_owned();
        let rules = groups
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        Some((at, rules))
    };
    // The round in progress when the data was seen may have started before it arrived: wait
    // for two more rounds, so the last one surely ran on the cluster's figures.
    let (mut at, _) = wait_for("the rules", async || snapshot().await).await;
    let mut rules = Vec::new();
    for _ in 0..2 {
        (at, rules) = wait_for("a rule evaluation round", async || {
            snapshot().await.filter(|(next, _)| *next != at)
        })
        .await;
    }
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "rule failed to evaluate: {rule}");
        if [
            "StarlingNodeDown",
            "StarlingClusterSplit",
            "StarlingFailClosed",
        ]
        .contains(&rule["name"].as_str().unwrap_or_default())
        {
            assert_eq!(
                rule["state"], "inactive",
                "alert on a healthy cluster: {rule}"
            );
        }
    }
    let loaded: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(loaded, names);
}
