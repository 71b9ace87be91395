//! Response rewrites that keep clients pointed at the gateway: every broker host and
//! port a response carries becomes the gateway's advertised host and the broker's
//! gateway port, and ApiVersions is narrowed to what both sides speak.
//!
//! A response is decoded only when its API needs it (see `api_table`), and re-encoded
//! only when something changed; otherwise the broker's bytes go out untouched.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, DescribeClusterResponse, DescribeConfigsResponse, FetchResponse, FindCoordinatorResponse,
    MetadataResponse, ProduceResponse, ShareAcknowledgeResponse, ShareFetchResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes, VersionRange};

use crate::api_table::{self, ResponseRewrite};
use crate::codec::Frame;
use crate::pool::PoolBroker;
use crate::protocol::{encode_response, encode_response_with_header_version, parse_response_header, WireError};

/// DescribeConfigs resource type of a broker.
const BROKER_RESOURCE: i8 = 4;

/// Broker configs whose values carry pool hosts or ports.
fn names_pool_hosts(config: &str) -> bool {
    config.contains("listeners") || config.contains("quorum.voters") || config.contains("bootstrap.servers")
}

/// Kafka error code UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("response correlation id {got} does not match request {expected}")]
    CorrelationMismatch { got: i32, expected: i32 },
    #[error("cannot decode {api:?} v{version} response: {reason}")]
    Decode { api: ApiKey, version: i16, reason: String },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode { api: ApiKey, version: i16, reason: String },
}

/// How a listener's clients reach each pool broker.
pub enum Addressing {
    /// Plain listeners: one host, broker N on `base + N`.
    PortPerBroker { host: StrBytes, base: u16 },
    /// TLS with SNI: broker N is `broker-N.<domain>` on the one TLS port.
    Sni { domain: String, port: u16 },
}

/// What a rewrite needs to know about the listener a client came in on.
pub struct Advertised {
    pub addressing: Addressing,
    /// Whether cluster-admin APIs are offered on this listener.
    pub cluster_admin: bool,
}

impl Advertised {
    /// The host and port clients of this listener use for pool broker `node_id`.
    pub fn endpoint(&self, node_id: i32) -> (StrBytes, i32) {
        match &self.addressing {
            // Saturating: an absurd node id (no listener could exist for it) must not
            // overflow; the port it gets is simply not one the gateway serves.
            Addressing::PortPerBroker { host, base } => (host.clone(), i32::from(*base).saturating_add(node_id)),
            Addressing::Sni { domain, port } => {
                (StrBytes::from_string(crate::tls::broker_host(node_id, domain)), i32::from(*port))
            }
        }
    }
}

/// Side effects a rewrite reports to the caller.
#[derive(Default)]
pub struct Observed {
    /// Brokers named in a Metadata answer, so listeners can be opened for new ones.
    pub brokers: Vec<PoolBroker>,
    /// The pool's ranges from an ApiVersions answer.
    pub pool_versions: Option<HashMap<i16, VersionRange>>,
}

