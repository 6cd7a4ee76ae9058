"""What each tab's components receive: the outputs of a run, an illusion probe or a comparison
(videos moved into the components' block caches, the maps gallery, the second slider, plots,
summaries) and the maps of another second or level; every result goes to the session's store."""

from __future__ import annotations

import gradio as gr

from app import views
from app.rendering import gallery
from selm.render.maps import frame_maps, map_legend, map_scales


def _slider(num_frames: int, value: int = 0) -> gr.Slider:
    last = max(num_frames - 1, 1)
    return gr.Slider(
        0,
        last,
        value=min(max(int(value), 0), num_frames - 1),
        step=1,
        interactive=num_frames > 1,
        label="Second",
    )


def run_outputs(
    store,
    overlay_video,
    heard,
    result,
    threshold_value,
    second_value,
    level_value,
    workdir,
    *,
    key=None,
    note="",
    overlay=None,
    progress=None,
):
    """The Result tab's outputs for a (display-size) prediction; its files go to the caches
    of the `overlay_video` and `heard` components; the prediction goes to `store`. `overlay`:
    the overlay video its run wrote at this threshold (else it is drawn again)."""
    pred = result
    view = views.show_run(
        pred,
        threshold=threshold_value,
        frame=int(second_value),
        level=int(level_value),
        workdir=workdir,
        note=note,
        overlay=overlay,
        progress=progress,
    )
    return (
        overlay_video.move_resource_to_block_cache(view.video),
        heard.move_resource_to_block_cache(view.audio),
        gallery(view.maps),
        view.legend,
        _slider(view.num_frames, second_value),
        view.plot,
        view.summary,
        store.put(pred, key),
    )


def illusion_outputs(
    store,
    videos,
    result,
    threshold_value,
    second_value,
    level_value,
    workdir,
    *,
    key=None,
    overlays=None,
    progress=None,
):
    view = views.show_illusion(
        result,
        threshold=threshold_value,
        workdir=workdir,
        second=int(second_value),
        level=int(level_value),
        overlays=overlays,
        progress=progress,
    )
    shown = list(view.videos.items())
    updates = []
    for i, component in enumerate(videos):
        if i < len(shown):
            label, path = shown[i]
            updates.append(
                gr.Video(
                    value=component.move_resource_to_block_cache(path),
                    label=_condition_label(label, result[label].audio_label),
                    visible=True,
                )
            )
        else:
            updates.append(gr.Video(value=None, visible=False))
    headers, rows = view.table
    return (
        *updates,
        gr.Gallery(value=gallery(view.maps), columns=view.columns),
        view.legend,
        _slider(view.num_frames, second_value),
        gr.Dataframe(value=rows, headers=headers),
        view.plot,
        view.summary,
        store.put(result, key),
    )


def _condition_label(label: str, audio_label: str) -> str:
    """A condition's video label: its name, and the file heard where it names one."""
    if audio_label in ("original", "mute", "noise"):
        return label
    return f"{label}: {audio_label}"


def compare_outputs(
    store,
    video_a,
    video_b,
    result,
    threshold_value,
    second_value,
    level_value,
    workdir,
    *,
    key=None,
    overlays=None,
    progress=None,
):
    pred_a, pred_b, names, cards = result
    view = views.show_compare(
        pred_a,
        pred_b,
        names,
        threshold=threshold_value,
        workdir=workdir,
        second=int(second_value),
        level=int(level_value),
        overlays=overlays,
        progress=progress,
    )
    return (
        gr.Video(value=video_a.move_resource_to_block_cache(view.video_a), label=names[0]),
        gr.Video(value=video_b.move_resource_to_block_cache(view.video_b), label=names[1]),
        gr.Gallery(value=gallery(view.maps), columns=view.columns),
        view.legend,
        _slider(view.num_frames, second_value),
        view.plot,
        view.summary,
        cards[0],
        cards[1],
        store.put(result, key),
    )


def run_maps(result, threshold_value, second_value, level_value):
    view_maps = frame_maps(result, int(second_value), int(level_value), threshold_value)
    return gallery(view_maps), map_legend([result], int(level_value))


def illusion_maps_of(result, threshold_value, second_value, level_value):
    scales = map_scales(result.values())
    tiles, columns = views.condition_rows(
        result, int(second_value), int(level_value), threshold_value, scales
    )
    legend = map_legend(list(result.values()), int(level_value), scales)
    return gr.Gallery(value=gallery(tiles), columns=columns), legend


def compare_maps_of(result, threshold_value, second_value, level_value):
    pred_a, pred_b, names, _ = result
    preds = {names[0]: pred_a, names[1]: pred_b}
    scales = map_scales(preds.values())
    tiles, columns = views.condition_rows(
        preds, int(second_value), int(level_value), threshold_value, scales
    )
    legend = map_legend([pred_a, pred_b], int(level_value), scales)
    return gr.Gallery(value=gallery(tiles), columns=columns), legend
