//! V4L2 format negotiation as a pure function over what a device reports,
//! so the choice is tested without a camera.

use crate::frame::PixelFormat;

/// `source.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatChoice {
    /// MJPEG, then YUYV, GREY, RGB24: compressed frames cost the least USB bandwidth and copying.
    Auto,
    Mjpeg,
    Yuyv,
    Grey,
    Rgb24,
}

impl std::str::FromStr for FormatChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => FormatChoice::Auto,
            "mjpeg" | "mjpg" => FormatChoice::Mjpeg,
            "yuyv" => FormatChoice::Yuyv,
            "grey" | "gray" => FormatChoice::Grey,
            "rgb24" | "rgb" => FormatChoice::Rgb24,
            _ => anyhow::bail!("key source.format = \"{s}\" is not a format edgeseg reads; fix: use auto, mjpeg, yuyv, grey or rgb24"),
        })
    }
}

/// Auto's order of preference.
const PREFERENCE: [PixelFormat; 4] = [PixelFormat::Mjpeg, PixelFormat::Yuyv, PixelFormat::Gray8, PixelFormat::Rgb24];

impl FormatChoice {
    fn accepts(self, f: PixelFormat) -> bool {
        match self {
            FormatChoice::Auto => true,
            FormatChoice::Mjpeg => f == PixelFormat::Mjpeg,
            FormatChoice::Yuyv => f == PixelFormat::Yuyv,
            FormatChoice::Grey => f == PixelFormat::Gray8,
            FormatChoice::Rgb24 => f == PixelFormat::Rgb24,
        }
    }
}

/// The pixel format behind a V4L2 fourcc, for the ones edgeseg decodes.
pub fn pixel_format(fourcc: [u8; 4]) -> Option<PixelFormat> {
    match &fourcc {
        b"MJPG" | b"JPEG" => Some(PixelFormat::Mjpeg),
        b"YUYV" => Some(PixelFormat::Yuyv),
        b"GREY" => Some(PixelFormat::Gray8),
        b"RGB3" => Some(PixelFormat::Rgb24),
        _ => None,
    }
}

/// Frame sizes a format offers, as VIDIOC_ENUM_FRAMESIZES reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeRange {
    Discrete { width: u32, height: u32 },
    /// Continuous ranges are steps of 1.
    Stepwise { min_width: u32, max_width: u32, step_width: u32, min_height: u32, max_height: u32, step_height: u32 },
}

impl std::fmt::Display for SizeRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            SizeRange::Discrete { width, height } => write!(f, "{width}x{height}"),
            SizeRange::Stepwise { min_width, max_width, step_width, min_height, max_height, step_height } => {
                write!(f, "{min_width}x{min_height}..{max_width}x{max_height} step {step_width}/{step_height}")
            }
        }
    }
}

/// The value in `min..=max` on the step grid closest to `v`.
fn snap(v: u32, min: u32, max: u32, step: u32) -> u32 {
    let step = step.max(1); // a zero step would be a driver bug; treat as continuous
    let max = max.max(min);
    let v = v.clamp(min, max);
    let k = (u64::from(v - min) + u64::from(step) / 2) / u64::from(step);
    let c = u64::from(min) + k * u64::from(step);
    // Rounding up may step past max: take the grid point below.
    let c = if c > u64::from(max) { c - u64::from(step) } else { c };
    c as u32 // c <= max, a u32
}

impl SizeRange {
    /// The size in this range closest to `w`x`h`.
    fn closest(&self, w: u32, h: u32) -> (u32, u32) {
        match *self {
            SizeRange::Discrete { width, height } => (width, height),
            SizeRange::Stepwise { min_width, max_width, step_width, min_height, max_height, step_height } => {
                (snap(w, min_width, max_width, step_width), snap(h, min_height, max_height, step_height))
            }
        }
    }
}

/// One format a device offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatOffer {
    pub fourcc: [u8; 4],
    pub sizes: Vec<SizeRange>,
}

