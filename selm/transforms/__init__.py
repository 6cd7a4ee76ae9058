"""What the model sees and hears: frames resized and normalised (`frames`), audio as VGGish's
log-mel examples (`log_mel`). Training and inference share these functions."""
