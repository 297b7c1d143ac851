//! `edgeseg probe`: the cameras and GPIO chips this machine has, with what a
//! board config needs to name them (paths, card names, formats and sizes,
//! chip labels, line names and who holds each line).

use crate::cli::ProbeArgs;
use crate::gpio::chardev::{list_chips, ChipListing};
use crate::source::v4l2::device::{Device, Interval};
use crate::source::v4l2::{video_nodes, SizeRange};
use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;

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
    let dev = match Device::open(path) {
        Ok(d) => d,
        Err(e) => {
            cam.error = Some(format!("cannot open: {e} (fix: add yourself to the video group)"));
            return cam;
        }
    };
    let caps = match dev.capabilities() {
        Ok(c) => c,
        Err(e) => {
            cam.error = Some(format!("not a V4L2 device: {e}"));
            return cam;
        }
    };
    cam.capabilities = caps.flag_names();
    cam.capture = caps.is_capture();
    cam.card = caps.card;
    cam.driver = caps.driver;
    cam.bus = caps.bus;
    if !cam.capture {
        return cam;
    }
    match dev.formats() {
        Ok(formats) => {
            for f in formats {
                let fourcc = String::from_utf8_lossy(&f.fourcc).into_owned();
                cam.formats.push(Format { fourcc, description: f.description, sizes: sizes(&dev, f.fourcc) });
            }
        }
        Err(e) => cam.error = Some(format!("cannot list formats: {e}")),
    }
    cam
}

fn sizes(dev: &Device, fourcc: [u8; 4]) -> Vec<Size> {
    let mut out = Vec::new();
    for range in dev.frame_sizes(fourcc).unwrap_or_default() {
        let fps = match range {
            SizeRange::Discrete { width, height } => dev
                .frame_intervals(fourcc, width, height)
                .unwrap_or_default()
                .into_iter()
                .map(|interval| match interval {
                    Interval::Discrete(f) => fps_text(f.numerator, f.denominator),
                    // Slowest..fastest: the max interval is the min rate.
                    Interval::Stepwise { min, max, .. } => format!("{}..{}", fps_text(max.numerator, max.denominator), fps_text(min.numerator, min.denominator)),
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
