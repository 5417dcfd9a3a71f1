//! Generated configuration documents: the real sections and keys with values of the right
//! type most of the time (extremes included) and of any type otherwise, plus cut and
//! arbitrary text. Loading never panics, and a configuration that loads is usable: it prints
//! and loads again, every duration in it can be added to the clock, and the gateway builds
//! from it.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use toml::{Table, Value};

use super::Config;

/// A non-negative integer (the keys are unsigned): ordinary, zero, or as large as TOML
/// allows. Negative ones come with the junk.
fn int() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (1i64..100_000).prop_map(Value::Integer),
        1 => Just(Value::Integer(0)),
        2 => Just(Value::Integer(i64::MAX)),
        1 => Just(Value::Integer(i64::from(u32::MAX) + 1)),
        1 => (0..=i64::MAX).prop_map(Value::Integer),
    ]
    .boxed()
}

/// A `u32` setting: small, zero or the largest.
fn small() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (1i64..10).prop_map(Value::Integer),
        1 => Just(Value::Integer(0)),
        1 => Just(Value::Integer(i64::from(u32::MAX))),
    ]
    .boxed()
}

fn negative() -> BoxedStrategy<Value> {
    prop_oneof![Just(-1i64), Just(i64::MIN), i64::MIN..0]
        .prop_map(Value::Integer)
        .boxed()
}

fn float() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (0.0f64..100.0).prop_map(Value::Float),
        1 => Just(Value::Float(f64::NAN)),
        1 => Just(Value::Float(f64::INFINITY)),
        1 => Just(Value::Float(-1.0)),
        1 => Just(Value::Float(1e300)),
        2 => (0.0f64..=1.0).prop_map(Value::Float),
    ]
    .boxed()
}

fn string() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => "[a-z0-9_./:-]{1,16}",
        1 => "\\PC{0,24}",
        1 => Just(String::new()),
        1 => Just(" ".to_owned()),
        1 => (1usize..4).prop_map(|k| "x".repeat(k * 5_000)),
    ]
    .prop_map(Value::String)
    .boxed()
}

fn word(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![
        12 => proptest::sample::select(words).prop_map(|w| Value::String(w.to_owned())),
        1 => string(),
    ]
    .boxed()
}

fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Boolean).boxed()
}

fn addr() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => Just("127.0.0.1:0"),
        2 => Just("0.0.0.0:8080"),
        2 => Just("[::1]:65535"),
    ]
    .prop_map(|s| Value::String(s.to_owned()))
    .boxed()
}

fn url() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => Just("http://127.0.0.1:9/v1"),
        1 => Just("https://api.example.com"),
        1 => Just("ftp://x"),
        1 => Just("not a url"),
        1 => Just("http://[::1"),
    ]
    .prop_map(|s| Value::String(s.to_owned()))
    .boxed()
}

