//! Decoding (bounded by the pixel limits, EXIF orientation applied), resizing and PNG
//! encoding, through the `image` crate.

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader};

use super::geometry::fit_within;
use super::{Format, ImageError, Limits};

/// Width and height from the image header, without decoding pixels.
pub fn header_dimensions(bytes: &[u8], format: Format) -> Result<(u32, u32), ImageError> {
    ImageReader::with_format(Cursor::new(bytes), format.image_format())
        .into_dimensions()
        .map_err(|_| ImageError::Undecodable)
}

fn decoder_limits(limits: Limits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    // The decoded frame (at most 4 bytes per pixel, 8 for 16-bit sources) plus working room.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(16 << 20));
    l
}

/// Decodes the image (the first frame of a GIF) within `limits`, and applies its EXIF
/// orientation.
pub fn decode(bytes: &[u8], format: Format, limits: Limits) -> Result<DynamicImage, ImageError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(decoder_limits(limits));
    let mut decoder = reader.into_decoder().map_err(|_| ImageError::Undecodable)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| ImageError::Undecodable)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Fits the image within `max`×`max`, keeping its aspect ratio, never upscaling.
pub fn resize_to_fit(image: DynamicImage, max: u32) -> DynamicImage {
    let (w, h) = fit_within(image.width(), image.height(), max);
    if (w, h) == (image.width(), image.height()) {
        return image;
    }
    shrink(&image, w, h)
}

/// Downscaling: an area average (every source pixel counts once, so no aliasing) when the
/// image shrinks by half or more, which is also several times faster than a convolution;
/// a triangle filter for gentler reductions, where the area average would alias.
fn shrink(image: &DynamicImage, width: u32, height: u32) -> DynamicImage {
    if width * 2 <= image.width() && height * 2 <= image.height() {
        image.thumbnail_exact(width, height)
    } else {
        image.resize_exact(width, height, FilterType::Triangle)
    }
}

/// Scales to exactly `width`×`height` (up or down) with a filter suited to the direction.
pub fn resize_exact(image: &DynamicImage, width: u32, height: u32) -> DynamicImage {
    if (width, height) == (image.width(), image.height()) {
        return image.clone();
    }
    if width > image.width() {
        image.resize_exact(width, height, FilterType::CatmullRom)
    } else {
        shrink(image, width, height)
    }
}

/// 8-bit PNG, RGB or RGBA as the image needs, with no metadata chunks.
pub fn encode_png(image: &DynamicImage) -> Result<Vec<u8>, ImageError> {
    let image = if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.to_rgb8())
    };
    let mut out = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive);
    image
        .write_with_encoder(encoder)
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    Ok(out)
}
