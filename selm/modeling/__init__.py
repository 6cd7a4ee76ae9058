"""The boxes of the paper's figure, as `nn.Module`s only: construction never reads a file or the
network (weights are loaded by `selm.build` and `selm.weights.checkpoint`; tests/selm/modeling/
test_no_io.py enforces it).

vggish -> encoder (timm backbone + dam / dam_official after each stage) -> bcsm (mamba, ssm)
-> clever (mask_head) = model.
"""
