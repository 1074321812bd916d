"""Writes tests/fixtures/clip_bpe/: a tiny CLIP-style BPE vocabulary
(vocab.json, merges.txt) trained here on the sample text below, and
expected.json, the encoding of each test text by this script's own
implementation of CLIP's tokeniser: its clean-up without ftfy
(html.unescape twice, strip, whitespace runs to one space, lower()), its
pre-tokenisation pattern (with the `regex` module, as CLIP uses it), the
byte-to-unicode map, "</w>" word ends and merges by rank, then
<|startoftext|> ... <|endoftext|> in a context of 77, truncated keeping
<|endoftext|> and padded with <|endoftext|> as HF pads.

Training is the published BPE algorithm (Sennrich et al. 2016): count the
pre-tokenised words, then repeatedly merge the most frequent adjacent pair
of symbols (ties to the smallest pair), recording each merge in order.

Needs a python3 with the `regex` module (Debian: python3-regex), no torch.
Run from the source root: python3 tests/reference/clip_bpe_fixtures.py"""
import collections
import html
import json
import os
import re

import regex

PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
CONTEXT = 77
N_MERGES = 400

SAMPLE = """
A photo of a cat sitting on a red sofa. A photo of a dog running in the park.
Two dogs and three cats are playing together in the garden; the cat isn't happy.
The quick brown fox jumps over the lazy dog. She's reading a book about photography,
they've painted the house, we'll see the sea at sunset and I'm sure it'd be lovely.
A close-up photo of a person holding a cup of coffee at 7:30 in the morning.
An aerial photograph of the city at night, with lights on the river and the bridge.
Τρία μικρά γατάκια παίζουν στον κήπο. Η φωτογραφία δείχνει έναν σκύλο.
Фотография кошки на диване. Собака бежит по парку, а кот спит на окне.
東京の夜景の写真。猫が窓のそばで寝ている。犬と猫が庭で遊んでいる。
Photos from 2019, 2020 and 2021: 1,234 pictures of 56 different animals!
"""

TEXTS = [
    "a photo of a cat",
    "A Photo Of A DOG!!",
    "it's a dog's life, isn't it? we'll see; they'd've gone, I'M SURE",
    "''s 'tis rock'n'roll o'clock",
    "in 2023 there were 1,234,567 photos (3.14159%)",
    "Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &apos;x&apos;",
    "&amp;lt;double&amp;gt; &amp;amp;",
    "&eacute;t&eacute; &#233;t&#xE9; &#X41;&#65",
    "&#128;uro &#x80; &#150; &#159;&#160;end",
    "&#0; &#xD800; &#1114112; &#99999999999999999999; &#1;x &#x1F600;",
    "&ampersand &ltimes; &notit; &quot &ampx; &lt3 &AMP;&Amp;",
    "&#;&#x;&; & amp; a&nbsp;b a&nbspb &NotNestedGreaterGreater;",
    "&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; &sup2; &sup23 &a\u00e9acute; &lt\u00e9x",
    "  lots   of\t\twhite\nspace\r\n here  ",
    "\u3000ideographic\u00a0nbsp\u2003em\x1cfs\x85nel\u2028ls",
    "ΟΔΟΣ ΣΟΦΟΣ Σ ΑΣ.Β ΑΣ' ΜΆΘΗΜΑ",
    "İstanbul ǅemal ẞtraße ΚΑΛΗΜΈΡΑ",
    "Привет, мир! Ёжик в тумане.",
    "Γειά σου Κόσμε",
    "東京タワーと富士山、猫。",
    "한국어 텍스트 hangul",
    "مرحبا بالعالم שלום हिन्दी",
    "I \u2764\ufe0f \U0001F355 and \U0001F44D\U0001F3FD",
    "<|startoftext|>hello<|endoftext|> !<|endoftext|> <|ENDOFTEXT|>x",
    "cafe\u0301 it'\u017f a\u0345b \u2167 x\u00b2 \ufb01ne",
    "\uff21\uff22\uff23\uff11\uff12\uff13",
    "",
    "   ",
    "new-york-city, u.s.a. -- e-mail: someone@example.com #hashtag $5.00",
    " ".join(["a photo of two dogs and three cats in the garden at night"] * 8),
]


def bytes_to_unicode():
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
                 + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHAR = bytes_to_unicode()


def clean(text):
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


def words(text):
    """The pre-tokens of a cleaned text as byte-mapped strings."""
    return ["".join(BYTE_CHAR[b] for b in w.encode("utf-8")) for w in PATTERN.findall(text)]


def symbols(word):
    return tuple(word[:-1]) + (word[-1] + "</w>",)


def train(text):
    counts = collections.Counter(symbols(w) for w in words(clean(text))
                                 if w not in (SOT, EOT))
    merges = []
    for _ in range(N_MERGES):
        pairs = collections.Counter()
        for word, c in counts.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = collections.Counter()
        for word, c in counts.items():
            merged[apply_merge(word, best)] += c
        counts = merged
    vocab = list(BYTE_CHAR.values())
    vocab += [v + "</w>" for v in vocab]
    seen = set(vocab)
    for a, b in merges:
        if a + b not in seen:
            seen.add(a + b)
            vocab.append(a + b)
    vocab += [SOT, EOT]
    return {tok: i for i, tok in enumerate(vocab)}, merges


def apply_merge(word, pair):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def bpe(word, ranks):
    sym = symbols(word)
    while len(sym) > 1:
        pair = min(zip(sym, sym[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        sym = apply_merge(sym, pair)
    return sym


def tokenize(text, vocab, ranks):
    ids = []
    for w in words(clean(text)):
        if w in (SOT, EOT):
            ids.append(vocab[w])
        else:
            ids += [vocab.get(s, vocab[EOT]) for s in bpe(w, ranks)]
    return ids


def main():
    out_dir = os.path.join("tests", "fixtures", "clip_bpe")
    os.makedirs(out_dir, exist_ok=True)
    vocab, merges = train(SAMPLE)
    ranks = {m: i for i, m in enumerate(merges)}
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{a} {b}\n" for a, b in merges)
    cases = []
    for text in TEXTS:
        ids = tokenize(text, vocab, ranks)
        full = [vocab[SOT]] + ids[:CONTEXT - 2] + [vocab[EOT]]
        n = len(full)
        cases.append({"text": text, "clean": clean(text), "ids": ids, "n_tokens": n,
                      "input_ids": full + [vocab[EOT]] * (CONTEXT - n)})
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=True) for c in cases) + "\n]\n")
    print(f"{len(vocab)} tokens, {len(merges)} merges, {len(cases)} texts")


if __name__ == "__main__":
    main()
