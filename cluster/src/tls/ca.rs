//! Certificate authority and node certificates: the fields we put in them, the shared-secret CA,
//! and the operator-CA files (`init_ca`, `issue_cert`).
//!
//! Field choices, and why:
//! - CA: `CA:TRUE, pathlen:0`, keyCertSign + cRLSign. The shared-secret CA has fixed dates
//!   (2024-01-01 to 4096-01-01) and a serial derived from its key, so every node builds the
//!   byte-identical certificate from the same secret.
//! - Node leaf: CN = node id; URI SAN `urn:starling:node:<node id>` ([`node_uri`]), the one
//!   field peers read the node id from after the handshake (a certificate without it is not a
//!   Starling node certificate and is refused, so a clientAuth certificate that a shared
//!   corporate CA issued for something else does not get in); DNS SANs = the cluster server
//!   name ([`DEFAULT_SERVER_NAME`]) and, when the node id is a DNS label,
//!   `<node>.node.starling.cluster` (for operators reading certificates). Both serverAuth and
//!   clientAuth, because every node is server and client on the same endpoint.
//! - Lifetimes: shared-secret leaves are made afresh at every start and live 30 days
//!   ([`SECRET_LEAF_VALIDITY`]; a node running longer than that must be restarted, which
//!   re-issues it); [`issue_cert`] leaves live one year ([`NODE_CERT_VALIDITY`]); the operator
//!   CA 20 years; the shared-secret CA is fixed (2024-01-01 to 4096-01-01).
//! - Validity starts one day in the past, so a peer whose clock runs
//!   behind still accepts a certificate made a moment ago. Clock-skew tests depend on this.
//!
//! rcgen (without its x509-parser feature) cannot read an issuer back from a PEM certificate, so
//! [`issue_cert`] rebuilds the issuer from the fixed fields [`init_ca`] used, then checks the new
//! leaf against `ca.pem` with rustls's own verifier. A CA made elsewhere is reported clearly:
//! issue its node certificates with that other PKI and load them with
//! [`super::ClusterCredentials::from_files`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType, date_time_ymd,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::secret::ClusterSecret;
use super::{DEFAULT_SERVER_NAME, TlsError, config};
use crate::hlc::{NodeId, NodeIdError};

/// File name of the CA certificate in a CA or node directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key in a CA directory (keep it off the nodes).
pub const CA_KEY_FILE: &str = "ca.key";
/// File name of a node's certificate chain.
pub const NODE_CERT_FILE: &str = "node.pem";
/// File name of a node's private key.
pub const NODE_KEY_FILE: &str = "node.key";

const ORGANIZATION: &str = "Starling";
const SECRET_CA_NAME: &str = "Starling cluster CA (shared secret)";
const OPERATOR_CA_NAME: &str = "Starling cluster CA";
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Validity of operator-issued certificates.
const OPERATOR_CA_VALIDITY: Duration = Duration::from_secs(20 * 365 * 24 * 3600);
/// Validity of a node certificate made by [`issue_cert`]: one year. Re-issue before it ends
/// (`starling cluster issue-cert` into a fresh directory, then restart the node on it).
pub const NODE_CERT_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Validity of a shared-secret leaf: 30 days from the node's start (it is re-issued at every
/// start, so only a node running for 30 days without a restart would see it expire).
pub const SECRET_LEAF_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Prefix of the URI SAN that names the node in its certificate.
pub const NODE_URI_PREFIX: &str = "urn:starling:node:";

/// The URI SAN naming `node_id` in its certificate: `urn:starling:node:<node id>`.
pub fn node_uri(node_id: &str) -> String {
    format!("{NODE_URI_PREFIX}{node_id}")
}

/// A freshly issued node certificate and its key.
pub(crate) struct IssuedLeaf {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: PrivateKeyDer<'static>,
    pub(crate) key_pem: String,
    pub(crate) cert_pem: String,
}

/// The DNS SAN naming one node, `<node>.node.starling.cluster`, or `None` when the node id is
/// not a DNS label (letters, digits and inner hyphens, at most 63 bytes). Node ids that are not
/// labels still work; the name is only a convenience for operators reading certificates.
pub fn node_dns_name(node_id: &str) -> Option<String> {
    let label = node_id.to_ascii_lowercase();
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    ok.then(|| format!("{label}.node.{DEFAULT_SERVER_NAME}"))
}

/// Node ids in certificates follow [`NodeId`]'s rules (1 to 64 bytes of `[A-Za-z0-9._-]`),
/// which also keeps them valid in a URI without escaping.
fn check_node_id(node_id: &str) -> Result<(), TlsError> {
    NodeId::new(node_id)
        .map(|_| ())
        .map_err(|e| TlsError::BadNodeId {
            node_id: node_id.to_string(),
            reason: match e {
                NodeIdError::Empty => "must not be empty",
                NodeIdError::TooLong(_) => "longer than 64 bytes",
                NodeIdError::BadChar(_) => "only A-Z, a-z, 0-9, '.', '_' and '-' are allowed",
            },
        })
}

