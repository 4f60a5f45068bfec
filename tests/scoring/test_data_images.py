"""Images of any size and mode: conversion to grey/RGB (alpha over white, palettes expanded, 16-bit scaled), the
majority-mode channel choice, resize + centre crop for scoring and a seeded random-resized crop for training."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datadiet_hub.scoring.data.images import (
    choose_channels,
    convert_channels,
    pad_crop_flip,
    prepare_image,
    random_resized_crop,
    resize_center_crop,
)


def test_alpha_is_composited_over_white_not_dropped():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)  # opaque
    rgba[0, 1] = (200, 0, 0, 0)  # fully transparent red: shows white
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black: mid grey
    out = np.asarray(convert_channels(Image.fromarray(rgba, "RGBA"), 3))
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [255, 255, 255]
    assert 120 <= out[1, 0, 0] <= 135 and out[1, 0, 0] == out[1, 0, 2]
    grey = np.asarray(convert_channels(Image.fromarray(rgba, "RGBA"), 1))
    assert grey.shape == (2, 2) and grey[0, 1] == 255


def test_palette_images_go_through_their_palette():
    image = Image.new("P", (3, 1))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    image.putdata([0, 1, 2])
    out = np.asarray(convert_channels(image, 3))
    assert out.tolist() == [[[255, 0, 0], [0, 255, 0], [0, 0, 255]]]
    image.info["transparency"] = 1  # index 1 transparent: white
    assert np.asarray(convert_channels(image, 3))[0, 1].tolist() == [255, 255, 255]


def test_grey_rgb_and_wide_modes():
    grey = Image.fromarray(np.array([[0, 128, 255]], np.uint8), "L")
    rgb = np.asarray(convert_channels(grey, 3))
    assert rgb.shape == (1, 3, 3) and (rgb[..., 0] == rgb[..., 2]).all() and rgb[0, 1, 0] == 128
    wide = Image.fromarray(np.array([[1000, 3000]], np.int32), "I")
    assert np.asarray(convert_channels(wide, 1)).tolist() == [[0, 255]]
    la = Image.fromarray(np.array([[[50, 255], [50, 0]]], np.uint8), "LA")
    assert np.asarray(convert_channels(la, 1)).tolist() == [[50, 255]]
    with pytest.raises(ValueError, match="channels=2"):
        convert_channels(grey, 2)


def test_channels_by_majority_mode_with_reason():
    assert choose_channels(["L"] * 5 + ["RGB"] * 3)[0] == 1
    channels, reason = choose_channels(["L", "RGBA", "P", "RGB"])
    assert channels == 3 and "majority" in reason and "RGBA x1" in reason
    assert choose_channels(["L", "RGB"])[0] == 3  # ties keep colour
    with pytest.raises(ValueError, match="empty"):
        choose_channels([])


@pytest.mark.parametrize(("size", "side"), [((40, 20), 16), ((20, 40), 16), ((17, 17), 17), ((96, 60), 32)])
def test_resize_center_crop_gives_the_square(size, side):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    out = resize_center_crop(image, side)
    assert out.size == (side, side)
    if size == (side, side):
        assert np.array_equal(np.asarray(out), np.asarray(image))  # no resampling when already the right size


def test_center_crop_keeps_the_centre():
    array = np.zeros((10, 30), np.uint8)
    array[:, 10:20] = 255  # a bright centre band
    out = np.asarray(resize_center_crop(Image.fromarray(array), 10))
    assert out.mean() > 250


def test_random_resized_crop_is_seeded_and_varies():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8))
    a = random_resized_crop(image, 24, np.random.default_rng(5))
    b = random_resized_crop(image, 24, np.random.default_rng(5))
    c = random_resized_crop(image, 24, np.random.default_rng(6))
    assert a.size == (24, 24) and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_prepare_image_views():
    value = Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 45, 4), dtype=np.uint8), "RGBA")
    plain = prepare_image(value, size=20, channels=3)
    assert plain.shape == (3, 20, 20) and plain.dtype == np.uint8
    assert np.array_equal(plain, prepare_image(value, size=20, channels=3, augmentation="none"))
    rrc = prepare_image(value, size=20, channels=3, augmentation="resized-crop-flip", rng=np.random.default_rng(0))
    assert rrc.shape == (3, 20, 20) and not np.array_equal(rrc, plain)
    grey = prepare_image(value, size=8, channels=1)
    assert grey.shape == (1, 8, 8)


def test_pad_crop_flip_is_a_window_of_the_padded_image():
    array = np.random.default_rng(3).integers(1, 256, (3, 8, 8), dtype=np.uint8)
    out = pad_crop_flip(array, np.random.default_rng(0))
    padded = np.pad(array, ((0, 0), (4, 4), (4, 4)))
    windows = [padded[:, y : y + 8, x : x + 8] for y in range(9) for x in range(9)]
    assert any(np.array_equal(out, w) or np.array_equal(out, w[:, :, ::-1]) for w in windows)
