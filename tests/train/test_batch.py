"""train.batch: a batch must carry the tensors every data set gives."""

import pytest
import torch

from train.batch import to_device


def test_batches_without_the_contract_keys_are_rejected():
    with pytest.raises(KeyError, match="frame_mask"):
        to_device(
            {
                "frames": torch.zeros(1),
                "audio": torch.zeros(1),
                "masks": torch.zeros(1),
                "has_gt": torch.zeros(1),
            },
            torch.device("cpu"),
        )
