//! Geometry of fitting and cropping, in whole pixels.

/// The size of a `width`×`height` image fitted within `max`×`max`, keeping the aspect ratio
/// and never upscaling. Both sides stay at least 1.
pub fn fit_within(width: u32, height: u32, max: u32) -> (u32, u32) {
    if width <= max && height <= max {
        return (width, height);
    }
    let (w, h) = (u64::from(width), u64::from(height));
    let max64 = u64::from(max);
    let (nw, nh) = if w >= h {
        (max64, (h * max64 + w / 2) / w)
    } else {
        ((w * max64 + h / 2) / h, max64)
    };
    (clamp(nw), clamp(nh))
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v.max(1)).unwrap_or(u32::MAX)
}

/// A rectangle in pixel space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    /// Whether the rectangle is non-empty and lies inside a `width`×`height` image.
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        self.w > 0
            && self.h > 0
            && u64::from(self.x) + u64::from(self.w) <= u64::from(width)
            && u64::from(self.y) + u64::from(self.h) <= u64::from(height)
    }

    /// The largest square centred inside this rectangle.
    pub fn centred_square(&self) -> Rect {
        let side = self.w.min(self.h);
        Rect {
            x: self.x + (self.w - side) / 2,
            y: self.y + (self.h - side) / 2,
            w: side,
            h: side,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fitting_examples() {
        assert_eq!(fit_within(1024, 512, 512), (512, 256));
        assert_eq!(fit_within(100, 200, 512), (100, 200));
        assert_eq!(fit_within(5000, 1, 512), (512, 1));
        assert_eq!(fit_within(600, 600, 512), (512, 512));
    }

    proptest! {
        #[test]
        fn fit_never_upscales_and_stays_within(w in 1u32..100_000, h in 1u32..100_000, max in 1u32..4096) {
            let (nw, nh) = fit_within(w, h, max);
            prop_assert!(nw >= 1 && nh >= 1);
            prop_assert!(nw <= max && nh <= max);
            prop_assert!(nw <= w && nh <= h);
            // The longer side reaches the bound when the image was larger than it.
            if w > max || h > max {
                prop_assert_eq!(nw.max(nh), max);
            }
        }

        #[test]
        fn centred_square_is_inside_and_maximal(x in 0u32..1000, y in 0u32..1000, w in 1u32..1000, h in 1u32..1000) {
            let r = Rect { x, y, w, h };
            let s = r.centred_square();
            prop_assert_eq!(s.w, s.h);
            prop_assert_eq!(s.w, w.min(h));
            prop_assert!(s.x >= x && s.y >= y);
            prop_assert!(s.x + s.w <= x + w && s.y + s.h <= y + h);
        }

        #[test]
        fn fits_in_matches_bounds(x in 0u32..600, y in 0u32..600, w in 0u32..600, h in 0u32..600) {
            let r = Rect { x, y, w, h };
            prop_assert_eq!(r.fits_in(512, 300), w > 0 && h > 0 && x + w <= 512 && y + h <= 300);
        }
    }
}
