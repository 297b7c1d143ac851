"""Building blocks for scripts/gen_data.py (synthetic industrial defect data).

Modules:
    noise        band-limited / anisotropic noise fields and coordinate helpers
    textures     the five surface families (metal, fabric, wood, cast, pcb)
    defects      the four defect classes, each an instance with an exact mask
    photometric  global illumination / blur / noise effects (masks unchanged)
    polygons     outer-contour tracing of binary masks for YOLO-seg labels
"""
