"""Tokenizers: SentencePiece and HF ``tokenizer.json`` behind one interface; chat templates."""

from rlx.tokenizers.chat_template import compile_chat_template
from rlx.tokenizers.chat_template import render_chat_template
from rlx.tokenizers.tokenizer import HFTokenizer
from rlx.tokenizers.tokenizer import SentencePieceTokenizer
from rlx.tokenizers.tokenizer import Tokenizer
from rlx.tokenizers.tokenizer import load_tokenizer
from rlx.tokenizers.tokenizer import pad_sequences

__all__ = [
    "HFTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "compile_chat_template",
    "load_tokenizer",
    "pad_sequences",
    "render_chat_template",
]
