//! Verification tests: keys are generated per run (aws-lc-rs), tokens signed with
//! jsonwebtoken's `encode`, JWKS served from a temp file or a tiny HTTP server on 127.0.0.1:0.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::*;

const ISS: &str = "https://idp.example";
const AUD: &str = "sluice";

/// A signing key and its public JWK (with `kid`).
struct TestKey {
    enc: EncodingKey,
    alg: Algorithm,
    jwk: Value,
    /// X.509 DER of an RSA public key (for the HMAC confusion test).
    public_der: Vec<u8>,
}

/// RSA keygen is slow in debug builds: two keys (PKCS#8) per test binary.
fn rsa_pkcs8(n: usize) -> &'static [u8] {
    static KEYS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..2)
            .map(|_| {
                let kp = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
                AsDer::<Pkcs8V1Der>::as_der(&kp)
                    .expect("pkcs8")
                    .as_ref()
                    .to_vec()
            })
            .collect()
    })[n]
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo, which jsonwebtoken wants.
fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
    fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
        let (len, hdr) = if b[1] < 0x80 {
            (b[1] as usize, 2)
        } else {
            let n = (b[1] & 0x7f) as usize;
            (
                b[2..2 + n].iter().fold(0usize, |a, &x| a << 8 | x as usize),
                2 + n,
            )
        };
        (b[0], &b[hdr..hdr + len], &b[hdr + len..])
    }
    let (_, info, _) = tlv(der);
    let (_, _, rest) = tlv(info); // version
    let (_, _, rest) = tlv(rest); // AlgorithmIdentifier
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

fn with_kid(mut jwk: Value, kid: &str) -> Value {
    jwk["kid"] = json!(kid);
    jwk
}

fn rsa_key(n: usize, kid: &str, alg: Algorithm) -> TestKey {
    let pkcs8 = rsa_pkcs8(n);
    let enc = EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(pkcs8));
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&enc, alg).expect("jwk")).expect("json");
    jwk.as_object_mut().expect("object").remove("alg");
    let kp = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(pkcs8).expect("rsa pkcs8");
    let public_der =
        AsDer::<PublicKeyX509Der>::as_der(aws_lc_rs::signature::KeyPair::public_key(&kp))
            .expect("public der")
            .as_ref()
            .to_vec();
    TestKey {
        enc,
        alg,
        jwk: with_kid(jwk, kid),
        public_der,
    }
}

fn ec_key(kid: &str) -> TestKey {
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
    let enc = EncodingKey::from_ec_der(kp.to_pkcs8v1().expect("pkcs8").as_ref());
    let jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::ES256).expect("jwk"))
        .expect("json");
    TestKey {
        enc,
        alg: Algorithm::ES256,
        jwk: with_kid(jwk, kid),
        public_der: vec![],
    }
}

fn ed_key(kid: &str) -> TestKey {
    let kp = Ed25519KeyPair::generate().expect("ed keygen");
    let enc = EncodingKey::from_ed_der(kp.to_pkcs8v1().expect("pkcs8").as_ref());
    let jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::EdDSA).expect("jwk"))
        .expect("json");
    TestKey {
        enc,
        alg: Algorithm::EdDSA,
        jwk: with_kid(jwk, kid),
        public_der: vec![],
    }
}

fn hs_key(kid: &str) -> TestKey {
    let enc = EncodingKey::from_secret(b"a-shared-secret-of-at-least-32-bytes!");
    let jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::HS256).expect("jwk"))
        .expect("json");
    TestKey {
        enc,
        alg: Algorithm::HS256,
        jwk: with_kid(jwk, kid),
        public_der: vec![],
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now() + 600, "sluice:tenant": "acme"})
}

fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(key: &TestKey, kid: Option<&str>, claims: &Value) -> String {
    sign_as(key, key.alg, kid, claims)
}

