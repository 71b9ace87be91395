//! Runs one produce request's trip through the gateway (`fixtures::produce_round_trip`:
//! the Produce v11 of 3 partitions × 16 KiB and the pool's answer, no socket I/O) N times,
//! for `valgrind --tool=callgrind` to count the instructions per request: a figure that,
//! unlike wall-clock time on a shared machine, repeats run after run.
//!
//! Only `one_request` is measured (`--toggle-collect`); refilling the read buffer, which
//! stands in for the socket read, happens outside it. `loadtest/callgrind.sh` runs this
//! under callgrind and prints instructions per request.
//!
//! Usage: `produce_instructions [N]` (default 1000).

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use bytes::{Bytes, BytesMut};
use sluice_gateway::rewrite::Advertised;
use sluice_gateway::tenant::TenantView;

/// The measured unit; never inlined so callgrind can toggle collection on it.
#[inline(never)]
fn one_request(buf: &mut BytesMut, answer: &Bytes, view: &mut TenantView, adv: &Advertised) -> ([Bytes; 2], Bytes) {
    fixtures::produce_round_trip(buf, answer, view, adv)
}

fn main() {
    let n: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 1000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: produce_instructions [N > 0]");
            std::process::exit(2);
        }
    };
    sluice_gateway::telemetry::prometheus(); // meters as in production: a real recorder
    let wire = fixtures::produce_request_frame();
    let answer = fixtures::produce_response_frame();
    let mut view = fixtures::tenant_view();
    let adv = fixtures::advertised();
    let mut buf = BytesMut::with_capacity(wire.len());
    let (mut sent, mut answered) = (0usize, 0usize);
    for _ in 0..n {
        buf.extend_from_slice(&wire); // the socket read, not measured
        let (out, to_client) = one_request(&mut buf, &answer, &mut view, &adv);
        sent += out.iter().map(Bytes::len).sum::<usize>();
        answered += to_client.len();
    }
    println!(
        "{n} produce requests: {} bytes in, {} bytes to the pool, {} bytes answered per request",
        wire.len(),
        sent / n as usize,
        answered / n as usize
    );
}