fn ca_params(common_name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity.apply(&mut params);
    params
}

/// How long a certificate is valid.
#[derive(Clone, Copy)]
pub(crate) enum Validity {
    /// 2024-01-01 to 4096-01-01: the shared-secret CA, which lives exactly as long as the
    /// secret does (and must be byte-identical on every node).
    Fixed,
    /// From one day ago to `span` from now.
    FromNow(Duration),
}

impl Validity {
    fn apply(self, params: &mut CertificateParams) {
        match self {
            Validity::Fixed => {
                params.not_before = date_time_ymd(2024, 1, 1);
                params.not_after = date_time_ymd(4096, 1, 1);
            }
            Validity::FromNow(span) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO);
                params.not_before = date_time_ymd(1970, 1, 1) + now.saturating_sub(DAY);
                params.not_after = date_time_ymd(1970, 1, 1) + now.saturating_add(span);
            }
        }
    }
}

/// The shared-secret CA: its certificate (identical on every node) and an issuer for leaves.
pub(crate) fn secret_ca(
    secret: &ClusterSecret,
) -> Result<(CertificateDer<'static>, Issuer<'static, KeyPair>), TlsError> {
    let key = secret.derive_ca_key()?;
    let params = ca_params(SECRET_CA_NAME, Validity::Fixed);
    let cert = params
        .self_signed(&key)
        .map_err(|source| TlsError::Generate {
            what: "cluster CA certificate",
            source,
        })?;
    Ok((cert.der().clone(), Issuer::new(params, key)))
}

