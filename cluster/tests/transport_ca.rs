//! Operator-CA mode: CA and node files on disk, nodes talking with them, a node from another
//! CA rejected, and file errors that name the file.

mod transport_support;

use std::time::Duration;

use bytes::Bytes;
use starling_cluster::tls::{
    CA_CERT_FILE, CA_KEY_FILE, ClusterCredentials, NODE_CERT_FILE, NODE_KEY_FILE, TlsError,
    init_ca, issue_cert,
};
use starling_cluster::transport::{MessageKind, TransportError};
use transport_support::*;

const KIND: MessageKind = MessageKind(20);
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_certificates_from_the_operator_ca_talk() {
    let tmp = TempDir::new("ca");
    let ca_dir = tmp.path().join("ca");
    init_ca(&ca_dir).unwrap();
    for node in ["n1", "n2"] {
        issue_cert(&ca_dir, node, &tmp.path().join(node)).unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in [
            ca_dir.join(CA_KEY_FILE),
            tmp.path().join("n1").join(NODE_KEY_FILE),
        ] {
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", key.display());
        }
    }
    // The node directory holds what a node needs, and not the CA key.
    assert!(tmp.path().join("n1").join(CA_CERT_FILE).exists());
    assert!(!tmp.path().join("n1").join(CA_KEY_FILE).exists());

    let c1 = ClusterCredentials::from_dir(&tmp.path().join("n1")).unwrap();
    let c2 = ClusterCredentials::from_dir(&tmp.path().join("n2")).unwrap();
    let e1 = endpoint(&c1, test_config(None));
    let e2 = endpoint(&c2, test_config(None));
    let mut inbox = e2.subscribe(KIND, 1024).unwrap();
    let got = deliver(
        &e1,
        e2.local_addr(),
        KIND,
        Bytes::from_static(b"hello"),
        &mut inbox,
    )
    .await;
    assert_eq!(
        (got.from, &got.payload[..]),
        (e1.local_addr(), &b"hello"[..])
    );

    // Chitchat works on it too.
    let m1 = member(&e1, "n1", &[]).await;
    let m2 = member(&e2, "n2", &[e1.local_addr()]).await;
    wait_until(LIMIT, "both see 2 live nodes", || async {
        live_count_is(&m1, 2).await && live_count_is(&m2, 2).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_rejected() {
    let tmp = TempDir::new("ca2");
    init_ca(&tmp.path().join("ca-a")).unwrap();
    init_ca(&tmp.path().join("ca-b")).unwrap();
    issue_cert(&tmp.path().join("ca-a"), "good", &tmp.path().join("good")).unwrap();
    issue_cert(&tmp.path().join("ca-b"), "other", &tmp.path().join("other")).unwrap();
    let good = endpoint(
        &ClusterCredentials::from_dir(&tmp.path().join("good")).unwrap(),
        test_config(None),
    );
    let other = endpoint(
        &ClusterCredentials::from_dir(&tmp.path().join("other")).unwrap(),
        test_config(None),
    );
    let _inbox = good.subscribe(KIND, 1024).unwrap();
    let err = other
        .send(good.local_addr(), KIND, Bytes::from_static(b"let me in"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect { .. }), "{err}");
    wait_until(LIMIT, "the good node counted the rejection", || async {
        good.stats().snapshot().handshakes_rejected == 1
    })
    .await;
    assert_eq!(good.stats().snapshot().messages_received, 0);
    assert_eq!(other.stats().snapshot().connects_failed, 1);

    // Loading a node certificate against the wrong CA fails at start-up, naming the files.
    let err = ClusterCredentials::from_files(
        &tmp.path().join("good").join(CA_CERT_FILE),
        &tmp.path().join("other").join(NODE_CERT_FILE),
        &tmp.path().join("other").join(NODE_KEY_FILE),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TlsError::NotSignedByCa { .. }), "{text}");
    assert!(
        text.contains("other/node.pem") && text.contains("good/ca.pem"),
        "{text}"
    );

    // A key that does not belong to the certificate is named too.
    let err = ClusterCredentials::from_files(
        &tmp.path().join("good").join(CA_CERT_FILE),
        &tmp.path().join("good").join(NODE_CERT_FILE),
        &tmp.path().join("other").join(NODE_KEY_FILE),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("other/node.key"), "{err}");
}

#[test]
fn file_errors_name_the_file_and_nothing_is_overwritten() {
    let tmp = TempDir::new("ca3");
    let ca = tmp.path().join("ca");
    init_ca(&ca).unwrap();
    let before = std::fs::read(ca.join(CA_KEY_FILE)).unwrap();
    let err = init_ca(&ca).unwrap_err();
    assert!(matches!(err, TlsError::AlreadyExists { .. }), "{err}");
    assert_eq!(std::fs::read(ca.join(CA_KEY_FILE)).unwrap(), before);

    let node = tmp.path().join("n1");
    issue_cert(&ca, "n1", &node).unwrap();
    let err = issue_cert(&ca, "n1", &node).unwrap_err().to_string();
    assert!(
        err.contains("node.pem") && err.contains("already exists"),
        "{err}"
    );

    let err = issue_cert(&tmp.path().join("missing"), "n2", &tmp.path().join("n2"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing/ca.pem"), "{err}");

    std::fs::write(node.join(NODE_KEY_FILE), "not a key").unwrap();
    let err = ClusterCredentials::from_dir(&node).unwrap_err().to_string();
    assert!(
        err.contains("n1/node.key") && err.contains("private key"),
        "{err}"
    );

    std::fs::write(node.join(CA_CERT_FILE), "").unwrap();
    let err = ClusterCredentials::from_dir(&node).unwrap_err().to_string();
    assert!(err.contains("n1/ca.pem"), "{err}");

    // A CA key that does not match ca.pem: the issued certificate would not verify.
    let other = tmp.path().join("other-ca");
    init_ca(&other).unwrap();
    std::fs::copy(other.join(CA_KEY_FILE), ca.join("foreign.key")).unwrap();
    std::fs::remove_file(ca.join(CA_KEY_FILE)).unwrap();
    std::fs::rename(ca.join("foreign.key"), ca.join(CA_KEY_FILE)).unwrap();
    let err = issue_cert(&ca, "n3", &tmp.path().join("n3")).unwrap_err();
    assert!(matches!(err, TlsError::NotSignedByCa { .. }), "{err}");
    assert!(!tmp.path().join("n3").join(NODE_CERT_FILE).exists());

    let err = issue_cert(&other, "", &tmp.path().join("n4")).unwrap_err();
    assert!(matches!(err, TlsError::BadNodeId { .. }), "{err}");
}
