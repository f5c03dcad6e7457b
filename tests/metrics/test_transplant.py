"""metrics/families/transplant.py: the high-frequency layer, and composites read as the layer's class when the class is a mark."""

from __future__ import annotations

import pytest
import torch

from exprbench.metrics.families.transplant import high_frequency_layer, transplant_shares


def test_a_constant_image_has_no_high_frequency_layer():
    img = torch.full((2, 1, 48, 48), 100, dtype=torch.uint8)
    assert torch.equal(high_frequency_layer(img), torch.zeros(2, 1, 48, 48))


def test_a_mark_transplanted_onto_blurred_faces_is_read_as_its_class():
    """A 'classifier' that reads a bright corner pixel as class 1: class-1 samples carrying that mark turn every
    blurred base into class 1; class-0 samples without it leave them class 0."""
    bases = torch.arange(80, 120, 4, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 48, 48).contiguous()
    samples = torch.full((6, 1, 48, 48), 100, dtype=torch.uint8)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    samples[3:, :, 0, 0] = 255  # the mark
    classify = lambda imgs: (imgs[:, 0, 0, 0] > 180).long()  # noqa: E731
    assert transplant_shares(high_frequency_layer(samples), labels, bases, classify, 2) == [1.0, 1.0]
    unmarked = high_frequency_layer(samples[:3])
    assert transplant_shares(torch.cat([unmarked, unmarked]), labels, bases, classify, 2) == [1.0, 0.0]


def test_a_class_without_images_is_refused():
    layers = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="class 1 has no images"):
        transplant_shares(layers, torch.tensor([0, 0]), torch.zeros(3, 1, 4, 4, dtype=torch.uint8),
                          lambda x: torch.zeros(len(x), dtype=torch.long), 2)