fn sign_as(key: &TestKey, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    encode(&header, claims, &key.enc).expect("sign")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

fn jwks(keys: &[&TestKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
}

fn tenants() -> Arc<StaticTenants> {
    Arc::new(
        ["acme", "globex"]
            .iter()
            .map(|t| t.parse().expect("tenant"))
            .collect(),
    )
}

/// An authenticator over a JWKS file in a temp dir.
struct Fixture {
    auth: Authenticator,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn write(&self, jwks: &str) {
        std::fs::write(&self.path, jwks).expect("write jwks");
    }
}

async fn fixture(keys: &[&TestKey], tweak: impl FnOnce(&mut IssuerConfig)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(keys)).expect("write jwks");
    let mut cfg = IssuerConfig {
        issuer: ISS.into(),
        audience: vec![AUD.into()],
        jwks_file: Some(path.clone()),
        ..Default::default()
    };
    tweak(&mut cfg);
    let auth = Authenticator::new(vec![cfg], tenants()).expect("authenticator");
    auth.refresh_keys().await.expect("load jwks");
    Fixture {
        auth,
        path,
        _dir: dir,
    }
}

async fn reject(f: &Fixture, token: &str) -> AuthError {
    f.auth
        .verify(token)
        .await
        .expect_err("token must be rejected")
}

// === success paths ===

#[tokio::test]
async fn verifies_rs256_es256_eddsa() {
    let (rsa, ec, ed) = (
        rsa_key(0, "rsa-1", Algorithm::RS256),
        ec_key("ec-1"),
        ed_key("ed-1"),
    );
    let f = fixture(&[&rsa, &ec, &ed], |_| {}).await;
    for (key, kid) in [(&rsa, "rsa-1"), (&ec, "ec-1"), (&ed, "ed-1")] {
        let p = f
            .auth
            .verify(&sign(key, Some(kid), &claims()))
            .await
            .unwrap_or_else(|e| panic!("{kid}: {e}"));
        assert_eq!(p.subject, "alice");
        assert_eq!(p.tenant.as_ref(), "acme");
        assert_eq!(p.issuer, ISS);
        assert_eq!(p.policies, None);
        assert_eq!(p.session_policy, None);
    }
}

#[tokio::test]
async fn principal_carries_policies_session_policy_and_expiry() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |_| {}).await;
    let exp = now() + 3600;
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kafka-cluster:ReadData"], "Resource": ["*"]}]});
    let c = claims_with(
        json!({"exp": exp, "sluice:policies": ["readers", "ops"], "sluice:session_policy": doc, "aud": ["other", AUD]}),
    );
    let p = f
        .auth
        .verify(&sign(&ec, Some("ec-1"), &c))
        .await
        .expect("valid");
    assert_eq!(
        p.policies,
        Some(vec!["readers".to_owned(), "ops".to_owned()])
    );
    assert_eq!(p.session_policy.as_ref(), Some(&doc));
    assert_eq!(p.expires_at, UNIX_EPOCH + Duration::from_secs(exp));

    // A session policy given as a JSON string is parsed into the same document.
    let c = claims_with(json!({"sluice:session_policy": doc.to_string(), "sluice:policies": []}));
    let p = f
        .auth
        .verify(&sign(&ec, Some("ec-1"), &c))
        .await
        .expect("valid");
    assert_eq!(p.session_policy.as_ref(), Some(&doc));
    assert_eq!(p.policies, Some(vec![]));
}

#[tokio::test]
async fn token_without_kid_uses_the_only_key() {
    let ed = ed_key("ed-1");
    let f = fixture(&[&ed], |_| {}).await;
    f.auth
        .verify(&sign(&ed, None, &claims()))
        .await
        .expect("single key, no kid");

    let ec = ec_key("ec-1");
    let f = fixture(&[&ed, &ec], |_| {}).await;
    assert_eq!(
        reject(&f, &sign(&ed, None, &claims())).await,
        AuthError::UnknownKey { kid: None }
    );
}

