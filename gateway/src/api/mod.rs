//! The admin HTTP API under `/v1` (SPEC 9): operators manage tenants and their limits,
//! tenant admins manage their own policies, principals, OAuth clients and sub-quotas and
//! read their topics. The OpenAPI 3.1 document at `/v1/openapi.json` (`openapi.rs`)
//! describes exactly what this module serves.
//!
//! - **Callers** present `Authorization: Bearer <JWT>`, verified against the gateway's
//!   issuers. Scope `sluice:operator` from an issuer listed in `admin.operator_issuers`
//!   makes an operator; scope `sluice:admin` with a `sluice:tenant` claim makes an admin of
//!   that tenant only. Anything else is 401 (no or bad token) or 403 (wrong scope or
//!   tenant), and another tenant's resources answer 404 to a tenant admin, so they reveal
//!   nothing.
//! - **Every tenant resource lives in the tenant's document** in the tenant store; its
//!   version is the `ETag` of every resource of the tenant. A write with `If-Match` is
//!   applied only to that version (412 otherwise); without it, to the current one. Writes
//!   return once the store has read them back.
//! - **Errors** are `application/problem+json` (RFC 9457) with `status`, `title`, `detail`
//!   and, for bad bodies, the `field` at fault. Bodies are JSON with unknown fields refused,
//!   at most [`MAX_BODY`] bytes.
//! - **Lists** are paged: `?limit=` (1..=1000, default 100) and `?page_token=` from the
//!   previous page's `next_page_token`; items are sorted by name.

mod audit;
mod openapi;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_MATCH};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sluice_tenancy::client_quota::{self, ClientQuota, QuotaKey};
use sluice_tenancy::policy::PolicyDocument;
use sluice_tenancy::store::{PrincipalEntry, StoredTenant, TenantDoc, TenantLimits, ADMIN_SCOPE, OPERATOR_SCOPE};
use sluice_tenancy::{AdminPrincipal, TenantId};
use tracing::{info, warn};

use crate::kclient::PoolAccess;
use crate::store::{StoreError, TenantStore};

/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// What the API needs from the gateway.
pub struct Api {
    pub store: TenantStore,
    /// The gateway's SASL settings (their verifier checks API tokens too); swapped on reload.
    pub auth: std::sync::Arc<arc_swap::ArcSwap<crate::sasl::SaslSettings<crate::sasl::JwtVerifier>>>,
    /// Issuers whose `sluice:operator` tokens are honoured.
    pub operator_issuers: Vec<String>,
    /// The gateway's quota defaults (a tenant's limits override them).
    pub quotas: std::sync::Arc<sluice_quota::Quotas>,
    /// The usage ledger as this instance has read it.
    pub usage: std::sync::Arc<crate::usage::Ledger>,
    /// Placement settings (`[placement]`) for the operator's placement endpoints.
    pub placement: crate::config::PlacementSettings,
    pub pool: PoolAccess,
    /// Where mutations and refused tokens are recorded, and audit pages read.
    pub audit: std::sync::Arc<crate::audit::Audit>,
}

type Resp = Response<Full<Bytes>>;

/// An RFC 9457 problem.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    detail: String,
    field: Option<String>,
}

impl Problem {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), field: None }
    }

    fn field(status: StatusCode, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { status, detail: detail.into(), field: Some(field.into()) }
    }

    fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} does not exist"))
    }

    fn into_response(self) -> Resp {
        let mut body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(f) = self.field {
            body["field"] = Value::String(f);
        }
        let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer realm=\"sluice\""));
        }
        resp
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => Problem::new(StatusCode::PRECONDITION_FAILED, e.to_string()),
            StoreError::Invalid { source, .. } => Problem::new(StatusCode::BAD_REQUEST, source.to_string()),
            other => {
                warn!(error = %other, "admin API: tenant store write failed");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, format!("the tenant store did not take the change: {other}"))
            }
        }
    }
}

fn json_response(status: StatusCode, body: &impl Serialize, etag: Option<u64>) -> Resp {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "null".into());
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = etag.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

