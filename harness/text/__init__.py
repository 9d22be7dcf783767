"""Text side of SignBench: spoken-language tokenizers, the gloss vocabulary, pseudo-glosses.

* :mod:`harness.text.tokenizer` -- ``train_tokenizer`` / ``TextTokenizer`` (``tokenizers`` library;
  BPE / WordPiece / char; ``<pad> <s> </s> <unk>`` = ids 0..3; save/load; local pretrained dirs).
* :mod:`harness.text.vocab` -- ``GlossVocab`` (``<blank>`` = 0 for CTC, ``<pad>`` = 1,
  ``<unk>`` = 2).
* :mod:`harness.text.pseudo_gloss` -- ``PseudoGlossExtractor`` (content-word lemmas, Sign2GPT/HFA).

The pseudo-gloss taggers (HanTa, jieba) are imported lazily, on first use.
"""

from harness.text.pseudo_gloss import CONTENT_POS, PseudoGlossError, PseudoGlossExtractor
from harness.text.tokenizer import (
    SPECIAL_TOKENS,
    TextTokenizer,
    TokenizerError,
    default_kind,
    train_tokenizer,
)
from harness.text.vocab import GlossVocab, GlossVocabError

__all__ = [
    "CONTENT_POS",
    "SPECIAL_TOKENS",
    "GlossVocab",
    "GlossVocabError",
    "PseudoGlossError",
    "PseudoGlossExtractor",
    "TextTokenizer",
    "TokenizerError",
    "default_kind",
    "train_tokenizer",
]
