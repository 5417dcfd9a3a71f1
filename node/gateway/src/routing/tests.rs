use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::config::Config;
use starling_providers::Provider;

fn router(text: &str) -> Result<Router, ConfigError> {
    let config = Config::from_toml(text)?;
    let providers = config
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| Provider::build(i, p, None).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let prices = PriceTable::with_overrides(&BTreeMap::new()).expect("prices");
    Router::build(&config, providers, prices)
}

const BASE: &str = r#"
[[providers]]
name = "oa"
kind = "openai"
models = ["gpt-*"]

[[providers]]
name = "oa2"
kind = "openai"
models = ["gpt-4o*"]

[[providers]]
name = "an"
kind = "anthropic"
models = ["claude-*"]

[[models]]
name = "smart"
fallbacks = ["claude-sonnet-4-5"]
[[models.deployments]]
provider = "oa"
model = "gpt-4o"
weight = 3
[[models.deployments]]
provider = "oa2"
model = "gpt-4o-2024-08-06"
weight = 1

[routing.aliases]
fast = "gpt-4o-mini"
"#;

#[test]
fn resolves_configured_alias_prefixed_and_pattern_names() {
    let r = router(BASE).expect("valid");
    let smart = r.resolve("smart").expect("configured");
    assert_eq!(smart.deployments.len(), 2);
    assert_eq!(smart.fallbacks, vec!["claude-sonnet-4-5".to_owned()]);

    let fast = r.resolve("fast").expect("alias");
    assert_eq!(fast.name, "gpt-4o-mini");
    assert_eq!(fast.deployments[0].upstream_model, "gpt-4o-mini");

    let prefixed = r.resolve("an/claude-haiku-4-5").expect("provider/model");
    assert_eq!(&*prefixed.deployments[0].provider.name, "an");
    assert_eq!(prefixed.deployments[0].upstream_model, "claude-haiku-4-5");
    assert!(prefixed.deployments[0].priced);

    // Two providers' patterns match: both become deployments.
    let both = r.resolve("gpt-4o-mini").expect("pattern");
    assert_eq!(both.deployments.len(), 2);

    let e = r.resolve("llama-3").expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(r.resolve("ghost/model").is_err());
}

#[test]
fn pattern_routes_are_cached_so_cooldowns_persist() {
    let r = router(BASE).expect("valid");
    let a = r.resolve("claude-opus-4-1").expect("pattern");
    a.deployments[0].cooldown.trip(60_000);
    let b = r.resolve("claude-opus-4-1").expect("pattern");
    assert!(Arc::ptr_eq(&a, &b));
    assert!(b.deployments[0].cooldown.active(Cooldown::now_ms()));
}

#[test]
fn bad_fallbacks_and_aliases_fail_at_build() {
    let text = BASE.replace(
        "fallbacks = [\"claude-sonnet-4-5\"]",
        "fallbacks = [\"nope\"]",
    );
    match router(&text) {
        Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "models[0].fallbacks[0]"),
        other => panic!("expected an error, got {other:?}"),
    }
    let text = BASE.replace("fast = \"gpt-4o-mini\"", "fast = \"mistral-large\"");
    match router(&text) {
        Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, "routing.aliases.fast"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn weighted_pick_follows_weights() {
    let r = router(BASE).expect("valid");
    let smart = r.resolve("smart").expect("configured");
    let mut counts = [0u32; 2];
    for _ in 0..4_000 {
        let i = smart.pick(&[], false).expect("healthy");
        counts[i] += 1;
    }
    // Weight 3:1 → about 3000:1000. A wide band keeps the test deterministic enough.
    assert!((2_700..=3_300).contains(&counts[0]), "{counts:?}");
}

#[test]
fn cooling_deployments_are_skipped_unless_nothing_else_is_left() {
    let r = router(BASE).expect("valid");
    let smart = r.resolve("smart").expect("configured");
    smart.deployments[0].cooldown.trip(60_000);
    for _ in 0..100 {
        assert_eq!(smart.pick(&[], false), Some(1));
    }
    smart.deployments[1].cooldown.trip(30_000);
    assert_eq!(smart.pick(&[], false), None);
    // Forced: the one whose cooldown ends first.
    assert_eq!(smart.pick(&[], true), Some(1));
    // Already tried deployment 1: the other one.
    assert_eq!(smart.pick(&[1], true), Some(0));
    smart.deployments[0].cooldown.clear();
    assert_eq!(smart.pick(&[], false), Some(0));
}

#[test]
fn listed_models_include_configured_and_aliases() {
    let r = router(BASE).expect("valid");
    let names: Vec<String> = r.listed_models().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"smart".to_owned()));
    assert!(names.contains(&"fast".to_owned()));
    // Wildcard providers list the known models their patterns match.
    assert!(names.contains(&"gpt-4o-mini".to_owned()));
    assert!(names.contains(&"claude-sonnet-4-5".to_owned()));
    assert!(!names.iter().any(|n| n.contains('*')));
}

#[test]
fn metric_labels_name_only_known_models() {
    let text = BASE
        .replace(
            "models = [\"claude-*\"]",
            "models = [\"claude-*\", \"house-model\"]",
        )
        .replace("fast = \"gpt-4o-mini\"", "fast = \"gpt-house\"");
    let r = router(&text).expect("valid");
    let label = |name: &str| r.resolve(name).expect("resolves").metric_label.to_string();
    assert_eq!(label("smart"), "smart");
    // An alias's target is configured, though only a pattern serves it.
    assert_eq!(label("fast"), "gpt-house");
    assert_eq!(label("gpt-4o"), "gpt-4o");
    assert_eq!(label("an/claude-haiku-4-5"), "an/claude-haiku-4-5");
    assert_eq!(label("house-model"), "house-model");
    // Made-up names that a wildcard accepts share one bucket.
    assert_eq!(label("gpt-made-up-1234"), "other");
    assert_eq!(label("an/claude-made-up"), "other");
    let made_up = r.resolve("claude-made-up").expect("pattern");
    assert_eq!(made_up.metric_label.to_string(), "other");
    assert_eq!(made_up.deployments[0].metric_model.to_string(), "other");
    let smart = r.resolve("smart").expect("configured");
    assert_eq!(
        smart.deployments[1].metric_model.to_string(),
        "gpt-4o-2024-08-06"
    );
}
