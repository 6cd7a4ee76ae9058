"""selm.render.palette: AVSBench's label colours."""

from selm.render.palette import label_palette


def test_label_palette_is_the_voc_bit_shift_palette():
    palette = label_palette(21)
    assert palette[0].tolist() == [0, 0, 0] and palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0] and palette[3].tolist() == [128, 128, 0]
    assert palette[15].tolist() == [192, 128, 128]  # VOC "person"
