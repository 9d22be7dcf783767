"""Building blocks shared by the SignBench methods.

* ``baselines.common.encoders`` — light RGB and keypoint stream encoders (T → T/4 features) and the
  VL-mapper that projects them into a language model's embedding space.
* ``baselines.common.mbart`` — ``transformers`` mBART built from a small config (tiny profile) or
  with mBART-large-cc25 dimensions and a vocabulary trimmed to the corpus (paper profile), plus
  helpers: encoder on ``inputs_embeds``, teacher-forced decoding, beam search.
* ``baselines.common.resnet`` / ``baselines.common.vit`` — ResNet-18/34/50 and the DINOv2 ViT
  (ViT-S/14), hand-written with timm's parameter names (timm itself needs torchvision, which
  cannot be installed against the CPU torch here), so local timm checkpoints load unchanged.
* ``baselines.common.llm`` — LLaMA-architecture causal LM (``transformers``) at tiny or
  LLaMA-2-7B size, LoRA via ``peft``, prefix-conditioned LM loss and beam search.
* ``baselines.common.weights`` — ``load_weights``: local safetensors / torch state dicts into a
  module with clear errors (file, key, shapes).
"""
