//! Image intake and rendering: pure functions, no I/O. The upload pipeline is
//! [`sniff`] → [`header_dimensions`] + [`check_limits`] → [`decode`] (orientation applied) →
//! [`geometry::fit_within`] → [`encode_png`]; [`ingest`] runs them in that order.

use std::time::{Duration, Instant};

pub mod avatar;
pub mod codec;
pub mod geometry;
pub mod sniff;

pub use codec::{decode, encode_png, header_dimensions, resize_exact, resize_to_fit};
pub use sniff::{sniff, Format};

/// Limits applied to an image before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_side: u32,
    pub max_pixels: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("not a supported image format (JPEG, PNG, GIF, BMP or WebP)")]
    Unsupported,
    #[error("image is {width}×{height} pixels; max_side is {max}")]
    SideTooLong { width: u32, height: u32, max: u32 },
    #[error("image has {pixels} pixels; max_pixels is {max}")]
    TooManyPixels { pixels: u64, max: u64 },
    #[error("image cannot be decoded")]
    Undecodable,
    #[error("image cannot be encoded: {0}")]
    Encode(String),
}

/// Refuses an image whose header says it is too large, before any pixel is decoded.
pub fn check_limits(width: u32, height: u32, limits: Limits) -> Result<(), ImageError> {
    if width > limits.max_side || height > limits.max_side {
        return Err(ImageError::SideTooLong {
            width,
            height,
            max: limits.max_side,
        });
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooManyPixels {
            pixels,
            max: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(ImageError::Undecodable);
    }
    Ok(())
}

/// A stored dropbox picture: a PNG without metadata, its size, and what making it cost.
#[derive(Debug, Clone)]
pub struct Master {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Sniff, header, decode and orientation.
    pub decode_time: Duration,
    /// Fit and PNG encode.
    pub encode_time: Duration,
}

/// The whole intake of one uploaded file: format from the bytes, limits from the header,
/// decode, EXIF orientation, fit within `master_size` without upscaling, PNG.
pub fn ingest(bytes: &[u8], limits: Limits, master_size: u32) -> Result<Master, ImageError> {
    let start = Instant::now();
    let format = sniff(bytes)?;
    let (width, height) = header_dimensions(bytes, format)?;
    check_limits(width, height, limits)?;
    let image = decode(bytes, format, limits)?;
    let decoded = Instant::now();
    let image = resize_to_fit(image, master_size);
    let png = encode_png(&image)?;
    Ok(Master {
        png,
        width: image.width(),
        height: image.height(),
        decode_time: decoded - start,
        encode_time: decoded.elapsed(),
    })
}
