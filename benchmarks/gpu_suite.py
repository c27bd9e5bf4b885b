#!/usr/bin/env python3
"""GPU kit: one run that checks every GPU code path of brainalign and measures every GPU benchmark beside its
peer, within about 8 minutes on one H100/H200, and writes ``gpu_results.json`` and ``gpu_results.md``.

    python3 benchmarks/gpu_suite.py --out "$OUT"                     # on a CUDA machine (``make gpu-check``)
    python3 benchmarks/gpu_suite.py --device cpu --tiny --out DIR    # CPU mode (CI): same code paths, tiny sizes

Parts, in this order, each in its own process with its own time budget (seconds; see :data:`BUDGET_S`):

- ``environment``: GPU, driver, library versions, measured matrix-multiply rates (bf16, fp32, TF32, fp64).
- ``correctness``: ``pytest -m gpu tests/gpu`` (docs/gpu.md): the feature cache in bf16 + channels_last
  against fp32 on the CPU, the CUDA ridge against himalaya and the CPU solver, CUDA RSA against rsatoolbox,
  ReAlnet-fMRI and NeuroFusionNet training in bf16, exact resume after a kill, ``torchrun`` through NCCL.
- ``ridge``: 9,000 x 4,096 x 15,724 voxels, 20 alphas, 5 folds: ours against himalaya ``RidgeCV``
  (``torch_cuda``) and the GEMM-bound ideal; ours against scikit-learn ``RidgeCV`` at 2,000 x 1,000 x 5,000.
- ``rsa``: correlation RDMs + Spearman at 1,000 conditions (against rsatoolbox) and 10,000 conditions (against
  rsatoolbox's time extrapolated from 1,000), and the EEG case (RDM movies, curves, cluster test).
- ``training``: ReAlnet-fMRI at batch 16 and the largest batch that fits, NeuroFusionNet at 15,724 voxels,
  a plain CORnet-S classification step; images/s, peak memory, projected 9,000-image epoch.
- ``features``: 20,000 images: the feature cache against the thingsvision-style hook loop and the
  pure-forward ceiling (AlexNet with PCA, CORnet-S pooled).

A part that outlives its budget is stopped and reported as ``timeout`` with what it had measured; a part that
sees it has no time left for a step leaves the step out and is reported as ``timeout`` too (``cut`` names the
steps). Every part reports ``status`` (ok, failed, timeout, skipped), ``seconds``, ``measurements`` and
``goals`` (target, measured value, ``met`` true/false, or null where not judged: the CPU mode judges none).

On a bare machine, modules the parts import that are missing are installed from the wheels in ``.whl/``
(``bash benchmarks/build_gpu_wheels.sh``) into ``--site`` and put on the parts' ``PYTHONPATH`` with ``src``;
without wheels, a part that cannot import what it needs is reported as ``skipped`` with the missing modules.

This file is also a pytest plugin (``-p gpu_suite``): the correctness part uses it to log each check's
outcome as it finishes, so that a stopped run still reports the checks that ran.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
PARTS = ("environment", "correctness", "ridge", "rsa", "training", "features")
#: part -> (budget on CUDA at full size, budget in the CPU mode), seconds. The CUDA budgets add up to the
#: 8-minute total with the set-up; the CPU ones are loose caps for a shared 2-core CI machine.
BUDGET_S = {"environment": (20, 90), "correctness": (110, 420), "ridge": (90, 150), "rsa": (50, 150),
            "training": (75, 150), "features": (105, 150)}
TOTAL_BUDGET_S = (475, 1200)
#: modules each part imports (top-level names, as ``importlib`` finds them)
REQUIRES = {
    "environment": ("torch", "numpy"),
    "correctness": ("pytest", "torch", "torchvision", "numpy", "scipy", "pandas", "pyarrow", "h5py", "zarr",
                    "numcodecs", "sklearn", "himalaya", "rsatoolbox", "yaml", "matplotlib", "PIL"),
    "ridge": ("torch", "numpy", "sklearn", "himalaya"),
    "rsa": ("torch", "numpy", "scipy", "rsatoolbox"),
    "training": ("torch", "torchvision", "numpy", "pandas", "yaml", "sklearn"),
    "features": ("torch", "torchvision", "numpy", "h5py", "zarr", "numcodecs", "sklearn", "PIL"),
}
GPU_TEST_DEVICE_ENV = "BRAINALIGN_GPU_TEST_DEVICE"  # tests/gpu/gpu_data.py: run the checks on this device
TEST_LOG_ENV = "GPU_SUITE_TEST_LOG"
RESULTS_JSON, RESULTS_MD, LOG_FILE = "gpu_results.json", "gpu_results.md", "gpu_suite.log"


# =============================================================================================== the parent
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                    help="auto: CUDA when the environment part finds it, else CPU (then --tiny is required)")
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU mode; goals are not judged)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_results"),
                    help="folder for gpu_results.json, gpu_results.md, gpu_suite.log (default $OUT)")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    ap.add_argument("--budget-scale", type=float, default=1.0, help="multiply every time budget (slower GPUs)")
    ap.add_argument("--site", type=Path, default=Path(tempfile.gettempdir()) / "site",
                    help="where missing modules are installed from .whl/ (default /tmp/site)")
    ap.add_argument("--wheels", type=Path, default=REPO / ".whl")
    ap.add_argument("--scratch", type=Path, help="folder in which the parts' data go, in a subfolder removed at the "
                    "end (default: the system's temporary folder); the feature benchmark writes 11 GB")
    # internal: run one part in this process
    ap.add_argument("--run-part", choices=PARTS, help=argparse.SUPPRESS)
    ap.add_argument("--part-file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_part:
        return run_part(args.run_part, args.device, args.tiny, args.part_file, args.deadline, args.scratch)
    return run_suite(args)


def run_suite(args) -> int:
    started = time.monotonic()
    mode = 1 if args.tiny else 0
    total_budget = TOTAL_BUDGET_S[mode] * args.budget_scale
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.scratch:
        args.scratch.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gpu_suite_", dir=args.scratch)).resolve()  # ours: removed at the end
    log = open(out / LOG_FILE, "w", buffering=1)
    say = _printer(log)
    results = {"suite": "brainalign GPU kit (benchmarks/gpu_suite.py)", "mode": "tiny" if args.tiny else "full",
               "requested_device": args.device, "started_utc": datetime.datetime.now(datetime.timezone.utc)
               .isoformat(timespec="seconds"), "host": platform.node(), "python": platform.python_version(),
               "total_budget_s": total_budget, "setup": {}, "parts": {}}
    try:
        env, results["setup"] = prepare_environment(args.site, args.wheels, scratch, say)
        device = args.device
        for name in PARTS:
            if name not in args.parts and name != "environment":
                continue
            left = total_budget - (time.monotonic() - started) - 3
            budget = min(BUDGET_S[name][mode] * args.budget_scale, left)
            if device == "none":
                record = {"status": "skipped", "reason": "no CUDA device (see the environment part)"}
            elif budget < 8:
                record = {"status": "skipped", "reason": f"the total budget of {total_budget:.0f} s is spent"}
            else:
                record = launch_part(name, "auto" if name == "environment" else device, args.tiny, budget, env,
                                     scratch, say)
            results["parts"][name] = record
            if name == "environment":
                device = _choose_device(args.device, args.tiny, record, say)
                results["device"] = device
            _write_results(results, out, started)
    finally:
        results["total_seconds"] = round(time.monotonic() - started, 1)
        _write_results(results, out, started)
        shutil.rmtree(scratch, ignore_errors=True)
        say(f"\nresults: {out / RESULTS_JSON}, {out / RESULTS_MD}")
        say(render_markdown(results))
        log.close()
    failed = [n for n, p in results["parts"].items() if p["status"] == "failed"]
    return 1 if failed or results.get("device") == "none" else 0


def _printer(log):
    lock = threading.Lock()

    def say(text):
        with lock:
            print(text, flush=True)
            log.write(text + "\n")
    return say


def _choose_device(requested, tiny, env_record, say) -> str:
    """The device for the remaining parts, from what the environment part found; ``none`` stops them."""
    found = env_record.get("measurements", {}).get("cuda_available")
    if requested == "cpu":
        device = "cpu"
    elif found:
        device = "cuda"
    elif requested == "cuda" or not tiny:
        say("error: no CUDA device found; on a machine without one run the CPU mode: --device cpu --tiny")
        env_record.setdefault("notes", []).append("no CUDA device found")
        if env_record["status"] == "ok":
            env_record["status"] = "failed"
        return "none"
    else:
        device = "cpu"
    say(f"device for the parts: {device}")
    return device


def missing_modules(names, env) -> list:
    """Top-level modules that the parts' interpreter (with ``env``) cannot find."""
    code = ("import importlib.util, json, sys; print(json.dumps([m for m in sys.argv[1:] "
            "if importlib.util.find_spec(m) is None]))")
    out = subprocess.run([sys.executable, "-c", code, *names], env=env, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout) if out.returncode == 0 else list(names)


