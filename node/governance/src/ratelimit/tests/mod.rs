//! Tests across the pieces: the simulator and the acceptance scenarios run on it, and the
//! behaviour of one [`SharedLimit`](super::SharedLimit) driven by hand.

mod scenarios;
mod shared_limit;
mod sim;
