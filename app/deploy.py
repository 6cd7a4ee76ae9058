"""Deploy the demo to a Hugging Face Space: `python -m app.deploy --space USER/NAME`.

What goes up: `app.py`, `app/`, `selm/`, `assets/` (the shipped checkpoints and examples) and
`README.md` (its front matter configures the Space), plus two files written for the Space:

* `requirements.txt` for the chosen hardware: `--hardware cpu` (the default) installs PyTorch's
  CPU wheels from PyTorch's own index (no CUDA libraries); `--hardware gpu` is the repository's
  `requirements.txt` as it is (PyPI's CUDA build of torch).
* `.gitattributes` with the Hub's Git LFS patterns, so the same folder can also be pushed
  with git: the Hub refuses files over 10 MB and binary files that are not in LFS.

The upload goes through `huggingface_hub.HfApi.upload_folder`, which stores large files the way
the Hub wants them. `--dry-run` lists what would go up with sizes and checks them, offline.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = ("app.py", "app", "selm", "assets", "README.md", "LICENSE")
SKIP_DIRS = {"__pycache__", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".tmp")
HUB_LFS_LIMIT = 10 * 2**20  # bigger files must be in LFS for a git push
HUB_FILE_LIMIT = 50 * 2**30  # the Hub's largest single file
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_PACKAGES = ("torch", "torchvision", "torchaudio")

# The Hub's default LFS patterns (a new repo's .gitattributes) and the media the demo ships.
LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib",
    "*.lfs.*", "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot",
    "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors",
    "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip",
    "*.zst", "*tfevents*",
    "*.mp4", "*.webm", "*.mov", "*.mkv", "*.wav", "*.mp3", "*.flac", "*.ogg",
    "*.png", "*.jpg", "*.jpeg", "*.webp", "*.gif",
)  # fmt: skip


class DeployError(RuntimeError):
    """What stops a deploy, said so the user can act on it."""


@dataclass(frozen=True)
class SpaceFile:
    """One file of the Space: its path in the Space, its size, and whether it goes to LFS."""

    path: str
    size: int
    lfs: bool


def gitattributes() -> str:
    lines = [f"{pattern} filter=lfs diff=lfs merge=lfs -text" for pattern in LFS_PATTERNS]
    return "\n".join(lines) + "\n"


def in_lfs(path: str) -> bool:
    name = Path(path).name
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in LFS_PATTERNS)


def _torch_line(line: str) -> str | None:
    """`torch==2.11.0` -> `torch==2.11.0+cpu`; None for a line that is not a torch pin."""
    name, sep, version = line.partition("==")
    if name.strip() in TORCH_PACKAGES and sep and "+" not in version:
        return f"{name.strip()}=={version.strip()}+cpu"
    return None


def space_requirements(hardware: str, source: Path = ROOT / "requirements.txt") -> str:
    """The Space's requirements.txt: the repository's for `gpu`; for `cpu` the same with torch,
    torchvision and torchaudio pinned to PyTorch's CPU builds from its CPU wheel index (PyPI
    stays the index for everything else)."""
    text = source.read_text()
    if hardware == "gpu":
        return text
    if hardware != "cpu":
        raise DeployError(f"unknown hardware {hardware!r}; choose cpu or gpu")
    out = [
        "# Written by `python -m app.deploy --hardware cpu`: PyTorch's CPU wheels, no CUDA.",
        f"--extra-index-url {TORCH_CPU_INDEX}",
    ]
    for line in text.splitlines():
        bare = line.split("#")[0].strip()
        pinned = _torch_line(bare) if bare else None
        name = re.split(r"[<>=!~;\[ ]", bare, maxsplit=1)[0]
        if name in TORCH_PACKAGES and pinned is None:
            raise DeployError(
                f"requirements.txt: {bare!r} is not pinned with ==; pin torch, torchvision and "
                "torchaudio to one version each so the CPU build can be chosen"
            )
        out.append(pinned or line)
    return "\n".join(out) + "\n"


def _walk(root: Path, entry: str):
    path = root / entry
    if path.is_file():
        yield path
        return
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(SKIP_SUFFIXES):
                yield Path(folder) / name


def stage(folder: Path, hardware: str, root: Path = ROOT) -> list[SpaceFile]:
    """Copy the Space's files into `folder` and write its requirements.txt and .gitattributes
    -> the files, sorted by path."""
    folder = Path(folder)
    for entry in INCLUDE:
        for path in _walk(root, entry):
            target = folder / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    (folder / "requirements.txt").write_text(
        space_requirements(hardware, root / "requirements.txt")
    )
    (folder / ".gitattributes").write_text(gitattributes())
    return listing(folder)


def listing(folder: Path) -> list[SpaceFile]:
    files = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        files.append(SpaceFile(rel, path.stat().st_size, in_lfs(rel)))
    return files


def _binary(path: Path) -> bool:
    with path.open("rb") as f:
        return b"\0" in f.read(8192)


def check(folder: Path, files: list[SpaceFile]) -> list[str]:
    """Problems that would make the Hub refuse the Space: a file over 10 MB or a binary file
    outside LFS, a file over the Hub's limit, a missing app.py or README front matter."""
    problems = []
    names = {f.path for f in files}
    for f in files:
        if f.size > HUB_FILE_LIMIT:
            problems.append(f"{f.path}: {f.size / 2**30:.1f} GB, over the Hub's 50 GB per file")
        elif not f.lfs and (f.size > HUB_LFS_LIMIT or _binary(Path(folder) / f.path)):
            problems.append(f"{f.path}: binary or over 10 MB but matches no LFS pattern")
    if "app.py" not in names:
        problems.append("app.py is missing: the Space has nothing to run")
    readme = Path(folder) / "README.md"
    if not readme.is_file() or not readme.read_text().startswith("---"):
        problems.append("README.md has no front matter (sdk: gradio, app_file: app.py)")
    return problems


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


