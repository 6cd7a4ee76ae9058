"""The authors' six published SelM models as checkpoint specs, and raw `.pth` files as checkpoints.

    official:s4_r50  official:s4_pvt  official:ms3_r50  official:ms3_pvt
    official:avss_r50  official:avss_pvt                  (or a path ending in .pth)

First use downloads the authors' `.pth` from Google Drive (gdown) and torchvggish's
`vggish-10086976.pth` into the selm cache (`selm.weights.download`: resumed when interrupted,
checked, digests recorded), converts once with `selm.convert` and keeps the converted
`config.json` + `model.safetensors` (+ a model card) in `checkpoints/official-<name>/`; later
uses load that copy and never download. A `.pth` put in `downloads/` by hand is used under
either name, ours (`SelM_S4_R50.pth`) or the one the authors' test scripts use (`S4_R50.pth`).
A raw `.pth` is read with `weights_only=True`, its setting and backbone are read off its tensor
names and shapes, and it is converted into `checkpoints/pth-<sha256[:16]>/`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selm.presets import BACKBONE_NAMES, official_preset_name
from selm.runtime import Progress
from selm.weights.cache import (
    DownloadError,
    IntegrityError,
    checkpoints_dir,
    downloads_dir,
    sha256_of,
)
from selm.weights.checkpoint import CheckpointError, is_checkpoint, save_pretrained
from selm.weights.download import Source, obtain
from selm.weights.model_card import write_model_card
from selm.weights.pretrained import VGGISH_FILE, VGGISH_URL
from selm.weights.release_layout import (
    ConversionError,
    convert_official,
    detect_layout,
    read_official,
)

OFFICIAL_PREFIX = "official:"  # official:NAME names one of the six (REGISTRY)
VGGISH_SHA256_PREFIX = "10086976"  # torch hub convention: the file is named by its sha256 prefix
_LABEL_BACKBONES = {"r50": "R50", "pvt": "PVTv2"}


@dataclass(frozen=True)
class OfficialModel:
    """One published model: where it is, what it is, what the paper reports for it (M_J / M_F;
    for AVSS mIoU / F-score). `size` / `sha256` of the published file: None until someone
    publishes them (nothing here has downloaded the files); the layout check runs either way,
    and the first good download's digest is recorded in the cache and checked from then on."""

    name: str  # s4_r50, ...
    setting: str
    backbone: str  # r50 | pvt
    drive_id: str
    paper_mj: float
    paper_mf: float
    size: int | None = None
    sha256: str | None = None

    @property
    def spec(self) -> str:
        return OFFICIAL_PREFIX + self.name

    @property
    def label(self) -> str:
        return f"authors' SelM-{_LABEL_BACKBONES[self.backbone]}, {self.setting.upper()}"

    @property
    def drive_url(self) -> str:
        return f"https://drive.google.com/file/d/{self.drive_id}/view"

    @property
    def download_url(self) -> str:
        return f"https://drive.google.com/uc?id={self.drive_id}"

    @property
    def file_name(self) -> str:
        return f"SelM_{self.setting.upper()}_{self.backbone.upper()}.pth"

    @property
    def authors_file_name(self) -> str:
        """The name the authors' test scripts load (`--weights ../S4_R50.pth`)."""
        return f"{self.setting.upper()}_{self.backbone.upper()}.pth"

    @property
    def preset(self) -> str:
        return official_preset_name(self.setting, self.backbone)

    @property
    def folder(self) -> Path:
        return checkpoints_dir() / f"official-{self.name}"


def _model(name: str, drive_id: str, mj: float, mf: float) -> OfficialModel:
    setting, backbone = name.split("_")
    return OfficialModel(name, setting, backbone, drive_id, mj, mf)