#[tokio::test]
async fn leeway_applies_to_exp_and_nbf() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |_| {}).await;
    let c = claims_with(json!({"exp": now() - 10, "nbf": now() + 10}));
    f.auth
        .verify(&sign(&ec, Some("ec-1"), &c))
        .await
        .expect("within the 30 s leeway");
}

// === algorithm checks ===

#[tokio::test]
async fn rejects_alg_none() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |_| {}).await;
    for alg in ["none", "None", "NONE"] {
        let token = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims())
        );
        assert!(
            matches!(
                reject(&f, &token).await,
                AuthError::AlgorithmNotAllowed { .. }
            ),
            "{alg}"
        );
        // Even with a signature part appended.
        let token = format!("{token}c2ln");
        assert!(
            matches!(
                reject(&f, &token).await,
                AuthError::AlgorithmNotAllowed { .. }
            ),
            "{alg}"
        );
    }
}

#[tokio::test]
async fn rejects_algorithms_the_issuer_does_not_list() {
    let (rsa, ec) = (rsa_key(0, "rsa-1", Algorithm::RS256), ec_key("ec-1"));
    let f = fixture(&[&rsa, &ec], |c| c.algorithms = vec!["RS256".into()]).await;
    f.auth
        .verify(&sign(&rsa, Some("rsa-1"), &claims()))
        .await
        .expect("RS256 listed");
    let err = reject(&f, &sign(&ec, Some("ec-1"), &claims())).await;
    assert_eq!(
        err,
        AuthError::AlgorithmNotAllowed {
            alg: "\"ES256\"".into(),
            allowed: "RS256".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "token algorithm \"ES256\" is not accepted for this issuer (accepted: RS256)"
    );
    // RS384 is the same key family but not listed.
    let err = reject(
        &f,
        &sign_as(&rsa, Algorithm::RS384, Some("rsa-1"), &claims()),
    )
    .await;
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { .. }),
        "{err:?}"
    );
    // An algorithm jsonwebtoken does not know.
    let token = format!(
        "{}.{}.c2ln",
        b64(&json!({"alg": "XS999", "kid": "rsa-1"})),
        b64(&claims())
    );
    assert!(matches!(
        reject(&f, &token).await,
        AuthError::AlgorithmNotAllowed { .. }
    ));
}

