//! Test support for other crates' tests (feature `testsuite`): generators of hostile input.

pub mod hostile;
