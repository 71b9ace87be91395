//! The gateway's per-request hot path, piece by piece and whole, on realistic inputs
//! (`fixtures`): a Produce v11 of 3 partitions × one 16 KiB batch of 1 KiB records, its
//! answer, a Fetch v16 answer of the same size and a Metadata v12 answer of 3 brokers and
//! 50 topics.
//!
//! - `frame/*`: the length check, the zero-copy split, and `FrameReader::read_frame` from
//!   an in-memory reader (the copy into the read buffer included, the syscall not).
//! - `request/*`: header parse, acks peek, the client-id rewrite (`reframe_header`), the
//!   tenant Produce mapping (`tenant::admit`: decode, authorize, rename, quota charge,
//!   re-encode) and the whole request + response round trip of one produce.
//! - `response/*`: `rewrite_response` (plain listeners) for Metadata and Produce, and the
//!   tenant Produce and Fetch answer mapping (`tenant::respond`).
//!
//! Every input the gateway would receive fresh per request is rebuilt or cloned inside the
//! measured closure (a `Bytes` clone is a reference count); buffers that the gateway fills
//! from the socket are refilled in untimed setup (`iter_batched`). Benches whose frames own
//! 50 KB allocations run one iteration per batch, so each frame is freed before the next
//! is built, as in the gateway; held across a batch, every allocation would be fresh
//! memory and the figure mostly page faults.
//!
//! Run: `cargo bench -p sluice-gateway --bench hot_path -- --measurement-time 3 --warm-up-time 1`
//! (results in `target/criterion/`); docs/benchmarks/hot-path.md has the figures.

mod fixtures;

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kafka_protocol::messages::ApiKey;
use sluice_gateway::codec::{complete_frame_len, split_frame, Frame, FrameReader, ReadLimits};
use sluice_gateway::protocol::{parse_request_header, parse_response_header, produce_acks};
use sluice_gateway::rewrite::{rewrite_response, Observed};
use sluice_gateway::tenant::{self, Admission, Ctx, Denied, Plan, Req};

use fixtures::*;

fn frame(c: &mut Criterion) {
    let wire = produce_request_frame();
    let mut g = c.benchmark_group("frame");
    g.bench_function("complete_frame_len/produce_v11_3x16k", |b| {
        b.iter(|| complete_frame_len(black_box(&wire), MAX_FRAME))
    });
    g.bench_function("split_frame/produce_v11_3x16k", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&wire[..]),
            |buf| split_frame(black_box(buf), MAX_FRAME),
            BatchSize::SmallInput,
        )
    });
    // What the client reader does per frame: grow the buffer toward the announced length,
    // copy the bytes in, split the frame off. The reader is a slice, so no syscall.
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let stream: &'static [u8] = Vec::leak(wire.to_vec());
    let limits = ReadLimits {
        max_frame: MAX_FRAME,
        idle: Duration::from_secs(600),
        frame: Duration::from_secs(60),
        reserve_ahead: 1024 * 1024,
    };
    g.bench_function("read_frame/produce_v11_3x16k", |b| {
        b.iter_batched(
            || FrameReader::new(stream),
            |mut reader| rt.block_on(reader.read_frame(black_box(limits))),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn request(c: &mut Criterion) {
    sluice_gateway::telemetry::prometheus(); // meters as in production: a real recorder
    let wire = produce_request_frame();
    let answer = produce_response_frame();
    let payload = Frame(wire.clone());
    let payload = payload.payload();
    let header = parse_request_header(payload).expect("header");
    let body_at = header.body_offset.expect("body offset");
    let req = Req { api: ApiKey::Produce, version: PRODUCE_VERSION, correlation_id: CORRELATION_ID };
    let mut view = tenant_view();
    let adv = advertised();

    let mut g = c.benchmark_group("request");
    g.bench_function("parse_request_header/produce_v11", |b| b.iter(|| parse_request_header(black_box(payload))));
    g.bench_function("produce_acks/produce_v11", |b| b.iter(|| produce_acks(black_box(payload), black_box(&header))));
    g.bench_function("reframe_header/produce_v11_3x16k", |b| {
        b.iter(|| tenant::reframe_header(black_box(payload), &header, &view.ns, black_box(payload.len() - body_at)))
    });
    g.bench_function("tenant_admit/produce_v11_3x16k", |b| {
        b.iter(|| {
            let body = wire.slice(4 + body_at..);
            let mut ctx = Ctx { view: &mut view, ids: tenant::topic_ids() };
            let admission = tenant::admit(&mut ctx, black_box(req), black_box(&body)).expect("admit");
            assert!(matches!(admission, Admission::Forward { .. }));
            view.charge = Default::default(); // within quota: nothing owed, as the reader settles it
            admission
        })
    });
    g.bench_function("round_trip/produce_v11_3x16k", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| produce_round_trip(black_box(&mut buf), black_box(&answer), &mut view, &adv),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn response(c: &mut Criterion) {
    sluice_gateway::telemetry::prometheus();
    learn_topic_id();
    let metadata = metadata_response_frame();
    let produce = produce_response_frame();
    let fetch = fetch_response_frame();
    let adv = advertised();
    let mut view = tenant_view();

    let mut g = c.benchmark_group("response");
    g.bench_function("rewrite_response/metadata_v12_3_brokers_50_topics", |b| {
        b.iter(|| {
            let mut observed = Observed::default();
            let out = rewrite_response(Frame(black_box(&metadata).clone()), ApiKey::Metadata, METADATA_VERSION, CORRELATION_ID, &adv, &mut observed)
                .expect("rewrite");
            (out, observed.brokers)
        })
    });
    g.bench_function("rewrite_response/produce_v11_3_partitions", |b| {
        b.iter(|| {
            let mut observed = Observed::default();
            rewrite_response(Frame(black_box(&produce).clone()), ApiKey::Produce, PRODUCE_VERSION, CORRELATION_ID, &adv, &mut observed)
                .expect("rewrite")
        })
    });
    for (name, api, version, frame) in [
        ("tenant_respond/produce_v11_3_partitions", ApiKey::Produce, PRODUCE_VERSION, &produce),
        ("tenant_respond/fetch_v16_3x16k", ApiKey::Fetch, FETCH_VERSION, &fetch),
    ] {
        let (_, body_at) = parse_response_header(&frame[4..], api, version).expect("response header");
        let req = Req { api, version, correlation_id: CORRELATION_ID };
        g.bench_function(name, |b| {
            b.iter(|| {
                let body = black_box(frame).slice(4 + body_at..);
                let mut ctx = Ctx { view: &mut view, ids: tenant::topic_ids() };
                let mut observed = Observed::default();
                let out = tenant::respond(&mut ctx, req, Plan::Map(Box::<Denied>::default()), body, &adv, &mut observed)
                    .expect("respond")
                    .expect("mapped");
                view.charge = Default::default(); // fetch bytes charged within quota
                out
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // Short by default: two shared cores, others building. Flags still override.
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = frame, request, response }
criterion_main!(benches);
