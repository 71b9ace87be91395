//! The tenant store against the real pool (deploy/pool.sh, 127.0.0.1:29091-29093). Every
//! test uses its own topic, so runs never see each other's records.

use std::time::Duration;

use bytes::Bytes;
use sluice_gateway::config::StoreSettings;
use sluice_gateway::kclient::PoolAccess;
use sluice_gateway::store::{StoreError, TenantStore};
use sluice_tenancy::store::{PrincipalEntry, TenantDoc};
use sluice_tenancy::{PolicyDocument, TenantDirectory, TenantId};
use tokio_util::sync::CancellationToken;

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kafka-cluster:*"],"Resource":["*"]}]}"#;

fn access() -> PoolAccess {
    PoolAccess {
        bootstrap: vec!["127.0.0.1:29091".into(), "127.0.0.1:29092".into(), "127.0.0.1:29093".into()],
        connect_timeout: Duration::from_secs(3),
        call_timeout: Duration::from_secs(10),
        client_id: "sluice-store-test",
        upstream: Default::default(),
    }
}

fn unique_topic(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("__sluice_tenants_test_{name}_{}_{nanos}", std::process::id())
}

fn settings(topic: &str) -> StoreSettings {
    StoreSettings { topic: topic.to_owned(), seed_file: None }
}

fn id(s: &str) -> TenantId {
    s.parse().expect("valid tenant id")
}

fn doc(tenant: &str, max_connections: Option<u64>) -> TenantDoc {
    let mut d = TenantDoc::new(id(tenant));
    d.limits.max_connections = max_connections;
    d.policies.insert("all".into(), PolicyDocument::parse(ALLOW_ALL).expect("valid policy"));
    d.principals.insert("*".into(), PrincipalEntry { policies: vec!["all".into()] });
    d
}

async fn start(topic: &str) -> TenantStore {
    TenantStore::start(access(), &settings(topic), CancellationToken::new()).await.expect("store starts")
}

/// Waits until `store` shows `tenant` at `version` (None = absent).
async fn wait_for(store: &TenantStore, tenant: &str, version: Option<u64>) {
    let mut rx = store.subscribe();
    let t = id(tenant);
    let r = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.get(&t).map(|x| x.version) == version)).await;
    assert!(r.is_ok(), "tenant {tenant} never reached version {version:?}; now {:?}", store.get(&t).map(|x| x.version));
}

#[tokio::test]
async fn a_put_is_read_back_and_loaded_by_a_second_store() {
    let topic = unique_topic("load");
    let a = start(&topic).await;
    assert!(a.snapshot().is_empty());
    assert!(!a.exists(&id("acme")));
    assert_eq!(a.put(doc("acme", Some(5)), None).await.expect("put"), 1);
    // Acknowledged means applied here already.
    assert!(a.exists(&id("acme")));
    assert_eq!(a.put(doc("acme", Some(6)), Some(1)).await.expect("put"), 2);
    assert_eq!(a.put(doc("globex", None), Some(0)).await.expect("put"), 1);

    // A second instance loads everything from the log before start returns.
    let b = start(&topic).await;
    let acme = b.get(&id("acme")).expect("loaded");
    assert_eq!((acme.version, acme.doc.limits.max_connections), (2, Some(6)));
    assert_eq!(b.snapshot().len(), 2);
    // And tails: a later write of A shows up in B.
    a.put(doc("initech", None), None).await.expect("put");
    wait_for(&b, "initech", Some(1)).await;
    a.stop();
    b.stop();
}

