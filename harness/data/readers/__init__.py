"""Readers for the real sign-language dataset formats.

Importing this package registers five sources with ``harness.data.register_source``:

* ``phoenix14t`` (``harness.data.readers.phoenix``): PHOENIX-2014T CSV annotations + PNG frames.
* ``signjoey``   (``harness.data.readers.signjoey``): signjoey / SLRT gzip-pickled feature files.
* ``csl-daily``  (``harness.data.readers.csl_daily``): CSL-Daily label pickle + split file + JPGs.
* ``how2sign``   (``harness.data.readers.how2sign``): How2Sign realigned TSV + OpenPose JSON.
* ``pose``       (``harness.data.readers.pose``): ``.pose`` files (pose-format) + a TSV index.

Every reader takes ``keypoints_dir`` (``.pose`` files or OpenPose JSON folders, mapped onto the
75 joints), ``labels`` (frame labels) and ``require`` (which of gloss / text must be non-empty);
the derived streams are in ``harness.data.readers.streams``.

Every reader parses its annotation files eagerly (cheap metadata: name, signer, gloss, text) and
leaves the heavy streams (frames, keypoints, features) to ``Sample`` loaders, so listing a split
decodes no image and no JSON. Damage is reported, never papered over:

* annotation damage (missing root or split file, missing / extra / duplicate columns, a row with
  the wrong field count, non-UTF-8 bytes, an unusable number, a zero-length video) raises
  ``DatasetFormatError`` / ``DatasetMissingError`` when the split is *listed*, naming the file and
  the line;
* stream damage (missing frame folder, zero frames, a gap in the frame numbering, an undecodable
  image or JSON file) raises when the stream is *loaded*, naming the folder or file.

A damaged sample is never replaced by zeros. The only zeros a reader produces are documented
"not detected" values of the source format itself (OpenPose frames with nobody in them).

The checks the readers share (table parsing with line numbers, split names, numbered-frame
folders, image decoding, the pickle trust gate) are in ``harness.data.readers.common``.
"""

from harness.data.readers import csl_daily, how2sign, phoenix, pose, signjoey
from harness.data.readers.common import (
    SPLIT_ALIASES,
    DatasetError,
    DatasetFormatError,
    DatasetMissingError,
    LazySamples,
    UntrustedPickleError,
)

__all__ = [
    "SPLIT_ALIASES",
    "DatasetError",
    "DatasetFormatError",
    "DatasetMissingError",
    "LazySamples",
    "UntrustedPickleError",
    "csl_daily",
    "how2sign",
    "phoenix",
    "pose",
    "signjoey",
]
