//! The format of an upload, decided from its first bytes only (never from a file name or a
//! declared content type).

/// The formats pixdrop accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Gif,
    Bmp,
    WebP,
}

impl Format {
    pub fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::Gif => image::ImageFormat::Gif,
            Format::Bmp => image::ImageFormat::Bmp,
            Format::WebP => image::ImageFormat::WebP,
        }
    }
}

/// The accepted format the bytes start with; anything else (SVG, HTML, TIFF, …) is
/// [`super::ImageError::Unsupported`].
pub fn sniff(bytes: &[u8]) -> Result<Format, super::ImageError> {
    match image::guess_format(bytes) {
        Ok(image::ImageFormat::Jpeg) => Ok(Format::Jpeg),
        Ok(image::ImageFormat::Png) => Ok(Format::Png),
        Ok(image::ImageFormat::Gif) => Ok(Format::Gif),
        Ok(image::ImageFormat::Bmp) => Ok(Format::Bmp),
        Ok(image::ImageFormat::WebP) => Ok(Format::WebP),
        _ => Err(super::ImageError::Unsupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_decide_and_everything_else_is_refused() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Ok(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Ok(Format::Png));
        assert_eq!(sniff(b"GIF89a..."), Ok(Format::Gif));
        assert_eq!(sniff(b"BM\0\0\0\0"), Ok(Format::Bmp));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(Format::WebP));
        for bad in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'/>"[..],
            b"<!DOCTYPE html><html>",
            b"II*\0tiff",
            b"",
            b"\x00\x01\x02",
        ] {
            assert_eq!(sniff(bad), Err(super::super::ImageError::Unsupported));
        }
    }
}
