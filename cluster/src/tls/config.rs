//! [`ClusterCredentials`]: a node's certificate chain and key plus the cluster CA, and the
//! rustls/quinn configurations built from them.
//!
//! Both directions use rustls's WebPKI verifiers with the cluster CA as the only root:
//! the server requires a client certificate ([`WebPkiClientVerifier`]), the client checks the
//! server's chain and the cluster server name ([`WebPkiServerVerifier`]). The `ring` provider
//! is passed to every builder, so no process-wide default provider is needed or consulted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;

use super::ca::{self, read};
use super::identity::node_id_of_leaf;
use super::secret::ClusterSecret;
use super::{ALPN, CA_CERT_FILE, DEFAULT_SERVER_NAME, NODE_CERT_FILE, NODE_KEY_FILE, TlsError};
use crate::hlc::NodeId;

/// A node's cluster credentials: the CA certificate(s) it trusts, its own certificate chain
/// and private key, and the server name used on cluster connections.
///
/// Build it with [`ClusterCredentials::from_secret`] (shared-secret mode) or
/// [`ClusterCredentials::from_dir`]/[`ClusterCredentials::from_files`] (operator CA), then
/// hand it to [`crate::transport::ClusterEndpoint::bind`]. `Debug` never shows the key.
pub struct ClusterCredentials {
    roots: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server_name: String,
    node_id: NodeId,
    provider: Arc<CryptoProvider>,
}

impl Clone for ClusterCredentials {
    fn clone(&self) -> Self {
        Self {
            roots: self.roots.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            server_name: self.server_name.clone(),
            node_id: self.node_id.clone(),
            provider: self.provider.clone(),
        }
    }
}

