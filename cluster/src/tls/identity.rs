//! The node id a peer's certificate names, read after the TLS handshake.
//!
//! The handshake proves that the peer holds a key certified by the cluster CA; this module
//! turns that certificate into the one node id the peer may speak for. The id is the URI SAN
//! `urn:starling:node:<node id>` ([`super::node_uri`]); a leaf with none, or with more than
//! one, names no node and is refused.

use rustls::pki_types::CertificateDer;

use super::ca::NODE_URI_PREFIX;
use crate::hlc::NodeId;

/// Why a peer's certificate names no node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The peer presented no certificate (never expected: both sides require one).
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The leaf does not parse as an X.509 certificate.
    #[error("the peer's certificate does not parse: {0}")]
    Unparsable(String),
    /// The leaf carries no `urn:starling:node:` URI SAN: not a Starling node certificate.
    #[error("the peer's certificate names no Starling node (no {NODE_URI_PREFIX}<id> URI SAN)")]
    NoNodeId,
    /// The leaf carries several node ids.
    #[error("the peer's certificate names more than one node")]
    Ambiguous,
    /// The named node id is not a valid node id.
    #[error("the peer's certificate names an invalid node id {0:?}")]
    BadNodeId(String),
}

/// The node id the leaf certificate (first of `chain`) names.
///
/// # Errors
/// [`IdentityError`] when the chain is empty, the leaf does not parse, or it names no valid
/// node id, or several.
pub fn node_id_of_chain(chain: &[CertificateDer<'_>]) -> Result<NodeId, IdentityError> {
    let leaf = chain.first().ok_or(IdentityError::NoCertificate)?;
    node_id_of_leaf(leaf)
}

/// The node id a single leaf certificate names; see [`node_id_of_chain`].
///
/// # Errors
/// As [`node_id_of_chain`].
pub fn node_id_of_leaf(leaf: &CertificateDer<'_>) -> Result<NodeId, IdentityError> {
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
    let mut ids = cert
        .valid_uri_names()
        .filter_map(|uri| uri.strip_prefix(NODE_URI_PREFIX));
    let id = ids.next().ok_or(IdentityError::NoNodeId)?;
    if ids.next().is_some() {
        return Err(IdentityError::Ambiguous);
    }
    NodeId::new(id).map_err(|_| IdentityError::BadNodeId(id.chars().take(80).collect()))
}

/// The node id of the peer on an established quinn connection.
///
/// # Errors
/// As [`node_id_of_chain`]; [`IdentityError::NoCertificate`] when quinn has no rustls
/// certificate chain for the peer.
pub fn peer_node_id(conn: &quinn::Connection) -> Result<NodeId, IdentityError> {
    let identity = conn.peer_identity().ok_or(IdentityError::NoCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| IdentityError::NoCertificate)?;
    node_id_of_chain(&chain)
}
