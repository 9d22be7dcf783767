"""Building blocks shared by the SignBench methods.

* ``baselines.common.encoders`` — light RGB and keypoint stream encoders (T → T/4 features) and the
  VL-mapper that projects them into a language model's embedding space.
* ``baselines.common.mbart`` — ``transformers`` mBART built from a small config (tiny profile) or
  with mBART-large-cc25 dimensions and a vocabulary trimmed to the corpus (paper profile), plus
  helpers: encoder on ``inputs_embeds``, teacher-forced decoding, beam search.
"""
