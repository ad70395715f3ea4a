"""A tiny Hugging Face tokenizer and causal LM built here, offline: no download, random weights.

The tokenizer is a byte-level BPE trained with the ``tokenizers`` library on the domain's own texts
(policy, tool schemas, task instructions), wrapped in a fast tokenizer, with the Qwen2.5 chat template
read from TRL's installed package (TRL parses tool calls only for templates it ships).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from apigen_gym.core.domain import load_domain

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_TAGS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


def corpus(domain: str) -> list[str]:
    loaded = load_domain(domain)
    texts = [loaded.policy.text, json.dumps(loaded.tools.schemas)]
    texts += [t.instruction for t in loaded.tasks("test")]
    texts += ["system user assistant tool You are a helpful assistant. # Tools function name arguments"]
    return texts


@cache
def tiny_tokenizer(domain: str = "retail", vocab_size: int = 4000) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import qwen2_5_chat_template

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(domain), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL[1:],
        padding_side="left",
    )
    tokenizer.add_tokens(TOOL_TAGS)
    tokenizer.chat_template = qwen2_5_chat_template
    return tokenizer


def tiny_model(tokenizer: Any, max_positions: int = 16384) -> Any:
    """A one-layer Qwen2 causal LM with random weights, sized to the tokenizer."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=max_positions,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return Qwen2ForCausalLM(config)
