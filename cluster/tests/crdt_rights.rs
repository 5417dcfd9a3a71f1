//! Budget rights (escrow): no writer's rights go negative and Σ spent ≤ Σ minted on every
//! replica at every step, under any interleaving; merge laws; convergence; the transfer
//! protocol; idempotent minting.

mod crdt_support;

use std::collections::{BTreeMap, BTreeSet};

use crdt_support::{
    check_delta_laws, check_state_laws, deliver_everything, pull_all_pairs, writer,
};
use proptest::{collection::vec, prelude::*};
use starling_cluster::{
    crdt::{
        BudgetKey, DonorPolicy, Insufficient, MintError, Period, PeriodUnit, Rights, TransferError,
    },
    hlc::WriterId,
};

fn key(i: u8) -> BudgetKey {
    BudgetKey::new(format!("key:{i}"), Period::new(PeriodUnit::Month, 600))
}

/// Checks every invariant of every key on one replica, computing balances unclamped.
fn check_invariants(r: &Rights, keys: &[BudgetKey]) -> Result<(), TestCaseError> {
    for k in keys {
        let rows: BTreeMap<&WriterId, _> = r.rows(k).collect();
        let mut who: BTreeSet<&WriterId> = rows.keys().copied().collect();
        who.extend(rows.values().flat_map(|row| row.sent.keys()));
        let mut sum: i128 = 0;
        for w in who {
            let own = rows.get(w);
            let mut bal: i128 = own.map_or(0, |o| i128::from(o.minted));
            for (x, row) in &rows {
                if *x != w {
                    let sent = row.sent.get(w).copied().unwrap_or(0);
                    let rec = own.and_then(|o| o.received.get(*x)).copied().unwrap_or(0);
                    bal += i128::from(sent.max(rec));
                }
            }
            if let Some(o) = own {
                // Self-sufficiency of the owner's own row.
                let row_bal = i128::from(o.minted)
                    + o.received.values().map(|&v| i128::from(v)).sum::<i128>()
                    - o.sent.values().map(|&v| i128::from(v)).sum::<i128>()
                    - i128::from(o.spent);
                prop_assert!(row_bal >= 0, "row of {w} is overdrawn: {row_bal}");
                bal -= o.sent.values().map(|&v| i128::from(v)).sum::<i128>() + i128::from(o.spent);
            }
            prop_assert!(bal >= 0, "rights of {w} negative: {bal}");
            prop_assert_eq!(u64::try_from(bal).unwrap(), r.rights(k, w));
            sum += bal;
        }
        let (minted, spent) = (r.total_minted(k), r.total_spent(k));
        prop_assert!(spent <= minted, "spent {spent} > minted {minted}");
        prop_assert_eq!(
            sum + i128::from(spent),
            i128::from(minted),
            "rights not conserved"
        );
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Op {
    Mint(usize, u8, u8, u16),
    Spend(usize, u8, u16),
    Transfer(usize, u8, usize, u16),
    Ask(usize, usize, u8, u16, u16),
    Pull(usize, usize),
    Deliver(usize, usize),
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..n, 0..2u8, 0..2u8, 0..1_000u16).prop_map(|(r, k, m, a)| Op::Mint(r, k, m, a)),
        4 => (0..n, 0..2u8, 0..400u16).prop_map(|(r, k, a)| Op::Spend(r, k, a)),
        3 => (0..n, 0..2u8, 0..n, 0..400u16).prop_map(|(r, k, t, a)| Op::Transfer(r, k, t, a)),
        2 => (0..n, 0..n, 0..2u8, 0..400u16, 0..200u16)
            .prop_map(|(r, d, k, a, l)| Op::Ask(r, d, k, a, l)),
        3 => (0..n, 0..n).prop_map(|(a, b)| Op::Pull(a, b)),
        4 => (0..n, any::<usize>()).prop_map(|(a, i)| Op::Deliver(a, i)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn rights_never_negative_and_never_overspent(
        (n, ops, seed) in (3usize..=5).prop_flat_map(|n| (Just(n), vec(op(n), 1..80), any::<u64>()))
    ) {
        let keys = [key(0), key(1)];
        let mut nodes: Vec<Rights> =
            (0..n).map(|i| Rights::new(writer(&format!("n{i}"), 1))).collect();
        let mut log = Vec::new();
        let mut minted = [0u64; 2];
        let mut spent = [0u64; 2];
        for op in ops {
            match op {
                Op::Mint(r, k, m, a) => {
                    if let Ok(d) = nodes[r].mint(&key(k), u32::from(m), u64::from(a)) {
                        minted[usize::from(k)] += u64::from(a);
                        log.push(d);
                    }
                }
                Op::Spend(r, k, a) => {
                    let before = nodes[r].local_rights(&key(k));
                    match nodes[r].spend(&key(k), u64::from(a)) {
                        Ok(d) => {
                            prop_assert!(u64::from(a) <= before);
                            spent[usize::from(k)] += u64::from(a);
                            log.push(d);
                        }
                        Err(Insufficient { available, requested }) => {
                            prop_assert_eq!(available, before);
                            prop_assert!(requested > available);
                        }
                    }
                }
                Op::Transfer(r, k, t, a) => {
                    let to = nodes[t].writer().clone();
                    match nodes[r].transfer(&key(k), &to, u64::from(a)) {
                        Ok(d) => log.push(d),
                        Err(TransferError::ToSelf) => prop_assert_eq!(r, t),
                        Err(TransferError::Insufficient(_)) => {}
                    }
                }
                Op::Ask(r, donor, k, a, low) => {
                    let req = nodes[r].request(&key(k), u64::from(a), 7);
                    let policy = DonorPolicy { low_water: u64::from(low) };
                    let had = nodes[donor].local_rights(&key(k));
                    if let Some((grant, d)) = nodes[donor].answer(&req, &policy) {
                        prop_assert!(grant.amount <= u64::from(a));
                        prop_assert!(had - grant.amount >= u64::from(low).min(had));
                        prop_assert!(!nodes[r].grant_arrived(&grant));
                        nodes[r].apply(d.clone());
                        prop_assert!(nodes[r].grant_arrived(&grant));
                        log.push(d);
                    }
                }
                Op::Pull(a, b) => {
                    let d = nodes[b].delta_since(&nodes[a].version());
                    nodes[a].apply(d);
                }
                Op::Deliver(a, i) => {
                    if !log.is_empty() {
                        let d = log[i % log.len()].clone();
                        nodes[a].apply(d);
                    }
                }
            }
            for node in &nodes {
                check_invariants(node, &keys)?;
            }
            prop_assert!(spent[0] <= minted[0] && spent[1] <= minted[1]);
        }
        let fresh = Rights::new(writer("fresh", 1));
        check_state_laws(&fresh, &nodes[0], &nodes[1], &nodes[2]);
        if log.len() >= 2 {
            check_delta_laws(&nodes[0], &log[seed as usize % log.len()], &log[(seed as usize / 5) % log.len()]);
        }
        let mut pushed = nodes.clone();
        deliver_everything(&mut pushed, &log, seed);
        let mut pulled = nodes.clone();
        pull_all_pairs(&mut pulled);
        prop_assert_eq!(pushed[0].digest().unwrap(), pulled[0].digest().unwrap());
        for node in &pushed {
            check_invariants(node, &keys)?;
        }
        for (i, k) in keys.iter().enumerate() {
            prop_assert_eq!(pushed[0].total_minted(k), minted[i]);
            prop_assert_eq!(pushed[0].total_spent(k), spent[i]);
        }
    }
}

#[test]
fn transfer_protocol_round_trip() {
    let k = key(0);
    let mut a = Rights::new(writer("a", 1));
    let mut b = Rights::new(writer("b", 1));
    b.apply(a.mint(&k, 0, 100).unwrap());
    assert_eq!(
        b.spend(&k, 1),
        Err(Insufficient {
            available: 0,
            requested: 1
        })
    );

    let req = b.request(&k, 30, 42);
    assert!(
        b.answer(&req, &DonorPolicy::default()).is_none(),
        "not to oneself"
    );
    let (grant, delta) = a.answer(&req, &DonorPolicy { low_water: 10 }).unwrap();
    assert_eq!((grant.amount, grant.request_id), (30, 42));
    assert_eq!(grant.to, *b.writer());
    assert_eq!(a.local_rights(&k), 70);
    assert!(!b.grant_arrived(&grant));
    b.apply(delta);
    assert!(b.grant_arrived(&grant));
    assert_eq!(b.local_rights(&k), 30);
    assert!(b.spend(&k, 31).is_err());
    let d = b.spend(&k, 30).unwrap();
    a.apply(d);
    assert_eq!((a.total_minted(&k), a.total_spent(&k)), (100, 30));
    assert_eq!(
        a.holders(&k),
        vec![(a.writer().clone(), 70), (b.writer().clone(), 0)]
    );

    // The donor keeps half its surplus above the low-water mark.
    let big = b.request(&k, 1_000, 43);
    let (grant, _) = a.answer(&big, &DonorPolicy { low_water: 10 }).unwrap();
    assert_eq!(grant.amount, 30);
    assert_eq!(a.local_rights(&k), 40);
}

#[test]
fn minting_is_idempotent_per_key_and_mint_id() {
    let k = key(1);
    let mut a = Rights::new(writer("a", 1));
    let mut b = Rights::new(writer("b", 1));
    let d = a.mint(&k, 0, 500).unwrap();
    assert!(matches!(
        a.mint(&k, 0, 500),
        Err(MintError::AlreadyMinted(_, 0))
    ));
    b.apply(d);
    // Mint node failover: the new mint node sees the record and does not mint again.
    assert!(b.mint(&k, 0, 500).is_err());
    // A top-up uses a new id.
    let top = b.mint(&k, 1, 100).unwrap();
    a.apply(top);
    assert_eq!(a.total_minted(&k), 600);
    assert!(a.is_minted(&k, 1));
}

#[test]
fn dropped_budget_periods_refuse_and_do_not_return() {
    let old = BudgetKey::new("key:a", Period::new(PeriodUnit::Month, 5));
    let mut a = Rights::new(writer("a", 1));
    let mut b = Rights::new(writer("b", 1));
    let m = a.mint(&old, 0, 10).unwrap();
    let drop = b.drop_periods_before(Period::new(PeriodUnit::Month, 6));
    a.apply(drop);
    b.apply(m);
    assert_eq!(a.total_minted(&old), 0);
    assert_eq!(b.total_minted(&old), 0);
    assert!(matches!(
        a.mint(&old, 1, 5),
        Err(MintError::PeriodDropped(_))
    ));
    assert!(a.spend(&old, 1).is_err());
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
}
