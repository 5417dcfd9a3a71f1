//! Model resolution and deployment choice.
//!
//! A client's model name resolves, in order, through: an alias; a configured `[[models]]`
//! entry; a `provider/model` name; and the model patterns of the providers. A resolved
//! [`ModelRoute`] lists weighted deployments and fallbacks. Deployments that fail go into
//! cooldown and are skipped while others are healthy.

mod cooldown;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use metrics::SharedString;
use rand::Rng;

pub use cooldown::Cooldown;

use crate::config::{Config, ConfigError, RoutingConfig};
use starling_governance::pricing::{ModelPrice, PriceTable};
use starling_providers::Provider;
use starling_wire::api::{ApiError, ErrorKind};
use starling_wire::model_pattern::glob_match;

/// Routes resolved from patterns are cached (so their cooldowns persist) up to this many.
const DYNAMIC_ROUTE_CACHE_LIMIT: usize = 4_096;

/// One place a model runs.
#[derive(Debug)]
pub struct Deployment {
    /// The provider serving it.
    pub provider: Arc<Provider>,
    /// The model name the provider knows.
    pub upstream_model: String,
    /// Relative share of traffic.
    pub weight: u32,
    /// Its price, from the upstream model name.
    pub price: ModelPrice,
    /// Whether the price table knows the upstream model (unknown models cost 0).
    pub priced: bool,
    /// The upstream model as a metric label: its name when the configuration or the price
    /// table names it, else [`crate::metrics::OTHER_MODEL`].
    pub metric_model: SharedString,
    /// When it may be used again after failing.
    pub cooldown: Cooldown,
}

/// A resolved public model name.
#[derive(Debug)]
pub struct ModelRoute {
    /// The public name, used in responses.
    pub name: String,
    /// The public name as a metric label: the name itself when the configuration or the price
    /// table names it, else [`crate::metrics::OTHER_MODEL`], so that names clients make up and
    /// a wildcard pattern accepts create no new series. Resolved once with the route; cloning
    /// it allocates nothing.
    pub metric_label: SharedString,
    /// Where it runs.
    pub deployments: Vec<Deployment>,
    /// Other public names to try when this one fails.
    pub fallbacks: Vec<String>,
}

impl ModelRoute {
    /// Picks a deployment by weight among those not in cooldown and not in `tried`.
    /// With `allow_cooling`, falls back to the deployment whose cooldown ends first.
    pub fn pick(&self, tried: &[usize], allow_cooling: bool) -> Option<usize> {
        let now = Cooldown::now_ms();
        let healthy = |(i, d): &(usize, &Deployment)| !tried.contains(i) && !d.cooldown.active(now);
        let total: u64 = self
            .deployments
            .iter()
            .enumerate()
            .filter(healthy)
            .map(|(_, d)| u64::from(d.weight))
            .sum();
        if total > 0 {
            let mut ticket = rand::rng().random_range(0..total);
            for (i, d) in self.deployments.iter().enumerate().filter(healthy) {
                let w = u64::from(d.weight);
                if ticket < w {
                    return Some(i);
                }
                ticket -= w;
            }
        }
        if !allow_cooling {
            return None;
        }
        let untried = self
            .deployments
            .iter()
            .enumerate()
            .filter(|(i, _)| !tried.contains(i))
            .min_by_key(|(_, d)| d.cooldown.until_ms());
        match untried {
            Some((i, _)) => Some(i),
            // Every deployment was tried: retry the one that recovers first.
            None => self
                .deployments
                .iter()
                .enumerate()
                .min_by_key(|(_, d)| d.cooldown.until_ms())
                .map(|(i, _)| i),
        }
    }
}

/// Resolves model names to routes.
#[derive(Debug)]
pub struct Router {
    providers: Vec<Arc<Provider>>,
    models: HashMap<String, Arc<ModelRoute>>,
    aliases: HashMap<String, String>,
    /// Model names the configuration writes out (alias targets, fallbacks), which may resolve
    /// through patterns: they label metrics under their own names.
    configured_names: HashSet<String>,
    dynamic: RwLock<HashMap<String, Arc<ModelRoute>>>,
    prices: PriceTable,
    /// Retry, backoff and cooldown settings.
    pub settings: RoutingConfig,
}

impl Router {
    /// Builds the router and checks that every alias and fallback resolves.
    pub fn build(
        config: &Config,
        providers: Vec<Arc<Provider>>,
        prices: PriceTable,
    ) -> Result<Self, ConfigError> {
        let mut router = Self {
            providers,
            models: HashMap::new(),
            aliases: config.routing.aliases.clone().into_iter().collect(),
            configured_names: config
                .routing
                .aliases
                .values()
                .chain(config.models.iter().flat_map(|m| m.fallbacks.iter()))
                .cloned()
                .collect(),
            dynamic: RwLock::new(HashMap::new()),
            prices,
            settings: config.routing.clone(),
        };
        for (i, model) in config.models.iter().enumerate() {
            let mut deployments = Vec::with_capacity(model.deployments.len());
            for (j, d) in model.deployments.iter().enumerate() {
                let Some(provider) = router.provider(&d.provider) else {
                    // A configured provider that was skipped (optional, no key) serves nothing.
                    if config.providers.iter().any(|p| p.name == d.provider) {
                        continue;
                    }
                    return Err(ConfigError::invalid(
                        format!("models[{i}].deployments[{j}].provider"),
                        format!("no provider named {:?}", d.provider),
                    ));
                };
                deployments.push(router.deployment(provider, &d.model, d.weight, true));
            }
            if deployments.is_empty() {
                tracing::warn!(model = %model.name, "no deployment of this model has a usable provider; it will return 404");
                continue;
            }
            router.models.insert(
                model.name.clone(),
                Arc::new(ModelRoute {
                    name: model.name.clone(),
                    metric_label: label(&model.name, true),
                    deployments,
                    fallbacks: model.fallbacks.clone(),
                }),
            );
        }
        for (alias, target) in &config.routing.aliases {
            if router.aliases.contains_key(target) || router.resolve(target).is_err() {
                return Err(ConfigError::invalid(
                    format!("routing.aliases.{alias}"),
                    format!("target {target:?} is not a servable model name"),
                ));
            }
        }
        for (i, model) in config.models.iter().enumerate() {
            for (j, fallback) in model.fallbacks.iter().enumerate() {
                if fallback == &model.name {
                    return Err(ConfigError::invalid(
                        format!("models[{i}].fallbacks[{j}]"),
                        "a model cannot fall back to itself",
                    ));
                }
                if router.resolve(fallback).is_err() {
                    return Err(ConfigError::invalid(
                        format!("models[{i}].fallbacks[{j}]"),
                        format!("{fallback:?} is not a servable model name"),
                    ));
                }
            }
        }
        Ok(router)
    }

