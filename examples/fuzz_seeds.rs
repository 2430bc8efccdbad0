//! Writes the seed corpus of the `upload` fuzz target: multipart bodies (boundary `B`) that
//! carry small images of every accepted format, one with EXIF orientation, and a few
//! hostile ones. Run: `cargo run --example fuzz_seeds` (writes fuzz/corpus/upload/).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

fn body(image: &[u8]) -> Vec<u8> {
    let mut b = b"--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n".to_vec();
    b.extend_from_slice(
        b"--B\r\nContent-Disposition: form-data; name=\"Profile\"; filename=\"a.jpg\"\r\n\r\n",
    );
    b.extend_from_slice(image);
    b.extend_from_slice(b"\r\n--B--\r\n");
    b
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/upload");
    std::fs::create_dir_all(&dir)?;
    let img = DynamicImage::ImageRgb8(RgbImage::from_fn(24, 16, |x, y| {
        Rgb([(x * 10) as u8, (y * 15) as u8, ((x ^ y) * 7) as u8])
    }));
    let formats = [
        ("jpeg", ImageFormat::Jpeg),
        ("png", ImageFormat::Png),
        ("gif", ImageFormat::Gif),
        ("bmp", ImageFormat::Bmp),
        ("webp", ImageFormat::WebP),
    ];
    for (name, format) in formats {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format)?;
        std::fs::write(dir.join(format!("{name}.multipart")), body(out.get_ref()))?;
    }
    std::fs::write(
        dir.join("svg.multipart"),
        body(b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
    )?;
    std::fs::write(
        dir.join("jpeg-garbage.multipart"),
        body(b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00garbage"),
    )?;
    std::fs::write(
        dir.join("no-file.multipart"),
        b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--B--\r\n",
    )?;
    println!("seed corpus written to {}", dir.display());
    Ok(())
}
