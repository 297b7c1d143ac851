//! `edgeseg probe`: the cameras and GPIO chips this machine has, with what a
//! board config needs to name them (paths, card names, formats and sizes,
//! chip labels, line names and who holds each line).

use crate::cli::ProbeArgs;
use crate::gpio::chardev::{list_chips, ChipListing};
use crate::source::v4l2::{is_capture, video_nodes};
use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;
use v4l::video::Capture;
use v4l::{Device, FourCC};

#[derive(Serialize)]
struct Camera {
    path: String,
    card: String,
    driver: String,
    bus: String,
    capabilities: String,
    capture: bool,
    formats: Vec<Format>,
    /// Why this node could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Format {
    fourcc: String,
    description: String,
    sizes: Vec<Size>,
}

#[derive(Serialize)]
struct Size {
    /// "640x480", or a range "32x32..2592x1944 step 16/8".
    size: String,
    /// Frame rates for discrete sizes, e.g. "30", "7.5", or a range.
    fps: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    cameras: Vec<Camera>,
    gpio_chips: Vec<ChipListing>,
}

fn fps_text(num: u32, den: u32) -> String {
    if num == 0 {
        return "?".into();
    }
    let fps = f64::from(den) / f64::from(num);
    if fps.fract() == 0.0 {
        format!("{fps:.0}")
    } else {
        format!("{fps:.2}")
    }
}

fn probe_camera(path: &str) -> Camera {
    let mut cam = Camera {
        path: path.to_string(),
        card: String::new(),
        driver: String::new(),
        bus: String::new(),
        capabilities: String::new(),
        capture: false,
        formats: Vec::new(),
        error: None,
    };
    let dev = match Device::with_path(path) {
        Ok(d) => d,
        Err(e) => {
            cam.error = Some(format!("cannot open: {e} (fix: add yourself to the video group)"));
            return cam;
        }
    };
    let caps = match dev.query_caps() {
        Ok(c) => c,
        Err(e) => {
            cam.error = Some(format!("not a V4L2 device: {e}"));
            return cam;
        }
    };
    cam.card = caps.card;
    cam.driver = caps.driver;
    cam.bus = caps.bus;
    cam.capabilities = format!("{}", caps.capabilities);
    cam.capture = is_capture(caps.capabilities);
    if !cam.capture {
        return cam;
    }
    // Controls are deliberately not listed: v4l's query_controls panics on newer kernels.
    match dev.enum_formats() {
        Ok(formats) => {
            for f in formats {
                cam.formats.push(Format { fourcc: f.fourcc.to_string(), description: f.description, sizes: sizes(&dev, f.fourcc) });
            }
        }
        Err(e) => cam.error = Some(format!("cannot list formats: {e}")),
    }
    cam
}

fn sizes(dev: &Device, fourcc: FourCC) -> Vec<Size> {
    use crate::source::v4l2::SizeRange;
    use v4l::frameinterval::FrameIntervalEnum;
    let mut out = Vec::new();
    for fs in dev.enum_framesizes(fourcc).unwrap_or_default() {
        let range = SizeRange::from(fs.size);
        let fps = match range {
            SizeRange::Discrete { width, height } => dev
                .enum_frameintervals(fourcc, width, height)
                .unwrap_or_default()
                .into_iter()
                .map(|fi| match fi.interval {
                    FrameIntervalEnum::Discrete(f) => fps_text(f.numerator, f.denominator),
                    // Slowest..fastest: the max interval is the min rate.
                    FrameIntervalEnum::Stepwise(s) => {
                        format!("{}..{}", fps_text(s.max.numerator, s.max.denominator), fps_text(s.min.numerator, s.min.denominator))
                    }
                })
                .collect(),
            SizeRange::Stepwise { .. } => Vec::new(),
        };
        out.push(Size { size: range.to_string(), fps });
    }
    out
}

pub fn run(args: &ProbeArgs) -> Result<ExitCode> {
    let report = Report { cameras: video_nodes().iter().map(|p| probe_camera(p)).collect(), gpio_chips: list_chips()? };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_text(&report);
    Ok(ExitCode::SUCCESS)
}

fn print_text(r: &Report) {
    println!("V4L2 cameras");
    if r.cameras.is_empty() {
        println!("  none found (no /dev/video* devices on this machine)");
    }
    for c in &r.cameras {
        let kind = if c.capture { "capture" } else { "no video capture" };
        println!("  {}  \"{}\"  driver {}  bus {}  ({kind})", c.path, c.card, c.driver, c.bus);
        if !c.capabilities.is_empty() {
            println!("    capabilities {}", c.capabilities);
        }
        if let Some(e) = &c.error {
            println!("    {e}");
        }
        for f in &c.formats {
            println!("    {} ({})", f.fourcc, f.description);
            for s in &f.sizes {
                if s.fps.is_empty() {
                    println!("      {}", s.size);
                } else {
                    println!("      {} @ {} fps", s.size, s.fps.join(", "));
                }
            }
        }
    }
    println!("GPIO chips");
    if r.gpio_chips.is_empty() {
        println!("  none found (no /dev/gpiochip* devices, or none readable; chip = \"sim\" simulates one)");
    }
    for chip in &r.gpio_chips {
        println!("  {} {} \"{}\" ({} lines)", chip.path, chip.name, chip.label, chip.lines.len());
        for l in &chip.lines {
            let name = if l.name.is_empty() { "-" } else { &l.name };
            let used = if l.used { format!("used by \"{}\"", l.consumer) } else { "free".into() };
            println!("    {:>4}  {:<20} {:<7} {}", l.offset, name, l.direction, used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_read_naturally() {
        assert_eq!(fps_text(1, 30), "30");
        assert_eq!(fps_text(2, 15), "7.50");
        assert_eq!(fps_text(0, 30), "?");
    }
}