#[tokio::test]
async fn hs256_only_when_configured() {
    let (rsa, hs) = (rsa_key(0, "rsa-1", Algorithm::RS256), hs_key("hs-1"));
    let f = fixture(&[&rsa, &hs], |_| {}).await;
    let err = reject(&f, &sign(&hs, Some("hs-1"), &claims())).await;
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { .. }),
        "{err:?}"
    );

    let f = fixture(&[&rsa, &hs], |c| {
        c.algorithms = vec!["RS256".into(), "HS256".into()]
    })
    .await;
    f.auth
        .verify(&sign(&hs, Some("hs-1"), &claims()))
        .await
        .expect("HS256 configured");
    f.auth
        .verify(&sign(&rsa, Some("rsa-1"), &claims()))
        .await
        .expect("RS256 still fine");
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let (rsa, hs) = (rsa_key(0, "rsa-1", Algorithm::RS256), hs_key("hs-1"));
    let confused = TestKey {
        enc: EncodingKey::from_secret(&rsa.public_der),
        alg: Algorithm::HS256,
        jwk: json!({}),
        public_der: vec![],
    };
    // The issuer does not list HS256: refused on the algorithm.
    let f = fixture(&[&rsa], |_| {}).await;
    let err = reject(&f, &sign(&confused, Some("rsa-1"), &claims())).await;
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { .. }),
        "{err:?}"
    );
    // The issuer lists HS256 too: refused because the named key is an RSA key.
    let f = fixture(&[&rsa, &hs], |c| {
        c.algorithms = vec!["RS256".into(), "HS256".into()]
    })
    .await;
    let err = reject(&f, &sign(&confused, Some("rsa-1"), &claims())).await;
    assert_eq!(
        err,
        AuthError::AlgorithmKeyMismatch {
            alg: "HS256".into(),
            kid: "\"rsa-1\"".into()
        }
    );
    // Same without kid when the RSA key is the only one.
    let f = fixture(&[&rsa], |c| {
        c.algorithms = vec!["RS256".into(), "HS256".into()]
    })
    .await;
    let err = reject(&f, &sign(&confused, None, &claims())).await;
    assert!(
        matches!(err, AuthError::AlgorithmKeyMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn key_with_declared_alg_verifies_only_that_alg() {
    let mut rsa = rsa_key(0, "rsa-1", Algorithm::RS256);
    rsa.jwk["alg"] = json!("RS256");
    let f = fixture(&[&rsa], |c| {
        c.algorithms = vec!["RS256".into(), "PS256".into()]
    })
    .await;
    f.auth
        .verify(&sign(&rsa, Some("rsa-1"), &claims()))
        .await
        .expect("RS256");
    let err = reject(
        &f,
        &sign_as(&rsa, Algorithm::PS256, Some("rsa-1"), &claims()),
    )
    .await;
    assert!(
        matches!(err, AuthError::AlgorithmKeyMismatch { .. }),
        "{err:?}"
    );
}

// === keys and signatures ===

#[tokio::test]
async fn rejects_unknown_kid_and_bad_signatures() {
    let (rsa, other) = (
        rsa_key(0, "rsa-1", Algorithm::RS256),
        rsa_key(1, "rsa-2", Algorithm::RS256),
    );
    let f = fixture(&[&rsa], |_| {}).await;
    assert_eq!(
        reject(&f, &sign(&rsa, Some("nope"), &claims())).await,
        AuthError::UnknownKey {
            kid: Some("\"nope\"".into())
        }
    );
    // Signed by another key under the published kid.
    assert_eq!(
        reject(&f, &sign(&other, Some("rsa-1"), &claims())).await,
        AuthError::BadSignature
    );
    // Payload swapped after signing.
    let good = sign(&rsa, Some("rsa-1"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(&claims_with(json!({"sluice:tenant": "globex"}))),
        parts[2]
    );
    assert_eq!(reject(&f, &forged).await, AuthError::BadSignature);
}

// === claims ===

#[tokio::test]
async fn rejects_time_audience_and_issuer_violations() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |_| {}).await;
    let cases = [
        (json!({"exp": now() - 120}), AuthError::Expired),
        (json!({"nbf": now() + 120}), AuthError::NotYetValid),
        (
            json!({"aud": "someone-else"}),
            AuthError::WrongAudience {
                expected: AUD.into(),
            },
        ),
        (
            json!({"aud": null}),
            AuthError::WrongAudience {
                expected: AUD.into(),
            },
        ),
        (
            json!({"iss": "https://evil.example"}),
            AuthError::WrongIssuer {
                issuer: Some("\"https://evil.example\"".into()),
            },
        ),
        (
            json!({"iss": null}),
            AuthError::WrongIssuer { issuer: None },
        ),
        (
            json!({"iss": ["https://idp.example"]}),
            AuthError::WrongIssuer { issuer: None },
        ),
        (json!({"exp": null}), AuthError::MissingExpiry),
        (json!({"exp": "tomorrow"}), AuthError::MissingExpiry),
        (json!({"sub": null}), AuthError::MissingSubject),
        (json!({"sub": ""}), AuthError::MissingSubject),
    ];
    for (change, expected) in cases {
        let token = sign(&ec, Some("ec-1"), &claims_with(change.clone()));
        assert_eq!(reject(&f, &token).await, expected, "{change}");
    }
}

#[tokio::test]
async fn rejects_tenant_problems_and_bad_sluice_claims() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |_| {}).await;
    let cases = [
        (json!({"sluice:tenant": null}), AuthError::MissingTenant),
        (
            json!({"sluice:tenant": "Acme"}),
            AuthError::InvalidTenantId {
                value: "\"Acme\"".into(),
            },
        ),
        (
            json!({"sluice:tenant": "__consumer_offsets"}),
            AuthError::InvalidTenantId {
                value: "\"__consumer_offsets\"".into(),
            },
        ),
        (
            json!({"sluice:tenant": 42}),
            AuthError::InvalidTenantId {
                value: "(a JSON number)".into(),
            },
        ),
        (
            json!({"sluice:tenant": "initech"}),
            AuthError::UnknownTenant {
                tenant: "initech".into(),
            },
        ),
    ];
    for (change, expected) in cases {
        let token = sign(&ec, Some("ec-1"), &claims_with(change.clone()));
        assert_eq!(reject(&f, &token).await, expected, "{change}");
    }
    for change in [
        json!({"sluice:policies": "readers"}),
        json!({"sluice:policies": ["readers", 7]}),
        json!({"sluice:session_policy": 5}),
        json!({"sluice:session_policy": "not json"}),
        json!({"sluice:session_policy": "[1]"}),
    ] {
        let token = sign(&ec, Some("ec-1"), &claims_with(change.clone()));
        assert!(
            matches!(reject(&f, &token).await, AuthError::InvalidClaim { .. }),
            "{change}"
        );
    }
}

