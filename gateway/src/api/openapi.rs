//! The OpenAPI 3.1 document of `/v1`, served at `/v1/openapi.json`. Kept next to the
//! handlers in `mod.rs`; schemathesis checks in CI that responses match it.

use serde_json::{json, Value};

fn problem_responses(codes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for code in codes {
        out.insert((*code).to_owned(), json!({"$ref": format!("#/components/responses/E{code}")}));
    }
    Value::Object(out)
}

fn ok(status: &str, schema: &str, etag: bool) -> (String, Value) {
    let mut resp = json!({
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    });
    if etag {
        resp["headers"] = json!({"ETag": {"$ref": "#/components/headers/ETag"}});
    }
    (status.to_owned(), resp)
}

fn no_content() -> (String, Value) {
    ("204".to_owned(), json!({"description": "Done"}))
}

/// An operation: its summary, body schema (if any), success response and error codes.
fn op(summary: &str, body: Option<&str>, success: (String, Value), errors: &[&str], params: &[Value]) -> Value {
    let mut responses = problem_responses(errors);
    if let Some(map) = responses.as_object_mut() {
        map.insert(success.0, success.1);
    }
    let mut o = json!({"summary": summary, "responses": responses});
    if !params.is_empty() {
        o["parameters"] = Value::Array(params.to_vec());
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
        });
    }
    o
}

const READ: &[&str] = &["400", "401", "403", "404", "503"];
const WRITE: &[&str] = &["400", "401", "403", "404", "409", "412", "413", "415", "503"];

fn param(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn limit_schema() -> Value {
    json!({"type": ["integer", "null"], "minimum": 0, "maximum": 18446744073709551615u64})
}

fn limits_schema(nullable: bool) -> Value {
    let keys = [
        "produce_bytes_per_sec",
        "consume_bytes_per_sec",
        "partition_produce_bytes_per_sec",
        "partition_consume_bytes_per_sec",
        "max_connections",
        "max_connections_per_sec",
        "max_message_bytes",
        "max_request_bytes",
        "max_partitions",
        "max_compacted_partitions",
        "partition_mutations_per_5min",
        "max_consumer_groups",
        "max_request_rate",
    ];
    let mut props = serde_json::Map::new();
    for k in keys {
        props.insert(
            k.to_owned(),
            if nullable { limit_schema() } else { json!({"type": "integer", "minimum": 0}) },
        );
    }
    let mut s = json!({"type": "object", "additionalProperties": false, "properties": props});
    if !nullable {
        s["required"] = json!(keys);
    }
    s
}

fn list_of(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_page_token"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next_page_token": {"type": ["string", "null"]}
        }
    })
}

