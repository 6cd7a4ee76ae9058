"""Running a model on a video: `predictor` (the boundary between media and tensors), `windows`
(the stream of per-window results), `prediction` (what a whole video gives) and `audio_source`
(what the model hears)."""
