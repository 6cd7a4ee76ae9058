"""AVSBench's three settings, named once for the model presets, the data loaders, training,
evaluation and the command lines: `s4` (single source, 5 frames), `ms3` (multiple sources,
5 frames), `avss` (semantic, 10 frames, 71 classes)."""

SETTINGS = ("s4", "ms3", "avss")