#[tokio::test]
async fn rejects_malformed_tokens() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |_| {}).await;
    let payload = b64(&claims());
    let crit = format!(
        "{}.{payload}.c2ln",
        b64(&json!({"alg": "ES256", "kid": "ec-1", "crit": ["b64"], "b64": false}))
    );
    for token in [
        String::new(),
        "not-a-jwt".into(),
        "a.b".into(),
        format!("{}.{payload}.sig.extra", b64(&json!({"alg": "ES256"}))),
        format!("!!!.{payload}.c2ln"),
        format!("{}.{payload}.c2ln", b64(&json!(["ES256"]))),
        format!("{}.{payload}.c2ln", b64(&json!({"kid": "ec-1"}))),
        format!("{}.{payload}.c2ln", b64(&json!({"alg": "ES256", "kid": 1}))),
        format!("{}.%%%.c2ln", b64(&json!({"alg": "ES256"}))),
        crit,
    ] {
        assert!(
            matches!(reject(&f, &token).await, AuthError::Malformed(_)),
            "{token:?}"
        );
    }
}

#[tokio::test]
async fn rejects_oversize_tokens_before_parsing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ec = ec_key("ec-1");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&ec])).expect("write");
    let small = IssuerConfig {
        issuer: "https://small.example".into(),
        audience: vec![AUD.into()],
        jwks_file: Some(path.clone()),
        max_token_bytes: 1024,
        ..Default::default()
    };
    let big = IssuerConfig {
        issuer: ISS.into(),
        jwks_file: Some(path),
        ..small.clone()
    };
    let big = IssuerConfig {
        max_token_bytes: 8192,
        ..big
    };
    let auth = Authenticator::new(vec![small, big], tenants()).expect("authenticator");
    auth.refresh_keys().await.expect("load");

    let junk = "x".repeat(9000);
    assert_eq!(
        auth.verify(&junk).await,
        Err(AuthError::Oversize {
            size: 9000,
            limit: 8192
        })
    );
    let padded = claims_with(json!({"iss": "https://small.example", "pad": "p".repeat(1500)}));
    let token = sign(&ec, Some("ec-1"), &padded);
    assert!(matches!(
        auth.verify(&token).await,
        Err(AuthError::Oversize { limit: 1024, .. })
    ));
    let padded = claims_with(json!({"pad": "p".repeat(1500)}));
    auth.verify(&sign(&ec, Some("ec-1"), &padded))
        .await
        .expect("within the big issuer's limit");
}

// === JWKS loading and refresh ===