fn any_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![int(), negative(), float(), string(), boolean()];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,10}", inner), 0..4)
                .prop_map(|kv| Value::Table(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

fn strings(max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(string(), 0..=max)
        .prop_map(Value::Array)
        .boxed()
}

fn string_map(max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(("[A-Za-z0-9_ -]{0,12}", string()), 0..=max)
        .prop_map(|kv| Value::Table(kv.into_iter().collect()))
        .boxed()
}

/// A table with each key present or not (a name starting with `!` nearly always, with `?`
/// rarely), its value of the right kind or (one time in `junk`, never if 0) anything, and
/// with junk now and then a key that does not exist.
fn table(junk: u32, fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let parts: Vec<_> = fields
        .into_iter()
        .map(|(k, s)| {
            let value = if junk == 0 {
                s
            } else {
                prop_oneof![junk - 1 => s, 1 => any_value()].boxed()
            };
            let (name, presence) = match k.as_bytes().first() {
                Some(b'!') => (&k[1..], 0.97),
                Some(b'?') => (&k[1..], 0.1),
                _ => (k, 0.5),
            };
            proptest::option::weighted(presence, value)
                .prop_map(move |v| v.map(|v| (name.to_owned(), v)))
        })
        .collect();
    let extra = if junk == 0 { 0.001 } else { 0.05 };
    (
        parts,
        proptest::option::weighted(extra, ("[a-z_]{1,12}", any_value())),
    )
        .prop_map(|(parts, extra)| {
            let mut t: Table = parts.into_iter().flatten().collect();
            if let Some((k, v)) = extra {
                t.insert(k, v);
            }
            Value::Table(t)
        })
        .boxed()
}

fn tables(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
    prop::collection::vec(item, 0..=max)
        .prop_map(Value::Array)
        .boxed()
}

const PROVIDER_NAMES: &[&str] = &["openai", "anthropic", "local", "az"];

fn provider(j: u32) -> BoxedStrategy<Value> {
    table(
        j,
        vec![
            ("!name", word(PROVIDER_NAMES)),
            (
                "!kind",
                word(&["openai", "anthropic", "azure", "openai_compatible", "demo"]),
            ),
            ("?preset", word(&["vllm", "ollama", "groq", "deepseek"])),
            ("base_url", url()),
            ("api_key_env", word(&["STARLING_TEST_UNSET_KEY", "PATH"])),
            ("?api_key_file", word(&["/nonexistent/key"])),
            ("api_version", word(&["2024-10-21"])),
            ("models", strings(3)),
            ("optional", boolean()),
            ("headers", string_map(2)),
            (
                "timeouts",
                table(
                    j,
                    vec![
                        ("connect_ms", int()),
                        ("first_byte_ms", int()),
                        ("total_ms", int()),
                    ],
                ),
            ),
        ],
    )
}

fn model(j: u32) -> BoxedStrategy<Value> {
    table(
        j,
        vec![
            ("!name", word(&["gpt-x", "claude-x", "m"])),
            (
                "!deployments",
                tables(
                    table(
                        j,
                        vec![
                            ("!provider", word(PROVIDER_NAMES)),
                            ("!model", string()),
                            ("weight", small()),
                        ],
                    ),
                    3,
                ),
            ),
            ("fallbacks", strings(2)),
        ],
    )
}

/// A whole configuration document: well-typed (extreme values included), a little junk, or
/// a lot.
fn document() -> BoxedStrategy<Table> {
    prop_oneof![2 => document_with(0), 2 => document_with(40), 1 => document_with(4)].boxed()
}

fn document_with(j: u32) -> BoxedStrategy<Table> {
    let sections = vec![
        (
            "server",
            table(
                j,
                vec![
                    ("listen", addr()),
                    ("metrics_listen", addr()),
                    ("max_body_bytes", int()),
                    ("max_json_depth", int()),
                    ("max_upstream_body_bytes", int()),
                    ("shutdown_grace_secs", int()),
                ],
            ),
        ),
        ("auth", table(j, vec![("keys", strings(3))])),
        ("providers", tables(provider(j), 3)),
        ("models", tables(model(j), 2)),
        (
            "routing",
            table(
                j,
                vec![
                    ("retries", small()),
                    ("backoff_initial_ms", int()),
                    ("backoff_max_ms", int()),
                    ("cooldown_ms", int()),
                    (
                        "anthropic_default_max_tokens",
                        (1i64..=i64::from(u32::MAX))
                            .prop_map(Value::Integer)
                            .boxed(),
                    ),
                    ("aliases", string_map(2)),
                ],
            ),
        ),
        (
            "pricing",
            table(
                j,
                vec![(
                    "models",
                    prop::collection::vec(
                        (
                            "[a-z0-9-]{1,10}",
                            table(
                                j,
                                vec![
                                    ("input", float()),
                                    ("output", float()),
                                    ("cached_input", float()),
                                    ("cache_write", float()),
                                ],
                            ),
                        ),
                        0..3,
                    )
                    .prop_map(|kv| Value::Table(kv.into_iter().collect()))
                    .boxed(),
                )],
            ),
        ),
        (
            "logging",
            table(
                j,
                vec![
                    ("format", word(&["text", "json"])),
                    ("level", word(&["info", "debug", "starling=trace"])),
                ],
            ),
        ),
        (
            "cluster",
            table(
                j,
                vec![
                    ("node_id", word(&["n1", "node-2"])),
                    ("cluster_id", string()),
                    ("gossip_listen", addr()),
                    ("gossip_advertise", addr()),
                    ("seeds", strings(2)),
                    ("data_dir", string()),
                    ("?secret_env", string()),
                    ("?secret_file", string()),
                    ("?ca_dir", string()),
                    ("gossip_interval_ms", int()),
                    ("sync_interval_ms", int()),
                    ("snapshot_every", int()),
                    ("dead_node_grace_secs", int()),
                    ("tombstone_min_age_secs", int()),
                ],
            ),
        ),
        (
            "admin",
            table(j, vec![("token_env", string()), ("?token_file", string())]),
        ),
        (
            "governance",
            table(
                j,
                vec![
                    ("stale_after_ms", int()),
                    ("budget_default_max_tokens", int()),
                    ("refill_horizon_ms", int()),
                    ("min_chunk_micros", int()),
                    ("idle_refund_ms", int()),
                    ("mint_lead_ms", int()),
                    ("rights_wait_ms", int()),
                    ("rate_report_interval_ms", int()),
                    ("usage_flush_ms", int()),
                    ("usage_durability", word(&["acknowledged", "batched"])),
                    ("per_key_metrics", boolean()),
                    ("unsafe_skip_rights_check", boolean()),
                ],
            ),
        ),
        (
            "tracing",
            table(
                j,
                vec![
                    ("endpoint", url()),
                    ("enabled", boolean()),
                    ("service_name", string()),
                    (
                        "sample_ratio",
                        (0.0f64..=1.0).prop_map(Value::Float).boxed(),
                    ),
                    ("headers", string_map(2)),
                    ("timeout_ms", int()),
                    ("batch_delay_ms", int()),
                    ("max_queue", int()),
                ],
            ),
        ),
        (
            "request_log",
            table(
                j,
                vec![
                    ("capacity", int()),
                    ("file", string()),
                    ("max_file_bytes", int()),
                    ("keep_files", int()),
                    ("queue", int()),
                    ("bodies", boolean()),
                    ("max_body_bytes", int()),
                ],
            ),
        ),
    ];
    let parts: Vec<_> = sections
        .into_iter()
        .map(|(k, s)| proptest::option::weighted(0.6, s).prop_map(move |v| v.map(|v| (k, v))))
        .collect();
    parts
        .prop_map(|parts| {
            parts
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.to_owned(), v))
                .collect()
        })
        .boxed()
}

