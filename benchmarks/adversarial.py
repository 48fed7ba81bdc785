"""Linear time on hostile input: each parser and checker at size n and 4n (issue 18).

    venv/bin/python -m benchmarks.adversarial [--base 64000]

For each case the input grows fourfold; a linear implementation takes about four times as
long, a quadratic one sixteen. The output is the two CPU times and their ratio; the verdict
(`linear` when the ratio is under 8) is a reading, not an assertion: the hang guard
(tests/security/test_hang_guard.py) runs the same inputs at full size within a budget.

Cases (each builds its input from `n`):
- detector: `scan` of one value that made the regexes backtrack (a URL scheme run before `://`,
  blanks between a pair's `=` and its quote, a long run of non-ASCII letters);
- find: secrets in foreign text (`text_secrets`) of n characters of log lines;
- drift: a preview whose one update has n/20 changed paths, and a refresh of as many;
- manifest: an import input of n/60 ConfigMap documents through the bounded loader.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from configplane.inputs import load_documents
from configplane.ops import build_report, parse_events, parse_preview
from configplane.redaction import load_detector, text_secrets

URN = "urn:pulumi:dev::configplane::aws:s3/bucket:Bucket::b"


def detector_values(n: int) -> list[str]:
    return ["password=" + "a." * (n // 2) + "://", "a=" + "\t" * n + '"',
            "Bearer " + "é" * n + '"', "https://x/" + "ab" * (n // 2) + "@"]


def log_text(n: int) -> str:
    line = "2026-12-03 api: retry 3 of GET /v1/orders?id=42 took 120ms; status=503\n"
    return line * (n // len(line) + 1)


def preview_documents(n: int) -> tuple[str, str]:
    paths = n // 20
    preview = {"steps": [{"op": "update", "urn": URN,
                          "oldState": {"type": "aws:s3/bucket:Bucket", "inputs": {}},
                          "newState": {"type": "aws:s3/bucket:Bucket", "inputs": {}},
                          "detailedDiff": {f"tags.k{i}": {"kind": "update", "inputDiff": False}
                                           for i in range(paths)}}],
               "changeSummary": {"update": 1}}
    events = {"sequence": 1, "resOutputsEvent": {"metadata": {
        "op": "refresh", "urn": URN, "diffs": [f"tags.z{i}" for i in range(paths)]}}}
    return json.dumps(preview), json.dumps(events)


def manifest_text(n: int) -> str:
    one = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{K{i}: b}}\n"
    return "---\n".join(one.format(i=i) for i in range(n // 60 + 1))


def _drift(n: int) -> Callable[[], object]:
    preview, events = preview_documents(n)
    return lambda: build_report(parse_preview(preview, "p"), parse_events(events, "e"))


def cases(n: int) -> dict[str, Callable[[], object]]:
    detector = load_detector()
    values, text, manifests = detector_values(n), log_text(n), manifest_text(n)
    return {
        "detector": lambda: [detector.scan("CALLBACK", v) for v in values],
        "find": lambda: text_secrets(text),
        "drift": _drift(n),
        "manifest": lambda: load_documents(manifests, "in.yaml"),
    }


def cpu(run: Callable[[], object]) -> float:
    load_detector().clear_caches()  # the detector memoises values: time it cold
    start = time.process_time()
    run()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=64000, help="n of the smaller run")
    args = parser.parse_args(argv)
    small, large = cases(args.base), cases(4 * args.base)
    print(f"{'case':10} {'n':>9} {'4n':>9} {'ratio':>6}")
    for name in small:
        small[name]()  # warm: compiled patterns, caches of the first call
        a, b = cpu(small[name]), cpu(large[name])
        ratio = b / a if a else float("inf")
        print(f"{name:10} {a:8.3f}s {b:8.3f}s {ratio:6.1f} "
              f"{'linear' if ratio < 8 else 'SUPERLINEAR'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
