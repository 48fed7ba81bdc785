"""How well the pack's secret detector generalises, beside detect-secrets and gitleaks.

Run from the repo root: venv/bin/python -m benchmarks.detector [--corpus FILE]

The corpus is the labelled tuning set (tune.jsonl, found as tests/corpus.py says: the
CONFIGPLANE_CORPUS_DIR directory, else ../shared/data/secret-corpus; read in place, never
copied). It prints, in this order:

1. leave-one-repository-out (LORO) cross-validation: for each of the corpus' repositories,
   the detector's thresholds (policies/secret_detector.py `Thresholds`) are chosen on the
   OTHER repositories and the repository is scored with them; the counts of all folds are
   pooled. This is how a held-out set of unseen repositories measures, so it is the figure
   to improve. The per-repository breakdown, the thresholds each fold chose and the spread
   of per-repository F1 follow. The vocabularies and rules have no fitted parameters (they
   are the same in every fold), but they were written by people who had read the tuning set:
   LORO measures the thresholds honestly, not the authors' eyes.
2. the plain tuning-set score, with the shipped DEFAULT_THRESHOLDS (the choice made on all
   repositories), and the baselines (which have nothing to fit, so LORO changes nothing
   for them).
3. speed: values per second on one core, cold (first pass: building the regex automata,
   empty caches) and warm (repeated passes with caches cleared before each);
4. with --audit: each vocabulary entry whose removal changes a verdict, and on how many
   repositories (an entry that only matters for one is a candidate for a fitted rule).

Every score is given with X rows (reviewers unsure) excluded and with X counted as negative.
Baselines: detect-secrets' default plugins through its ad-hoc `scan_line` on the line
`key: "value"` (as it reports, and with each entropy plugin's limit applied, which is how
the corpus README measured it), and gitleaks' default rule set (benchmarks/gitleaks_default.toml,
vendored; see its header) applied to the same line with gitleaks' keyword, entropy, allowlist and
stopword semantics, evaluated in Python with RE2.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from configplane.redaction import load_detector
from tests.corpus import read_rows, tune_file

HERE = Path(__file__).resolve().parent
GITLEAKS_DEFAULT = HERE / "gitleaks_default.toml"
MIN_PRECISION = 0.90  # the issue's floor: a fold picks the best F1 among thresholds above it

Row = dict[str, str]
Counts = tuple[int, int, int]  # tp, fp, fn


# --- scoring -------------------------------------------------------------------------------


def counts(rows: Sequence[Row], predicted: Sequence[bool], x_negative: bool) -> Counts:
    tp = fp = fn = 0
    for row, positive in zip(rows, predicted, strict=True):
        if row["label"] == "X" and not x_negative:
            continue
        truth = row["label"] == "T"
        tp += positive and truth
        fp += positive and not truth
        fn += truth and not positive
    return tp, fp, fn


def prf(c: Counts) -> tuple[float, float, float]:
    tp, fp, fn = c
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def scores(rows: Sequence[Row], predicted: Sequence[bool], x_negative: bool) -> tuple:
    return prf(counts(rows, predicted, x_negative))


def add(*cs: Counts) -> Counts:
    return tuple(map(sum, zip(*cs, strict=True))) if cs else (0, 0, 0)  # type: ignore[return-value]


def cell(c: Counts) -> str:
    return " / ".join(f"{v:.3f}" for v in prf(c))


# --- the thresholds and how a fold chooses them ---------------------------------------------

GRID_VALUES = {  # every combination is tried; larger values mean fewer alarms
    "password_min_len": (1, 2, 3, 4, 5, 6, 8),
    "secret_min_len": (1, 2, 4, 6, 8),
    "token_min_len": (6, 8, 10, 12, 16),
    "random_min_len": (12, 16, 20, 24, 32),
}


def grid(detector) -> list:
    names = [f.name for f in fields(detector.Thresholds)]
    assert sorted(names) == sorted(GRID_VALUES), "benchmark grid and Thresholds disagree"
    # Strictest first, so that a tie in the choice goes to fewer alarms.
    values = [sorted(GRID_VALUES[n], reverse=True) for n in names]
    return [detector.Thresholds(*combo) for combo in itertools.product(*values)]


@dataclass
class GridResult:
    thresholds: list  # Thresholds, in grid order
    by_repo: list[dict[str, tuple[Counts, Counts]]]  # per threshold: repo -> (X excl, X neg)
    predictions: list[list[bool]]


def run_grid(detector, rows: list[Row], candidates: list | None = None) -> GridResult:
    candidates = grid(detector) if candidates is None else candidates
    repos = sorted({r["repo"] for r in rows})
    pairs = [(r["key"], r["value"]) for r in rows]
    by_repo, predictions = [], []
    for t in candidates:
        predicted = [f.secret for f in detector.scan_many(pairs, t)]
        per = {}
        for repo in repos:
            idx = [i for i, r in enumerate(rows) if r["repo"] == repo]
            sub = [rows[i] for i in idx]
            pred = [predicted[i] for i in idx]
            per[repo] = (counts(sub, pred, False), counts(sub, pred, True))
        by_repo.append(per)
        predictions.append(predicted)
    return GridResult(candidates, by_repo, predictions)


def choose(result: GridResult, repos: Sequence[str]) -> int:
    """The index of the thresholds a fold picks from the repositories `repos` alone: the best
    F1 (X excluded) among those with precision >= MIN_PRECISION (all, if none reaches it);
    ties go to the better F1 with X counted negative (the unsure rows break ties, they do not
    decide), then to the higher precision, then to the stricter thresholds (earlier)."""
    best, best_key = 0, None
    for i, per in enumerate(result.by_repo):
        p, _, f1 = prf(add(*(per[r][0] for r in repos)))
        f1_neg = prf(add(*(per[r][1] for r in repos)))[2]
        key = (p >= MIN_PRECISION, round(f1, 9), round(f1_neg, 9), round(p, 9))
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def short(t) -> str:
    return "/".join(str(v) for v in astuple(t))


# --- baselines -----------------------------------------------------------------------------


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


def _shannon(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in (s.count(ch) for ch in set(s))) if n else 0.0


def gitleaks_baseline(path: Path = GITLEAKS_DEFAULT) -> Callable[[list[Row]], list[bool]]:
    """gitleaks' detect semantics for one line: keywords gate a rule; the secret (secretGroup,
    else the first non-empty group, else the match) must beat the rule's entropy and escape
    the rule's allowlists (regexes on secret/match/line, stopwords; AND/OR condition) and the
    global allowlist. Path-only rules and path allowlists do not apply to a line."""
    import re2

    with path.open("rb") as f:
        config = tomllib.load(f)
    glob = config["allowlist"]
    global_regexes = [re2.compile(r) for r in glob.get("regexes", [])]
    global_stop = [w.lower() for w in glob.get("stopwords", [])]
    rules = []
    for raw in config["rules"]:
        if "regex" not in raw:
            continue
        allows = []
        for al in raw.get("allowlists", []):
            allows.append((
                [re2.compile(r) for r in al.get("regexes", [])],
                al.get("regexTarget", "secret"),
                [w.lower() for w in al.get("stopwords", [])],
                al.get("condition", "OR"),
                bool(al.get("paths")),
            ))
        rules.append((re2.compile(raw["regex"]), [k.lower() for k in raw.get("keywords", [])],
                      float(raw.get("entropy", 0.0)), int(raw.get("secretGroup", 0)), allows))

    def hit(line: str) -> bool:
        lower = line.lower()
        for regex, keywords, entropy, group, allows in rules:
            if keywords and not any(k in lower for k in keywords):
                continue
            for m in regex.finditer(line):
                if group and group <= len(m.groups()):
                    secret = m.group(group) or ""
                else:
                    secret = next((g for g in m.groups() if g), None) or m.group(0)
                if entropy and _shannon(secret) <= entropy:
                    continue
                if any(r.search(secret) for r in global_regexes):
                    continue
                if any(w in secret.lower() for w in global_stop):
                    continue
                if _gitleaks_allowed(secret, m.group(0), line, allows):
                    continue
                return True
        return False

    return lambda rows: [hit(f'{r["key"]}: "{r["value"]}"') for r in rows]


def _gitleaks_allowed(secret: str, match: str, line: str, allows) -> bool:
    """Does one of a rule's allowlists let this finding go?"""
    for regexes, target, stops, condition, has_paths in allows:
        text = {"match": match, "line": line}.get(target, secret)
        checks = []
        if regexes:
            checks.append(any(r.search(text) for r in regexes))
        if stops:
            checks.append(any(w in secret.lower() for w in stops))
        if has_paths:
            checks.append(False)  # a line has no path
        if checks and (all(checks) if condition == "AND" else any(checks)):
            return True
    return False


