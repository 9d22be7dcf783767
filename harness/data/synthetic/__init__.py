"""The embedded synthetic sign corpus (data source ``synthetic``).

Modules, one purpose each: ``language`` (gloss lexicon and translation grammar), ``signs``
(per-gloss sign templates, fingerspelling alphabet), ``state`` (hidden state -> keypoints),
``render`` (RGB frames and mouth crops), ``poses`` (SignX's five pose formats), ``corruption``
(complementary keypoint / RGB failures) and ``corpus`` (``SyntheticCorpus``, registered as
``synthetic``).
"""

from harness.data.synthetic.corpus import DEFAULT_SIZES, SPLITS, SyntheticCorpus, split_of
from harness.data.synthetic.corruption import CorruptionSegment
from harness.data.synthetic.poses import POSE_FORMATS, TOTAL_POSE_WIDTH

__all__ = ["DEFAULT_SIZES", "POSE_FORMATS", "SPLITS", "TOTAL_POSE_WIDTH", "CorruptionSegment",
           "SyntheticCorpus", "split_of"]
