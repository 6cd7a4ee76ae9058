"""Media files in and out (PyAV): opening a file and its limits (`container`), frames at
AVSBench's sampling (`video`), 16 kHz mono audio (`audio`), and encoding (`writer`)."""
