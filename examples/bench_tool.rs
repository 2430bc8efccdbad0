//! Helpers of `scripts/bench.sh` (a benchmark, not a test):
//! - `bench_tool jpeg SIDE OUT`: writes a photo-like SIDE×SIDE JPEG (smooth gradients with
//!   sensor-like noise, quality 85).
//! - `bench_tool ingest FILE SECONDS THREADS`: runs the bare intake (sniff, limits, decode,
//!   orient, fit to 512, PNG encode) of FILE in THREADS threads for SECONDS and prints
//!   images per second: the floor of what an upload costs without HTTP, auth or storage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use pixdrop::imaging::{ingest, Limits};

fn photo_jpeg(side: u32) -> Vec<u8> {
    // A small xorshift generator: deterministic noise, no extra dependency.
    let mut seed: u32 = 0x9E37_79B9;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 24) as i32 - 12
    };
    let s = side as f32;
    let img = RgbImage::from_fn(side, side, |x, y| {
        let (fx, fy) = (x as f32 / s, y as f32 / s);
        let sky = 90.0 + 120.0 * (1.0 - fy);
        let hill = ((fx * 9.0).sin() * 0.1 + 0.6 < fy) as i32 as f32;
        let base = [
            sky * (1.0 - hill) + 60.0 * hill,
            (sky + 20.0) * (1.0 - hill) + 120.0 * hill + 30.0 * (fx * 5.0).cos(),
            230.0 * (1.0 - hill) + 50.0 * hill,
        ];
        let mut px = |v: f32| (v as i32 + noise()).clamp(0, 255) as u8;
        Rgb([px(base[0]), px(base[1]), px(base[2])])
    });
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encode");
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("jpeg") => {
            let side: u32 = args[1].parse().expect("SIDE");
            std::fs::write(&args[2], photo_jpeg(side)).expect("write");
        }
        Some("ingest") => {
            let bytes = Arc::new(std::fs::read(&args[1]).expect("read"));
            let seconds: u64 = args[2].parse().expect("SECONDS");
            let threads: usize = args[3].parse().expect("THREADS");
            let limits = Limits {
                max_side: 16384,
                max_pixels: 50_000_000,
            };
            let done = Arc::new(AtomicU64::new(0));
            let decode_us = Arc::new(AtomicU64::new(0));
            let encode_us = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let until = start + Duration::from_secs(seconds);
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (bytes, done) = (bytes.clone(), done.clone());
                    let (dec, enc) = (decode_us.clone(), encode_us.clone());
                    std::thread::spawn(move || {
                        while Instant::now() < until {
                            let m = ingest(&bytes, limits, 512).expect("ingest");
                            dec.fetch_add(m.decode_time.as_micros() as u64, Ordering::Relaxed);
                            enc.fetch_add(m.encode_time.as_micros() as u64, Ordering::Relaxed);
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("worker");
            }
            let n = done.load(Ordering::Relaxed) as f64;
            println!("{:.1}", n / start.elapsed().as_secs_f64());
            eprintln!(
                "per image: decode {:.2} ms, fit+encode {:.2} ms",
                decode_us.load(Ordering::Relaxed) as f64 / n / 1000.0,
                encode_us.load(Ordering::Relaxed) as f64 / n / 1000.0
            );
        }
        _ => eprintln!("usage: bench_tool jpeg SIDE OUT | ingest FILE SECONDS THREADS"),
    }
}
