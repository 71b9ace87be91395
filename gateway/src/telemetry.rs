//! The process-wide Prometheus recorder. Installed once; every gateway in the process
//! (tests start several) shares it, and the admin listener renders it at `/metrics`.
//! Latency histograms get real buckets (`meters::LATENCY_BUCKETS`); [`upkeep`]
//! drains their samples between scrapes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder on first use; `None` if another recorder was installed first.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            // Only an empty bucket list fails, and ours is a non-empty constant.
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(crate::meters::names::REQUEST_DURATION.to_owned()),
                    crate::meters::LATENCY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let installed = metrics::set_global_recorder(recorder).ok().map(|_| handle);
            if installed.is_some() {
                crate::meters::describe();
                crate::pool_metrics::describe();
            }
            installed
        })
        .as_ref()
}

/// Runs the recorder's upkeep every 5 s until cancelled: `build_recorder` does not, and
/// without it histogram samples pile up between scrapes (or forever, with no scraper).
/// Several gateways in one process each run one; upkeep is idempotent.
pub async fn upkeep(cancel: CancellationToken) {
    let Some(handle) = prometheus() else { return };
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
        }
    }
}