    /// The configured providers that are switched on.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    fn provider(&self, name: &str) -> Option<Arc<Provider>> {
        self.providers.iter().find(|p| &*p.name == name).cloned()
    }

    /// A deployment of `model`; `configured` when the config names the model.
    fn deployment(
        &self,
        provider: Arc<Provider>,
        model: &str,
        weight: u32,
        configured: bool,
    ) -> Deployment {
        let price = self.prices.lookup(model);
        Deployment {
            provider,
            upstream_model: model.to_owned(),
            weight,
            price: price.unwrap_or_default(),
            priced: price.is_some(),
            metric_model: label(model, configured || self.is_known(model)),
            cooldown: Cooldown::default(),
        }
    }

    /// Resolves a client's model name, or fails with a 404 in the API's terms.
    pub fn resolve(&self, requested: &str) -> Result<Arc<ModelRoute>, ApiError> {
        let name = self
            .aliases
            .get(requested)
            .map_or(requested, String::as_str);
        if let Some(route) = self.models.get(name) {
            return Ok(route.clone());
        }
        if let Ok(cache) = self.dynamic.read()
            && let Some(route) = cache.get(name)
        {
            return Ok(route.clone());
        }
        let route = self.resolve_dynamic(name).ok_or_else(|| {
            ApiError::new(
                ErrorKind::NotFound,
                format!("The model `{requested}` does not exist or is not served by this gateway"),
            )
            .with_code("model_not_found")
            .with_param("model")
        })?;
        let route = Arc::new(route);
        if let Ok(mut cache) = self.dynamic.write()
            && cache.len() < DYNAMIC_ROUTE_CACHE_LIMIT
        {
            return Ok(cache.entry(name.to_owned()).or_insert(route).clone());
        }
        Ok(route)
    }

    fn resolve_dynamic(&self, name: &str) -> Option<ModelRoute> {
        if let Some((provider, model)) = name.split_once('/')
            && let Some(provider) = self.provider(provider)
            && !model.is_empty()
        {
            return Some(ModelRoute {
                name: name.to_owned(),
                metric_label: label(name, self.is_known(model)),
                deployments: vec![self.deployment(provider, model, 1, false)],
                fallbacks: Vec::new(),
            });
        }
        let deployments: Vec<Deployment> = self
            .providers
            .iter()
            .filter(|p| p.serves(name))
            .map(|p| self.deployment(p.clone(), name, 1, false))
            .collect();
        (!deployments.is_empty()).then(|| ModelRoute {
            name: name.to_owned(),
            metric_label: label(name, self.is_known(name)),
            deployments,
            fallbacks: Vec::new(),
        })
    }

    /// Whether `model`, reached through a pattern, is named by the configuration (an alias
    /// target, a fallback, a provider's exact model) or the price table: only such names
    /// become metric labels.
    fn is_known(&self, model: &str) -> bool {
        self.prices.contains(model)
            || self.configured_names.contains(model)
            || self
                .providers
                .iter()
                .any(|p| p.patterns.iter().any(|pattern| pattern == model))
    }

    /// Public model names for `/v1/models`: configured models, aliases, exact patterns, and the
    /// price table's models that wildcard patterns match.
    pub fn listed_models(&self) -> Vec<(String, Arc<str>)> {
        let mut out: Vec<(String, Arc<str>)> = self
            .models
            .values()
            .filter_map(|r| {
                r.deployments
                    .first()
                    .map(|d| (r.name.clone(), d.provider.name.clone()))
            })
            .collect();
        for (alias, target) in &self.aliases {
            if let Ok(route) = self.resolve(target)
                && let Some(d) = route.deployments.first()
            {
                out.push((alias.clone(), d.provider.name.clone()));
            }
        }
        for provider in &self.providers {
            for pattern in &provider.patterns {
                if pattern.contains('*') {
                    // A wildcard cannot be listed; the priced models it matches can.
                    for name in self.prices.names().filter(|n| glob_match(pattern, n)) {
                        out.push((name.to_owned(), provider.name.clone()));
                    }
                } else {
                    out.push((pattern.clone(), provider.name.clone()));
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// `name` as a metric label when `known`, else the shared bucket for unnamed models.
fn label(name: &str, known: bool) -> SharedString {
    if known {
        SharedString::from_shared(Arc::<str>::from(name))
    } else {
        SharedString::const_str(crate::metrics::OTHER_MODEL)
    }
}

#[cfg(test)]
mod tests;
