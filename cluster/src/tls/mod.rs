//! Cluster credentials and mutual TLS for the QUIC transport.
//!
//! Every node talks to its peers over QUIC, and QUIC always runs TLS 1.3. We use that handshake
//! as the cluster's admission check: both sides present a certificate, and both sides accept
//! only a chain that ends at the cluster CA. A process without the cluster's credentials can
//! therefore neither join the gossip nor read it.
//!
//! Two ways to hold those credentials:
//!
//! - **Shared secret** ([`ClusterSecret`], like Consul's gossip key). rustls has no external
//!   PSK, so the secret is turned into a CA instead: every node derives the same Ed25519 CA
//!   key from the secret (module `secret`), rebuilds the same self-signed CA certificate
//!   (module `ca`), and signs a fresh leaf of its own with it at start-up. A node with another
//!   secret derives another CA, and both sides of its handshakes fail.
//! - **Operator CA**. [`init_ca`] writes `ca.pem` + `ca.key`; [`issue_cert`] writes
//!   `node.pem` + `node.key` signed by it; [`ClusterCredentials::from_dir`] loads them. Node
//!   certificates issued by any other PKI work too, if they carry the cluster server name
//!   ([`DEFAULT_SERVER_NAME`]) as a DNS SAN, the node id as the URI SAN
//!   `urn:starling:node:<node id>` ([`node_uri`]), and both the serverAuth and clientAuth
//!   usages.
//!
//! The handshake only proves membership. Which node a peer is comes from the node-id SAN of
//! its leaf, read after the handshake ([`peer_node_id`]); the transport refuses a connection
//! whose leaf names no node, or a revoked one, and tags every message with the id.
//!
//! [`ClusterCredentials`] turns either into quinn server and client configs built on rustls
//! with the `ring` provider passed explicitly (never the process default), TLS 1.3 only, and
//! the ALPN [`ALPN`].

mod ca;
mod config;
mod identity;
mod secret;

use std::path::PathBuf;

pub use ca::{
    CA_CERT_FILE, CA_KEY_FILE, NODE_CERT_FILE, NODE_CERT_VALIDITY, NODE_KEY_FILE, NODE_URI_PREFIX,
    SECRET_LEAF_VALIDITY, init_ca, issue_cert, node_dns_name, node_uri,
};
pub use config::ClusterCredentials;
pub use identity::{IdentityError, node_id_of_chain, node_id_of_leaf, peer_node_id};
pub use secret::{ClusterSecret, SECRET_PREFIX, generate_secret, generate_test_secret};

/// ALPN protocol id spoken on cluster connections. Bump the suffix on an incompatible change
/// of the framing in [`crate::transport`]; nodes on different versions then fail the
/// handshake instead of misreading each other.
///
/// Version 2: leaves name their node id, and anti-entropy answers travel in chunks.
pub const ALPN: &[u8] = b"starling-cluster/2";

/// The DNS name every node certificate carries and every client asks for. Peers are dialled by
/// socket address, not by name, so one fixed name serves the whole cluster.
pub const DEFAULT_SERVER_NAME: &str = "starling.cluster";

/// Errors while deriving, issuing, loading or using cluster credentials. Each names the file
/// or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The cluster secret does not have the expected shape.
    #[error("cluster secret: {0}")]
    BadSecret(&'static str),
    /// The node id cannot be put in a certificate.
    #[error("node id {node_id:?}: {reason}")]
    BadNodeId {
        /// The offending node id.
        node_id: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Reading or writing a credentials file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file exists where a new credential was to be written; nothing is overwritten.
    #[error("{}: already exists, refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// A PEM file holds no usable item of the expected kind.
    #[error("{}: {what}: {reason}", path.display())]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What was expected in it ("certificate", "private key").
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("{what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// The node certificate names no node id (no `urn:starling:node:` URI SAN).
    #[error("{}: {source}", cert.display())]
    NoNodeId {
        /// The node certificate file.
        cert: PathBuf,
        /// What is wrong with it.
        source: IdentityError,
    },
    /// The node certificate does not chain to the cluster CA.
    #[error("{}: not signed by the cluster CA in {}: {reason}", cert.display(), ca.display())]
    NotSignedByCa {
        /// The node certificate file (or a description for in-memory credentials).
        cert: PathBuf,
        /// The CA certificate file.
        ca: PathBuf,
        /// The verifier's reason.
        reason: String,
    },
    /// rustls refused the configuration (for example a key that does not match the
    /// certificate).
    #[error("{what}: {source}")]
    Rustls {
        /// What was being configured.
        what: &'static str,
        /// The rustls error.
        source: rustls::Error,
    },
    /// A verifier could not be built from the CA.
    #[error("{what}: {reason}")]
    Verifier {
        /// Which verifier.
        what: &'static str,
        /// The builder's error.
        reason: String,
    },
    /// quinn refused the TLS configuration (no QUIC-capable cipher suite).
    #[error("{what}: {reason}")]
    Quic {
        /// Which side.
        what: &'static str,
        /// quinn's error.
        reason: String,
    },
}
