use super::*;

fn err(text: &str) -> (String, String) {
    match Config::from_toml(text) {
        Err(ConfigError::Parse { field, problem } | ConfigError::Invalid { field, problem }) => {
            (field, problem)
        }
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn embedded_default_is_valid_and_serves_the_demo() {
    let c = Config::embedded_default().expect("valid");
    assert!(c.auth.keys.is_empty());
    assert!(c.providers.iter().any(|p| p.kind == ProviderKind::Demo));
    assert!(
        c.providers
            .iter()
            .filter(|p| p.kind != ProviderKind::Demo)
            .all(|p| p.optional)
    );
}

#[test]
fn wrong_types_and_unknown_fields_name_the_field() {
    let (field, problem) = err("[server]\nmax_body_bytes = \"big\"\n");
    assert_eq!(field, "server.max_body_bytes");
    assert!(problem.contains("invalid type"), "{problem}");
    assert!(problem.contains("line 2"), "{problem}");

    let (field, problem) = err("[server]\nlisten = \"not an address\"\n");
    assert_eq!(field, "server.listen");
    assert!(!problem.is_empty());

    let (field, problem) = err("[routing]\nretrys = 3\n");
    assert_eq!(field, "routing.retrys");
    assert!(problem.contains("retrys"), "{problem}");

    let (field, _) = err("[[providers]]\nname = \"x\"\nkind = \"openia\"\n");
    assert_eq!(field, "providers[0].kind");
}

#[test]
fn semantic_errors_name_the_field() {
    let cases = [
        (
            "[[providers]]\nname = \"a\"\nkind = \"openai\"\n[[providers]]\nname = \"a\"\nkind = \"anthropic\"\n",
            "providers[1].name",
        ),
        (
            "[[providers]]\nname = \"az\"\nkind = \"azure\"\nbase_url = \"https://x.openai.azure.com\"\n",
            "providers[0].api_version",
        ),
        (
            "[[providers]]\nname = \"v\"\nkind = \"openai_compatible\"\n",
            "providers[0].base_url",
        ),
        (
            "[[providers]]\nname = \"o\"\nkind = \"openai\"\nbase_url = \"ftp://x\"\n",
            "providers[0].base_url",
        ),
        (
            "[[models]]\nname = \"m\"\n[[models.deployments]]\nprovider = \"ghost\"\nmodel = \"x\"\n",
            "models[0].deployments[0].provider",
        ),
        (
            "[[providers]]\nname = \"o\"\nkind = \"openai\"\n[[models]]\nname = \"m\"\n[[models.deployments]]\nprovider = \"o\"\nmodel = \"x\"\nweight = 0\n",
            "models[0].deployments[0].weight",
        ),
        (
            "[[providers]]\nname = \"o\"\nkind = \"openai\"\n[providers.timeouts]\nfirst_byte_ms = 10\ntotal_ms = 5\n",
            "providers[0].timeouts.first_byte_ms",
        ),
        ("[auth]\nkeys = [\"has space\"]\n", "auth.keys[0]"),
        (
            "[pricing.models.\"m\"]\ninput = -1.0\noutput = 1.0\n",
            "pricing.models.m",
        ),
    ];
    for (text, expected) in cases {
        let (field, problem) = err(text);
        assert_eq!(field, expected, "{text}: {problem}");
    }
}

#[test]
fn redacted_print_hides_client_keys() {
    let c = Config::from_toml("[auth]\nkeys = [\"sk-supersecret-123\"]\n").expect("valid");
    let shown = c.to_redacted_toml().expect("renders");
    assert!(!shown.contains("supersecret"), "{shown}");
    assert!(shown.contains("sk-s…[redacted]"), "{shown}");
    // The printed config is itself a valid config.
    Config::from_toml(&shown).expect("round-trips");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let s = secrets::Secret::new("sk-live-abc");
    assert!(!format!("{s:?}").contains("abc"));
    assert!(!format!("{s}").contains("abc"));
}

#[test]
fn server_limits_have_defaults_and_are_validated() {
    let c = Config::from_toml("").expect("valid");
    assert_eq!(c.server.header_read_timeout_ms, 10_000);
    assert_eq!(c.server.body_read_timeout_ms, 30_000);
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.server.max_requests_in_flight, 4_096);
    for field in [
        "header_read_timeout_ms",
        "body_read_timeout_ms",
        "max_connections",
        "max_requests_in_flight",
    ] {
        let (name, problem) = err(&format!("[server]\n{field} = 0\n"));
        assert_eq!(name, format!("server.{field}"), "{problem}");
    }
    let (name, _) = err("[server]\nbody_read_timeout_ms = 3600001\n");
    assert_eq!(name, "server.body_read_timeout_ms");
}

#[test]
fn the_two_default_max_tokens_have_names_of_their_own_and_the_old_one_still_loads() {
    let c = Config::from_toml(
        "[routing]\nanthropic_default_max_tokens = 100\n[governance]\nbudget_default_max_tokens = 200\n",
    )
    .expect("valid");
    assert_eq!(c.routing.anthropic_default_max_tokens, 100);
    assert_eq!(c.governance.budget_default_max_tokens, 200);
    let c = Config::from_toml(
        "[routing]\ndefault_max_tokens = 300\n[governance]\ndefault_max_tokens = 400\n",
    )
    .expect("the earlier name loads");
    assert_eq!(c.routing.anthropic_default_max_tokens, 300);
    assert_eq!(c.governance.budget_default_max_tokens, 400);
}
