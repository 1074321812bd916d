#!/usr/bin/python3
"""Writes the SentencePiece fixtures: a small unigram model trained with the
Python `sentencepiece` package on tests/fixtures/tok/spm_train.txt, with the
settings flava_spm_train uses, and the ids and pieces that package gives for
each line of spm_texts.txt. The C test must reproduce both exactly.

Run from the source root: /usr/bin/python3 tests/reference/spm_fixtures.py"""
import sentencepiece as spm

D = 'tests/fixtures/tok/'

spm.SentencePieceTrainer.train(
    input=D + 'spm_train.txt', model_prefix=D + 'spm_unigram', model_type='unigram',
    vocab_size=300, user_defined_symbols=['[CLS]', '[SEP]', '[PAD]', '[MASK]'],
    unk_id=0, unk_piece='[UNK]', bos_id=-1, eos_id=-1, pad_id=-1,
    character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2)

sp = spm.SentencePieceProcessor(model_file=D + 'spm_unigram.model')
with open(D + 'spm_texts.txt', encoding='utf-8') as f, \
        open(D + 'spm_expected.txt', 'w', encoding='utf-8') as out:
    for line in f:
        text = line.rstrip('\n')
        ids = sp.encode(text, out_type=int)
        pieces = sp.encode(text, out_type=str)
        # three lines per text: ids, pieces (tab-separated), decoded text
        out.write(' '.join(map(str, ids)) + '\n')
        out.write('\t'.join(pieces) + '\n')
        out.write(sp.decode(ids) + '\n')