#[tokio::test]
async fn unknown_kid_refreshes_the_jwks_file_once_per_interval() {
    let (rsa1, rsa2, ec) = (
        rsa_key(0, "rsa-1", Algorithm::RS256),
        rsa_key(1, "rsa-2", Algorithm::RS256),
        ec_key("ec-1"),
    );
    let f = fixture(&[&rsa1], |_| {}).await;
    // The issuer rotates in a new key: the first unknown kid triggers a refresh.
    f.write(&jwks(&[&rsa1, &rsa2]));
    f.auth
        .verify(&sign(&rsa2, Some("rsa-2"), &claims()))
        .await
        .expect("found after refresh");
    // Within the 10 s interval, another unknown kid does not re-read the file...
    f.write(&jwks(&[&rsa1, &rsa2, &ec]));
    let err = reject(&f, &sign(&ec, Some("ec-1"), &claims())).await;
    assert_eq!(
        err,
        AuthError::UnknownKey {
            kid: Some("\"ec-1\"".into())
        }
    );
    // ...but an explicit refresh does.
    f.auth.refresh_keys().await.expect("refresh");
    f.auth
        .verify(&sign(&ec, Some("ec-1"), &claims()))
        .await
        .expect("after refresh_keys");
    // A key removed from the JWKS stops verifying after a refresh.
    f.write(&jwks(&[&ec]));
    f.auth.refresh_keys().await.expect("refresh");
    assert!(matches!(
        reject(&f, &sign(&rsa1, Some("rsa-1"), &claims())).await,
        AuthError::UnknownKey { .. }
    ));
}

#[tokio::test]
async fn failed_refresh_keeps_the_previous_keys() {
    let ec = ec_key("ec-1");
    let f = fixture(&[&ec], |c| c.refresh_min_interval_secs = 0).await;
    f.write("{ not json");
    assert!(matches!(
        f.auth.refresh_keys().await,
        Err(TenancyError::JwksParse { .. })
    ));
    f.auth
        .verify(&sign(&ec, Some("ec-1"), &claims()))
        .await
        .expect("old keys still in use");
    assert!(matches!(
        reject(&f, &sign(&ec, Some("ec-2"), &claims())).await,
        AuthError::UnknownKey { .. }
    ));
}

#[tokio::test]
async fn jwks_skips_unsupported_keys_but_needs_one_usable() {
    let (ed, rsa) = (ed_key("ed-1"), rsa_key(0, "rsa-enc", Algorithm::RS256));
    let mut enc_key = rsa.jwk.clone();
    enc_key["use"] = json!("enc");
    let mut mislabeled = ed.jwk.clone();
    mislabeled["kid"] = json!("ed-as-rs");
    mislabeled["alg"] = json!("RS256");
    let weird = json!({"keys": [
        {"kty": "XYZ", "kid": "future"},
        {"kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "AA"},
        {"kty": "RSA", "kid": "broken"},
        enc_key,
        mislabeled,
        ed.jwk,
    ]});
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, weird.to_string()).expect("write");
    let cfg = IssuerConfig {
        issuer: ISS.into(),
        audience: vec![AUD.into()],
        jwks_file: Some(path.clone()),
        ..Default::default()
    };
    let auth = Authenticator::new(vec![cfg], tenants()).expect("authenticator");
    auth.refresh_keys().await.expect("one usable key is enough");
    auth.verify(&sign(&ed, Some("ed-1"), &claims()))
        .await
        .expect("valid");
    // The only usable key also serves kid-less tokens.
    auth.verify(&sign(&ed, None, &claims()))
        .await
        .expect("valid");
    assert!(matches!(
        auth.verify(&sign(&rsa, Some("rsa-enc"), &claims())).await,
        Err(AuthError::UnknownKey { .. })
    ));

    std::fs::write(&path, json!({"keys": [{"kty": "XYZ"}]}).to_string()).expect("write");
    assert!(matches!(
        auth.refresh_keys().await,
        Err(TenancyError::NoUsableKeys { .. })
    ));
    std::fs::write(&path, "[]").expect("write");
    assert!(matches!(
        auth.refresh_keys().await,
        Err(TenancyError::JwksParse { .. })
    ));
    std::fs::remove_file(&path).expect("remove");
    assert!(matches!(
        auth.refresh_keys().await,
        Err(TenancyError::JwksRead { .. })
    ));
}