/// The whole document.
pub fn document() -> Value {
    let tenant = param("tenant");
    let name = param("name");
    let (limit, page_token) = (param("limit"), param("page_token"));
    let if_match = param("if_match");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "sluice admin API",
            "version": "1",
            "description": "Tenants (operators), and each tenant's policies, principals, OAuth clients, sub-quotas and topics (tenant admins). Errors are application/problem+json (RFC 9457). Every resource of a tenant carries the tenant document's version as its ETag; writes honour If-Match."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }},
            "/v1/tenants": {
                "get": op("List tenants (operator)", None, ok("200", "TenantList", false), READ, &[limit.clone(), page_token.clone()]),
                "post": op("Create a tenant (operator)", Some("NewTenant"), ok("201", "Tenant", true), WRITE, &[])
            },
            "/v1/tenants/{tenant}": {
                "parameters": [tenant],
                "get": op("A tenant", None, ok("200", "Tenant", true), READ, &[]),
                "delete": op("Delete a tenant (operator)", None, no_content(), WRITE, &[if_match.clone()])
            },
            "/v1/tenants/{tenant}/limits": {
                "parameters": [param("tenant")],
                "get": op("The tenant's limit overrides and the limits in force", None, ok("200", "LimitsView", true), READ, &[]),
                "put": op("Replace the tenant's limit overrides (operator)", Some("Limits"), ok("200", "LimitsView", true), WRITE, &[if_match.clone()])
            },
            "/v1/tenants/{tenant}/policies": {
                "parameters": [param("tenant")],
                "get": op("The tenant's IAM policies", None, ok("200", "PolicyList", true), READ, &[limit.clone(), page_token.clone()])
            },
            "/v1/tenants/{tenant}/policies/{name}": {
                "parameters": [param("tenant"), name.clone()],
                "get": op("One policy", None, ok("200", "Policy", true), READ, &[]),
                "put": op("Create or replace a policy", Some("PolicyDocument"), ok("200", "Policy", true), WRITE, &[if_match.clone()]),
                "delete": op("Delete a policy", None, no_content(), WRITE, &[if_match.clone()])
            },
            "/v1/tenants/{tenant}/principals": {
                "parameters": [param("tenant")],
                "get": op("Principals and their attached policies", None, ok("200", "PrincipalList", true), READ, &[limit.clone(), page_token.clone()])
            },
            "/v1/tenants/{tenant}/principals/{name}": {
                "parameters": [param("tenant"), name.clone()],
                "get": op("One principal", None, ok("200", "Principal", true), READ, &[]),
                "put": op("Attach policies to a principal (\"*\" is every principal without an own entry)", Some("PrincipalEntry"), ok("200", "Principal", true), WRITE, &[if_match.clone()]),
                "delete": op("Detach a principal", None, no_content(), WRITE, &[if_match.clone()])
            },
            "/v1/tenants/{tenant}/clients": {
                "parameters": [param("tenant")],
                "get": op("OAuth clients (without secrets)", None, ok("200", "ClientList", true), READ, &[limit.clone(), page_token.clone()]),
                "post": op("Create an OAuth client; its secret is in this answer only", Some("NewClient"), ok("201", "NewClientSecret", true), WRITE, &[if_match.clone()])
            },
            "/v1/tenants/{tenant}/clients/{name}": {
                "parameters": [param("tenant"), name],
                "get": op("One OAuth client", None, ok("200", "Client", true), READ, &[]),
                "delete": op("Delete an OAuth client", None, no_content(), WRITE, &[if_match.clone()])
            },
            "/v1/tenants/{tenant}/quotas": {
                "parameters": [param("tenant")],
                "get": op("Sub-quotas (Kafka client quotas) inside the tenant's limits", None, ok("200", "SubQuotas", true), READ, &[]),
                "put": op("Replace the sub-quotas", Some("SubQuotas"), ok("200", "SubQuotas", true), WRITE, &[if_match])
            },
            "/v1/placement": {
                "get": op("Placement status (operator): imbalance, per-broker load, the lease, an apply in progress, reassignments", None, ok("200", "PlacementStatus", false), READ, &[])
            },
            "/v1/placement/plan": {
                "post": op("A dry-run plan (operator); drain lists brokers to empty", Some("PlacementRequest"), ok("200", "PlacementPlan", false), WRITE, &[])
            },
            "/v1/placement/apply": {
                "post": op("Plan and apply in the background under the rebalancer's lease (operator); 409 while another applier holds it", Some("PlacementRequest"), ok("202", "PlacementStarted", false), WRITE, &[])
            },
            "/v1/placement/cancel": {
                "post": op("Cancel a running apply and its reassignments (operator)", Some("PlacementRequest"), ok("200", "PlacementCancelled", false), WRITE, &[])
            },
            "/v1/tenants/{tenant}/usage": {
                "parameters": [param("tenant")],
                "get": op("Billing units per hour or day (MSK Serverless's: cluster-hours, partition-hours, GB in/out, storage GB-hours)", None, ok("200", "Usage", false), READ,
                    &[json!({"name": "from", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}}),
                      json!({"name": "to", "in": "query", "required": false, "schema": {"type": "string", "format": "date-time"}}),
                      json!({"name": "granularity", "in": "query", "required": false, "schema": {"type": "string", "enum": ["hour", "day"]}})])
            },
            "/v1/tenants/{tenant}/audit": {
                "parameters": [param("tenant")],
                "get": op("The tenant's audit log, newest first: admin-API mutations, Kafka control-plane calls and failed authentications", None, ok("200", "AuditList", false), READ,
                    &[param("limit"), param("page_token"),
                      json!({"name": "from", "in": "query", "required": false, "description": "oldest event time (inclusive): RFC 3339 or epoch milliseconds", "schema": {"type": "string"}}),
                      json!({"name": "to", "in": "query", "required": false, "description": "newest event time (exclusive): RFC 3339 or epoch milliseconds", "schema": {"type": "string"}})])
            },
            "/v1/tenants/{tenant}/groups": {
                "parameters": [param("tenant")],
                "get": op("Consumer groups with their lag per topic (committed offset to log end, summed over partitions), as of the latest pool poll", None, ok("200", "GroupList", false), READ, &[param("limit"), param("page_token")])
            },
            "/v1/tenants/{tenant}/topics": {
                "parameters": [param("tenant")],
                "get": op("Topics with partitions and current byte rates", None, ok("200", "TopicList", false), READ, &[limit, page_token])
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "scope sluice:operator (from an operator issuer), or sluice:admin with a sluice:tenant claim"}},
            "headers": {"ETag": {"description": "The tenant document's version", "schema": {"type": "string"}}},
            "parameters": {
                "tenant": {"name": "tenant", "in": "path", "required": true, "schema": {"type": "string"}},
                "name": {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                "limit": {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                "page_token": {"name": "page_token", "in": "query", "required": false, "schema": {"type": "string"}},
                "if_match": {"name": "If-Match", "in": "header", "required": false, "schema": {"type": "string"}}
            },
            "responses": {
                "E400": {"description": "Bad request: the body or a parameter is invalid (field names it)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E401": {"description": "No or invalid bearer token", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E403": {"description": "The token's scope does not allow this", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E404": {"description": "No such resource (or not the caller's tenant)", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E409": {"description": "Already exists", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E412": {"description": "If-Match does not name the current version", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E413": {"description": "Body too large", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E415": {"description": "Body is not application/json", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "E503": {"description": "The tenant store or the pool did not answer", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            },
            "schemas": {
                "Problem": {"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "detail": {"type": "string"}, "field": {"type": "string"}}},
                "Limits": limits_schema(true),
                "EffectiveLimits": limits_schema(false),
                "LimitsView": {"type": "object", "required": ["overrides", "effective"], "properties": {
                    "overrides": {"$ref": "#/components/schemas/Limits"},
                    "effective": {"$ref": "#/components/schemas/EffectiveLimits"}}},
                "PolicyDocument": {"type": "object", "description": "An IAM-style policy: Version and Statement (Effect, Action, Resource) as in AWS IAM, actions kafka-cluster:*, resources arn:sluice:kafka:::…",
                    "required": ["Version", "Statement"], "properties": {"Version": {"type": "string"}, "Statement": {}}},
                "Policy": {"type": "object", "required": ["name", "document"], "properties": {
                    "name": {"type": "string"}, "document": {"$ref": "#/components/schemas/PolicyDocument"}}},
                "PolicyList": list_of("Policy"),
                "PrincipalEntry": {"type": "object", "additionalProperties": false, "properties": {
                    "policies": {"type": "array", "items": {"type": "string"}}}},
                "Principal": {"type": "object", "required": ["name", "policies"], "properties": {
                    "name": {"type": "string"}, "policies": {"type": "array", "items": {"type": "string"}}}},
                "PrincipalList": list_of("Principal"),
                "NewTenant": {"type": "object", "additionalProperties": false, "required": ["id"], "properties": {
                    "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,30}$"},
                    "limits": {"$ref": "#/components/schemas/Limits"},
                    "policies": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/PolicyDocument"}},
                    "principals": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/PrincipalEntry"}}}},
                "Tenant": {"type": "object", "required": ["id", "version", "limits", "policies", "principals", "clients"], "properties": {
                    "id": {"type": "string"}, "version": {"type": "integer", "minimum": 1},
                    "limits": {"$ref": "#/components/schemas/Limits"},
                    "policies": {"type": "array", "items": {"type": "string"}},
                    "principals": {"type": "array", "items": {"type": "string"}},
                    "clients": {"type": "array", "items": {"type": "string"}}}},
                "TenantList": list_of("Tenant"),
                "NewClient": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                    "subject": {"type": ["string", "null"]},
                    "policies": {"type": ["array", "null"], "items": {"type": "string"}},
                    "scopes": {"type": "array", "items": {"type": "string", "enum": ["sluice:admin"]}}}},
                "NewClientSecret": {"type": "object", "required": ["client_id", "client_secret"], "properties": {
                    "client_id": {"type": "string"}, "client_secret": {"type": "string"}}},
                "Client": {"type": "object", "required": ["name", "client_id", "subject", "policies", "scopes", "created_at"], "properties": {
                    "name": {"type": "string"}, "client_id": {"type": "string"}, "subject": {"type": "string"},
                    "policies": {"type": ["array", "null"], "items": {"type": "string"}},
                    "scopes": {"type": "array", "items": {"type": "string"}},
                    "created_at": {"type": "integer"}}},
                "ClientList": list_of("Client"),
                "ClientQuota": {"type": "object", "additionalProperties": false, "required": ["quotas"], "properties": {
                    "user": {"type": ["string", "null"], "description": "a principal, or null for the default user; absent: no user part"},
                    "client_id": {"type": ["string", "null"], "description": "a client id, or null for the default client; absent: no client part"},
                    "quotas": {"type": "object", "propertyNames": {"enum": ["producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate", "connection_creation_rate"]},
                        "additionalProperties": {"type": "number", "exclusiveMinimum": 0}}}},
                "SubQuotas": {"type": "object", "additionalProperties": false, "required": ["client_quotas"], "properties": {
                    "client_quotas": {"type": "array", "items": {"$ref": "#/components/schemas/ClientQuota"}}}},
                "AuditOutcome": {"type": "object", "required": ["ok", "code", "status", "message"], "properties": {
                    "ok": {"type": "boolean"},
                    "code": {"type": ["string", "null"], "description": "Kafka error name (TOPIC_ALREADY_EXISTS, SASL_AUTHENTICATION_FAILED)"},
                    "status": {"type": ["integer", "null"], "description": "HTTP status of an admin-API call"},
                    "message": {"type": ["string", "null"]}}},
                "AuditResource": {"type": "object", "required": ["type", "name", "outcome"], "properties": {
                    "type": {"type": "string", "description": "topic, partition, group, client-quota, broker, tenant, policy, principal, client, limits, quotas, listener"},
                    "name": {"type": "string", "description": "as the tenant names it"},
                    "outcome": {"$ref": "#/components/schemas/AuditOutcome"}}},
                "AuditEvent": {"type": "object", "required": ["id", "time", "instance", "tenant", "principal", "source_ip", "action", "resources", "outcome"], "properties": {
                    "id": {"type": "string"}, "time": {"type": "string", "format": "date-time"},
                    "instance": {"type": "string", "description": "the gateway instance that recorded it"},
                    "tenant": {"type": ["string", "null"]}, "principal": {"type": ["string", "null"]},
                    "source_ip": {"type": ["string", "null"]},
                    "action": {"type": "string", "description": "kafka:<API> (kafka:CreateTopics), api:<METHOD> <path template>, or auth:failed"},
                    "resources": {"type": "array", "items": {"$ref": "#/components/schemas/AuditResource"}},
                    "outcome": {"$ref": "#/components/schemas/AuditOutcome"}}},
                "AuditList": list_of("AuditEvent"),
                "Partition": {"type": "object", "required": ["partition", "leader", "replicas", "in_sync_replicas", "bytes_in_per_sec", "bytes_out_per_sec"], "properties": {
                    "partition": {"type": "integer"}, "leader": {"type": "integer"},
                    "replicas": {"type": "array", "items": {"type": "integer"}},
                    "in_sync_replicas": {"type": "array", "items": {"type": "integer"}},
                    "bytes_in_per_sec": {"type": "number"}, "bytes_out_per_sec": {"type": "number"}}},
                "Topic": {"type": "object", "required": ["name", "partitions", "bytes_in_per_sec", "bytes_out_per_sec"], "properties": {
                    "name": {"type": "string"},
                    "partitions": {"type": "array", "items": {"$ref": "#/components/schemas/Partition"}},
                    "bytes_in_per_sec": {"type": "number"}, "bytes_out_per_sec": {"type": "number"}}},
                "TopicList": list_of("Topic"),
                "GroupLag": {"type": "object", "required": ["name", "lag", "topics"], "properties": {
                    "name": {"type": "string"}, "lag": {"type": "integer"},
                    "topics": {"type": "array", "items": {"type": "object", "required": ["topic", "lag", "max_partition_lag"], "properties": {
                        "topic": {"type": "string"}, "lag": {"type": "integer"}, "max_partition_lag": {"type": "integer"}}}}}},
                "GroupList": list_of("GroupLag"),
                "PlacementRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "drain": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 2147483647}}}},
                "PlacementStatus": {"type": "object", "required": ["imbalance", "brokers", "reassignments"], "properties": {
                    "imbalance": {"type": "number"},
                    "brokers": {"type": "array", "items": {"type": "object", "required": ["id", "leaders", "replicas"]}},
                    "lease": {}, "applying": {},
                    "reassignments": {"type": "array", "items": {"type": "object"}}}},
                "PlacementPlan": {"type": "object", "required": ["brokers", "partitions", "imbalance_before", "imbalance_after", "bytes_moved", "leader_changes", "moves"], "properties": {
                    "brokers": {"type": "integer"}, "partitions": {"type": "integer"},
                    "imbalance_before": {"type": "number"}, "imbalance_after": {"type": "number"},
                    "bytes_moved": {"type": "integer"}, "deferred_repairs": {},
                    "leader_changes": {"type": "array", "items": {"type": "object"}},
                    "moves": {"type": "array", "items": {"type": "object"}}}},
                "PlacementStarted": {"type": "object", "required": ["started", "plan"], "properties": {
                    "started": {"type": "boolean"}, "plan": {"$ref": "#/components/schemas/PlacementPlan"}}},
                "PlacementCancelled": {"type": "object", "required": ["cancelled_reassignments", "recovery"], "properties": {
                    "cancelled_reassignments": {"type": "integer"}, "recovery": {}}},
                "UsageBucket": {"type": "object", "required": ["start", "end", "cluster_hours", "partition_hours", "gb_in", "gb_out", "storage_gb_hours"], "properties": {
                    "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
                    "cluster_hours": {"type": "number", "minimum": 0}, "partition_hours": {"type": "number", "minimum": 0},
                    "gb_in": {"type": "number", "minimum": 0}, "gb_out": {"type": "number", "minimum": 0},
                    "storage_gb_hours": {"type": "number", "minimum": 0}}},
                "Usage": {"type": "object", "required": ["tenant", "granularity", "items"], "properties": {
                    "tenant": {"type": "string"}, "granularity": {"type": "string", "enum": ["hour", "day"]},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/UsageBucket"}}}}
            }
        }
    })
}
