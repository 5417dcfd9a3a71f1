//! The target split of a limit over nodes: max-min fair over their demands.
//!
//! Nodes asking for less than an even split get what they ask for plus a little headroom;
//! what is left is split evenly among the others. When everyone is satisfied the leftover is
//! spread evenly too, so that an idle cluster looks like a static `limit / n` split and a node
//! whose load grows can use the slack at once instead of waiting for others to give it up.
//!
//! Every node computes the whole split from the same published reports, so once the reports
//! have spread, all nodes agree on every node's target; ties over whole slots are broken by
//! each node's stable `tiebreak`.

/// Whether a limit splits into any fraction (rates) or only into whole units (slots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Granularity {
    /// Shares are real numbers.
    Continuous,
    /// Shares are whole numbers, so that the sum of what nodes may hold never passes the limit.
    Whole,
}

/// The fraction of the limit that floors may take in total: a node's floor is at most a fifth of
/// an even split, so idle nodes never hold back more than 20 % of the limit.
const FLOOR_BUDGET: f64 = 0.2;

/// A whole-slot claim rounds up only past this fraction of a slot, so that the long tail of a
/// decaying demand estimate does not pin a slot forever.
const WHOLE_SLACK: f64 = 0.1;

/// What one node asks for, and its rank among equal claims.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Claim {
    /// Demand plus headroom, at least the floor.
    pub(super) amount: f64,
    /// Orders nodes when whole units are left over after an even split.
    pub(super) tiebreak: u64,
}

/// The least share a node keeps: `min(limit / (5 n), max(floor_fraction · limit, 1 unit))`,
/// rounded down to a whole slot for [`Granularity::Whole`].
pub(super) fn floor_share(
    limit: f64,
    nodes: usize,
    floor_fraction: f64,
    granularity: Granularity,
) -> f64 {
    let nodes = nodes.max(1) as f64;
    let floor = (limit * FLOOR_BUDGET / nodes).min((limit * floor_fraction).max(1.0));
    match granularity {
        Granularity::Continuous => floor.max(0.0),
        Granularity::Whole => floor.floor().max(0.0),
    }
}

/// A node's claim: its demand plus `headroom` (a fraction of it), at least `floor`.
pub(super) fn claim_amount(
    demand: f64,
    headroom: f64,
    floor: f64,
    granularity: Granularity,
) -> f64 {
    let wanted = demand.max(0.0) * (1.0 + headroom.max(0.0));
    let wanted = match granularity {
        Granularity::Continuous => wanted,
        Granularity::Whole => (wanted - WHOLE_SLACK).ceil().max(0.0),
    };
    wanted.max(floor)
}

/// Splits `capacity` over `claims`, max-min fair; the result is in the order of `claims`.
pub(super) fn max_min_fair(capacity: f64, claims: &[Claim], granularity: Granularity) -> Vec<f64> {
    match granularity {
        Granularity::Continuous => continuous(capacity.max(0.0), claims),
        Granularity::Whole => whole(capacity.max(0.0).floor() as u64, claims)
            .into_iter()
            .map(|units| units as f64)
            .collect(),
    }
}

/// Indices of `claims` from the smallest claim up.
fn smallest_first(claims: &[Claim]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..claims.len()).collect();
    order.sort_by(|&a, &b| claims[a].amount.total_cmp(&claims[b].amount));
    order
}

fn continuous(capacity: f64, claims: &[Claim]) -> Vec<f64> {
    let mut shares = vec![0.0; claims.len()];
    let order = smallest_first(claims);
    let mut remaining = capacity;
    for (position, &index) in order.iter().enumerate() {
        let even = remaining / (order.len() - position) as f64;
        if claims[index].amount > even {
            // Everyone from here on asks for more than an even split of what is left.
            for &rest in &order[position..] {
                shares[rest] = even;
            }
            return shares;
        }
        shares[index] = claims[index].amount;
        remaining -= claims[index].amount;
    }
    let bonus = remaining / claims.len().max(1) as f64;
    for share in &mut shares {
        *share += bonus;
    }
    shares
}

fn whole(capacity: u64, claims: &[Claim]) -> Vec<u64> {
    let mut shares = vec![0; claims.len()];
    let order = smallest_first(claims);
    let mut remaining = capacity;
    for (position, &index) in order.iter().enumerate() {
        let left = (order.len() - position) as u64;
        let even = remaining / left;
        let wanted = claims[index].amount as u64;
        if wanted > even {
            let rest = &order[position..];
            for &other in rest {
                shares[other] = even;
            }
            hand_out(remaining - even * left, rest, claims, &mut shares);
            return shares;
        }
        shares[index] = wanted;
        remaining -= wanted;
    }
    let everyone = &order[..];
    let bonus = remaining / everyone.len().max(1) as u64;
    for share in &mut shares {
        *share += bonus;
    }
    hand_out(
        remaining - bonus * everyone.len() as u64,
        everyone,
        claims,
        &mut shares,
    );
    shares
}