/// Every duration setting, as a duration: each must fit on the clock, since the gateway adds
/// them to `Instant::now()` (request deadlines, rights waits, cooldowns, intervals).
fn durations(c: &Config) -> Vec<(String, Duration)> {
    let ms = |name: &str, v: u64| (name.to_owned(), Duration::from_millis(v));
    let secs = |name: &str, v: u64| (name.to_owned(), Duration::from_secs(v));
    let (g, r, cl, t) = (&c.governance, &c.routing, &c.cluster, &c.tracing);
    let mut out = vec![
        secs("server.shutdown_grace_secs", c.server.shutdown_grace_secs),
        ms("routing.backoff_initial_ms", r.backoff_initial_ms),
        ms("routing.backoff_max_ms", r.backoff_max_ms),
        ms("routing.cooldown_ms", r.cooldown_ms),
        ms("governance.stale_after_ms", g.stale_after_ms),
        ms("governance.refill_horizon_ms", g.refill_horizon_ms),
        ms("governance.idle_refund_ms", g.idle_refund_ms),
        ms("governance.mint_lead_ms", g.mint_lead_ms),
        ms("governance.rights_wait_ms", g.rights_wait_ms),
        ms(
            "governance.rate_report_interval_ms",
            g.rate_report_interval_ms,
        ),
        ms("governance.usage_flush_ms", g.usage_flush_ms),
        ms("cluster.gossip_interval_ms", cl.gossip_interval_ms),
        ms("cluster.sync_interval_ms", cl.sync_interval_ms),
        secs("cluster.dead_node_grace_secs", cl.dead_node_grace_secs),
        secs("cluster.tombstone_min_age_secs", cl.tombstone_min_age_secs),
        ms("tracing.timeout_ms", t.timeout_ms),
        ms("tracing.batch_delay_ms", t.batch_delay_ms),
    ];
    for (i, p) in c.providers.iter().enumerate() {
        out.push(ms(
            &format!("providers[{i}].connect_ms"),
            p.timeouts.connect_ms,
        ));
        out.push(ms(
            &format!("providers[{i}].first_byte_ms"),
            p.timeouts.first_byte_ms,
        ));
        out.push(ms(&format!("providers[{i}].total_ms"), p.timeouts.total_ms));
    }
    out
}