/// Issues a node leaf (fresh Ed25519 key) signed by `issuer`.
pub(crate) fn issue_leaf(
    issuer: &Issuer<'_, KeyPair>,
    node_id: &str,
    validity: Validity,
) -> Result<IssuedLeaf, TlsError> {
    check_node_id(node_id)?;
    let generate = |what| move |source| TlsError::Generate { what, source };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, node_id);
    params.distinguished_name = dn;
    let mut sans = vec![DEFAULT_SERVER_NAME.to_string()];
    sans.extend(node_dns_name(node_id));
    let mut names: Vec<SanType> = sans
        .into_iter()
        .map(|name| name.try_into().map(SanType::DnsName))
        .collect::<Result<_, _>>()
        .map_err(generate("node certificate subject names"))?;
    names.push(SanType::URI(
        node_uri(node_id)
            .try_into()
            .map_err(generate("node certificate node id"))?,
    ));
    params.subject_alt_names = names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params);
    let key = KeyPair::generate_for(&PKCS_ED25519).map_err(generate("node key"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(generate("node certificate"))?;
    Ok(IssuedLeaf {
        cert_pem: cert.pem(),
        cert: cert.der().clone(),
        key_pem: key.serialize_pem(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

/// A shared-secret leaf for `node_id`, signed by the CA derived from `secret`.
pub(crate) fn secret_leaf(
    secret: &ClusterSecret,
    node_id: &str,
) -> Result<(CertificateDer<'static>, IssuedLeaf), TlsError> {
    let (ca, issuer) = secret_ca(secret)?;
    let leaf = issue_leaf(&issuer, node_id, Validity::FromNow(SECRET_LEAF_VALIDITY))?;
    Ok((ca, leaf))
}

/// Creates an operator CA in `dir`: writes `ca.pem` (certificate, give it to every node) and
/// `ca.key` (Ed25519 private key, mode 0600; keep it off the nodes). Creates `dir` if needed.
/// Valid from one day ago for 20 years.
///
/// # Errors
/// [`TlsError::AlreadyExists`] if either file exists (nothing is overwritten), or
/// [`TlsError::Io`] naming the file that could not be written.
pub fn init_ca(dir: &Path) -> Result<(), TlsError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    refuse_existing(&[&cert_path, &key_path])?;
    let key = KeyPair::generate_for(&PKCS_ED25519).map_err(|source| TlsError::Generate {
        what: "CA key",
        source,
    })?;
    let params = ca_params(OPERATOR_CA_NAME, Validity::FromNow(OPERATOR_CA_VALIDITY));
    let cert = params
        .self_signed(&key)
        .map_err(|source| TlsError::Generate {
            what: "CA certificate",
            source,
        })?;
    create_dir(dir)?;
    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, cert.pem().as_bytes(), false)?;
    Ok(())
}

/// Issues a certificate for `node_id` from the CA in `ca_dir` (made by [`init_ca`]) and writes
/// `node.pem` and `node.key` (mode 0600) into `out_dir`, plus a copy of `ca.pem` when `out_dir`
/// has none, so that `out_dir` alone is what the node loads with
/// [`super::ClusterCredentials::from_dir`]. Valid from one day ago for one year
/// ([`NODE_CERT_VALIDITY`]).
///
/// # Errors
/// [`TlsError::BadNodeId`], [`TlsError::Io`]/[`TlsError::BadPem`] naming the CA file at fault,
/// [`TlsError::NotSignedByCa`] if `ca.pem` was not made by [`init_ca`] or does not match
/// `ca.key`, [`TlsError::AlreadyExists`] if a target file exists (or a different `ca.pem`).
pub fn issue_cert(ca_dir: &Path, node_id: &str, out_dir: &Path) -> Result<(), TlsError> {
    check_node_id(node_id)?;
    let ca_cert_path = ca_dir.join(CA_CERT_FILE);
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_pem = read(&ca_cert_path)?;
    let ca_cert = CertificateDer::from_pem_slice(&ca_pem).map_err(|e| TlsError::BadPem {
        path: ca_cert_path.clone(),
        what: "certificate",
        reason: e.to_string(),
    })?;
    let key_pem = read(&ca_key_path)?;
    let key_text = String::from_utf8(key_pem).map_err(|_| TlsError::BadPem {
        path: ca_key_path.clone(),
        what: "private key",
        reason: "not UTF-8 text".into(),
    })?;
    let ca_key = KeyPair::from_pem(&key_text).map_err(|e| TlsError::BadPem {
        path: ca_key_path.clone(),
        what: "private key",
        reason: e.to_string(),
    })?;
    // Only the subject name, key-id method and key usages matter to the issuer; the dates do
    // not.
    let issuer = Issuer::new(
        ca_params(OPERATOR_CA_NAME, Validity::FromNow(OPERATOR_CA_VALIDITY)),
        ca_key,
    );
    let leaf = issue_leaf(&issuer, node_id, Validity::FromNow(NODE_CERT_VALIDITY))?;
    config::verify_leaf(&[ca_cert], &leaf.cert, &[]).map_err(|reason| TlsError::NotSignedByCa {
        cert: PathBuf::from(format!("new certificate for {node_id}")),
        ca: ca_cert_path.clone(),
        reason: format!(
            "{reason} (was {} made by `init_ca`, together with {}?)",
            ca_cert_path.display(),
            ca_key_path.display()
        ),
    })?;

    let cert_path = out_dir.join(NODE_CERT_FILE);
    let key_path = out_dir.join(NODE_KEY_FILE);
    let ca_copy = out_dir.join(CA_CERT_FILE);
    refuse_existing(&[&cert_path, &key_path])?;
    let copy_ca = match fs::read(&ca_copy) {
        Ok(existing) if existing == ca_pem => false,
        Ok(_) => return Err(TlsError::AlreadyExists { path: ca_copy }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(source) => {
            return Err(TlsError::Io {
                path: ca_copy,
                source,
            });
        }
    };
    create_dir(out_dir)?;
    write_new(&key_path, leaf.key_pem.as_bytes(), true)?;
    write_new(&cert_path, leaf.cert_pem.as_bytes(), false)?;
    if copy_ca {
        write_new(&ca_copy, &ca_pem, false)?;
    }
    Ok(())
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    fs::read(path).map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn refuse_existing(paths: &[&PathBuf]) -> Result<(), TlsError> {
    for path in paths {
        if path.exists() {
            return Err(TlsError::AlreadyExists {
                path: (*path).clone(),
            });
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_new(path: &Path, contents: &[u8], private: bool) -> Result<(), TlsError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let io_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::AlreadyExists {
                path: path.to_path_buf(),
            }
        } else {
            TlsError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_ca_is_identical_across_derivations() {
        let secret = ClusterSecret::from_bytes([3; 32]);
        let (a, _) = secret_ca(&secret).unwrap();
        let (b, _) = secret_ca(&secret).unwrap();
        assert_eq!(a, b);
        let (c, _) = secret_ca(&ClusterSecret::from_bytes([4; 32])).unwrap();
        assert_ne!(a, c);
    }

    #[test]
    fn validity_from_now_starts_a_day_back() {
        let mut params = CertificateParams::default();
        Validity::FromNow(DAY).apply(&mut params);
        assert_eq!(params.not_after - params.not_before, DAY * 2);
    }

    #[test]
    fn node_names() {
        assert_eq!(
            node_dns_name("N1").as_deref(),
            Some("n1.node.starling.cluster")
        );
        assert_eq!(node_dns_name("node_1"), None);
        assert_eq!(node_dns_name("-a"), None);
        assert!(check_node_id("").is_err());
        assert!(check_node_id("a\nb").is_err());
        assert!(check_node_id("nœud 1").is_err());
        assert!(check_node_id("node_1.eu-west").is_ok());
    }
}
