"""Losses (docs/model.md, section 'Losses') against values worked out by hand on tiny tensors."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from selm.config import SelMConfig
from selm.losses import dice_loss, selm_loss


def _output(logits, hit_maps=None):
    b, t = logits.shape[:2]
    if hit_maps is None:
        hit_maps = [torch.zeros(b, t, 2, 1, 1) for _ in range(3)]
    return SimpleNamespace(logits=logits, hit_maps=hit_maps)


def _bce(x, y):  # -[y log s(x) + (1 - y) log(1 - s(x))]
    s = 1 / (1 + math.exp(-x))
    return -(y * math.log(s) + (1 - y) * math.log(1 - s))


def test_dice_loss_by_hand():
    probs = torch.tensor([[0.5, 1.0, 0.0, 0.25], [0.0, 0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    # frame 0: 2 * 1.5 / (1.3125 + 2 + 0.002); frame 1 (both empty): 1 - 0 / 0.002
    expected = ((1 - 3.0 / 3.3145) + 1.0) / 2
    assert dice_loss(probs, target).item() == pytest.approx(expected, rel=1e-6)
    assert dice_loss(probs.reshape(2, 2, 2), target.reshape(2, 2, 2)).item() == pytest.approx(
        expected, rel=1e-6
    )


def test_binary_loss_terms_by_hand():
    logits = torch.tensor([2.0, -1.0, 0.5, 0.0]).reshape(1, 1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    bce = sum(_bce(x, y) for x, y in [(2.0, 1), (-1.0, 0), (0.5, 0), (0.0, 1)]) / 4
    p = [1 / (1 + math.exp(-x)) for x in (2.0, -1.0, 0.5, 0.0)]
    dice = 1 - 2 * (p[0] + p[3]) / (sum(v * v for v in p) + 2 + 0.002)
    has_gt = torch.ones(1, 1, dtype=torch.bool)

    loss, parts = selm_loss(_output(logits), target, has_gt, SelMConfig(loss="bce"))
    assert loss.item() == pytest.approx(bce, rel=1e-6) and set(parts) == {"bce", "loss"}
    loss, parts = selm_loss(_output(logits), target, has_gt, SelMConfig(loss="bce+dice"))
    assert parts["bce"] == pytest.approx(bce, rel=1e-6)
    assert parts["dice"] == pytest.approx(dice, rel=1e-6)
    assert loss.item() == pytest.approx(bce + dice, rel=1e-6) == parts["loss"]


def test_aux_term_uses_the_last_tokens_hit_maps_and_weights():
    gt = torch.zeros(1, 1, 4, 4)
    gt[..., :2, :2] = 1  # 4 foreground pixels
    last = [
        torch.tensor([[1.0, 0.0], [0.0, 0.0]]),  # nearest x2 -> exactly the GT
        torch.zeros(2, 2),  # nothing
        torch.ones(2, 2),  # everything
    ]
    hits = [torch.stack([1 - m, m])[None, None] for m in last]  # (1, 1, K=2, 2, 2)
    dices = [1 - 8 / (4 + 4 + 0.002), 1.0, 1 - 8 / (16 + 4 + 0.002)]
    logits = torch.zeros(1, 1, 1, 4, 4)
    has_gt = torch.ones(1, 1, dtype=torch.bool)
    base, _ = selm_loss(_output(logits, hits), gt, has_gt, SelMConfig(loss="bce+dice"))
    for weights in [(0.001, 0.01, 0.1), (1.0, 2.0, 3.0)]:
        cfg = SelMConfig(loss="bce+dice+aux", aux_weights=weights)
        loss, parts = selm_loss(_output(logits, hits), gt, has_gt, cfg)
        aux = sum(w * d for w, d in zip(weights, dices))
        assert parts["aux"] == pytest.approx(aux, rel=1e-6)
        assert loss.item() == pytest.approx(base.item() + aux, rel=1e-6)


def test_frames_without_ground_truth_contribute_nothing():
    torch.manual_seed(0)
    cfg = SelMConfig(loss="bce+dice+aux")
    logits = torch.randn(2, 3, 1, 4, 4, requires_grad=True)
    hits = [torch.rand(2, 3, 2, 2, 2).round() for _ in range(3)]
    target = torch.rand(2, 3, 4, 4).round()
    has_gt = torch.tensor([[True, False, False], [True, False, True]])
    loss, _ = selm_loss(_output(logits, hits), target, has_gt, cfg)
    loss.backward()
    assert logits.grad[~has_gt].abs().sum() == 0 and logits.grad[has_gt].abs().sum() > 0

    other_target, other_logits = target.clone(), logits.detach().clone()
    other_target[~has_gt] = 1 - other_target[~has_gt]
    other_logits[~has_gt] = 5.0
    again, _ = selm_loss(_output(other_logits, hits), other_target, has_gt, cfg)
    assert again.item() == pytest.approx(loss.item(), rel=1e-6)
    # the same frames alone, as a batch of 3 single-frame clips
    keep = has_gt.flatten()
    alone, _ = selm_loss(
        _output(
            logits.detach().flatten(0, 1)[keep][:, None],
            [h.flatten(0, 1)[keep][:, None] for h in hits],
        ),
        target.flatten(0, 1)[keep][:, None],
        None,
        cfg,
    )
    assert alone.item() == pytest.approx(loss.item(), rel=1e-6)

    none = torch.zeros(2, 3, dtype=torch.bool)
    empty, parts = selm_loss(_output(logits, hits), target, none, cfg)
    empty.backward()
    assert empty.item() == 0.0 and parts == {"loss": 0.0}


def test_semantic_cross_entropy_and_aux_by_hand():
    logits = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]).reshape(1, 1, 3, 1, 2)
    target = torch.tensor([[2, 0]]).reshape(1, 1, 1, 2)
    ce = (-math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3))) + math.log(3)) / 2
    hits = [torch.tensor([0.0, 1.0]).reshape(1, 1, 2, 1, 1)] * 3  # last token owns everything
    aux = 1 - 2 * 1 / (2 + 1 + 0.002)  # against (label > 0) = [1, 0]
    has_gt = torch.ones(1, 1, dtype=torch.bool)
    cfg = SelMConfig(num_classes=3, loss="bce+dice+aux", aux_weights=(0.5, 0.25, 0.25))
    loss, parts = selm_loss(_output(logits, hits), target, has_gt, cfg)
    assert parts["ce"] == pytest.approx(ce, rel=1e-6)
    assert parts["aux"] == pytest.approx(aux, rel=1e-6)
    assert loss.item() == pytest.approx(ce + aux, rel=1e-6)
    loss, parts = selm_loss(_output(logits, hits), target, has_gt, cfg.replace(loss="bce"))
    assert set(parts) == {"ce", "loss"} and loss.item() == pytest.approx(ce, rel=1e-6)


def test_logits_are_resized_to_the_target():
    torch.manual_seed(0)
    cfg = SelMConfig(loss="bce+dice")
    logits = torch.randn(1, 2, 1, 3, 3)
    target = torch.rand(1, 2, 6, 6).round()
    resized = F.interpolate(logits[0], size=(6, 6), mode="bilinear", align_corners=True)[None]
    a, _ = selm_loss(_output(logits), target, None, cfg)
    b, _ = selm_loss(_output(resized), target, None, cfg)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_bad_inputs_say_what_is_wrong():
    cfg = SelMConfig()
    logits = torch.zeros(1, 2, 1, 4, 4)
    with pytest.raises(ValueError, match="target"):
        selm_loss(_output(logits), torch.zeros(2, 4, 4), None, cfg)
    with pytest.raises(ValueError, match="has_gt"):
        selm_loss(_output(logits), torch.zeros(1, 2, 4, 4), torch.ones(2, dtype=torch.bool), cfg)
    with pytest.raises(ValueError, match="class ids"):
        selm_loss(
            _output(torch.zeros(1, 2, 3, 4, 4)),
            torch.full((1, 2, 4, 4), 3),
            None,
            cfg.replace(num_classes=3),
        )
