"""A small AVS-Synth sample, generated once per test session, that every loader test reads."""

from pathlib import Path

import pytest

SYNTH_SEED = 7
SYNTH_SIZE = 64
SYNTH_SIZES = {"train": 5, "val": 4, "test": 4}  # clips per split, for each layout


@pytest.fixture(scope="session")
def synth_factory(tmp_path_factory):
    """`make(**generate_kwargs) -> root`: an AVS-Synth set written once per session for each
    distinct set of arguments (defaults: the `synth_root` sample; e.g. make(size=96))."""
    from train.synth import generate

    made: dict[tuple, Path] = {}

    def make(**kwargs) -> Path:
        kwargs = dict(
            dict(
                seed=SYNTH_SEED,
                size=SYNTH_SIZE,
                sizes=SYNTH_SIZES,
                counterfactuals=True,
                workers=1,
                progress=False,
            ),
            **kwargs,
        )
        key = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        if key not in made:
            made[key] = generate(tmp_path_factory.mktemp("avs_synth"), **kwargs)
        return made[key]

    return make


@pytest.fixture(scope="session")
def synth_root(synth_factory) -> Path:
    """Root of an AVS-Synth set: S4, MS3 and AVSS layouts (5/4/4 clips each), 64 x 64 frames,
    with the counterfactual test sets under `counterfactual/{silent,noise,swapped,offscreen}`."""
    return synth_factory()
