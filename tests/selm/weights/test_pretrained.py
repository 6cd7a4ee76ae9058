"""Weight loaders: timm backbones in any layout timm knows, offline-aware; torchvggish's VGGish."""

import re
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from selm.modeling.encoder import timm_model
from selm.modeling.vggish import VGGish
from selm.weights import pretrained
from selm.weights.pretrained import load_backbone_weights, load_vggish_weights, pretrained_file

# --- weights: local files in any layout timm knows, fast failures offline ---


def _to_original_pvt_layout(state):
    """timm's pvt_v2 names -> the original PVT-v2 release's (what SelM's PVT checkpoints use)."""
    out = {}
    for k, v in state.items():
        k = k.replace("patch_embed.", "patch_embed1.")
        k = re.sub(r"^stages\.(\d)\.downsample", lambda m: f"patch_embed{int(m[1]) + 1}", k)
        k = re.sub(r"^stages\.(\d)\.blocks\.", lambda m: f"block{int(m[1]) + 1}.", k)
        k = re.sub(r"^stages\.(\d)\.norm", lambda m: f"norm{int(m[1]) + 1}", k)
        out[k.replace("mlp.dwconv", "mlp.dwconv.dwconv")] = v
    return out


def backbone(name: str, path) -> torch.nn.Module:
    """timm's `name` without its classifier, with the weights in `path`."""
    model = timm_model(name)
    load_backbone_weights(model, path)
    return model


def test_local_weights_load_through_timm_filters(tmp_path):
    src = timm.create_model("pvt_v2_b0")  # with its classifier, as checkpoints are saved
    path = tmp_path / "pvt_v2_b0.pth"
    original = _to_original_pvt_layout(src.state_dict())
    assert "block1.0.mlp.dwconv.dwconv.weight" in original and "head.weight" in original
    torch.save({"state_dict": original}, path)
    model = backbone("pvt_v2_b0", path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k

    src = timm.create_model("resnet18")
    save_file(src.state_dict(), str(tmp_path / "r18.safetensors"))
    model = backbone("resnet18", tmp_path / "r18.safetensors")
    assert torch.equal(model.layer4[1].conv2.weight, src.layer4[1].conv2.weight)

    with pytest.raises(RuntimeError, match="does not fit.*missing"):
        backbone("resnet34", tmp_path / "r18.safetensors")
    with pytest.raises(FileNotFoundError, match="backbone_weights"):
        backbone("resnet18", tmp_path / "none.pth")


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def test_pretrained_offline_fails_fast_with_instructions(empty_caches, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"HF_HUB_OFFLINE.*backbone_weights: PATH.*--set"):
        pretrained_file("pvt_v2_b0")
    assert time.monotonic() - start < 10


def test_pretrained_unreachable_hub_fails_fast(empty_caches, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(pretrained, "_hub_endpoint", lambda: "http://127.0.0.1:9")  # closed port
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="127.0.0.1 cannot be reached.*model.safetensors"):
        pretrained_file("resnet18")
    assert time.monotonic() - start < 10


def test_pretrained_offline_fails_at_once_behind_a_proxy_too(empty_caches, proxy_only, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match=r"HF_HUB_OFFLINE is set.*backbone_weights: PATH"):
        pretrained_file("resnet18")
    assert proxy_only.tried == []  # nothing was probed


def test_behind_a_proxy_the_hub_download_is_attempted(fake_hub, proxy_only, monkeypatch):
    """Direct connections refused, HTTPS_PROXY set: the probe asks the proxy, and the hub's
    download (which reads the same variables) runs."""
    from selm.weights.cache import network_problem

    monkeypatch.setattr(pretrained, "network_problem", network_problem)  # the real probe
    monkeypatch.setattr(pretrained, "_hub_endpoint", lambda: "https://huggingface.co")
    asked, _ = fake_hub
    pretrained_file("resnet18")
    assert asked == [("timm/resnet18.a1_in1k", "model.safetensors")]
    assert proxy_only.tried == [proxy_only.address]  # not huggingface.co:443


def test_save_and_load_round_trip(official, tmp_path):
    path = tmp_path / "vggish.pth"
    state = dict(official.state_dict())
    state["pproc._pca_matrix"] = torch.zeros(128, 128)  # torchvggish's PCA buffers are ignored
    torch.save(state, path)
    fresh = VGGish("official").eval()
    load_vggish_weights(fresh, path)
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), official(x))


def test_wrapped_state_dicts_unwrap(official, tmp_path):
    state = {f"module.{k}": v for k, v in official.state_dict().items()}  # DataParallel names
    for i, wrapped in enumerate(({"state_dict": state}, {"model": {"vggish": state}})):
        path = tmp_path / f"wrapped{i}.pth"
        torch.save({"epoch": 3, **wrapped}, path)
        fresh = VGGish("official")
        load_vggish_weights(fresh, path)
        assert torch.equal(fresh.features[0].weight, official.features[0].weight)
    torch.save({"epoch": 3}, tmp_path / "none.pth")
    with pytest.raises(ValueError, match="state dict"):
        load_vggish_weights(VGGish("official"), tmp_path / "none.pth")


