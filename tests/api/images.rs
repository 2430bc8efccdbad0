//! Test images made in code, in every format pixdrop reads, and hostile ones.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageEncoder, ImageFormat, Rgb, RgbImage};

/// A photo-like gradient with some texture, `w`×`h`.
pub fn photo(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let r = (x * 255 / w.max(1)) as u8;
        let g = (y * 255 / h.max(1)) as u8;
        let b = ((x ^ y) & 0xff) as u8;
        Rgb([r, g, b])
    }))
}

pub fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let img = if format == ImageFormat::Jpeg || format == ImageFormat::Bmp {
        DynamicImage::ImageRgb8(img.to_rgb8())
    } else {
        img.clone()
    };
    img.write_to(&mut out, format).expect("encode test image");
    out.into_inner()
}

pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    encode(&photo(w, h), ImageFormat::Jpeg)
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    encode(&photo(w, h), ImageFormat::Png)
}

/// The text we hide in EXIF, to check that it never reaches a stored picture.
pub const EXIF_SECRET: &str = "SECRET-EXIF-DESCRIPTION";

/// A big-endian TIFF/EXIF block with ImageDescription and Orientation.
fn exif(orientation: u16) -> Vec<u8> {
    let text = format!("{EXIF_SECRET}\0");
    let mut e = Vec::new();
    e.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
    e.extend_from_slice(&2u16.to_be_bytes());
    // 0x010E ImageDescription, ASCII, count, offset 38.
    e.extend_from_slice(&0x010Eu16.to_be_bytes());
    e.extend_from_slice(&2u16.to_be_bytes());
    e.extend_from_slice(&(text.len() as u32).to_be_bytes());
    e.extend_from_slice(&38u32.to_be_bytes());
    // 0x0112 Orientation, SHORT, 1, value.
    e.extend_from_slice(&0x0112u16.to_be_bytes());
    e.extend_from_slice(&3u16.to_be_bytes());
    e.extend_from_slice(&1u32.to_be_bytes());
    e.extend_from_slice(&orientation.to_be_bytes());
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&0u32.to_be_bytes());
    e.extend_from_slice(text.as_bytes());
    e
}

/// A `w`×`h` JPEG whose EXIF says to rotate it by `orientation`.
pub fn jpeg_with_exif(w: u32, h: u32, orientation: u16) -> Vec<u8> {
    let img = photo(w, h).to_rgb8();
    let mut out = Vec::new();
    let mut enc = JpegEncoder::new_with_quality(&mut out, 90);
    enc.set_exif_metadata(exif(orientation)).expect("exif");
    enc.write_image(&img, w, h, image::ExtendedColorType::Rgb8)
        .expect("jpeg");
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A tiny PNG whose header claims `w`×`h` pixels, with a few bytes of (bogus) data.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let mut idat = b"IDAT".to_vec();
    idat.extend_from_slice(&[0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1]);
    out.extend_from_slice(&9u32.to_be_bytes());
    out.extend_from_slice(&idat);
    out.extend_from_slice(&crc32(&idat).to_be_bytes());
    out
}

/// Decodes a PNG answer.
pub fn decode_png(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory_with_format(bytes, ImageFormat::Png).expect("a PNG answer")
}
/// A left half red, right half blue image.
pub fn two_colours(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    }));
    encode(&img, ImageFormat::Png)
}