impl fmt::Debug for ClusterCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterCredentials")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .field("key", &"[redacted]")
            .field("server_name", &self.server_name)
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl ClusterCredentials {
    /// Shared-secret mode: derives the cluster CA from `secret` and issues a fresh leaf for
    /// `node_id` (a new Ed25519 key at every start; nothing is written to disk).
    ///
    /// # Errors
    /// [`TlsError::BadNodeId`] for an empty, over-long or control-character node id.
    pub fn from_secret(secret: &ClusterSecret, node_id: &str) -> Result<Self, TlsError> {
        let (ca, leaf) = ca::secret_leaf(secret, node_id)?;
        Self::new(
            vec![ca],
            vec![leaf.cert],
            leaf.key,
            Path::new("<from secret>"),
        )
    }

    /// Operator-CA mode: loads `ca.pem`, `node.pem` and `node.key` from `dir` (the layout
    /// [`super::issue_cert`] writes).
    ///
    /// # Errors
    /// As [`ClusterCredentials::from_files`].
    pub fn from_dir(dir: &Path) -> Result<Self, TlsError> {
        Self::from_files(
            &dir.join(CA_CERT_FILE),
            &dir.join(NODE_CERT_FILE),
            &dir.join(NODE_KEY_FILE),
        )
    }

    /// Operator-CA mode: loads the trusted CA certificate(s) from `ca_pem` (several may be
    /// listed, e.g. during a CA rotation), the node's chain (leaf first, then intermediates)
    /// from `cert_pem`, and its private key (PKCS#8, PKCS#1 or SEC1) from `key_pem`. The chain
    /// is checked against the CA now, so a mismatch is reported at start-up, naming the file.
    ///
    /// # Errors
    /// [`TlsError::Io`] or [`TlsError::BadPem`] naming the file; [`TlsError::NotSignedByCa`]
    /// if the chain does not verify against the CA (wrong CA, expired, wrong key usage);
    /// [`TlsError::Rustls`] if the key does not match the certificate.
    pub fn from_files(ca_pem: &Path, cert_pem: &Path, key_pem: &Path) -> Result<Self, TlsError> {
        let roots = load_certs(ca_pem, "CA certificate")?;
        let chain = load_certs(cert_pem, "node certificate")?;
        let key_bytes = read(key_pem)?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::BadPem {
            path: key_pem.to_path_buf(),
            what: "private key",
            reason: e.to_string(),
        })?;
        let creds = Self::new(roots, chain, key, cert_pem)
            .map_err(|e| name_ca_file(e, ca_pem.to_path_buf()))?;
        // Catch a key that does not belong to the certificate now, naming the key file.
        creds.rustls_client_config().map_err(|e| match e {
            TlsError::Rustls { source, .. } => TlsError::BadPem {
                path: key_pem.to_path_buf(),
                what: "private key",
                reason: format!("does not match {}: {source}", cert_pem.display()),
            },
            other => other,
        })?;
        Ok(creds)
    }

    fn new(
        roots: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        cert_origin: &Path,
    ) -> Result<Self, TlsError> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(TlsError::BadPem {
                path: cert_origin.to_path_buf(),
                what: "node certificate",
                reason: "no certificate found".into(),
            });
        };
        verify_leaf(&roots, leaf, intermediates).map_err(|reason| TlsError::NotSignedByCa {
            cert: cert_origin.to_path_buf(),
            ca: PathBuf::from("<cluster CA>"),
            reason,
        })?;
        // Peers refuse a leaf that names no node; say so at start-up instead.
        let node_id = node_id_of_leaf(leaf).map_err(|source| TlsError::NoNodeId {
            cert: cert_origin.to_path_buf(),
            source,
        })?;
        Ok(Self {
            roots,
            chain,
            key,
            node_id,
            server_name: DEFAULT_SERVER_NAME.to_string(),
            provider: ring_provider(),
        })
    }

    /// Uses another server name than [`DEFAULT_SERVER_NAME`]: clients ask for it and check
    /// that the peer's certificate carries it. Every node of a cluster must use the same one,
    /// and (operator CA) every node certificate must carry it as a DNS SAN.
    ///
    /// # Errors
    /// [`TlsError::Verifier`] if `name` is not a valid DNS name.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Result<Self, TlsError> {
        let name = name.into();
        ServerName::try_from(name.as_str()).map_err(|e| TlsError::Verifier {
            what: "cluster server name",
            reason: format!("{name:?}: {e}"),
        })?;
        self.server_name = name;
        Ok(self)
    }

    /// The node id this node's certificate names (what peers will take it for).
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The server name clients ask for on cluster connections.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The trusted CA certificates.
    pub fn ca_certificates(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// This node's chain, leaf first.
    pub fn certificate_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    fn root_store(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut store = RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone()).map_err(|source| TlsError::Rustls {
                what: "cluster CA certificate",
                source,
            })?;
        }
        Ok(Arc::new(store))
    }

    /// The rustls server side: TLS 1.3 only, client certificate required and verified against
    /// the cluster CA, ALPN [`ALPN`].
    ///
    /// # Errors
    /// [`TlsError::Verifier`] or [`TlsError::Rustls`] if rustls refuses the CA or the key.
    pub fn rustls_server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.root_store()?, self.provider.clone())
                .build()
                .map_err(|e| TlsError::Verifier {
                    what: "client certificate verifier",
                    reason: e.to_string(),
                })?;
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_err("TLS 1.3 server"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(rustls_err("node certificate and key"))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The rustls client side: TLS 1.3 only, server chain verified against the cluster CA and
    /// the cluster server name, this node's certificate presented, ALPN [`ALPN`].
    ///
    /// # Errors
    /// [`TlsError::Verifier`] or [`TlsError::Rustls`] if rustls refuses the CA or the key.
    pub fn rustls_client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let verifier =
            WebPkiServerVerifier::builder_with_provider(self.root_store()?, self.provider.clone())
                .build()
                .map_err(|e| TlsError::Verifier {
                    what: "server certificate verifier",
                    reason: e.to_string(),
                })?;
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_err("TLS 1.3 client"))?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(rustls_err("node certificate and key"))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The quinn server config (TLS only; the endpoint adds its transport settings).
    ///
    /// # Errors
    /// As [`ClusterCredentials::rustls_server_config`], or [`TlsError::Quic`].
    pub fn server_config(&self) -> Result<quinn::ServerConfig, TlsError> {
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(self.rustls_server_config()?)
                .map_err(|e| TlsError::Quic {
                    what: "QUIC server TLS",
                    reason: e.to_string(),
                })?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }

    /// The quinn client config (TLS only; the endpoint adds its transport settings).
    ///
    /// # Errors
    /// As [`ClusterCredentials::rustls_client_config`], or [`TlsError::Quic`].
    pub fn client_config(&self) -> Result<quinn::ClientConfig, TlsError> {
        let crypto =
            quinn::crypto::rustls::QuicClientConfig::try_from(self.rustls_client_config()?)
                .map_err(|e| TlsError::Quic {
                    what: "QUIC client TLS",
                    reason: e.to_string(),
                })?;
        Ok(quinn::ClientConfig::new(Arc::new(crypto)))
    }
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_err(what: &'static str) -> impl Fn(rustls::Error) -> TlsError {
    move |source| TlsError::Rustls { what, source }
}

fn name_ca_file(err: TlsError, ca: PathBuf) -> TlsError {
    match err {
        TlsError::NotSignedByCa { cert, reason, .. } => {
            TlsError::NotSignedByCa { cert, ca, reason }
        }
        other => other,
    }
}

fn load_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::BadPem {
            path: path.to_path_buf(),
            what,
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

/// Checks `leaf` (with `intermediates`) against `roots` the way a peer will: rustls's client
/// certificate verifier, current time. Returns the verifier's reason on failure.
pub(crate) fn verify_leaf(
    roots: &[CertificateDer<'static>],
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), String> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), ring_provider())
        .build()
        .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_credentials_build_quic_configs() {
        let secret = ClusterSecret::from_bytes([9; 32]);
        let creds = ClusterCredentials::from_secret(&secret, "n1").unwrap();
        creds.server_config().unwrap();
        creds.client_config().unwrap();
        assert!(!format!("{creds:?}").contains("PRIVATE"));
    }

    #[test]
    fn leaf_from_other_secret_does_not_verify() {
        let a = ClusterCredentials::from_secret(&ClusterSecret::from_bytes([1; 32]), "n1").unwrap();
        let b = ClusterCredentials::from_secret(&ClusterSecret::from_bytes([2; 32]), "n1").unwrap();
        assert!(verify_leaf(a.ca_certificates(), &b.certificate_chain()[0], &[]).is_err());
        assert!(verify_leaf(a.ca_certificates(), &a.certificate_chain()[0], &[]).is_ok());
    }
}
