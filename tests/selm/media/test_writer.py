"""selm.media.writer: the threaded encoder writes what the calling thread would, an encoder
error reaches the writer and leaves no file, and a writer needs a stream to write."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from selm.files import DiskFullError
from selm.media.writer import open_writer


def test_a_writer_needs_a_video_or_an_audio_stream(tmp_path):
    with pytest.raises(ValueError, match="needs size and fps"):
        with open_writer(tmp_path / "x.mp4", size=(4, 4)):
            pass


def _write_clip(path, *, threaded, frames, wave):
    with open_writer(path, size=(64, 48), fps=10, sample_rate=16000, threaded=threaded) as out:
        out.write_audio(wave)
        for i, image in enumerate(frames):
            out.write_frame(image, Fraction(i, 10))


def test_threaded_encoder_writes_the_same_bytes_as_the_calling_thread(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(25)]
    wave = 0.3 * np.sin(np.arange(40000) / 16000 * 2 * np.pi * 440).astype(np.float32)
    _write_clip(tmp_path / "threaded.mp4", threaded=True, frames=frames, wave=wave)
    _write_clip(tmp_path / "inline.mp4", threaded=False, frames=frames, wave=wave)
    threaded = (tmp_path / "threaded.mp4").read_bytes()
    assert threaded == (tmp_path / "inline.mp4").read_bytes()
    with av.open(str(tmp_path / "threaded.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == 25
        assert c.streams.audio


def test_an_encoder_thread_error_reaches_the_writer_and_leaves_no_file(tmp_path):
    frames = [np.full((48, 64, 3), i, np.uint8) for i in range(60)]
    target = tmp_path / "out.mp4"
    with pytest.raises(DiskFullError, match="no space left on"):  # atomic_path's wording
        with open_writer(target, size=(64, 48), fps=10) as out:
            assert out._thread is not None and out._thread.is_alive()
            out.container = _FailingMux(out.container)
            for i, image in enumerate(frames):  # raised by a later write or by flush
                out.write_frame(image, Fraction(i, 10))
    assert out._thread is None  # stopped, not left running
    assert os.listdir(tmp_path) == []


class _FailingMux:
    """A container whose mux fails at the third call, as a full disk would."""

    def __init__(self, container):
        self.container, self.calls = container, 0

    def mux(self, packets):
        self.calls += 1
        if self.calls == 3:
            raise OSError(28, "No space left on device")
        return self.container.mux(packets)

    def __getattr__(self, name):
        return getattr(self.container, name)