/// Serves `state` (status, body) to every request; counts requests; answers after `delay`.
async fn jwks_server(
    state: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
    delay: Duration,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (state, hits) = (state.clone(), hits.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                hits.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let (status, body) = state.lock().expect("state").clone();
                let response = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_over_http_with_single_flight_refresh() {
    let (ec, ed) = (ec_key("ec-1"), ed_key("ed-1"));
    let state = Arc::new(Mutex::new((200, jwks(&[&ec]))));
    let hits = Arc::new(AtomicUsize::new(0));
    let url = jwks_server(state.clone(), hits.clone(), Duration::from_millis(100)).await;
    let cfg = IssuerConfig {
        issuer: ISS.into(),
        audience: vec![AUD.into()],
        jwks_url: Some(url),
        ..Default::default()
    };
    let auth = Authenticator::new(vec![cfg], tenants()).expect("authenticator");
    auth.refresh_keys().await.expect("fetch");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    auth.verify(&sign(&ec, Some("ec-1"), &claims()))
        .await
        .expect("valid");

    // 16 concurrent tokens with a new kid cause one fetch.
    state.lock().expect("state").1 = jwks(&[&ec, &ed]);
    let token = sign(&ed, Some("ed-1"), &claims());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (auth, token) = (auth.clone(), token.clone());
            tokio::spawn(async move { auth.verify(&token).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("valid after one refresh");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // Made-up kids right after are not fetched again (rate limit).
    for kid in ["x1", "x2", "x3"] {
        assert!(matches!(
            auth.verify(&sign(&ed, Some(kid), &claims())).await,
            Err(AuthError::UnknownKey { .. })
        ));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    *state.lock().expect("state") = (404, "gone".into());
    assert!(matches!(
        auth.refresh_keys().await,
        Err(TenancyError::JwksHttpStatus { status: 404, .. })
    ));
    auth.verify(&token).await.expect("old keys kept");
}

// === construction and types ===

#[test]
fn rejects_duplicate_issuers_and_bad_entries() {
    let cfg = IssuerConfig {
        issuer: ISS.into(),
        audience: vec![AUD.into()],
        jwks_file: Some("k.json".into()),
        ..Default::default()
    };
    let err = Authenticator::new(vec![cfg.clone(), cfg.clone()], tenants()).expect_err("duplicate");
    assert!(matches!(err, TenancyError::DuplicateIssuer { .. }), "{err}");
    let http = IssuerConfig {
        jwks_file: None,
        jwks_url: Some("http://idp.example/jwks".into()),
        ..cfg
    };
    let err = Authenticator::new(vec![http], tenants()).expect_err("plain http");
    assert!(
        matches!(err, TenancyError::InvalidIssuerConfig { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn no_issuers_rejects_everything() {
    let auth = Authenticator::new(vec![], tenants()).expect("empty is allowed");
    let token = sign(&ec_key("ec-1"), Some("ec-1"), &claims());
    assert_eq!(
        auth.verify(&token).await,
        Err(AuthError::WrongIssuer {
            issuer: Some(format!("{ISS:?}"))
        })
    );
}

#[test]
fn error_messages_quote_and_cut_token_values() {
    let long = "https://".to_owned() + &"a".repeat(200);
    let err = AuthError::WrongIssuer {
        issuer: Some(crate::error::quoted(&long)),
    };
    let text = err.to_string();
    assert!(text.len() < 120 && text.contains('…'), "{text}");
    assert_eq!(err.kind(), "wrong_issuer");
    assert_eq!(
        AuthError::UnknownKey { kid: None }.to_string(),
        "token has no kid header and its issuer publishes more than one key"
    );
}

#[test]
fn authenticator_is_clone_send_sync_and_verify_is_send() {
    fn assert_send_sync<T: Clone + Send + Sync + 'static>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<Authenticator>();
    let auth = Authenticator::new(vec![], tenants()).expect("empty");
    let fut = auth.verify("x");
    assert_send(&fut);
}
