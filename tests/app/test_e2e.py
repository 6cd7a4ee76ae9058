"""End to end: `python app.py` in a subprocess with tiny real checkpoints, via gradio_client."""

from __future__ import annotations

import json
import re
import time

import av
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


@pytest.fixture(scope="module")
def client(demo_server, tmp_path_factory):
    return Client(
        demo_server.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads"))
    )


def test_run_on_an_example(client, demo_server, tiny_checkpoints):
    example = demo_server.examples / "boxes.mp4"
    started = time.perf_counter()
    video, audio, maps, second, plot, summary = client.predict(
        handle_file(str(example)),
        "original",
        None,
        None,
        str(tiny_checkpoints[0]),
        "",
        0.5,
        0,
        api_name="/run",
    )
    elapsed = time.perf_counter() - started
    print(f"\nstart-up {demo_server.startup:.1f} s; Run on a 5 s example {elapsed:.2f} s")
    with av.open(video) as container:
        assert container.streams.video and container.streams.audio
        assert container.streams.video[0].frames == 40  # 5 s at 8 fps
    assert audio.endswith(".wav")
    assert len(maps) == 8 and all(item["image"] for item in maps)
    assert maps[1]["caption"] == "mask (p > 0.50)"
    areas = json.loads(plot["plot"])["data"][0]
    assert len(areas["x"]["bdata"] if isinstance(areas["x"], dict) else areas["x"]) > 0
    assert second["maximum"] == 4 and "**5 s**" in summary


def test_illusion_probe_returns_a_score(client, demo_server, tiny_checkpoints):
    example = demo_server.examples / "boxes.mp4"
    with_audio, muted, plot, summary = client.predict(
        handle_file(str(example)), str(tiny_checkpoints[0]), "", 0.5, api_name="/probe_illusion"
    )
    score = float(re.search(r"Illusion score (\d\.\d{3})", summary).group(1))
    assert 0.0 <= score <= 1.0
    names = [trace["name"] for trace in json.loads(plot["plot"])["data"]]
    assert names == ["with its audio", "muted (illusion score)"]
    for path in (with_audio, muted):
        with av.open(path) as container:
            assert container.streams.video[0].frames == 40


def test_compare_two_checkpoints(client, demo_server, tiny_checkpoints):
    a, b = (str(p) for p in tiny_checkpoints)
    video_a, video_b, plot, summary = client.predict(
        handle_file(str(demo_server.examples / "boxes.mp4")),
        "noise",
        None,
        None,
        a,
        "",
        b,
        "",
        0.5,
        api_name="/compare",
    )
    assert video_a != video_b and "mean IoU" in summary
    assert "selm-tiny-0" in summary and "selm-tiny-1" in summary


def test_bad_upload_is_a_message_and_the_server_keeps_serving(
    client, demo_server, tmp_path, tiny_checkpoints
):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    with pytest.raises(AppError, match="not a video the demo can read"):
        client.predict(
            handle_file(str(notes)),
            "original",
            None,
            None,
            str(tiny_checkpoints[0]),
            "",
            0.5,
            0,
            api_name="/run",
        )
    with pytest.raises(AppError, match="not a SelM checkpoint directory"):
        client.predict(
            handle_file(str(demo_server.examples / "boxes.mp4")),
            "original",
            None,
            None,
            str(tiny_checkpoints[0]),
            str(tmp_path),
            0.5,
            0,
            api_name="/run",
        )
    *_, summary = client.predict(
        handle_file(str(demo_server.examples / "boxes.mp4")),
        "mute",
        None,
        None,
        str(tiny_checkpoints[0]),
        "",
        0.5,
        0,
        api_name="/run",
    )
    assert "**mute**" in summary
