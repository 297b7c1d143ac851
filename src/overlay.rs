//! Overlay images: the source frame with translucent class colours, contours,
//! component boxes with labels and a legend, drawn with embedded-graphics so
//! the same code draws on a device framebuffer or a dashboard frame.

use crate::mask::{ClassRegion, SegMap};
use embedded_graphics::{
    mono_font::{ascii::FONT_6X10, MonoTextStyle},
    pixelcolor::Rgb888,
    prelude::*,
    primitives::{PrimitiveStyle, Rectangle},
    text::{Baseline, Text},
};
use image::{DynamicImage, RgbImage};
use std::convert::Infallible;

/// Fill opacity of class colours over the image (0..=255).
const FILL_ALPHA: u16 = 110;
/// Opacity of the legend's and labels' dark backing.
const BACKING_ALPHA: u16 = 170;

/// Colour of class `id` (0 is background and never drawn). The first four are
/// chosen to stay distinct on metal, wood and PCB textures; later ones cycle hues.
pub fn class_color(id: u8) -> Rgb888 {
    const FIXED: [(u8, u8, u8); 8] = [
        (0, 0, 0),
        (255, 48, 48),
        (255, 196, 0),
        (224, 0, 255),
        (0, 200, 255),
        (64, 255, 96),
        (255, 128, 0),
        (128, 128, 255),
    ];
    let (r, g, b) = FIXED[id as usize % FIXED.len()];
    Rgb888::new(r, g, b)
}

/// An RGB image as an embedded-graphics target; every drawn pixel is blended
/// with `alpha`, so translucent fills need no special primitives.
pub struct BlendCanvas<'a> {
    img: &'a mut RgbImage,
    alpha: u16,
}

impl<'a> BlendCanvas<'a> {
    pub fn new(img: &'a mut RgbImage, alpha: u8) -> Self {
        BlendCanvas { img, alpha: alpha as u16 }
    }
}

impl OriginDimensions for BlendCanvas<'_> {
    fn size(&self) -> Size {
        Size::new(self.img.width(), self.img.height())
    }
}

impl DrawTarget for BlendCanvas<'_> {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        let (w, h) = self.img.dimensions();
        let a = self.alpha;
        for Pixel(p, c) in pixels {
            if p.x < 0 || p.y < 0 || p.x as u32 >= w || p.y as u32 >= h {
                continue;
            }
            let dst = self.img.get_pixel_mut(p.x as u32, p.y as u32);
            let blend = |d: u8, s: u8| ((s as u16 * a + d as u16 * (255 - a) + 127) / 255) as u8;
            dst.0 = [blend(dst.0[0], c.r()), blend(dst.0[1], c.g()), blend(dst.0[2], c.b())];
        }
        Ok(())
    }
}

/// Pixels on the edge of their class region (a 4-neighbour has another class).
fn is_contour(map: &SegMap, x: usize, y: usize) -> bool {
    let c = map.classes[y * map.width + x];
    let differs = |nx: usize, ny: usize| map.classes[ny * map.width + nx] != c;
    x == 0 || y == 0 || x + 1 == map.width || y + 1 == map.height || differs(x - 1, y) || differs(x + 1, y) || differs(x, y - 1) || differs(x, y + 1)
}

/// Short label text on the stack: drawing a frame's labels allocates nothing.
type Label = heapless::String<64>;

fn label(args: std::fmt::Arguments<'_>) -> Label {
    use std::fmt::Write;
    let mut l = Label::new();
    // A label longer than 64 bytes is cut short rather than failing.
    let _ = l.write_fmt(args);
    l
}

/// Draw the overlay for one frame. `regions` is `map.regions(...)`.
pub fn render(src: &DynamicImage, map: &SegMap, regions: &[ClassRegion], class_names: &[String]) -> RgbImage {
    let mut img = src.to_rgb8();
    draw(&mut img, map, regions, class_names);
    img
}

