"""Writes tests/fixtures/vqa_types/: a hand-made VQAv2-format fixture (train
and evaluated questions and annotations, with a few questions of each answer
type, one question without question_type/answer_type and one annotation
without multiple_choice_answer) and expected.json: what the official VQA
evaluation reports for fixed predictions (overall and per answer type), and
the question-type prior baseline, for tests/check_data.c to match.

The evaluation is re-implemented here from the official vqaEval.py rules
(normalisation, leave-one-out accuracy over the ten answers, grouping by
answer_type). Where the official script stops (KeyError on an annotation
without answer_type) this fixture follows flava's choice: the question
counts in the overall accuracy and in no answer type. The prior answers a
question with the most frequent (normalised) multiple_choice_answer of its
question_type in the training annotations, ties to the alphabetically first;
unseen or missing question types get the most frequent answer overall. An
annotation without multiple_choice_answer uses the most frequent of its ten
answers, as VQAv2 defines it.

Run from the source tree: /usr/bin/python3 tests/reference/vqa_types_fixtures.py
"""
import collections
import json
import os
import re

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "vqa_types")

PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
         "`", ",", "?", "!"]
NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
           "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
CONTRACTIONS = {"dont": "don't", "isnt": "isn't", "whats": "what's"}  # enough for this data


def normalize(text):
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in PUNCT:
        if (p + " " in text or " " + p in text) or re.search(r"(\d)(,)(\d)", text):
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = re.sub(r"\.(?!\d)", "", out)
    words = []
    for w in out.lower().split():
        w = NUMBERS.get(w, w)
        if w not in ARTICLES:
            words.append(CONTRACTIONS.get(w, w))
    return " ".join(words)


def accuracy(answers, prediction):
    gt = [normalize(a) for a in answers]
    res = normalize(prediction)
    accs = []
    for i in range(len(gt)):
        others = gt[:i] + gt[i + 1:]
        accs.append(min(1.0, sum(1 for a in others if a == res) / 3.0))
    return sum(accs) / len(accs)


def most_frequent(items):
    counts = collections.Counter(items)
    best = max(counts.values())
    return min(a for a, c in counts.items() if c == best)


# (question_id, image_id, question, question_type, answer_type, ten answers, prediction)
EVAL = [
    (101, 1, "Is the cat black?", "is the", "yes/no", ["yes"] * 7 + ["no"] * 3, "yes"),
    (102, 1, "Is the door open?", "is the", "yes/no", ["yes"] * 2 + ["no"] * 8, "Yes."),
    (103, 2, "Is there a dog?", "is there a", "yes/no", ["yes"] * 10, "no"),
    (104, 2, "Is the sky blue?", "is the", "yes/no", ["yes"] * 9 + ["yeah"], "yes"),
    (201, 3, "How many dogs?", "how many", "number",
     ["two", "two", "2", "2", "2", "3", "3", "3", "3", "4"], "Two"),
    (202, 3, "How many cats?", "how many", "number",
     ["1", "1", "none", "zero", "0", "2", "2", "2", "2", "2"], "1"),
    (203, 4, "What number is on the bus?", "what number is", "number",
     ["12", "12.", "12", "21", "21", "21", "21", "21", "21", "21"], "12"),
    (301, 5, "What color is the car?", "what color is the", "other",
     ["red"] * 4 + ["dark red"] * 3 + ["blue"] * 3, "Dark red!"),
    (302, 5, "What is the man holding?", "what is the", "other",
     ["umbrella"] * 6 + ["an umbrella"] * 2 + ["bag"] * 2, "a bag"),
    (303, 6, "What color is the hat?", "what color is the", "other",
     ["white"] + ["black"] * 9, "white"),
    (401, 6, "What sport is this?", None, None, ["tennis"] * 10, "tennis"),
]