# --- speed ---------------------------------------------------------------------------------


def timed(predict: Callable[[list[Row]], list[bool]], rows: list[Row], seconds: float,
          reset: Callable[[], None]) -> tuple[list[bool], float, float]:
    """Predictions, cold values/s (the first pass) and warm values/s (passes after it, until
    `seconds` have gone, caches cleared before each)."""
    reset()
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


# --- the report ----------------------------------------------------------------------------


def loro(detector, rows: list[Row], candidates: list | None = None
         ) -> tuple[GridResult, dict[str, int]]:
    """The grid, and for each repository the index of the thresholds chosen without it."""
    result = run_grid(detector, rows, candidates)
    repos = sorted({r["repo"] for r in rows})
    chosen = {repo: choose(result, [r for r in repos if r != repo]) for repo in repos}
    return result, chosen


def audit(detector, rows: list[Row]) -> list[tuple[str, str, dict[str, int], int]]:
    """Remove each vocabulary entry in turn and re-scan: (list, entry, changed rows per
    repository, rows the entry gets right) for every entry that changes a prediction. An
    entry whose effect falls on one repository is a candidate for a rule fitted to it; the
    report lists them for review. The detector's lookup tables are rebuilt in place and
    restored afterwards."""
    pairs = [(r["key"], r["value"]) for r in rows]
    base = [f.secret for f in detector.scan_many(pairs)]
    vocabulary = detector.VOCABULARY
    saved = {name: dict(words) for name, words in vocabulary.items()}

    def rebuild() -> None:
        detector._V.clear()
        detector._V.update({n: frozenset(w) for n, w in vocabulary.items()})
        detector._PAIRS.clear()
        detector._PAIRS.update({p: n for n in ("secret", "token") for p in vocabulary[f"{n}_pairs"]})
        detector._SUFFIXES = tuple(sorted(vocabulary["suffix_words"], key=len, reverse=True))
        detector.clear_caches()

    out = []
    try:
        for name in saved:
            for entry in saved[name]:
                del vocabulary[name][entry]
                if name in detector.SECRET_SLOTS:  # a slot word is also its suffix form
                    vocabulary["suffix_words"].pop(entry, None)
                rebuild()
                now = [f.secret for f in detector.scan_many(pairs)]
                changed = [i for i, (a, b) in enumerate(zip(base, now, strict=True)) if a != b]
                if changed:
                    per: dict[str, int] = {}
                    for i in changed:
                        per[rows[i]["repo"]] = per.get(rows[i]["repo"], 0) + 1
                    right = sum((rows[i]["label"] == "T") == base[i] for i in changed)
                    out.append((name, entry, per, right))
                vocabulary[name].clear()
                vocabulary[name].update(saved[name])
                vocabulary["suffix_words"].clear()
                vocabulary["suffix_words"].update(saved["suffix_words"])
    finally:
        for name, words in saved.items():
            vocabulary[name].clear()
            vocabulary[name].update(words)
        rebuild()
    return out