fn no_content(etag: Option<u64>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    if let Some(v) = etag.and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok()) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// Who is calling.
enum Caller {
    Operator { subject: String },
    TenantAdmin { subject: String, tenant: TenantId },
}

impl Caller {
    fn subject(&self) -> &str {
        match self {
            Caller::Operator { subject } | Caller::TenantAdmin { subject, .. } => subject,
        }
    }

    fn require_operator(&self) -> Result<(), Problem> {
        match self {
            Caller::Operator { .. } => Ok(()),
            Caller::TenantAdmin { .. } => {
                Err(Problem::new(StatusCode::FORBIDDEN, "this needs an operator token (scope sluice:operator)"))
            }
        }
    }

    /// Whether the caller may see `tenant` at all; a tenant admin of another tenant gets
    /// 404, exactly as for a tenant that does not exist.
    fn may_see(&self, tenant: &TenantId) -> Result<(), Problem> {
        match self {
            Caller::Operator { .. } => Ok(()),
            Caller::TenantAdmin { tenant: own, .. } if own == tenant => Ok(()),
            Caller::TenantAdmin { .. } => Err(Problem::not_found(&format!("tenant {tenant}"))),
        }
    }
}

impl Api {
    async fn caller(&self, req: &Request<Incoming>) -> Result<Caller, Problem> {
        let unauthorized = |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, detail);
        let header = req.headers().get(AUTHORIZATION).ok_or_else(|| unauthorized("a bearer token is required"))?;
        let value = header.to_str().map_err(|_| unauthorized("the Authorization header is not text"))?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| unauthorized("expected Authorization: Bearer <token>"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthorized("expected Authorization: Bearer <token>"));
        }
        let settings = self.auth.load_full();
        let p: AdminPrincipal = settings.verifier.0.verify_admin(token.trim()).await.map_err(|e| {
            metrics::counter!("sluice_auth_failures_total").increment(1);
            unauthorized(&format!("token refused: {e}"))
        })?;
        if p.scopes.iter().any(|s| s == OPERATOR_SCOPE) && self.operator_issuers.iter().any(|i| i == &p.issuer) {
            return Ok(Caller::Operator { subject: p.subject });
        }
        match (&p.tenant, p.scopes.iter().any(|s| s == ADMIN_SCOPE)) {
            (Some(tenant), true) => Ok(Caller::TenantAdmin { subject: p.subject, tenant: tenant.clone() }),
            _ => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "the token has neither scope sluice:operator (from an operator issuer) nor scope sluice:admin with a sluice:tenant claim",
            )),
        }
    }

    /// Serves one `/v1` request.
    pub async fn handle(&self, req: Request<Incoming>, peer: std::net::IpAddr) -> Resp {
        if req.method() == Method::GET && req.uri().path() == "/v1/openapi.json" {
            return json_response(StatusCode::OK, &openapi::document(), None);
        }
        let caller = match self.caller(&req).await {
            Ok(c) => c,
            Err(p) => {
                self.audit_refused(&req, &p, peer);
                return p.into_response();
            }
        };
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let outcome = self.route(req, &caller).await;
        let status = match &outcome {
            Ok(r) => r.status(),
            Err(p) => p.status,
        };
        if method != Method::GET {
            info!(subject = caller.subject(), %method, %path, status = status.as_u16(), "admin API call");
        }
        let detail = outcome.as_ref().err().map(|p| p.detail.clone());
        let resp = outcome.unwrap_or_else(Problem::into_response);
        if method == Method::GET || method == Method::HEAD {
            return resp;
        }
        self.audit_call(&caller, &method, &path, resp, detail, peer).await
    }

    async fn route(&self, req: Request<Incoming>, caller: &Caller) -> Result<Resp, Problem> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let segments: Vec<&str> = path.split('/').skip(2).collect(); // "", "v1"
        let method = req.method().clone();
        let query = Query::parse(req.uri().query())?;
        match (method, segments.as_slice()) {
            (Method::GET, ["tenants"]) => {
                caller.require_operator()?;
                self.list_tenants(&query)
            }
            (Method::POST, ["tenants"]) => {
                caller.require_operator()?;
                let body: NewTenant = read_body(req).await?;
                self.create_tenant(body).await
            }
            (method, ["tenants", tenant, rest @ ..]) => {
                let tenant: TenantId =
                    tenant.parse().map_err(|_| Problem::not_found(&format!("tenant {tenant:?}")))?;
                caller.may_see(&tenant)?;
                let if_match = if_match(&req)?;
                self.tenant_route(method, &tenant, rest, req, caller, if_match, &query).await
            }
            (method, ["placement", rest @ ..]) => {
                caller.require_operator()?;
                let body: PlacementRequest = if method == Method::POST { read_body(req).await? } else { PlacementRequest::default() };
                self.placement_route(method, rest, body).await
            }
            (_, ["tenants"]) => Err(method_not_allowed()),
            _ => Err(Problem::new(StatusCode::NOT_FOUND, format!("no such resource: {path}"))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn tenant_route(
        &self,
        method: Method,
        tenant: &TenantId,
        rest: &[&str],
        req: Request<Incoming>,
        caller: &Caller,
        if_match: Option<u64>,
        query: &Query,
    ) -> Result<Resp, Problem> {
        let stored = self.store.get(tenant).ok_or_else(|| Problem::not_found(&format!("tenant {tenant}")))?;
        let version = Some(stored.version);
        match (method, rest) {
            (Method::GET, []) => Ok(json_response(StatusCode::OK, &tenant_view(&stored), version)),
            (Method::DELETE, []) => {
                caller.require_operator()?;
                check_if_match(if_match, &stored)?;
                self.store.delete(tenant, Some(stored.version)).await?;
                info!(tenant = %tenant, by = caller.subject(), "tenant deleted through the API");
                Ok(no_content(None))
            }
            (Method::GET, ["limits"]) => Ok(json_response(StatusCode::OK, &limits_view(self, &stored.doc), version)),
            (Method::PUT, ["limits"]) => {
                caller.require_operator()?;
                let limits: TenantLimits = read_body(req).await?;
                let mut probe = sluice_quota::QuotaConfig::default();
                probe = probe.with(&crate::tenant::quota_overrides(&limits));
                probe.validate().map_err(|e| Problem::field(StatusCode::BAD_REQUEST, "limits", e.to_string()))?;
                let v = self.update(&stored, if_match, |doc| {
                    doc.limits = limits.clone();
                    Ok(())
                })
                .await?;
                let stored = self.store.get(tenant).ok_or_else(|| Problem::not_found(&format!("tenant {tenant}")))?;
                Ok(json_response(StatusCode::OK, &limits_view(self, &stored.doc), Some(v)))
            }
            (Method::GET, ["policies"]) => {
                let items: Vec<Value> = stored
                    .doc
                    .policies
                    .iter()
                    .map(|(name, doc)| json!({"name": name, "document": doc}))
                    .collect();
                Ok(json_response(StatusCode::OK, &page(items, query, "name")?, version))
            }
            (Method::GET, ["policies", name]) => {
                let doc = stored.doc.policies.get(*name).ok_or_else(|| Problem::not_found(&format!("policy {name}")))?;
                Ok(json_response(StatusCode::OK, &json!({"name": name, "document": doc}), version))
            }
            (Method::PUT, ["policies", name]) => {
                let doc: PolicyDocument = read_body(req).await?;
                let name = name.to_string();
                let v = self.update(&stored, if_match, |d| {
                    d.policies.insert(name.clone(), doc.clone());
                    Ok(())
                })
                .await?;
                Ok(json_response(StatusCode::OK, &json!({"name": name, "document": doc}), Some(v)))
            }
            (Method::DELETE, ["policies", name]) => {
                let name = name.to_string();
                let v = self
                    .update(&stored, if_match, |d| {
                        d.policies.remove(&name).map(drop).ok_or_else(|| Problem::not_found(&format!("policy {name}")))
                    })
                    .await?;
                Ok(no_content(Some(v)))
            }
            (Method::GET, ["principals"]) => {
                let items: Vec<Value> = stored
                    .doc
                    .principals
                    .iter()
                    .map(|(name, e)| json!({"name": name, "policies": e.policies}))
                    .collect();
                Ok(json_response(StatusCode::OK, &page(items, query, "name")?, version))
            }
            (Method::GET, ["principals", name]) => {
                let e = stored.doc.principals.get(*name).ok_or_else(|| Problem::not_found(&format!("principal {name}")))?;
                Ok(json_response(StatusCode::OK, &json!({"name": name, "policies": e.policies}), version))
            }
            (Method::PUT, ["principals", name]) => {
                let entry: PrincipalEntry = read_body(req).await?;
                let name = name.to_string();
                let v = self.update(&stored, if_match, |d| {
                    d.principals.insert(name.clone(), entry.clone());
                    Ok(())
                })
                .await?;
                Ok(json_response(StatusCode::OK, &json!({"name": name, "policies": entry.policies}), Some(v)))
            }
            (Method::DELETE, ["principals", name]) => {
                let name = name.to_string();
                let v = self
                    .update(&stored, if_match, |d| {
                        d.principals.remove(&name).map(drop).ok_or_else(|| Problem::not_found(&format!("principal {name}")))
                    })
                    .await?;
                Ok(no_content(Some(v)))
            }
            (Method::GET, ["clients"]) => {
                let items: Vec<Value> = stored.doc.clients.iter().map(|(name, c)| client_view(tenant, name, c)).collect();
                Ok(json_response(StatusCode::OK, &page(items, query, "name")?, version))
            }
            (Method::POST, ["clients"]) => {
                let body: NewClient = read_body(req).await?;
                check_if_match(if_match, &stored)?;
                let created = crate::clients::create(&self.store, tenant, &body.name, body.subject, body.policies, body.scopes)
                    .await
                    .map_err(client_problem)?;
                let stored = self.store.get(tenant).ok_or_else(|| Problem::not_found(&format!("tenant {tenant}")))?;
                Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"client_id": created.client_id, "client_secret": created.secret}),
                    Some(stored.version),
                ))
            }
            (Method::GET, ["clients", name]) => {
                let c = stored.doc.clients.get(*name).ok_or_else(|| Problem::not_found(&format!("client {name}")))?;
                Ok(json_response(StatusCode::OK, &client_view(tenant, name, c), version))
            }
            (Method::DELETE, ["clients", name]) => {
                check_if_match(if_match, &stored)?;
                let id = sluice_tenancy::store::client_id(tenant, name);
                crate::clients::delete(&self.store, &id).await.map_err(client_problem)?;
                Ok(no_content(None))
            }
            (Method::GET, ["quotas"]) => {
                Ok(json_response(StatusCode::OK, &json!({"client_quotas": stored.doc.client_quotas}), version))
            }
            (Method::PUT, ["quotas"]) => {
                let body: SubQuotas = read_body(req).await?;
                let limits = self.quotas.defaults().with(&crate::tenant::quota_overrides(&stored.doc.limits));
                check_sub_quotas(&body.client_quotas, &limits)?;
                let v = self.update(&stored, if_match, |d| {
                    d.client_quotas = body.client_quotas.clone();
                    Ok(())
                })
                .await?;
                Ok(json_response(StatusCode::OK, &json!({"client_quotas": body.client_quotas}), Some(v)))
            }
            (Method::GET, ["topics"]) => self.topics(tenant, query).await,
            (Method::GET, ["audit"]) => self.audit_list(tenant, query, req.uri().query()),
            (_, ["audit"]) => Err(method_not_allowed()),
            (Method::GET, ["usage"]) => self.usage(tenant, req.uri().query()),
            (Method::GET, ["groups"]) => {
                // Lag as of the pool poller's latest round (`[metrics] pool_poll_ms`).
                let round = crate::pool_metrics::latest();
                let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                if let Some(r) = &round {
                    for ((t, group, topic), (sum, max)) in &r.lag {
                        if t == tenant.as_str() {
                            groups.entry(group.clone()).or_default().push(json!({"topic": topic, "lag": sum, "max_partition_lag": max}));
                        }
                    }
                }
                let items: Vec<Value> = groups
                    .into_iter()
                    .map(|(g, topics)| {
                        let total: i64 = topics.iter().filter_map(|t| t["lag"].as_i64()).sum();
                        json!({"name": g, "lag": total, "topics": topics})
                    })
                    .collect();
                Ok(json_response(StatusCode::OK, &page(items, query, "name")?, None))
            }
            (_, [] | ["limits"] | ["policies"] | ["policies", _] | ["principals"] | ["principals", _] | ["clients"])
            | (_, ["clients", _] | ["quotas"] | ["topics"] | ["usage"] | ["groups"]) => Err(method_not_allowed()),
            _ => Err(Problem::new(StatusCode::NOT_FOUND, format!("no such resource under tenant {tenant}"))),
        }
    }

    fn placement(&self, who: &str) -> crate::placement::Placement {
        crate::placement::Placement::new(
            self.pool.bootstrap.clone(),
            self.pool.connect_timeout,
            self.pool.upstream.clone(),
            self.placement.clone(),
            format!("api-{who}-{}", std::process::id()),
        )
    }

    /// Operator placement (SPEC 8): status, dry-run plan, apply in the background under the
    /// rebalancer's lease, cancel. Adding a broker needs only an apply (it fills); draining
    /// one is an apply with `drain`.
    async fn placement_route(&self, method: Method, rest: &[&str], body: PlacementRequest) -> Result<Resp, Problem> {
        let failed = |e: String| Problem::new(StatusCode::SERVICE_UNAVAILABLE, format!("placement: {e}"));
        let mut drain = self.placement.drain.clone();
        drain.extend(body.drain.iter().copied());
        match (method, rest) {
            (Method::GET, []) => {
                let p = self.placement("status");
                let status = crate::placement::cli::status(&p, &drain).await.map_err(|e| failed(e.to_string()))?;
                Ok(json_response(StatusCode::OK, &status, None))
            }
            (Method::POST, ["plan"]) => {
                let p = self.placement("plan");
                let snap = p.snapshot(&drain, None).await.map_err(|e| failed(e.to_string()))?;
                let plan = p.plan(&snap).map_err(|e| failed(e.to_string()))?;
                Ok(json_response(StatusCode::OK, &crate::placement::cli::plan_json(&snap, &plan), None))
            }
            (Method::POST, ["apply"]) => {
                let p = self.placement("apply");
                let ttl = Duration::from_secs(120);
                let held = crate::placement::cli::take_lease(&p, ttl).await.map_err(|e| failed(e.to_string()))?;
                if !held {
                    return Err(Problem::new(StatusCode::CONFLICT, "another applier (a gateway's rebalancer or the CLI) holds the placement lease"));
                }
                let planned = match p.snapshot(&drain, None).await.map_err(|e| e.to_string()).and_then(|snap| {
                    let plan = p.plan(&snap).map_err(|e| e.to_string())?;
                    Ok(crate::placement::cli::plan_json(&snap, &plan))
                }) {
                    Ok(planned) => planned,
                    Err(e) => {
                        let _ = p.state.release_lease(&p.me).await;
                        return Err(failed(e));
                    }
                };
                tokio::spawn(async move {
                    let outcome = crate::placement::cli::apply(&p, &drain, ttl, |v| info!(report = %v, "placement apply (API)")).await;
                    if let Err(e) = outcome {
                        warn!(error = %e, "placement apply (API) failed");
                    }
                    let _ = p.state.release_lease(&p.me).await;
                });
                Ok(json_response(StatusCode::ACCEPTED, &json!({"started": true, "plan": planned}), None))
            }
            (Method::POST, ["cancel"]) => {
                let p = self.placement("cancel");
                let (cancelled, recovery) = p.cancel().await.map_err(|e| failed(e.to_string()))?;
                Ok(json_response(StatusCode::OK, &json!({"cancelled_reassignments": cancelled, "recovery": recovery}), None))
            }
            (_, [] | ["plan"] | ["apply"] | ["cancel"]) => Err(method_not_allowed()),
            _ => Err(Problem::new(StatusCode::NOT_FOUND, "no such placement resource")),
        }
    }

    fn list_tenants(&self, query: &Query) -> Result<Resp, Problem> {
        let snapshot = self.store.snapshot();
        let items: Vec<Value> = snapshot.iter().map(|(_, t)| tenant_view(t)).collect();
        Ok(json_response(StatusCode::OK, &page(items, query, "id")?, None))
    }

    async fn create_tenant(&self, body: NewTenant) -> Result<Resp, Problem> {
        let id: TenantId =
            body.id.parse().map_err(|e: sluice_tenancy::TenancyError| Problem::field(StatusCode::BAD_REQUEST, "id", e.to_string()))?;
        if self.store.get(&id).is_some() {
            return Err(Problem::field(StatusCode::CONFLICT, "id", format!("tenant {id} already exists")));
        }
        let mut doc = TenantDoc::new(id.clone());
        doc.limits = body.limits.unwrap_or_default();
        doc.policies = body.policies.unwrap_or_default();
        doc.principals = body.principals.unwrap_or_default();
        doc.validate().map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let version = self.store.put(doc, Some(0)).await.map_err(|e| match e {
            StoreError::Conflict { .. } => Problem::field(StatusCode::CONFLICT, "id", format!("tenant {id} already exists")),
            other => other.into(),
        })?;
        let stored = self.store.get(&id).ok_or_else(|| Problem::not_found(&format!("tenant {id}")))?;
        Ok(json_response(StatusCode::CREATED, &tenant_view(&stored), Some(version)))
    }

    /// Applies `change` to the tenant's document at the version `If-Match` names (or the
    /// current one) and stores it; returns the new version.
    async fn update(
        &self,
        stored: &StoredTenant,
        if_match: Option<u64>,
        change: impl FnOnce(&mut TenantDoc) -> Result<(), Problem>,
    ) -> Result<u64, Problem> {
        check_if_match(if_match, stored)?;
        let mut doc = stored.doc.clone();
        change(&mut doc)?;
        doc.validate().map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        Ok(self.store.put(doc, Some(stored.version)).await?)
    }

    /// `GET /v1/tenants/{t}/usage?from=&to=&granularity=hour|day`: billing units per
    /// bucket (default: the last 24 hours, per hour). Times are RFC 3339.
    fn usage(&self, tenant: &TenantId, query: Option<&str>) -> Result<Resp, Problem> {
        use crate::usage::{DAY, HOUR};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (mut from, mut to, mut bucket) = (None, None, HOUR);
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let time = |field: &str| {
                crate::usage::parse_time(&v).map_err(|e| Problem::field(StatusCode::BAD_REQUEST, field, format!("{field}: {e}")))
            };
            match k.as_ref() {
                "from" => from = Some(time("from")?),
                "to" => to = Some(time("to")?),
                "granularity" => {
                    bucket = match v.as_ref() {
                        "hour" => HOUR,
                        "day" => DAY,
                        other => {
                            return Err(Problem::field(
                                StatusCode::BAD_REQUEST,
                                "granularity",
                                format!("granularity {other:?}: expected hour or day"),
                            ))
                        }
                    }
                }
                _ => {}
            }
        }
        let to = to.unwrap_or(now);
        let from = from.unwrap_or(to.saturating_sub(24 * HOUR));
        if from >= to {
            return Err(Problem::field(StatusCode::BAD_REQUEST, "from", "from must be before to"));
        }
        if (to - from) / bucket > 24 * 400 {
            return Err(Problem::field(StatusCode::BAD_REQUEST, "to", "at most 9600 buckets per request"));
        }
        let report = crate::usage::report_json(&self.usage, tenant.as_str(), from, to, bucket);
        Ok(json_response(StatusCode::OK, &report, None))
    }

    async fn topics(&self, tenant: &TenantId, query: &Query) -> Result<Resp, Problem> {
        let unavailable = |e: crate::kclient::KafkaError| {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, format!("the pool did not answer: {e}"))
        };
        let mut conn = self.pool.connect_any().await.map_err(unavailable)?;
        let all = kafka_protocol::messages::MetadataRequest::default().with_topics(None);
        let md: kafka_protocol::messages::MetadataResponse = conn
            .call(kafka_protocol::messages::ApiKey::Metadata, crate::kclient::METADATA_VERSION, &all, Duration::ZERO)
            .await
            .map_err(unavailable)?;
        let prefix = format!("{tenant}.");
        let rates = crate::load::registry().rates();
        let mut items = Vec::new();
        for t in &md.topics {
            let Some(pool_name) = t.name.as_ref().map(|n| n.0.as_str()) else { continue };
            let Some(name) = pool_name.strip_prefix(&prefix) else { continue };
            if t.error_code != 0 || name.is_empty() {
                continue;
            }
            let (mut bytes_in, mut bytes_out) = (0.0, 0.0);
            let partitions: Vec<Value> = t
                .partitions
                .iter()
                .map(|p| {
                    let r = rates.get(&(pool_name.to_owned(), p.partition_index)).copied().unwrap_or_default();
                    bytes_in += r.bytes_in_per_sec;
                    bytes_out += r.bytes_out_per_sec;
                    json!({
                        "partition": p.partition_index,
                        "leader": p.leader_id.0,
                        "replicas": p.replica_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                        "in_sync_replicas": p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                        "bytes_in_per_sec": r.bytes_in_per_sec,
                        "bytes_out_per_sec": r.bytes_out_per_sec,
                    })
                })
                .collect();
            items.push(json!({
                "name": name,
                "partitions": partitions,
                "bytes_in_per_sec": bytes_in,
                "bytes_out_per_sec": bytes_out,
            }));
        }
        Ok(json_response(StatusCode::OK, &page(items, query, "name")?, None))
    }
}

fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this resource")
}

fn client_problem(e: crate::clients::ClientError) -> Problem {
    use crate::clients::ClientError;
    match e {
        ClientError::BadName(_) => Problem::field(StatusCode::BAD_REQUEST, "name", e.to_string()),
        ClientError::Exists(_) => Problem::field(StatusCode::CONFLICT, "name", e.to_string()),
        ClientError::NoClient(_) | ClientError::BadId(_) | ClientError::NoTenant(_) => {
            Problem::new(StatusCode::NOT_FOUND, e.to_string())
        }
        ClientError::Hash(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        ClientError::Store(s) => s.into(),
    }
}

fn check_if_match(if_match: Option<u64>, stored: &StoredTenant) -> Result<(), Problem> {
    match if_match {
        Some(v) if v != stored.version => Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            format!("If-Match names version {v}; the tenant is at version {}", stored.version),
        )),
        _ => Ok(()),
    }
}

/// `If-Match: "<version>"` (or `*`, which any existing tenant matches).
fn if_match(req: &Request<Incoming>) -> Result<Option<u64>, Problem> {
    let Some(value) = req.headers().get(IF_MATCH) else { return Ok(None) };
    let text = value.to_str().map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "If-Match is not text"))?.trim();
    if text == "*" {
        return Ok(None);
    }
    let inner = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    inner
        .parse::<u64>()
        .map(Some)
        .map_err(|_| Problem::new(StatusCode::PRECONDITION_FAILED, format!("If-Match {text} is not an ETag of this API")))
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes into `T`, naming the failing field.
async fn read_body<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Problem> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !is_json {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "bodies are application/json"));
    }
    let bytes = Limited::new(req.into_body(), MAX_BODY).collect().await.map_err(|_| {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY} bytes (or was cut off)"))
    })?;
    let bytes = bytes.to_bytes();
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        Problem::field(StatusCode::BAD_REQUEST, field, e.inner().to_string())
    })
}

