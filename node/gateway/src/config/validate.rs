//! Checks a parsed configuration for values that parse but cannot work.
//!
//! Reference checks that need model resolution (fallbacks, aliases) live in
//! [`crate::routing::Router::build`], which owns resolution.

use std::collections::HashSet;

use super::{Config, ConfigError, ProviderConfig, ProviderKind};

/// The longest duration a setting may name: ten years, in milliseconds. Anything longer
/// means "never" in practice, and durations get added to the current time (chitchat adds
/// `cluster.dead_node_grace_secs` to a node's time of death), which overflows the clock, and
/// panics, for values near the integer limit.
pub const MAX_DURATION_MS: u64 = 10 * 365 * 24 * 3_600 * 1_000;

/// Open access must be asked for anywhere but on a single node on loopback: a node reachable
/// from the network that admits every request without a key is a bill anyone can run up.
///
/// Checked on the config a node starts with, after command-line overrides (`--listen`,
/// `--node-id`), not on a file alone: a file may leave the node id to the command line.
pub fn validate_open_access(config: &Config) -> Result<(), ConfigError> {
    let auth = &config.auth;
    if auth.open == Some(true) && !auth.keys.is_empty() {
        return Err(ConfigError::invalid(
            "auth.open",
            "open access admits every request, so auth.keys would check nothing: remove one of them",
        ));
    }
    let listen = config.server.listen;
    if auth.open_by_default(config.cluster.node_id.is_some()) && !listen.ip().is_loopback() {
        return Err(ConfigError::invalid(
            "auth.open",
            format!(
                "server.listen {listen} is not a loopback address, and with no auth.keys and no \
                 [cluster] (virtual keys) every request would be admitted without a key: add \
                 auth.keys, join a cluster and use virtual keys, or set auth.open = true to serve \
                 open access on purpose"
            ),
        ));
    }
    Ok(())
}

