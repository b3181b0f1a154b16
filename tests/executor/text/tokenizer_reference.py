#!/usr/bin/env python3
"""Differential test of executor/text's Tokenizer against Hugging Face `tokenizers`.

For one tokenizer style it builds a small tokenizer.json with the `tokenizers` package (BPE
trained on a seeded generated corpus, with that style's normalizer, pre-tokenizer, model options,
added tokens, post-processor and decoder), or takes SmolLM2's real file; generates the seeded test
strings (many scripts, emoji with ZWJ and skin tones, combining marks, code, numbers, whitespace
runs, special-token text, very long words) and random id sequences; runs the C++ driver
(tokenize_driver) over them and compares, string by string:
  encode(text) and encode(text, add_special_tokens=False) ids,
  decode(ids) and decode(ids, skip_special_tokens=True) text,
and, for the random id sequences, both decodes.

  tokenizer_reference.py --driver build-text/tests/executor/text/tokenize_driver \
      --style llama3 --work /tmp/tok [--strings 20000]
  --style smollm2 --tokenizer build/models/smollm2-135m-instruct/tokenizer.json

Exit codes: 0 all equal, 1 a difference (the first ones are printed), 77 skipped (SmolLM2's
tokenizer.json absent: scripts/setup.sh makes it).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer

SKIP = 77

# --- The test strings --------------------------------------------------------------------------

WORDS = {
    "latin": "the quick brown fox jumps over lazy dog I'm we've they'll don't it's HELLO World Straße "
             "café naïve résumé façade coöperate über Ärger Öl señor año niño ça été Œuvre Łódź Żółć "
             "Dvořák Ångström smörgåsbord İstanbul ıi ĳssel ǅemal ﬁnance ﬀ ſt".split(),
    "cyrillic": "привет мир Москва съешь ещё этих мягких французских булок ЁЖ Україна ґанок Ђорђе".split(),
    "greek": "καλημέρα κόσμε Ελλάδα ΣΊΣΥΦΟΣ σοφία ϊΰ ὈΔΥΣΣΕΎΣ ἀρχή".split(),
    "cjk": "你好 世界 中华人民共和国 漢字 學習 東京 大阪 日本語 한국어 測試 我们 ㊗ 〇".split(),
    "kana": "こんにちは カタカナ ひらがな ｶﾀｶﾅ ゔ ガギグ パピプ ー ヶ".split(),
    "korean": "안녕하세요 세계 대한민국 한글 서울 각 갂".split(),
    "arabic": "مرحبا بالعالم العربية السلام عليكم ١٢٣ ٤٥٦ ﷺ ﻻ".split(),
    "hebrew": "שלום עולם עברית בְּרֵאשִׁית".split(),
    "devanagari": "नमस्ते दुनिया हिन्दी क्षत्रिय १२३ ॐ".split(),
    "thai": "สวัสดีครับ ภาษาไทย กรุงเทพมหานคร ๑๒๓".split(),
    "other": "Ⅻ ½ ² ³ ⁴ ₁ ∞ ≠ ≤ ∑ ∫ √ € £ ¥ ₹ © ® ™ ° § ¶ • … ‰ ′ ″ ← → ⇒ ♠ ♥ ✓ ✗ ␣ ¿ ¡ « » „ “ ” ‘ ’ — –".split(),
}
EMOJI = ["😀", "😂", "🥲", "🤖", "🚀", "🎉", "❤️", "👍", "👍🏽", "👋🏿", "🧑‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵",
         "👩🏻‍🔬", "🫶🏼", "✊🏾", "🐈‍⬛", "☕", "⭐", "1️⃣", "#️⃣", "©️", "🙇‍♀️", "🧔‍♂️"]
CODE = [
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n",
    "if __name__ == '__main__':\n    main()\n",
    '{"key": [1, 2.5, -3e10, null, true], "nested": {"a": "b"}}',
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "x = lambda a, b: a if a > b else b\r\n",
    "#include <vector>\nstd::vector<int> v{1,2,3};\n",
    "fn main() { println!(\"{}\", 42_u64); }",
    "    indented\n        more\n\t\ttabs\n",
    "a+=1;b-=2;c*=3;d/=4;e%=5;f**=6;g//=7;h>>=8;i<<=9;j&=k|l^m~n",
    "$ ls -la ~/.config && echo \"$HOME\" | grep -E '^/h' > /dev/null 2>&1",
    "http://example.com/path?q=1&r=two#frag user@mail.example.org",
]
SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028",
          "\u0085", "\u180e", "\u202f", "\u205f", "\ufeff", "\x0b", "\x0c", "\r", " \t \n", "\u2003\u2002"]
SPECIAL_TEXT = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<|begin_of_text|>",
                "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<mask>", "<|startoftranscript|>",
                "<|en|>", "<|0.00|>", "<|30.00|>", "<|notimestamps|>", "<tool_call>", "</tool_call>",
                "<repo_name>", "<filename>", "[CLS]", "[SEP]", "<|im_sta", "<|im_start", "< s>", "<s >",
                "<<s>>", "<|endoftext|><|endoftext|>", "hello world", "zzz", "e\u0301tude", "étude",
                "<0x41>", "▁", "▁▁", "<|reserved_special_token_3|>", " <extra>", "<extra>"]
COMBINING = [chr(c) for c in range(0x300, 0x370)] + ["\u0483", "\u0591", "\u05b0", "\u0610", "\u064b", "\u093c",
                                                      "\u0e31", "\u20d0", "\u20e3", "\ufe0f", "\u200d", "\u200c"]
# Blocks assigned before Unicode 10, so that the Unicode versions of Oniguruma, PCRE2, utf8proc
# and tokenizers' NFKC tables agree on every character drawn from them (U+32FF, the Reiwa era
# square of Unicode 12.1, is left out: tokenizers' NFKC keeps it, utf8proc's gives 令和).
BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF),
          (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1E00, 0x1FFF),
          (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20BF), (0x2100, 0x218F), (0x2190, 0x23FF),
          (0x2460, 0x24FF), (0x2500, 0x27BF), (0x3000, 0x30FF), (0x3130, 0x318F), (0x3200, 0x32FE),
          (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFE30, 0xFE4F),
          (0xFF00, 0xFFEF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1D400, 0x1D7FF), (0x1, 0x1F),
          (0x7F, 0x9F), (0xE000, 0xE0FF)]


def random_char(rng):
    lo, hi = rng.choice(BLOCKS)
    return chr(rng.randint(lo, hi))


def word(rng):
    kind = rng.random()
    if kind < 0.55:
        return rng.choice(WORDS[rng.choice(list(WORDS))])
    if kind < 0.65:
        return rng.choice(EMOJI)
    if kind < 0.75:
        return str(rng.choice([rng.randint(0, 9), rng.randint(0, 999), rng.randint(0, 10**9), rng.random() * 1000]))
    if kind < 0.82:
        return rng.choice(SPECIAL_TEXT)
    if kind < 0.90:
        return "".join(random_char(rng) for _ in range(rng.randint(1, 6)))
    if kind < 0.95:
        base = rng.choice(WORDS["latin"] + WORDS["greek"] + WORDS["cyrillic"])
        return "".join(ch + (rng.choice(COMBINING) if rng.random() < 0.3 else "") for ch in base)
    return rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", "...", "!!", "?!", "--", "__"])


def sentence(rng):
    out = []
    for _ in range(rng.randint(1, 14)):
        out.append(word(rng))
        out.append(rng.choice(SPACES) if rng.random() < 0.15 else rng.choice([" ", " ", " ", "", ", ", ". "]))
    return "".join(out)


def long_word(rng):
    kind = rng.randint(0, 4)
    n = rng.randint(100, 2500)
    if kind == 0:
        return rng.choice("abcxyz") * n
    if kind == 1:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))
    if kind == 2:
        return "".join(rng.choice("0123456789") for _ in range(n))
    if kind == 3:
        return "".join(random_char(rng) for _ in range(n // 4))
    return rng.choice(SPACES) * (n // 10)


def test_string(rng, i):
    kind = i % 10
    if kind == 0:
        return "".join(sentence(rng) for _ in range(rng.randint(1, 4)))
    if kind == 1:
        return rng.choice(CODE) + rng.choice(["", sentence(rng)])
    if kind == 2:
        return "".join(rng.choice(EMOJI) + rng.choice(["", " ", "\u200d", "🏻", "\ufe0f"]) for _ in range(rng.randint(1, 8)))
    if kind == 3:
        return "".join(rng.choice(SPACES) + (word(rng) if rng.random() < 0.5 else "") for _ in range(rng.randint(1, 10)))
    if kind == 4:
        parts = [rng.choice(SPECIAL_TEXT) if rng.random() < 0.4 else sentence(rng) for _ in range(rng.randint(1, 6))]
        return rng.choice(["", " ", "\n"]).join(parts)
    if kind == 5:
        return "".join(random_char(rng) for _ in range(rng.randint(0, 40)))
    if kind == 6:
        return long_word(rng) if rng.random() < 0.2 else sentence(rng) + long_word(rng)[:rng.randint(10, 200)]
    if kind == 7:
        return "<|im_start|>" + rng.choice(["system", "user", "assistant"]) + "\n" + sentence(rng) + "<|im_end|>\n"
    if kind == 8:
        return rng.choice(["", " ", "  ", "a", "\n", "▁", " ▁x", "ab", "A", "0", "<s>", " <s> ", "x" + rng.choice(SPACES)])
    return "".join(word(rng) for _ in range(rng.randint(1, 8)))


def test_strings(count, seed=1234):
    rng = random.Random(seed)
    return [test_string(rng, i) for i in range(count)]


def training_corpus(seed=99, count=6000):
    rng = random.Random(seed)
    lines = [sentence(rng) for _ in range(count)] + CODE * 20
    return lines


# --- The styles ---------------------------------------------------------------------------------

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


def byte_level_trainer(vocab_size, specials):
    return BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def build_gpt2(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(corpus, byte_level_trainer(3000, ["<|endoftext|>"]))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, special=True, normalized=False)])
    tok.add_tokens([AddedToken("hello world", single_word=True, normalized=False),
                    AddedToken("zzz", rstrip=True, normalized=True),
                    AddedToken("<tool_call>", normalized=False)])
    return tok.to_str(), {}


def build_llama3(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, byte_level_trainer(4000, []))
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    # Words the vocabulary has whole though the merges do not make them: ignore_merges must take
    # them as one token.
    to_bytes = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    vocab = j["model"]["vocab"]
    for extra in [" HELLO", " World", " Straße", " quick", "    ", "ing", " привет", " 你好", "😀"]:
        token = to_bytes.pre_tokenize_str(extra)[0][0]
        if token not in vocab:
            vocab[token] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(j))
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"] + \
        [f"<|reserved_special_token_{i}|>" for i in range(20)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return tok.to_str(), {"generation_config.json": {"eos_token_id": [tok.token_to_id("<|end_of_text|>"),
                                                                         tok.token_to_id("<|eot_id|>")]}}


def build_qwen2(corpus):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(corpus, byte_level_trainer(4000, []))
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False)
                            for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    tok.add_tokens([AddedToken("<tool_call>", normalized=False), AddedToken("</tool_call>", normalized=False),
                    AddedToken("e\u0301tude", normalized=True)])
    return tok.to_str(), {"config.json": {"eos_token_id": tok.token_to_id("<|im_end|>")}}


def build_whisper(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, byte_level_trainer(3000, ["<|endoftext|>"]))
    languages = ["en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
                 "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur"]
    specials = ["<|startoftranscript|>"] + [f"<|{l}|>" for l in languages] + \
        ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", normalized=False) for i in range(1501)])
    sot, nots, eot = (tok.token_to_id(t) for t in ["<|startoftranscript|>", "<|notimestamps|>", "<|endoftext|>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftranscript|> <|notimestamps|> $A <|endoftext|>",
        pair="<|startoftranscript|> <|notimestamps|> $A $B <|endoftext|>",
        special_tokens=[("<|startoftranscript|>", sot), ("<|notimestamps|>", nots), ("<|endoftext|>", eot)])
    return tok.to_str(), {"generation_config.json": {"eos_token_id": eot}}


def sentencepiece_bpe(corpus, normalizer, pre_tokenizer, drop_bytes=()):
    """A Llama-2-like BPE as JSON: "▁" words, byte fallback tokens <0x00>..<0xFF> in the vocabulary
    (not added tokens), <unk> <s> </s> special; `normalizer` and `pre_tokenizer` are JSON values."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # NOTE: trained with a Metaspace split (words, not lines), saved with the style's own.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = BpeTrainer(vocab_size=3000, special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS, limit_alphabet=200,
                         show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    j = json.loads(tok.to_str())
    j["normalizer"] = normalizer
    j["pre_tokenizer"] = pre_tokenizer
    j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] not in BYTE_TOKENS]
    for t in j["added_tokens"]:
        t["normalized"] = False
    for b in drop_bytes:
        del j["model"]["vocab"][f"<0x{b:02X}>"]
    return j


