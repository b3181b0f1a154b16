// The EXIF orientation of an image file and its transposition, as Pillow's `Image.getexif()` and
// `ImageOps.exif_transpose` (which transformers' `load_image` applies) find and apply it: the
// Orientation tag (0x0112) of the EXIF block's first IFD, else `tiff:Orientation` in the XMP packet.
#pragma once

#include <cstdint>
#include <string>

#include "executor/media/image_file.h"

namespace shardplan {

// The Orientation tag of an EXIF block (a TIFF header and IFD0, optionally after "Exif\0\0"), or 0
// when the block has none or cannot be parsed.
// NOTE: a malformed EXIF block counts as no orientation (Pillow warns "corrupt EXIF" and goes on).
int exif_block_orientation(const std::string& exif);

// The orientation an XMP packet gives: the first `tiff:Orientation="N` or `tiff:Orientation>N`
// (Pillow's regular expression), or 0.
int xmp_orientation(const std::string& xmp);

// The orientation Pillow uses: the EXIF block's when it has the tag, else the XMP packet's, else 1.
int image_orientation(const std::string& exif, const std::string& xmp);

// `image` turned so that orientation 1 results (2: mirrored, 3: 180°, 4: flipped, 5: transposed,
// 6: 90° clockwise, 7: transversed, 8: 90° counter-clockwise); other values leave it unchanged.
RgbImage apply_orientation(const RgbImage& image, int orientation);

}  // namespace shardplan
