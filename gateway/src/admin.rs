//! The admin HTTP listener (hyper). Today it serves sluice's OAuth2 issuer:
//! `POST /oauth2/token` (client-credentials grant, HTTP Basic or form credentials),
//! `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration`. With these,
//! Java's `OAuthBearerLoginCallbackHandler` and librdkafka's
//! `sasl.oauthbearer.method=oidc` get tokens from config alone. Clients are looked up
//! in the tenant store's current snapshot (`<tenant>.<name>`, `crate::clients`), so a
//! client or tenant deleted from the store stops getting tokens as soon as this
//! gateway has read the change.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use std::net::IpAddr;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::guard::{AuthGuard, Verdict};
use crate::issuer::{now_and_expiry, Claims, SigningKey};
use crate::store::TenantStore;

/// Largest request body the admin listener reads.
const MAX_BODY: usize = 64 * 1024;

/// sluice's own token issuer.
pub struct Issuer {
    /// The `iss` of minted tokens, and the base URL of the endpoints.
    pub url: String,
    pub audience: String,
    pub key: SigningKey,
    /// Where the clients live (`TenantDoc::clients`).
    pub tenants: TenantStore,
    pub token_ttl: Duration,
    /// Shared with the Kafka listeners: guessing secrets here counts like guessing tokens there.
    pub guard: Arc<AuthGuard>,
}

struct AdminState {
    /// For `/ready`: the pool, the tenant store and the drain.
    shared: Arc<crate::server::Shared>,
    issuer: Option<Arc<Issuer>>,
    /// The `/v1` API (`crate::api`); set when clients authenticate with tokens.
    api: Option<Arc<crate::api::Api>>,
    metrics: Option<&'static PrometheusHandle>,
}

pub async fn serve(
    listener: TcpListener,
    shared: Arc<crate::server::Shared>,
    issuer: Option<Arc<Issuer>>,
    api: Option<Arc<crate::api::Api>>,
    metrics: Option<&'static PrometheusHandle>,
    cancel: CancellationToken,
) {
    let state = Arc::new(AdminState { shared, issuer, api, metrics });
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, state, peer.ip()).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(%peer, error = %e, "admin connection ended");
            }
        });
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An RFC 6749 section 5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response<Full<Bytes>> {
    let mut resp = json(status, serde_json::json!({ "error": error, "error_description": description }));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"sluice\""));
    }
    resp
}

async fn route(req: Request<Incoming>, state: Arc<AdminState>, peer: IpAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        return match &state.api {
            Some(api) => api.handle(req, peer).await,
            None => json(StatusCode::NOT_FOUND, serde_json::json!({ "error": "the /v1 API needs listener.auth = \"sasl\"" })),
        };
    }
    if path == "/metrics" {
        return metrics(&req, state.metrics);
    }
    if path == "/live" {
        return json(StatusCode::OK, serde_json::json!({ "live": true }));
    }
    if path == "/ready" {
        return ready(&state.shared);
    }
    let Some(issuer) = state.issuer.clone() else {
        return json(StatusCode::NOT_FOUND, serde_json::json!({ "error": "not found" }));
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/.well-known/jwks.json") => json(StatusCode::OK, issuer.key.jwks()),
        (&Method::GET, "/.well-known/openid-configuration") => json(
            StatusCode::OK,
            serde_json::json!({
                "issuer": issuer.url,
                "token_endpoint": format!("{}/oauth2/token", issuer.url),
                "jwks_uri": format!("{}/.well-known/jwks.json", issuer.url),
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "response_types_supported": ["token"],
            }),
        ),
        (&Method::POST, "/oauth2/token") => token(req, issuer, peer).await,
        (_, "/oauth2/token" | "/.well-known/jwks.json" | "/.well-known/openid-configuration") => {
            json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({ "error": "method not allowed" }))
        }
        _ => json(StatusCode::NOT_FOUND, serde_json::json!({ "error": "not found" })),
    }
}

/// A tenant store that has not heard from the pool for this long is not caught up.
const STORE_STALE: Duration = Duration::from_secs(10);

