#!/usr/bin/env python3
"""run_bench.py: qstar vs the PyTorch reference (`make bench` -> scripts/bench.sh).

Every measurement is its own process (so its peak RSS is its own); qstar and
the reference alternate config by config (and round by round where a config
is repeated), both in float32 with 2 threads.  Prints readable tables with
ratios as it goes and writes everything to build/bench.json.

This script needs no torch itself: the reference runs as
/usr/bin/python3 bench/torch_lm.py / bench/torch_qstar.py (override with $PYTHON).

Environment:
  BENCH_QUICK=1      (or --quick) small configs only, a smoke test (< 2 min)
  BENCH_SKIP_BIG=1   skip section 2(d)'s 135M-shaped B=8 step (the longest run)
  BENCH_REF_TIMEOUT  seconds one reference process may take (default 600)
  QSTAR_DATA         shared data dir: stories260K.bin is used when present
  BENCH_OMP_WAIT_POLICY  OMP_WAIT_POLICY for both sides ("default" leaves it unset).
                     Unset: the reference runs with PASSIVE (with GOMP's default spinning,
                     its OpenMP threads plus OpenBLAS's spinning pthreads on a shared 2-CPU
                     machine measure the scheduler: 2-10x slower and erratic), and qstar
                     with the policy its CLI chooses (qstar_omp_wait_policy: PASSIVE on
                     OpenBLAS, libgomp's default on oneDNN).  The reference as its users
                     run it sets none, so sections 2(a)/(b) also time it "as shipped"
                     (variable unset) beside the tuned one (BENCH_AS_SHIPPED=0: skip).
  BENCH_PERF=0       no `perf record` time attribution
"""
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
BUILD = os.environ.get("BUILD", "build")
BIN = os.path.join(ROOT, BUILD, "bench_qstar")
PY = os.environ.get("PYTHON", "/usr/bin/python3")
THREADS = 2
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0") or "--quick" in sys.argv
SKIP_BIG = os.environ.get("BENCH_SKIP_BIG", "") not in ("", "0")
REF_TIMEOUT = float(os.environ.get("BENCH_REF_TIMEOUT", "600"))
WAIT_POLICY = os.environ.get("BENCH_OMP_WAIT_POLICY", "")  # "": PASSIVE for the reference, qstar's own for qstar
AS_SHIPPED = os.environ.get("BENCH_AS_SHIPPED", "1") not in ("", "0")
USE_PERF = os.environ.get("BENCH_PERF", "1") not in ("", "0") and shutil.which("perf") is not None
T_START = time.time()

sys.dont_write_bytecode = True  # no bench/__pycache__
sys.path.insert(0, HERE)
from torch_qstar import SHAPES, estimate_bytes  # noqa: E402  (no torch import at module level)

results = {"sections": {}}


# ----------------------------------------------------------------------------- helpers

