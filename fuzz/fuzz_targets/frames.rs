//! Frames, request headers and response rewrites on arbitrary bytes: whatever a client
//! (or a confused upstream) sends, these must return an error, never panic or hang.
#![no_main]

use bytes::BytesMut;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use libfuzzer_sys::fuzz_target;
use sluice_gateway::codec::split_frame;
use sluice_gateway::protocol::{parse_request_header, produce_acks};
use sluice_gateway::rewrite::{rewrite_response, Addressing, Advertised, Observed};

const REWRITTEN: [ApiKey; 7] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::FindCoordinator,
    ApiKey::DescribeCluster,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ShareFetch,
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let mut buf = BytesMut::from(rest);
    let adv = Advertised {
        addressing: Addressing::PortPerBroker { host: StrBytes::from_static_str("gw"), base: 9100 },
        cluster_admin: false,
    };
    while let Ok(Some(frame)) = split_frame(&mut buf, 1 << 20) {
        if let Ok(header) = parse_request_header(frame.payload()) {
            if header.api_key == ApiKey::Produce as i16 && header.body_offset.is_some() {
                let _ = produce_acks(frame.payload(), &header);
            }
        }
        // The same bytes as a response to one of the APIs whose answers are rewritten.
        let api = REWRITTEN[selector as usize % REWRITTEN.len()];
        let range = api.valid_versions();
        let version = range.min + (selector as i16 / 8) % (range.max - range.min + 1);
        let corr = frame.payload().get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
        let _ = rewrite_response(frame, api, version, corr, &adv, &mut Observed::default());
    }
});