/// Validates everything that can be checked without building the router.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    super::observability::validate(&config.tracing, &config.request_log)?;
    validate_durations(config)?;
    let server = &config.server;
    if server.max_body_bytes == 0 {
        return Err(ConfigError::invalid(
            "server.max_body_bytes",
            "must be greater than 0",
        ));
    }
    if server.max_json_depth < 2 {
        return Err(ConfigError::invalid(
            "server.max_json_depth",
            "must be at least 2",
        ));
    }
    if server.max_upstream_body_bytes == 0 {
        return Err(ConfigError::invalid(
            "server.max_upstream_body_bytes",
            "must be greater than 0",
        ));
    }
    validate_server_limits(server)?;
    for (i, key) in config.auth.keys.iter().enumerate() {
        if key.trim().is_empty() || key.chars().any(char::is_whitespace) {
            return Err(ConfigError::invalid(
                format!("auth.keys[{i}]"),
                "a key must be non-empty and contain no whitespace",
            ));
        }
    }

    let mut names = HashSet::new();
    for (i, provider) in config.providers.iter().enumerate() {
        validate_provider(i, provider)?;
        if !names.insert(provider.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("providers[{i}].name"),
                format!("duplicate provider name {:?}", provider.name),
            ));
        }
    }

    let mut model_names = HashSet::new();
    for (i, model) in config.models.iter().enumerate() {
        if model.name.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("models[{i}].name"),
                "must not be empty",
            ));
        }
        if !model_names.insert(model.name.as_str()) {
            return Err(ConfigError::invalid(
                format!("models[{i}].name"),
                format!("duplicate model name {:?}", model.name),
            ));
        }
        if model.deployments.is_empty() {
            return Err(ConfigError::invalid(
                format!("models[{i}].deployments"),
                "a model needs at least one deployment",
            ));
        }
        for (j, deployment) in model.deployments.iter().enumerate() {
            if !names.contains(deployment.provider.as_str()) {
                return Err(ConfigError::invalid(
                    format!("models[{i}].deployments[{j}].provider"),
                    format!("no provider named {:?}", deployment.provider),
                ));
            }
            if deployment.model.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("models[{i}].deployments[{j}].model"),
                    "must not be empty",
                ));
            }
            if deployment.weight == 0 {
                return Err(ConfigError::invalid(
                    format!("models[{i}].deployments[{j}].weight"),
                    "must be at least 1",
                ));
            }
        }
    }

    let routing = &config.routing;
    if routing.backoff_initial_ms > routing.backoff_max_ms {
        return Err(ConfigError::invalid(
            "routing.backoff_initial_ms",
            "must not exceed routing.backoff_max_ms",
        ));
    }
    if routing.anthropic_default_max_tokens == 0 {
        return Err(ConfigError::invalid(
            "routing.anthropic_default_max_tokens",
            "must be greater than 0",
        ));
    }
    let cluster = &config.cluster;
    // The cluster's own rule (1 to 64 bytes of [A-Za-z0-9._-]), which certificates follow too.
    let valid_node_id = |id: &str| starling_cluster::hlc::NodeId::new(id).is_ok();
    if let Some(id) = &cluster.node_id
        && !valid_node_id(id)
    {
        return Err(ConfigError::invalid(
            "cluster.node_id",
            "use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
        ));
    }
    for (i, id) in cluster.revoked_nodes.iter().enumerate() {
        if !valid_node_id(id) {
            return Err(ConfigError::invalid(
                format!("cluster.revoked_nodes[{i}]"),
                "use 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            ));
        }
        if cluster.node_id.as_deref() == Some(id.as_str()) {
            return Err(ConfigError::invalid(
                format!("cluster.revoked_nodes[{i}]"),
                "is this node's own node_id",
            ));
        }
    }
    let credential_sources = [
        cluster.secret_env.is_some(),
        cluster.secret_file.is_some(),
        cluster.ca_dir.is_some(),
    ];
    if credential_sources.iter().filter(|set| **set).count() > 1 {
        return Err(ConfigError::invalid(
            "cluster.secret_env",
            "set one of secret_env, secret_file or ca_dir",
        ));
    }
    for (name, value) in [
        ("gossip_interval_ms", cluster.gossip_interval_ms),
        ("sync_interval_ms", cluster.sync_interval_ms),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(
                format!("cluster.{name}"),
                "must be greater than 0",
            ));
        }
    }
    for (i, seed) in cluster.seeds.iter().enumerate() {
        let ok = seed
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(ConfigError::invalid(
                format!("cluster.seeds[{i}]"),
                "expected host:port or ip:port",
            ));
        }
    }
    match cluster.expect_nodes {
        Some(0) => {
            return Err(ConfigError::invalid(
                "cluster.expect_nodes",
                "must be at least 1",
            ));
        }
        Some(1) if !cluster.seeds.is_empty() => {
            return Err(ConfigError::invalid(
                "cluster.expect_nodes",
                "1 declares a one-node cluster, which takes no seeds",
            ));
        }
        _ => {}
    }
    let g = &config.governance;
    for (name, value) in [
        ("stale_after_ms", g.stale_after_ms),
        ("budget_default_max_tokens", g.budget_default_max_tokens),
        ("refill_horizon_ms", g.refill_horizon_ms),
        ("min_chunk_micros", g.min_chunk_micros),
        ("idle_refund_ms", g.idle_refund_ms),
        ("rate_report_interval_ms", g.rate_report_interval_ms),
        ("usage_flush_ms", g.usage_flush_ms),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(
                format!("governance.{name}"),
                "must be greater than 0",
            ));
        }
    }
    if config.admin.token_env.is_some() && config.admin.token_file.is_some() {
        return Err(ConfigError::invalid(
            "admin.token_file",
            "set admin.token_env or admin.token_file, not both",
        ));
    }
    for (name, price) in &config.pricing.models {
        price
            .validate()
            .map_err(|problem| ConfigError::invalid(format!("pricing.models.{name}"), problem))?;
    }
    Ok(())
}

/// Every duration setting must fit [`MAX_DURATION_MS`].
fn validate_durations(config: &Config) -> Result<(), ConfigError> {
    let (r, g, c, t) = (
        &config.routing,
        &config.governance,
        &config.cluster,
        &config.tracing,
    );
    let secs = |s: u64| s.saturating_mul(1_000);
    let mut settings = vec![
        (
            "server.shutdown_grace_secs".to_owned(),
            secs(config.server.shutdown_grace_secs),
        ),
        (
            "routing.backoff_initial_ms".to_owned(),
            r.backoff_initial_ms,
        ),
        ("routing.backoff_max_ms".to_owned(), r.backoff_max_ms),
        ("routing.cooldown_ms".to_owned(), r.cooldown_ms),
        ("governance.stale_after_ms".to_owned(), g.stale_after_ms),
        (
            "governance.refill_horizon_ms".to_owned(),
            g.refill_horizon_ms,
        ),
        ("governance.idle_refund_ms".to_owned(), g.idle_refund_ms),
        ("governance.mint_lead_ms".to_owned(), g.mint_lead_ms),
        ("governance.rights_wait_ms".to_owned(), g.rights_wait_ms),
        (
            "governance.rate_report_interval_ms".to_owned(),
            g.rate_report_interval_ms,
        ),
        ("governance.usage_flush_ms".to_owned(), g.usage_flush_ms),
        (
            "cluster.gossip_interval_ms".to_owned(),
            c.gossip_interval_ms,
        ),
        ("cluster.sync_interval_ms".to_owned(), c.sync_interval_ms),
        (
            "cluster.dead_node_grace_secs".to_owned(),
            secs(c.dead_node_grace_secs),
        ),
        (
            "cluster.tombstone_min_age_secs".to_owned(),
            secs(c.tombstone_min_age_secs),
        ),
        ("tracing.timeout_ms".to_owned(), t.timeout_ms),
        ("tracing.batch_delay_ms".to_owned(), t.batch_delay_ms),
    ];
    for (i, p) in config.providers.iter().enumerate() {
        let field = |name: &str| format!("providers[{i}].timeouts.{name}");
        settings.push((field("connect_ms"), p.timeouts.connect_ms));
        settings.push((field("first_byte_ms"), p.timeouts.first_byte_ms));
        settings.push((field("total_ms"), p.timeouts.total_ms));
    }
    match settings.into_iter().find(|(_, ms)| *ms > MAX_DURATION_MS) {
        Some((field, _)) => Err(ConfigError::invalid(
            field,
            "must be at most ten years (315360000000 ms, 315360000 s)",
        )),
        None => Ok(()),
    }
}