# Drive ids from the authors' README; metrics from the paper (Tables 1 and 2)
REGISTRY: dict[str, OfficialModel] = {
    m.name: m
    for m in (
        _model("s4_r50", "1kJI00umTGOa05HxDdrHYVPozLn32cc_o", 76.6, 86.2),
        _model("s4_pvt", "1WFcfB5cawzqLSxUJH7yP3xL2JN0ZX27V", 83.5, 91.2),
        _model("ms3_r50", "19YHJOec_XbJpzAe2JJs6Omm71dmRZHNr", 54.5, 65.6),
        _model("ms3_pvt", "1xtb7GRciK29RJMVHgZRhDSOhBJT-y93Y", 60.3, 71.3),
        _model("avss_r50", "1qr2_JotdX1P0EUh7WUHsBkydyQezmd7R", 31.9, 37.2),
        _model("avss_pvt", "1b5x7I2JJJLtuU8KPCFT1HOagiPjk2yZE", 41.3, 46.9),
    )
}


class ReleaseError(CheckpointError):
    """An official spec or raw .pth that cannot become a checkpoint; the message says what to do."""


def is_release_spec(spec: str | os.PathLike) -> bool:
    text = str(spec)
    return text.startswith(OFFICIAL_PREFIX) or text.lower().endswith(".pth")


def official_model(spec: str) -> OfficialModel:
    name = spec.removeprefix(OFFICIAL_PREFIX)
    if name not in REGISTRY:
        known = ", ".join(m.spec for m in REGISTRY.values())
        raise ReleaseError(f"{spec!r} is not one of the authors' published models: {known}")
    return REGISTRY[name]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_release(
    spec: str | os.PathLike, *, progress: Progress | None = None, say: Callable = _say
) -> Path:
    """The converted checkpoint folder for an `official:NAME` spec or a raw `.pth` path,
    downloading and converting on first use."""
    text = str(spec)
    if text.startswith(OFFICIAL_PREFIX):
        return resolve_official(official_model(text), progress=progress, say=say)
    return resolve_pth(Path(text).expanduser(), progress=progress, say=say)


def resolve_official(
    model: OfficialModel, *, progress: Progress | None = None, say: Callable = _say
) -> Path:
    if is_checkpoint(model.folder):
        return model.folder

    def validate(path: Path) -> dict:
        try:
            loaded = read_official(path)
            _expect_layout(loaded, model)
        except ConversionError as err:
            raise DownloadError(str(err)) from err
        return loaded

    source = Source(
        name=model.file_name,
        what=f"{model.file_name} ({model.spec})",
        url=model.download_url,
        page=model.drive_url,
        drive_id=model.drive_id,
        size=model.size,
        sha256=model.sha256,
        validate=validate,
    )
    folder = downloads_dir()
    places = (folder / model.file_name, folder / model.authors_file_name)
    try:
        got = obtain(source, places, progress=progress, say=say)
    except IntegrityError as err:
        raise ReleaseError(f"{model.label} ({model.spec}): {err}") from err
    except DownloadError as err:
        raise ReleaseError(_manual_steps(model, str(err))) from err
    origin = dict(
        spec=model.spec,
        file=got.path.name,
        drive_id=model.drive_id,
        drive_url=model.drive_url,
        sha256=got.sha256,
        sha256_checked_against=got.against or "nothing yet (recorded now)",
        paper_mj=model.paper_mj,
        paper_mf=model.paper_mf,
    )
    return _convert_into(
        model.folder, got.checked, model.setting, model.backbone, origin, progress, say
    )


def _expect_layout(state: dict, model: OfficialModel) -> None:

    try:
        found = detect_layout(state)
    except ConversionError as err:
        raise ConversionError(f"the file is not the published {model.spec} model: {err}") from err
    if found != (model.setting, model.backbone):
        raise ConversionError(
            f"the file is the {found[0]} / {BACKBONE_NAMES[found[1]]} model, not the published "
            f"{model.spec} ({model.setting} / {BACKBONE_NAMES[model.backbone]})"
        )


