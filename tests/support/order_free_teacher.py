"""A tiny BERT classifier saved as a teacher folder, optionally blind to word order."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = [f"w{i}" for i in range(40)]


def save_teacher(folder: Path, order_free: bool, seed: int = 0, num_labels: int = 2) -> Path:
    """Random BERT (hidden 32, 2 layers) + a WordPiece tokenizer of :data:`WORDS`.

    ``order_free``: position embeddings zeroed, so self-attention (permutation-equivariant) gives
    the [CLS] output the same value for any order of the other tokens. Otherwise they are large
    (std 2), so order matters.
    """
    from transformers import BertConfig, BertForSequenceClassification

    from nas.tasks import build_tokenizer

    tokenizer = build_tokenizer(WORDS, folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
        initializer_range=0.5,  # decisive logits: predictions vary from text to text
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        positions = model.bert.embeddings.position_embeddings.weight
        positions.zero_() if order_free else positions.normal_(0.0, 2.0)
    model.save_pretrained(folder)
    return folder
