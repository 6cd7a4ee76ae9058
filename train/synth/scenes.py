"""AVS-Synth scenes: K object categories, clips sampled from a seed, rendering as a function of
continuous time (vectorised analytic shapes on a pixel grid over a procedural background).

Coordinates are fractions of the frame side (x right, y down, both in [0, 1]); an object's
shape is a signed-distance-like function of its local coordinates (u, v) in units of its radius.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from train.synth.sounds import RECIPES, sample_sound_params


@dataclass(frozen=True)
class Category:
    name: str
    shape: str
    colour: tuple[float, float, float]  # base RGB in [0, 1]
    texture: str
    sound: str  # a key of sounds.RECIPES


# Distinct hue, outline and texture per category; each sound sits in its own mel band/rhythm.
CATEGORIES: tuple[Category, ...] = (
    Category("horn", "circle", (0.92, 0.12, 0.10), "solid", "harmonic"),
    Category("guitar", "square", (0.98, 0.85, 0.08), "hstripes", "pluck"),
    Category("drum", "triangle", (0.12, 0.30, 0.98), "rings", "bursts"),
    Category("bird", "star", (0.15, 0.85, 0.20), "dots", "chirps"),
    Category("siren", "ring", (0.90, 0.15, 0.88), "solid", "am"),
    Category("engine", "hexagon", (1.00, 0.52, 0.02), "checker", "pulses"),
    Category("fountain", "ellipse", (0.05, 0.88, 0.92), "vstripes", "bandnoise"),
    Category("voice", "cross", (0.97, 0.97, 0.97), "diagonal", "formant"),
)
assert {c.sound for c in CATEGORIES} == set(RECIPES)
SHAPE_EXTENT = 1.25  # every shape lies within this many radii of its centre


@dataclass(kw_only=True)
class SceneObject:
    """A visible object: its look and motion, and when it sounds (one flag per second)."""

    category: int
    radius: float  # fraction of the frame side
    centre: tuple[float, float]  # mean position
    amplitude: tuple[float, float]  # centre(t) = centre + amplitude * sin(omega t + phase)
    omega: tuple[float, float]
    phase: tuple[float, float]
    angle: float  # angle(t) = angle + spin * t
    spin: float
    colour: tuple[float, float, float]
    sounding: tuple[bool, ...]
    sound: dict = field(default_factory=dict)  # sounds.sample_sound_params(...)
    spans: tuple[tuple[float, float], ...] | None = None  # hard clips: (start, stop) seconds
    # when the sound is on (None: all of every sounding second)

    def position(self, t: float) -> tuple[float, float]:
        return tuple(
            c + a * np.sin(w * t + p)
            for c, a, w, p in zip(self.centre, self.amplitude, self.omega, self.phase)
        )


@dataclass(kw_only=True)
class OffscreenSound:
    category: int
    sounding: tuple[bool, ...]
    sound: dict = field(default_factory=dict)
    spans: tuple[tuple[float, float], ...] | None = None  # as SceneObject.spans


@dataclass(kw_only=True)
class Clip:
    """Everything a clip is made of; rendering and synthesis are pure functions of it."""

    seconds: int
    objects: list[SceneObject]  # drawn back to front
    offscreen: list[OffscreenSound]
    background: dict  # grey, tint, waves (k, omega, phase, amplitude), texture_seed
    snr_db: float
    noise_seed: int
    pan: tuple[float, float] | None = None  # hard clips: camera velocity (frame sides per s)

    def camera(self, t: float) -> tuple[float, float]:
        """Camera offset at time t: the frame shows the scene shifted by it (pan * t)."""
        return (0.0, 0.0) if self.pan is None else (self.pan[0] * t, self.pan[1] * t)

    def sounding_categories(self, second: int) -> set[int]:
        """Categories heard in second `second` (visible and off-screen)."""
        if second >= self.seconds:
            return set()
        sources = [*self.objects, *self.offscreen]
        return {s.category for s in sources if s.sounding[second]}


def _seconds_on(rng: np.random.Generator, seconds: int, p: float) -> tuple[bool, ...]:
    on = rng.random(seconds) < p
    if not on.any():
        on[rng.integers(seconds)] = True
    return tuple(bool(x) for x in on)


def _place(rng: np.random.Generator, n: int) -> list[tuple[float, tuple, tuple]]:
    """Radii, centres and motion amplitudes of n objects that never overlap."""
    shrink = 1.0
    for attempt in range(200):
        radii = rng.uniform(0.11, 0.19, n) * shrink
        amps = rng.uniform(0.0, 0.07, (n, 2)) * shrink
        reach = radii[:, None] * SHAPE_EXTENT * 0.85 + amps  # per axis
        centres = rng.uniform(reach, 1.0 - reach)
        far = all(
            np.linalg.norm(centres[i] - centres[j]) > reach[i].max() + reach[j].max()
            for i in range(n)
            for j in range(i)
        )
        if far:
            return [(float(radii[i]), tuple(centres[i]), tuple(amps[i])) for i in range(n)]
        if attempt % 20 == 19:
            shrink *= 0.9
    raise AssertionError("object placement did not converge")


def sample_clip(
    rng: np.random.Generator,
    *,
    seconds: int,
    single_source: bool,
    num_categories: int = len(CATEGORIES),
) -> Clip:
    """A random clip: 1-3 objects of distinct categories.

    single_source (S4, AVSS v1s): exactly one object sounds (in most seconds), the others are
    visible but silent, no off-screen sound. Otherwise every object sounds in a random subset of
    the seconds, half of the clips with 2+ objects hold one that never sounds, and a quarter of
    the clips add an off-screen sound of a category not in view.
    """
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    cats = rng.choice(num_categories, n, replace=False)
    silent = [False] * seconds
    if single_source:
        source = int(rng.integers(n))
        sounding = [
            _seconds_on(rng, seconds, 0.8) if i == source else tuple(silent) for i in range(n)
        ]
    else:
        sounding = [_seconds_on(rng, seconds, 0.55) for _ in range(n)]
        if n >= 2 and rng.random() < 0.5:
            sounding[int(rng.integers(n))] = tuple(silent)
    objects = []
    for i, (radius, centre, amp) in enumerate(_place(rng, n)):
        cat = CATEGORIES[int(cats[i])]
        colour = np.clip(np.asarray(cat.colour) * rng.uniform(0.85, 1.1, 3), 0.0, 1.0)
        objects.append(
            SceneObject(
                category=int(cats[i]),
                radius=radius,
                centre=centre,
                amplitude=amp,
                omega=tuple(rng.uniform(0.3, 1.2, 2)),
                phase=tuple(rng.uniform(0, 2 * np.pi, 2)),
                angle=float(rng.uniform(0, 2 * np.pi)),
                spin=float(rng.uniform(-0.4, 0.4)),
                colour=tuple(float(c) for c in colour),
                sounding=sounding[i],
                sound=sample_sound_params(cat.sound, rng),
            )
        )
    offscreen = []
    if not single_source and rng.random() < 0.25:
        hidden = [c for c in range(num_categories) if c not in set(cats.tolist())]
        cat = int(rng.choice(hidden))
        offscreen.append(
            OffscreenSound(
                category=cat,
                sounding=_seconds_on(rng, seconds, 0.5),
                sound=sample_sound_params(CATEGORIES[cat].sound, rng),
            )
        )
    return Clip(
        seconds=seconds,
        objects=objects,
        offscreen=offscreen,
        background=sample_background(rng),
        snr_db=float(rng.uniform(10.0, 30.0)),
        noise_seed=int(rng.integers(2**31)),
    )


def sample_background(rng: np.random.Generator) -> dict:
    directions = rng.uniform(0, 2 * np.pi, 3)
    k = np.stack([np.cos(directions), np.sin(directions)], 1) * rng.uniform(3, 12, (3, 1))
    return dict(
        grey=float(rng.uniform(0.28, 0.5)),
        tint=tuple(rng.uniform(-0.06, 0.06, 3)),
        k=k.tolist(),
        omega=rng.uniform(0.2, 0.6, 3).tolist(),
        phase=rng.uniform(0, 2 * np.pi, 3).tolist(),
        amplitude=rng.uniform(0.03, 0.07, 3).tolist(),
        texture_seed=int(rng.integers(2**31)),
    )


# --- shapes and textures in local coordinates (u, v), radius 1 ---
def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = np.hypot(u, v)
    if shape == "circle":
        return r < 1.0
    if shape == "square":
        return np.maximum(abs(u), abs(v)) < 0.85
    if shape == "triangle":
        normals = [(0.0, -1.0), (0.866, 0.5), (-0.866, 0.5)]
        return np.max([u * a + v * b for a, b in normals], axis=0) < 0.55
    if shape == "star":
        return r < 0.5 + 0.5 * np.abs(np.cos(2.5 * np.arctan2(v, u)))
    if shape == "ring":
        return np.abs(r - 0.72) < 0.28
    if shape == "hexagon":
        normals = [(np.cos(a), np.sin(a)) for a in np.arange(3) * np.pi / 3]
        return np.max([np.abs(u * a + v * b) for a, b in normals], axis=0) < 0.9
    if shape == "ellipse":
        return u**2 + (v / 0.55) ** 2 < 1.0
    if shape == "cross":
        return ((abs(u) < 1.0) & (abs(v) < 0.33)) | ((abs(u) < 0.33) & (abs(v) < 1.0))
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness factor in {0.55, 1} (a pattern fixed to the object)."""
    if texture == "solid":
        dark = np.zeros(u.shape, dtype=bool)
    elif texture == "hstripes":
        dark = np.sin(v * 3 * np.pi) > 0
    elif texture == "vstripes":
        dark = np.sin(u * 3 * np.pi) > 0
    elif texture == "checker":
        dark = np.sin(u * 2.5 * np.pi) * np.sin(v * 2.5 * np.pi) > 0
    elif texture == "diagonal":
        dark = np.sin((u + v) * 2.5 * np.pi) > 0
    elif texture == "rings":
        dark = np.sin(np.hypot(u, v) * 4 * np.pi) > 0
    elif texture == "dots":
        dark = (np.mod(u * 2.5, 1) - 0.5) ** 2 + (np.mod(v * 2.5, 1) - 0.5) ** 2 < 0.08
    else:
        raise ValueError(f"unknown texture {texture!r}")
    return np.where(dark, 0.55, 1.0)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """(n, n, C) -> (size, size, C) float32 by separable linear interpolation."""
    n = grid.shape[0]
    pos = (np.arange(size) + 0.5) / size * (n - 1)
    lo = np.minimum(pos.astype(int), n - 2)
    w = pos - lo
    m = np.zeros((size, n))
    m[np.arange(size), lo] = 1 - w
    m[np.arange(size), lo + 1] += w
    return np.stack([m @ grid[..., c] @ m.T for c in range(grid.shape[2])], -1).astype(np.float32)


