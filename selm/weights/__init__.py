"""Where weights come from and how they reach a model: a checkpoint spec resolved to a local
folder (`resolve`), checkpoints (`checkpoint`), state dicts (`state_dict`), pretrained backbones
and VGGish (`pretrained`), the download cache (`cache`) and resumable, checked downloads into it
(`download`), the authors' release (`release`, `release_layout`) and model cards
(`model_card`)."""
