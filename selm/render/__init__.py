"""Drawing what a prediction holds: masks on frames (`paint`), the maps inside the model
(`maps`), overlay videos (`overlay`) and AVSBench's label colours (`palette`). Images are
(H, W, 3) uint8 RGB; sizes are (W, H)."""