/// Rewrites one upstream response frame for the client. Returns the bytes to send.
pub fn rewrite_response(
    frame: Frame,
    api: ApiKey,
    version: i16,
    expected_correlation_id: i32,
    adv: &Advertised,
    observed: &mut Observed,
) -> Result<Bytes, RewriteError> {
    let (corr, body_at) = parse_response_header(frame.payload(), api, version)?;
    if corr != expected_correlation_id {
        return Err(RewriteError::CorrelationMismatch { got: corr, expected: expected_correlation_id });
    }
    let rewrite = api_table::entry(api).rewrite;
    let body = || frame.0.slice(4 + body_at..);
    let decode_err = |e: anyhow::Error| RewriteError::Decode { api, version, reason: e.to_string() };
    let encode = |resp: &dyn ErasedEncode| {
        resp.encode_frame(corr, api, version)
            .map_err(|e| RewriteError::Encode { api, version, reason: e.to_string() })
    };
    match rewrite {
        ResponseRewrite::None => Ok(frame.0),
        ResponseRewrite::NodeEndpoints { from_version } if version < from_version => Ok(frame.0),
        ResponseRewrite::ApiVersions => rewrite_api_versions(body(), corr, version, adv, observed),
        ResponseRewrite::Metadata => {
            let mut resp = MetadataResponse::decode(&mut body(), version).map_err(decode_err)?;
            rewrite_metadata_brokers(&mut resp, adv, observed);
            encode(&resp)
        }
        ResponseRewrite::FindCoordinator => {
            let mut resp = FindCoordinatorResponse::decode(&mut body(), version).map_err(decode_err)?;
            if version < 4 {
                if resp.node_id.0 >= 0 {
                    (resp.host, resp.port) = adv.endpoint(resp.node_id.0);
                }
            } else {
                for c in &mut resp.coordinators {
                    if c.node_id.0 >= 0 {
                        (c.host, c.port) = adv.endpoint(c.node_id.0);
                    }
                }
            }
            encode(&resp)
        }
        ResponseRewrite::DescribeCluster => {
            let mut resp = DescribeClusterResponse::decode(&mut body(), version).map_err(decode_err)?;
            for b in &mut resp.brokers {
                (b.host, b.port) = adv.endpoint(b.broker_id.0);
            }
            encode(&resp)
        }
        ResponseRewrite::DescribeConfigs => {
            let mut resp = DescribeConfigsResponse::decode(&mut body(), version).map_err(decode_err)?;
            let mut redacted = false;
            for result in resp.results.iter_mut().filter(|r| r.resource_type == BROKER_RESOURCE) {
                for config in result.configs.iter_mut().filter(|c| names_pool_hosts(c.name.as_str())) {
                    // Kafka's own way of withholding a value: null and sensitive.
                    config.value = None;
                    config.is_sensitive = true;
                    for synonym in &mut config.synonyms {
                        synonym.value = None;
                    }
                    redacted = true;
                }
            }
            if !redacted {
                return Ok(frame.0);
            }
            encode(&resp)
        }
        ResponseRewrite::NodeEndpoints { .. } => {
            macro_rules! endpoints {
                ($ty:ty) => {{
                    let mut resp = <$ty>::decode(&mut body(), version).map_err(decode_err)?;
                    if resp.node_endpoints.is_empty() {
                        return Ok(frame.0);
                    }
                    for e in &mut resp.node_endpoints {
                        (e.host, e.port) = adv.endpoint(e.node_id.0);
                    }
                    encode(&resp)
                }};
            }
            match api {
                ApiKey::Produce => endpoints!(ProduceResponse),
                ApiKey::Fetch => endpoints!(FetchResponse),
                ApiKey::ShareFetch => endpoints!(ShareFetchResponse),
                ApiKey::ShareAcknowledge => endpoints!(ShareAcknowledgeResponse),
                _ => Ok(frame.0),
            }
        }
    }
}

/// Points a Metadata answer's brokers at the gateway, noting the pool's brokers.
pub fn rewrite_metadata_brokers(resp: &mut MetadataResponse, adv: &Advertised, observed: &mut Observed) {
    for b in &mut resp.brokers {
        observed.brokers.push(PoolBroker {
            node_id: b.node_id.0,
            addr: format!("{}:{}", b.host.as_str(), b.port),
            rack: b.rack.as_ref().map(|r| r.to_string()),
        });
        (b.host, b.port) = adv.endpoint(b.node_id.0);
    }
}

/// Lets `rewrite_response` share one encode closure across response types.
trait ErasedEncode {
    fn encode_frame(&self, corr: i32, api: ApiKey, version: i16) -> anyhow::Result<Bytes>;
}

impl<T: Encodable> ErasedEncode for T {
    fn encode_frame(&self, corr: i32, api: ApiKey, version: i16) -> anyhow::Result<Bytes> {
        encode_response(corr, api, version, self)
    }
}

/// The ranges the gateway offers for `key`: its own, narrowed by the pool's when known.
pub fn offered_range(key: i16, pool: &HashMap<i16, VersionRange>, _cluster_admin: bool) -> Option<VersionRange> {
    let api = ApiKey::try_from(key).ok()?;
    let entry = api_table::entry(api);
    if !api_table::offered(&entry) {
        return None;
    }
    let ours = entry.versions();
    let range = match pool.get(&key) {
        Some(theirs) => ours.intersect(theirs),
        None => ours,
    };
    (!range.is_empty()).then_some(range)
}

fn rewrite_api_versions(
    mut body: Bytes,
    corr: i32,
    version: i16,
    adv: &Advertised,
    observed: &mut Observed,
) -> Result<Bytes, RewriteError> {
    let api = ApiKey::ApiVersions;
    let original = body.clone();
    // A broker that rejects the request version answers in v0 (KIP-511).
    let (mut resp, encode_version) = match ApiVersionsResponse::decode(&mut body, version) {
        Ok(r) => (r, version),
        Err(first) => {
            let mut retry = original;
            let r = ApiVersionsResponse::decode(&mut retry, 0)
                .map_err(|_| RewriteError::Decode { api, version, reason: first.to_string() })?;
            (r, 0)
        }
    };
    let pool: HashMap<i16, VersionRange> = resp
        .api_keys
        .iter()
        .map(|k| (k.api_key, VersionRange { min: k.min_version, max: k.max_version }))
        .collect();
    resp.api_keys = intersected_keys(&pool, adv.cluster_admin);
    if resp.error_code == 0 {
        observed.pool_versions = Some(pool);
    }
    encode_response_with_header_version(corr, 0, encode_version, &resp)
        .map_err(|e| RewriteError::Encode { api, version, reason: e.to_string() })
}

