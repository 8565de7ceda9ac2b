"""Rendering of ``train_bench.py``'s measurements into the Markdown results section."""

from __future__ import annotations

import math
from pathlib import Path

import benchlib as B

BATCH = 8
# Sampling arms of the quality phase: the project's default, an experiment, and the seed's shuffling.
# The first is today's default, the second the previous default (issue 13: no worse than it).
QUALITY_MODES = (("packed, shuffled (project default)", []),
                 ("padded, length-grouped (previous default)", ["--collator", "pad"]),
                 ("padded, plain shuffling", ["--collator", "pad", "--shuffle"]))


def _mfu(tokens_per_s: float, mean_len: float, dims: dict, peak_gflops: float) -> float:
    flops = B.train_flops_per_token(dims["matmul_params"], dims["n_layer"], dims["n_embd"], mean_len)
    return tokens_per_s * flops / (peak_gflops * 1e9)


def _variant_row(name: str, vs: list[dict], mean_len: float, dims: dict, peak: float) -> str:
    tps = B.median(v["tps"] for v in vs)
    pad = 1 - sum(v["real_tokens"] for v in vs) / sum(v["computed_tokens"] for v in vs)
    return (f"| variant: {name} (median per-pair {B.median(v['vs_candidate'] for v in vs):.2f}× candidate, "
            f"{B.median(v['vs_baseline'] for v in vs):.2f}× baseline) | {tps:.1f} | "
            f"{B.median(v['seconds'] / v['steps'] for v in vs):.2f} | {pad:.1%} | – | – | "
            f"{max(v['peak_rss_mb'] for v in vs):.0f} | {_mfu(tps, mean_len, dims, peak):.1%} |")


