"""Whole-pipeline benchmark: wall time and peak memory of a Snakemake run, per job and in total.

    .venv/bin/python bench/make_scale_data.py                     # once: data/raw/scale/
    .venv/bin/python bench/bench_pipeline.py --configfile config/scale.yaml --cores 2
    .venv/bin/python bench/bench_pipeline.py --configfile config/scale.yaml --strata-only --cores 1 2

The workflow runs in a scratch working directory (bench/out/pipeline/<dataset>/, git-ignored;
``--snakefile``/``--directory``, the data linked in), so the checkout's results/ and
reports/<dataset>/ are not touched.  While it runs, the resident memory (VmRSS) of every
process of the run is sampled every 0.2 s; the table gives the wall time of each job (from
Snakemake's log), the peak memory of each job's process and the peak of the whole process tree
(the sum over the processes alive at the same moment, which is what a machine must have).
``/usr/bin/time -v`` reports only the largest single process.

``--strata-only`` reruns just the per-stratum model jobs (rule fit_stratum) of an existing run,
once per ``--cores`` value: parallel jobs on 1 vs 2 cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
OUT = ROOT / "bench" / "out"


# --------------------------------------------------------------------------------------------
# process-tree memory sampling (Linux /proc)
# --------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    task = Path(f"/proc/{pid}/task")
    try:
        for t in task.iterdir():
            kids += [int(x) for x in (t / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return kids


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _label(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return "?"
    text = " ".join(c.decode(errors="replace") for c in cmd if c)
    m = re.search(r"\.snakemake/scripts/tmp\w+\.(\w+)\.py", text)
    if m:
        return m.group(1)
    if "Rscript" in text or "/R/" in text or text.startswith("/usr/lib/R"):
        return "Rscript (lme4 engine)"
    if "snakemake" in text:
        return "snakemake (scheduler)"
    if "chrom" in text:
        return "chromium (PDF)"
    return (Path(cmd[0].decode(errors="replace")).name if cmd and cmd[0] else "?")[:40]


class Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.stop = threading.Event()
        self.peak_total = 0
        self.peak_total_at: list[tuple[str, int]] = []
        self.peak_by_label: dict[str, int] = defaultdict(int)

    def run(self):
        while not self.stop.is_set():
            parts = [(p, _rss_kb(p)) for p in _tree(self.pid)]
            total = sum(r for _, r in parts)
            labelled = [(_label(p), r) for p, r in parts if r]
            for lab, r in labelled:
                self.peak_by_label[lab] = max(self.peak_by_label[lab], r)
            if total > self.peak_total:
                self.peak_total = total
                self.peak_total_at = sorted(labelled, key=lambda x: -x[1])
            time.sleep(self.interval)


# --------------------------------------------------------------------------------------------
# Snakemake log -> job wall times
# --------------------------------------------------------------------------------------------


def job_times(log: str) -> list[tuple[str, str, float]]:
    """(rule, wildcards, seconds) of every finished job (one-second resolution of the log)."""
    start, rule, wild, out = {}, {}, {}, []
    now, pending, last = None, None, None
    for ln in log.splitlines():
        m = re.match(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$", ln)
        if m:
            now = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"^(?:local)?rule (\w+):", ln)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^\s+jobid: (\d+)", ln)
        if m and pending:
            last = m.group(1)
            start[last], rule[last], wild[last] = now, pending, ""
            pending = None
            continue
        m = re.match(r"^\s+wildcards: (.*)", ln)
        if m and last:
            wild[last] = m.group(1)
            continue
        m = re.match(r"^Finished jobid: (\d+)", ln)
        if m and m.group(1) in start:
            j = m.group(1)
            out.append((rule[j], wild[j], (now - start[j]).total_seconds()))
    return out


# --------------------------------------------------------------------------------------------


def prepare_workdir(config_path: Path) -> tuple[Path, dict]:
    config = yaml.safe_load(config_path.read_text())
    name = config["dataset"]["name"]
    work = OUT / "pipeline" / name
    work.mkdir(parents=True, exist_ok=True)
    for key in ("sessions", "patients"):
        table = config["dataset"].get(key)
        if not table:
            continue
        src = (ROOT / table["path"]).resolve()
        if not src.exists():
            raise SystemExit(f"{src} not found; for the scale data run bench/make_scale_data.py first")
        dst = work / table["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(src)
    shutil.copy(config_path, work / "config.yaml")
    return work, config


def run(work: Path, cores: int, extra: list[str]) -> dict:
    cmd = [
        str(SNAKEMAKE),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "config.yaml"),
        "--cores",
        str(cores),
        *extra,
    ]
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work)
    sampler = Sampler(proc.pid)
    sampler.start()
    log, _ = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    (work / f"bench_run_{cores}cores.log").write_text(log)
    if proc.returncode != 0:
        print(log[-4000:])
        raise SystemExit(f"snakemake failed (exit {proc.returncode})")
    return {
        "wall": wall,
        "peak_total_kb": sampler.peak_total,
        "peak_at": sampler.peak_total_at,
        "peak_by_label": dict(sampler.peak_by_label),
        "jobs": job_times(log),
        "load_before": load,
    }


def report(res: dict, title: str) -> None:
    print(f"\n## {title}")
    print(
        f"wall {res['wall']:.0f} s; peak memory of the whole run {res['peak_total_kb'] / 1e6:.2f} GB "
        f"(load average before start {res['load_before'][0]:.1f})"
    )
    print("at the peak: " + ", ".join(f"{lab} {kb / 1e6:.2f} GB" for lab, kb in res["peak_at"][:4]))
    by_rule: dict[str, list[float]] = defaultdict(list)
    for rule, wild, sec in res["jobs"]:
        by_rule[rule].append(sec)
    print("\n| rule | jobs | total s | longest s |\n|---|---:|---:|---:|")
    for rule, secs in sorted(by_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"| {rule} | {len(secs)} | {sum(secs):.0f} | {max(secs):.0f} |")
    print("\n| process (step script) | peak GB |\n|---|---:|")
    for lab, kb in sorted(res["peak_by_label"].items(), key=lambda kv: -kv[1]):
        if kb > 50_000:
            print(f"| {lab} | {kb / 1e6:.2f} |")
    longest = sorted(res["jobs"], key=lambda x: -x[2])[:8]
    print("\nlongest jobs: " + "; ".join(f"{r} {w} {s:.0f} s" for r, w, s in longest))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", default="config/scale.yaml")
    ap.add_argument("--cores", type=int, nargs="+", default=[2])
    ap.add_argument("--strata-only", action="store_true", help="rerun only rule fit_stratum, once per --cores value")
    args = ap.parse_args(argv)
    work, config = prepare_workdir(ROOT / args.configfile)
    if args.strata_only:
        targets = sorted(
            str(p.relative_to(work))
            for p in work.glob(f"results/{config['dataset']['name']}/models/*/strata/*/fit.json")
        )
        if not targets:
            raise SystemExit("no strata results yet: run the whole pipeline first")
        for cores in args.cores:
            res = run(work, cores, ["--forcerun", "fit_stratum", "--allowed-rules", "fit_stratum", "--", *targets])
            report(
                res,
                f"per-stratum jobs only ({len(targets)} jobs), {cores} core(s), engine {config['run'].get('engine', 'statsmodels')}",
            )
        return
    for cores in args.cores:
        res = run(work, cores, ["--forceall"])
        report(
            res,
            f"whole pipeline, {config['dataset']['name']}, {cores} core(s), engine {config['run'].get('engine', 'statsmodels')}",
        )


if __name__ == "__main__":
    main()