def prepare_environment(site: Path, wheels: Path, scratch: Path, say):
    """The parts' environment: ``src`` and ``site`` on ``PYTHONPATH``, the missing modules installed into
    ``site`` from ``wheels`` when there are any. Returns ``(env, setup record)``."""
    t0 = time.monotonic()
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(site), str(BENCHMARKS)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(BRAINALIGN_PROGRESS="0", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("TORCH_HOME", str(scratch / "torch_home"))  # never a user's cache: weights are random
    wanted = sorted({m for mods in REQUIRES.values() for m in mods})
    missing = missing_modules(wanted, env)
    setup = {"python": sys.executable, "pythonpath": paths, "missing_before": missing, "installed": []}
    wheel_files = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if missing and wheel_files:
        say(f"installing {len(wheel_files)} wheels from {wheels} into {site} (missing: {', '.join(missing)})")
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--disable-pip-version-check", "--upgrade", "--target", str(site),
               *map(str, wheel_files)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        setup["pip_returncode"] = proc.returncode
        if proc.returncode:
            say(f"pip install failed: {proc.stderr[-2000:]}")
            setup["pip_error"] = proc.stderr[-2000:]
        setup["installed"] = [w.name for w in wheel_files]
        missing = missing_modules(wanted, env)
    elif missing:
        say(f"missing modules and no wheels in {wheels}: {', '.join(missing)} (parts that need them are skipped)")
    setup["missing_after"] = missing
    setup["seconds"] = round(time.monotonic() - t0, 1)
    return env, setup


def launch_part(name, device, tiny, budget, env, scratch: Path, say) -> dict:
    """Run one part in a child process (its own process group) and collect its record."""
    part_file = scratch / f"{name}.json"
    part_scratch = scratch / name
    part_scratch.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + budget - 2  # the child's own cut-off for starting steps; the kill comes after it
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run-part", name, "--device", device,
           "--part-file", str(part_file), "--deadline", f"{deadline:.3f}", "--scratch", str(part_scratch)]
    if tiny:
        cmd.append("--tiny")
    say(f"\n=== {name} (budget {budget:.0f} s, device {device}{', tiny' if tiny else ''})")
    t0 = time.monotonic()
    cpu0 = _children_cpu_seconds()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    tail = []

    def pump():
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            del tail[:-60]
            say(f"  [{name}] {line}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        timed_out = True
        say(f"  [{name}] budget of {budget:.0f} s reached: stopping the part")
        _kill_group(proc)
    reader.join(timeout=10)
    seconds = round(time.monotonic() - t0, 1)
    record = {"status": None, "seconds": seconds, "budget_s": round(budget, 1), "measurements": {}, "goals": {},
              "summary": [], "notes": [], "cut": []}
    if part_file.exists():
        try:
            record.update(json.loads(part_file.read_text()))
        except ValueError:
            record["notes"].append("the part's result file was unreadable")
    record["seconds"], record["budget_s"] = seconds, round(budget, 1)
    record["cpu_seconds"] = round(_children_cpu_seconds() - cpu0, 1)  # the part's processes, all threads
    if timed_out:
        record["status"] = "timeout"
        record["notes"].append(f"stopped after its budget of {budget:.0f} s; measurements are those made before")
    elif proc.returncode != 0 and record.get("status") not in ("failed", "skipped"):
        record["status"] = "failed"
        record.setdefault("error", "\n".join(tail[-25:]))
    elif record.get("status") in (None, "running"):
        record["status"] = "failed" if proc.returncode else "ok"
    if record["status"] == "ok" and record.get("cut"):
        record["status"] = "timeout"
    say(f"=== {name}: {record['status']} in {seconds:.1f} s")
    shutil.rmtree(part_scratch, ignore_errors=True)
    return record


def _children_cpu_seconds() -> float:
    """CPU time (user + system) of this process's finished children and the children they waited for."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _kill_group(proc):
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _write_results(results, out: Path, started):
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    for path, text in ((out / RESULTS_JSON, json.dumps(results, indent=1, default=str)),
                       (out / RESULTS_MD, render_markdown(results))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value).replace("|", "/").replace("\n", " ")


def render_markdown(results) -> str:
    """The results as markdown: one row per part, the goals, the correctness checks."""
    env = results.get("parts", {}).get("environment", {}).get("measurements", {})
    total = results.get("total_seconds", results.get("elapsed_s"))
    setup = results.get("setup", {}).get("seconds", "?")
    lines = [f"# GPU kit results ({results.get('mode')} mode)", "",
             f"- device: {env.get('device_name', '?')} ({results.get('device', '?')}); torch {env.get('torch', '?')}, "
             f"CUDA {env.get('cuda_version', '–')}, driver {env.get('driver', '–')}",
             f"- started {results.get('started_utc')}, total {total} s of a {results.get('total_budget_s', 0):.0f} s "
             f"budget (set-up {setup} s)",
             "", "| part | status | seconds (budget) | results |", "|---|---|---|---|"]
    for name, part in results.get("parts", {}).items():
        text = "; ".join(part.get("summary") or []) or part.get("reason") or ""
        if part.get("cut"):
            text += f" (cut for time: {', '.join(part['cut'])})"
        if part.get("status") == "failed" and part.get("error"):
            text += f" — error: {part['error'].strip().splitlines()[-1][:200]}"
        lines.append(f"| {name} | {part.get('status')} | {part.get('seconds', '–')} ({part.get('budget_s', '–')}) "
                     f"| {_cell(text)} |")
    goals = [(name, g) for name, part in results.get("parts", {}).items() for g in part.get("goals", {}).values()]
    if goals:
        lines += ["", "## Goals", "", "| part | goal | target | measured | met |", "|---|---|---|---|---|"]
        for name, g in goals:
            lines.append(f"| {name} | {_cell(g.get('goal'))} | {_cell(g.get('target'))} | {_cell(g.get('value'))} "
                         f"| {_cell(g.get('met'))} |")
    tests = results.get("parts", {}).get("correctness", {}).get("measurements", {}).get("tests", [])
    if tests:
        lines += ["", "## Correctness checks (pytest -m gpu tests/gpu)", "",
                  "| check | outcome | seconds (+ fixture set-up) |", "|---|---|---|"]
        for t in tests:
            setup = f" (+ {t['setup_seconds']})" if t.get("setup_seconds") else ""
            lines.append(f"| `{t['test']}` | {t['outcome']} | {t.get('seconds', '–')}{setup} |")
    return "\n".join(lines) + "\n"


# =============================================================================================== the child
class PartRecorder:
    """What one part measured so far, rewritten to ``path`` after every change (a stopped part keeps it)."""

    def __init__(self, path: Path, deadline: float | None, tiny: bool):
        self.path, self.deadline, self.tiny = path, deadline, tiny
        self.data = {"status": "running", "measurements": {}, "goals": {}, "summary": [], "notes": [], "cut": []}
        self.flush()

    def flush(self):
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=_jsonable))
        os.replace(tmp, self.path)

    def record(self, key, value):
        self.data["measurements"][key] = value
        self.flush()

    def summary(self, text):
        self.data["summary"].append(text)
        self.flush()

    def note(self, text):
        self.data["notes"].append(text)
        self.flush()

    def goal(self, key, goal, target, value, met):
        """A goal; ``met`` is left unjudged (None) in the CPU mode, where sizes and hardware do not apply."""
        self.data["goals"][key] = {"goal": goal, "target": target,
                                   "value": None if value is None else round(float(value), 3),
                                   "met": None if self.tiny or value is None else bool(met)}
        self.flush()

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def allows(self, step: str, needs_s: float) -> bool:
        """Whether ``needs_s`` seconds are left for ``step``; if not, the step is noted as cut."""
        if self.left() >= needs_s:
            return True
        self.data["cut"].append(step)
        self.note(f"{step} left out: {self.left():.0f} s left, it needs about {needs_s:.0f} s")
        return False

    def finish(self, status, **extra):
        self.data.update(status=status, **extra)
        self.flush()


def _jsonable(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    return str(obj)


def run_part(name, device, tiny, part_file: Path, deadline, scratch: Path) -> int:
    rec = PartRecorder(part_file, deadline, tiny)
    missing = [m for m in REQUIRES[name] if importlib.util.find_spec(m) is None]
    if missing:
        rec.finish("skipped", reason=f"missing modules: {', '.join(missing)} (no wheels for them in .whl/; "
                                     f"bash benchmarks/build_gpu_wheels.sh)")
        print(rec.data["reason"])
        return 0
    try:
        status = PART_FUNCTIONS[name](rec, device, tiny, scratch) or "ok"
    except Exception:
        error = traceback.format_exc()
        print(error, file=sys.stderr, flush=True)
        rec.finish("failed", error=error[-4000:])
        return 1
    rec.finish(status)
    return 0


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


# ----------------------------------------------------------------------------------------------- environment
def part_environment(rec, device, tiny, scratch):
    import importlib.metadata

    import torch

    from bench_ridge import gemm_peak_gflops

    cuda = torch.cuda.is_available() and device != "cpu"
    rec.record("torch", torch.__version__)
    rec.record("cuda_available", torch.cuda.is_available())
    rec.record("cpu_count", os.cpu_count())
    rec.record("platform", platform.platform())
    versions = {}
    for dist in ("numpy", "scipy", "pandas", "scikit-learn", "torchvision", "zarr", "numcodecs", "h5py", "himalaya",
                 "rsatoolbox", "pytest"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    rec.record("versions", versions)
    if not cuda:
        rec.record("device_name", platform.processor() or "cpu")
        rec.summary(f"CPU ({os.cpu_count()} cores), torch {torch.__version__}; no CUDA")
    else:
        props = torch.cuda.get_device_properties(0)
        rec.record("device_name", torch.cuda.get_device_name(0))
        rec.record("device_count", torch.cuda.device_count())
        rec.record("capability", f"{props.major}.{props.minor}")
        rec.record("memory_gib", round(props.total_memory / 2**30, 1))
        rec.record("multiprocessors", props.multi_processor_count)
        rec.record("cuda_version", torch.version.cuda)
        rec.record("cudnn", torch.backends.cudnn.version())
        try:
            nccl = torch.cuda.nccl.version()
            rec.record("nccl", ".".join(map(str, nccl)) if isinstance(nccl, (tuple, list)) else str(nccl))
        except Exception as exc:  # NCCL absent from this build: the correctness part's torchrun check will say
            rec.record("nccl", f"unavailable ({type(exc).__name__})")
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
            driver = smi.stdout.strip().split(",")
            rec.record("driver", driver[0].strip() if smi.returncode == 0 else None)
            rec.record("nvidia_smi", smi.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            rec.record("driver", None)
    dev = "cuda" if cuda else "cpu"
    size = 8192 if cuda else 512
    rates = {}
    for label, dtype, tf32 in (("bf16", torch.bfloat16, False), ("fp32", torch.float32, False),
                               ("tf32", torch.float32, True), ("fp64", torch.float64, False)):
        if label == "tf32" and not cuda:
            continue
        if not rec.allows(f"{label} matrix-multiply rate", 3):
            break
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            rates[label] = round(gemm_peak_gflops(dev, dtype, size=size if label != "fp64" else size // 2,
                                                  reps=10 if cuda else 3) / 1000, 4)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        rec.record("gemm_tflops", rates)
    rec.summary(", ".join(f"{k} GEMM {v:.3g} TFLOP/s" for k, v in rates.items()))


# ----------------------------------------------------------------------------------------------- correctness
def part_correctness(rec, device, tiny, scratch):
    """``pytest -m gpu tests/gpu`` on the device; every check's outcome is logged as it finishes."""
    test_log = scratch / "tests.jsonl"
    env = dict(os.environ, **{TEST_LOG_ENV: str(test_log)})
    if device == "cpu":
        env[GPU_TEST_DEVICE_ENV] = "cpu"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", str(REPO / "tests" / "gpu"), "-p", "gpu_suite",
           "-p", "no:cacheprovider", "-q", "-rfEX", "--basetemp", str(scratch / "pytest"), "--durations=5"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        proc.wait(timeout=max(5.0, rec.left() - 3))
    except subprocess.TimeoutExpired:  # keep the outcomes of the checks that finished
        _kill_group(proc)
        rec.data["cut"].append("the checks still running at the end of the budget")
    tests = [json.loads(line) for line in test_log.read_text().splitlines()] if test_log.exists() else []
    counts = {}
    for t in tests:
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    rec.record("tests", tests)
    rec.record("counts", counts)
    rec.record("pytest_returncode", proc.returncode)
    rec.record("pytest_seconds", round(time.monotonic() - t0, 1))
    rec.summary(", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no checks ran")
    failed = [t["test"] for t in tests if t["outcome"] == "failed"]
    if failed:
        rec.summary("failed: " + ", ".join(t.split("::")[-1] for t in failed))
    skipped = [t for t in tests if t["outcome"] == "skipped"]
    if failed:
        return "failed"
    if rec.data["cut"]:
        return "timeout"
    if proc.returncode != 0 or not tests:
        return "failed"
    if skipped and len(skipped) == len(tests):
        rec.note("every check was skipped (no device to check)")
        return "failed"
    return "ok"


_SETUP_SECONDS = {}


def pytest_runtest_logreport(report):
    """pytest hook (this module loaded with ``-p gpu_suite``): one JSON line per finished check."""
    path = os.environ.get(TEST_LOG_ENV)
    if not path:
        return
    xfail = hasattr(report, "wasxfail")
    if report.when == "setup" and report.passed:  # fixtures' time (e.g. the torchrun run), told with the check
        _SETUP_SECONDS[report.nodeid] = report.duration
    if report.when == "call" or (report.when == "setup" and not report.passed) or (
            report.when == "teardown" and report.failed):
        outcome = report.outcome
        if xfail:
            outcome = "xfailed" if report.skipped else "xpassed" if report.passed else "failed"
        line = {"test": report.nodeid, "outcome": outcome, "seconds": round(report.duration, 2)}
        if _SETUP_SECONDS.get(report.nodeid, 0) >= 0.5:
            line["setup_seconds"] = round(_SETUP_SECONDS[report.nodeid], 2)
        if report.failed:
            line["message"] = str(report.longrepr)[-1500:]
        if xfail:
            line["reason"] = str(report.wasxfail)[:300]
        with open(path, "a") as fh:
            fh.write(json.dumps(line) + "\n")


# ----------------------------------------------------------------------------------------------- ridge
RIDGE_SIZES = {"full": (9000, 4096, 15724), "sklearn": (2000, 1000, 5000)}
RIDGE_SIZES_TINY = {"full": (300, 100, 300), "sklearn": (200, 80, 100)}


def part_ridge(rec, device, tiny, scratch):
    import numpy as np
    import torch
    from sklearn.model_selection import KFold

    from bench_ridge import compare_ridge, gemm_peak_gflops, make_data
    from brainalign.encoding import gemm_flops_ideal

    sizes = RIDGE_SIZES_TINY if tiny else RIDGE_SIZES
    alphas, n_folds, n_test = np.logspace(-1, 7, 20), 5, 500 if not tiny else 100
    (n, p, t), (sn, sp, st) = sizes["full"], sizes["sklearn"]
    rec.record("size", {"samples": n, "features": p, "voxels": t, "alphas": len(alphas), "folds": n_folds,
                        "dtype": "float32"})
    peak = gemm_peak_gflops(device, torch.float32, size=8192 if device == "cuda" else 512, reps=10)
    flops = gemm_flops_ideal(n, p, t, len(alphas), n_folds)
    ideal = flops / (peak * 1e9)
    rec.record("gemm_fp32_tflops", round(peak / 1000, 2))
    rec.record("our_flops", flops)
    rec.record("gemm_bound_ideal_s", round(ideal, 3))
    t0 = time.monotonic()
    Xtr, Ytr, Xte, Yte = make_data(n, p, t, n_test)
    rec.record("data_seconds", round(time.monotonic() - t0, 1))
    folds = list(KFold(n_folds).split(Xtr))
    methods = {}

    def keep(method, entry):
        methods[method] = entry
        rec.record("full_size", dict(methods))
        print(method, json.dumps(entry), flush=True)
        if method == "ours":
            rec.summary(f"ours {entry['seconds']:.3g} s at {n}x{p}x{t} (GEMM-bound ideal {ideal:.3g} s)")
            rec.record("ours_over_gemm_ideal", round(entry["seconds"] / ideal, 2))

    # the same data, folds and alphas for both; himalaya's alphas and scores are compared with ours
    compare_ridge(Xtr, Ytr, Xte, Yte, alphas, folds, ["ours", "himalaya_ridge"], device, "float32", on_result=keep)
    ours, hr = methods["ours"], methods["himalaya_ridge"]
    speedup = hr["seconds"] / ours["seconds"]
    same = hr["alpha_equal_to_ours"] >= 0.99 and abs(hr["median_test_r"] - ours["median_test_r"]) <= 0.005
    rec.summary(f"himalaya RidgeCV {hr['seconds']:.3g} s ({speedup:.3g}x), same alpha for "
                f"{hr['alpha_equal_to_ours']:.1%} of voxels, median test r {ours['median_test_r']} vs "
                f"{hr['median_test_r']}")
    rec.goal("ridge_vs_himalaya", "ours >= 5x himalaya RidgeCV (same device, alphas, folds) with the same alphas "
             "(>= 99 %) and median test r (within 0.005)", 5, speedup, speedup >= 5 and same)
    if rec.allows("scikit-learn at the reduced size", 30 if not tiny else 5):
        Xs, Ys, Xst, Yst = make_data(sn, sp, st, n_test, seed=1)
        sfolds = list(KFold(n_folds).split(Xs))
        s = compare_ridge(Xs, Ys, Xst, Yst, alphas, sfolds, ["ours", "sklearn"], device, "float32")["methods"]
        rec.record("sklearn_size", {"samples": sn, "features": sp, "voxels": st, **s})
        sk = s["sklearn"]["seconds"] / s["ours"]["seconds"]
        rec.summary(f"at {sn}x{sp}x{st}: ours {s['ours']['seconds']:.3g} s, scikit-learn RidgeCV (LOO, CPU) "
                    f"{s['sklearn']['seconds']:.3g} s ({sk:.3g}x)")
        rec.goal("ridge_vs_sklearn", f"ours >= 10x scikit-learn RidgeCV(alpha_per_target) at {sn}x{sp}x{st}", 10,
                 sk, sk >= 10)
    if device == "cuda" and rec.allows("himalaya KernelRidgeCV at full size", 60):
        k = compare_ridge(Xtr, Ytr, Xte, Yte, alphas, folds, ["ours", "himalaya_kernel"], device, "float32")
        keep("himalaya_kernel", k["methods"]["himalaya_kernel"])
        rec.summary(f"himalaya KernelRidgeCV {k['methods']['himalaya_kernel']['seconds']:.3g} s")


# ----------------------------------------------------------------------------------------------- rsa
def part_rsa(rec, device, tiny, scratch):
    import torch

    import bench_rsa

    dev = torch.device(device)
    n_vox, n_feat = (500, 200) if tiny else (15000, 4096)
    small, large = (100, 300) if tiny else (1000, 10000)
    eeg = dict(n_cond=30, n_chan=8, n_times=20, n_sub=4, n_layers=2, n_perm=100) if tiny else dict(
        n_cond=200, n_chan=17, n_times=100, n_sub=10, n_layers=4, n_perm=1000)
    bench_rsa.warm_up(dev, True)
    r = bench_rsa.bench_fmri(small, n_vox, n_feat, dev, True, 1)
    rec.record(f"fmri_{small}", r)
    rec.summary(f"{small} conditions x {n_vox} voxels: ours {r['ours_total_s']:.3g} s, rsatoolbox "
                f"{r['rsatoolbox_total_s']:.3g} s ({r['speedup_total']:.3g}x)")
    rec.goal(f"rsa_{small}", f"ours >= 10x rsatoolbox, RDMs + Spearman, {small} conditions", 10, r["speedup_total"],
             r["speedup_total"] >= 10)
    if rec.allows("EEG case", 15 if not tiny else 3):
        e = bench_rsa.bench_eeg(eeg["n_cond"], eeg["n_chan"], eeg["n_times"], eeg["n_sub"], eeg["n_layers"],
                                eeg["n_perm"], dev, True)
        rec.record("eeg", e)
        rec.summary(f"EEG {eeg['n_cond']} cond x {eeg['n_times']} times x {eeg['n_sub']} subjects, "
                    f"{eeg['n_perm']} permutations: ours {e['ours_total_s']:.3g} s, rsatoolbox + SciPy "
                    f"{e['rsatoolbox_total_s']:.3g} s ({e['speedup_total']:.3g}x)")
        rec.goal("rsa_eeg", "ours >= 10x rsatoolbox (EEG RDM movies, curves, cluster test)", 10, e["speedup_total"],
                 e["speedup_total"] >= 10)
    if rec.allows(f"{large} conditions", 20 if not tiny else 3):
        big = bench_rsa.bench_fmri(large, n_vox, n_feat, dev, False, 1)
        extrapolated = r["rsatoolbox_total_s"] * (large / small) ** 2
        big["rsatoolbox_extrapolated_total_s"] = extrapolated
        big["speedup_vs_extrapolated"] = extrapolated / big["ours_total_s"]
        rec.record(f"fmri_{large}", big)
        rec.summary(f"{large} conditions: ours {big['ours_total_s']:.3g} s (RDMs {big['ours_rdms_s']:.3g}, Spearman "
                    f"{big['ours_compare_s']:.3g}); rsatoolbox >= {extrapolated:.3g} s extrapolated")
        rec.goal(f"rsa_{large}", f"ours >= 10x rsatoolbox at {large} conditions (rsatoolbox extrapolated from "
                 f"{small} as n^2: a lower bound)", 10, big["speedup_vs_extrapolated"],
                 big["speedup_vs_extrapolated"] >= 10)
    _sync(device)


# ----------------------------------------------------------------------------------------------- training
def part_training(rec, device, tiny, scratch):
    import torch

    import bench_training as bt

    dev = torch.device(device)
    args = bt.bench_args(tiny=tiny, steps=1 if tiny else 5, voxels=500 if tiny else None)
    batch = 4 if tiny else 16
    epoch_images = 9000
    rec.record("setup", {"image_size": args.size, "voxels": args.voxels, "steps": args.steps, "batch": batch,
                         "backbone": "stand-in" if tiny else "CORnet-S", "precision": "bf16 autocast" if
                         device == "cuda" else "fp32"})
    rows = {}

    def measure(name, fn, bs):
        torch.manual_seed(0)
        try:
            dt, peak = fn(args, dev, bs)
        except Exception as exc:  # one model's failure (e.g. out of memory) must not hide the others
            rows[name] = {"batch": bs, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            rec.record("steps", rows)
            return None
        ips = bs / dt
        rows[name] = {"batch": bs, "s_per_step": round(dt, 4), "images_per_s": round(ips, 1),
                      "peak_gpu_gib": None if peak is None else round(peak, 2),
                      "epoch_minutes": round(epoch_images / ips / 60, 2)}
        rec.record("steps", rows)
        print(name, json.dumps(rows[name]), flush=True)
        return ips

    plain = measure("cornet_s_classification", bt.bench_cornet, batch)
    realnet = measure("realnet_fmri", bt.bench_realnet, batch)
    fusion = measure("neurofusionnet", bt.bench_neurofusion, batch)
    if fusion is not None:
        rows["neurofusionnet"]["voxels"] = args.voxels
    ratio = _ratio(realnet, plain)
    rec.goal("realnet_vs_cornet", f"ReAlnet-fMRI step >= 80 % of the plain CORnet-S step's images/s (batch {batch})",
             0.8, ratio, ratio is not None and ratio >= 0.8)
    rec.summary(", ".join(f"{k} {v['images_per_s']:.4g} img/s" + (f" ({v['peak_gpu_gib']} GiB)" if v.get(
        "peak_gpu_gib") is not None else "") for k, v in rows.items() if "images_per_s" in v) + f" at batch {batch}")
    if rec.allows("largest ReAlnet-fMRI batch", 25 if not tiny else 3):
        limit = 2048 if device == "cuda" else batch * 2
        deadline = time.monotonic() + max(0.0, min(rec.left() - 20, 70))
        best = bt.largest_batch(bt.bench_realnet, args, dev, start=batch * 2, limit=limit, deadline=deadline)
        gc.collect()  # the failed try's tensors, before CORnet-S takes the same batch
        if device == "cuda":
            torch.cuda.empty_cache()
        if best:
            bs, dt, peak = best
            rows["realnet_fmri_largest_batch"] = {"batch": bs, "s_per_step": round(dt, 4),
                                                  "images_per_s": round(bs / dt, 1), "peak_gpu_gib": None if peak
                                                  is None else round(peak, 2),
                                                  "epoch_minutes": round(epoch_images / (bs / dt) / 60, 2),
                                                  "limit": limit}
            rec.record("steps", rows)
            rec.summary(f"largest ReAlnet-fMRI batch tried that fits: {bs} ({bs / dt:.4g} img/s"
                        + (f", {peak:.3g} GiB)" if peak is not None else ")"))
            if rec.allows("CORnet-S at the largest batch", 15 if not tiny else 2):
                big_plain = measure("cornet_s_classification_largest_batch", bt.bench_cornet, bs)
                big_ratio = _ratio(bs / dt, big_plain)
                rec.goal("realnet_vs_cornet_large_batch", f"ReAlnet-fMRI step >= 80 % of CORnet-S's images/s at "
                         f"batch {bs}", 0.8, big_ratio, big_ratio is not None and big_ratio >= 0.8)
    _sync(device)
    errors = [f"{name}: {row['error']}" for name, row in rows.items() if "error" in row]
    if errors:
        rec.data["error"] = "\n".join(errors)
        return "failed"


# ----------------------------------------------------------------------------------------------- features
def part_features(rec, device, tiny, scratch):
    import torch

    import bench_features as bf

    dev = torch.device(device)
    cuda = device == "cuda"
    n = 12 if tiny else 20000
    n_base = 6 if tiny else 2000
    batch = 8 if tiny else 256
    workers = 2 if tiny else max(2, min(12, (os.cpu_count() or 4) - 2))
    pca = 8 if tiny else 128
    rec.record("setup", {"images": n, "hook_loop_images": n_base, "batch": batch, "workers": workers,
                         "pca_components": pca, "pca_fit_images": None if tiny else 10000})
    t0 = time.monotonic()
    brick = scratch / "nsd_stimuli.hdf5"
    bf.write_brick(brick, n, distinct=None if tiny else 512)
    rec.record("brick_seconds", round(time.monotonic() - t0, 1))
    models = ["alexnet"] if tiny else ["alexnet", "cornet_s"]
    if tiny:
        rec.note("CPU mode: AlexNet only (a CORnet-S forward at 224 px takes seconds per image on a CPU)")
    needs = {"brainalign": 60, "hookloop": 25, "ceiling": 10} if not tiny else {}
    rows = {}
    for arch in models:
        if not rec.allows(f"{arch}", 30 if not tiny else 0):
            continue
        n_model = n
        if arch == "cornet_s" and not tiny and rec.left() < 110:
            n_model = 5000
            rec.note("CORnet-S on 5,000 images (time left)")

        def allowed(step, arch=arch):
            return rec.allows(f"{arch} {step}", needs.get(step, 0))

        def on_step(row, arch=arch):
            rows[arch] = dict(row)
            rec.record("models", rows)

        row = bf.measure_model(arch, brick, n_model, n_baseline=n_base, batch_size=batch, workers=workers,
                               device=dev, tmp=scratch, pca_components=pca, train_fraction=0.8,
                               pca_fit_images=None if tiny else 10000, allowed=allowed, on_step=on_step)
        rows[arch] = row
        rec.record("models", rows)
        ours = row.get("brainalign_img_s")
        loop = row.get("hookloop_plus_sklearn_pca_img_s") or row.get("hookloop_img_s")
        ceiling = row.get("ceiling_img_s")
        loop_label = "hook loop + scikit-learn PCA" if row.get("hookloop_plus_sklearn_pca_img_s") else "hook loop"
        rec.summary(f"{arch} ({row['reduce']}, {n_model} images): cache {_fmt(ours)} img/s, {loop_label} "
                    f"{_fmt(loop)}, forward ceiling {_fmt(ceiling)}")
        vs_loop, vs_ceiling = _ratio(ours, loop), _ratio(ours, ceiling)
        rec.goal(f"{arch}_vs_hook_loop", f"{arch} cache >= 3x the {loop_label}", 3, vs_loop,
                 vs_loop is not None and vs_loop >= 3)
        rec.goal(f"{arch}_vs_ceiling", f"{arch} cache >= 50 % of the pure-forward ceiling", 0.5, vs_ceiling,
                 vs_ceiling is not None and vs_ceiling >= 0.5)
        if cuda:
            torch.cuda.empty_cache()
    brick.unlink(missing_ok=True)


def _fmt(value):
    return "–" if value is None else f"{value:.4g}"


PART_FUNCTIONS = {"environment": part_environment, "correctness": part_correctness, "ridge": part_ridge,
                  "rsa": part_rsa, "training": part_training, "features": part_features}


if __name__ == "__main__":
    sys.exit(main())