def report(files: list[SpaceFile]) -> str:
    lines = [f"{'size':>10}  lfs  path"]
    for f in files:
        lines.append(f"{_size(f.size):>10}  {'yes' if f.lfs else '   '}  {f.path}")
    total = sum(f.size for f in files)
    big = [f for f in files if f.lfs]
    lines.append(
        f"{len(files)} files, {_size(total)} in all; {len(big)} in LFS "
        f"({_size(sum(f.size for f in big))})"
    )
    return "\n".join(lines)


def deploy(
    space: str,
    *,
    hardware: str = "cpu",
    dry_run: bool = False,
    token: str | None = None,
    private: bool = False,
    root: Path = ROOT,
    out=None,
) -> list[SpaceFile]:
    """Stage, check and (unless dry_run) upload the Space -> its files."""
    out = out or sys.stdout
    if space.count("/") != 1 or not all(space.split("/")):
        raise DeployError(f"--space must be USER/NAME, got {space!r}")
    with tempfile.TemporaryDirectory(prefix="selm-space-") as tmp:
        folder = Path(tmp)
        files = stage(folder, hardware, root)
        print(report(files), file=out)
        problems = check(folder, files)
        if problems:
            raise DeployError("the Space would be refused:\n  " + "\n  ".join(problems))
        if dry_run:
            print(f"dry run: nothing uploaded to spaces/{space} ({hardware})", file=out)
            return files
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        api = HfApi(token=token)
        try:
            api.create_repo(
                space, repo_type="space", space_sdk="gradio", exist_ok=True, private=private
            )
            api.upload_folder(
                repo_id=space,
                repo_type="space",
                folder_path=str(folder),
                commit_message=f"Deploy the SelM demo ({hardware})",
                delete_patterns=["*.py", "app/**", "selm/**", "assets/**"],
            )
        except OfflineModeIsEnabled as err:
            raise DeployError("HF_HUB_OFFLINE is set: unset it to upload") from err
        except HfHubHTTPError as err:
            raise DeployError(f"the Hub refused the upload: {err}") from err
        print(f"uploaded to https://huggingface.co/spaces/{space}", file=out)
        if hardware == "gpu":
            print("choose a GPU for it in the Space's settings (hardware is billed)", file=out)
        return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.deploy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--space", required=True, metavar="USER/NAME", help="the Space's id")
    parser.add_argument(
        "--hardware",
        choices=("cpu", "gpu"),
        default="cpu",
        help="cpu: PyTorch's CPU wheels; gpu: requirements.txt as it is (default: %(default)s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list and check the files; upload nothing"
    )
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument(
        "--token", default=None, help="Hub token (default: HF_TOKEN or `hf auth login`)"
    )
    args = parser.parse_args(argv)
    try:
        deploy(
            args.space,
            hardware=args.hardware,
            dry_run=args.dry_run,
            token=args.token,
            private=args.private,
        )
    except DeployError as err:
        print(f"python -m app.deploy: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