fn intersected_keys(pool: &HashMap<i16, VersionRange>, cluster_admin: bool) -> Vec<ApiVersion> {
    let mut keys: Vec<i16> = pool.keys().copied().collect();
    keys.sort_unstable();
    keys.into_iter()
        .filter_map(|k| {
            let range = offered_range(k, pool, cluster_admin)?;
            Some(ApiVersion::default().with_api_key(k).with_min_version(range.min).with_max_version(range.max))
        })
        .collect()
}

/// The gateway's own answer to an ApiVersions request newer than it understands
/// (KIP-511): a v0 response with UNSUPPORTED_VERSION and the ranges it does offer,
/// so the client retries with a version both sides know.
pub fn unsupported_api_versions(corr: i32, pool: &HashMap<i16, VersionRange>, cluster_admin: bool) -> Bytes {
    let api_keys = if pool.is_empty() {
        // Discovery has not answered yet: offer the gateway's own table.
        ApiKey::iter()
            .filter_map(|k| {
                let range = offered_range(k as i16, pool, cluster_admin)?;
                Some(ApiVersion::default().with_api_key(k as i16).with_min_version(range.min).with_max_version(range.max))
            })
            .collect()
    } else {
        intersected_keys(pool, cluster_admin)
    };
    let resp = ApiVersionsResponse::default().with_error_code(UNSUPPORTED_VERSION).with_api_keys(api_keys);
    // Encoding a v0 ApiVersions body with only v0 fields set cannot fail.
    encode_response_with_header_version(corr, 0, 0, &resp).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::BrokerId;

    fn adv() -> Advertised {
        Advertised {
            addressing: Addressing::PortPerBroker { host: StrBytes::from_static_str("gw.local"), base: 9100 },
            cluster_admin: false,
        }
    }

    fn frame_of(bytes: Bytes) -> Frame {
        Frame(bytes)
    }

    #[test]
    fn metadata_brokers_point_at_the_gateway() {
        let resp = MetadataResponse::default().with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("10.0.0.2"))
                .with_port(29092),
        ]);
        for version in [1, 9, 12] {
            let raw = encode_response(5, ApiKey::Metadata, version, &resp).unwrap();
            let mut obs = Observed::default();
            let out = rewrite_response(frame_of(raw), ApiKey::Metadata, version, 5, &adv(), &mut obs).unwrap();
            let (_, at) = parse_response_header(&out[4..], ApiKey::Metadata, version).unwrap();
            let back = MetadataResponse::decode(&mut out.slice(4 + at..), version).unwrap();
            assert_eq!(back.brokers[0].host.as_str(), "gw.local");
            assert_eq!(back.brokers[0].port, 9102);
            assert_eq!(obs.brokers[0].addr, "10.0.0.2:29092");
            assert!(!out.windows(8).any(|w| w == b"10.0.0.2"));
        }
    }

    #[test]
    fn find_coordinator_batched_and_single() {
        let batched = FindCoordinatorResponse::default().with_coordinators(vec![
            Coordinator::default().with_node_id(BrokerId(3)).with_host(StrBytes::from_static_str("pool-3")).with_port(1),
            Coordinator::default().with_node_id(BrokerId(-1)).with_error_code(15),
        ]);
        let raw = encode_response(1, ApiKey::FindCoordinator, 4, &batched).unwrap();
        let out = rewrite_response(frame_of(raw), ApiKey::FindCoordinator, 4, 1, &adv(), &mut Observed::default()).unwrap();
        let (_, at) = parse_response_header(&out[4..], ApiKey::FindCoordinator, 4).unwrap();
        let back = FindCoordinatorResponse::decode(&mut out.slice(4 + at..), 4).unwrap();
        assert_eq!(back.coordinators[0].port, 9103);
        assert_eq!(back.coordinators[1].error_code, 15);

        let single = FindCoordinatorResponse::default()
            .with_node_id(BrokerId(1))
            .with_host(StrBytes::from_static_str("pool-1"))
            .with_port(29091);
        let raw = encode_response(2, ApiKey::FindCoordinator, 2, &single).unwrap();
        let out = rewrite_response(frame_of(raw), ApiKey::FindCoordinator, 2, 2, &adv(), &mut Observed::default()).unwrap();
        let (_, at) = parse_response_header(&out[4..], ApiKey::FindCoordinator, 2).unwrap();
        let back = FindCoordinatorResponse::decode(&mut out.slice(4 + at..), 2).unwrap();
        assert_eq!((back.host.as_str(), back.port), ("gw.local", 9101));
    }

    #[test]
    fn api_versions_is_the_intersection_and_hides_internal_apis() {
        let resp = ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default().with_api_key(0).with_min_version(3).with_max_version(99),
            ApiVersion::default().with_api_key(ApiKey::BrokerHeartbeat as i16).with_min_version(0).with_max_version(1),
            ApiVersion::default().with_api_key(ApiKey::ElectLeaders as i16).with_min_version(0).with_max_version(2),
            ApiVersion::default().with_api_key(999).with_min_version(0).with_max_version(1),
        ]);
        let raw = encode_response_with_header_version(9, 0, 3, &resp).unwrap();
        let mut obs = Observed::default();
        let out = rewrite_response(frame_of(raw), ApiKey::ApiVersions, 3, 9, &adv(), &mut obs).unwrap();
        let back = ApiVersionsResponse::decode(&mut out.slice(8..), 3).unwrap();
        // Produce, and ElectLeaders (cluster administration is offered everywhere; tenants
        // get CLUSTER_AUTHORIZATION_FAILED from the tenancy stage); never BrokerHeartbeat.
        let keys: Vec<i16> = back.api_keys.iter().map(|k| k.api_key).collect();
        assert_eq!(keys, vec![0, ApiKey::ElectLeaders as i16]);
        assert_eq!(back.api_keys[0].max_version, ApiKey::Produce.valid_versions().max);
        assert_eq!(obs.pool_versions.unwrap().len(), 4);
    }

    #[test]
    fn kip511_answer_is_v0_with_error() {
        let out = unsupported_api_versions(4, &HashMap::new(), false);
        let back = ApiVersionsResponse::decode(&mut out.slice(8..), 0).unwrap();
        assert_eq!(back.error_code, UNSUPPORTED_VERSION);
        assert!(back.api_keys.iter().any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 4));
    }

    #[test]
    fn broker_configs_naming_pool_hosts_are_redacted() {
        use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
        let config = |name: &'static str, value: &'static str| {
            DescribeConfigsResourceResult::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_static_str(value)))
        };
        let resp = DescribeConfigsResponse::default().with_results(vec![
            DescribeConfigsResult::default().with_resource_type(BROKER_RESOURCE).with_configs(vec![
                config("advertised.listeners", "PLAINTEXT://10.1.1.1:29091"),
                config("controller.quorum.voters", "1@10.1.1.1:29191"),
                config("num.io.threads", "8"),
            ]),
            DescribeConfigsResult::default().with_resource_type(2).with_configs(vec![config("retention.ms", "1000")]),
        ]);
        let raw = encode_response(3, ApiKey::DescribeConfigs, 4, &resp).unwrap();
        let out = rewrite_response(frame_of(raw), ApiKey::DescribeConfigs, 4, 3, &adv(), &mut Observed::default()).unwrap();
        assert!(!out.windows(8).any(|w| w == b"10.1.1.1"));
        let (_, at) = parse_response_header(&out[4..], ApiKey::DescribeConfigs, 4).unwrap();
        let back = DescribeConfigsResponse::decode(&mut out.slice(4 + at..), 4).unwrap();
        assert_eq!(back.results[0].configs[2].value.as_ref().map(|v| v.as_str()), Some("8"));
        assert!(back.results[0].configs[0].is_sensitive && back.results[0].configs[0].value.is_none());
        assert_eq!(back.results[1].configs[0].value.as_ref().map(|v| v.as_str()), Some("1000"));
    }

    #[test]
    fn absurd_node_ids_do_not_overflow() {
        // Found by the fuzz target: base + node id overflowed for node id i32::MAX.
        assert_eq!(adv().endpoint(i32::MAX).1, i32::MAX);
        assert_eq!(adv().endpoint(-1).1, 9099);
    }

    #[test]
    fn mismatched_correlation_id_is_an_error() {
        let raw = encode_response(1, ApiKey::Heartbeat, 4, &kafka_protocol::messages::HeartbeatResponse::default()).unwrap();
        assert!(matches!(
            rewrite_response(frame_of(raw), ApiKey::Heartbeat, 4, 2, &adv(), &mut Observed::default()),
            Err(RewriteError::CorrelationMismatch { .. })
        ));
    }
}