def _plain_row(ps: list[dict], mean_len: float, dims: dict, peak: float) -> str:
    tps = B.median(v["tps"] for v in ps)
    pad = 1 - sum(v["real_tokens"] for v in ps) / sum(v["computed_tokens"] for v in ps)
    prec = "bf16 autocast" if ps[0].get("bf16") else "fp32"
    return (f"| peer: plain Trainer + DataCollatorForLanguageModeling, padded, random order, {prec} (median per-pair "
            f"{B.median(1 / v['vs_candidate'] for v in ps):.2f}× slower than the candidate, "
            f"{B.median(v['vs_baseline'] for v in ps):.2f}× baseline) | {tps:.1f} | "
            f"{B.median(v['seconds'] / v['steps'] for v in ps):.2f} | {pad:.1%} | – | – | "
            f"{max(v['peak_rss_mb'] for v in ps):.0f} | {_mfu(tps, mean_len, dims, peak):.1%} |")


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def render(a, r: dict, n_train: int, steps: int) -> str:
    peak = max(r["peaks"]) if r["peaks"] else float("nan")
    bf16_peaks = [w.get("matmul_gflops_bf16") for pair in r["pairs"] for w in pair if w.get("matmul_gflops_bf16")]
    peak_bf16 = max(bf16_peaks) if bf16_peaks else None
    lines = [f"## Training ({'tiny' if a.tiny else a.model} model)", "",
             f"Command: `{B.command_line()}`  ", f"Machine: {B.machine_line(a.threads)}  ",
             f"Data: `{Path(a.data).name if a.data != 'sample' else 'bundled sample'}` ({n_train} training rows); "
             f"batch 8; {steps} optimizer steps per arm per pair"
             f"{' (one full epoch)' if steps == math.ceil(n_train / BATCH) else f' ({steps * BATCH}-row subset)'}; "
             f"{len(r['pairs'])} interleaved pairs, each arm a fresh process.  ",
             f"Allocator: the candidate runs as the CLI and app launch it "
             f"({r.get('candidate_allocator', 'glibc malloc')}); the seed loop and the plain Trainer as a notebook "
             f"runs them (glibc malloc).  ",
             f"fp32 matmul peak (torch, {a.matmul_n}² matrices, {a.threads} threads, best seen in this run): "
             f"**{peak:.0f} GFLOP/s**", ""]
    targets = []
    full_epoch = steps == math.ceil(n_train / BATCH)
    if r["pairs"]:
        bs, cs = [p[0] for p in r["pairs"]], [p[1] for p in r["pairs"]]
        ratios = [c["tps"] / b["tps"] for b, c in r["pairs"]]
        dims = {k: bs[0][k] for k in ("matmul_params", "n_layer", "n_embd")}
        mean_len = bs[0]["mean_len"] + 1  # the candidate adds the EOS
        b0 = bs[0]
        base_epoch = math.ceil(b0["train_rows_full"] / BATCH) * B.median(b["seconds"] / b["steps"] for b in bs)
        base_note = ("measured train + measured eval" if full_epoch else
                     f"{math.ceil(b0['train_rows_full'] / BATCH)} steps × median step + measured eval")
        if "eval_seconds_per_batch" in b0:
            base_epoch += b0["eval_seconds_per_batch"] * b0["val_batches"]
        e = r.get("epoch")
        cand_epoch = cand_overhead = None
        if e:  # the last epoch of a multi-epoch run: checkpoint of the one before + train + eval + saves
            steady = e["epochs"][-1]
            cand_epoch = steady["wall_seconds"]
            cand_overhead = 1 - steady["train_seconds"] / steady["wall_seconds"]
            epoch_note = f"measured, epoch {steady['epoch']} of a {len(e['epochs'])}-epoch run"
        elif full_epoch:  # each pair's candidate ran one whole epoch of the real path
            cand_epoch = B.median(c["epochs"][0]["wall_seconds"] for c in cs)
            cand_overhead = B.median(1 - c["epochs"][0]["train_seconds"] / c["epochs"][0]["wall_seconds"] for c in cs)
            epoch_note = "measured, median of the pairs' epochs"
        b_tps, c_tps = B.median(b["tps"] for b in bs), B.median(c["tps"] for c in cs)
        b_pad = 1 - sum(b["real_tokens"] for b in bs) / sum(b["computed_tokens"] for b in bs)
        c_pad_src = [e] if e and not full_epoch else cs
        c_pad = 1 - sum(c["real_tokens"] for c in c_pad_src) / sum(c["computed_tokens"] for c in c_pad_src)
        c_rss = max(c["peak_rss_mb"] for c in cs + ([e] if e else []))
        b_mfu, c_mfu = _mfu(b_tps, mean_len - 1, dims, peak), _mfu(c_tps, mean_len, dims, peak)
        lines += ["| arm | real tokens/s (median) | s per optimizer step | padded share of computed tokens | "
                  "s per epoch incl. eval + checkpoint | eval + checkpoint share | peak RSS MB | MFU |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| seed loop (baseline) | {b_tps:.1f} | {B.median(b['seconds'] / b['steps'] for b in bs):.2f} | "
                  f"{b_pad:.1%} | {base_epoch:.0f} ({base_note}; no checkpoint) | – | "
                  f"{max(b['peak_rss_mb'] for b in bs):.0f} | {b_mfu:.1%} |",
                  f"| symptomgen trainer (candidate) | {c_tps:.1f} | "
                  f"{B.median(c['seconds'] / c['steps'] for c in cs):.2f} | {c_pad:.1%} | "
                  + (f"{cand_epoch:.1f} ({epoch_note})" if cand_epoch else "–")
                  + f" | {'–' if cand_overhead is None else f'{cand_overhead:.1%}'} | {c_rss:.0f} | {c_mfu:.1%} |",
                  *[_variant_row(name, vs, mean_len, dims, peak) for name, vs in r.get("variants", {}).items()],
                  *([_plain_row(r["plain"], mean_len, dims, peak)] if r.get("plain") else []),
                  "", "Per-pair real-token throughput ratio (candidate / baseline): "
                  + ", ".join(f"{x:.2f}" for x in ratios) + f"; **median {B.median(ratios):.2f}×**.  ",
                  *(["Per-pair ratio candidate / plain Trainer: "
                     + ", ".join(f"{1 / v['vs_candidate']:.2f}" for v in r["plain"])
                     + f"; **median {B.median(1 / v['vs_candidate'] for v in r['plain']):.2f}×**.  "]
                    if r.get("plain") else []),
                  "Minor page faults per optimizer step (training only): candidate "
                  + ", ".join(f"{c['minor_faults_per_step']:.0f}" for c in cs if c.get("minor_faults_per_step"))
                  + ("; plain Trainer " + ", ".join(f"{v['minor_faults_per_step']:.0f}" for v in r["plain"])
                     if r.get("plain") else "") + ".  ",
                  f"MFU = real tokens/s × (6 × {dims['matmul_params'] / 1e6:.1f} M matmul parameters + "
                  f"6 × {dims['n_layer']} layers × {mean_len:.1f} mean tokens × {dims['n_embd']}) / peak.  ",
                  *([f"bf16 matmul peak measured the same way: {peak_bf16:.0f} GFLOP/s; against it the candidate's "
                     f"MFU is {_mfu(c_tps, mean_len, dims, peak_bf16):.1%} (it trains under bf16 autocast, so the "
                     "fp32 peak understates what this CPU can do).  "] if peak_bf16 else []),
                  f"Baseline loss (incl. padding) first → last step: {b0['loss_first']:.2f} → "
                  f"{b0['loss_last']:.2f}.", ""]
        if e:
            lines += ["Real-trainer epochs (full training split):", "",
                      B.markdown_table(["epoch", "train s", "wall s (train + eval + best save + checkpoint)",
                                        "val loss", "best"],
                                       [[p["epoch"], p["train_seconds"], p["wall_seconds"], p["val_loss"],
                                         p["is_best"]] for p in e["epochs"]]),
                      "", "Evaluation s per epoch: " + ", ".join(f"{x:.1f}" for x in e["eval_seconds"])
                      + "; best-model save s: " + ", ".join(f"{x:.1f}" for x in e["save_best_seconds"])
                      + "; Trainer checkpoint s: " + ", ".join(f"{x:.1f}" for x in e["checkpoint_seconds"]) + ".", ""]
        c_mfu_bf16 = _mfu(c_tps, mean_len, dims, peak_bf16) if peak_bf16 else None
        targets += [("real-token throughput ≥ 10× seed loop (median per-pair ratio)", f"{B.median(ratios):.2f}×",
                     B.median(ratios) >= 10),
                    ("MFU ≥ 50% of the measured bf16 matmul peak",
                     "–" if c_mfu_bf16 is None else f"{c_mfu_bf16:.1%} (fp32 peak: {c_mfu:.1%})",
                     None if c_mfu_bf16 is None else c_mfu_bf16 >= 0.5),
                    ("padding ≤ 1% of computed tokens", f"{c_pad:.1%}", c_pad <= 0.01),
                    ("eval + checkpoint ≤ 10% of epoch time",
                     "–" if cand_overhead is None else f"{cand_overhead:.1%}",
                     None if cand_overhead is None else cand_overhead <= 0.10),
                    ("peak RSS while training ≤ 3 GB", f"{c_rss / 1024:.2f} GB", c_rss <= 3 * 1024)]
    if r.get("quality"):
        qs = r["quality"]
        rows, by_seed = [], {}
        for mode, _ in QUALITY_MODES:
            sel = [q for q in qs if q["mode"] == mode]
            if not sel:
                continue
            by_seed[mode] = {q["seed"]: q["best_val_loss"] for q in sel}
            pad = 1 - sum(q["real_tokens"] for q in sel) / sum(q["computed_tokens"] for q in sel)
            rows.append([mode, len(sel[0]["epochs"]), len(sel), f"{pad:.1%}", B.median(q["best_val_loss"] for q in sel),
                         B.median(q["epochs"][-1]["val_loss"] for q in sel),
                         B.median(sum(e["val_loss"] for e in q["epochs"]) / len(q["epochs"]) for q in sel),
                         B.median(q["seconds"] for q in sel)])
        default, shuffled = QUALITY_MODES[0][0], QUALITY_MODES[1][0]
        diffs = [by_seed[default][sd] - by_seed[shuffled][sd] for sd in by_seed.get(default, {})
                 if sd in by_seed.get(shuffled, {})]
        lr = f", learning rate {a.quality_lr:g}" if a.quality_lr else ""
        lines += [f"Length grouping vs plain shuffling (scratch model {a.quality_epochs if not a.tiny else 1} "
                  f"epochs{lr}, "
                  "same split, seeds and number of steps; best = the epoch the run keeps):", "",
                  B.markdown_table(["sampling", "epochs", "seeds", "padded share", "best val loss (median)",
                                    "final val loss (median)", "mean val loss over epochs (median)",
                                    "train s (median)"], rows), "",
                  "Best val loss, packed default − previous default (padded, grouped), per seed: "
                  + ", ".join(f"{d:+.4f}" for d in diffs) + ".", ""]
        if diffs:
            targets.append(("best val loss no worse than the previous default (median per-seed difference)",
                            f"{B.median(diffs):+.4f}", B.median(diffs) <= 0))
    if targets:
        lines += ["Targets (issue 13):", "", B.markdown_table(["target", "measured", "verdict"],
                                                             [[t, m, _verdict(ok)] for t, m, ok in targets]), ""]
    if a.note:
        lines += [a.note, ""]
    return "\n".join(lines)
