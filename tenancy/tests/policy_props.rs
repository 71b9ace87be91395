//! Property tests of policy evaluation: tenant isolation, deny monotonicity, session narrowing,
//! statement-order independence, agreement with a naive reference evaluator, serde round trip.

use proptest::prelude::*;
use serde_json::{json, Value};
use sluice_tenancy::policy::ARN_PREFIX;
use sluice_tenancy::{Action, Decision, Effect, Grants, PolicyDocument, TenantId};

const TENANTS: [&str; 4] = ["acme", "acme-dev", "t1", "zz"];

fn tenant(s: &str) -> TenantId {
    s.parse().unwrap()
}

// === Generators ===

/// Characters names and name globs are built from: the glob metacharacters, `.`, `/`, `_`
/// (so `__` appears) and a few letters.
fn name_char() -> impl Strategy<Value = char> {
    prop::sample::select(vec!['a', 'b', 'c', '.', '/', '_', '-', '*', '?'])
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_char(), 0..7).prop_map(|v| v.into_iter().collect())
}

fn glob_part(fixed: Vec<&'static str>) -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(fixed).prop_map(str::to_owned), name(),]
}

fn resource_pattern() -> impl Strategy<Value = String> {
    let typ = prop::sample::select(vec![
        "cluster",
        "topic",
        "group",
        "transactional-id",
        "*",
        "t*",
        "?roup",
    ]);
    let ten = glob_part(vec![
        "acme", "acme-dev", "t1", "zz", "*", "acme*", "ac?e", "acme-*",
    ]);
    prop_oneof![
        1 => Just("*".to_owned()),
        8 => (typ, ten, prop::option::of(name())).prop_map(|(t, ten, n)| match n {
            Some(n) => format!("{ARN_PREFIX}{t}/{ten}/{n}"),
            None => format!("{ARN_PREFIX}{t}/{ten}"),
        }),
    ]
}

fn action_pattern() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "kafka-cluster:*",
        "kafka-cluster:*Topic",
        "kafka-cluster:WriteData",
        "kafka-cluster:read*",
        "kafka-cluster:Describe*",
        "kafka-cluster:*Group",
        "kafka-cluster:?riteData*",
        "kafka-cluster:*Transactional*",
        "KAFKA-CLUSTER:connect",
        "kafka-cluster:*Topic*",
    ])
    .prop_map(str::to_owned)
}

fn statement() -> impl Strategy<Value = Value> {
    (
        prop::bool::weighted(0.7),
        prop::collection::vec(action_pattern(), 1..4),
        prop::collection::vec(resource_pattern(), 1..4),
    )
        .prop_map(|(allow, actions, resources)| {
            json!({"Effect": if allow { "Allow" } else { "Deny" }, "Action": actions, "Resource": resources})
        })
}

fn document_value() -> impl Strategy<Value = Value> {
    prop::collection::vec(statement(), 1..6)
        .prop_map(|st| json!({"Version": "2012-10-17", "Statement": st}))
}

fn document() -> impl Strategy<Value = PolicyDocument> {
    document_value().prop_map(|v| PolicyDocument::from_value(v).unwrap())
}

fn action() -> impl Strategy<Value = Action> {
    prop::sample::select(Action::ALL.to_vec())
}

fn tenant_id() -> impl Strategy<Value = TenantId> {
    prop::sample::select(TENANTS.to_vec()).prop_map(tenant)
}

// === Reference evaluator ===

