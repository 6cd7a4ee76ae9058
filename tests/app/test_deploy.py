"""app.deploy: what a Space gets, checked offline; the upload itself goes to a fake HfApi."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from app import deploy

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_lists_the_space_and_checks_it_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert deploy.main(["--space", "someone/selm-demo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[-1]: line for line in out.splitlines()[1:-2]}
    for name in (
        "app.py",
        "README.md",
        "requirements.txt",
        ".gitattributes",
        "app/ui.py",
        "selm/inference/predictor.py",
        "assets/examples/synth_multi.mp4",
    ):
        assert name in lines, name
    assert not any(p.startswith(("tests/", "train/", "benchmarks/", ".git/")) for p in lines)
    assert not any("__pycache__" in p for p in lines)
    weights = sorted(ROOT.glob("assets/checkpoints/*/model.safetensors"))
    assert weights
    for path in weights:
        rel = path.relative_to(ROOT).as_posix()
        size = path.stat().st_size
        assert f"{size / 2**20:.1f} MB  yes  {rel}" in lines[rel]  # size, and LFS
    assert "dry run: nothing uploaded to spaces/someone/selm-demo (cpu)" in out


def test_cpu_requirements_take_the_cpu_wheels_and_gpu_keeps_the_file(tmp_path):
    source = tmp_path / "requirements.txt"
    source.write_text("# deps\ntorch==2.11.0\ntorchvision==0.26.0  # vision\nnumpy>=1.26\n")
    cpu = deploy.space_requirements("cpu", source).splitlines()
    assert f"--extra-index-url {deploy.TORCH_CPU_INDEX}" in cpu
    assert "torch==2.11.0+cpu" in cpu and "torchvision==0.26.0+cpu" in cpu
    assert "numpy>=1.26" in cpu and not any(line == "torch==2.11.0" for line in cpu)
    assert deploy.space_requirements("gpu", source) == source.read_text()
    source.write_text("torch>=2.4\n")
    with pytest.raises(deploy.DeployError, match="not pinned with =="):
        deploy.space_requirements("cpu", source)
    repo = deploy.space_requirements("cpu")  # the repository's own file converts
    assert "torch==" in repo and "+cpu" in repo


def test_gitattributes_put_weights_and_media_in_lfs():
    text = deploy.gitattributes()
    assert "*.safetensors filter=lfs diff=lfs merge=lfs -text" in text.splitlines()
    assert deploy.in_lfs("assets/checkpoints/x/model.safetensors")
    assert deploy.in_lfs("assets/examples/a.mp4") and not deploy.in_lfs("app/ui.py")


def test_check_refuses_big_or_binary_files_outside_lfs(tmp_path):
    (tmp_path / "app.py").write_text("print()\n")
    (tmp_path / "README.md").write_text("---\nsdk: gradio\n---\n")
    (tmp_path / "weights.raw").write_bytes(b"\0" * 100)
    (tmp_path / "big.txt").write_bytes(b"a" * (deploy.HUB_LFS_LIMIT + 1))
    problems = deploy.check(tmp_path, deploy.listing(tmp_path))
    assert len(problems) == 2
    assert any(p.startswith("weights.raw") for p in problems)
    assert any(p.startswith("big.txt") for p in problems)
    (tmp_path / "README.md").write_text("no front matter")
    (tmp_path / "app.py").unlink()
    problems = deploy.check(tmp_path, deploy.listing(tmp_path))
    assert any("app.py is missing" in p for p in problems)
    assert any("front matter" in p for p in problems)


def test_upload_goes_through_upload_folder(monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kw):
            calls["create"] = (repo_id, kw)

        def upload_folder(self, *, repo_id, folder_path, **kw):
            folder = Path(folder_path)
            calls["upload"] = (
                repo_id,
                kw,
                sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
            )
            calls["requirements"] = (folder / "requirements.txt").read_text()

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out = io.StringIO()
    files = deploy.deploy("someone/selm-demo", hardware="gpu", token="t", out=out)
    repo_id, kw, uploaded = calls["upload"]
    assert repo_id == "someone/selm-demo" and kw["repo_type"] == "space"
    assert calls["create"] == (
        "someone/selm-demo",
        dict(repo_type="space", space_sdk="gradio", exist_ok=True, private=False),
    )
    assert uploaded == sorted(f.path for f in files) and calls["token"] == "t"
    assert calls["requirements"] == (ROOT / "requirements.txt").read_text()
    assert "uploaded to https://huggingface.co/spaces/someone/selm-demo" in out.getvalue()
    with pytest.raises(deploy.DeployError, match="USER/NAME"):
        deploy.deploy("no-slash", dry_run=True, out=out)
