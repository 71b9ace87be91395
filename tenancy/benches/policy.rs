//! `Grants::decide` (the per-resource check the gateway runs for every request) and
//! `Grants::new` (compiling a principal's policies), for a realistic mix: a producer/consumer
//! policy with prefixed topics, an admin-style deny list, and an optional session policy.
//!
//! Run: `cargo bench -p sluice-tenancy --bench policy` (results in `target/criterion/policy/*`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use sluice_tenancy::{Action, Grants, PolicyDocument, TenantId};

fn documents() -> (PolicyDocument, PolicyDocument, PolicyDocument) {
    let mut statements = vec![
        json!({"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"], "Resource": "arn:sluice:kafka:::cluster/acme"}),
        json!({"Effect": "Allow", "Action": ["kafka-cluster:*Topic", "kafka-cluster:*Data"], "Resource": "arn:sluice:kafka:::topic/acme/orders.*"}),
        json!({"Effect": "Allow", "Action": ["kafka-cluster:*Group"], "Resource": "arn:sluice:kafka:::group/acme/*"}),
        json!({"Effect": "Deny", "Action": ["kafka-cluster:DeleteTopic"], "Resource": "arn:sluice:kafka:::topic/acme/*-prod"}),
    ];
    // Teams with their own prefixes: the decision has to look past them.
    for i in 0..16 {
        statements.push(json!({"Effect": "Allow", "Action": ["kafka-cluster:ReadData", "kafka-cluster:DescribeTopic"], "Resource": format!("arn:sluice:kafka:::topic/acme/team{i}.*.events")}));
    }
    let stored =
        PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": statements}))
            .expect("stored policy");
    let deny = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "kafka-cluster:*", "Resource": ["arn:sluice:kafka:::topic/acme/secret*", "arn:sluice:kafka:::group/acme/admin-?"]}
    ]})).expect("deny policy");
    let session = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "kafka-cluster:WriteData", "kafka-cluster:DescribeTopic"], "Resource": "*"}
    ]})).expect("session policy");
    (stored, deny, session)
}

fn bench(c: &mut Criterion) {
    let acme: TenantId = "acme".parse().expect("tenant");
    let (stored, deny, session) = documents();
    let grants = Grants::new(&acme, &[&stored, &deny], None);
    let narrowed = Grants::new(&acme, &[&stored, &deny], Some(&session));

    let mut g = c.benchmark_group("policy");
    g.bench_function("decide/write_allowed", |b| {
        b.iter(|| grants.decide(black_box(Action::WriteData), black_box("orders.eu-west.v2")))
    });
    g.bench_function("decide/read_team15_last_statement", |b| {
        b.iter(|| {
            grants.decide(
                black_box(Action::ReadData),
                black_box("team15.billing.events"),
            )
        })
    });
    g.bench_function("decide/implicit_deny", |b| {
        b.iter(|| {
            grants.decide(
                black_box(Action::ReadData),
                black_box("payments.eu-west.v2"),
            )
        })
    });
    g.bench_function("decide/cluster_connect", |b| {
        b.iter(|| grants.decide(black_box(Action::Connect), black_box("")))
    });
    g.bench_function("decide/with_session", |b| {
        b.iter(|| narrowed.decide(black_box(Action::WriteData), black_box("orders.eu-west.v2")))
    });
    g.bench_function("new/20_statements_plus_deny_and_session", |b| {
        b.iter(|| Grants::new(black_box(&acme), &[&stored, &deny], Some(&session)))
    });
    g.bench_function("parse/20_statements", |b| {
        let json = stored.to_json();
        b.iter(|| PolicyDocument::parse(black_box(&json)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
