//! The admin API's part of the audit log: every call that is not a read is recorded with
//! its caller, path and status; refused bearer tokens are recorded as failed
//! authentications; and `GET /v1/tenants/{tenant}/audit` pages through a tenant's events,
//! newest first.

use std::net::IpAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use sluice_tenancy::TenantId;

use super::{json_response, Api, Caller, Problem, Query, Resp};
use crate::audit::{self, Event, Outcome, Resource};

impl Api {
    /// Records a request whose bearer token was refused (401 with a token present).
    pub(super) fn audit_refused(&self, req: &Request<Incoming>, problem: &Problem, peer: IpAddr) {
        if problem.status != StatusCode::UNAUTHORIZED {
            return;
        }
        let Some(value) = req.headers().get(AUTHORIZATION) else { return };
        let token = value.to_str().ok().and_then(|v| v.split_once(' ')).map(|(_, t)| t.trim());
        let claimed = token.and_then(audit::claimed_by_token);
        let tenant = claimed
            .as_deref()
            .and_then(|c| c.split_once('/'))
            .and_then(|(t, _)| t.parse::<TenantId>().ok())
            .filter(|t| self.store.get(t).is_some());
        let outcome = Outcome::http(problem.status.as_u16(), Some(problem.detail.clone()));
        audit::auth_failed(&self.audit, tenant.as_ref().map(|t| t.as_str()), claimed.as_deref(), peer, "admin-api", outcome);
    }

    /// Records a mutation and passes its response on. The event belongs to the tenant in
    /// the path (for a tenant admin, always its own tenant); resources are named by the
    /// path, never another tenant's.
    pub(super) async fn audit_call(
        &self,
        caller: &Caller,
        method: &Method,
        path: &str,
        resp: Resp,
        detail: Option<String>,
        peer: IpAddr,
    ) -> Resp {
        let status = resp.status();
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
        let mut template = vec!["", "v1"];
        let mut resources = Vec::new();
        let mut tenant: Option<String> = None;
        let outcome = Outcome::http(status.as_u16(), detail);
        let resource = |kind: &str, name: &str| Resource { kind: kind.to_owned(), name: name.to_owned(), outcome: outcome.clone() };
        // What a POST created is named by the body, which the answer repeats.
        let mut created = None;
        let resp = if *method == Method::POST && status == StatusCode::CREATED {
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            let answer = serde_json::from_slice::<Value>(&bytes).unwrap_or_default();
            created = ["id", "client_id"].iter().find_map(|k| answer.get(*k).and_then(Value::as_str).map(str::to_owned));
            Response::from_parts(parts, Full::new(bytes))
        } else {
            resp
        };
        if let (["tenants"], Some(id)) = (segments.as_slice(), &created) {
            resources.push(resource("tenant", id));
            tenant = Some(id.clone());
        }
        for (i, seg) in segments.iter().enumerate() {
            template.push(match i {
                1 => "{tenant}",
                3 => "{name}",
                _ => seg,
            });
        }
        if let [_, t, rest @ ..] = segments.as_slice() {
            let own = match caller {
                Caller::Operator { .. } => Some(t.to_string()),
                Caller::TenantAdmin { tenant: own, .. } => Some(own.as_str().to_owned()),
            };
            // A tenant admin's call on another tenant is its own tenant's event, without the
            // other tenant's names.
            if own.as_deref() == Some(*t) {
                resources.push(resource("tenant", t));
                match (rest, &created) {
                    // Named as in the path of the client (its id is `<tenant>.<name>`).
                    (["clients"], Some(id)) => {
                        let name = id.strip_prefix(&format!("{t}.")).unwrap_or(id);
                        resources.push(resource("client", name))
                    }
                    ([kind @ ("limits" | "quotas")], _) => resources.push(resource(kind, t)),
                    ([kind, name, ..], _) => resources.push(resource(singular(kind), name)),
                    _ => {}
                }
            }
            tenant = own.filter(|o| o.parse::<TenantId>().is_ok());
        }
        let mut event = Event::new(format!("api:{method} {}", template.join("/")), tenant.as_deref(), Some(caller.subject()), Some(peer));
        event.resources = resources;
        event.outcome = outcome;
        self.audit.record(event);
        resp
    }

    /// `GET /v1/tenants/{tenant}/audit?limit=&page_token=&from=&to=`: the tenant's events,
    /// newest first; `page_token` is the previous page's `next_page_token`, `from`
    /// (inclusive) and `to` (exclusive) are RFC 3339 times or epoch milliseconds.
    pub(super) fn audit_list(&self, tenant: &TenantId, query: &Query, raw: Option<&str>) -> Result<Resp, Problem> {
        let before = match &query.page_token {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| {
                Problem::field(StatusCode::BAD_REQUEST, "page_token", "page_token is not one this list gave out")
            })?),
        };
        let (mut from, mut to) = (None, None);
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let slot = match k.as_ref() {
                "from" => &mut from,
                "to" => &mut to,
                _ => continue,
            };
            let ms = audit::parse_time(&v).ok_or_else(|| {
                Problem::field(StatusCode::BAD_REQUEST, k.as_ref(), format!("{k}: expected an RFC 3339 time or epoch milliseconds"))
            })?;
            *slot = Some(ms);
        }
        let page = self.audit.page(tenant.as_str(), query.limit, before, from, to);
        let body = json!({
            "items": page.items.iter().map(|e| e.as_ref()).collect::<Vec<_>>(),
            "next_page_token": page.next.map(|o| o.to_string()),
        });
        Ok(json_response(StatusCode::OK, &body, None))
    }
}

fn singular(kind: &str) -> &str {
    match kind {
        "policies" => "policy",
        "principals" => "principal",
        "clients" => "client",
        other => other,
    }
}
