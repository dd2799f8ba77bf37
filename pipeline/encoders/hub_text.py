"""Text encoders from the hub (bert, labse): the checkpoint's own tokenizer, padded batches."""

from __future__ import annotations

import string
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

from mmpipe.pipeline.encoders.base import EncoderSpec, TextPreprocessing
from mmpipe.pipeline.encoders.hub import HubEncoder
from mmpipe.pipeline.inputs import TextInput

_TINY_WORDS = ("a", "the", "man", "woman", "dog", "ball", "red", "on", "in", "un", "une", "le", "chien", "sur")


class TextEncoder(HubEncoder):
    model_class = "BertModel"
    model_type = "bert"
    max_tokens: ClassVar[int] = 512
    lowercase: ClassVar[bool]
    pooling_name: ClassVar[str]
    sequence_output = "last hidden state, every token ([CLS] and [SEP] included)"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.tokenizer: Any = None

    def spec(self, weights: Path | None = None) -> EncoderSpec:
        hidden, n_layers = self.architecture(weights)
        pre = TextPreprocessing(self.max_tokens, self.lowercase)
        return EncoderSpec(self.name, "text", self.model_id, self.options.revision, self.model_class, hidden,
                           (hidden,) * (n_layers + 1), self.pooling_name, pre, asdict(self.options))

    def load_processor(self, directory: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(directory)

    def max_steps(self, length: int) -> int:
        return length  # the preparer's length is the token count

    def preparer(self) -> TextInput:
        if self.tokenizer is None:
            raise RuntimeError(f"{self.name}: load() before preparer()")
        return TextInput(self.spec().preprocessing, self.tokenizer, int(self.tokenizer.pad_token_id))

    @classmethod
    def write_random_weights(cls, path: Path, *, tiny: bool = True, seed: int = 0) -> Path:
        """A BERT of the real or a tiny size; tiny ones get a tiny WordPiece vocabulary."""
        from transformers import BertConfig, BertTokenizer

        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        letters = list(string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation)
        tokens = specials + list(_TINY_WORDS) + letters + [f"##{c}" for c in string.ascii_letters]
        vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
        small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=cls.max_tokens)
        config = BertConfig(vocab_size=len(vocab), **small) if tiny else BertConfig()
        cls.save_random(config, path, seed)
        BertTokenizer(vocab=vocab, do_lower_case=cls.lowercase).save_pretrained(path)
        return Path(path)

