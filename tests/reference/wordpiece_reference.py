#!/usr/bin/python3
"""An independent rendering of BERT's uncased tokenizer (basic tokenizer +
greedy WordPiece, as HF's BertTokenizer with do_lower_case=True), written
from its description on top of Python's own str.lower(), unicodedata
categories and NFD, to check data/wordpiece.c beyond the hand-written cases.

Writes tests/fixtures/tok/wp_vocab.txt (built from the texts: frequent
words, single characters and ## pieces, with some characters left out so
that [UNK] occurs) and wp_expected.txt (the ids of each line of
wp_texts.txt).

  /usr/bin/python3 tests/reference/wordpiece_reference.py [--ham FILE]

--ham rebuilds wp_texts.txt first: the first 100 lines of FILE (SpamAssassin
ham sentences from `flava data spam`, mail addresses masked) and 200 lines of
seeded random characters from every part of Unicode (no newline, carriage
return or NUL), Greek words with capital sigmas among them."""
import collections
import random
import re
import sys
import unicodedata as ud

D = 'tests/fixtures/tok/'
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
       (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def is_space(c):
    return c in ' \t\n\r' or ud.category(c) == 'Zs'


def is_control(c):
    return c not in '\t\n\r' and ud.category(c).startswith('C')


def is_punct(c):
    cp = ord(c)
    return (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
            or ud.category(c).startswith('P'))


def basic_tokens(text):
    kept = []
    for c in text:
        if ord(c) in (0, 0xFFFD) or is_control(c):
            continue
        kept.append(' ' if is_space(c) else c)
    spaced = ''.join(f' {c} ' if any(a <= ord(c) <= b for a, b in CJK) else c for c in kept)
    words = []
    for word in spaced.strip().split():
        word = ''.join(c for c in ud.normalize('NFD', word.lower()) if ud.category(c) != 'Mn')
        cur = ''
        for c in word:
            if is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ''
            else:
                cur += c
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return [vocab['[UNK]']]
    out, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = ('##' if start else '') + word[start:end]
            if piece in vocab:
                out.append(vocab[piece])
                break
            end -= 1
        if end == start:
            return [vocab['[UNK]']]
        start = end
    return out


def random_line(rng):
    pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
             (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x2000, 0x206F), (0x3000, 0x303F),
             (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x0, 0xFFFF), (0x10000, 0x10FFFF)]
    out = []
    while len(out) < rng.randint(5, 60):
        a, b = pools[rng.randrange(len(pools))]
        cp = rng.randint(a, b)
        if 0xD800 <= cp <= 0xDFFF or cp in (0, 10, 13):
            continue
        out.append(chr(cp))
        if rng.random() < 0.05:
            out.append('\u03a3')  # capital sigma, final or not
        if rng.random() < 0.2:
            out.append(' ')
    return ''.join(out)


def build_texts(ham_path):
    with open(ham_path, encoding='utf-8') as f:
        ham = [re.sub(r'[\w.+-]+@[\w-]+(\.[\w-]+)+', 'user@example.com', line.rstrip('\n'))
               for line in f][:100]
    rng = random.Random(1234)
    with open(D + 'wp_texts.txt', 'w', encoding='utf-8') as out:
        for line in ham + [random_line(rng) for _ in range(200)]:
            out.write(line + '\n')


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--ham':
        build_texts(sys.argv[2])
    with open(D + 'wp_texts.txt', encoding='utf-8') as f:
        texts = [line.rstrip('\n') for line in f]
    words = collections.Counter(w for t in texts for w in basic_tokens(t))
    chars = sorted({c for w in words for c in w})
    rng = random.Random(99)
    dropped = set(rng.sample(chars, len(chars) // 20))
    vocab_list = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']
    vocab_list += [w for w, n in words.most_common(600) if n > 1 and w not in vocab_list]
    vocab_list += [c for c in chars if c not in dropped and c not in vocab_list]
    vocab_list += ['##' + c for c in chars if c not in dropped]
    vocab_list += ['##' + s for s in ('ing', 'ed', 'er', 'ly', 'tion', 'es', 's')]
    vocab_list = list(dict.fromkeys(vocab_list))
    vocab = {p: i for i, p in enumerate(vocab_list)}
    with open(D + 'wp_vocab.txt', 'w', encoding='utf-8') as f:
        f.write(''.join(p + '\n' for p in vocab_list))
    with open(D + 'wp_expected.txt', 'w') as f:
        for t in texts:
            ids = [i for w in basic_tokens(t) for i in wordpiece(w, vocab)]
            f.write(' '.join(map(str, ids)) + '\n')


if __name__ == '__main__':
    main()
