//! The price table used to compute the ledger's ground-truth cost.
//!
//! It is the gateway's own built-in table (`node/governance/src/prices.toml`), compiled in, so the
//! mock and the gateway price the same model the same way. Prices are USD per million tokens,
//! which is numerically micro-dollars per token: `cost_micros = ceil(tokens × price)`.
//! Prices are turned into integers (millionths of a micro-dollar per token) on load, so costs
//! are exact integer arithmetic and never suffer from float rounding (`100 × 0.15` must be 15,
//! not 16 after a ceil of 15.000000000000002).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

const BUILTIN_PRICES: &str = starling_governance::pricing::BUILTIN_PRICES_TOML;

/// Scale of the integer prices: one unit is 10⁻⁶ micro-dollar per token.
const SCALE: u128 = 1_000_000;

/// Why a price table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The TOML did not parse or did not have the expected shape.
    #[error("price table is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    /// A price was negative, NaN or absurdly large.
    #[error("price {field} of model {model:?} is not a finite non-negative number")]
    BadPrice {
        /// Model entry with the bad price.
        model: String,
        /// Which price.
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, RawPrice>,
}

#[derive(Deserialize)]
struct RawPrice {
    input: f64,
    output: f64,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
}

/// Prices of one model, in 10⁻⁶ micro-dollars per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Input tokens read from the provider's prompt cache (falls back to `input`).
    pub cached_input: u64,
    /// Anthropic cache writes (falls back to `input`).
    pub cache_write: u64,
}

/// A model → price table with exact and longest-prefix lookup.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    /// Sorted by name; lookups are rare enough (once per call) that a scan is fine.
    entries: Vec<(String, ModelPrice)>,
}

fn scaled(model: &str, field: &'static str, usd_per_mtok: f64) -> Result<u64, PriceError> {
    if !usd_per_mtok.is_finite() || !(0.0..=1e9).contains(&usd_per_mtok) {
        return Err(PriceError::BadPrice {
            model: model.to_owned(),
            field,
        });
    }
    // Bounded above, so the cast cannot saturate in practice.
    Ok((usd_per_mtok * SCALE as f64).round() as u64)
}

fn ceil_micros(tokens: u64, price: u64) -> u64 {
    let v = (u128::from(tokens) * u128::from(price)).div_ceil(SCALE);
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl PriceTable {
    /// Parses a table in the format of `prices.toml`.
    pub fn parse(text: &str) -> Result<Self, PriceError> {
        let file: PriceFile = toml::from_str(text)?;
        let mut entries = Vec::with_capacity(file.models.len());
        for (name, p) in file.models {
            let input = scaled(&name, "input", p.input)?;
            let price = ModelPrice {
                input,
                output: scaled(&name, "output", p.output)?,
                cached_input: match p.cached_input {
                    Some(v) => scaled(&name, "cached_input", v)?,
                    None => input,
                },
                cache_write: match p.cache_write {
                    Some(v) => scaled(&name, "cache_write", v)?,
                    None => input,
                },
            };
            entries.push((name, price));
        }
        Ok(Self { entries })
    }

    /// The table compiled in from the gateway's `prices.toml`. If it ever fails to parse
    /// (a unit test guards against that) the mock logs it and prices everything at 0.
    pub fn builtin() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| match PriceTable::parse(BUILTIN_PRICES) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "built-in price table failed to parse; costs will be 0");
                PriceTable::default()
            }
        })
    }

    /// The price of `model`: its exact entry, else the longest entry that is a prefix of it.
    pub fn lookup(&self, model: &str) -> Option<&ModelPrice> {
        self.entries
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }

    /// Cost in micro-dollars: `ceil(tokens × price)` for each kind of token, summed. `input`
    /// counts all prompt tokens, `cached_input` of which were cache reads. Unknown models cost 0.
    pub fn cost_micros(&self, model: &str, input: u64, cached_input: u64, output: u64) -> u64 {
        let Some(p) = self.lookup(model) else {
            return 0;
        };
        let cached = cached_input.min(input);
        ceil_micros(input - cached, p.input)
            .saturating_add(ceil_micros(cached, p.cached_input))
            .saturating_add(ceil_micros(output, p.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses() {
        let t = PriceTable::parse(BUILTIN_PRICES).expect("prices.toml parses");
        assert!(t.lookup("gpt-4o-mini").is_some());
        assert!(t.lookup("claude-sonnet-4-5").is_some());
    }

    #[test]
    fn exact_and_prefix_lookup() {
        let t = PriceTable::builtin();
        // gpt-4o-mini must not be priced as gpt-4o, and a dated snapshot finds its family.
        let mini = t.lookup("gpt-4o-mini").copied();
        let dated = t.lookup("gpt-4o-mini-2024-07-18").copied();
        assert_eq!(mini, dated);
        assert_ne!(t.lookup("gpt-4o").copied(), mini);
        assert!(t.lookup("no-such-model").is_none());
    }

    #[test]
    fn exact_integer_costs() {
        let t = PriceTable::builtin();
        // 0.15 $/Mtok × 100 tokens = 15 µ$ exactly (float maths would ceil to 16).
        assert_eq!(t.cost_micros("gpt-4o-mini", 100, 0, 0), 15);
        // 0.60 × 7 = 4.2 → 5.
        assert_eq!(t.cost_micros("gpt-4o-mini", 0, 0, 7), 5);
        // Input and output are ceiled separately: 0.15 × 1 → 1, 0.6 × 1 → 1.
        assert_eq!(t.cost_micros("gpt-4o-mini", 1, 0, 1), 2);
        // claude-sonnet-4-5: 3 in, 15 out, 0.30 cached.
        assert_eq!(t.cost_micros("claude-sonnet-4-5-20250929", 10, 0, 10), 180);
        assert_eq!(t.cost_micros("claude-sonnet-4-5", 10, 10, 0), 3);
        assert_eq!(t.cost_micros("unknown", 1000, 0, 1000), 0);
    }

    #[test]
    fn rejects_bad_prices() {
        assert!(PriceTable::parse("[models.\"x\"]\ninput = -1.0\noutput = 1.0\n").is_err());
        assert!(PriceTable::parse("[models.\"x\"]\ninput = \"a\"\noutput = 1.0\n").is_err());
        let t = PriceTable::parse("[models.\"x\"]\ninput = 1.0\noutput = 2.0\n").expect("ok");
        // No cached price: falls back to input.
        assert_eq!(t.cost_micros("x", 4, 4, 0), 4);
    }
}
