"""exprbench.core.validate: the shared image and label checks raise the caller's error type with one line."""

from __future__ import annotations

import pytest
import torch

from exprbench.core.errors import DataError, InputError, UserError
from exprbench.core.validate import check_class, check_float_images, check_labels, check_uint8_images


def test_uint8_images():
    x = torch.zeros(2, 1, 48, 48, dtype=torch.uint8)
    assert check_uint8_images(x, size=(48, 48)) is x
    for bad, msg in [(x.float(), "expected dtype uint8 .* go through exprbench.data.to_uint8"),
                     (x.int(), r"cast with \.to\(torch.uint8\)"),
                     (x[0], r"expected uint8 images N x \{1,3\} x 48 x 48, got shape \(1, 48, 48\)"),
                     (torch.zeros(2, 2, 48, 48, dtype=torch.uint8), "got shape"),
                     (x[:0], r"empty set \(0 images\)"),
                     ([1, 2], "expected a uint8 torch.Tensor")]:
        with pytest.raises(DataError, match=msg):
            check_uint8_images(bad, "faces", size=(48, 48), error=DataError)
    with pytest.raises(ValueError, match="got shape"):
        check_uint8_images(x, size=(64, 64))


def test_float_images():
    x = torch.zeros(3, 3, 8, 8)
    assert check_float_images(x, channels=3, size=(8, 8), check_range=True) is x
    with pytest.raises(ValueError, match=r"expected float images N x 1 x H x W in \[-1, 1\], got dtype torch.uint8"):
        check_float_images(x.to(torch.uint8), channels=1)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]"):
        check_float_images(x + 2, check_range=True)
    with pytest.raises(ValueError, match=r"outside \[-1, 1\]"):
        check_float_images(x * float("nan"), check_range=True)


def test_labels_and_class():
    assert check_labels([0, 6, 3], 3, 7).dtype == torch.int64
    for bad, n, msg in [(torch.tensor([0, 7]), 2, "label 7 outside 0..6"), (torch.tensor([-1]), 1, "label -1 outside 0..6"),
                        (torch.tensor([0.0]), 1, "expected 1 integer labels in 0..6"),
                        (torch.tensor([0, 1]), 3, "2 labels for 3 images"), (torch.zeros(2, 2, dtype=torch.long), None, "integer labels")]:
        with pytest.raises(InputError, match=msg):
            check_labels(bad, n, 7, "--labels y.txt", error=InputError)
    assert issubclass(InputError, UserError)  # the CLI prints one line and exits 2
    assert check_class(2, 7) == 2
    for bad in (7, -1, True, 1.0):
        with pytest.raises(ValueError, match="expected a class index 0..6"):
            check_class(bad, 7)
