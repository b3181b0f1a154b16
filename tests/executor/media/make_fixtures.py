#!/usr/bin/env python3
"""Writes the small image fixtures of executor_media_test into data/ (committed; run again only to
change them): .venv/bin/python tests/executor/media/make_fixtures.py"""
import os

import numpy as np
from PIL import Image

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.makedirs(here, exist_ok=True)
y, x = np.mgrid[0:16, 0:24]
rgb = np.stack([x * 10, y * 15, (x + y) * 5], axis=-1).astype(np.uint8)
Image.fromarray(rgb).save(os.path.join(here, "photo_24x16.jpg"), quality=95)
Image.fromarray(rgb).save(os.path.join(here, "photo_24x16.png"))
exif = Image.Exif()
exif[0x0112] = 6  # rotate 90 degrees clockwise on display
Image.fromarray(rgb).save(os.path.join(here, "photo_24x16_orient6.jpg"), quality=95, exif=exif.tobytes())
Image.fromarray(rgb).save(os.path.join(here, "photo_24x16_progressive.jpg"), quality=95, progressive=True)