def _manual_steps(model: OfficialModel, reason: str) -> str:
    folder = downloads_dir()
    return (
        f"could not get {model.label} ({model.spec}): {reason}.\n"
        f"Download it yourself from {model.drive_url} (Google Drive file id {model.drive_id}) "
        f"and put it in the folder {folder} as {model.file_name} or {model.authors_file_name} "
        f"(the name the authors' test scripts use), then use {model.spec} again; or run:\n"
        f"  python -m selm.convert {model.file_name} --setting {model.setting} "
        f"--backbone {model.backbone} --out {model.folder} --vggish-weights {VGGISH_FILE}\n"
        f"(VGGish: {VGGISH_URL})"
    )


def resolve_pth(path: Path, *, progress: Progress | None = None, say: Callable = _say) -> Path:
    """A published-layout `.pth` on disk -> its converted checkpoint in the cache."""

    if not path.is_file():
        raise ReleaseError(f"{path}: no such file (a published SelM .pth)")
    digest = sha256_of(path)
    folder = checkpoints_dir() / f"pth-{digest[:16]}"
    if is_checkpoint(folder):
        return folder
    try:
        state = read_official(path)
        setting, backbone = detect_layout(state)
    except ConversionError as err:
        raise ReleaseError(f"{path} cannot be used as a checkpoint: {err}") from err
    known = next((m for m in REGISTRY.values() if m.sha256 == digest), None)
    paper = dict(spec=known.spec, paper_mj=known.paper_mj, paper_mf=known.paper_mf) if known else {}
    say(
        f"{path.name}: found the {setting.upper()} / {BACKBONE_NAMES[backbone]} layout "
        f"(that of official:{setting}_{backbone})"
        + (f", byte-identical to the published {known.spec}" if known else "")
        + f"; converting into {folder}"
    )
    source = dict(file=path.name, sha256=digest, path=str(path.resolve()), **paper)
    return _convert_into(folder, state, setting, backbone, source, progress, say)


def vggish_file(progress: Progress | None = None, say: Callable = _say) -> Path:
    """torchvggish's weights in the cache, checked (its name's sha256 prefix, the recorded
    digest) whether found there or downloaded now."""
    path = downloads_dir() / VGGISH_FILE
    source = Source(
        name=VGGISH_FILE,
        what=VGGISH_FILE,
        url=VGGISH_URL,
        page=VGGISH_URL,
        sha256=VGGISH_SHA256_PREFIX,
    )
    try:
        return obtain(source, (path,), progress=progress, say=say).path
    except IntegrityError as err:
        raise ReleaseError(f"VGGish's weights: {err}") from err
    except DownloadError as err:
        raise ReleaseError(
            f"could not get VGGish's weights ({err}). Download {VGGISH_URL} yourself and put "
            f"it in the folder {path.parent} as {VGGISH_FILE}, then run the same command again."
        ) from err


def _convert_into(
    folder: Path,
    state: dict,
    setting: str,
    backbone: str,
    source: dict,
    progress: Progress | None,
    say: Callable,
) -> Path:
    """Convert `state` (+ VGGish) into `folder` atomically: a temporary sibling, renamed."""

    vggish = vggish_file(progress, say)
    if progress is not None:
        progress(1.0, f"converting the {setting} / {BACKBONE_NAMES[backbone]} model")
    try:
        conversion = convert_official(
            state, setting=setting, backbone=backbone, vggish_weights=vggish
        )
    except (ConversionError, ValueError) as err:
        raise ReleaseError(f"the conversion failed: {err}") from err
    source = {
        **source,
        "setting": setting,
        "backbone": backbone,
        "preset": official_preset_name(setting, backbone),
        "vggish": conversion.vggish,
    }
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        save_pretrained(conversion.model, scratch, converted_from=source)
        write_model_card(scratch, source=source, config=conversion.model.config)
        if folder.exists() and not is_checkpoint(folder):
            shutil.rmtree(folder)  # left by an older, interrupted run
        try:
            os.replace(scratch, folder)
        except OSError:  # another process finished the same conversion first
            if not is_checkpoint(folder):
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"converted checkpoint: {folder}")
    return folder
