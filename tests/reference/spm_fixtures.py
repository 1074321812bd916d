#!/usr/bin/python3
"""Writes the SentencePiece fixtures: a small unigram model trained with the
Python `sentencepiece` package on tests/fixtures/tok/spm_train.txt, with the
settings flava_spm_train uses, and the ids and pieces that package gives for
each line of spm_texts.txt; the same for a BPE model (not committed). The C
test must reproduce the encodings with the committed model and with models
it trains itself.

Run from the source root: /usr/bin/python3 tests/reference/spm_fixtures.py"""
import os

import sentencepiece as spm

D = 'tests/fixtures/tok/'

SETTINGS = dict(vocab_size=300, user_defined_symbols=['[CLS]', '[SEP]', '[PAD]', '[MASK]'],
                unk_id=0, unk_piece='[UNK]', bos_id=-1, eos_id=-1, pad_id=-1,
                character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2)


def write_expected(model, out_path):
    sp = spm.SentencePieceProcessor(model_file=model)
    with open(D + 'spm_texts.txt', encoding='utf-8') as f, \
            open(out_path, 'w', encoding='utf-8') as out:
        for line in f:
            text = line.rstrip('\n')
            # three lines per text: ids, pieces (tab-separated), decoded ids
            out.write(' '.join(map(str, sp.encode(text, out_type=int))) + '\n')
            out.write('\t'.join(sp.encode(text, out_type=str)) + '\n')
            out.write(sp.decode(sp.encode(text, out_type=int)) + '\n')


# The unigram model is committed; the BPE one only through its encodings
# (the C test trains both and compares).
for kind, prefix in [('unigram', D + 'spm_unigram'), ('bpe', '/tmp/flava_spm_bpe')]:
    spm.SentencePieceTrainer.train(input=D + 'spm_train.txt', model_prefix=prefix,
                                   model_type=kind, **SETTINGS)
    write_expected(prefix + '.model', D + f'spm_expected_{kind}.txt')
os.remove(D + 'spm_unigram.vocab')
