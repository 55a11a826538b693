#!/usr/bin/env python3
"""Rebuilds the tables of docs/results.md from committed runs (docs/protocol.md).

Each table is described by a manifest, runs/<table>/table.json:

    {"name": "reduced_ablation", "title": "...", "metric": "test_accuracy" | "val_accuracy",
     "baseline": "fixed", "seeds": [100, 101, 102],
     "rows": [{"label": "fixed", "dir": "fixed_seed{seed}"}, ...]}

Each row's run directory (relative to the manifest) holds the result.json that diffautoml-search
wrote. The script enforces the protocol before it prints a figure: a table of test accuracy uses
only headline seeds (>= 100, never used for a choice), a table of validation accuracy only choice
runs (the test set not read), every row of a seed the same number of steps, and every run the same
CPU with the same thread count and a binary built for the same instruction set. It prints per row the mean, standard deviation and range, and the paired difference from the
baseline row with its 95% interval (Student's t over the seeds).

    python3 scripts/tables.py              # print every table
    python3 scripts/tables.py --write      # also replace each table's block in docs/results.md
    python3 scripts/tables.py --check      # fail if docs/results.md differs from the runs
    python3 scripts/tables.py --self-test  # the statistics and the protocol checks on made-up runs

A table's block in docs/results.md lies between <!-- table:NAME --> and <!-- /table:NAME -->.
"""
import glob
import json
import math
import os
import re
import sys
import tempfile

HEADLINE_SEED = 100  # seeds below it may be used for choices; the test set is reported on seeds above

# Two-sided 95% quantiles of Student's t, by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
        18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


class ProtocolError(Exception):
    pass


def t975(df):
    if df in T975:
        return T975[df]
    below = [k for k in T975 if k < df]
    return T975[max(below)] if below else float("nan")  # conservative: the next smaller df


def mean_sd(xs):
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else float("nan")
    return m, sd


def paired(diffs):
    """Mean, sd and the 95% t interval of paired differences."""
    m, sd = mean_sd(diffs)
    half = t975(len(diffs) - 1) * sd / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return m, sd, (m - half, m + half)


def load_table(manifest_path):
    with open(manifest_path) as f:
        t = json.load(f)
    for key in ("name", "metric", "baseline", "seeds", "rows"):
        if key not in t:
            raise ProtocolError(f"{manifest_path}: the manifest lacks '{key}'")
    if t["metric"] not in ("test_accuracy", "val_accuracy"):
        raise ProtocolError(f"{manifest_path}: metric must be test_accuracy or val_accuracy, got {t['metric']}")
    if t["metric"] == "test_accuracy":
        early = [s for s in t["seeds"] if s < HEADLINE_SEED]
        if early:
            raise ProtocolError(f"{manifest_path}: test accuracy on seeds {early}, which may have been used for "
                                f"choices; report the test set on seeds >= {HEADLINE_SEED} only")
    base = os.path.dirname(manifest_path)
    values, steps, cpus, threads, builds = {}, {}, set(), set(), set()
    for row in t["rows"]:
        for seed in t["seeds"]:
            path = os.path.join(base, row["dir"].format(seed=seed), "result.json")
            if not os.path.exists(path):
                raise ProtocolError(f"{path}: missing; the table cites a run that is not committed")
            with open(path) as f:
                r = json.load(f)
            v = r.get(t["metric"])
            if v is None:
                raise ProtocolError(f"{path}: has no {t['metric']}")
            if t["metric"] == "val_accuracy" and r.get("test_accuracy") is not None:
                raise ProtocolError(f"{path}: a choice table must come from runs that did not read the test set")
            if r.get("config", {}).get("seed", seed) != seed:
                raise ProtocolError(f"{path}: ran seed {r['config']['seed']}, the manifest says {seed}")
            values[(row["label"], seed)] = float(v)
            steps.setdefault(seed, set()).add(r.get("steps"))
            cpus.add(r.get("host", {}).get("cpu", "unknown"))
            threads.add(r.get("host", {}).get("threads"))
            # Runs from before result.json recorded the build came from -march=native builds (the
            # default then); a native and an x86-64-v3 build of one commit differ by up to a point.
            builds.add(r.get("host", {}).get("march", "native"))
    for seed, s in steps.items():
        if len(s) > 1:
            raise ProtocolError(f"{t['name']}: seed {seed}'s rows ran different step counts {sorted(s)}; compare at "
                                f"the same budget in steps (--epochs E --minutes 0)")
    if len(cpus) > 1:
        raise ProtocolError(f"{t['name']}: rows ran on different CPUs {sorted(cpus)}; run a table on one machine")
    if len(threads) > 1:
        raise ProtocolError(f"{t['name']}: rows ran with different thread counts {sorted(threads, key=str)}; the "
                            f"thread count changes a run's trajectory, so a table uses one --threads")
    if len(builds) > 1:
        raise ProtocolError(f"{t['name']}: rows ran binaries built for different instruction sets {sorted(builds)} "
                            f"(host.march); float summation order moves a run, so a table uses one build")
    return t, values, cpus.pop() if cpus else "unknown"