/// Gives one more unit each to the first `units` of `among` by tiebreak: the same nodes win
/// every time, so the spare units do not bounce between nodes.
fn hand_out(units: u64, among: &[usize], claims: &[Claim], shares: &mut [u64]) {
    let mut ranked = among.to_vec();
    ranked.sort_by_key(|&index| claims[index].tiebreak);
    for &index in ranked.iter().take(units as usize) {
        shares[index] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(amounts: &[f64]) -> Vec<Claim> {
        amounts
            .iter()
            .enumerate()
            .map(|(i, &amount)| Claim {
                amount,
                tiebreak: i as u64,
            })
            .collect()
    }

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() < 1e-9, "{actual:?} != {expected:?}");
        }
    }

    #[test]
    fn equal_demand_splits_evenly() {
        let shares = max_min_fair(600.0, &claims(&[900.0; 5]), Granularity::Continuous);
        assert_close(&shares, &[120.0; 5]);
    }

    #[test]
    fn small_claims_are_met_and_the_rest_is_split() {
        let shares = max_min_fair(
            600.0,
            &claims(&[1_000.0, 30.0, 30.0, 500.0, 40.0]),
            Granularity::Continuous,
        );
        assert_close(&shares, &[250.0, 30.0, 30.0, 250.0, 40.0]);
    }

    #[test]
    fn leftover_is_spread_evenly_when_everyone_is_satisfied() {
        let shares = max_min_fair(
            600.0,
            &claims(&[3.0, 3.0, 3.0, 3.0, 88.0]),
            Granularity::Continuous,
        );
        assert_close(&shares, &[103.0, 103.0, 103.0, 103.0, 188.0]);
    }

    #[test]
    fn idle_nodes_keep_their_floor_under_contention() {
        let floor = floor_share(600.0, 5, 0.005, Granularity::Continuous);
        assert_eq!(floor, 3.0);
        let idle = claim_amount(0.0, 0.1, floor, Granularity::Continuous);
        let busy = claim_amount(6_000.0, 0.1, floor, Granularity::Continuous);
        let shares = max_min_fair(
            600.0,
            &claims(&[busy, idle, idle, idle, idle]),
            Granularity::Continuous,
        );
        assert_close(&shares, &[588.0, 3.0, 3.0, 3.0, 3.0]);
    }

    #[test]
    fn headroom_is_added_to_small_demand() {
        assert!((claim_amount(30.0, 0.1, 3.0, Granularity::Continuous) - 33.0).abs() < 1e-9);
        assert_eq!(claim_amount(0.75, 0.1, 0.0, Granularity::Whole), 1.0);
        // A decayed estimate does not keep a whole slot.
        assert_eq!(claim_amount(0.05, 0.1, 0.0, Granularity::Whole), 0.0);
    }

    #[test]
    fn floors_never_take_more_than_a_fifth_of_the_limit() {
        assert!((floor_share(1.0, 5, 0.005, Granularity::Continuous) - 0.04).abs() < 1e-12);
        assert!((floor_share(3.0, 5, 0.005, Granularity::Continuous) - 0.12).abs() < 1e-12);
        assert_eq!(floor_share(10.0, 5, 0.005, Granularity::Whole), 0.0);
        assert_eq!(floor_share(100.0, 5, 0.005, Granularity::Whole), 1.0);
        assert_eq!(
            floor_share(1_000_000.0, 5, 0.005, Granularity::Continuous),
            5_000.0
        );
    }

    #[test]
    fn tiny_limits_split_continuously_stay_within_the_limit() {
        for limit in [1.0, 3.0] {
            let floor = floor_share(limit, 5, 0.005, Granularity::Continuous);
            let idle = claim_amount(0.0, 0.1, floor, Granularity::Continuous);
            let busy = claim_amount(50.0, 0.1, floor, Granularity::Continuous);
            let shares = max_min_fair(
                limit,
                &claims(&[busy, idle, idle, idle, idle]),
                Granularity::Continuous,
            );
            let total: f64 = shares.iter().sum();
            assert!((total - limit).abs() < 1e-9);
            assert!(
                (shares[0] - (limit - 4.0 * floor)).abs() < 1e-9,
                "{shares:?}"
            );
        }
    }

    #[test]
    fn tiny_limits_split_into_whole_slots_by_tiebreak() {
        // One slot, five idle nodes: the lowest tiebreak holds it.
        let shares = max_min_fair(1.0, &claims(&[0.0; 5]), Granularity::Whole);
        assert_eq!(shares, vec![1.0, 0.0, 0.0, 0.0, 0.0]);
        // Three slots, all five want more than that: the three lowest tiebreaks.
        let mut busy = claims(&[4.0; 5]);
        busy[0].tiebreak = 9;
        let shares = max_min_fair(3.0, &busy, Granularity::Whole);
        assert_eq!(shares, vec![0.0, 1.0, 1.0, 1.0, 0.0]);
        // Three slots, one busy node: it gets all three.
        let shares = max_min_fair(3.0, &claims(&[0.0, 0.0, 5.0, 0.0, 0.0]), Granularity::Whole);
        assert_eq!(shares, vec![0.0, 0.0, 3.0, 0.0, 0.0]);
    }

    #[test]
    fn whole_split_meets_small_claims_and_never_exceeds_capacity() {
        let shares = max_min_fair(
            10.0,
            &claims(&[27.0, 1.0, 1.0, 1.0, 1.0]),
            Granularity::Whole,
        );
        assert_eq!(shares, vec![6.0, 1.0, 1.0, 1.0, 1.0]);
        let shares = max_min_fair(
            11.0,
            &claims(&[9.0, 9.0, 9.0, 1.0, 0.0]),
            Granularity::Whole,
        );
        assert_eq!(shares, vec![4.0, 3.0, 3.0, 1.0, 0.0]);
        assert_eq!(shares.iter().sum::<f64>(), 11.0);
    }

    #[test]
    fn no_capacity_means_no_shares() {
        let shares = max_min_fair(-5.0, &claims(&[10.0, 0.0]), Granularity::Continuous);
        assert_close(&shares, &[0.0, 0.0]);
        assert!(max_min_fair(10.0, &[], Granularity::Whole).is_empty());
    }
}
