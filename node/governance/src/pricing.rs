//! Model prices and the cost of a request in integer micro-dollars.
//!
//! Prices are kept as nano-dollars per token so that products stay exact integers; each token
//! class's cost is rounded up to whole micro-dollars, so enforcement never under-counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use starling_wire::translate::Usage;

/// The built-in price table, kept as data.
pub const BUILTIN_PRICES_TOML: &str = include_str!("prices.toml");

/// One model's prices in USD per million tokens, as written in the table and the config.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from the provider's prompt cache; defaults to `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Input tokens written to the provider's prompt cache; defaults to `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl PriceEntry {
    /// Checks that every price is a finite, non-negative number.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cached_input", self.cached_input),
            ("cache_write", self.cache_write),
        ] {
            if let Some(v) = value
                && (!v.is_finite() || !(0.0..=1_000_000.0).contains(&v))
            {
                return Err(format!(
                    "{name} must be a price between 0 and 1000000 USD per million tokens"
                ));
            }
        }
        Ok(())
    }

    fn compile(&self) -> ModelPrice {
        // USD per million tokens equals micro-dollars per token; times 1000 gives nano-dollars.
        let nanos = |usd_per_mtok: f64| (usd_per_mtok * 1_000.0).round() as u64;
        ModelPrice {
            input: nanos(self.input),
            output: nanos(self.output),
            cached_input: nanos(self.cached_input.unwrap_or(self.input)),
            cache_write: nanos(self.cache_write.unwrap_or(self.input)),
        }
    }
}

/// One model's prices in nano-dollars per token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelPrice {
    /// Uncached input.
    pub input: u64,
    /// Output.
    pub output: u64,
    /// Cache reads.
    pub cached_input: u64,
    /// Cache writes.
    pub cache_write: u64,
}

impl ModelPrice {
    /// The cost of `usage`, in micro-dollars. Each token class is rounded up on its own, the
    /// same rule the mock provider's ledger uses, so the two agree to the micro-dollar.
    pub fn cost_micros(&self, usage: &Usage) -> u64 {
        [
            (usage.input_tokens, self.input),
            (usage.output_tokens, self.output),
            (usage.cached_input_tokens, self.cached_input),
            (usage.cache_write_tokens, self.cache_write),
        ]
        .iter()
        .map(|(tokens, nanos)| tokens.saturating_mul(*nanos).div_ceil(1_000))
        .fold(0u64, u64::saturating_add)
    }
}

/// Error loading a price table.
#[derive(Debug, thiserror::Error)]
#[error("invalid price table: {0}")]
pub struct PriceTableError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    models: BTreeMap<String, PriceEntry>,
}

/// Prices by model name, matched exactly or by longest prefix.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    // Sorted by name; prefix lookups walk it backwards from the insertion point.
    entries: Vec<(String, ModelPrice)>,
}

impl PriceTable {
    /// The built-in table with the config's overrides applied on top.
    pub fn with_overrides(
        overrides: &BTreeMap<String, PriceEntry>,
    ) -> Result<Self, PriceTableError> {
        let file: PriceFile =
            toml::from_str(BUILTIN_PRICES_TOML).map_err(|e| PriceTableError(e.to_string()))?;
        let mut merged = file.models;
        for (name, entry) in overrides {
            merged.insert(name.clone(), *entry);
        }
        let mut entries = Vec::with_capacity(merged.len());
        for (name, entry) in merged {
            entry
                .validate()
                .map_err(|problem| PriceTableError(format!("{name}: {problem}")))?;
            entries.push((name, entry.compile()));
        }
        Ok(Self { entries })
    }

    /// Every model name in the table, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }

    /// Whether the table has an entry named exactly `model` (a prefix match does not count).
    pub fn contains(&self, model: &str) -> bool {
        self.entries
            .binary_search_by(|(n, _)| n.as_str().cmp(model))
            .is_ok()
    }

    /// The price of `model`: an exact entry, else the longest entry that prefixes it.
    pub fn lookup(&self, model: &str) -> Option<ModelPrice> {
        if let Ok(i) = self
            .entries
            .binary_search_by(|(n, _)| n.as_str().cmp(model))
        {
            return self.entries.get(i).map(|(_, p)| *p);
        }
        self.entries
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, price)| *price)
    }
}

/// Formats micro-dollars as a decimal USD string, e.g. `0.000125`.
pub fn micros_to_usd_string(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::with_overrides(&BTreeMap::new()).expect("built-in table parses")
    }

    #[test]
    fn builtin_table_has_current_models() {
        let t = table();
        for model in [
            "gpt-4o",
            "gpt-4o-mini",
            "claude-sonnet-4-5",
            "claude-haiku-4-5",
        ] {
            assert!(t.lookup(model).is_some(), "{model} missing");
        }
    }

    #[test]
    fn dated_snapshots_match_their_family_by_longest_prefix() {
        let t = table();
        let mini = t.lookup("gpt-4o-mini").expect("present");
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_ne!(t.lookup("gpt-4o-2024-08-06"), Some(mini));
        assert_eq!(t.lookup("gpt-4o-2024-08-06"), t.lookup("gpt-4o"));
        assert_eq!(t.lookup("unknown-model"), None);
    }

    #[test]
    fn cost_is_exact_in_micro_dollars_and_rounds_up() {
        let t = table();
        let price = t.lookup("gpt-4o").expect("present");
        // 1000 input tokens at $2.50/M = 2500 µ$, 500 output at $10/M = 5000 µ$.
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 500,
            ..Usage::default()
        };
        assert_eq!(price.cost_micros(&usage), 7_500);
        // 1 token of gpt-4o-mini input is 0.15 µ$: rounds up to 1.
        let mini = t.lookup("gpt-4o-mini").expect("present");
        let one = Usage {
            input_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(mini.cost_micros(&one), 1);
    }

    #[test]
    fn cache_prices_apply_and_default_to_input() {
        let t = table();
        let sonnet = t.lookup("claude-sonnet-4-5-20250929").expect("present");
        let usage = Usage {
            cached_input_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
            ..Usage::default()
        };
        assert_eq!(sonnet.cost_micros(&usage), 300_000 + 3_750_000);
        let turbo = t.lookup("gpt-4-turbo").expect("present");
        assert_eq!(turbo.cached_input, turbo.input);
    }

    #[test]
    fn overrides_replace_and_extend() {
        let mut o = BTreeMap::new();
        o.insert(
            "my-local-llama".to_owned(),
            PriceEntry {
                input: 0.5,
                output: 1.0,
                cached_input: None,
                cache_write: None,
            },
        );
        o.insert(
            "gpt-4o".to_owned(),
            PriceEntry {
                input: 1.0,
                output: 2.0,
                cached_input: None,
                cache_write: None,
            },
        );
        let t = PriceTable::with_overrides(&o).expect("valid");
        assert_eq!(t.lookup("my-local-llama").map(|p| p.input), Some(500));
        assert_eq!(t.lookup("gpt-4o").map(|p| p.output), Some(2_000));
    }

    #[test]
    fn usd_formatting() {
        assert_eq!(micros_to_usd_string(0), "0.000000");
        assert_eq!(micros_to_usd_string(7_500), "0.007500");
        assert_eq!(micros_to_usd_string(12_345_678), "12.345678");
    }
}
