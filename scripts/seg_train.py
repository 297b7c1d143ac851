"""The training loop shared by the semantic trainers (train_unet.py, train_deeplab.py).

One recipe for every semantic model so that their numbers compare: random crops with
flips/rot90, most of them centred on a defect pixel (defects cover ~1-2 % of the area);
AdamW + OneCycle; cross-entropy + soft Dice over the defect classes; validation mIoU
(defect classes) every N steps; the best checkpoint wins. Export is ONNX opset 17 with
edgeseg metadata (onnx_meta.py).
"""

import json
import platform
import time
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F

from dataset import CLASS_NAMES, load_split, normalize
from metrics import confusion, iou_report
from onnx_meta import set_metadata, sha256, store_weights_fp16


def add_training_args(p, steps: int, crop: int, lr: float, val_every: int) -> None:
    """Options every semantic trainer has, with that trainer's defaults."""
    p.add_argument("--data", type=Path, default=Path("data/defects"))
    p.add_argument("--steps", type=int, default=steps, help="optimizer steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=crop, help="training crop size (multiple of 32)")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--val-every", type=int, default=val_every)
    p.add_argument("--val-limit", type=int, default=None, help="validate on the first N val images")
    p.add_argument("--train-limit", type=int, default=None, help="train on the first N images (smoke tests)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="exported input size (square)")
    p.add_argument("--fp32-weights", action="store_true", help="store weights as float32 (2x larger file)")
    p.add_argument("--checkpoint", type=Path, help="also save the best PyTorch weights here (.pt)")
    p.add_argument("--init", type=Path, help="start from these PyTorch weights (.pt) instead of random init")


def sample_batch(rng, images, masks, batch, crop, defect_bias=0.7):
    """Random crops with flips/rot90; most crops are centred on a defect pixel.

    `images` is N x H x W (gray) or N x H x W x 3 (rgb); crops keep that layout.
    """
    n, h, w = images.shape[:3]
    xs = np.empty((batch, crop, crop) + images.shape[3:], np.uint8)
    ys = np.empty((batch, crop, crop), np.int64)
    for b in range(batch):
        i = rng.integers(n)
        cy, cx = rng.integers(h), rng.integers(w)
        if rng.random() < defect_bias:
            fg = np.flatnonzero(masks[i])
            if fg.size:
                cy, cx = divmod(int(fg[rng.integers(fg.size)]), w)
        y0 = int(np.clip(cy - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, h - crop))
        x0 = int(np.clip(cx - crop // 2 + rng.integers(-crop // 4, crop // 4 + 1), 0, w - crop))
        img = images[i, y0:y0 + crop, x0:x0 + crop]
        msk = masks[i, y0:y0 + crop, x0:x0 + crop]
        k = int(rng.integers(4))
        img, msk = np.rot90(img, k), np.rot90(msk, k)
        if rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        xs[b], ys[b] = img, msk
    return xs, ys


def dice_loss(logits, target, num_classes):
    """Soft Dice over the defect classes only (background would dominate)."""
    probs = logits.softmax(1)[:, 1:]
    onehot = F.one_hot(target, num_classes).permute(0, 3, 1, 2).float()[:, 1:]
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


@torch.no_grad()
def predict(model, x_norm, batch=8):
    out = []
    for i in range(0, len(x_norm), batch):
        x = torch.from_numpy(x_norm[i:i + batch]).to(memory_format=torch.channels_last)
        out.append(model(x).argmax(1).numpy().astype(np.uint8))
    return np.concatenate(out)


def pixel_stats(images: np.ndarray) -> tuple[list, list]:
    """Per-channel mean and std of the training pixels on the 0..1 scale, rounded so
    that the metadata is short and exact."""
    x = images if images.ndim == 4 else images[..., None]
    x = x.reshape(-1, x.shape[-1]).astype(np.float64)
    mean = [round(float(v) / 255, 4) for v in x.mean(0)]
    std = [round(float(v) / 255, 4) for v in x.std(0)]
    return mean, std


def train(model, args, train_x, train_y, val_x, val_y, mean, std):
    """Run the recipe; returns (best val mIoU, best state dict, best step, seconds)."""
    val_norm = normalize(val_x, mean, std)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    rng = np.random.default_rng(args.seed)
    best = (-1.0, None, 0)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        model.train()
        xb, yb = sample_batch(rng, train_x, train_y, args.batch, args.crop)
        x = torch.from_numpy(normalize(xb, mean, std)).to(memory_format=torch.channels_last)
        y = torch.from_numpy(yb)
        logits = model(x)
        loss = F.cross_entropy(logits, y) + dice_loss(logits, y, len(CLASS_NAMES))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 0:
            print(f"step {step}/{args.steps} loss {loss.item():.4f} "
                  f"{(time.time() - t0) / step:.2f}s/step", flush=True)
        if step % args.val_every == 0 or step == args.steps:
            model.eval()
            report = iou_report(confusion(predict(model, val_norm), val_y, len(CLASS_NAMES)), CLASS_NAMES)
            print(f"step {step} val mIoU(defects) {report['miou_defects']:.4f} "
                  f"per-class {[round(v, 3) for v in report['iou'].values()]}", flush=True)
            if report["miou_defects"] > best[0]:
                best = (report["miou_defects"], {k: v.clone() for k, v in model.state_dict().items()}, step)
    return best[0], best[1], best[2], time.time() - t0


def gflops(model, channels: int, size: int) -> float:
    """Forward FLOPs of one frame (2 per multiply-add), as torch.utils.flop_counter counts them."""
    from torch.utils.flop_counter import FlopCounterMode
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, channels, size, size))
    return round(counter.get_total_flops() / 1e9, 2)


def dataset_summary(root: Path) -> dict:
    """The generator's scalar settings (seed, counts, version), without per-image lists."""
    path = root / "meta.json"
    if not path.exists():
        return {}
    def scalar(v):
        return not isinstance(v, (list, dict)) or (isinstance(v, dict) and not any(isinstance(x, list) for x in v.values()))
    return {k: v for k, v in json.loads(path.read_text()).items() if scalar(v)}


def export_onnx(model, path: Path, size: int, channels: int, meta: dict, fp16_weights: bool):
    model.eval()
    dummy = torch.zeros(1, channels, size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (dummy,), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"], do_constant_folding=True)
    proto = onnx.load(str(path))
    if fp16_weights:
        store_weights_fp16(proto)
    set_metadata(proto, meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def train_and_export(args, make_model, *, name: str, architecture: str, color: str) -> None:
    """The whole run of a semantic trainer: data, training, ONNX export with edgeseg
    metadata, and the model card (NAME.card.json beside the model)."""
    channels = {"gray": 1, "rgb": 3}[color]
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train_x, train_y = load_split(args.data, "train", color, args.train_limit)
    val_x, val_y = load_split(args.data, "val", color, args.val_limit)
    mean, std = pixel_stats(train_x)
    print(f"{name}: train {train_x.shape}, val {val_x.shape}, mean {mean}, std {std}", flush=True)

    # channels_last lets oneDNN pick its fast CPU convolution kernels (~3x here).
    model = make_model().to(memory_format=torch.channels_last)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"initialised from {args.init}", flush=True)
    best_miou, best_state, best_step, train_seconds = train(model, args, train_x, train_y, val_x, val_y, mean, std)
    model.load_state_dict(best_state)
    if args.checkpoint:
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(best_state, args.checkpoint)
    model = model.to(memory_format=torch.contiguous_format)
    meta = {
        "edgeseg.schema": "1",
        "edgeseg.task": "semantic",
        "edgeseg.classes": CLASS_NAMES,
        "edgeseg.input_layout": "NCHW",
        "edgeseg.input_size": f"{args.size}x{args.size}",
        "edgeseg.color": color,
        "edgeseg.mean": mean,
        "edgeseg.std": std,
        "edgeseg.resize": "stretch",
        "edgeseg.output_activation": "softmax",
        "edgeseg.name": name,
        "edgeseg.version": "1",
        "edgeseg.trained_on": "edgeseg synthetic defects (scripts/gen_data.py)",
    }
    export_onnx(model, args.out, args.size, channels, meta, fp16_weights=not args.fp32_weights)
    card = {
        "name": name,
        "file": args.out.name,
        "architecture": architecture,
        "task": "semantic",
        "classes": CLASS_NAMES,
        "input": {"size": [args.size, args.size], "color": color, "layout": "NCHW", "mean": mean, "std": std},
        "parameters": count_parameters(model),
        "gflops": gflops(model, channels, args.size),
        "weights_storage": "float32" if args.fp32_weights else "float16 initializers + Cast (computes in float32)",
        "data": {"root": str(args.data), "train_images": len(train_x), "val_images": len(val_x),
                 "generator": dataset_summary(args.data)},
        "training": {"init": str(args.init) if args.init else "random", "steps": args.steps, "batch": args.batch,
                     "crop": args.crop, "lr": args.lr, "optimizer": "AdamW + OneCycle",
                     "loss": "cross-entropy + soft Dice (defect classes)",
                     "best_step": best_step, "val_miou_defects": round(best_miou, 4),
                     "seconds": round(train_seconds, 1), "threads": args.threads,
                     "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "seed": args.seed},
        "file_bytes": args.out.stat().st_size,
        "sha256": sha256(args.out),
    }
    card_path = args.out.with_suffix(".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.out} ({card['file_bytes']} bytes) and {card_path}; best val mIoU {best_miou:.4f} at step {best_step}")