def log(msg):
    el = int(time.time() - T_START)
    print("[%02d:%02d] %s" % (el // 60, el % 60, msg), file=sys.stderr, flush=True)


def out(line=""):
    print(line, flush=True)


def child_env(wait_policy=None, qstar=False):
    """The environment of a measured process.  qstar's processes choose their
    OpenMP wait policy as the qstar CLI does, unless BENCH_OMP_WAIT_POLICY says."""
    e = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        e[k] = str(THREADS)
    policy = WAIT_POLICY if wait_policy is None else wait_policy
    if not policy:
        policy = "default" if qstar else "PASSIVE"
    if policy.lower() == "default":
        e.pop("OMP_WAIT_POLICY", None)
    else:
        e["OMP_WAIT_POLICY"] = policy
    return e


def loadavg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def is_qstar(cmd):
    return os.path.basename(cmd[0]) in ("bench_qstar", "qstar")


def run(cmd, label, timeout=None, wait_policy=None, env=None):
    """Runs one measurement process; returns its JSON dict (plus the child's
    rusage: peak RSS and CPU seconds as /usr/bin/time -v reports them), or a
    dict with "error"."""
    log("%s: %s" % (label, " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)))
    la0, t0 = loadavg(), time.time()
    e = child_env(wait_policy, qstar=is_qstar(cmd))
    e.update(env or {})
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=e, cwd=ROOT,
                         start_new_session=True)
    timed_out = False
    if timeout:
        def kill(*_):
            nonlocal timed_out
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the process group of the child we started
            except ProcessLookupError:
                pass
        old = signal.signal(signal.SIGALRM, kill)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        data = p.stdout.read()
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    wall = time.time() - t0
    if timed_out:
        log("%s: stopped after %.0f s (timeout)" % (label, wall))
        return {"error": "timeout", "wall_s": wall}
    if p.returncode != 0:
        log("%s: failed (exit %s)" % (label, p.returncode))
        return {"error": "exit %s" % p.returncode, "wall_s": wall}
    lines = [ln for ln in data.decode().splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": "no output", "wall_s": wall}
    r = json.loads(lines[-1])
    r["child_maxrss_kb"] = ru.ru_maxrss
    r["child_cpu_s"] = ru.ru_utime + ru.ru_stime
    r["process_wall_s"] = wall
    r["loadavg"] = [la0, loadavg()]
    log("%s: done in %.1f s (peak RSS %.2f GB, load %.1f)" % (label, wall, ru.ru_maxrss / 2**20, loadavg()))
    return r


def median(v):
    s = sorted(v)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def merge(runs):
    """Several rounds of one measurement: median over all timed iterations."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1] if runs else {"error": "not run"}
    m = dict(ok[0])
    m["times"] = [t for r in ok for t in r["times"]]
    m["cpu_times"] = [t for r in ok for t in r.get("cpu_times", [])]
    m["median_s"] = median(m["times"])
    m["cpu_median_s"] = median(m["cpu_times"])
    m["peak_rss_kb"] = max(r["child_maxrss_kb"] for r in ok)
    m["rounds"] = len(ok)
    for k in ("think_s", "talk_s", "backward_s", "adamw_median_s"):
        if all(k in r for r in ok):
            m[k] = median([r[k] for r in ok])
    if "tokens_per_s" in m:
        m["tokens_per_s"] = m["B"] * m["T"] / m["median_s"]
    return m


def gb(kb):
    return "%.2f GB" % (kb / 2**20) if kb else "-"


def fmt_s(x):
    if x != x:
        return "-"
    return "%.3f" % x if x < 10 else "%.1f" % x


def have_torch():
    try:
        r = subprocess.run([PY, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True,
                           timeout=120)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def qstar_cmd(mode, **kw):
    cmd = [BIN, mode]
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-") if k not in ("B", "T") else "--" + k, str(v)]
    return cmd


def ref_cmd(script, **kw):
    cmd = [PY, os.path.join(HERE, script), "--threads", str(THREADS)]
    for k, v in kw.items():
        cmd += ["--" + k.replace("_", "-") if k not in ("B", "T") else "--" + k, str(v)]
    return cmd


def _dims(cfg):
    H, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    nh, nkv, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    hd = H // nh
    lin = L * (2 * H * nh * hd + 2 * H * nkv * hd + 3 * H * F)  # q,o + k,v + gate,up,down
    return H, L, nh, hd, V, lin


def lm_flops(cfg, B, T):
    """Model FLOPs of one LM forward+backward (backward = 2x forward; no recompute)."""
    H, L, nh, hd, V, lin = _dims(cfg)
    N = B * T
    fwd = 2 * lin * N + L * 4 * nh * hd * B * T * (T + 1) / 2 + 2 * N * H * V
    return 3 * fwd


def step_flops(cfg, B, T, n_ahead, n_talk, n_passes):
    """FLOPs the Quiet-STaR step needs (SPEC's algorithm computed as qstar does it,
    backward = 2x forward, without qstar's layer recompute): the D passes with
    their i+1+d visible keys per query, the lm_head products (base and talk CE
    forward+backward, n_thought sampling passes, n_thought policy passes
    forward+backward) and the mixing head.  Used for both sides, so GFLOP/s
    compares implementations doing the same job."""
    H, L, nh, hd, V, lin = _dims(cfg)
    R, D, nT = B * n_passes, n_ahead + n_talk - 1, n_ahead - 3
    N = R * T
    keys = sum(R * (T * (T + 1) / 2 + T * d) for d in range(D))
    model = 3 * (2 * lin * N * D + L * 4 * nh * hd * keys)
    head = ((1 + n_talk + 2 * nT) + 2 * (1 + n_talk + nT)) * 2 * N * H * V
    mix = n_talk * 3 * 2 * N * (3 * H * H + H)
    return model + head + mix


PERF_GROUPS = [  # (label, predicate on (dso, symbol))
    ("GEMM (OpenBLAS sgemm)", lambda d, s: "openblas" in d or "blas" in d),
    ("attention (thought-structured, ops/attention.c)", lambda d, s: s.startswith("attention_")),
    ("softmax/CE/sampling/policy (exp over the vocabulary)",
     lambda d, s: "exp" in s or "log" in s or s.startswith("crossentropy") or s.startswith("qs_qstar_step")),
    ("norms, SwiGLU, RoPE, embeddings, mixing head", lambda d, s: any(
        s.startswith(p) for p in ("rmsnorm", "swiglu", "rotate", "rope", "embedding", "matmul", "mixhead"))),
    ("AdamW + grad clip", lambda d, s: s.startswith("qs_adamw") or s.startswith("qs_clip")),
    ("kernel: scheduling, yields, page faults", lambda d, s: "kernel" in d or "sched_yield" in s),
    ("memset/memcpy", lambda d, s: "mem" in s),
]


def perf_attribution(cmd, label):
    """Flat `perf record` profile of one qstar process, grouped by kind of work."""
    if not USE_PERF:
        return None
    data = os.path.join(tempfile.gettempdir(), "qstar-bench-perf-%d.data" % os.getpid())
    log("%s perf record: %s" % (label, " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)))
    try:
        r = subprocess.run(["perf", "record", "-q", "-F", "499", "-o", data, "--"] + cmd,
                           env=child_env(qstar=is_qstar(cmd)), cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
        if r.returncode != 0:
            return None
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio"],
                             capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    finally:
        try:
            os.unlink(data)
        except OSError:
            pass
    groups = {g: 0.0 for g, _ in PERF_GROUPS}
    groups["other"] = 0.0
    top = []
    for line in rep.stdout.splitlines():
        parts = line.split()
        if len(parts) < 4 or line.lstrip().startswith("#") or not parts[0].endswith("%"):
            continue
        try:
            pct = float(parts[0][:-1])
        except ValueError:
            continue
        dso, sym = parts[1], " ".join(parts[3:])
        if len(top) < 8:
            top.append((pct, dso, sym))
        for g, pred in PERF_GROUPS:
            if pred(dso.lower(), sym):
                groups[g] += pct
                break
        else:
            groups["other"] += pct
    return dict(groups=groups, top=top)


def print_perf(pa, indent="    "):
    if not pa:
        return
    out("%sperf profile of the whole qstar process (%% of samples):" % indent)
    for g, v in sorted(pa["groups"].items(), key=lambda kv: -kv[1]):
        if v >= 0.5:
            out("%s  %5.1f%%  %s" % (indent, v, g))
    out("%s  top symbols: %s" % (indent, "; ".join("%s %.1f%%" % (s, p) for p, d, s in pa["top"][:5])))


# ----------------------------------------------------------------------------- sections

def section_lm(torch_ok):
    shape, B, T = ("260k", 2, 64) if QUICK else ("135m", 4, 256)
    name = "SmolLM-135M shape" if shape == "135m" else "stories260K shape"
    fl = lm_flops(SHAPES[shape], B, T)
    rounds, iters = (1, 3) if QUICK else (2, 2)
    out("== 1. LM forward+backward, %s, B=%d T=%d (fp32, %d threads, random init)" % (name, B, T, THREADS))
    out("   %d alternating round(s) of [qstar process, torch process], each: 1 warm-up + %d timed iterations; "
        "medians over all %d" % (rounds, iters, rounds * iters))
    qs, rs = [], []
    for k in range(rounds):
        qs.append(run(qstar_cmd("lm", shape=shape, B=B, T=T, warmup=1, iters=iters), "1 qstar lm (round %d)" % (k + 1)))
        if torch_ok:
            rs.append(run(ref_cmd("torch_lm.py", shape=shape, B=B, T=T, warmup=1, iters=iters),
                          "1 torch lm (round %d)" % (k + 1)))
    q = merge(qs)
    r = merge(rs) if torch_ok else {"error": "torch not importable by %s" % PY}
    out("%-8s %10s %10s %10s %10s %10s" % ("impl", "s/iter", "tokens/s", "cpu s", "GFLOP/s", "peak RSS"))
    for nm, x in (("qstar", q), ("torch", r)):
        if "error" in x:
            out("%-8s %s" % (nm, "skipped/failed: " + x["error"]))
        else:
            out("%-8s %10s %10.1f %10s %10.1f %10s" % (nm, fmt_s(x["median_s"]), x["tokens_per_s"],
                                                       fmt_s(x["cpu_median_s"]), fl / x["median_s"] / 1e9,
                                                       gb(x["peak_rss_kb"])))
    ratio = None
    if "error" not in q and "error" not in r:
        ratio = q["tokens_per_s"] / r["tokens_per_s"]
        out("ratio qstar/torch tokens/s: %.2fx   (cpu-time ratio torch/qstar %.2fx; memory qstar/torch %.2f)"
            % (ratio, r["cpu_median_s"] / q["cpu_median_s"], q["peak_rss_kb"] / r["peak_rss_kb"]))
    out("(GFLOP/s = %.1f GFLOP of model work per iteration / time)" % (fl / 1e9))
    out()
    results["sections"]["lm"] = dict(shape=shape, B=B, T=T, flops=fl, qstar=q, torch=r, ratio_tokens_per_s=ratio)


def ref_fits(est, avail):
    """The reference's estimated peak (estimate_bytes) fits in the available memory
    with a 25% margin: measured peaks came out up to 22% above it (135M B1 T128:
    22.0 GB against 18.1 GB estimated, run by hand on a machine with 22.6 GB)."""
    return est * 1.25 <= avail


def step_pair(model, label, B, T, n_ahead, n_talk, n_passes, rounds, warmup, iters, torch_ok, ref_iters=None,
              ref_warmup=None, as_shipped=False, precisions=None):
    """qstar and reference steps on one config, alternating for `rounds`.
    With as_shipped, also one round of the reference with OMP_WAIT_POLICY
    unset (as its users run it), returned as r["as_shipped"]."""
    cfg = json.load(open(os.path.join(model, "config.json")))
    est = estimate_bytes(cfg, B, T, n_ahead, n_talk, n_passes)
    avail = mem_available()
    kw = dict(model=model, B=B, T=T, n_ahead=n_ahead, n_talk=n_talk, n_passes=n_passes)
    qs, rs = [], []
    ref_skip = None
    if not torch_ok:
        ref_skip = "torch not importable by %s" % PY
    elif not ref_fits(est, avail):
        ref_skip = "needs ~%.1f GB (dense masks/activations), %.1f GB available" % (est / 2**30, avail / 2**30)
    qp = {p: [] for p in (precisions or ())}
    for k in range(rounds):
        if precisions:
            for prec in precisions:
                qp[prec].append(run(qstar_cmd("step", warmup=warmup, iters=iters, precision=prec, **kw),
                                    "%s qstar %s (round %d)" % (label, prec, k + 1)))
        else:
            qs.append(run(qstar_cmd("step", warmup=warmup, iters=iters, **kw), "%s qstar (round %d)" % (label, k + 1)))
        if ref_skip is None:
            rr = run(ref_cmd("torch_qstar.py", warmup=warmup if ref_warmup is None else ref_warmup,
                             iters=iters if ref_iters is None else ref_iters, **kw),
                     "%s ref (round %d)" % (label, k + 1), timeout=REF_TIMEOUT)
            rs.append(rr)
            if rr.get("error") == "timeout":
                ref_skip = "one process took > %.0f s: stopped" % REF_TIMEOUT
                break
    q = {p: merge(v) for p, v in qp.items()} if precisions else merge(qs)
    r = merge(rs) if rs and any("error" not in x for x in rs) else {"error": ref_skip or "failed", "est_bytes": est}
    r.setdefault("est_bytes", est)
    if as_shipped and ref_skip is None:
        rr = [run(ref_cmd("torch_qstar.py", warmup=warmup if ref_warmup is None else ref_warmup,
                          iters=iters if ref_iters is None else ref_iters, **kw),
                  "%s ref as shipped (OMP_WAIT_POLICY unset, round %d)" % (label, k + 1), timeout=REF_TIMEOUT,
                  wait_policy="default") for k in range(rounds)]
        r["as_shipped"] = merge(rr)
    return q, r


def step_triple(model, label, B, T, n_ahead, n_talk, n_passes, rounds, warmup, iters, torch_ok, ref_warmup=None,
                ref_iters=None, shipped=True):
    """qstar fp32, qstar bf16 and the reference on one config, alternating
    (round k: fp32, bf16, ref), plus one round of the reference as shipped."""
    q, r = step_pair(model, label, B, T, n_ahead, n_talk, n_passes, rounds, warmup, iters, torch_ok,
                     ref_iters=ref_iters, ref_warmup=ref_warmup, as_shipped=AS_SHIPPED and shipped,
                     precisions=("fp32", "bf16"))
    return q, r


def step_yardsticks():
    """The fp32 sgemm and bf16 GEMM yardsticks of the step table: the higher of the start's calibration and
    one taken right after the steps. On a shared host one calibration can fall into a slow moment (a run read
    167 GFLOP/s at its start and 208 at its end), which would flatter every percentage of the table."""
    m = results["machine"]
    yard, yard16 = m.get("sgemm_gflops"), m.get("bgemm_gflops")
    cal = run([BIN, "calib", "--iters", "5"], "sgemm calibration (after the steps)")
    if "error" not in cal:
        m["sgemm_gflops_steps"] = cal["sgemm_gflops_median"]
        yard = max(yard or 0, cal["sgemm_gflops_median"])
    cal16 = run([BIN, "calib", "--iters", "5", "--precision", "bf16"], "bf16 GEMM calibration (after the steps)")
    if "error" not in cal16:
        m["bgemm_gflops_steps"] = cal16["sgemm_gflops_median"]
        yard16 = max(yard16 or 0, cal16["sgemm_gflops_median"])
    m["sgemm_gflops_table"], m["bgemm_gflops_table"] = yard, yard16
    out("   yardsticks for %%sgemm: the higher of the start's and a calibration after the steps: fp32 %s, bf16 %s"
        % ("%.0f GFLOP/s" % yard if yard else "-", "%.0f GFLOP/s" % yard16 if yard16 else "-"))
    return yard, yard16


def print_triple_rows(rows, yard, yard16):
    """rows: (label, {prec: q}, ref, flops)."""
    out("%-18s %-11s %8s %8s %8s %6s %9s | %8s %8s %9s" % ("config", "impl", "s/step", "cpu s", "GFLOP/s",
                                                         "%sgemm", "peak RSS", "speedup", "(cpu)", "mem ratio"))
    for label, qd, r, fl in rows:
        variants = [("qstar fp32", qd.get("fp32", {"error": "not run"})),
                    ("qstar bf16", qd.get("bf16", {"error": "not run"})), ("ref", r)]
        if "as_shipped" in r:
            variants.append(("ref*", r["as_shipped"]))
        for k, (nm, x) in enumerate(variants):
            lab = label if k == 0 else ""
            if "error" in x:
                out("%-18s %-11s %s" % (lab, nm, "skipped: " + x["error"]))
                continue
            gf = fl / x["median_s"] / 1e9
            pct = "%5.0f%%" % (100 * gf / yard) if yard else "-"
            tail = ""
            if nm.startswith("qstar") and "error" not in r:
                tail = "| %7.2fx %7.2fx %9.3f" % (r["median_s"] / x["median_s"], r["cpu_median_s"] / x["cpu_median_s"],
                                                  x["peak_rss_kb"] / r["peak_rss_kb"])
            out("%-18s %-11s %8s %8s %8.1f %6s %9s %s" % (lab, nm, fmt_s(x["median_s"]), fmt_s(x["cpu_median_s"]), gf,
                                                        pct, gb(x["peak_rss_kb"]), tail))
    out("   speedup = ref/qstar wall time per step (medians; the reference tuned, OMP_WAIT_POLICY=PASSIVE);"
        " (cpu) = the same in process CPU seconds")
    out("   %%sgemm = the step's useful GFLOP/s as a share of this run's fp32 sgemm yardstick (%.0f GFLOP/s; "
        "bf16 GEMM yardstick %s)" % (yard or 0, "%.0f GFLOP/s" % yard16 if yard16 else "-"))
    out("   ref* = the reference as shipped (OMP_WAIT_POLICY unset, torch's default)")


def target_lines(sec, yard):
    """The issue's targets, each with met / NOT met."""
    cf = sec["configs"]

    def sp(label, prec):
        c = cf.get(label, {})
        q, r = c.get("qstar", {}).get(prec, {}), c.get("ref", {})
        if not q or "error" in q or "error" in r:
            return None
        return r["median_s"] / q["median_s"]

    def gfl(label, prec):
        c = cf.get(label, {})
        q = c.get("qstar", {}).get(prec, {})
        return None if not q or "error" in q else c["flops"] / q["median_s"] / 1e9

    checks = [
        ("135m B1 T128 fp32 speedup >= 5x", sp("(a2) 135m B1 T128", "fp32"), 5),
        ("135m B1 T128 bf16 speedup >= 10x", sp("(a2) 135m B1 T128", "bf16"), 10),
        ("260k B1 T256 fp32 speedup >= 50x", sp("(b) 260k B1 T256", "fp32"), 50),
        ("260k B1 T256 bf16 speedup >= 50x", sp("(b) 260k B1 T256", "bf16"), 50),
    ]
    for lab in ("(a) 135m B1 T64", "(a2) 135m B1 T128"):
        g32, g16 = gfl(lab, "fp32"), gfl(lab, "bf16")
        name = lab.split(") ", 1)[1]  # "(a) 135m B1 T64" -> "135m B1 T64"
        checks.append(("%s fp32 GFLOP/s >= 60%% of sgemm" % name, g32 / yard if g32 and yard else None, 0.6))
        checks.append(("%s bf16 GFLOP/s >= 120%% of sgemm" % name, g16 / yard if g16 and yard else None, 1.2))
    sec["targets"] = []
    for what, v, goal in checks:
        ok = v is not None and v >= goal
        sec["targets"].append(dict(target=what, value=v, goal=goal, met=ok))
        out("target %-44s %s" % (what, "-" if v is None else "%8.2f  %s" % (v, "met" if ok else "NOT MET")))


def phases(model, B, T, n_ahead, n_talk, n_passes, q, label):
    """Where qstar's step time goes: the step's own phase timers (medians of
    the timed steps) and a flat perf profile of one step."""
    kw = dict(model=model, B=B, T=T, n_ahead=n_ahead, n_talk=n_talk, n_passes=n_passes)
    ph = {k: q[k] for k in ("think_s", "talk_s", "backward_s", "adamw_median_s", "layers_kept") if k in q}
    if "think_s" in ph:
        tot = q["median_s"]
        out("    the step's phase timers (medians; step %s s, activations of %d layers kept):"
            % (fmt_s(tot), ph.get("layers_kept", -1)))
        for key, what in (("think_s", "think: %2d forward passes + sampling" % (n_ahead + n_talk - 1)),
                          ("talk_s", "talk: losses, rewards, policy (lm_head)"),
                          ("backward_s", "backward over all passes"),
                          ("adamw_median_s", "grad clip + AdamW")):
            out("      %-42s %7s s  %4.0f%%" % (what, fmt_s(ph[key]), 100 * ph[key] / tot))
    ph["perf"] = perf_attribution(qstar_cmd("step", warmup=0, iters=1, **kw), label)
    print_perf(ph["perf"], "    ")
    return ph


def section_step(torch_ok, tmp):
    o = dict(n_ahead=12, n_talk=4, n_passes=2)
    out("== 2. Quiet-STaR training step (forward, backward, clip, AdamW), qstar fp32 and bf16, %d threads" % THREADS)
    out("   n_ahead %d (n_thought %d), n_talk %d, n_passes %d unless noted; ref = tests/reference/quietstar_ref.py"
        % (o["n_ahead"], o["n_ahead"] - 3, o["n_talk"], o["n_passes"]))
    out("   speedup = ref s/step / qstar s/step; mem ratio = qstar peak RSS / ref peak RSS")

    # models: identical weights on both sides
    data = os.environ.get("QSTAR_DATA", "")
    st260 = os.path.join(data, "stories260K", "stories260K.bin") if data else ""
    m260 = os.path.join(tmp, "m260k")
    if st260 and os.path.isfile(st260):
        r = run([BIN, "save", "--load", st260, "--out", m260], "save stories260K")
        src260 = "stories260K.bin (real weights)"
    else:
        r = run([BIN, "save", "--shape", "260k", "--out", m260], "save random 260k")
        src260 = "random init (QSTAR_DATA unset)"
    if "error" in r:
        out("cannot write the 260k model: %s" % r["error"])
        return
    m135 = None
    if not QUICK:
        m135 = os.path.join(tmp, "m135m")
        if "error" in run([BIN, "save", "--shape", "135m", "--out", m135], "save random 135m"):
            m135 = None
    out("   260k model: %s; 135m model: random init" % src260)
    sec = results["sections"]["step"] = {"model_260k": src260, "configs": {}}

    rows = []
    # (label, model, B, T, rounds, warmup, iters, reference warmup, reference iters, also the
    # reference as shipped): a stories260K step takes 0.3 s, so qstar's median there is
    # over 10 steady steps; the reference as shipped would take ~10 minutes at T128.
    # The 135M T64 step runs 2 timed steps per round (4 in all, about 35 s more than
    # 1): with 2 samples its median moved 10% with the host between runs, across the
    # line of a target
    if QUICK:
        plan = [("(b) 260k B1 T64", m260, 1, 64, 1, 1, 1, 1, 1, True)]
    else:
        plan = []
        if m135:
            plan.append(("(a) 135m B1 T64", m135, 1, 64, 2, 1, 2, 1, 1, True))
            plan.append(("(a2) 135m B1 T128", m135, 1, 128, 1, 1, 1, 1, 1, False))
        plan.append(("(b) 260k B1 T256", m260, 1, 256, 2, 3, 10, 1, 2, True))
    for label, model, B, T, rounds, warmup, iters, ref_warmup, ref_iters, shipped in plan:
        qd, r = step_triple(model, label, B, T, rounds=rounds, warmup=warmup, iters=iters, torch_ok=torch_ok,
                            ref_warmup=ref_warmup, ref_iters=ref_iters, shipped=shipped, **o)
        cfg = json.load(open(os.path.join(model, "config.json")))
        fl = step_flops(cfg, B, T, o["n_ahead"], o["n_talk"], o["n_passes"])
        rows.append((label, qd, r, fl))
        sec["configs"][label] = dict(B=B, T=T, flops=fl, qstar=qd, ref=r, **o)
    out()
    yard, yard16 = step_yardsticks()
    print_triple_rows(rows, yard, yard16)
    out("   (GFLOP/s = FLOPs the step needs, counted the same way for both sides / time)")
    for label, qd, r, fl in rows:
        q = qd.get("fp32", {})
        if "error" in q or "error" in r:
            continue
        c = sec["configs"][label]
        c["speedup"] = r["median_s"] / q["median_s"]
        c["speedup_cpu"] = r["cpu_median_s"] / q["cpu_median_s"]
        c["mem_ratio"] = q["peak_rss_kb"] / r["peak_rss_kb"]
        q16 = qd.get("bf16", {})
        if "error" not in q16:
            c["speedup_bf16"] = r["median_s"] / q16["median_s"]
            c["bf16_over_fp32_time"] = q16["median_s"] / q["median_s"]
        if c["speedup"] < 5 and not QUICK:
            out("  %s: fp32 speedup %.2fx < 5x: where qstar's time goes" % (label, c["speedup"]))
            c["phases"] = phases(m135 if label.startswith("(a") else m260, c["B"], c["T"], o["n_ahead"],
                                 o["n_talk"], o["n_passes"], q, label)
    if not QUICK:
        target_lines(sec, yard)
    out()

    # (c) growth with thought length
    T = 32 if QUICK else 128
    ns = [4, 12] if QUICK else [4, 8, 12, 16, 24]
    out("== 2(c) growth with thought length: 260k, B=1 T=%d, n_talk 4, n_passes 2 (passes D = n_ahead + 3)" % T)
    sweep = {}
    for n in ns:
        # qstar's steps take 0.05-0.3 s here: a median of 15 steady steps (the reference: 2)
        q, r = step_pair(m260, "(c) n_ahead %d" % n, 1, T, n, 4, 2, rounds=1, warmup=1 if QUICK else 3,
                         iters=1 if QUICK else 15, torch_ok=torch_ok, ref_warmup=1, ref_iters=1 if QUICK else 2)
        sweep[n] = (q, r)
    n0 = ns[0]

    def rel(x, key):
        base = sweep[n0][0 if x == "q" else 1]
        v0 = base.get(key) if "error" not in base else None
        return lambda res: (res.get(key, float("nan")) / v0) if v0 and "error" not in res else float("nan")

    q_wall, q_cpu, r_wall = rel("q", "median_s"), rel("q", "cpu_median_s"), rel("r", "median_s")
    out("%7s %6s %9s %7s %9s %7s %9s %8s %9s %8s" % ("n_ahead", "passes", "qstar s", "t/t4", "q cpu s", "cpu/c4",
                                                   "ref s", "t/t4", "speedup", "n/4*1.1"))
    ok_wall = ok_cpu = True
    worst_wall = worst_cpu = 0.0
    rows_c = []
    for n in ns:
        q, r = sweep[n]
        bound = n / n0 * 1.1
        qw, qc, rw = q_wall(q), q_cpu(q), r_wall(r)
        for v, which in ((qw, "wall"), (qc, "cpu")):
            if v == v:
                if which == "wall":
                    worst_wall, ok_wall = max(worst_wall, v / bound), ok_wall and v <= bound
                else:
                    worst_cpu, ok_cpu = max(worst_cpu, v / bound), ok_cpu and v <= bound
        rs_ = r.get("median_s", float("nan")) if "error" not in r else float("nan")
        qs_ = q.get("median_s", float("nan"))
        sp = rs_ / qs_ if rs_ == rs_ else float("nan")
        out("%7d %6d %9s %7.2f %9s %7.2f %9s %8s %9s %8.2f" % (
            n, n + 3, fmt_s(qs_), qw, fmt_s(q.get("cpu_median_s", float("nan"))), qc, fmt_s(rs_),
            "%.2f" % rw if rw == rw else "-", "%.2fx" % sp if sp == sp else "-", bound))
        rows_c.append(dict(n_ahead=n, qstar=q, ref=r, qstar_rel_wall=qw, qstar_rel_cpu=qc, ref_rel_wall=rw,
                           speedup=sp, bound=bound))

    def verdict_text(ok, worst, what):
        if ok:
            return "%s: at most linear (t(n)/t(%d) <= n/%d*1.1 for every n; worst %.2f of the bound)" % (
                what, n0, n0, worst)
        return "%s: SUPERLINEAR somewhere (worst %.2fx the linear bound)" % (what, worst)
    out("verdict, qstar CPU time (robust on a shared machine) -> " + verdict_text(ok_cpu, worst_cpu, "growth"))
    out("verdict, qstar wall time                            -> " + verdict_text(ok_wall, worst_wall, "growth"))
    out()
    sec["growth"] = dict(T=T, rows=rows_c, at_most_linear_cpu=ok_cpu, at_most_linear_wall=ok_wall,
                         worst_fraction_of_bound_cpu=worst_cpu, worst_fraction_of_bound_wall=worst_wall)

    # (d) paper batch
    if QUICK:
        out("== 2(d) paper batch B=8 T=256: skipped in quick mode")
        return
    out("== 2(d) paper batch B=8, T=256, n_ahead 12, n_talk 4, n_passes 2: qstar alone unless the reference fits")
    dd = sec["paper_batch"] = {}
    plan = [("260k", m260)]
    if m135 and not SKIP_BIG:
        plan.append(("135m", m135))
    elif m135:
        out("   135m: skipped (BENCH_SKIP_BIG=1)")
    for shape, model in plan:
        cfg = json.load(open(os.path.join(model, "config.json")))
        est = estimate_bytes(cfg, 8, 256, 12, 4, 2)
        iters = 2 if shape == "260k" else 1
        warm = 1 if shape == "260k" else 0
        if shape == "135m":
            log("(d) 135m B8 T256: one step of 15 passes x 4096 tokens; this is the longest run (minutes)")
        q = merge([run(qstar_cmd("step", model=model, B=8, T=256, warmup=warm, iters=iters), "(d) %s qstar" % shape)])
        q16 = merge([run(qstar_cmd("step", model=model, B=8, T=256, warmup=warm, iters=iters, precision="bf16"),
                         "(d) %s qstar bf16" % shape)])
        ref_note = "skipped (needs ~%.0f GB dense masks/activations; machine has %.0f GB available)" % (
            est / 2**30, mem_available() / 2**30) if not ref_fits(est, mem_available()) else None
        r = None
        if ref_note is None and torch_ok:
            r = merge([run(ref_cmd("torch_qstar.py", model=model, B=8, T=256, warmup=0, iters=1),
                           "(d) %s ref" % shape, timeout=REF_TIMEOUT)])
            if "error" in r:
                ref_note = "failed: " + r["error"]
        # lower bound of the reference time by row scaling from (a)/(b)
        base = sec["configs"].get("(a) 135m B1 T64" if shape == "135m" else "(b) 260k B1 T256", {}).get("ref", {})
        scale = 8 * (256 // (64 if shape == "135m" else 256))
        lb = base.get("median_s", 0) * scale if "error" not in base else 0
        if "error" in q:
            out("   %s qstar: failed: %s" % (shape, q["error"]))
        else:
            fl = step_flops(cfg, 8, 256, 12, 4, 2)
            out("   %s qstar: %s s/step (%s), peak RSS %s, %.1f GFLOP/s (%.0f GFLOP/step)"
                % (shape, fmt_s(q["median_s"]), "median of %d after 1 warm-up" % iters if warm else "one cold step",
                   gb(q["peak_rss_kb"]), fl / q["median_s"] / 1e9, fl / 1e9))
            if q["peak_rss_kb"] > 24 * 2**20:
                out("   WARNING: above 24 GB")
            if "error" in q16:
                out("   %s qstar bf16: failed: %s" % (shape, q16["error"]))
            else:
                ratio = q16["median_s"] / q["median_s"]
                out("   %s qstar bf16: %s s/step, peak RSS %s, %.1f GFLOP/s -> bf16/fp32 time %.2f" % (
                    shape, fmt_s(q16["median_s"]), gb(q16["peak_rss_kb"]), fl / q16["median_s"] / 1e9, ratio))
                if shape == "135m":
                    ok = ratio <= 0.5 and q16["peak_rss_kb"] <= 24 * 2**20
                    out("target 135m B8 T256 bf16 time <= 0.5x fp32, within 24 GB       %8.2f  %s" % (
                        ratio, "met" if ok else "NOT MET"))
        if r is not None and "error" not in r:
            out("   %s reference: %s s/step, peak RSS %s  -> speedup %.2fx, mem ratio %.3f"
                % (shape, fmt_s(r["median_s"]), gb(r["peak_rss_kb"]), r["median_s"] / q["median_s"],
                   q["peak_rss_kb"] / r["peak_rss_kb"]))
        else:
            extra = ""
            if lb:
                extra = "; time >= ~%.0f s/step by scaling the %s reference by %dx (rows x T)" % (
                    lb, "(a)" if shape == "135m" else "(b)", scale)
            out("   %s reference: %s%s" % (shape, ref_note or "skipped (torch unavailable)", extra))
        dd[shape] = dict(qstar=q, qstar_bf16=q16, ref=r, ref_note=ref_note, ref_est_bytes=est, ref_time_lower_bound_s=lb or None)
    out()


def write_wide_tokenizer(src, dst, n):
    """A llama2.c tokenizer.bin of n pieces whose first 512 are src's (stories260K's
    tok512.bin: the prompt encodes to those ids) and the rest placeholders, so a
    random model of a big vocabulary (the 135M shape) can generate text."""
    import struct
    data = open(src, "rb").read()
    maxlen = struct.unpack("<i", data[:4])[0]
    pos, pieces = 4, []
    for _ in range(512):
        _, ln = struct.unpack("<fi", data[pos:pos + 8])
        pieces.append(data[pos:pos + 8 + ln])
        pos += 8 + ln
    for i in range(512, n):
        piece = b"<x%d>" % i
        pieces.append(struct.pack("<fi", -1e9, len(piece)) + piece)
    with open(dst, "wb") as f:
        f.write(struct.pack("<i", max(maxlen, 8)) + b"".join(pieces))


def section_generate(tmp):
    """qstar generate --think on the 135M shape: tokens/s in fp32 and bf16."""
    m135 = os.path.join(tmp, "m135m")
    data = os.environ.get("QSTAR_DATA", "")
    tok = os.path.join(data, "stories260K", "tok512.bin") if data else ""
    out("== 3. qstar generate --think (n_ahead 12: 10 thought tokens before every token), 135M shape, "
        "greedy, 48 positions, %d threads" % THREADS)
    if QUICK or not os.path.isdir(m135) or not os.path.isfile(tok):
        out("   skipped (%s)" % ("quick mode" if QUICK else "no 135m model" if not os.path.isdir(m135)
                                 else "QSTAR_DATA unset: no tokenizer to build the 135M-shaped one from"))
        out()
        return
    cfg = json.load(open(os.path.join(m135, "config.json")))
    write_wide_tokenizer(tok, os.path.join(m135, "tokenizer.bin"), cfg["vocab_size"])
    qbin = os.path.join(ROOT, BUILD, "qstar")
    res = {}
    for rnd in range(2):
        for prec in ("fp32", "bf16"):
            cmd = [qbin, "generate", "--model", m135, "--think", "--precision", prec, "--prompt", "Once upon a time",
                   "--max-tokens", "48", "--temperature", "0", "--seed", "1"]
            log("3 generate %s (round %d): %s" % (prec, rnd + 1, " ".join(cmd[1:])))
            p = subprocess.run(cmd, capture_output=True, text=True, env=child_env(qstar=True), cwd=ROOT, timeout=1200)
            rate = None
            for ln in p.stderr.splitlines():
                if ln.startswith("achieved tok/s:"):
                    rate = float(ln.split(":")[1].split()[0])
            if p.returncode != 0 or rate is None:
                out("   %s: failed: %s" % (prec, (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]))
                continue
            res.setdefault(prec, []).append(rate)
    if res:
        best = {k: max(v) for k, v in res.items()}
        out("   tokens/s (best of 2): " + ", ".join("%s %.2f" % (k, v) for k, v in best.items()) +
            ("   bf16/fp32 %.2fx" % (best["bf16"] / best["fp32"]) if len(best) == 2 else ""))
        results["sections"]["generate"] = dict(tok_per_s=res, best=best)
    out()


def section_backend(tmp):
    """fp32 matmul backends: oneDNN (the default when built with it) against OpenBLAS."""
    out("== 4. fp32 matmul backend: oneDNN vs OpenBLAS (QSTAR_MATMUL), same binary")
    res = {}
    for be in ("onednn", "openblas"):
        cal = run([BIN, "calib", "--iters", "5"], "calib %s" % be, env={"QSTAR_MATMUL": be})
        m = os.path.join(tmp, "m135m")
        shape = ("135m B1 T64", dict(model=m, B=1, T=64)) if os.path.isdir(m) and not QUICK else \
                ("260k B1 T64", dict(shape="260k", B=1, T=64))
        st = merge([run(qstar_cmd("step", warmup=1, iters=1 if QUICK else 2, **shape[1]), "step %s" % be,
                        env={"QSTAR_MATMUL": be})])
        res[be] = dict(calib=cal, step=st, config=shape[0])
        if "error" in cal or "error" in st:
            out("   %-8s failed (%s)" % (be, cal.get("error") or st.get("error")))
            continue
        if cal.get("matmul") != be:
            out("   %-8s not available in this build (ran %s)" % (be, cal.get("matmul")))
            continue
        out("   %-8s sgemm 1024^3 %6.0f GFLOP/s | Quiet-STaR step %s: %s s" % (
            be, cal["sgemm_gflops_median"], shape[0], fmt_s(st["median_s"])))
    a, b = res.get("onednn", {}).get("step", {}), res.get("openblas", {}).get("step", {})
    if a and b and "error" not in a and "error" not in b:
        out("   step time openblas/onednn: %.2fx (> 1: oneDNN faster)" % (b["median_s"] / a["median_s"]))
    results["sections"]["backend"] = res
    out()


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit("run_bench.py: %s missing (scripts/bench.sh builds it)" % BIN)
    tv = have_torch()
    info = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), quick=QUICK, threads=THREADS, nproc=os.cpu_count(),
                cpu=platform.processor() or "", torch=tv, python=PY, loadavg_start=loadavg(),
                mem_available_gb=mem_available() / 2**30)
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), info["cpu"])
    except OSError:
        pass
    try:
        info["git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                     text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    results["machine"] = info
    out("qstar benchmark%s: %s, %d CPUs, %.0f GB available, load %.1f; torch %s; %d threads both sides"
        % (" (quick)" if QUICK else "", info["cpu"], info["nproc"], info["mem_available_gb"], info["loadavg_start"],
           tv or "NOT AVAILABLE (reference skipped)", THREADS))
    if info["loadavg_start"] > 1.5 * THREADS / 2 + 0.5:
        out("note: the machine is busy (load %.1f on %d CPUs): absolute times are inflated; qstar and the reference "
            "alternate so ratios are less affected" % (info["loadavg_start"], info["nproc"]))
    cal = run([BIN, "calib", "--iters", "5"], "sgemm calibration")
    if "error" not in cal:
        info["sgemm_gflops"] = cal["sgemm_gflops_median"]
        out("yardstick: fp32 sgemm 1024^3 (%s) on %d threads right now: %.0f GFLOP/s (best %.0f)"
            % (cal.get("matmul", "?"), THREADS, cal["sgemm_gflops_median"], cal["sgemm_gflops_best"]))
    cal16 = run([BIN, "calib", "--iters", "5", "--precision", "bf16"], "bf16 GEMM calibration")
    if "error" not in cal16:
        info["bgemm_gflops"] = cal16["sgemm_gflops_median"]
        out("           bf16 GEMM 1024^3 (bf16 inputs, fp32 accumulation, %s): %.0f GFLOP/s (best %.0f)"
            % (cal16.get("matmul", "?"), cal16["sgemm_gflops_median"], cal16["sgemm_gflops_best"]))
    out()
    tmp = tempfile.mkdtemp(prefix="qstar-bench-")
    try:
        section_lm(tv is not None)
        section_step(tv is not None, tmp)
        section_generate(tmp)
        section_backend(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        cal = run([BIN, "calib", "--iters", "5"], "sgemm calibration (end)")
        if "error" not in cal:
            info["sgemm_gflops_end"] = cal["sgemm_gflops_median"]
            out("yardstick at the end: sgemm %.0f GFLOP/s" % cal["sgemm_gflops_median"])
        info["loadavg_end"] = loadavg()
        info["total_s"] = time.time() - T_START
        path = os.path.join(ROOT, BUILD, "bench-quick.json" if QUICK else "bench.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
        out("results: %s (total %.1f min, load at end %.1f)" % (os.path.relpath(path, ROOT), info["total_s"] / 60,
                                                                 info["loadavg_end"]))


if __name__ == "__main__":
    main()
