"""pyvrel on one CUDA GPU side by side with what a user would use instead (issue 17).

Anchors: ``torchvision.ops`` nms / batched_nms / box_iou (when importable), dense
``F.scaled_dot_product_attention`` with a band + padding mask, FlexAttention compiled with a
sliding-window block mask, and for Seq-NMS pyvrel's C++ backend on every host core. Every row is checked before it is timed (identical indices; the error
against a float64 reference on a slice; the error against the anchor) and says ``ok`` or
``FAIL``. Times are medians of ``triton.testing.do_bench`` (ms). Prints one line per
measurement, then one summary table (last); ``--json`` keeps every row.

    python -P benchmarks/bench_gpu_anchors.py [--json rows.json] [--smoke]

``--smoke``: the tiny shapes of ``shapes.py`` (GPU_SMOKE_*), one timed call, also on the CPU
(Triton interpreter, no FlexAttention backward there): checks the script, measures nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shapes  # noqa: E402
import pyvrel.ops as ops  # noqa: E402
from pyvrel import _ext  # noqa: E402

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
ROWS: list[dict] = []
# relative error bounds (output, gradients) against the float64 reference, per dtype
REL_TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-4), torch.float16: (5e-3, 2e-2),
           torch.bfloat16: (2e-2, 5e-2)}


def bench(fn, smoke: bool) -> float:
    """Median ms of ``fn`` (one call in smoke mode)."""
    if smoke or DEV.type != "cuda":
        fn()
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3
    import triton.testing

    return triton.testing.do_bench(fn, warmup=10, rep=60, return_mode="median")


def record(group: str, provider: str, check: str = "", **times) -> None:
    row = {"group": group, "provider": provider, "check": check, **times}
    ROWS.append(row)
    ts = " ".join(f"{k}={v:.4f}ms" for k, v in times.items())
    print(f"{group:34s} {provider:16s} {ts:40s} {check}", flush=True)


def section(fn, *args) -> None:
    t0 = time.time()
    try:
        fn(*args)
    except Exception:
        print(f"SECTION {fn.__name__} FAILED:\n{traceback.format_exc()}", flush=True)
        ROWS.append({"group": fn.__name__, "provider": "-", "check": "FAIL: " + traceback.format_exc(limit=1)[-300:]})
    print(f"[{fn.__name__}: {time.time() - t0:.1f} s]", flush=True)


def verdict(ok: bool, what: str) -> str:
    return f"{'ok' if ok else 'FAIL'} {what}"


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


# ---- boxes -------------------------------------------------------------------------------------


def _torchvision():
    try:
        import torchvision

        return torchvision.ops
    except Exception as e:  # not installed, or built for another torch
        print(f"torchvision not importable ({e!r:.100}): its anchors are skipped", flush=True)
        return None


def boxes_vs_torchvision(smoke: bool) -> None:
    tv = _torchvision()
    backend = "cuda" if DEV.type == "cuda" else "cpp"
    for shape in (shapes.GPU_SMOKE_NMS if smoke else shapes.GPU_NMS):
        inp = shapes.make_inputs(shape)
        b, s = inp["boxes"].to(DEV), inp["scores"].to(DEV)
        i = None if inp["idxs"] is None else inp["idxs"].to(DEV)
        ours = (lambda: ops.nms(b, s, shape.iou_threshold, backend=backend)) if i is None else (
            lambda: ops.batched_nms(b, s, i, shape.iou_threshold, backend=backend))
        cpp = ops.nms(b.cpu(), s.cpu(), shape.iou_threshold, backend="cpp") if i is None else ops.batched_nms(
            b.cpu(), s.cpu(), i.cpu(), shape.iou_threshold, backend="cpp")
        group = f"{'nms' if i is None else 'batched_nms'}-{shape.name}"
        keep = ours()
        check = verdict(torch.equal(keep.cpu(), cpp), "= C++ kernel")
        if tv is not None:
            anchor = (lambda: tv.nms(b, s, shape.iou_threshold)) if i is None else (
                lambda: tv.batched_nms(b, s, i, shape.iou_threshold))
            check += "; " + verdict(torch.equal(keep.cpu(), anchor().cpu()), "= torchvision")
            record(group, "torchvision", fwd=bench(anchor, smoke))
        record(group, f"pyvrel-{backend}", check, fwd=bench(ours, smoke))
    for shape in (shapes.GPU_SMOKE_BOX_IOU if smoke else shapes.GPU_BOX_IOU):
        inp = shapes.make_inputs(shape)
        a, c = inp["a"].to(DEV), inp["b"].to(DEV)
        group = f"box_iou-{shape.name}"
        exp = ops.box_iou(a.double(), c.double(), backend="reference")
        if tv is not None and not shape.frames:
            record(group, "torchvision", fwd=bench(lambda: tv.box_iou(a, c), smoke))
        for backend in ("cuda", "triton") if DEV.type == "cuda" else ("triton",):
            out = ops.box_iou(a, c, backend=backend)
            err = (out.double() - exp).abs().max().item()
            record(group, f"pyvrel-{backend}", verdict(err < 1e-5, f"max err {err:.1e} vs float64"),
                   fwd=bench(lambda: ops.box_iou(a, c, backend=backend), smoke))


# ---- local attention ---------------------------------------------------------------------------


def _flex(mask_mod, B, L):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    block_mask = create_block_mask(mask_mod, B, None, L, L, device=DEV)
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v: compiled(q, k, v, block_mask=block_mask)


def local_attention_vs_anchors(smoke: bool) -> None:
    backends = ["triton"] + (["cuda"] if DEV.type == "cuda" and _ext.has_cuda_ext() else [])
    for shape, dtypes in (shapes.GPU_SMOKE_LOCAL_ATTENTION if smoke else shapes.GPU_LOCAL_ATTENTION):
        B, H, L, D, w = shape.batch, shape.heads, shape.length, shape.head_dim, shape.window
        lens = torch.tensor(shape.lengths or [L] * B, device=DEV)
        left, right = ops.window_extents(w)
        pos = torch.arange(L, device=DEV)
        q_ok = pos[None, :] < lens[:, None]  # (B, L)
        band = ((pos[None, :] - pos[:, None]) >= -left) & ((pos[None, :] - pos[:, None]) <= right)
        mask = band[None] & q_ok[:, None, :]  # key j of query i: in the window and a valid key
        mask = (mask | ~mask.any(-1, keepdim=True))[:, None]  # rows without key: any finite output
        row_mask = q_ok[:, None, :, None]  # compare valid query rows only

        def mask_mod(b, h, qi, ki):
            return (ki - qi >= -left) & (ki - qi <= right) & (ki < lens[b])

        flex = _flex(mask_mod, B, L) if DEV.type == "cuda" else None
        for dtype in dtypes:
            group = f"la-{shape.name}-{str(dtype)[6:]}"
            gen = torch.Generator(device=DEV).manual_seed(0)
            q, k, v = (torch.randn(B, H, L, D, device=DEV, dtype=dtype, generator=gen).requires_grad_()
                       for _ in range(3))
            dout = torch.randn(B, H, L, D, device=DEV, dtype=dtype, generator=gen) * row_mask
            providers = {"sdpa-band-mask": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)}
            if flex is not None:
                providers["flex-compiled"] = flex
            providers.update({f"pyvrel-{b}": (lambda q, k, v, b=b: ops.local_attention(
                q, k, v, w, q_lengths=lens, kv_lengths=lens, backend=b)) for b in backends})
            # float64 reference on a slice: first and last batch row (longest and shortest) x
            # first and last head (catches indexing errors, keeps the dense reference small)
            rows, heads = [0, B - 1], [0, H - 1]

            def cut(t):
                return t[rows][:, heads]

            sl = [cut(t.detach()).double().requires_grad_() for t in (q, k, v)]
            ref_out = ops.local_attention(*sl, w, q_lengths=lens[rows], kv_lengths=lens[rows], backend="reference")
            ref_grads = torch.autograd.grad(ref_out, sl, cut(dout).double())
            if DEV.type == "cuda":
                torch.cuda.empty_cache()
            tol_out, tol_grad = REL_TOL[dtype]
            anchor_out = None
            for name, fn in providers.items():
                out = fn(q, k, v)
                grads = torch.autograd.grad(out, (q, k, v), dout)
                rm = row_mask[rows]
                e_out = rel_err(cut(out.detach()) * rm, ref_out.detach() * rm)
                e_grad = max(rel_err(cut(g), r) for g, r in zip(grads, ref_grads))
                check = verdict(e_out < tol_out and e_grad < tol_grad,
                                f"rel err vs float64: out {e_out:.1e}, grads {e_grad:.1e}")
                if name == "sdpa-band-mask":
                    anchor_out = out.detach() * row_mask
                elif anchor_out is not None:
                    check += f"; vs SDPA {rel_err(out.detach() * row_mask, anchor_out):.1e}"

                def fwd():
                    with torch.no_grad():
                        fn(q, k, v)

                def fwd_bwd():
                    torch.autograd.grad(fn(q, k, v), (q, k, v), dout)

                if DEV.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                times = dict(fwd=bench(fwd, smoke), fwd_bwd=bench(fwd_bwd, smoke))
                peak = torch.cuda.max_memory_allocated() / 2**20 if DEV.type == "cuda" else float("nan")
                record(group, name, f"{check}; peak {peak:.0f} MiB", **times)
                del out, grads
            if DEV.type == "cuda":
                torch.cuda.empty_cache()


# ---- Seq-NMS -----------------------------------------------------------------------------------


def seq_nms_vs_cpp(smoke: bool) -> None:
    """The CUDA backend against the C++ backend on every host core (the anchor: no GPU Seq-NMS
    exists elsewhere); identical results checked first. Without a GPU only the C++ row runs."""
    from bench_seq_nms import synthetic_video

    for B, T, N in (shapes.GPU_SMOKE_SEQ_NMS if smoke else shapes.GPU_SEQ_NMS):
        videos = [synthetic_video(T, N, seed=s) for s in range(B)]
        boxes, scores = torch.stack([v[0] for v in videos]), torch.stack([v[1] for v in videos])
        group = f"seq_nms-{B}x{T}x{N}"
        cpp = ops.seq_nms(boxes, scores, backend="cpp")
        times = []
        for _ in range(1 if smoke else 3):
            t = time.perf_counter()
            ops.seq_nms(boxes, scores, backend="cpp")
            times.append((time.perf_counter() - t) * 1e3)
        record(group, f"C++ {torch.get_num_threads()} threads", fwd=sorted(times)[len(times) // 2])
        if DEV.type != "cuda" or not _ext.has_cuda_ext():
            continue
        gb, gs = boxes.to(DEV), scores.to(DEV)
        out = ops.seq_nms(gb, gs, backend="cuda")
        same = all(torch.equal(a.cpu(), b) for a, b in ((out.scores, cpp.scores), (out.sequence_id, cpp.sequence_id),
                                                         (out.box_index, cpp.box_index)))
        record(group, "pyvrel-cuda", verdict(same, f"= C++ backend ({cpp.box_index.shape[0]} tracklets)"),
               fwd=bench(lambda: ops.seq_nms(gb, gs, backend="cuda"), smoke))


# ---- summary -----------------------------------------------------------------------------------


def summary() -> None:
    """One table: a line per group, a column per provider (fwd / fwd+bwd ms), failed checks."""
    groups: dict[str, dict[str, dict]] = {}
    for r in ROWS:
        groups.setdefault(r["group"], {})[r["provider"]] = r
    print("\nSUMMARY (median ms; fwd / fwd+bwd; best anchor vs best pyvrel)", flush=True)
    for group, provs in groups.items():
        cells = []
        for p, r in provs.items():
            t = "/".join(f"{r[m]:.3f}" for m in ("fwd", "fwd_bwd") if m in r)
            cells.append(f"{p} {t or '-'}")
        best = {side: min((r.get("fwd_bwd", r.get("fwd", float("inf"))) for p, r in provs.items()
                           if p.startswith("pyvrel") == (side == "ours")), default=float("inf"))
                for side in ("ours", "anchor")}
        ratio = (f"pyvrel {best['anchor'] / best['ours']:.2f}x the anchor's speed"
                 if best["ours"] < float("inf") and best["anchor"] < float("inf") else "")
        fails = [f"{p}: {r['check']}" for p, r in provs.items() if "FAIL" in r["check"]]
        print(f"{group:34s} | {' | '.join(cells)} | {ratio}" + (f" | {'; '.join(fails)}" if fails else ""),
              flush=True)
    bad = sum("FAIL" in r["check"] for r in ROWS)
    print(f"CHECKS: {len(ROWS) - bad} ok, {bad} failed", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, one call; runs on the CPU too")
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if DEV.type == "cuda" else "CPU (Triton interpreter)"
    print(f"torch {torch.__version__}, {name}", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    section(boxes_vs_torchvision, args.smoke)
    section(local_attention_vs_anchors, args.smoke)
    section(seq_nms_vs_cpp, args.smoke)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(ROWS, f, indent=1)
    summary()


if __name__ == "__main__":
    main()
