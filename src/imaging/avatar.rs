//! Avatar geometry and art: the square cut from a dropbox master, and the default picture
//! of each kind of resource.

use image::{DynamicImage, Rgba, RgbaImage};

use super::geometry::Rect;
use crate::meta::Kind;

/// The largest side a stored avatar gets.
pub const MAX_AVATAR_SIDE: u32 = 512;

/// The centred largest square inside `crop` (or inside the whole image), scaled down to at
/// most [`MAX_AVATAR_SIDE`].
pub fn square_avatar(image: &DynamicImage, crop: Option<Rect>) -> DynamicImage {
    let whole = Rect {
        x: 0,
        y: 0,
        w: image.width(),
        h: image.height(),
    };
    let area = crop
        .filter(|c| c.fits_in(image.width(), image.height()))
        .unwrap_or(whole);
    let square = area.centred_square();
    let cut = image.crop_imm(square.x, square.y, square.w, square.h);
    let side = square.w.min(MAX_AVATAR_SIDE);
    super::resize_exact(&cut, side, side)
}

/// A flat, recognisable default picture for a resource of `kind`, `size`×`size`, drawn
/// from normalised coordinates so that it is crisp at every size.
pub fn default_picture(kind: Kind, size: u32) -> DynamicImage {
    let (bg, fg) = match kind {
        Kind::Users => ([0x8e, 0x9a, 0xaf], [0xf4, 0xf6, 0xf8]),
        Kind::Apps => ([0x3b, 0x82, 0xf6], [0xe8, 0xf0, 0xfe]),
        Kind::Apis => ([0x10, 0xb9, 0x81], [0xe7, 0xf8, 0xf2]),
        Kind::Groups => ([0xf5, 0x9e, 0x0b], [0xfe, 0xf5, 0xe7]),
        Kind::Businesses => ([0x6d, 0x28, 0xd9], [0xf0, 0xe9, 0xfd]),
    };
    let s = size.max(1) as f32;
    let inside = |u: f32, v: f32| -> bool {
        let circle = |cx: f32, cy: f32, r: f32| (u - cx).powi(2) + (v - cy).powi(2) <= r * r;
        match kind {
            // Head and shoulders.
            Kind::Users => circle(0.5, 0.38, 0.17) || (circle(0.5, 0.95, 0.33) && v < 0.86),
            // A rounded tile with a window.
            Kind::Apps => {
                let tile = (0.22..=0.78).contains(&u) && (0.22..=0.78).contains(&v);
                let window = (0.32..=0.68).contains(&u) && (0.36..=0.68).contains(&v);
                tile && !window
            }
            // Angle brackets: < >
            Kind::Apis => {
                let left = (v - 0.5).abs() * 0.8 + 0.22 - u;
                let right = u - (0.78 - (v - 0.5).abs() * 0.8);
                (0.22..=0.78).contains(&v) && (left.abs() < 0.05 || right.abs() < 0.05)
            }
            // Three heads.
            Kind::Groups => {
                circle(0.3, 0.42, 0.11) || circle(0.7, 0.42, 0.11) || circle(0.5, 0.58, 0.13)
            }
            // A building with windows.
            Kind::Businesses => {
                let block = (0.28..=0.72).contains(&u) && (0.2..=0.82).contains(&v);
                let col = ((u - 0.28) / 0.11) as i32;
                let row = ((v - 0.2) / 0.1) as i32;
                let window = col % 2 == 1 && row % 2 == 1 && v < 0.72;
                block && !window
            }
        }
    };
    let img = RgbaImage::from_fn(size.max(1), size.max(1), |x, y| {
        let (u, v) = ((x as f32 + 0.5) / s, (y as f32 + 0.5) / s);
        let c = if inside(u, v) { fg } else { bg };
        Rgba([c[0], c[1], c[2], 255])
    });
    DynamicImage::ImageRgba8(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    #[test]
    fn the_square_is_centred_in_the_crop_and_capped() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(1000, 600));
        let sq = square_avatar(&img, None);
        assert_eq!((sq.width(), sq.height()), (512, 512));
        let small = square_avatar(
            &img,
            Some(Rect {
                x: 10,
                y: 10,
                w: 100,
                h: 40,
            }),
        );
        assert_eq!((small.width(), small.height()), (40, 40));
    }

    #[test]
    fn defaults_differ_by_kind_and_have_the_asked_size() {
        let a = default_picture(Kind::Users, 64);
        let b = default_picture(Kind::Apps, 64);
        assert_eq!((a.width(), a.height()), (64, 64));
        assert_ne!(a.to_rgba8().into_raw(), b.to_rgba8().into_raw());
        assert_eq!(default_picture(Kind::Groups, 1).width(), 1);
    }
}
