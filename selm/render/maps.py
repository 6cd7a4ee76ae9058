"""The maps inside the model, as pictures: heat maps through a colormap (`colorize`), CLEVER's
token assignments (`hit_map_image`), and the row of maps of one second (`frame_maps`: frame,
mask, CLEVER layers, DAM attention, BCSM channel norms) on colour scales shared across seconds,
audio conditions and checkpoints (`map_scales`), with their key (`map_legend`: token colours,
colour bars with units). Images are (H, W, 3) uint8 RGB; sizes are (W, H).
"""

from __future__ import annotations

import math

import cv2
import matplotlib
import numpy as np

from selm.render.paint import overlay, resize_image

TOKEN_COLORS = np.array(matplotlib.colormaps["tab10"].colors[:10]) * 255  # (10, 3) CLEVER tokens


def colorize(
    map2d: np.ndarray,
    size: tuple[int, int] | None = None,
    cmap: str = "inferno",
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    smooth: bool = False,
) -> np.ndarray:
    """A 2-D map (h, w) -> (H, W, 3) uint8 through a matplotlib colormap.

    Values are scaled from [vmin, vmax] (default: the map's own range) to [0, 1]; pass one
    shared (vmin, vmax) to compare maps by colour. Resized to size = (W, H) as cells (nearest:
    each of the h x w grid's values is one flat block), or bilinearly with smooth=True. A
    constant map gets the colormap's lowest colour.
    """
    values = np.asarray(map2d, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"colorize expects a 2-D map, got shape {values.shape}")
    finite = values[np.isfinite(values)]
    low = float(vmin if vmin is not None else (finite.min() if finite.size else 0.0))
    high = float(vmax if vmax is not None else (finite.max() if finite.size else 0.0))
    span = high - low
    scaled = (values - low) / span if span > 0 else np.zeros_like(values)
    scaled = np.clip(np.nan_to_num(scaled, nan=0.0), 0.0, 1.0).astype(np.float32)
    scaled = resize_image(scaled, size, nearest=not smooth)
    return matplotlib.colormaps[cmap](scaled, bytes=True)[..., :3].copy()


