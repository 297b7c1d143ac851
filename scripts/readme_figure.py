#!/usr/bin/env python3
"""Compose docs/overlays.png for the README from edgeseg's own overlays.

    cargo run -- infer samples/images --model models/unet_defects.onnx --out out/
    python3 scripts/readme_figure.py --overlays out --out docs/overlays.png

Top row: the sample frames; bottom row: edgeseg's overlays of them.
"""

import argparse
from pathlib import Path

from PIL import Image

TILES = ["000000_pcb", "000006_wood_grain", "000010_brushed_metal", "000011_cast_surface"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--overlays", type=Path, default=Path("out"))
    p.add_argument("--samples", type=Path, default=Path("samples/images"))
    p.add_argument("--out", type=Path, default=Path("docs/overlays.png"))
    args = p.parse_args()
    gap, size = 6, 256
    sheet = Image.new("RGB", (len(TILES) * (size + gap) - gap, 2 * size + gap), (255, 255, 255))
    for i, name in enumerate(TILES):
        sheet.paste(Image.open(args.samples / f"{name}.png").convert("RGB"), (i * (size + gap), 0))
        sheet.paste(Image.open(args.overlays / f"{name}.overlay.png").convert("RGB"), (i * (size + gap), size + gap))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
