"""Precision, recall, F1 and speed of the pack's secret detector beside plain detect-secrets.

Run from the repo root: venv/bin/python -m benchmarks.detector [--corpus FILE]

The corpus is the labelled tuning set in ../shared/data/secret-corpus/ (read in place, never
copied). Figures are given with X rows (reviewers unsure) excluded and with X counted as
negative. Speed is values per second on one core, over repeated passes of at least --seconds
after a first pass (also reported: it pays for building the regex automata, once per process).

The baseline scans each row as the line `key: "value"` with detect-secrets' default plugins
through its ad-hoc API `scan_line`, twice: as it reports (entropy hits without the limit),
and with each entropy plugin's limit applied, which is how the corpus README measured it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from configplane.pack import load_detector

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "secret-corpus" / "tune.jsonl"

Row = dict[str, str]


def read_corpus(path: Path) -> list[Row]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def scores(rows: Sequence[Row], predicted: Sequence[bool], x_negative: bool) -> tuple:
    tp = fp = fn = 0
    for row, positive in zip(rows, predicted, strict=True):
        if row["label"] == "X" and not x_negative:
            continue
        truth = row["label"] == "T"
        tp += positive and truth
        fp += positive and not truth
        fn += truth and not positive
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def timed(predict: Callable[[list[Row]], list[bool]], rows: list[Row], seconds: float,
          reset: Callable[[], None]) -> tuple[list[bool], float, float]:
    """Predictions, cold values/s (the first pass) and warm values/s (passes after it, until
    `seconds` have gone)."""
    start = time.perf_counter()
    predicted = predict(rows)
    cold = len(rows) / (time.perf_counter() - start)
    passes, elapsed = 0, 0.0
    while elapsed < seconds or passes == 0:
        reset()
        start = time.perf_counter()
        predict(rows)
        elapsed += time.perf_counter() - start
        passes += 1
    return predicted, cold, passes * len(rows) / elapsed


def ours() -> tuple[Callable[[list[Row]], list[bool]], Callable[[], None]]:
    detector = load_detector()

    def predict(rows: list[Row]) -> list[bool]:
        return [f.secret for f in detector.scan_many((r["key"], r["value"]) for r in rows)]

    # Each timed pass starts without the per-key cache, like a corpus never seen before.
    return predict, detector._key_class.cache_clear


def detect_secrets_baseline(limit: bool) -> Callable[[list[Row]], list[bool]]:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings, get_plugins

    def predict(rows: list[Row]) -> list[bool]:
        with default_settings():
            limits = {p.secret_type: p for p in get_plugins() if hasattr(p, "entropy_limit")}
            out = []
            for row in rows:
                found = False
                for s in scan_line(f'{row["key"]}: "{row["value"]}"'):
                    p = limits.get(s.type)
                    if not limit or p is None or (
                        p.calculate_shannon_entropy(s.secret_value) > p.entropy_limit
                    ):
                        found = True
                        break
                out.append(found)
            return out

    return predict


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per detector")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        parser.error(f"corpus not found: {args.corpus} (pass --corpus FILE)")

    rows = read_corpus(args.corpus)
    counts = {label: sum(r["label"] == label for r in rows) for label in "TFX"}
    print(f"corpus {args.corpus}: {len(rows)} rows "
          f"(T {counts['T']}, F {counts['F']}, X {counts['X']})")

    from detect_secrets.__version__ import VERSION

    predict, reset = ours()
    contenders = [
        ("configplane (policies/secret_detector.py)", predict, reset),
        (f"detect-secrets {VERSION} scan_line", detect_secrets_baseline(limit=False), None),
        (f"detect-secrets {VERSION} scan_line, entropy limits", detect_secrets_baseline(True), None),
    ]
    header = (f"{'detector':<46} {'X excluded: P / R / F1':>24} {'X negative: P / R / F1':>24} "
              f"{'values/s':>9} {'ratio':>6} {'cold v/s':>9}")
    print(header)
    print("-" * len(header))
    our_speed = 0.0
    for name, predict, reset in contenders:
        predicted, cold, speed = timed(predict, rows, args.seconds, reset or (lambda: None))
        our_speed = our_speed or speed
        cells = [" / ".join(f"{v:.3f}" for v in scores(rows, predicted, x)) for x in (False, True)]
        print(f"{name:<46} {cells[0]:>24} {cells[1]:>24} {speed:>9,.0f} "
              f"{our_speed / speed:>5.1f}x {cold:>9,.0f}")
    print("values/s: one core, after a warm-up pass; ratio: configplane's values/s over the row's;")
    print("cold v/s: the first pass, which also builds the regex automata (once per process).")


if __name__ == "__main__":
    main()
