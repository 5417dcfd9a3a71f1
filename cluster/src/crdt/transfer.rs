//! The rights-transfer protocol: message types and pure decision logic, no networking.
//!
//! A writer that runs low on rights for a budget key sends a [`RightsRequest`] to one or more
//! peers (chosen by the caller, e.g. the holders with the most rights per [`Rights::holders`]).
//! A donor answers with nothing but an ordinary, monotone **transfer write** in its own row
//! ([`Rights::transfer`]), which replicates like any other delta; a [`RightsGrant`] notice tells
//! the requester which dot to wait for. No message can create or duplicate rights: a lost
//! request or notice only delays the move, a duplicated request at worst moves more rights to the
//! requester (who can hand them on), and the requester can use granted rights only once the
//! donor's row has reached it ([`Rights::grant_arrived`]).
//!
//! How much to give is the pure [`DonorPolicy::grant`]: at most what was asked, and at most half
//! of the donor's surplus above its own low-water mark (rounded up), so a donor never drains
//! itself below the mark and two nodes asking each other cannot ping-pong a whole budget.

use serde::{Deserialize, Serialize};

use super::{
    rights::{BudgetKey, Rights, RightsDelta},
    version::Dot,
};
use crate::hlc::WriterId;

/// "Please transfer me `amount` rights for `key`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsRequest {
    /// The budget.
    pub key: BudgetKey,
    /// The requester (the transfer's recipient).
    pub from: WriterId,
    /// How many rights it would like.
    pub amount: u64,
    /// Chosen by the requester to match grants to requests.
    pub request_id: u64,
}

/// "I transferred `amount` rights for `key` to you, in the write with dot `dot`."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightsGrant {
    /// The budget.
    pub key: BudgetKey,
    /// The donor.
    pub donor: WriterId,
    /// The recipient.
    pub to: WriterId,
    /// Rights transferred.
    pub amount: u64,
    /// The request this answers.
    pub request_id: u64,
    /// The donor's transfer write; usable by the recipient once its replica has it.
    pub dot: Dot,
}

/// How a donor decides how much to give.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DonorPolicy {
    /// Rights the donor keeps for itself no matter what.
    pub low_water: u64,
}

impl DonorPolicy {
    /// `min(requested, ⌈(available − low_water) / 2⌉)`, or 0 without a surplus.
    pub fn grant(&self, available: u64, requested: u64) -> u64 {
        let surplus = available.saturating_sub(self.low_water);
        requested.min(surplus.div_ceil(2))
    }
}

impl Rights {
    /// A request from the local writer for `amount` rights of `key`.
    pub fn request(&self, key: &BudgetKey, amount: u64, request_id: u64) -> RightsRequest {
        RightsRequest {
            key: key.clone(),
            from: self.writer().clone(),
            amount,
            request_id,
        }
    }

    /// Answers a peer's request under `policy`: transfers what the policy allows and returns the
    /// notice and the delta to ship, or `None` if there is nothing to give (or the request is
    /// our own).
    pub fn answer(
        &mut self,
        req: &RightsRequest,
        policy: &DonorPolicy,
    ) -> Option<(RightsGrant, RightsDelta)> {
        let dot = self.context().next_dot(self.writer());
        self.answer_at(req, policy, dot)
    }

    pub(crate) fn answer_at(
        &mut self,
        req: &RightsRequest,
        policy: &DonorPolicy,
        dot: Dot,
    ) -> Option<(RightsGrant, RightsDelta)> {
        if req.from == *self.writer() {
            return None;
        }
        let amount = policy.grant(self.local_rights(&req.key), req.amount);
        if amount == 0 {
            return None;
        }
        let delta = self
            .transfer_at(&req.key, &req.from, amount, dot.clone())
            .ok()?;
        let grant = RightsGrant {
            key: req.key.clone(),
            donor: self.writer().clone(),
            to: req.from.clone(),
            amount,
            request_id: req.request_id,
            dot,
        };
        Some((grant, delta))
    }

    /// Whether the donor's transfer write named by `grant` has reached this replica.
    pub fn grant_arrived(&self, grant: &RightsGrant) -> bool {
        self.context().covers(&grant.dot)
            || self
                .rows(&grant.key)
                .any(|(w, r)| *w == grant.donor && r.seq >= grant.dot.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_gives_half_the_surplus() {
        let p = DonorPolicy { low_water: 10 };
        assert_eq!(p.grant(110, 1_000), 50);
        assert_eq!(p.grant(110, 20), 20);
        assert_eq!(p.grant(11, 5), 1);
        assert_eq!(p.grant(10, 5), 0);
        assert_eq!(p.grant(0, 5), 0);
    }
}