def test_wrong_files_give_clear_errors(official, tmp_path):
    slim_file = tmp_path / "slim.pth"
    torch.save(VGGish("slim").state_dict(), slim_file)
    shapes = r"shape mismatch \(10\): (.|\n)*features.0.weight: checkpoint \(16, 1, 3, 3\)"
    with pytest.raises(ValueError, match=r"unexpected \(2\): features.9.bias(.|\n)*" + shapes):
        load_vggish_weights(official, slim_file)

    renamed = tmp_path / "renamed.pth"
    torch.save({"conv.weight": torch.zeros(1)}, renamed)
    with pytest.raises(
        ValueError, match=r"missing \(18\): embeddings.0.bias(.|\n)*unexpected \(1\): conv.weight"
    ):
        load_vggish_weights(official, renamed)

    with pytest.raises(ValueError, match="'slim' variant"):
        load_vggish_weights(VGGish("slim"), renamed)

    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a VGGish state dict"):
        load_vggish_weights(official, garbage)


def test_missing_file_says_where_to_get_it(official, tmp_path):
    with pytest.raises(FileNotFoundError, match="vggish-10086976.pth.*--vggish-weights"):
        load_vggish_weights(official, tmp_path / "nowhere.pth")


# --- the paper's backbone weights (a fake hub; nothing is downloaded) ---
@pytest.fixture
def fake_hub(empty_caches, monkeypatch, tmp_path):
    """An online, reachable hub whose `hf_hub_download` serves random weights in the layout of
    the model the repo names and records what was asked for."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(pretrained, "network_problem", lambda url: None)
    asked, served = [], {}

    def download(repo_id, filename, cache_dir=None, **kwargs):
        asked.append((repo_id, filename))
        model = timm.create_model(repo_id.split("/", 1)[1].split(".")[0])
        torch.manual_seed(len(asked))
        state = {
            k: torch.randn_like(v) if v.is_floating_point() else v
            for k, v in model.state_dict().items()
        }
        path = tmp_path / "hub" / repo_id / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path))
        served[repo_id] = state
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return asked, served


def _backbone(name: str, pretrained_as: bool | str = True, path: Path | None = None):
    """timm model `name` with the weights the builder would load for it."""
    model = timm_model(name)
    source = path or pretrained_file(pretrained.pretrained_name(name, pretrained_as))
    load_backbone_weights(model, source)
    return model


def test_true_means_the_papers_imagenet_weights(fake_hub):
    asked, served = fake_hub
    model = _backbone("resnet50")
    assert asked == [("timm/resnet50.tv_in1k", "model.safetensors")]
    for k, v in model.state_dict().items():
        assert torch.equal(v, served["timm/resnet50.tv_in1k"][k]), k
    _backbone("resnet50", "a1_in1k")  # timm's default ResNet-50, by name
    assert asked[-1] == ("timm/resnet50.a1_in1k", "model.safetensors")
    _backbone("resnet18")  # not a paper backbone: timm's default
    assert asked[-1] == ("timm/resnet18.a1_in1k", "model.safetensors")
    assert pretrained.pretrained_name("pvt_v2_b5") == "pvt_v2_b5.in1k"
    from selm.build import build_selm  # the builder, as a training config's model section asks

    selm = build_selm("selm_r50", backbone_pretrained=True, vggish="slim", dim=32, bcsm_depth=1)
    assert asked[-1] == ("timm/resnet50.tv_in1k", "model.safetensors")
    backbone = selm.encoder.backbone.model.state_dict()
    assert torch.equal(
        backbone["layer4.2.conv3.weight"], served["timm/resnet50.tv_in1k"]["layer4.2.conv3.weight"]
    )
    with pytest.raises(ValueError, match=r"'in1k'.*tv_in1k.*true gives the paper's, tv_in1k"):
        _backbone("resnet50", "in1k")


@pytest.mark.parametrize("config", ["s4", "ms3", "avss"])
@pytest.mark.parametrize(
    "backbone, weights", [("r50", "resnet50.tv_in1k"), ("pvt_b5", "pvt_v2_b5.in1k")]
)
def test_the_papers_recipes_ask_for_the_papers_weights(config, backbone, weights):
    from train.config import load_config

    cfg = load_config(Path(__file__).parents[3] / "train" / "configs" / f"{config}_{backbone}.yaml")
    sources = cfg.weight_sources()
    assert (
        pretrained.pretrained_name(cfg.model_config().backbone, sources.backbone_pretrained)
        == weights
    )


@pytest.mark.parametrize(
    "name, files",
    [
        (
            "resnet50",
            [
                "resnet50-19c8e357.pth",
                "https://download.pytorch.org/models/resnet50-19c8e357.pth",
                "https://huggingface.co/timm/resnet50.tv_in1k",
            ],
        ),
        (
            "pvt_v2_b5",
            [
                "pvt_v2_b5.pth",
                "https://github.com/whai362/PVT/releases/download/v2/pvt_v2_b5.pth",
                "https://huggingface.co/timm/pvt_v2_b5.in1k",
            ],
        ),
    ],
)
def test_offline_the_message_names_the_papers_file(empty_caches, monkeypatch, name, files):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError) as err:
        pretrained.pretrained_file(pretrained.pretrained_name(name))
    message = str(err.value)
    for text in files + ["HF_HUB_OFFLINE", "--set model.backbone_weights=PATH"]:
        assert text in message, text


def test_the_papers_resnet50_file_loads_as_backbone_weights(tmp_path):
    """torchvision's layout, in the legacy (pre-zip) format resnet50-19c8e357.pth was saved in."""
    import torchvision

    torch.manual_seed(0)
    source = torchvision.models.resnet50().state_dict()
    path = tmp_path / "resnet50-19c8e357.pth"
    torch.save(source, path, _use_new_zipfile_serialization=False)
    model = _backbone("resnet50", path=path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, source[k]), k