def render(t, values, cpu):
    seeds, metric = t["seeds"], t["metric"]
    lines = [f"{t.get('title', t['name'])} ({metric.replace('_', ' ')}, %, seeds {', '.join(map(str, seeds))}; "
             f"CPU: {cpu}; rebuilt by scripts/tables.py from runs/{t['name']}/)", "",
             f"| row | mean | sd | range | paired diff vs {t['baseline']} | 95% interval | per seed |",
             "|---|---|---|---|---|---|---|"]
    for row in t["rows"]:
        xs = [100 * values[(row["label"], s)] for s in seeds]
        m, sd = mean_sd(xs)
        if row["label"] == t["baseline"]:
            diff, ci = "", ""
        else:
            dm, dsd, (lo, hi) = paired([100 * (values[(row["label"], s)] - values[(t["baseline"], s)]) for s in seeds])
            diff, ci = f"{dm:+.2f} +- {dsd:.2f}", f"[{lo:+.2f}, {hi:+.2f}]"
        lines.append(f"| {row['label']} | {m:.2f} | {sd:.2f} | {min(xs):.2f}-{max(xs):.2f} | {diff} | {ci} | "
                     f"{', '.join(f'{x:.2f}' for x in xs)} |")
    return "\n".join(lines) + "\n"


def replace_block(doc, name, body):
    pattern = re.compile(rf"(<!-- table:{re.escape(name)} -->\n)(.*?)(<!-- /table:{re.escape(name)} -->)", re.S)
    if not pattern.search(doc):
        raise ProtocolError(f"docs/results.md has no block <!-- table:{name} --> ... <!-- /table:{name} -->")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), doc)


def run(root, mode):
    manifests = sorted(glob.glob(os.path.join(root, "runs", "*", "table.json")))
    doc_path = os.path.join(root, "docs", "results.md")
    with open(doc_path) as f:
        doc = f.read()
    new = doc
    for m in manifests:
        t, values, cpu = load_table(m)
        body = render(t, values, cpu)
        print(body)
        new = replace_block(new, t["name"], body)
    if mode == "--write" and new != doc:
        with open(doc_path, "w") as f:
            f.write(new)
    if mode == "--check" and new != doc:
        raise ProtocolError("docs/results.md differs from the committed runs; run scripts/tables.py --write")
    print(f"{len(manifests)} table(s)")


def self_test():
    # Paired differences 1, 2, 3: mean 2, sd 1, interval 2 +- 4.303 / sqrt(3).
    m, sd, (lo, hi) = paired([1.0, 2.0, 3.0])
    assert abs(m - 2) < 1e-12 and abs(sd - 1) < 1e-12, (m, sd)
    assert abs(hi - (2 + 4.303 / math.sqrt(3))) < 1e-9 and abs(lo - (2 - 4.303 / math.sqrt(3))) < 1e-9, (lo, hi)
    assert t975(22) == T975[20]  # between table entries: the smaller df, the wider interval
    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        with open(os.path.join(root, "docs", "results.md"), "w") as f:
            f.write("before\n<!-- table:demo -->\nold\n<!-- /table:demo -->\nafter\n")

        def write_run(label, seed, acc, steps=100, cpu="cpu A", test=True, threads=1, march=None):
            d = os.path.join(root, "runs", "demo", f"{label}_seed{seed}")
            os.makedirs(d, exist_ok=True)
            host = {"cpu": cpu, "threads": threads} | ({"march": march} if march else {})
            r = {"steps": steps, "host": host, "config": {"seed": seed},
                 "test_accuracy": acc if test else None, "val_accuracy": acc}
            with open(os.path.join(d, "result.json"), "w") as f:
                json.dump(r, f)

        manifest = {"name": "demo", "metric": "test_accuracy", "baseline": "fixed", "seeds": [100, 101, 102],
                    "rows": [{"label": "fixed", "dir": "fixed_seed{seed}"}, {"label": "joint", "dir": "joint_seed{seed}"}]}

        def write_manifest(**kw):
            with open(os.path.join(root, "runs", "demo", "table.json"), "w") as f:
                json.dump(dict(manifest, **kw), f)

        for s, (a, b) in zip([100, 101, 102], [(0.90, 0.91), (0.92, 0.94), (0.91, 0.94)]):
            write_run("fixed", s, a)
            write_run("joint", s, b)
        write_manifest()
        run(root, "--write")
        with open(os.path.join(root, "docs", "results.md")) as f:
            doc = f.read()
        assert "| joint | 93.00 | 1.73 | 91.00-94.00 | +2.00 +- 1.00 | [-0.48, +4.48] |" in doc, doc
        assert doc.startswith("before\n<!-- table:demo -->\n") and doc.endswith("<!-- /table:demo -->\nafter\n")
        run(root, "--check")  # up to date now

        def refuses(fragment):
            try:
                run(root, "--check")
            except ProtocolError as e:
                assert fragment in str(e), (fragment, str(e))
                return
            raise AssertionError(f"expected a ProtocolError with '{fragment}'")

        write_manifest(seeds=[0, 101, 102])
        refuses("may have been used for choices")
        write_manifest(metric="val_accuracy")
        refuses("did not read the test set")
        write_manifest()
        write_run("joint", 101, 0.94, steps=120)
        refuses("different step counts")
        write_run("joint", 101, 0.94, cpu="cpu B")
        refuses("different CPUs")
        write_run("joint", 101, 0.94, threads=2)
        refuses("different thread counts")
        write_run("joint", 101, 0.94, march="x86-64-v3")
        refuses("different instruction sets")
        write_run("joint", 101, 0.94, march="native")  # the same build as a run that did not record it
        run(root, "--check")
        write_run("joint", 101, 0.95)
        refuses("differs from the committed runs")
        os.remove(os.path.join(root, "runs", "demo", "joint_seed102", "result.json"))
        refuses("not committed")
    print("self-test passed")


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode not in ("", "--write", "--check", "--self-test"):
        print(__doc__)
        return 2
    try:
        if mode == "--self-test":
            self_test()
        else:
            run(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), mode)
    except ProtocolError as e:
        print(f"tables.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
