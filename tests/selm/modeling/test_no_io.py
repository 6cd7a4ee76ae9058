"""`selm.modeling` holds nn.Modules only: no module there imports file, network or checkpoint
machinery, and constructing any preset reads no file and opens no connection."""

import ast
import builtins
import io
import socket
from pathlib import Path

import pytest
import timm  # noqa: F401  (imported before `open` is patched: its import reads files)
import torch

import selm.modeling
from selm.config import get_config, preset_names
from selm.modeling.model import SelM

MODELING = Path(selm.modeling.__file__).parent
FORBIDDEN_MODULES = {
    "os", "io", "pathlib", "shutil", "tempfile", "glob", "pickle", "socket", "urllib", "http",
    "requests", "subprocess", "safetensors", "huggingface_hub", "gdown", "av", "soundfile",
    "selm.weights", "selm.media", "selm.build",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "torch.load", "torch.save", "torch.hub.load", "load_state_dict"}


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _calls(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            out.add(ast.unparse(node.func))
    return out


@pytest.mark.parametrize("path", sorted(MODELING.glob("*.py")), ids=lambda p: p.name)
def test_modules_import_no_io(path):
    tree = ast.parse(path.read_text())
    bad = {
        m for m in _imports(tree) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MODULES)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"
    calls = {c for c in _calls(tree) if c in FORBIDDEN_CALLS or c.endswith(".load_state_dict")}
    assert not calls, f"{path.name} calls {sorted(calls)}"


def test_the_check_would_catch_io():
    tree = ast.parse("import os\nfrom safetensors.torch import load_file\nx = torch.load('f')\n")
    assert {"os", "safetensors.torch"} <= _imports(tree) and "torch.load" in _calls(tree)


@pytest.fixture
def no_io(monkeypatch):
    """Every way a constructor could reach a file or the network raises."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"I/O during construction: {args[:1]}")

    for owner, name in (
        (builtins, "open"),
        (io, "open"),
        (torch, "load"),
        (torch.hub, "load_state_dict_from_url"),
        (torch.hub, "download_url_to_file"),
        (socket.socket, "connect"),
        (socket, "create_connection"),
    ):
        monkeypatch.setattr(owner, name, refuse)


@pytest.mark.parametrize("preset", preset_names())
def test_constructing_every_preset_reads_nothing(preset, no_io):
    with torch.device("meta"):  # the structure is built; no memory for the 80M-parameter ones
        model = SelM(get_config(preset))
    assert sum(p.numel() for p in model.parameters()) > 0


def test_no_io_fixture_bites(no_io):
    with pytest.raises(AssertionError, match="I/O during construction"):
        open(__file__)  # noqa: SIM115