/// `GET /ready`: 200 while the gateway should get new clients: not draining, the pool
/// accepting the gateway's credentials, at least one pool broker reachable, and the
/// tenant store following its topic; 503 with the
/// reason otherwise (load balancers and Kubernetes stop sending clients).
fn ready(shared: &crate::server::Shared) -> Response<Full<Bytes>> {
    let brokers = shared.pool.brokers();
    let down = shared.pool.subscribe_down().borrow().clone();
    let live = brokers.keys().filter(|id| !down.contains(id)).count();
    let store_age = shared.tenants.tail_age();
    let reason = if shared.draining.is_cancelled() {
        Some("draining".to_owned())
    } else if let Some(failure) = shared.pool.upstream().auth_failure() {
        // Until a connection authenticates again: the pool's brokers may still be listed.
        Some(format!("the pool refuses the gateway's credentials: {failure}"))
    } else if live == 0 {
        Some("no pool broker is reachable".to_owned())
    } else if store_age > STORE_STALE {
        Some(format!("the tenant store has not heard from the pool for {} s", store_age.as_secs()))
    } else {
        None
    };
    let body = serde_json::json!({
        "ready": reason.is_none(),
        "reason": reason,
        "live_brokers": live,
        "store_age_ms": store_age.as_millis() as u64,
    });
    json(if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

/// `GET /metrics`: the Prometheus text format.
fn metrics(req: &Request<Incoming>, handle: Option<&'static PrometheusHandle>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({ "error": "method not allowed" }));
    }
    match handle {
        Some(handle) => {
            let mut resp = Response::new(Full::new(Bytes::from(handle.render())));
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            resp
        }
        None => json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({ "error": "no metrics recorder" })),
    }
}

/// Client id and secret from HTTP Basic (RFC 6749 2.3.1: each form-urlencoded).
fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((unescape(id)?, unescape(secret)?))
}

async fn token(req: Request<Incoming>, issuer: Arc<Issuer>, peer: IpAddr) -> Response<Full<Bytes>> {
    let basic = basic_credentials(&req);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return oauth_error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", "request body too large"),
    };
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    match field("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is missing"),
    }
    let Some((client_id, secret)) = basic.or_else(|| Some((field("client_id")?, field("client_secret")?))) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client credentials are missing");
    };
    if issuer.guard.check(peer, Some(&client_id)) == Verdict::Refuse {
        metrics::counter!("sluice_auth_refused_total").increment(1);
        return oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", "too many failed attempts; retry in a minute");
    }
    // argon2 is deliberately slow: keep it off the async workers.
    let snapshot = issuer.tenants.snapshot();
    let id = client_id.clone();
    let checked = tokio::task::spawn_blocking(move || crate::clients::authenticate(&snapshot, &id, &secret)).await;
    let record = match checked {
        Ok(Some(r)) => r,
        Ok(None) => {
            crate::meters::auth_failure(crate::meters::known_tenant(&issuer.tenants, Some(&client_id)));
            tokio::time::sleep(issuer.guard.failed(peer, Some(&client_id))).await;
            warn!(client_id = %client_id.chars().take(64).collect::<String>(), "token request with bad client credentials");
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
        }
        Err(e) => {
            warn!(error = %e, "checking client credentials failed");
            return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "could not check the client credentials");
        }
    };
    let scope = field("scope").unwrap_or_default();
    // sluice's own scopes are granted only as the client's document allows (RFC 6749
    // 3.3); other scopes pass through for the client's own use.
    if let Some(refused) = scope
        .split_whitespace()
        .find(|s| s.starts_with("sluice:") && !record.scopes.iter().any(|allowed| allowed == s))
    {
        warn!(client_id = %record.client_id, scope = refused, "token request for a scope the client does not hold");
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &format!("this client may not request {refused}"));
    }
    let (now, exp) = now_and_expiry(issuer.token_ttl);
    let minted = issuer.key.mint(&Claims {
        iss: &issuer.url,
        aud: &issuer.audience,
        sub: &record.subject,
        iat: now,
        nbf: now,
        exp,
        tenant: Some(record.tenant.as_str()),
        policies: record.policies.as_deref(),
        // The Java client rejects a token whose scope claim is empty, so omit it then.
        scope: Some(scope.as_str()).filter(|s| !s.is_empty()),
    });
    match minted {
        Ok(token) => {
            info!(client_id = %record.client_id, tenant = %record.tenant, "token issued");
            json(
                StatusCode::OK,
                serde_json::json!({
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": issuer.token_ttl.as_secs(),
                    "scope": scope,
                }),
            )
        }
        Err(e) => {
            warn!(error = %e, "minting a token failed");
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "could not sign the token")
        }
    }
}
