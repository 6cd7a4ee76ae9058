"""End to end: `python app.py` in a subprocess with tiny real checkpoints, via gradio_client."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

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
    video, audio, maps, legend, second, plot, summary = client.predict(
        handle_file(str(example)),
        "original",
        None,
        None,
        "selm-tiny-0",
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
    assert audio.endswith(".wav") and legend.endswith(".png") or legend.endswith(".webp")
    assert len(maps) == 8 and all(item["image"] for item in maps)
    areas = json.loads(plot["plot"])["data"][0]
    assert len(areas["x"]["bdata"] if isinstance(areas["x"], dict) else areas["x"]) > 0
    assert second["maximum"] == 4 and "**5 s**" in summary


def test_illusion_probe_every_negative(client, demo_server, tiny_checkpoints):
    example = demo_server.examples / "boxes.mp4"
    started = time.perf_counter()
    *videos, maps, legend, second, table, plot, summary = client.predict(
        handle_file(str(example)),
        "selm-tiny-0",
        "",
        0.5,
        ["silent", "white noise", "another clip's audio"],
        "tones.mp4",
        None,
        0,
        api_name="/probe_illusion",
    )
    elapsed = time.perf_counter() - started
    print(f"\nillusion probe, 3 negatives, 5 s example: {elapsed:.2f} s")
    scores = [float(s) for s in re.findall(r"illusion score \*\*(\d\.\d{3})\*\*", summary)]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    names = [trace["name"] for trace in json.loads(plot["plot"])["data"]]
    assert names == ["original", "silent", "white noise", "another clip's audio"]
    table = table.get("value", table)  # a Dataframe update
    assert len(table["data"]) == 5 and len(table["headers"]) == 5
    assert len(maps["value"]) == 4 * 7 and maps["columns"] == 7  # 7 maps per condition
    shown = [v["value"] for v in videos if v["visible"]]  # updates: label, visibility, file
    assert len(shown) == 4 and videos[3]["label"] == "another clip's audio: tones.mp4"
    for item in shown:
        with av.open(item) as container:
            assert container.streams.video[0].frames == 40


def test_compare_two_checkpoints(client, demo_server, tiny_checkpoints):
    video_a, video_b, maps, legend, second, plot, summary, eval_a, eval_b = client.predict(
        handle_file(str(demo_server.examples / "boxes.mp4")),
        "noise",
        None,
        None,
        "selm-tiny-0",
        "",
        "selm-tiny-1",
        "",
        0.5,
        0,
        api_name="/compare",
    )
    assert video_a != video_b and "mean IoU" in summary and len(maps["value"]) == 2 * 7
    assert "selm-tiny-0" in summary and "selm-tiny-1" in summary
    assert "selm-tiny-0" in eval_a and "selm-tiny-1" in eval_b


def test_bad_upload_is_a_message_and_the_server_keeps_serving(
    client, demo_server, tmp_path, tiny_checkpoints
):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    run_args = ("original", None, None, "selm-tiny-0")
    with pytest.raises(AppError, match="not a video the demo can read") as err:
        client.predict(handle_file(str(notes)), *run_args, "", 0.5, 0, api_name="/run")
    assert str(tmp_path) not in str(err.value) and "/tmp/" not in str(err.value)
    with pytest.raises(AppError, match="only its listed checkpoints"):
        client.predict(
            handle_file(str(demo_server.examples / "boxes.mp4")),
            *run_args,
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
        "selm-tiny-0",
        "",
        0.5,
        0,
        api_name="/run",
    )
    assert "**silence (muted)**" in summary


def test_a_threshold_past_the_slider_is_refused(client, demo_server):
    """A raw JSON NaN gets past the slider's range check (NaN < 0.05 is false): refused in one
    line, not run into empty masks; 2.0 and -1 the slider refuses itself."""
    import httpx

    example = demo_server.examples / "boxes.mp4"
    with example.open("rb") as f:
        uploaded = httpx.post(
            demo_server.url + "gradio_api/upload", files={"files": (example.name, f)}, timeout=60
        ).json()[0]
    video = json.dumps({"path": uploaded, "meta": {"_type": "gradio.FileData"}})
    body = f'{{"data": [{video}, "original", null, null, "selm-tiny-0", "", NaN, 0]}}'
    call = httpx.post(
        demo_server.url + "gradio_api/call/run",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    events = httpx.get(
        demo_server.url + f"gradio_api/call/run/{call.json()['event_id']}", timeout=120
    ).text
    assert "event: error" in events and "strictly between 0 and 1" in events, events[-500:]
    for threshold in (2.0, -1):
        with pytest.raises(AppError, match="(greater|less) than (maximum|minimum) value"):
            client.predict(
                handle_file(str(example)), "original", None, None, "selm-tiny-0", "",
                threshold, 0, api_name="/run",
            )  # fmt: skip


def test_api_info_shows_no_server_paths(demo_server, tiny_checkpoints):
    info = urllib.request.urlopen(demo_server.url + "gradio_api/info", timeout=30).read().decode()
    for path in (*tiny_checkpoints, demo_server.examples, Path(__file__).resolve().parents[2]):
        assert str(path) not in info
    assert "selm-tiny-0" in info and "boxes.mp4" in info


def test_uploads_over_the_limit_are_refused(demo_server, tmp_path):
    import httpx

    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 * 2**20))  # the test server allows 2 MB
    with pytest.raises(ValueError, match="exceeds the maximum file size of 2097152 bytes"):
        Client(demo_server.url, verbose=False).predict(
            handle_file(str(big)),
            "original",
            None,
            None,
            "selm-tiny-0",
            "",
            0.5,
            0,
            api_name="/run",
        )
    with big.open("rb") as f:  # past the client's own check: the server refuses it too
        response = httpx.post(
            demo_server.url + "gradio_api/upload", files={"files": ("big.mp4", f)}, timeout=60
        )
    assert response.status_code == 413, response.text
    small = tmp_path / "small.mp4"
    small.write_bytes(b"\0" * 1000)
    with small.open("rb") as f:
        assert (
            httpx.post(
                demo_server.url + "gradio_api/upload", files={"files": ("small.mp4", f)}, timeout=60
            ).status_code
            == 200
        )
