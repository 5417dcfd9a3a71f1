//! The admin API: token guard, error shapes, catalog CRUD and pagination on a one-node cluster.

use std::sync::Arc;

use serde_json::{Value, json};
use starling::admin::AdminState;
use starling::config::Config;
use starling::config::secrets::Secret;
use starling::proxy::Gateway;
use starling::server::RunningServer;
use starling_cluster::runtime::{ClusterConfig, ClusterNode};
use starling_cluster::tls::{ClusterCredentials, ClusterSecret, generate_secret};
use tokio::net::TcpListener;

const TOKEN: &str = "admin-secret-for-tests";

async fn server(
    token: Option<&str>,
    clustered: bool,
    dir: &std::path::Path,
) -> (RunningServer, String) {
    starling_providers::ensure_crypto_provider();
    let gateway = Arc::new(
        Gateway::from_config(Config::embedded_default().expect("default")).expect("gateway"),
    );
    let cluster = if clustered {
        let secret = ClusterSecret::parse(&generate_secret().expect("secret")).expect("parse");
        let credentials = ClusterCredentials::from_secret(&secret, "solo").expect("credentials");
        let config = ClusterConfig::new(
            "solo",
            "127.0.0.1:0".parse().expect("addr"),
            dir.to_owned(),
            credentials,
        );
        Some(Arc::new(ClusterNode::start(config).await.expect("cluster")))
    } else {
        None
    };
    let admin = AdminState {
        token: token.map(Secret::new),
        cluster,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = RunningServer::start_with_admin(gateway, listener, None, admin).expect("starts");
    let base = format!("http://{}", server.addr);
    (server, base)
}

#[tokio::test]
async fn the_token_guards_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_s, base) = server(None, true, dir.path()).await;
    let c = reqwest::Client::new();
    let r = c
        .get(format!("{base}/admin/v1/cluster"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 403, "no token configured: the admin API is off");

    let (_s, base) = server(Some(TOKEN), true, dir.path().join("b").as_path()).await;
    for auth in [
        None,
        Some("wrong"),
        Some("admin-secret-for-testS"),
        Some("admin-secret-for-tests-and-more"),
    ] {
        let mut req = c.get(format!("{base}/admin/v1/cluster"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let r = req.send().await.expect("answer");
        assert_eq!(r.status(), 401, "{auth:?}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["type"], "authentication_error");
    }
}

#[tokio::test]
async fn without_a_cluster_the_state_routes_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_s, base) = server(Some(TOKEN), false, dir.path()).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/admin/v1/state/digest"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn catalog_crud_and_pagination() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_s, base) = server(Some(TOKEN), true, dir.path()).await;
    let c = reqwest::Client::new();
    let put = |id: String, body: String| {
        let c = c.clone();
        let url = format!("{base}/admin/v1/catalog/{id}");
        async move {
            c.put(url)
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await
                .expect("answer")
        }
    };
    for i in 0..5 {
        let r = put(format!("team-{i}"), json!({"n": i}).to_string()).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        put("bad".to_owned(), "{not json".to_owned()).await.status(),
        400
    );
    assert_eq!(
        put(
            "big".to_owned(),
            format!("\"{}\"", "x".repeat(2 * 1024 * 1024))
        )
        .await
        .status(),
        413
    );

    let get = |path: String| {
        let c = c.clone();
        let url = format!("{base}{path}");
        async move {
            let r = c.get(url).bearer_auth(TOKEN).send().await.expect("answer");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (status, body) = get("/admin/v1/catalog/team-3".to_owned()).await;
    assert_eq!((status, body["value"].clone()), (200, json!({"n": 3})));
    let (status, _) = get("/admin/v1/catalog/nope".to_owned()).await;
    assert_eq!(status, 404);

    let (_, page1) = get("/admin/v1/catalog?prefix=team-&limit=2".to_owned()).await;
    let ids: Vec<&str> = page1["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, vec!["team-0", "team-1"]);
    assert_eq!(page1["next"], "team-1");
    let (_, page3) = get("/admin/v1/catalog?prefix=team-&limit=2&after=team-3".to_owned()).await;
    assert_eq!(page3["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page3["next"], Value::Null);

    let r = c
        .delete(format!("{base}/admin/v1/catalog/team-0"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let (status, _) = get("/admin/v1/catalog/team-0".to_owned()).await;
    assert_eq!(status, 404);
    let r = c
        .delete(format!("{base}/admin/v1/catalog/team-0"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);

    let (status, body) = get("/admin/v1/cluster".to_owned()).await;
    assert_eq!(status, 200);
    assert_eq!(body["node_id"], "solo");
    assert_eq!(body["members"].as_array().map(Vec::len), Some(1));
}