/// `limit` and `page_token` of a list request.
struct Query {
    limit: usize,
    page_token: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Result<Self, Problem> {
        let mut q = Query { limit: DEFAULT_PAGE, page_token: None };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "limit" => {
                    q.limit = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| Problem::field(StatusCode::BAD_REQUEST, "limit", format!("limit must be 1 to {MAX_PAGE}")))?;
                }
                "page_token" => q.page_token = Some(v.into_owned()),
                _ => {}
            }
        }
        Ok(q)
    }
}

/// One page of `items`, sorted by their `key` field.
fn page(mut items: Vec<Value>, query: &Query, key: &str) -> Result<Value, Problem> {
    let key_of = |v: &Value| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    items.sort_by_key(key_of);
    let start = match &query.page_token {
        Some(token) => items.partition_point(|v| key_of(v).as_str() <= token.as_str()),
        None => 0,
    };
    let rest = items.split_off(start.min(items.len()));
    let more = rest.len() > query.limit;
    let page: Vec<Value> = rest.into_iter().take(query.limit).collect();
    let next = if more { page.last().map(key_of) } else { None };
    Ok(json!({"items": page, "next_page_token": next}))
}

fn tenant_view(t: &StoredTenant) -> Value {
    json!({
        "id": t.doc.id.as_str(),
        "version": t.version,
        "limits": t.doc.limits,
        "policies": t.doc.policies.keys().collect::<Vec<_>>(),
        "principals": t.doc.principals.keys().collect::<Vec<_>>(),
        "clients": t.doc.clients.keys().collect::<Vec<_>>(),
    })
}