#[tokio::test]
async fn a_stale_conditional_write_conflicts_before_producing() {
    let topic = unique_topic("stale");
    let a = start(&topic).await;
    a.put(doc("acme", None), None).await.expect("put");
    let before = a.snapshot().applied_offset();
    match a.put(doc("acme", Some(1)), Some(0)).await {
        Err(StoreError::Conflict { current: 1, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    match a.delete(&id("acme"), Some(7)).await {
        Err(StoreError::Conflict { current: 1, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Nothing was written: a fresh reader sees the same single record.
    let b = start(&topic).await;
    assert_eq!(b.snapshot().applied_offset(), before);
    assert_eq!(b.get(&id("acme")).map(|t| t.version), Some(1));
    a.stop();
    b.stop();
}

#[tokio::test]
async fn two_writers_of_one_version_exactly_one_wins_and_stores_agree() {
    let topic = unique_topic("race");
    let a = start(&topic).await;
    let b = start(&topic).await;
    a.put(doc("acme", None), None).await.expect("put");
    wait_for(&b, "acme", Some(1)).await;
    // Both believe version 1 is current and write version 2.
    let (ra, rb) = tokio::join!(a.put(doc("acme", Some(10)), Some(1)), b.put(doc("acme", Some(20)), Some(1)));
    let wins: Vec<u64> = [&ra, &rb].iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(wins, vec![2], "exactly one writer wins: {ra:?} {rb:?}");
    assert!(
        matches!(ra, Err(StoreError::Conflict { .. })) || matches!(rb, Err(StoreError::Conflict { .. })),
        "the loser gets Conflict: {ra:?} {rb:?}"
    );
    let winner = if ra.is_ok() { Some(10) } else { Some(20) };
    wait_for(&a, "acme", Some(2)).await;
    wait_for(&b, "acme", Some(2)).await;
    assert_eq!(a.get(&id("acme")).map(|t| t.doc.limits.max_connections), Some(winner));
    assert_eq!(b.get(&id("acme")).map(|t| t.doc.limits.max_connections), Some(winner));
    a.stop();
    b.stop();
}

#[tokio::test]
async fn corrupt_records_are_skipped_and_later_ones_apply() {
    let topic = unique_topic("corrupt");
    let a = start(&topic).await;
    a.put(doc("acme", None), None).await.expect("put");
    let mut conn = access().connect_leader(&topic, 0).await.expect("leader");
    let garbage: [(Bytes, Option<Bytes>); 3] = [
        (Bytes::from_static(b"tenant/acme"), Some(Bytes::from_static(b"{not json"))),
        (Bytes::from_static(b"nonsense"), Some(Bytes::from_static(b"{}"))),
        (
            Bytes::from_static(b"tenant/acme"),
            Some(Bytes::from_static(br#"{"version":2,"tenant":{"id":"acme","surprise":true}}"#)),
        ),
    ];
    conn.produce(&topic, 0, &garbage, Duration::from_secs(10)).await.expect("produce garbage");
    // The writes after the garbage still apply, in this store and in a fresh one.
    assert_eq!(a.put(doc("acme", Some(3)), Some(1)).await.expect("put after garbage"), 2);
    let b = start(&topic).await;
    let acme = b.get(&id("acme")).expect("loaded");
    assert_eq!((acme.version, acme.doc.limits.max_connections), (2, Some(3)));
    a.stop();
    b.stop();
}

#[tokio::test]
async fn delete_removes_the_tenant_everywhere() {
    let topic = unique_topic("delete");
    let a = start(&topic).await;
    let b = start(&topic).await;
    a.put(doc("acme", None), None).await.expect("put");
    wait_for(&b, "acme", Some(1)).await;
    assert!(b.exists(&id("acme")));
    a.delete(&id("acme"), Some(1)).await.expect("delete");
    assert!(!a.exists(&id("acme")));
    wait_for(&b, "acme", None).await;
    assert!(!b.exists(&id("acme")));
    // A deleted tenant starts again at version 1.
    assert_eq!(b.put(doc("acme", None), Some(0)).await.expect("put again"), 1);
    let c = start(&topic).await;
    assert_eq!(c.get(&id("acme")).map(|t| t.version), Some(1));
    for s in [a, b, c] {
        s.stop();
    }
}

#[tokio::test]
async fn seed_file_writes_only_absent_tenants() {
    let topic = unique_topic("seed");
    let a = start(&topic).await;
    a.put(doc("acme", Some(1)), None).await.expect("put");
    let seed = std::env::temp_dir().join(format!("{topic}.seed.json"));
    let docs = serde_json::json!([
        {"id": "acme", "limits": {"max_connections": 99}},
        {"id": "globex", "policies": {"all": serde_json::from_str::<serde_json::Value>(ALLOW_ALL).expect("json")},
         "principals": {"*": {"policies": ["all"]}}},
    ]);
    std::fs::write(&seed, docs.to_string()).expect("write seed");
    let settings = StoreSettings { topic: topic.clone(), seed_file: Some(seed.clone()) };
    let b = TenantStore::start(access(), &settings, CancellationToken::new()).await.expect("store starts");
    assert_eq!(b.get(&id("acme")).map(|t| (t.version, t.doc.limits.max_connections)), Some((1, Some(1))));
    assert_eq!(b.get(&id("globex")).map(|t| t.version), Some(1));
    // A bad seed file refuses to start, naming the entry and field.
    std::fs::write(&seed, r#"[{"id":"initech","limits":{"max_conns":1}}]"#).expect("write seed");
    let settings = StoreSettings { topic: topic.clone(), seed_file: Some(seed) };
    let err = TenantStore::start(access(), &settings, CancellationToken::new()).await.err().expect("refused");
    assert!(err.to_string().contains("[0]: limits: unknown field `max_conns`"), "{err}");
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("{topic}.seed.json")));
    a.stop();
    b.stop();
}