/// What must hold of a configuration that loaded.
fn check_usable(config: Config) -> Result<(), TestCaseError> {
    let now = Instant::now();
    for (name, d) in durations(&config) {
        prop_assert!(
            now.checked_add(d).is_some(),
            "{name} = {d:?} overflows the clock"
        );
    }
    let printed = config.to_redacted_toml().expect("prints");
    if let Err(e) = Config::from_toml(&printed) {
        // Redaction rewrites client keys, which may then clash; anything else must reload.
        prop_assert!(e.to_string().contains("auth.keys"), "{e}\n{printed}");
    }
    let mut quiet = config;
    // No exporter thread, no log file and no provider secret from this machine.
    quiet.tracing.enabled = false;
    quiet.tracing.endpoint = None;
    quiet.request_log.file = None;
    for p in &mut quiet.providers {
        p.api_key_env = None;
        p.api_key_file = None;
        p.optional = true;
    }
    let _ = crate::proxy::Gateway::from_config(quiet);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_configs_load_or_name_a_field(doc in document()) {
        let text = toml::to_string(&doc).expect("a table serializes");
        match Config::from_toml(&text) {
            Ok(config) => check_usable(config)?,
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn cut_and_arbitrary_text_never_panics(
        doc in document(),
        cut in any::<prop::sample::Index>(),
        noise in "\\PC{0,200}",
    ) {
        let text = toml::to_string(&doc).expect("a table serializes");
        let at = cut.index(text.len() + 1);
        let head = text.get(..at).unwrap_or(&text);
        for t in [head.to_owned(), noise.clone(), format!("{head}{noise}")] {
            if let Ok(config) = Config::from_toml(&t) {
                check_usable(config)?;
            }
        }
    }
}

/// A configuration that loads, with one provider and one model.
const BASE: &str = r#"
[[providers]]
name = "up"
kind = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"
models = ["m-*"]

[[models]]
name = "m"
deployments = [{ provider = "up", model = "m-1" }]
"#;

/// Every integer setting by its path; `providers` means the first provider's table.
const INTEGER_KEYS: &[(&str, &str)] = &[
    ("server", "max_body_bytes"),
    ("server", "max_json_depth"),
    ("server", "max_upstream_body_bytes"),
    ("server", "shutdown_grace_secs"),
    ("timeouts", "connect_ms"),
    ("timeouts", "first_byte_ms"),
    ("timeouts", "total_ms"),
    ("routing", "backoff_initial_ms"),
    ("routing", "backoff_max_ms"),
    ("routing", "cooldown_ms"),
    ("cluster", "gossip_interval_ms"),
    ("cluster", "sync_interval_ms"),
    ("cluster", "snapshot_every"),
    ("cluster", "dead_node_grace_secs"),
    ("cluster", "tombstone_min_age_secs"),
    ("governance", "stale_after_ms"),
    ("governance", "budget_default_max_tokens"),
    ("governance", "refill_horizon_ms"),
    ("governance", "min_chunk_micros"),
    ("governance", "idle_refund_ms"),
    ("governance", "mint_lead_ms"),
    ("governance", "rights_wait_ms"),
    ("governance", "rate_report_interval_ms"),
    ("governance", "usage_flush_ms"),
    ("tracing", "timeout_ms"),
    ("tracing", "batch_delay_ms"),
    ("tracing", "max_queue"),
    ("request_log", "capacity"),
    ("request_log", "max_file_bytes"),
    ("request_log", "keep_files"),
    ("request_log", "queue"),
    ("request_log", "max_body_bytes"),
];

fn set(doc: &mut Table, section: &str, key: &str, value: Value) {
    let table = if section == "timeouts" {
        let provider = doc
            .get_mut("providers")
            .and_then(Value::as_array_mut)
            .and_then(|a| a.first_mut())
            .and_then(Value::as_table_mut)
            .expect("the base has a provider");
        provider
            .entry("timeouts")
            .or_insert_with(|| Value::Table(Table::new()))
    } else {
        doc.entry(section)
            .or_insert_with(|| Value::Table(Table::new()))
    };
    if let Some(t) = table.as_table_mut() {
        t.insert(key.to_owned(), value);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A working configuration with a few integer settings at generated values (zero, the
    /// largest TOML integer...): it loads or names the field, and if it loads it is usable.
    #[test]
    fn integer_settings_at_extremes(
        settings in prop::collection::vec((prop::sample::select(INTEGER_KEYS), int()), 1..4),
    ) {
        let mut doc: Table = toml::from_str(BASE).expect("base parses");
        for ((section, key), value) in settings {
            set(&mut doc, section, key, value);
        }
        let text = toml::to_string(&doc).expect("a table serializes");
        match Config::from_toml(&text) {
            Ok(config) => check_usable(config)?,
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// Regression: durations as long as TOML allows loaded, then could not be added to the
/// clock: `cluster.dead_node_grace_secs = 9223372036854775807` made chitchat's failure
/// detector panic (`time_of_death + dead_node_grace_period`) once a peer died, and the
/// `*_ms` settings relied on every caller's arithmetic staying within `Instant`'s range.
#[test]
fn durations_beyond_ten_years_are_refused_naming_the_field() {
    for (section, key, field) in [
        (
            "cluster",
            "dead_node_grace_secs",
            "cluster.dead_node_grace_secs",
        ),
        ("timeouts", "total_ms", "providers[0].timeouts.total_ms"),
        ("governance", "rights_wait_ms", "governance.rights_wait_ms"),
        (
            "server",
            "shutdown_grace_secs",
            "server.shutdown_grace_secs",
        ),
        (
            "cluster",
            "tombstone_min_age_secs",
            "cluster.tombstone_min_age_secs",
        ),
    ] {
        let mut doc: Table = toml::from_str(BASE).expect("base parses");
        set(&mut doc, section, key, Value::Integer(i64::MAX));
        let text = toml::to_string(&doc).expect("a table serializes");
        match Config::from_toml(&text) {
            Err(super::ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
        let ten_years = super::validate::MAX_DURATION_MS;
        let at_limit = if key.ends_with("_secs") {
            ten_years / 1_000
        } else {
            ten_years
        };
        let mut doc: Table = toml::from_str(BASE).expect("base parses");
        set(&mut doc, section, key, Value::Integer(at_limit as i64));
        let text = toml::to_string(&doc).expect("a table serializes");
        Config::from_toml(&text).expect("ten years is accepted");
    }
}
