//! `Authenticator::verify` with cached keys: one valid token per algorithm (EdDSA,
//! ES256, RS256) and one rejected token (bad signature), against a JWKS file that
//! holds all three keys and is loaded once before measuring.
//!
//! Run: `cargo bench -p sluice-tenancy --bench verify` (results in
//! `target/criterion/verify/*`). Keys are generated per run with aws-lc-rs and
//! tokens signed with jsonwebtoken, as in the crate's own tests.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sluice_tenancy::{Authenticator, IssuerConfig, StaticTenants};

const ISS: &str = "https://idp.example";
const AUD: &str = "sluice";

struct Key {
    enc: EncodingKey,
    alg: Algorithm,
    kid: &'static str,
    jwk: Value,
}

fn key(enc: EncodingKey, alg: Algorithm, kid: &'static str) -> Key {
    let mut jwk =
        serde_json::to_value(Jwk::from_encoding_key(&enc, alg).expect("jwk")).expect("json");
    let obj = jwk.as_object_mut().expect("object");
    obj.remove("alg");
    obj.insert("kid".into(), json!(kid));
    Key { enc, alg, kid, jwk }
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

fn keys() -> Vec<Key> {
    let ed = Ed25519KeyPair::generate().expect("ed keygen");
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec keygen");
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa keygen");
    let rsa_pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&rsa).expect("pkcs8");
    vec![
        key(
            EncodingKey::from_ed_der(ed.to_pkcs8v1().expect("pkcs8").as_ref()),
            Algorithm::EdDSA,
            "ed-1",
        ),
        key(
            EncodingKey::from_ec_der(ec.to_pkcs8v1().expect("pkcs8").as_ref()),
            Algorithm::ES256,
            "ec-1",
        ),
        key(
            EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(rsa_pkcs8.as_ref())),
            Algorithm::RS256,
            "rsa-1",
        ),
    ]
}

fn token(key: &Key) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims =
        json!({"iss": ISS, "aud": AUD, "sub": "alice", "exp": now + 3600, "sluice:tenant": "acme"});
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.to_string());
    encode(&header, &claims, &key.enc).expect("sign")
}

/// `token` with its signature's first character changed (still valid base64url).
fn bad_signature(token: &str) -> String {
    let dot = token.rfind('.').expect("three parts") + 1;
    let mut bytes = token.as_bytes().to_vec();
    bytes[dot] = if bytes[dot] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).expect("ascii")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = keys();
    let path = dir.path().join("jwks.json");
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    std::fs::write(&path, jwks.to_string()).expect("write jwks");
    let config = IssuerConfig {
        issuer: ISS.into(),
        audience: vec![AUD.into()],
        jwks_file: Some(path),
        ..Default::default()
    };
    let tenants: StaticTenants = ["acme"]
        .iter()
        .map(|t| t.parse().expect("tenant"))
        .collect();
    let auth = Authenticator::new(vec![config], Arc::new(tenants)).expect("authenticator");
    rt.block_on(auth.refresh_keys()).expect("load jwks");

    let mut group = c.benchmark_group("verify");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for key in &keys {
        let token = token(key);
        rt.block_on(auth.verify(&token))
            .unwrap_or_else(|e| panic!("{}: {e}", key.kid));
        let name = format!("{:?}", key.alg);
        group.bench_function(&name, |b| {
            b.iter(|| {
                rt.block_on(auth.verify(std::hint::black_box(&token)))
                    .expect("valid")
            })
        });
    }
    // Rejected at the signature check, the last cryptographic step: a forged EdDSA token.
    let forged = bad_signature(&token(&keys[0]));
    rt.block_on(auth.verify(&forged))
        .expect_err("forged token must be rejected");
    group.bench_function("EdDSA_bad_signature", |b| {
        b.iter(|| {
            rt.block_on(auth.verify(std::hint::black_box(&forged)))
                .expect_err("forged")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
