"""`python -m selm.convert`: errors are one line each, and the checkpoint it writes loads
strictly with the values the library's conversion gives (tests/selm/weights/test_release_layout.py
checks those tensor by tensor)."""

import json

import torch
from release_fakes import published
from safetensors import safe_open

from selm.config import get_config
from selm.convert import main
from selm.modeling.vggish import VGGish
from selm.weights.checkpoint import read_config
from selm.weights.release_layout import convert_official
from selm.weights.resolve import load_pretrained


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    bogus = tmp_path / "bogus.pth"
    torch.save({"epoch": 3, "state_dict": {"module.foo.weight": torch.zeros(2)}}, bogus)
    assert (
        main(
            [
                str(bogus),
                "--setting",
                "s4",
                "--backbone",
                "r50",
                "--out",
                str(tmp_path / "out"),
                "--embeddings-only",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                str(tmp_path / "absent.pth"),
                "--setting",
                "s4",
                "--backbone",
                "r50",
                "--out",
                str(tmp_path / "out"),
                "--embeddings-only",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "Traceback" not in err
    assert "neither `resnet.*`" in err and "absent.pth: no such file" in err
    assert not (tmp_path / "out").exists()


def test_cli_writes_a_checkpoint_that_loads(tmp_path, capsys):
    """A wrapped, DataParallel-prefixed file and torchvggish weights -> config.json +
    model.safetensors that `load_pretrained` rebuilds strictly, with every value in place."""
    state = {k: v.clone() for k, v in published("s4", "r50").items()}  # own storage each
    official = tmp_path / "S4_SelM_R50.pth"
    torch.save({"epoch": 40, "state_dict": {f"module.{k}": v for k, v in state.items()}}, official)
    vggish = {k: torch.randn(v.shape) for k, v in VGGish("official").state_dict().items()}
    vggish_file = tmp_path / "vggish-10086976.pth"
    torch.save(vggish, vggish_file)
    out = tmp_path / "converted"
    assert (
        main(
            [
                str(official),
                "--setting",
                "s4",
                "--backbone",
                "r50",
                "--out",
                str(out),
                "--vggish-weights",
                str(vggish_file),
            ]
        )
        == 0
    )
    printed = capsys.readouterr()
    assert "dropped 174 unused tensors: resnet.layer3_2, resnet.layer4_2" in printed.out
    assert "encoder.vggish <- vggish-10086976.pth" in printed.out and printed.err == ""

    assert read_config(out) == get_config("selm_r50_official_s4")
    meta = json.loads((out / "config.json").read_text())["converted_from"]
    assert meta["preset"] == "selm_r50_official_s4" and meta["file"] == official.name
    ours = load_pretrained(out).state_dict()
    library = convert_official(state, setting="s4", backbone="r50", vggish_weights=vggish_file)
    assert ours.keys() == library.model.state_dict().keys()
    for key, value in library.model.state_dict().items():
        assert torch.equal(ours[key], value), key
    for key in ("features.0.weight", "embeddings.4.bias"):
        assert torch.equal(ours[f"encoder.vggish.{key}"], vggish[key])
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == set(ours)


def test_a_file_that_is_no_checkpoint_says_what_it_is(tmp_path, capsys):
    """Text, a web page, random bytes: one line that says what the file is, not "(101)"."""
    cases = {
        "notes.pth": (b"hello world, not weights\n", "it holds text ('hello world, no"),
        "page.pth": (b"<!DOCTYPE html><html>quota</html>", "it is a web page"),
        "noise.pth": (bytes(range(7, 250)) * 4, "neither a zip archive nor a pickle"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        argv = [str(tmp_path / name), "--setting", "s4", "--backbone", "r50"]
        assert main([*argv, "--out", str(tmp_path / "out"), "--embeddings-only"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert f"{name} is not a PyTorch weights file" in err and message in err, err
    assert not (tmp_path / "out").exists()
