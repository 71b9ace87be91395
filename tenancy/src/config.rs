//! Issuer configuration (`[[auth.issuers]]` in the gateway's TOML) and its validation into a
//! checked [`IssuerSettings`]. Defaults live here and only here.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};
use reqwest::Url;

use crate::TenancyError;

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The expected `iss` claim; tokens are routed to their issuer by it.
    pub issuer: String,
    /// Accepted `aud` values (at least one); the token's `aud` must contain one of them.
    /// TOML may also give a single string.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Where to fetch the issuer's JWKS: `https://…`, or `http://` to a loopback host only.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A local JWKS file instead of `jwks_url` (exactly one of the two).
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Accepted `alg` values. HMAC algorithms (`HS256`…) only when listed here, and then the
    /// JWKS must hold `oct` keys; `none` is never accepted.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// Longer tokens are rejected before any parsing.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// A token naming an unknown `kid` re-fetches the JWKS at most this often (seconds), so a
    /// flood of made-up `kid`s cannot hammer the issuer. 0 disables the limit (tests).
    #[serde(default = "default_refresh_min_interval_secs")]
    pub refresh_min_interval_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].map(String::from).to_vec()
}
fn default_leeway_secs() -> u64 {
    30
}
fn default_max_token_bytes() -> usize {
    8192
}
fn default_refresh_min_interval_secs() -> u64 {
    10
}

/// Largest accepted `leeway_secs`: more would keep expired tokens alive.
const MAX_LEEWAY_SECS: u64 = 300;
/// Largest accepted `max_token_bytes`.
const MAX_TOKEN_BYTES_CEILING: usize = 1 << 20;

impl Default for IssuerConfig {
    /// Empty `issuer`/`audience`/source (which [`Authenticator::new`](crate::Authenticator::new) rejects) and the
    /// documented defaults for everything else; handy with `..Default::default()`.
    fn default() -> Self {
        IssuerConfig {
            issuer: String::new(),
            audience: Vec::new(),
            jwks_url: None,
            jwks_file: None,
            algorithms: default_algorithms(),
            leeway_secs: default_leeway_secs(),
            max_token_bytes: default_max_token_bytes(),
            refresh_min_interval_secs: default_refresh_min_interval_secs(),
        }
    }
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Where an issuer's JWKS comes from.
#[derive(Debug, Clone)]
pub(crate) enum JwksSource {
    Url(Url),
    File(PathBuf),
}

/// A validated [`IssuerConfig`].
#[derive(Debug, Clone)]
pub(crate) struct IssuerSettings {
    pub issuer: String,
    pub audience: Vec<String>,
    pub source: JwksSource,
    /// Accepted algorithms, deduplicated, in configuration order.
    pub algorithms: Vec<Algorithm>,
    pub leeway_secs: u64,
    pub max_token_bytes: usize,
    pub refresh_min_interval: Duration,
}

impl IssuerSettings {
    /// Whether some accepted algorithm belongs to `family` (keys of other families are useless).
    pub fn accepts_family(&self, family: AlgorithmFamily) -> bool {
        self.algorithms.iter().any(|a| a.family() == family)
    }

