"""End-to-end speed on CPU: clips generated on the fly (testsrc2 + a 440 Hz tone, H.264 + AAC)
through the Predictor, the CLI and the demo's actions.

    OMP_NUM_THREADS=2 python benchmarks/bench_e2e.py --seconds 5 60 300 \
        --out benchmarks/results/e2e_cpu.json [--code OTHER_CHECKOUT --label before]

Every case runs in its own process (so peak RSS is that case's); each row has the wall time,
the split by stage where the code reports one (decode, log-mel, model, render, encode), the
peak RSS and the load average before and after. `--code` runs the same cases against another
checkout of the repository (e.g. the code before a change) with the same clips, so ratios
between the two are measured on the same machine, minutes apart.

Cases: `predictor` (Predictor.predict, overlay written: in the same pass where the code can,
else with render.write_overlay_video), `overlay` (decoding the clip to RGB, then
write_overlay_video for a prediction already made, in one process: the "overlay at most 3x
decoding" ratio), `cli` (python -m selm.predict, a fresh interpreter), `startup`
(imports, model load and the first progress report of the CLI's pipeline), `demo`
(app.actions.run_model + app.views.show_run at the demo's 480 px); on request `predictor-thumbnails`
(the predictor case keeping 160-px sampled frames, as the CLI does).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "assets" / "checkpoints" / "selm-hard"  # the demo default (app.py)
CASES = ("predictor", "overlay", "cli", "startup", "demo", "predictor-thumbnails")


def make_clip(path: Path, seconds: int, size=(640, 360), fps: int = 30) -> Path:
    """testsrc2 at size and fps + a 440 Hz stereo tone at 44.1 kHz, H.264 (veryfast) + AAC."""
    import av
    import av.filter
    import numpy as np

    if path.exists():
        return path
    graph = av.filter.Graph()
    source = graph.add("testsrc2", f"size={size[0]}x{size[1]}:rate={fps}:duration={seconds}")
    sink = graph.add("buffersink")
    source.link_to(sink)
    graph.configure()
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "stereo"
        t = np.arange(seconds * 44100) / 44100
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 44100, 0, Fraction(1, 44100)
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
        while True:
            try:
                image = graph.pull()
            except (av.error.EOFError, av.error.BlockingIOError):
                break
            out.mux(video.encode(image))
        out.mux(video.encode(None))
    tmp.rename(path)
    return path


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _predict(predictor, clip: Path, overlay: Path, progress=None, **options):
    """The code's fastest way to a prediction + overlay video: the predictor's windows drawn
    and encoded in the same pass where it yields them; in older trees predict(overlay=), or a
    prediction drawn again."""
    if hasattr(predictor, "windows"):
        from selm.inference.prediction import Prediction
        from selm.render.overlay import OverlayVideo

        windows = predictor.windows(str(clip), progress=progress, video_frames=True, **options)
        with OverlayVideo(overlay) as writer:
            return Prediction.from_windows(windows, writer.add)
    params = inspect.signature(predictor.predict).parameters
    if "overlay" in params:
        return predictor.predict(str(clip), overlay=overlay, progress=progress, **options)
    pred = predictor.predict(str(clip), progress=progress)
    _redraw()(pred, overlay)
    return pred


def _redraw():
    """write_overlay_video, wherever the checkout keeps it."""
    try:
        from selm.render.overlay import write_overlay_video
    except ImportError:  # older trees
        from selm.render import write_overlay_video
    return write_overlay_video


def worker(case: str, clip: Path, checkpoint: Path, work: Path) -> dict:
    start = time.perf_counter()
    row: dict = {"case": case}
    if case == "cli":
        cmd = [sys.executable, "-m", "selm.predict", str(clip), "--checkpoint", str(checkpoint)]
        cmd += ["--out", str(work / "cli.mp4")]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            raise RuntimeError(run.stderr[-2000:])
        row["wall_s"] = time.perf_counter() - start
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return row
    if case in ("startup", "demo"):  # as python -m selm.predict and app.py do, where they do
        try:
            from selm.runtime import yield_idle_threads

            yield_idle_threads()
        except ImportError:
            pass
    from selm.inference.predictor import Predictor

    if case == "startup":
        import selm.predict  # noqa: F401  (what the CLI imports)

        row["import_s"] = time.perf_counter() - start
        predictor = Predictor.from_pretrained(str(checkpoint))
        row["load_s"] = time.perf_counter() - start
        first = []

        def progress(fraction, message):
            if not first:
                first.append(time.perf_counter() - start)

        _predict(predictor, clip, work / "startup.mp4", progress)
        row["first_window_s"] = first[0]
        row["wall_s"] = time.perf_counter() - start
        return row
    predictor = Predictor.from_pretrained(str(checkpoint))
    if case in ("predictor", "predictor-thumbnails"):
        # -thumbnails: the sampled frames kept at the CLI's 160 px (Predictor.predict's
        # frames_max_side), so that the peak shows the pass itself, not the frames it returns
        options = {"frames_max_side": 160} if case == "predictor-thumbnails" else {}
        begin = time.perf_counter()
        pred = _predict(predictor, clip, work / "overlay.mp4", **options)
        row["wall_s"] = time.perf_counter() - begin
        row["split_s"] = dict(getattr(pred, "timings", {}) or {})
    elif case == "overlay":
        import av

        write_overlay_video = _redraw()
        pred = predictor.predict(str(clip))
        begin = time.perf_counter()
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            count = sum(1 for f in container.decode(stream) if f.to_ndarray(format="rgb24").size)
        row["decode_rgb_s"] = time.perf_counter() - begin
        row["frames"] = count
        begin = time.perf_counter()
        write_overlay_video(pred, work / "again.mp4")
        row["overlay_s"] = time.perf_counter() - begin
        row["overlay_over_decode"] = row["overlay_s"] / row["decode_rgb_s"]
    elif case == "demo":
        sys.path.insert(0, str(Path(sys.modules["selm"].__file__).parents[1]))
        from app.validation import Limits

        try:
            from app import actions, views
        except ImportError:  # older trees: app.handlers ran and showed
            from app import handlers as actions

            views = actions
        # the overlay written in the predicting pass, where the demo does so
        kw = {"overlay": work / "pass.mp4"} if hasattr(actions, "overlay_paths") else {}
        begin = time.perf_counter()
        limits = Limits(max_seconds=3600.0, max_pixels=1920 * 1080)
        pred = actions.run_model(
            predictor, str(clip), actions.AudioRequest(), limits=limits, max_side=480, **kw
        )
        views.show_run(pred, threshold=0.5, frame=0, level=0, workdir=work, **kw)
        row["wall_s"] = time.perf_counter() - begin
    row["peak_rss_mb"] = _rss_mb()
    return row


def cpu_model() -> str:
    """The CPU's model name (Linux), e.g. to tell apart the machines a shared VM lands on."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_ticks() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat: user ... steal), or None off Linux."""
    try:
        return [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    except (OSError, ValueError):
        return None


def steal_fraction(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of the CPU time between two `cpu_ticks()` that the hypervisor gave to other
    machines (steal): load average does not show it, and it slows a shared VM as much."""
    if before is None or after is None:
        return None
    spent = [b - a for a, b in zip(before, after)]
    return spent[7] / sum(spent) if sum(spent) else 0.0


def run_case(case: str, clip: Path, args, code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as work:
        cmd = [sys.executable, __file__, "--worker", case, "--clip", str(clip)]
        cmd += ["--checkpoint", str(args.checkpoint), "--work", work]
        load_before, ticks = os.getloadavg()[0], cpu_ticks()
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=code)
        if run.returncode:
            return {"case": case, "error": run.stderr.strip().splitlines()[-1:]}
        row = json.loads(run.stdout.strip().splitlines()[-1])
    row["load_before"], row["load_after"] = load_before, os.getloadavg()[0]
    row["steal"] = steal_fraction(ticks, cpu_ticks())
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, nargs="+", default=[5, 60, 300])
    parser.add_argument("--cases", nargs="+", default=list(CASES[:5]), choices=CASES)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to measure")
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "selm-bench")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to append rows to")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.clip, args.checkpoint, args.work)))
        return
    args.clips.mkdir(parents=True, exist_ok=True)
    rows = []
    for seconds in args.seconds:
        clip = make_clip(args.clips / f"testsrc2_{seconds}s_640x360.mp4", seconds)
        for case in args.cases:
            if case == "startup" and seconds != min(args.seconds):
                continue
            row = {"label": args.label, "seconds": seconds, **run_case(case, clip, args, args.code)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out is not None:
        old = json.loads(args.out.read_text()) if args.out.exists() else {"rows": []}
        machine = {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        }
        old.update(machine=machine)
        for row in rows:
            row["cpu"] = machine["cpu"]
        old["rows"] += rows
        args.out.write_text(json.dumps(old, indent=1))


if __name__ == "__main__":
    main()
