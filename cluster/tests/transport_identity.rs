//! Peer identity: every leaf names its node, the transport checks it after each handshake and
//! tags each message with it; revoked nodes and certificates without a node id are refused;
//! gossip claiming another node's identity is dropped.

mod transport_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use starling_cluster::hlc::NodeId;
use starling_cluster::tls::{
    CA_CERT_FILE, CA_KEY_FILE, ClusterCredentials, NODE_CERT_FILE, TlsError, init_ca, issue_cert,
    node_id_of_leaf,
};
use starling_cluster::transport::endpoint::IDENTITY_REFUSED;
use starling_cluster::transport::{EndpointConfig, MessageKind, TransportError};
use transport_support::*;

const KIND: MessageKind = MessageKind(20);
const LIMIT: Duration = Duration::from_secs(10);

fn id(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_the_node_id_the_certificate_names() {
    let secret = secret();
    let c1 = ClusterCredentials::from_secret(&secret, "n1").unwrap();
    assert_eq!(c1.node_id(), &id("n1"));
    assert_eq!(
        node_id_of_leaf(&c1.certificate_chain()[0]).unwrap(),
        id("n1")
    );
    let e1 = endpoint(&c1, test_config(None));
    let e2 = secret_node(&secret, "n2", test_config(None));
    let mut inbox = e2.subscribe(KIND, 1024).unwrap();
    let mut back = e1.subscribe(KIND, 1024).unwrap();
    let got = deliver(
        &e1,
        e2.local_addr(),
        KIND,
        Bytes::from_static(b"hi"),
        &mut inbox,
    )
    .await;
    assert_eq!(got.peer, id("n1"));
    // The reverse direction rides the same (accepted) connection and names n2.
    let got = deliver(
        &e2,
        e1.local_addr(),
        KIND,
        Bytes::from_static(b"ho"),
        &mut back,
    )
    .await;
    assert_eq!(got.peer, id("n2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_refused_in_both_directions() {
    let secret = secret();
    let revoking = EndpointConfig {
        revoked_nodes: Arc::from(vec![id("lost")]),
        ..test_config(None)
    };
    let guard = secret_node(&secret, "n1", revoking);
    let lost = secret_node(&secret, "lost", test_config(None));
    let mut inbox = guard.subscribe(KIND, 1024).unwrap();
    // The lost node dials: its handshake verifies, then the guard closes the connection.
    let _ = lost
        .send(guard.local_addr(), KIND, Bytes::from_static(b"x"))
        .await;
    wait_until(LIMIT, "the guard refuses the lost node", || async {
        guard.stats().snapshot().peers_revoked >= 1
    })
    .await;
    // The guard dials the lost node: refused on our side, as a connection error.
    let err = guard
        .send(lost.local_addr(), KIND, Bytes::from_static(b"y"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    assert!(guard.stats().snapshot().peers_revoked >= 2);
    assert!(
        inbox.try_recv().is_err(),
        "nothing from the lost node got in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_under_another_nodes_id_is_dropped() {
    let secret = secret();
    let e1 = secret_node(&secret, "n1", test_config(None));
    let e2 = secret_node(&secret, "n2", test_config(None));
    let m1 = member(&e1, "n1", &[]).await;
    // Certified as n2, gossiping as "impostor" from its own address.
    let m2 = member(&e2, "impostor", &[e1.local_addr()]).await;
    wait_until(LIMIT, "n1 drops the impostor's gossip", || async {
        e1.stats().snapshot().gossip_spoofed >= 3
    })
    .await;
    assert!(!known_ids(&m1).await.contains(&"impostor".to_string()));
    drop(m2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_ca_client_certificate_without_a_node_id_is_refused() {
    let tmp = TempDir::new("noid");
    let ca_dir = tmp.path().join("ca");
    init_ca(&ca_dir).unwrap();
    issue_cert(&ca_dir, "n1", &tmp.path().join("n1")).unwrap();
    let node = endpoint(
        &ClusterCredentials::from_dir(&tmp.path().join("n1")).unwrap(),
        test_config(None),
    );

    // A clientAuth certificate from the same CA, made for something else: no node id.
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(ca_dir.join(CA_KEY_FILE)).unwrap()).unwrap();
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Starling");
    dn.push(DnType::CommonName, "Starling cluster CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec!["starling.cluster".to_string()]).unwrap();
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CommonName, "n1");
    leaf.subject_alt_names
        .push(SanType::Rfc822Name("alice@example.com".try_into().unwrap()));
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    leaf.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let chain = vec![cert.der().clone()];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));

    // Loading it as node credentials says why at once.
    std::fs::create_dir_all(tmp.path().join("intruder")).unwrap();
    std::fs::write(tmp.path().join("intruder").join(NODE_CERT_FILE), cert.pem()).unwrap();
    std::fs::write(
        tmp.path().join("intruder").join("node.key"),
        key.serialize_pem(),
    )
    .unwrap();
    let err = ClusterCredentials::from_files(
        &ca_dir.join(CA_CERT_FILE),
        &tmp.path().join("intruder").join(NODE_CERT_FILE),
        &tmp.path().join("intruder").join("node.key"),
    )
    .unwrap_err();
    assert!(matches!(err, TlsError::NoNodeId { .. }), "{err}");

    // Presented on the wire, the chain verifies, then the node closes the connection.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca_dir.join(CA_CERT_FILE)).unwrap())
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .unwrap();
    tls.alpn_protocols = vec![starling_cluster::tls::ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut client = quinn::Endpoint::client(any_local()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = client
        .connect(node.local_addr(), "starling.cluster")
        .unwrap()
        .await
        .expect("the chain itself verifies");
    let reason = tokio::time::timeout(LIMIT, conn.closed()).await.unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, quinn::VarInt::from_u32(IDENTITY_REFUSED));
        }
        other => panic!("unexpected close: {other}"),
    }
    assert_eq!(node.stats().snapshot().peers_unidentified, 1);
    client.close(quinn::VarInt::from_u32(0), b"");
}
