//! Link impairment with the `netem` queueing discipline.

use std::process::Command;

use serde::{Deserialize, Serialize};

use super::exec::{in_namespace, tc_tool};
use super::{HOST_INTERFACE, NetError};

/// Delay used when reordering is asked for without a delay: netem reorders by sending some
/// packets at once while the rest wait for the delay, so without one nothing is reordered.
pub const REORDER_DEFAULT_DELAY_MS: u32 = 10;

/// What netem does to a host's egress (`tc qdisc replace dev eth0 root netem ...`).
///
/// Every field is optional; the default impairs nothing. Percentages are 0 to 100.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetemSpec {
    /// Added latency, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
    /// Random variation of the latency (±), in milliseconds. Without `delay_ms` the base delay
    /// is 0 (or [`REORDER_DEFAULT_DELAY_MS`] when reordering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u32>,
    /// Share of packets dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_percent: Option<f64>,
    /// Share of packets sent twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_percent: Option<f64>,
    /// Share of packets sent immediately, overtaking the delayed rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder_percent: Option<f64>,
}

impl NetemSpec {
    /// Checks that every percentage is a finite number in 0..=100.
    pub fn validate(&self) -> Result<(), NetError> {
        for (name, value) in [
            ("loss_percent", self.loss_percent),
            ("duplicate_percent", self.duplicate_percent),
            ("reorder_percent", self.reorder_percent),
        ] {
            // (No let chain: the workspace's rust-version, 1.85, predates them.)
            if let Some(value) = value {
                if !(value.is_finite() && (0.0..=100.0).contains(&value)) {
                    return Err(NetError::InvalidNetem(format!(
                        "{name} must be within 0..=100, not {value}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The netem arguments, to follow `tc qdisc replace dev eth0 root netem`.
    ///
    /// Does not validate; [`NetemSpec::validate`] does (and `Net::netem` calls it).
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let delay = match (self.delay_ms, self.reorder_percent, self.jitter_ms) {
            (Some(delay), _, _) => Some(delay),
            (None, Some(_), _) => Some(REORDER_DEFAULT_DELAY_MS),
            (None, None, Some(_)) => Some(0),
            (None, None, None) => None,
        };
        if let Some(delay) = delay {
            args.push("delay".to_owned());
            args.push(format!("{delay}ms"));
            if let Some(jitter) = self.jitter_ms.filter(|&jitter| jitter > 0) {
                args.push(format!("{jitter}ms"));
            }
        }
        for (keyword, value) in [
            ("loss", self.loss_percent),
            ("duplicate", self.duplicate_percent),
            ("reorder", self.reorder_percent),
        ] {
            if let Some(value) = value {
                args.push(keyword.to_owned());
                args.push(format!("{value}%"));
            }
        }
        args
    }
}

/// `ip netns exec NAMESPACE tc qdisc replace dev eth0 root netem ARGS...`: what `Net::netem`
/// runs (kept apart so that the command line is tested on kernels without netem too).
pub(super) fn netem_command(namespace: &str, spec: &NetemSpec) -> Command {
    let mut command = in_namespace(namespace, tc_tool());
    command
        .args(["qdisc", "replace", "dev", HOST_INTERFACE, "root", "netem"])
        .args(spec.to_args());
    command
}

/// `ip netns exec NAMESPACE tc qdisc del dev eth0 root`: what `Net::clear_netem` runs.
pub(super) fn clear_netem_command(namespace: &str) -> Command {
    let mut command = in_namespace(namespace, tc_tool());
    command.args(["qdisc", "del", "dev", HOST_INTERFACE, "root"]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spec_has_no_args() {
        assert!(NetemSpec::default().to_args().is_empty());
    }

    #[test]
    fn full_spec() {
        let spec = NetemSpec {
            delay_ms: Some(100),
            jitter_ms: Some(20),
            loss_percent: Some(1.5),
            duplicate_percent: Some(2.0),
            reorder_percent: Some(25.0),
        };
        assert_eq!(
            spec.to_args(),
            [
                "delay",
                "100ms",
                "20ms",
                "loss",
                "1.5%",
                "duplicate",
                "2%",
                "reorder",
                "25%"
            ]
        );
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn reorder_without_delay_gets_the_default_delay() {
        let spec = NetemSpec {
            reorder_percent: Some(50.0),
            ..NetemSpec::default()
        };
        assert_eq!(spec.to_args(), ["delay", "10ms", "reorder", "50%"]);
    }

    #[test]
    fn jitter_alone_and_zero_jitter() {
        let jitter_only = NetemSpec {
            jitter_ms: Some(5),
            ..NetemSpec::default()
        };
        assert_eq!(jitter_only.to_args(), ["delay", "0ms", "5ms"]);
        let zero_jitter = NetemSpec {
            delay_ms: Some(30),
            jitter_ms: Some(0),
            ..NetemSpec::default()
        };
        assert_eq!(zero_jitter.to_args(), ["delay", "30ms"]);
    }

    #[test]
    fn loss_only() {
        let spec = NetemSpec {
            loss_percent: Some(0.1),
            ..NetemSpec::default()
        };
        assert_eq!(spec.to_args(), ["loss", "0.1%"]);
    }

    #[test]
    fn rejects_bad_percentages() {
        for bad in [-1.0, 100.5, f64::NAN, f64::INFINITY] {
            let spec = NetemSpec {
                duplicate_percent: Some(bad),
                ..NetemSpec::default()
            };
            assert!(spec.validate().is_err(), "{bad} accepted");
        }
    }
}
