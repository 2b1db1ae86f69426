"""Compare two trees' outputs of `tfft cv --ensemble`, `tfft data issues` and `tfft tune` (JSON to stdout).

Each of OLD and NEW holds `cv2/` (a cv run with --ensemble), `issues/` (a data issues --out) and
`tune/` (a tune --run-dir); further names are cv runs of NEW compared with OLD's `cv2/` too.
See benchmarks/RESULTS.md ("Unchanged on pets-mini ... scalefeat") for the commands.

Usage:
    python benchmarks/compare_study_outputs.py OLD NEW [CV_RUN ...]
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np


def rows(p):
    with open(p, newline="") as f:
        return list(csv.DictReader(f))

def same_bytes(a, b):
    return Path(a).read_bytes() == Path(b).read_bytes()

def issues_cmp(a, b):
    ra, rb = rows(a), rows(b)
    pa, pb = [r["path"] for r in ra], [r["path"] for r in rb]
    out = {"rows": (len(ra), len(rb)), "byte_identical": same_bytes(a, b), "same_order": pa == pb,
           "same_paths": sorted(pa) == sorted(pb)}
    by_a = {r["path"]: r for r in ra}
    out["same_flags_and_suggestions"] = all(by_a[r["path"]]["is_issue"] == r["is_issue"] and
                                           by_a[r["path"]]["suggested"] == r["suggested"] for r in rb)
    out["max_score_diff"] = max(abs(float(by_a[r["path"]]["score"]) - float(r["score"])) for r in rb)
    out["rows_moved"] = sum(x != y for x, y in zip(pa, pb))
    out["top24_identical"] = pa[:24] == pb[:24]
    return out

def oof_cmp(a, b):
    ra, rb = rows(a), rows(b)
    cols = [c for c in ra[0] if c.startswith("p_")]
    A = np.array([[float(r[c]) for c in cols] for r in ra]); B = np.array([[float(r[c]) for c in cols] for r in rb])
    return {"same_paths_folds": [(r["path"], r["fold"]) for r in ra] == [(r["path"], r["fold"]) for r in rb],
            "max_prob_diff": float(np.abs(A - B).max()), "same_predicted": [r["predicted"] for r in ra] == [r["predicted"] for r in rb]}

def num(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(num(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out

def json_cmp(a, b, skip=("seconds", "time", "wall")):
    na, nb = num(json.loads(Path(a).read_text())), num(json.loads(Path(b).read_text()))
    keys = [k for k in na if k in nb and not any(s in k for s in skip)]
    diffs = {k: (na[k], nb[k]) for k in keys if abs(na[k] - nb[k]) > 1e-6}
    return {"keys": len(keys), "max_abs_diff": max((abs(na[k] - nb[k]) for k in keys), default=0.0), "differing": diffs}

def main() -> None:
    old, new = Path(sys.argv[1]), Path(sys.argv[2])
    report = {}
    for cv in ("cv2",) + tuple(sys.argv[3:]):
        n = new / cv
        o = old / "cv2"
        report[cv] = {"folds.csv byte-identical": same_bytes(o / "folds.csv", n / "folds.csv"),
                      "oof": oof_cmp(o / "oof_predictions.csv", n / "oof_predictions.csv"),
                      "label_issues": issues_cmp(o / "label_issues.csv", n / "label_issues.csv"),
                      "cv_summary": json_cmp(o / "cv_summary.json", n / "cv_summary.json"),
                      "ensemble metrics": json_cmp(o / "ensemble" / "metrics.json", n / "ensemble" / "metrics.json")}
    report["issues"] = {"cv/folds.csv byte-identical": same_bytes(old / "issues/cv/folds.csv", new / "issues/cv/folds.csv"),
                        "duplicates.csv byte-identical": same_bytes(old / "issues/duplicates.csv", new / "issues/duplicates.csv"),
                        "duplicates rows": len(rows(new / "issues/duplicates.csv")),
                        "oof": oof_cmp(old / "issues/cv/oof_predictions.csv", new / "issues/cv/oof_predictions.csv"),
                        "label_issues": issues_cmp(old / "issues/label_issues.csv", new / "issues/label_issues.csv")}
    to, tn = rows(old / "tune/trials.csv"), rows(new / "tune/trials.csv")
    report["tune"] = {"trials": [(a["number"], a["value"], b["value"], a["schedule.lr"] == b["schedule.lr"],
                                  a["model.dropout"] == b["model.dropout"]) for a, b in zip(to, tn)],
                      "best_config.yaml byte-identical": same_bytes(old / "tune/best_config.yaml", new / "tune/best_config.yaml")}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