/// Copy `src` into `out` (reusing its buffer when the size matches) and draw on it.
pub fn render_into(src: &RgbImage, map: &SegMap, regions: &[ClassRegion], class_names: &[String], out: &mut RgbImage) {
    if out.dimensions() != src.dimensions() {
        *out = RgbImage::new(src.width(), src.height());
    }
    out.copy_from_slice(src);
    draw(out, map, regions, class_names);
}

fn draw(img: &mut RgbImage, map: &SegMap, regions: &[ClassRegion], class_names: &[String]) {
    let class_pixels = |contour: bool| {
        map.classes.iter().enumerate().filter_map(move |(i, &c)| {
            let (x, y) = (i % map.width, i / map.width);
            (c != 0 && is_contour(map, x, y) == contour).then(|| Pixel(Point::new(x as i32, y as i32), class_color(c)))
        })
    };
    // Drawing cannot fail: the canvas's error type is Infallible.
    let _ = BlendCanvas::new(img, FILL_ALPHA as u8).draw_iter(class_pixels(false));
    let _ = BlendCanvas::new(img, 255).draw_iter(class_pixels(true));

    let font = MonoTextStyle::new(&FONT_6X10, Rgb888::WHITE);
    for region in regions {
        let style = PrimitiveStyle::with_stroke(class_color(region.id), 1);
        for part in &region.components {
            let b = part.bbox;
            let rect = Rectangle::new(Point::new(b.x as i32 - 1, b.y as i32 - 1), Size::new(b.w + 2, b.h + 2));
            let _ = rect.into_styled(style).draw(&mut BlendCanvas::new(img, 255));
        }
        // One label per class, at its largest component.
        if let Some(big) = region.components.iter().max_by_key(|c| c.area) {
            let text = label(format_args!("{} {:.0}%", region.name, region.score * 100.0));
            let y = (big.bbox.y as i32 - 11).max(0);
            let backing = Rectangle::new(Point::new(big.bbox.x as i32 - 1, y), Size::new(text.len() as u32 * 6 + 2, 10));
            let _ = backing.into_styled(PrimitiveStyle::with_fill(class_color(region.id))).draw(&mut BlendCanvas::new(img, BACKING_ALPHA as u8));
            let _ = Text::with_baseline(&text, Point::new(big.bbox.x as i32, y), font, Baseline::Top).draw(&mut BlendCanvas::new(img, 255));
        }
    }
    draw_legend(img, regions, class_names);
}

/// Legend in the bottom-left corner: every class with its colour and, when
/// present in this frame, its pixel count.
fn draw_legend(img: &mut RgbImage, regions: &[ClassRegion], class_names: &[String]) {
    let row_text = |id: usize, name: &str| {
        let area = regions.iter().find(|r| r.id as usize == id).map_or(0, |r| r.area);
        if area > 0 {
            label(format_args!("{name} {area}px"))
        } else {
            label(format_args!("{name}"))
        }
    };
    let rows = || class_names.iter().enumerate().skip(1).take(crate::mask::MAX_CLASSES - 1);
    let width = rows().map(|(id, name)| row_text(id, name).len() as u32).max().unwrap_or(0) * 6 + 16;
    let height = rows().count() as u32 * 11 + 3;
    let top = img.height() as i32 - height as i32 - 2;
    let _ = Rectangle::new(Point::new(2, top), Size::new(width, height))
        .into_styled(PrimitiveStyle::with_fill(Rgb888::BLACK))
        .draw(&mut BlendCanvas::new(img, BACKING_ALPHA as u8));
    let font = MonoTextStyle::new(&FONT_6X10, Rgb888::WHITE);
    for (row, (id, name)) in rows().enumerate() {
        let y = top + 2 + row as i32 * 11;
        let _ = Rectangle::new(Point::new(5, y + 1), Size::new(7, 7))
            .into_styled(PrimitiveStyle::with_fill(class_color(id as u8)))
            .draw(&mut BlendCanvas::new(img, 255));
        let _ = Text::with_baseline(&row_text(id, name), Point::new(15, y), font, Baseline::Top).draw(&mut BlendCanvas::new(img, 255));
    }
}
