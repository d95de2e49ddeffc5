#!/usr/bin/env python3
"""tinyroute eval --local on the fixture (issue #16, tools/eval_local.c).

usage: test_eval_local.py CLI EMBEDDER FIXTURE

Checks real properties of the output, not its numbers:
  - one table per scenario (model shift; model + traffic shift), each with
    the rows 0, 50, 200, 1000 outcomes;
  - at 0 outcomes the local store is empty and the rebuilt pack is the pack:
    local, local+level and rebuilt Area equal pack-only Area exactly,
    differences +0.0000;
  - every Area in [0, 1], the differences are the printed columns' own,
    seed counts within the seeds asked for, one chosen weight and one level
    pseudo-count per seed, each from its validation grid;
  - the eviction table (a store of 64 and 256 entries, oldest first and
    least supported, against an unbounded one): a store that evicted
    nothing in any seed has the unbounded store's Area exactly, the
    64-entry stores evict when the seeds drew more distinct prompts than
    64, and the columns are their own differences;
  - the run is deterministic (twice, the same bytes);
  - --json: the document's "local" scenarios hold the printed tables'
    numbers (pairs, weights, level pseudo-counts per seed), and `report`
    draws one figure per scenario (four series over the outcome counts)
    with its table;
  - bad arguments: --device-max-cost 0 (exit 2), and a threshold leaving
    fewer than two device candidates (exit 1, with the reason).
"""
import json
import os
import re
import subprocess
import sys
import tempfile

GRID = {0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0}
LEVEL_GRID = {"off", "10", "30", "100", "300"}
passed = failed = 0


def check(ok, what):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + what)
    if ok:
        passed += 1
    else:
        failed += 1


def run(cli, *args):
    return subprocess.run([cli, "eval", "--local", *args], capture_output=True, text=True)


