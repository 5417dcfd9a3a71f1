//! Starling's cluster layer: membership and failure detection (chitchat) over authenticated
//! QUIC, replicated CRDT state (catalog, usage counters, budget rights), and its wire codec.
//!
//! Module map: [`hlc`] hybrid logical clocks; [`crdt`] the replicated data types; [`state`] a
//! node's full replica and its deltas; [`codec`] the versioned bincode frame; [`tls`] cluster
//! credentials (shared secret or CA); [`transport`] QUIC endpoints and the chitchat transport;
//! [`store`] the local durable copy: snapshot plus write-ahead log, fsynced in batches;
//! [`runtime`] a running member tying them together: replication by push and anti-entropy.

pub mod codec;
pub mod crdt;
pub mod hlc;
pub mod runtime;
pub mod state;
pub mod store;
pub mod tls;
pub mod transport;