def pooled(result: GridResult, chosen: dict[str, int]) -> tuple[Counts, Counts]:
    """Counts of every fold on its own held-out repository: (X excluded, X negative)."""
    return (add(*(result.by_repo[i][repo][0] for repo, i in chosen.items())),
            add(*(result.by_repo[i][repo][1] for repo, i in chosen.items())))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None,
                        help="tune.jsonl (default: as tests/corpus.py finds it)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per detector")
    parser.add_argument("--audit", action="store_true",
                        help="also list the vocabulary entries whose removal changes a verdict")
    args = parser.parse_args(argv)
    corpus = args.corpus or tune_file()
    if not corpus.is_file():
        parser.error(f"corpus not found: {corpus} (set CONFIGPLANE_CORPUS_DIR or pass --corpus)")

    rows = read_rows(corpus)
    n = {label: sum(r["label"] == label for r in rows) for label in "TFX"}
    repos = sorted({r["repo"] for r in rows})
    print(f"corpus {corpus}: {len(rows)} rows from {len(repos)} repositories "
          f"(T {n['T']}, F {n['F']}, X {n['X']})")
    detector = load_detector()

    # Timed first, so that the cold pass is the first use of the automata in this process;
    # printed last.
    from detect_secrets.__version__ import VERSION

    def ours(rs: list[Row]) -> list[bool]:
        return [f.secret for f in detector.scan_many((r["key"], r["value"]) for r in rs)]

    contenders = [
        ("configplane (policies/secret_detector.py)", ours, detector.clear_caches),
        (f"detect-secrets {VERSION} scan_line", detect_secrets_baseline(limit=False), None),
        (f"detect-secrets {VERSION} scan_line, entropy limits", detect_secrets_baseline(True), None),
        ("gitleaks default rules (RE2, Python)", gitleaks_baseline(), None),
    ]
    speeds = []
    lines = []
    for name, predict, reset in contenders:
        predicted, cold, speed = timed(predict, rows, args.seconds, reset or (lambda: None))
        speeds.append(speed)
        lines.append((name, counts(rows, predicted, False), counts(rows, predicted, True),
                      speed, cold))

    # 1. leave-one-repository-out
    result, chosen = loro(detector, rows)
    pooled_ex, pooled_neg = pooled(result, chosen)
    print()
    print(f"1. leave-one-repository-out cross-validation ({len(repos)} folds; thresholds chosen "
          f"on the other {len(repos) - 1} repositories from {len(result.thresholds)} candidates)")
    print(f"   configplane, folds pooled: X excluded P / R / F1 {cell(pooled_ex)}   "
          f"X negative {cell(pooled_neg)}   (tp/fp/fn {'/'.join(map(str, pooled_ex))})")
    print(f"   {'repository':<10} {'rows':>4} {'T':>3} {'F':>4} {'X':>3}  {'tp':>3} {'fp':>3} "
          f"{'fn':>3}  {'P / R / F1 (X excluded)':<23}  thresholds (pw/secret/token/random)")
    f1s = []
    for repo in repos:
        ex = result.by_repo[chosen[repo]][repo][0]
        mine = [r for r in rows if r["repo"] == repo]
        c = {label: sum(r["label"] == label for r in mine) for label in "TFX"}
        if sum(ex):
            f1s.append(prf(ex)[2])
        print(f"   {repo:<10} {len(mine):>4} {c['T']:>3} {c['F']:>4} {c['X']:>3}  {ex[0]:>3} "
              f"{ex[1]:>3} {ex[2]:>3}  {cell(ex) if sum(ex) else 'nothing to find or flag':<23}  "
              f"{short(result.thresholds[chosen[repo]])}")
    print(f"   per-repository F1 over the {len(f1s)} repositories with something to find or flag: "
          f"mean {statistics.mean(f1s):.3f}, standard deviation {statistics.pstdev(f1s):.3f}, "
          f"min {min(f1s):.3f}")
    everywhere = choose(result, repos)
    shipped = result.thresholds.index(detector.DEFAULT_THRESHOLDS) \
        if detector.DEFAULT_THRESHOLDS in result.thresholds else None
    print(f"   chosen on all {len(repos)} repositories: {short(result.thresholds[everywhere])}; "
          f"shipped DEFAULT_THRESHOLDS: {short(detector.DEFAULT_THRESHOLDS)} "
          f"({'the same' if shipped == everywhere else 'DIFFERENT: update secret_detector.py'})")

    # 2. the tuning set, and the baselines
    print()
    print("2. the whole tuning set (configplane with DEFAULT_THRESHOLDS; the baselines fit "
          "nothing, so their LORO figure is this one)")
    header = (f"   {'detector':<50} {'X excluded: P / R / F1':>23} {'X negative: P / R / F1':>23}"
              f" {'values/s':>9} {'ratio':>6} {'cold v/s':>9}")
    print(header)
    print("   " + "-" * (len(header) - 3))
    for name, ex, neg, speed, cold in lines:
        print(f"   {name:<50} {cell(ex):>23} {cell(neg):>23} {speed:>9,.0f} "
              f"{speeds[0] / speed:>5.1f}x {cold:>9,.0f}")

    # 3. speed
    print()
    goal = 10_000
    print(f"3. speed: configplane {speeds[0]:,.0f} values/s warm, {lines[0][4]:,.0f} cold "
          f"(goal >= {goal:,}: {'met' if speeds[0] >= goal else 'NOT MET'})")
    print("   values/s: one core, caches cleared before every pass; ratio: configplane's values/s")
    print("   over the row's; cold: the first pass in the process, which also builds the regex")
    print("   automata. Timed before the cross-validation, on a machine shared with other work.")

    if args.audit:
        print()
        print("4. vocabulary audit: entries whose removal changes a verdict on the tuning set")
        for name, entry, per, right in audit(detector, rows):
            n_changed = sum(per.values())
            flag = "  <- one repository" if len(per) == 1 else ""
            print(f"   {name:<22} {entry:<16} {n_changed:>3} rows in {len(per):>2} repositories, "
                  f"right on {right}{flag}")


if __name__ == "__main__":
    main()