def hit_map_image(hit: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """CLEVER token assignment (K, h, w) -> (H, W, 3) uint8, one colour per token (argmax),
    drawn as cells; token k has colour `TOKEN_COLORS[k % 10]` (see `token_legend`)."""
    hit = np.asarray(hit)
    if hit.ndim != 3:
        raise ValueError(f"hit map must be (K, h, w), got shape {hit.shape}")
    colors = np.array([TOKEN_COLORS[k % len(TOKEN_COLORS)] for k in range(hit.shape[0])])
    image = colors[hit.argmax(0)].astype(np.uint8)  # (h, w, 3)
    return resize_image(image, size, nearest=True)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float = 0.42) -> None:
    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def colorbar(
    vmin: float,
    vmax: float,
    label: str,
    *,
    cmap: str = "inferno",
    width: int = 320,
) -> np.ndarray:
    """A horizontal colour bar from vmin (left) to vmax (right), its ends and middle labelled,
    and `label` (what the colour means, with its units) above -> (H, width, 3) uint8."""
    bar_h, top, height = 14, 20, 52
    image = np.full((height, width, 3), 255, np.uint8)
    margin = 8
    ramp = np.linspace(0.0, 1.0, width - 2 * margin)[None].repeat(bar_h, 0)
    image[top : top + bar_h, margin : width - margin] = matplotlib.colormaps[cmap](
        ramp, bytes=True
    )[..., :3]
    _text(image, label, (margin, 14))
    ticks = ((margin, vmin), ((width - 40) // 2, (vmin + vmax) / 2), (width - margin - 44, vmax))
    for x, value in ticks:
        _text(image, _number(value), (max(x, 0), top + bar_h + 14), 0.38)
    return image


def token_legend(num_tokens: int, *, width: int = 320) -> np.ndarray:
    """Swatches of CLEVER's token colours (as `hit_map_image` draws them) -> uint8 RGB."""
    per_row = max(1, (width - 8) // 76)
    rows = math.ceil(num_tokens / per_row)
    image = np.full((20 + 20 * rows, width, 3), 255, np.uint8)
    _text(image, "CLEVER: the token each pixel is assigned to", (8, 14))
    for k in range(num_tokens):
        x, y = 8 + 76 * (k % per_row), 22 + 20 * (k // per_row)
        image[y : y + 14, x : x + 14] = TOKEN_COLORS[k % len(TOKEN_COLORS)].astype(np.uint8)
        _text(image, f"token {k}", (x + 18, y + 12), 0.38)
    return image


# what each heat map's colour measures, with its units (the colour bars' labels)
UNITS = {
    "dam": "DAM attention over pixels (softmax weight, sums to 1)",
    "bcsm": "BCSM feature norm, before = after scale (L2, a.u.)",
}


def mask_caption(pred, threshold: float) -> str:
    if pred.num_classes == 1:
        return f"mask (p > {threshold:.2f})"
    return f"mask (argmax of {pred.num_classes} classes)"


Scales = dict[tuple[str, int], tuple[float, float]]


def _bcsm_planes(pred, level: int) -> list[np.ndarray]:
    if pred.bcsm is None:
        return []
    maps = pred.bcsm[level]
    return [maps[k] for k in ("norm_before", "norm_after") if maps.get(k) is not None]


def map_scales(preds) -> Scales:
    """One (low, high) per map kind and level over every second of every prediction given
    (several audio conditions, or two checkpoints): {("dam" | "bcsm", level): (low, high)}.

    BCSM's before and after share one scale, so the change selection makes shows as a change
    of colour. A kind no prediction has is absent."""
    scales: Scales = {}
    for level in range(4):
        for kind in ("dam", "bcsm"):
            planes = []
            for pred in preds:
                if kind == "dam" and pred.dam_maps is not None and pred.dam_maps[level] is not None:
                    planes.append(pred.dam_maps[level])
                elif kind == "bcsm":
                    planes.extend(_bcsm_planes(pred, level))
            values = [np.asarray(p, np.float64)[np.isfinite(p)] for p in planes]
            values = [v for v in values if v.size]
            if values:
                scales[(kind, level)] = (
                    float(min(v.min() for v in values)),
                    float(max(v.max() for v in values)),
                )
    return scales


def _grid(plane: np.ndarray) -> str:
    h, w = plane.shape[-2:]
    return f"{h}x{w} grid"


def frame_maps(
    pred, index: int, level: int, threshold: float, scales: Scales | None = None
) -> list[tuple[np.ndarray, str]]:
    """The row of second `index`: frame, mask, CLEVER token maps (coarse to fine), then DAM
    attention and BCSM channel norms (before / after selection) at feature `level` (0..3).

    Every image is at the frame's size, drawn as the model's grid cells; heat maps use
    `scales` (default: `map_scales([pred])`, one scale over the clip's seconds). A map the
    model does not make (DAM for fusions without V2A attention, BCSM for models without it)
    is left out of the row. Captions name each map's grid size."""
    scales = map_scales([pred]) if scales is None else scales
    count = len(pred.frames)
    index = min(max(int(index), 0), count - 1)
    frame = pred.frames[index]
    size = (frame.shape[1], frame.shape[0])
    t = float(pred.times[index])
    mask = pred.mask(index, threshold)
    row = [
        (frame, f"frame, second {index} ({t:.2f} s)"),
        (overlay(frame, mask), mask_caption(pred, threshold)),
    ]
    for layer, hits in enumerate(pred.hit_maps):
        row.append((hit_map_image(hits[index], size), f"CLEVER layer {layer + 1}, {_grid(hits)}"))
    dam = pred.dam_maps[level] if pred.dam_maps is not None else None
    if dam is not None:
        low, high = scales.get(("dam", level), (None, None))
        image = colorize(dam[index], size, vmin=low, vmax=high)
        row.append((image, f"DAM stage {level + 1}, {_grid(dam)}"))
    if pred.bcsm is not None:
        maps = pred.bcsm[level]
        low, high = scales.get(("bcsm", level), (None, None))
        for key, when in (("norm_before", "before"), ("norm_after", "after")):
            if maps.get(key) is not None:
                image = colorize(maps[key][index], size, vmin=low, vmax=high)
                row.append((image, f"BCSM {when}, stage {level + 1}, {_grid(maps[key])}"))
    return row


def map_legend(preds, level: int, scales: Scales | None = None, width: int = 360) -> np.ndarray:
    """The key to the maps shown: CLEVER's token colours and one colour bar (range and units)
    per heat-map kind at `level` -> (H, width, 3) uint8."""
    scales = map_scales(preds) if scales is None else scales
    tokens = max(h.shape[1] for pred in preds for h in pred.hit_maps)
    parts = [token_legend(tokens, width=width)]
    for kind in ("dam", "bcsm"):
        if (kind, level) in scales:
            low, high = scales[(kind, level)]
            parts.append(colorbar(low, high, f"{UNITS[kind]}, stage {level + 1}", width=width))
    return np.concatenate(parts, axis=0)