def build_llama2(corpus):
    j = sentencepiece_bpe(corpus, {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}, None)
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    # A non-special added token matched in the normalized text (where spaces are "▁").
    j["added_tokens"].append({"id": len(j["model"]["vocab"]), "content": "▁<extra>", "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": True, "special": False})
    return json.dumps(j), {"config.json": {"eos_token_id": 2}}


def build_metaspace(corpus):
    # Mistral / llava-1.6 style: no normalizer, Metaspace(prepend_scheme "first", split false);
    # bytes 0xF0..0xF4 have no fallback token, so 4-byte characters become (fused) <unk>.
    j = sentencepiece_bpe(corpus, None, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                                         "split": False}, drop_bytes=range(0xF0, 0xF5))
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}]}
    return json.dumps(j), {"tokenizer_config.json": {"eos_token": {"content": "</s>"}}}


def build_extras(corpus):
    # The other supported components: NFKC, Lowercase, Strip, Replace (regex), Whitespace, Digits,
    # Punctuation, continuing_subword_prefix / end_of_word_suffix, unk without byte fallback,
    # BertProcessing, BPEDecoder and WordPiece decoders.
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Strip(left=True, right=True),
                                           normalizers.Replace(Regex(r"\s+"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(),
                                                 pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.Punctuation(behavior="contiguous")])
    trainer = BpeTrainer(vocab_size=3000, special_tokens=["[UNK]", "[CLS]", "[SEP]"], limit_alphabet=150,
                         continuing_subword_prefix="##", end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    tok.decoder = decoders.Sequence([decoders.BPEDecoder(suffix="</w>"), decoders.WordPiece(prefix="##")])
    return tok.to_str(), {}


def build_bert_normalizer(corpus):
    # BertNormalizer + WhitespaceSplit + a Metaspace pre-tokenizer that prepends "always".
    tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=False))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    trainer = BpeTrainer(vocab_size=2000, special_tokens=["[UNK]", "<s>", "</s>"], limit_alphabet=120,
                         show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return tok.to_str(), {}


STYLES = {
    "gpt2": build_gpt2,
    "llama3": build_llama3,
    "qwen2": build_qwen2,
    "whisper": build_whisper,
    "llama2": build_llama2,
    "metaspace": build_metaspace,
    "extras": build_extras,
    "bert_normalizer": build_bert_normalizer,
}


# --- The comparison -----------------------------------------------------------------------------

def run_driver(driver, tokenizer_path, items):
    payload = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode()
    done = subprocess.run([driver, tokenizer_path], input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    if done.returncode != 0:
        sys.exit(f"tokenize_driver failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
    # NOTE: split on "\n" only: the answers hold U+2028, U+0085, ... which splitlines() splits on.
    lines = done.stdout.decode().split("\n")[:-1]
    if len(lines) != len(items):
        sys.exit(f"tokenize_driver answered {len(lines)} lines for {len(items)} inputs")
    return [json.loads(line) for line in lines]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--driver", required=True)
    parser.add_argument("--style", required=True, choices=["smollm2"] + list(STYLES))
    parser.add_argument("--work", required=True, help="folder for the built tokenizer.json files")
    parser.add_argument("--tokenizer", help="smollm2: its tokenizer.json")
    # SHARDPLAN_REFERENCE_STRINGS: fewer under the sanitizers (scripts/sanitize.sh), the same
    # generator's first ones (every kind of string: the kinds take turns).
    parser.add_argument("--strings", type=int, default=int(os.environ.get("SHARDPLAN_REFERENCE_STRINGS", 20000)))
    parser.add_argument("--id-sequences", type=int, default=2000)
    args = parser.parse_args()

    start = time.time()
    folder = os.path.join(args.work, args.style)
    os.makedirs(folder, exist_ok=True)
    if args.style == "smollm2":
        if not args.tokenizer or not os.path.isfile(args.tokenizer):
            print(f"SKIP: SmolLM2's tokenizer.json is absent ({args.tokenizer}); scripts/setup.sh downloads it")
            return SKIP
        path = args.tokenizer
    else:
        text, extra_files = STYLES[args.style](training_corpus())
        path = os.path.join(folder, "tokenizer.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        for name, content in extra_files.items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                json.dump(content, f)
    reference = Tokenizer.from_file(path)
    vocab_size = reference.get_vocab_size(with_added_tokens=True)

    strings = test_strings(args.strings)
    rng = random.Random(4321)
    id_sequences = [[rng.randrange(vocab_size) for _ in range(rng.randint(0, 12))] for _ in range(args.id_sequences)]
    ours = run_driver(args.driver, path, strings + id_sequences)

    with_specials = [e.ids for e in reference.encode_batch(strings, add_special_tokens=True)]
    plain = [e.ids for e in reference.encode_batch(strings, add_special_tokens=False)]
    texts = reference.decode_batch(with_specials, skip_special_tokens=False)
    skipped = reference.decode_batch(with_specials, skip_special_tokens=True)
    id_texts = reference.decode_batch(id_sequences, skip_special_tokens=False)
    id_skipped = reference.decode_batch(id_sequences, skip_special_tokens=True)

    differences = []
    for i, s in enumerate(strings):
        got = ours[i]
        want = {"ids": with_specials[i], "plain": plain[i], "text": texts[i], "skip": skipped[i]}
        for key, value in want.items():
            if got.get(key) != value:
                differences.append(f"string {i} {json.dumps(s, ensure_ascii=False)[:200]}: {key}: ours "
                                   f"{json.dumps(got.get(key, got.get('error')), ensure_ascii=False)[:300]} "
                                   f"!= tokenizers {json.dumps(value, ensure_ascii=False)[:300]}")
    for i, ids in enumerate(id_sequences):
        got = ours[len(strings) + i]
        for key, value in (("text", id_texts[i]), ("skip", id_skipped[i])):
            if got.get(key) != value:
                differences.append(f"ids {ids}: {key}: ours {json.dumps(got.get(key, got.get('error')))} "
                                   f"!= tokenizers {json.dumps(value)}")
    tokens = sum(len(ids) for ids in with_specials)
    print(f"{args.style}: {len(strings)} strings ({tokens} tokens), {len(id_sequences)} id sequences: "
          f"{len(strings) - len({d.split(':')[0] for d in differences if d.startswith('string')})} strings exact, "
          f"{len(differences)} differences ({time.time() - start:.1f} s)")
    for d in differences[:20]:
        print("  " + d)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
