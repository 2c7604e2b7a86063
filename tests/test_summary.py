"""``MLP.summary()``: the per-layer table and the totals."""

import fastbp


def test_summary_of_a_network_with_batch_norm_and_dropout():
    net = fastbp.MLP([64, 256, 128, 10], loss="cross_entropy", dropout=[0.2, 0.0],
                     batch_norm=[True, False], dtype="float32")
    text = net.summary()
    lines = text.splitlines()
    assert lines[0] == "MLP 64 -> 256 -> 128 -> 10   loss: cross_entropy   dtype: float32"
    rows = [ln.split() for ln in lines if ln.startswith("dense_")]
    assert rows == [
        ["dense_0", "64", "256", "relu", "yes", "0.2", "17,152"],    # 64*256 + 256 + 2*256
        ["dense_1", "256", "128", "relu", "-", "-", "32,896"],       # 256*128 + 128
        ["dense_2", "(output)", "128", "10", "softmax", "-", "-", "1,290"],
    ]
    assert 17152 + 32896 + 1290 == net.n_params
    assert "Total params: 51,338 (200.5 KiB)" in lines    # 51,338 * 4 bytes
    assert "Trainable params: 51,338" in lines
    assert "Non-trainable values: 512 batch-norm running statistics (2.0 KiB)" in lines


def test_summary_of_a_perceptron():
    text = fastbp.MLP([2, 1], dtype="float64").summary()
    assert "dense_0 (output)   2    1  identity    -           -             3" in text
    assert "Total params: 3 (24 B)" in text
    assert "Non-trainable values: 0 batch-norm running statistics (0 B)" in text
    assert len([ln for ln in text.splitlines() if ln.startswith("dense_")]) == 1
