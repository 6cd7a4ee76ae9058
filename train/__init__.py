"""Training side of SelM: AVSBench loaders (`train.data`), the AVS-Synth generator
(`train.synth`), the data checker (`train.check_data`), training and evaluation entry points."""
