#!/usr/bin/env python3
"""Tokenizer goldens for glmhal's tests (a developer tool; CI does not run it).

Trains a small byte-level BPE with Hugging Face `tokenizers` on a built-in
corpus (English, Chinese, code), with GLM-4's special tokens, and writes:
  - tokenizer.json: the HF tokenizer;
  - tokenizer.model: the same vocabulary as a tiktoken rank file (GLM-4 style);
  - golden.json: test strings with the ids HF tokenizers and OpenAI's tiktoken
    (GLM-4's split pattern) give for them.

    .venv/bin/pip install tokenizers tiktoken
    .venv/bin/python scripts/make_tokenizer_goldens.py
"""

import base64
import json
import pathlib

import tiktoken
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = pathlib.Path(__file__).resolve().parent.parent / "model" / "tests" / "fixtures" / "tokenizer"
SPECIALS = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>", "<|user|>",
            "<|assistant|>", "<|observation|>", "<|begin_of_image|>", "<|end_of_image|>", "<|begin_of_video|>",
            "<|end_of_video|>"]
PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It's 2026 and the models are getting larger.",
    "GLM-4 is a family of open bilingual language models; they run on many accelerators.",
    "智谱清言是一个对话模型。我们在昇腾、海光和英伟达的加速器上运行同一个模型。",
    "今天天气很好，我们去公园散步吧。人工智能正在改变世界。",
    "fn main() { let x = vec![1, 2, 3]; println!(\"{:?}\", x); }",
    "def forward(self, x):\n    return self.proj(x) * 0.5\n",
    "Numbers like 12345 and 3.14159 appear in text, as do emails: dev@example.com.",
] * 20

TESTS = [
    "Hello, world! How's it going?",
    "我们在昇腾上运行GLM-4模型。",
    "[gMASK]<sop><|user|>\n你好，GLM！<|assistant|>",
    "  leading spaces, trailing spaces   ",
    "line one\n\nline two\r\n\tindented 123456789",
    "emoji 🚀 and mixed 中文English混合",
]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(OUT / "tokenizer.json"))
    hf = [tok.encode(t).ids for t in TESTS]

    # The same vocabulary as tiktoken ranks: byte-level characters back to bytes, rank = id.
    byte_of = {}
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    n = 0
    for b in range(256):
        if b in printable:
            byte_of[chr(b)] = b
        else:
            byte_of[chr(256 + n)] = b
            n += 1
    ranks = {}
    for token, id in tok.get_vocab().items():
        if token in SPECIALS:
            continue
        ranks[bytes(byte_of[c] for c in token)] = id
    with open(OUT / "tokenizer.model", "w") as f:
        for b, r in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(f"{base64.b64encode(b).decode()} {r}\n")
    first_special = max(ranks.values()) + 1
    enc = tiktoken.Encoding(name="glmhal-test", pat_str=PATTERN, mergeable_ranks=ranks,
                            special_tokens={s: first_special + i for i, s in enumerate(SPECIALS)})
    tk = [enc.encode(t, allowed_special="all") for t in TESTS]
    (OUT / "golden.json").write_text(json.dumps(
        {"source": "tokenizers (HF) and tiktoken", "texts": TESTS, "hf": hf, "tiktoken": tk}, ensure_ascii=False, indent=1))
    for t, a, b in zip(TESTS, hf, tk):
        print(repr(t), len(a), len(b))


if __name__ == "__main__":
    main()