    /// The accepted algorithms as `RS256, ES256`.
    pub fn algorithm_list(&self) -> String {
        self.algorithms
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl IssuerConfig {
    /// Checks the entry; every error names the issuer and says what to change.
    pub(crate) fn validate(&self) -> Result<IssuerSettings, TenancyError> {
        let bad = |reason: String| TenancyError::InvalidIssuerConfig {
            issuer: self.issuer.clone(),
            reason,
        };
        if self.issuer.is_empty() {
            return Err(bad("`issuer` must not be empty".into()));
        }
        if self.audience.is_empty() || self.audience.iter().any(String::is_empty) {
            return Err(bad(
                "`audience` must list at least one non-empty value".into()
            ));
        }
        let source = match (&self.jwks_url, &self.jwks_file) {
            (Some(url), None) => JwksSource::Url(parse_jwks_url(url).map_err(bad)?),
            (None, Some(path)) => JwksSource::File(path.clone()),
            _ => return Err(bad("set exactly one of `jwks_url` and `jwks_file`".into())),
        };
        if self.algorithms.is_empty() {
            return Err(bad("`algorithms` must not be empty".into()));
        }
        let mut algorithms = Vec::new();
        for name in &self.algorithms {
            if name.eq_ignore_ascii_case("none") {
                return Err(bad(
                    "algorithm `none` (unsigned tokens) can never be accepted".into(),
                ));
            }
            let alg: Algorithm = name.parse().map_err(|_| {
                bad(format!("unknown algorithm {name:?} (use e.g. RS256, PS256, ES256, ES384, EdDSA, HS256)"))
            })?;
            if !algorithms.contains(&alg) {
                algorithms.push(alg);
            }
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(bad(format!(
                "`leeway_secs` must be at most {MAX_LEEWAY_SECS}"
            )));
        }
        if self.max_token_bytes == 0 || self.max_token_bytes > MAX_TOKEN_BYTES_CEILING {
            return Err(bad(format!(
                "`max_token_bytes` must be between 1 and {MAX_TOKEN_BYTES_CEILING}"
            )));
        }
        Ok(IssuerSettings {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            source,
            algorithms,
            leeway_secs: self.leeway_secs,
            max_token_bytes: self.max_token_bytes,
            refresh_min_interval: Duration::from_secs(self.refresh_min_interval_secs),
        })
    }
}

/// Accepts `https://…` anywhere and `http://…` to loopback only: keys fetched over plain HTTP
/// could be swapped by anyone on the path.
fn parse_jwks_url(url: &str) -> Result<Url, String> {
    let parsed =
        Url::parse(url).map_err(|e| format!("`jwks_url` {url:?} is not a valid URL: {e}"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        "http" => Err(format!(
            "`jwks_url` {url:?} must use https (plain http is allowed to loopback only)"
        )),
        other => Err(format!(
            "`jwks_url` {url:?} has unsupported scheme {other:?}; use https"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> IssuerConfig {
        IssuerConfig {
            issuer: "https://idp.example".into(),
            audience: vec!["sluice".into()],
            jwks_file: Some("/etc/sluice/jwks.json".into()),
            ..Default::default()
        }
    }

    #[test]
    fn toml_defaults_and_single_audience() {
        let cfg: IssuerConfig = toml::from_str(
            "issuer = \"https://idp.example\"\naudience = \"sluice\"\njwks_url = \"https://idp.example/jwks\"\n",
        )
        .expect("valid config");
        assert_eq!(cfg.audience, vec!["sluice"]);
        assert_eq!(cfg.algorithms, vec!["RS256", "ES256", "EdDSA"]);
        assert_eq!(
            (
                cfg.leeway_secs,
                cfg.max_token_bytes,
                cfg.refresh_min_interval_secs
            ),
            (30, 8192, 10)
        );
        let s = cfg.validate().expect("valid");
        assert_eq!(
            s.algorithms,
            vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
        );
        assert!(!s.accepts_family(AlgorithmFamily::Hmac));
    }

    #[test]
    fn toml_unknown_field_is_an_error() {
        let err = toml::from_str::<IssuerConfig>(
            "issuer = \"i\"\naudience = [\"a\"]\njwks_file = \"k.json\"\nleway_secs = 5\n",
        )
        .expect_err("typo must not pass");
        assert!(err.to_string().contains("leway_secs"), "{err}");
    }

    #[test]
    fn rejects_inconsistent_entries() {
        let cases: Vec<(IssuerConfig, &str)> = vec![
            (
                IssuerConfig {
                    issuer: String::new(),
                    ..base()
                },
                "issuer",
            ),
            (
                IssuerConfig {
                    audience: vec![],
                    ..base()
                },
                "audience",
            ),
            (
                IssuerConfig {
                    jwks_url: Some("https://x/jwks".into()),
                    ..base()
                },
                "exactly one",
            ),
            (
                IssuerConfig {
                    jwks_file: None,
                    ..base()
                },
                "exactly one",
            ),
            (
                IssuerConfig {
                    algorithms: vec![],
                    ..base()
                },
                "algorithms",
            ),
            (
                IssuerConfig {
                    algorithms: vec!["none".into()],
                    ..base()
                },
                "none",
            ),
            (
                IssuerConfig {
                    algorithms: vec!["RS257".into()],
                    ..base()
                },
                "unknown algorithm",
            ),
            (
                IssuerConfig {
                    leeway_secs: 301,
                    ..base()
                },
                "leeway_secs",
            ),
            (
                IssuerConfig {
                    max_token_bytes: 0,
                    ..base()
                },
                "max_token_bytes",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().expect_err(needle);
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
            assert!(
                err.to_string().contains("idp.example") || cfg.issuer.is_empty(),
                "{err} names the issuer"
            );
        }
    }

    #[test]
    fn jwks_url_needs_https_except_loopback() {
        for ok in [
            "https://idp.example/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://[::1]/k",
            "http://localhost/k",
        ] {
            assert!(parse_jwks_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example/jwks",
            "ftp://127.0.0.1/k",
            "file:///etc/jwks.json",
            "not a url",
        ] {
            assert!(parse_jwks_url(bad).is_err(), "{bad}");
        }
    }
}
