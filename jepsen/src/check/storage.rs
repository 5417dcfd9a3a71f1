//! Storage: under every storage fault the node said what happened (see [`crate::storage`]):
//! a full disk reported as a failed store on `/readyz` and in its metrics, damaged files moved
//! aside and named in its log, and after the restart the reason its new incarnation started
//! with, as `starling_cluster_incarnation_start{reason}`. The nemesis observed all of it and
//! wrote it on the fault's timeline record; this turns what is missing into violations.
//! Budgets, spend and writes under these faults are the other checkers' business.

use super::{Evidence, Verdict};
use crate::nemesis::Fault;

/// Checks every storage fault's record.
pub fn check(ev: &Evidence) -> Verdict {
    let mut v = Verdict::new("storage");
    let mut faults = 0;
    for record in &ev.timeline {
        if record.fault.storage_node().is_none() {
            continue;
        }
        faults += 1;
        match &record.storage {
            Some(report) => {
                v.figure(format!("{}: {}", record.label, report.summary()));
                for violation in report.violations() {
                    v.violation(format!("{}: {violation}", record.label));
                }
            }
            None => v.violation(format!("{}: no report of what happened", record.label)),
        }
    }
    if faults == 0 {
        v.figure("no storage faults in this run");
    }
    let kinds = |want: fn(&Fault) -> bool| ev.timeline.iter().filter(|r| want(&r.fault)).count();
    if faults > 0 {
        v.figure(format!(
            "{} disk-full, {} flip-byte, {} truncate-snapshot",
            kinds(|f| matches!(f, Fault::DiskFull { .. })),
            kinds(|f| matches!(f, Fault::FlipByte { .. })),
            kinds(|f| matches!(f, Fault::TruncateSnapshot { .. })),
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{evidence, fault};
    use crate::storage::{Damage, REASON_DAMAGED, StorageReport};

    #[test]
    fn a_wrong_or_missing_reason_is_a_violation() {
        let mut ev = evidence(3);
        assert!(check(&ev).ok);
        let mut flip = fault(Fault::FlipByte { node: 1 }, 1_000, 9_000);
        flip.storage = Some(StorageReport {
            expected_reason: Some(REASON_DAMAGED.into()),
            damage: Some(Damage {
                file: "wal-00000000000000000002.log".into(),
                what: "byte 100 flipped".into(),
            }),
            incarnation_start: vec![REASON_DAMAGED.into()],
            moved_aside: Some("damaged-1700000000000".into()),
            logged: Some(true),
            ..StorageReport::default()
        });
        ev.timeline.push(flip.clone());
        let v = check(&ev);
        assert!(v.ok, "{}", v.render());
        if let Some(report) = flip.storage.as_mut() {
            report.incarnation_start = vec!["resumed".into()];
        }
        ev.timeline.push(flip);
        let v = check(&ev);
        assert!(!v.ok);
        assert!(
            v.violations[0].starts_with("flip-byte n2: after the restart"),
            "{v:?}"
        );
        ev.timeline = vec![fault(Fault::TruncateSnapshot { node: 0 }, 0, 1)];
        assert!(!check(&ev).ok, "a storage fault without a report");
    }
}