/// What to ask the driver for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub fourcc: [u8; 4],
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
}

impl Negotiated {
    /// What the driver settled on, if it is a format edgeseg reads.
    pub fn from_device(fourcc: [u8; 4], width: u32, height: u32) -> Option<Negotiated> {
        Some(Negotiated { fourcc, format: pixel_format(fourcc)?, width, height })
    }
}

impl std::fmt::Display for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}x{}", String::from_utf8_lossy(&self.fourcc), self.width, self.height)
    }
}

/// A format listing no sizes is still usable (the driver adjusts what we ask for), but only when no
/// format with known sizes exists.
const UNKNOWN_SIZE_PENALTY: u64 = 1 << 40;

/// Pick format and size: the closest size to `width`x`height` (sum of the width and height
/// differences; ties go to the larger size), and among formats equally close, the preferred one.
/// So `auto` takes MJPEG at the requested size, else YUYV, GREY, RGB24 at it, else the closest.
pub fn negotiate(offers: &[FormatOffer], choice: FormatChoice, width: u32, height: u32) -> Result<Negotiated, String> {
    // Smallest wins: size distance, then format preference, then the larger size.
    type Rank = (u64, usize, std::cmp::Reverse<u64>);
    let mut best: Option<(Rank, Negotiated)> = None;
    for offer in offers {
        let Some(format) = pixel_format(offer.fourcc) else { continue };
        if !choice.accepts(format) {
            continue;
        }
        let rank = PREFERENCE.iter().position(|p| *p == format).unwrap_or(PREFERENCE.len());
        let mut candidates: Vec<((u32, u32), u64)> = offer
            .sizes
            .iter()
            .map(|s| {
                let (w, h) = s.closest(width, height);
                ((w, h), u64::from(w.abs_diff(width)) + u64::from(h.abs_diff(height)))
            })
            .collect();
        if candidates.is_empty() {
            candidates.push(((width, height), UNKNOWN_SIZE_PENALTY));
        }
        for ((w, h), dist) in candidates {
            let key = (dist, rank, std::cmp::Reverse(u64::from(w) * u64::from(h)));
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, Negotiated { fourcc: offer.fourcc, format, width: w, height: h }));
            }
        }
    }
    best.map(|(_, n)| n).ok_or_else(|| {
        let offered: Vec<String> = offers.iter().map(|o| String::from_utf8_lossy(&o.fourcc).into_owned()).collect();
        let offered = if offered.is_empty() { "nothing".to_string() } else { offered.join(", ") };
        match choice {
            FormatChoice::Auto => format!("the camera offers {offered}, none of MJPG, YUYV, GREY, RGB3; fix: use a camera (or driver mode) with one of those"),
            _ => format!("the camera does not offer {choice:?} (it offers {offered}); fix: set format = \"auto\" or one it offers"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(width: u32, height: u32) -> SizeRange {
        SizeRange::Discrete { width, height }
    }

    fn offer(fourcc: &[u8; 4], sizes: &[SizeRange]) -> FormatOffer {
        FormatOffer { fourcc: *fourcc, sizes: sizes.to_vec() }
    }

    /// A typical UVC webcam: YUYV listed first, MJPEG with more sizes.
    fn webcam() -> Vec<FormatOffer> {
        vec![
            offer(b"YUYV", &[d(640, 480), d(320, 240), d(1280, 720)]),
            offer(b"MJPG", &[d(1920, 1080), d(1280, 720), d(640, 480)]),
        ]
    }

    #[test]
    fn auto_prefers_mjpeg_at_the_requested_size() {
        let n = negotiate(&webcam(), FormatChoice::Auto, 640, 480).unwrap();
        assert_eq!((n.format, n.width, n.height), (PixelFormat::Mjpeg, 640, 480));
        assert_eq!(&n.fourcc, b"MJPG");
    }

    #[test]
    fn auto_takes_another_format_that_has_the_exact_size() {
        let n = negotiate(&webcam(), FormatChoice::Auto, 320, 240).unwrap();
        assert_eq!((n.format, n.width, n.height), (PixelFormat::Yuyv, 320, 240));
    }

    #[test]
    fn explicit_format_takes_its_closest_size() {
        let n = negotiate(&webcam(), FormatChoice::Yuyv, 1920, 1080).unwrap();
        assert_eq!((n.format, n.width, n.height), (PixelFormat::Yuyv, 1280, 720));
        let n = negotiate(&webcam(), FormatChoice::Mjpeg, 800, 600).unwrap();
        assert_eq!((n.width, n.height), (640, 480));
    }

    #[test]
    fn grey_and_rgb24_are_recognised() {
        let cam = vec![offer(b"GREY", &[d(1440, 1080)]), offer(b"RGB3", &[d(1440, 1080)]), offer(b"Y16 ", &[d(1440, 1080)])];
        assert_eq!(negotiate(&cam, FormatChoice::Auto, 1440, 1080).unwrap().format, PixelFormat::Gray8);
        assert_eq!(negotiate(&cam, FormatChoice::Rgb24, 640, 480).unwrap().format, PixelFormat::Rgb24);
    }

    #[test]
    fn stepwise_sizes_snap_to_the_grid() {
        let cam = vec![offer(
            b"YUYV",
            &[SizeRange::Stepwise { min_width: 32, max_width: 2592, step_width: 16, min_height: 32, max_height: 1944, step_height: 8 }],
        )];
        let n = negotiate(&cam, FormatChoice::Auto, 650, 483).unwrap();
        assert_eq!((n.width, n.height), (656, 480));
        let n = negotiate(&cam, FormatChoice::Auto, 9000, 10).unwrap();
        assert_eq!((n.width, n.height), (2592, 32));
        // A zero step (a driver bug) behaves as continuous instead of panicking.
        let odd = vec![offer(b"GREY", &[SizeRange::Stepwise { min_width: 10, max_width: 100, step_width: 0, min_height: 10, max_height: 100, step_height: 0 }])];
        assert_eq!(negotiate(&odd, FormatChoice::Auto, 55, 56).unwrap().width, 55);
    }

    #[test]
    fn snap_never_leaves_the_range() {
        assert_eq!(snap(99, 0, 100, 30), 90);
        assert_eq!(snap(100, 0, 100, 30), 90);
        assert_eq!(snap(5, 10, 20, 3), 10);
        assert_eq!(snap(u32::MAX, 0, u32::MAX, 7), u32::MAX - (u32::MAX % 7));
    }

    #[test]
    fn formats_without_sizes_are_a_last_resort() {
        let cam = vec![offer(b"RGB3", &[]), offer(b"GREY", &[d(320, 240)])];
        assert_eq!(negotiate(&cam, FormatChoice::Auto, 640, 480).unwrap().format, PixelFormat::Gray8);
        let n = negotiate(&cam, FormatChoice::Rgb24, 640, 480).unwrap();
        assert_eq!((n.width, n.height), (640, 480));
    }

    #[test]
    fn unsupported_formats_explain_what_is_offered() {
        let e = negotiate(&webcam(), FormatChoice::Grey, 640, 480).unwrap_err();
        assert!(e.contains("YUYV, MJPG") && e.contains("fix"), "{e}");
        let e = negotiate(&[offer(b"H264", &[d(640, 480)])], FormatChoice::Auto, 640, 480).unwrap_err();
        assert!(e.contains("H264"), "{e}");
        assert!(negotiate(&[], FormatChoice::Auto, 640, 480).unwrap_err().contains("nothing"));
    }

    #[test]
    fn format_choice_parses_config_values() {
        assert_eq!("MJPEG".parse::<FormatChoice>().unwrap(), FormatChoice::Mjpeg);
        assert_eq!("grey".parse::<FormatChoice>().unwrap(), FormatChoice::Grey);
        let e = "h264".parse::<FormatChoice>().unwrap_err().to_string();
        assert!(e.contains("source.format") && e.contains("fix"), "{e}");
    }
}