def main():
    cli, emb, fix = sys.argv[1:4]
    seeds = 2
    base = ["--data", fix, "--embedder", emb, "--seeds", str(seeds)]
    r = run(cli, *base)
    check(r.returncode == 0, "eval --local runs (exit 0)")
    out = r.stdout
    heads = re.findall(r"^(\S+), (model shift|model \+ traffic shift \(1-3 tasks\)), (\d+) seeds; "
                       r"local_weight chosen per seed on validation: (\S+); "
                       r"level pseudo-count: (\S+)$", out, re.M)
    check([h[1] for h in heads] == ["model shift", "model + traffic shift (1-3 tasks)"],
          "two scenario tables, model shift then model + traffic shift")
    for h in heads:
        ws = [float(x) for x in h[3].split(",")]
        check(int(h[2]) == seeds and len(ws) == seeds and all(w in GRID for w in ws),
              f"{h[1]}: one weight per seed, each from the validation grid ({h[3]})")
        ls = h[4].split(",")
        check(len(ls) == seeds and all(x in LEVEL_GRID for x in ls),
              f"{h[1]}: one level pseudo-count per seed, each from its grid ({h[4]})")
    tables = re.split(r"^\S+, model", out, flags=re.M)[1:]
    check(len(tables) == 2, "each scenario has its table")
    for t in tables:
        rows = re.findall(r"^\| (\d+) \| (\d+) \|(.*)\|$", t, re.M)
        check([x[0] for x in rows] == ["0", "50", "200", "1000"],
              "rows at 0, 50, 200, 1000 outcomes")
        for at, n, rest in rows:
            n = int(n)
            check(0 <= n <= seeds, f"row {at}: seed count {n} within {seeds}")
            if n == 0:
                continue
            cells = [c.strip() for c in rest.split("|")]
            pack, local, dlp, level, dvp, rebuilt, dvr = cells[:7]
            vals = [float(pack), float(local), float(level), float(rebuilt)]
            check(all(0.0 <= v <= 1.0 for v in vals), f"row {at}: Areas in [0,1]")
            check(abs(float(dlp) - (float(local) - float(pack))) <= 1.5e-4 and
                  abs(float(dvp) - (float(level) - float(pack))) <= 1.5e-4 and
                  abs(float(dvr) - (float(level) - float(rebuilt))) <= 1.5e-4,
                  f"row {at}: the differences are local - pack, level - pack, level - rebuilt")
            if at == "0":
                check(pack == local == level == rebuilt and
                      dlp == dvp == dvr == "+0.0000",
                      "0 outcomes: local, local+level and rebuilt Area equal pack-only exactly")
    evs = re.findall(r"^Eviction: \d+ draws with repeats \(Zipf\), (\d+) distinct prompts on average, "
                     r"(\d+) seeds; Area with the final store \(pack-only (\S+)\)\n(.*?)(?:\n\n|\Z)",
                     out, re.M | re.S)
    check(len(evs) >= 1, "an eviction table for a scenario that streamed enough prompts")
    for distinct, n, pack, body in evs:
        rows = re.findall(r"^\| store (\S+) \| ([a-z ]+) \| ([\d.]+) \| (\S+) \| (\S+) \| (\S+) \|$",
                          body, re.M)
        check([(r_[0], r_[1]) for r_ in rows] ==
              [("unbounded", "none"), ("64", "oldest first"), ("64", "least supported"),
               ("256", "oldest first"), ("256", "least supported")],
              "eviction: the unbounded store, then 64 and 256 entries under both policies")
        u = rows[0][3]
        for cap, pol, evicted, area, du, dp in rows:
            check(0.0 <= float(area) <= 1.0 and
                  abs(float(du) - (float(area) - float(u))) <= 1.5e-4 and
                  abs(float(dp) - (float(area) - float(pack))) <= 1.5e-4,
                  f"eviction {cap} {pol}: Area in [0,1], its differences its own")
            if float(evicted) == 0.0:
                check(area == u and du == "+0.0000",
                      f"eviction {cap} {pol}: nothing evicted, the unbounded store's Area exactly")
        if int(distinct) > 64:
            check(all(float(r_[2]) > 0 for r_ in rows if r_[0] == "64"),
                  f"eviction: {distinct} distinct prompts on average: the 64-entry stores evicted")
    r2 = run(cli, *base)
    check(r2.returncode == 0 and r2.stdout == out, "deterministic: a second run prints the same")
    with tempfile.TemporaryDirectory() as work:
        doc_path, html = os.path.join(work, "local.json"), os.path.join(work, "local.html")
        rj = run(cli, *base, "--json", doc_path)
        check(rj.returncode == 0 and rj.stdout == out, "--json: the same tables on stdout")
        doc = json.load(open(doc_path))
        ds = doc["datasets"][0]
        check(ds["methods"] == [] and [s_["scenario"] for s_ in ds["local"]] == [h[1] for h in heads],
              "--json: no methods, one \"local\" scenario per table, in order")
        for h, t, sc in zip(heads, tables, ds["local"]):
            rows = {x[0]: x for x in re.findall(r"^\| (\d+) \| (\d+) \|(.*)\|$", t, re.M)}
            same = len(sc["pairs"]) == seeds and [float(w) for w in h[3].split(",")] == sc["local_weight"]
            same &= [x if x != "off" else "0" for x in h[4].split(",")] == ["%g" % v for v in sc["level_pseudo_count"]]
            for pt in sc["points"]:
                at, n, rest = rows[str(pt["outcomes"])]
                cells = [c.strip() for c in rest.split("|")]
                same &= int(n) == pt["seeds"] and all(
                    "%.4f" % pt[k] == cells[i] for k, i in (("pack", 0), ("local", 1), ("level", 3), ("rebuilt", 5)))
            check(same and sc["points"] and sc["seeds"] == seeds,
                  f"--json {h[1]}: the table's Areas, seeds, weights and level counts")
        rr = subprocess.run([cli, "report", "--json", doc_path, "--out", html], capture_output=True, text=True)
        page = open(html).read() if rr.returncode == 0 else ""
        n_pts = [len(sc["points"]) for sc in ds["local"]]
        check(rr.returncode == 0 and re.findall(r"<h3>On-device learning: ([^<]*)</h3>", page) ==
              [sc["scenario"] for sc in ds["local"]], "report: a section per scenario, in order")
        check(page.count('<path class="curve" data-series=') == 4 * len(n_pts) and
              page.count("<circle ") == 4 * sum(n_pts),
              "report: four series per scenario, a marker per point (%s points)" % n_pts)
    r3 = run(cli, *base, "--device-max-cost", "0")
    check(r3.returncode == 2 and "--device-max-cost" in r3.stderr, "--device-max-cost 0: exit 2")
    r4 = run(cli, *base, "--device-max-cost", "1")
    check(r4.returncode == 1 and "need two device candidates" in r4.stderr,
          "fewer than two device candidates: exit 1 with the reason")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