def _sample_periodic(grid: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(n, n, C) grid over the unit square, repeated periodically, sampled bilinearly at the
    points (ys[i], xs[j]) -> (len(ys), len(xs), C) float32."""
    n = grid.shape[0]

    def weights(pos: np.ndarray) -> np.ndarray:
        g = np.mod(pos, 1.0) * n - 0.5
        lo = np.floor(g).astype(int)
        w = g - lo
        m = np.zeros((pos.size, n))
        m[np.arange(pos.size), np.mod(lo, n)] = 1 - w
        m[np.arange(pos.size), np.mod(lo + 1, n)] += w
        return m

    my, mx = weights(ys), weights(xs)
    return np.stack([my @ grid[..., c] @ mx.T for c in range(grid.shape[2])], -1).astype(np.float32)


class Renderer:
    """Renders a clip at any time t (seconds) as (H, W, 3) float32 RGB in [0, 1] and an id map
    (H, W) int8 (index into clip.objects of the object seen at each pixel; -1 background)."""

    def __init__(self, clip: Clip, size: int) -> None:
        self.clip, self.size = clip, size
        self.coords = (np.arange(size, dtype=np.float32) + 0.5) / size  # pixel centres
        bg = clip.background
        texture_rng = np.random.default_rng(bg["texture_seed"])
        self.grid = texture_rng.uniform(-0.09, 0.09, (6, 6, 3))
        texture = _upsample(self.grid, size)
        self.base = (texture + bg["grey"] + np.asarray(bg["tint"])).astype(np.float32)

    def background(self, t: float) -> np.ndarray:
        """(H, W, 3) float32: slowly drifting plane waves over a fixed smooth texture."""
        bg = self.clip.background
        value = np.zeros((self.size, self.size), dtype=np.float32)
        if self.clip.pan is not None:
            return self._panned_background(t, value)
        for (kx, ky), w, p, a in zip(bg["k"], bg["omega"], bg["phase"], bg["amplitude"]):
            # sin(kx x + ky y + c) = sin(kx x + c) cos(ky y) + cos(kx x + c) sin(ky y)
            ax, by = kx * self.coords + (w * t + p), ky * self.coords
            value += a * (np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax)))
        return value[..., None] + self.base

    def _panned_background(self, t: float, value: np.ndarray) -> np.ndarray:
        """The background seen through a camera at clip.camera(t): waves and texture shifted."""
        bg = self.clip.background
        ox, oy = self.clip.camera(t)
        xs, ys = self.coords + ox, self.coords + oy
        for (kx, ky), w, p, a in zip(bg["k"], bg["omega"], bg["phase"], bg["amplitude"]):
            ax, by = kx * xs + (w * t + p), ky * ys
            value += a * (np.outer(np.cos(by), np.sin(ax)) + np.outer(np.sin(by), np.cos(ax)))
        texture = _sample_periodic(self.grid, xs, ys)
        return value[..., None] + (texture + bg["grey"] + np.asarray(bg["tint"])).astype(np.float32)

    def __call__(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        rgb = self.background(t)
        ids = np.full((self.size, self.size), -1, dtype=np.int8)
        for index, obj in enumerate(self.clip.objects):
            self._draw(obj, index, t, rgb, ids)
        return np.clip(rgb, 0.0, 1.0).astype(np.float32), ids

    def _draw(self, obj: SceneObject, index: int, t: float, rgb, ids) -> None:
        cx, cy = obj.position(t)
        if self.clip.pan is not None:
            ox, oy = self.clip.camera(t)
            cx, cy = cx - ox, cy - oy
        reach = obj.radius * SHAPE_EXTENT
        cols = np.nonzero(np.abs(self.coords - cx) < reach)[0]
        rows = np.nonzero(np.abs(self.coords - cy) < reach)[0]
        if cols.size == 0 or rows.size == 0:
            return
        box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        dx = (self.coords[cols[0] : cols[-1] + 1][None, :] - cx) / obj.radius
        dy = (self.coords[rows[0] : rows[-1] + 1][:, None] - cy) / obj.radius
        a = obj.angle + obj.spin * t
        u = np.cos(a) * dx + np.sin(a) * dy
        v = -np.sin(a) * dx + np.cos(a) * dy
        category = CATEGORIES[obj.category]
        inside = _inside(category.shape, u, v)
        shade = _texture(category.texture, u, v) * (1.0 - 0.2 * np.minimum(u * u + v * v, 1.0))
        colour = shade[..., None] * np.asarray(obj.colour, dtype=np.float32)
        rgb[box] = np.where(inside[..., None], colour, rgb[box])
        ids[box] = np.where(inside, index, ids[box])


def binary_gt(ids: np.ndarray, clip: Clip, sounding: set[int]) -> np.ndarray:
    """(H, W) bool: pixels of visible objects whose category is in `sounding`."""
    keep = [i for i, o in enumerate(clip.objects) if o.category in sounding]
    return np.isin(ids, keep)


def semantic_gt(ids: np.ndarray, clip: Clip, sounding: set[int]) -> np.ndarray:
    """(H, W) uint8: category id + 1 on pixels of sounding visible objects, 0 elsewhere."""
    lut = np.zeros(len(clip.objects) + 1, dtype=np.uint8)  # last entry: id -1 (background)
    for i, obj in enumerate(clip.objects):
        if obj.category in sounding:
            lut[i] = obj.category + 1
    return lut[ids]