fn validate_provider(i: usize, provider: &ProviderConfig) -> Result<(), ConfigError> {
    let field = |name: &str| format!("providers[{i}].{name}");
    if provider.name.trim().is_empty() || provider.name.contains('/') {
        return Err(ConfigError::invalid(
            field("name"),
            "must be non-empty and must not contain '/'",
        ));
    }
    if provider.api_key_env.is_some() && provider.api_key_file.is_some() {
        return Err(ConfigError::invalid(
            field("api_key_file"),
            "set api_key_env or api_key_file, not both",
        ));
    }
    if provider.preset.is_some() && provider.kind != ProviderKind::OpenaiCompatible {
        return Err(ConfigError::invalid(
            field("preset"),
            "presets apply only to kind = \"openai_compatible\"",
        ));
    }
    match provider.kind {
        ProviderKind::Azure => {
            if provider.base_url.is_none() {
                return Err(ConfigError::invalid(
                    field("base_url"),
                    "Azure needs base_url, e.g. https://RESOURCE.openai.azure.com",
                ));
            }
            if provider.api_version.is_none() {
                return Err(ConfigError::invalid(
                    field("api_version"),
                    "Azure needs api_version, e.g. 2024-10-21",
                ));
            }
        }
        ProviderKind::OpenaiCompatible => {
            if provider.base_url.is_none() && provider.preset.is_none() {
                return Err(ConfigError::invalid(
                    field("base_url"),
                    "an openai_compatible provider needs base_url or preset",
                ));
            }
        }
        ProviderKind::Demo => {
            if provider.base_url.is_some() {
                return Err(ConfigError::invalid(
                    field("base_url"),
                    "the demo provider answers locally and takes no base_url",
                ));
            }
        }
        ProviderKind::Openai | ProviderKind::Anthropic => {}
    }
    if let Some(url) = &provider.base_url {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| ConfigError::invalid(field("base_url"), format!("not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::invalid(
                field("base_url"),
                "must be an http:// or https:// URL",
            ));
        }
    }
    for (j, pattern) in provider.models.iter().enumerate() {
        if pattern.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("providers[{i}].models[{j}]"),
                "must not be empty",
            ));
        }
    }
    for (name, value) in &provider.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ConfigError::invalid(
                format!("providers[{i}].headers.{name}"),
                "not a valid header name",
            ));
        }
        if http::HeaderValue::from_str(value).is_err() {
            return Err(ConfigError::invalid(
                format!("providers[{i}].headers.{name}"),
                "not a valid header value",
            ));
        }
    }
    let t = provider.timeouts;
    for (name, value) in [
        ("connect_ms", t.connect_ms),
        ("first_byte_ms", t.first_byte_ms),
        ("total_ms", t.total_ms),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(
                format!("providers[{i}].timeouts.{name}"),
                "must be greater than 0",
            ));
        }
    }
    if t.first_byte_ms > t.total_ms {
        return Err(ConfigError::invalid(
            format!("providers[{i}].timeouts.first_byte_ms"),
            "must not exceed timeouts.total_ms",
        ));
    }
    Ok(())
}

/// The connection and request limits: each must be positive, and the timeouts at most an hour
/// (a longer one is a typo that would let slow clients hold connections).
fn validate_server_limits(server: &super::ServerConfig) -> Result<(), ConfigError> {
    const HOUR_MS: u64 = 3_600_000;
    for (field, value) in [
        (
            "server.header_read_timeout_ms",
            server.header_read_timeout_ms,
        ),
        ("server.body_read_timeout_ms", server.body_read_timeout_ms),
    ] {
        if value == 0 || value > HOUR_MS {
            return Err(ConfigError::invalid(
                field,
                format!("must be between 1 and {HOUR_MS} milliseconds"),
            ));
        }
    }
    for (field, value) in [
        ("server.max_connections", server.max_connections),
        (
            "server.max_requests_in_flight",
            server.max_requests_in_flight,
        ),
    ] {
        if value == 0 {
            return Err(ConfigError::invalid(field, "must be greater than 0"));
        }
    }
    Ok(())
}