/// Plain recursive glob over chars.
fn glob(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|k| glob(rest, &s[k..])),
        Some(('?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

fn glob_str(p: &str, s: &str) -> bool {
    glob(
        &p.chars().collect::<Vec<_>>(),
        &s.chars().collect::<Vec<_>>(),
    )
}

fn reference_doc_set(docs: &[&PolicyDocument], a: Action, t: &TenantId, n: &str) -> Decision {
    let arn = a.resource_kind().arn(t, n);
    let mut allowed = false;
    for d in docs {
        for st in d.statements() {
            let action_hit = st.actions().iter().any(|p| {
                let short = &p["kafka-cluster:".len()..];
                glob_str(&short.to_lowercase(), &a.short_name().to_lowercase())
            });
            let resource_hit = st.resources().iter().any(|r| glob_str(r, &arn));
            if action_hit && resource_hit {
                match st.effect() {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn reference(
    stored: &[&PolicyDocument],
    session: Option<&PolicyDocument>,
    a: Action,
    t: &TenantId,
    n: &str,
) -> Decision {
    let s = reference_doc_set(stored, a, t, n);
    let Some(session) = session else { return s };
    match (s, reference_doc_set(&[session], a, t, n)) {
        (Decision::ExplicitDeny, _) | (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
        (Decision::Allow, Decision::Allow) => Decision::Allow,
        _ => Decision::ImplicitDeny,
    }
}

fn with_statement(doc: &PolicyDocument, extra: Value) -> PolicyDocument {
    let mut v = serde_json::to_value(doc).unwrap();
    v["Statement"].as_array_mut().unwrap().push(extra);
    PolicyDocument::from_value(v).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (e) The compiled evaluator agrees with the naive one (build the ARN, glob the whole of it).
    #[test]
    fn decide_agrees_with_reference(
        stored in prop::collection::vec(document(), 0..3),
        session in prop::option::of(document()),
        t in tenant_id(),
        probes in prop::collection::vec((action(), name()), 1..16),
    ) {
        let refs: Vec<&PolicyDocument> = stored.iter().collect();
        let g = Grants::new(&t, &refs, session.as_ref());
        for (a, n) in probes {
            let want = reference(&refs, session.as_ref(), a, &t, &n);
            prop_assert_eq!(g.decide(a, &n), want, "{} on {:?}", a, n);
            prop_assert_eq!(g.allows(a, &n), want == Decision::Allow);
        }
    }

    /// (a) Nothing is ever allowed on another tenant's resource, and patterns that literally name
    /// another tenant grant nothing.
    #[test]
    fn other_tenants_are_never_allowed(
        stored in prop::collection::vec(document(), 0..3),
        t in tenant_id(),
        other in tenant_id(),
        a in action(),
        n in name(),
    ) {
        let refs: Vec<&PolicyDocument> = stored.iter().collect();
        let g = Grants::new(&t, &refs, None);
        if other != t {
            prop_assert_ne!(g.decide_resource(a, &other, &n), Decision::Allow);
            // A policy written for `other` (every ARN names it literally) gives `t` nothing.
            let literal = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "kafka-cluster:*", "Resource": [
                    format!("{ARN_PREFIX}cluster/{other}"),
                    format!("{ARN_PREFIX}topic/{other}/*"),
                    format!("{ARN_PREFIX}group/{other}/*"),
                    format!("{ARN_PREFIX}transactional-id/{other}/*"),
                ]}]})).unwrap();
            let g = Grants::new(&t, &[&literal], None);
            prop_assert_ne!(g.decide(a, &n), Decision::Allow);
            let g = Grants::new(&other, &[&literal], None);
            prop_assert_eq!(g.decide(a, &n), Decision::Allow);
        } else {
            prop_assert_eq!(g.decide_resource(a, &other, &n), g.decide(a, &n));
        }
    }

    /// (b) Adding a Deny statement (to a stored document or to the session) never creates an Allow.
    #[test]
    fn deny_never_creates_allow(
        d in document(),
        session in prop::option::of(document()),
        deny_actions in prop::collection::vec(action_pattern(), 1..3),
        deny_resources in prop::collection::vec(resource_pattern(), 1..3),
        t in tenant_id(),
        probes in prop::collection::vec((action(), name()), 1..16),
    ) {
        let deny = json!({"Effect": "Deny", "Action": deny_actions, "Resource": deny_resources});
        let before = Grants::new(&t, &[&d], session.as_ref());
        let d2 = with_statement(&d, deny.clone());
        let after_stored = Grants::new(&t, &[&d2], session.as_ref());
        let s2 = session.as_ref().map(|s| with_statement(s, deny));
        let after_session = Grants::new(&t, &[&d], s2.as_ref());
        for (a, n) in probes {
            if before.decide(a, &n) != Decision::Allow {
                prop_assert_ne!(after_stored.decide(a, &n), Decision::Allow);
                prop_assert_ne!(after_session.decide(a, &n), Decision::Allow);
            }
            // And an explicit deny stays explicit.
            if before.decide(a, &n) == Decision::ExplicitDeny {
                prop_assert_eq!(after_stored.decide(a, &n), Decision::ExplicitDeny);
            }
        }
    }

    /// (c) A session policy only narrows: Allow with it implies Allow without it.
    #[test]
    fn session_only_narrows(
        stored in prop::collection::vec(document(), 0..3),
        session in document(),
        t in tenant_id(),
        probes in prop::collection::vec((action(), name()), 1..16),
    ) {
        let refs: Vec<&PolicyDocument> = stored.iter().collect();
        let with = Grants::new(&t, &refs, Some(&session));
        let without = Grants::new(&t, &refs, None);
        for (a, n) in probes {
            if with.decide(a, &n) == Decision::Allow {
                prop_assert_eq!(without.decide(a, &n), Decision::Allow);
            }
        }
    }

    /// (d) Statement order (and document order) does not change any decision.
    #[test]
    fn order_is_irrelevant(
        v in document_value(),
        other in document(),
        seed in any::<u64>(),
        t in tenant_id(),
        probes in prop::collection::vec((action(), name()), 1..16),
    ) {
        let d = PolicyDocument::from_value(v.clone()).unwrap();
        let mut st = v["Statement"].as_array().unwrap().clone();
        // Deterministic shuffle from the seed (a proptest-driven permutation).
        let mut x = seed | 1;
        for i in (1..st.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            st.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let shuffled = PolicyDocument::from_value(json!({"Version": "2012-10-17", "Statement": st})).unwrap();
        let g1 = Grants::new(&t, &[&d, &other], None);
        let g2 = Grants::new(&t, &[&other, &shuffled], None);
        for (a, n) in probes {
            prop_assert_eq!(g1.decide(a, &n), g2.decide(a, &n), "{} on {:?}", a, n);
        }
    }

    /// (f) Serialization round-trips, through a string and through a `Value`.
    #[test]
    fn serde_round_trip(d in document()) {
        let s = d.to_json();
        prop_assert_eq!(&PolicyDocument::parse(&s).unwrap(), &d);
        let v = serde_json::to_value(&d).unwrap();
        let back: PolicyDocument = serde_json::from_value(v.clone()).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), v);
    }
}

// === No allocation on the decision path ===

/// Counts this thread's allocations, so the check below is not disturbed by parallel tests.
struct CountingAlloc;

thread_local! {
    static ALLOCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `decide` allocates nothing, whatever the policies, session and names.
    #[test]
    fn decide_does_not_allocate(
        stored in prop::collection::vec(document(), 1..3),
        session in prop::option::of(document()),
        t in tenant_id(),
        other in tenant_id(),
        probes in prop::collection::vec((action(), name()), 1..16),
    ) {
        let refs: Vec<&PolicyDocument> = stored.iter().collect();
        let g = Grants::new(&t, &refs, session.as_ref());
        let mut results = Vec::with_capacity(probes.len() * 2);
        let before = ALLOCS.with(|c| c.get());
        for (a, n) in &probes {
            results.push(g.decide(*a, n));
            results.push(g.decide_resource(*a, &other, n));
        }
        let after = ALLOCS.with(|c| c.get());
        prop_assert_eq!(after - before, 0, "decide allocated; results {:?}", results);
    }
}

/// The counter does see allocations (so the property above can fail).
#[test]
fn allocation_counter_counts() {
    let before = ALLOCS.with(|c| c.get());
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(16));
    drop(std::hint::black_box(v));
    assert!(ALLOCS.with(|c| c.get()) > before);
}
