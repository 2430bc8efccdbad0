//! Prometheus metrics of one node, in a registry of its own (no process-wide globals, so each
//! test's app counts alone). Every label takes values from a fixed set: route templates
//! (never raw paths), methods, status classes, refusal statuses, store names.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub upload_bytes: IntCounter,
    pub decode_seconds: Histogram,
    pub encode_seconds: Histogram,
    pub pictures_accepted: IntCounter,
    pub pictures_refused: IntCounterVec,
    pub live_pictures: IntGauge,
    pub sweeper_runs: IntCounter,
    pub sweeper_deleted: IntCounterVec,
    pub store_errors: IntCounterVec,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const IMAGE_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new("pixdrop_http_requests_total", "HTTP requests answered"),
                &["route", "method", "status"],
            )?,
            latency: HistogramVec::new(
                HistogramOpts::new(
                    "pixdrop_http_request_duration_seconds",
                    "Time from request to response head",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route", "method"],
            )?,
            upload_bytes: IntCounter::new(
                "pixdrop_upload_bytes_total",
                "Bytes of image files received by uploads",
            )?,
            decode_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "pixdrop_image_decode_seconds",
                    "Decoding an upload (sniff, header, decode, orientation)",
                )
                .buckets(IMAGE_BUCKETS.to_vec()),
            )?,
            encode_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "pixdrop_image_encode_seconds",
                    "Fitting and PNG-encoding an upload's master",
                )
                .buckets(IMAGE_BUCKETS.to_vec()),
            )?,
            pictures_accepted: IntCounter::new(
                "pixdrop_pictures_accepted_total",
                "Uploads answered 200",
            )?,
            pictures_refused: IntCounterVec::new(
                Opts::new(
                    "pixdrop_pictures_refused_total",
                    "Uploads refused, by HTTP status (400, 401, 413, 415, 422, 429, 5xx)",
                ),
                &["reason"],
            )?,
            live_pictures: IntGauge::new(
                "pixdrop_dropbox_live_pictures",
                "Live dropbox pictures in the store (all nodes, all tenants)",
            )?,
            sweeper_runs: IntCounter::new("pixdrop_sweeper_runs_total", "Sweeps run by this node")?,
            sweeper_deleted: IntCounterVec::new(
                Opts::new(
                    "pixdrop_sweeper_deleted_total",
                    "Records and blobs deleted by this node's sweeps",
                ),
                &["what"],
            )?,
            store_errors: IntCounterVec::new(
                Opts::new(
                    "pixdrop_store_errors_total",
                    "Failed operations of the metadata store or the blob store",
                ),
                &["store"],
            )?,
            registry,
        };
        m.registry.register(Box::new(m.requests.clone()))?;
        m.registry.register(Box::new(m.latency.clone()))?;
        m.registry.register(Box::new(m.upload_bytes.clone()))?;
        m.registry.register(Box::new(m.decode_seconds.clone()))?;
        m.registry.register(Box::new(m.encode_seconds.clone()))?;
        m.registry.register(Box::new(m.pictures_accepted.clone()))?;
        m.registry.register(Box::new(m.pictures_refused.clone()))?;
        m.registry.register(Box::new(m.live_pictures.clone()))?;
        m.registry.register(Box::new(m.sweeper_runs.clone()))?;
        m.registry.register(Box::new(m.sweeper_deleted.clone()))?;
        m.registry.register(Box::new(m.store_errors.clone()))?;
        Ok(m)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Counts what a sweep removed.
    pub fn record_sweep(&self, counts: &crate::meta::SweepCounts) {
        self.sweeper_runs.inc();
        for (what, n) in [
            ("sessions", counts.sessions),
            ("login_failures", counts.login_failures),
            ("expired_pictures", counts.pictures_expired),
            ("picture_rows", counts.picture_rows_purged),
            ("avatar_versions", counts.avatar_versions_pruned),
            ("orphan_blobs", counts.orphan_blobs),
        ] {
            self.sweeper_deleted.with_label_values(&[what]).inc_by(n);
        }
    }
}

/// `2xx`, `3xx`, `4xx`, `5xx`.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
