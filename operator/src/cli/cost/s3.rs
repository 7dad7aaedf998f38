//! S3: PUT requests (every object written, by producers or the
//! pipeline), GET requests (every object a function reads) and storage.
//! S3's event notifications cost nothing.

use super::{Cx, Line};

/// The buckets' lines.
pub fn lines(cx: &Cx<'_>) -> Vec<Line> {
    let p = &cx.prices.services.s3.prices;
    let mut out = Vec::new();
    for b in &cx.plan.buckets {
        let q =
            |m: &std::collections::BTreeMap<String, f64>| m.get(&b.logical).copied().unwrap_or(0.0);
        out.push(Line::new(
            "S3",
            "S3::Bucket",
            &b.name,
            "PUT requests (objects written)",
            q(&cx.flow.bucket_puts),
            &p.put_requests,
        ));
        out.push(Line::new(
            "S3",
            "S3::Bucket",
            &b.name,
            "GET requests (objects read)",
            q(&cx.flow.bucket_gets),
            &p.get_requests,
        ));
        out.push(Line::new(
            "S3",
            "S3::Bucket",
            &b.name,
            "GB-months stored",
            cx.volumes
                .buckets
                .get(&b.logical)
                .map_or(0.0, |v| v.stored_gb.value),
            &p.storage,
        ));
    }
    out
}