/// The tenant's overrides and the limits in force (the gateway's defaults where unset).
fn limits_view(api: &Api, doc: &TenantDoc) -> Value {
    let e = api.quotas.defaults().with(&crate::tenant::quota_overrides(&doc.limits));
    json!({
        "overrides": doc.limits,
        "effective": {
            "produce_bytes_per_sec": e.tenant_write,
            "consume_bytes_per_sec": e.tenant_read,
            "partition_produce_bytes_per_sec": e.partition_write,
            "partition_consume_bytes_per_sec": e.partition_read,
            "max_connections": e.max_connections,
            "max_connections_per_sec": e.connection_rate,
            "max_message_bytes": e.max_message_bytes,
            "max_request_bytes": e.max_request_bytes,
            "max_partitions": e.max_partitions,
            "max_compacted_partitions": e.max_compacted_partitions,
            "partition_mutations_per_5min": e.partition_mutations_per_5min,
            "max_consumer_groups": e.max_groups,
            "max_request_rate": e.request_rate,
        }
    })
}

fn client_view(tenant: &TenantId, name: &str, c: &sluice_tenancy::store::OAuthClient) -> Value {
    json!({
        "name": name,
        "client_id": sluice_tenancy::store::client_id(tenant, name),
        "subject": c.subject,
        "policies": c.policies,
        "scopes": c.scopes,
        "created_at": c.created_at,
    })
}

fn check_sub_quotas(entries: &[ClientQuota], limits: &sluice_quota::QuotaConfig) -> Result<(), Problem> {
    client_quota::validate_all(entries).map_err(|e| Problem::field(StatusCode::BAD_REQUEST, "client_quotas", e.to_string()))?;
    for (i, e) in entries.iter().enumerate() {
        for (key, &value) in &e.quotas {
            let Some(k) = QuotaKey::parse(key) else { continue };
            crate::tenant::client_quotas::check_value(k, value, limits).map_err(|(_, message)| {
                Problem::field(StatusCode::BAD_REQUEST, format!("client_quotas[{i}].quotas.{key}"), message)
            })?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    #[serde(default)]
    limits: Option<TenantLimits>,
    #[serde(default)]
    policies: Option<BTreeMap<String, PolicyDocument>>,
    #[serde(default)]
    principals: Option<BTreeMap<String, PrincipalEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClient {
    name: String,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    scopes: Vec<String>,
}

/// Body of the placement POSTs.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlacementRequest {
    /// Brokers to empty, besides `[placement] drain`.
    #[serde(default)]
    drain: Vec<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubQuotas {
    client_quotas: Vec<ClientQuota>,
}
