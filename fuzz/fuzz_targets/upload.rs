//! The upload entry point: an arbitrary multipart body (boundary `B`) → the image part →
//! sniff → header limits → decode → orient → fit → encode. Must never panic, hang, or
//! allocate beyond what the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pixdrop::imaging::{ingest, Limits};

/// The defaults of SPEC §3, scaled down so that one run stays fast.
const LIMITS: Limits = Limits { max_side: 4096, max_pixels: 4_000_000 };
const MAX_UPLOAD: u64 = 4 * 1024 * 1024;

fuzz_target!(|body: &[u8]| {
    let body = bytes::Bytes::copy_from_slice(body);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_UPLOAD + 65536).per_field(MAX_UPLOAD));
    let mut multipart = multer::Multipart::with_constraints(stream, "B", constraints);
    let image = futures_executor::block_on(pixdrop::http::dropbox::pick_image_part(&mut multipart));
    if let Ok(Some(bytes)) = image {
        let _ = ingest(&bytes, LIMITS, 512);
    }
});