# (question_id, image_id, question, question_type, answer_type, multiple_choice_answer,
#  ten answers or None for ten times the multiple-choice answer)
TRAIN = [
    (11, 1, "Is the dog white?", "is the", "yes/no", "yes", None),
    (12, 1, "Is the car red?", "is the", "yes/no", "yes", None),
    (13, 2, "Is the man old?", "is the", "yes/no", "no", None),
    (14, 2, "Is there a cat?", "is there a", "yes/no", "yes", None),
    (15, 3, "Is there a bus?", "is there a", "yes/no", "no", None),
    (16, 3, "How many people?", "how many", "number", "two", None),
    (17, 4, "How many cars?", "how many", "number", "2", None),
    (18, 4, "How many trees?", "how many", "number", "3", None),
    (19, 5, "What color is the bus?", "what color is the", "other", "red", None),
    (20, 5, "What color is the wall?", "what color is the", "other", "white", None),
    (21, 6, "What color is the cat?", "what color is the", "other", "white", None),
    (22, 6, "What color is the boat?", "what color is the", "other", "red", None),
    (23, 7, "What color is the sky?", "what color is the", "other", "blue", None),
    (24, 7, "What color is the shirt?", "what color is the", "other", None,
     ["white"] * 5 + ["gray"] * 5),
    (25, 8, "Is it sunny?", None, None, "yes", None),
]


def questions_json(rows, subtype):
    return {"data_subtype": subtype, "questions": [
        {"image_id": r[1], "question": r[2], "question_id": r[0]} for r in rows]}


def annotation(qid, iid, qtype, atype, mc, answers):
    a = {"question_id": qid, "image_id": iid,
         "answers": [{"answer": t, "answer_confidence": "yes", "answer_id": k + 1}
                     for k, t in enumerate(answers)]}
    if qtype is not None:
        a["question_type"] = qtype
    if atype is not None:
        a["answer_type"] = atype
    if mc is not None:
        a["multiple_choice_answer"] = mc
    return a


def main():
    os.makedirs(OUT, exist_ok=True)
    ev_ann = [annotation(q, i, qt, at, most_frequent(ans), ans)
              for q, i, _, qt, at, ans, _ in EVAL]
    tr_ann = [annotation(q, i, qt, at, mc, ans or [mc] * 10)
              for q, i, _, qt, at, mc, ans in TRAIN]
    files = {
        "questions.json": questions_json(EVAL, "val2014"),
        "annotations.json": {"annotations": ev_ann},
        "train_questions.json": questions_json(TRAIN, "train2014"),
        "train_annotations.json": {"annotations": tr_ann},
    }
    for name, obj in files.items():
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")

    # the prior from the training annotations
    top = {}
    for q, _, _, qt, _, mc, ans in TRAIN:
        top[q] = normalize(mc) if mc is not None else most_frequent(
            [normalize(a) for a in ans])
    by_type = collections.defaultdict(list)
    for q, _, _, qt, _, _, _ in TRAIN:
        if qt is not None:
            by_type[qt].append(top[q])
    prior = {qt: most_frequent(answers) for qt, answers in by_type.items()}
    fallback = most_frequent(list(top.values()))

    per_question, sums, counts = [], collections.defaultdict(float), collections.Counter()
    total = prior_total = 0.0
    for q, _, _, qt, at, ans, pred in EVAL:
        acc = accuracy(ans, pred)
        prior_answer = prior.get(qt, fallback)
        prior_acc = accuracy(ans, prior_answer)
        per_question.append({"question_id": q, "prediction": pred, "accuracy": acc,
                             "prior_answer": prior_answer, "prior_accuracy": prior_acc})
        total += acc
        prior_total += prior_acc
        if at is not None:
            sums[at] += acc
            counts[at] += 1
    n = len(EVAL)
    expected = {
        "questions": per_question,
        "vqa_accuracy": total / n,
        "answer_types": {t: {"accuracy": sums[t] / counts[t], "questions": counts[t]}
                         for t in sorted(counts)},
        "untyped": n - sum(counts.values()),
        "prior": prior,
        "prior_fallback": fallback,
        "prior_accuracy": prior_total / n,
        "train_top_answers": {str(q): a for q, a in top.items()},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps({k: expected[k] for k in ("vqa_accuracy", "answer_types", "untyped",
                                               "prior", "prior_fallback", "prior_accuracy")},
                     indent=1))


if __name__ == "__main__":
    main()
