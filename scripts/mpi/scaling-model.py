#!/usr/bin/python3
"""The cost model of docs/training.md's "Scaling" section: per-step communication of data-parallel CLIP training and
the projected step time and efficiency on W nodes, printed as Markdown tables.

    scripts/mpi/scaling-model.py [--demo-compute-ms MS] [--b32-compute-ms MS]

Each step moves the gradient sum (a ring all-reduce: every rank sends and receives 2(W-1)/W x G bytes, in one call per
bucket, each with 2(W-1) latency-bound steps) and the feature all-gathers (every rank receives (W-1) x n x D x 4 bytes
for the image and again for the text features). Nodes are assumed to compute as this machine's ranks did (the compute
time per step is measured, one rank, one thread, its share n of the batch) and the weak-scaling case is modelled:
n pairs per rank, the global batch W x n. What grows with W besides communication is the loss: with the default
loss every rank computes all N x N logits (forward and backward: 6 N^2 D flops), with distributed.local_loss only its
n x N rows against the images and the texts (12 n N D flops). Efficiency is the compute of one rank with W = 1
divided by the step time, without overlap (what overlap can hide at most is the backward pass, about two thirds of
the compute).
"""
import argparse

MB = 1e6


def block(w):  # a residual attention block: in_proj, out_proj, two LayerNorms, a 4x MLP
    return 3 * w * w + 3 * w + w * w + w + 4 * w + w * 4 * w + 4 * w + 4 * w * w + w


def vit(res, patch, width, layers, embed):
    grid = (res // patch) ** 2 + 1
    return 3 * patch * patch * width + width + grid * width + 2 * width + layers * block(width) + 2 * width + width * embed


def text(vocab, ctx, width, layers, embed):
    return vocab * width + ctx * width + layers * block(width) + 2 * width + width * embed


MODELS = {
    # name: (parameters, embedding width D, pairs per rank n, all-reduce calls per step with 25 MiB buckets)
    "demo": (vit(64, 8, 128, 4, 128) + text(4514, 32, 128, 4, 128) + 1, 128, 64, 1),
    "ViT-B/32": (vit(224, 32, 768, 12, 512) + text(49408, 77, 512, 12, 512) + 1, 512, 4, 27),
}

LINKS = {  # name: (bytes/s, latency per message in s) -- latencies assumed: TCP over Ethernet, RDMA over InfiniBand
    "10 Gb/s": (10e9 / 8, 25e-6),
    "100 Gb/s": (100e9 / 8, 2e-6),
}


def allreduce_s(grad_bytes, calls, w, bw, lat):
    return 2 * (w - 1) / w * grad_bytes / bw + calls * 2 * (w - 1) * lat


def allgather_s(n, d, w, bw, lat):
    return 2 * ((w - 1) * n * d * 4 / bw + (w - 1) * lat)  # image and text features


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo-compute-ms", type=float, required=True, help="demo model: ms per step of one rank (64 pairs, 1 thread)")
    ap.add_argument("--b32-compute-ms", type=float, required=True, help="ViT-B/32: ms per step of one rank (4 pairs, 1 thread)")
    ap.add_argument("--gflops", type=float, default=134, help="one thread's GFLOP/s in training (default: half the 2-thread training row of docs/benchmarks.md)")
    a = ap.parse_args()
    compute = {"demo": a.demo_compute_ms / 1e3, "ViT-B/32": a.b32_compute_ms / 1e3}
    print("| model | parameters | gradient bytes G | features gathered per rank and step (W ranks) | start-up broadcast |")
    print("| --- | --- | --- | --- | --- |")
    for name, (p, d, n, calls) in MODELS.items():
        print(f"| {name} | {p:,} | {p * 4 / MB:.2f} MB | (W−1) × {2 * n * d * 4 / 1e3:.1f} kB ({n} pairs × D = {d}, image and text) | "
              f"{3 * p * 4 / MB:.0f} MB (weights and two AdamW moments) |")
    print()
    for name, (p, d, n, calls) in MODELS.items():
        tc = compute[name]
        print(f"{name}: compute {tc * 1e3:.0f} ms per step and rank ({n} pairs), {calls} all-reduce(s) per step")
        print()
        print("| nodes W | global batch | all-reduce + all-gather at " + " / ".join(LINKS) + " | loss: default / local_loss | "
              + " | ".join(f"{l}: step, efficiency (default / local_loss)" for l in LINKS) + " |")
        print("| --- | --- | --- | --- | " + " | ".join("---" for _ in LINKS) + " |")
        for w in (2, 4, 8, 16, 32, 64):
            big_n = w * n
            loss = (6 * big_n ** 2 * d / (a.gflops * 1e9), 12 * n * big_n * d / (a.gflops * 1e9))
            own = 6 * n ** 2 * d / (a.gflops * 1e9)  # the loss already inside the measured compute (W = 1)
            comms, cells = [], []
            for bw, lat in LINKS.values():
                comm = allreduce_s(p * 4, calls, w, bw, lat) + allgather_s(n, d, w, bw, lat)
                comms.append(f"{comm * 1e3:.0f}")
                steps = [tc - own + extra + comm for extra in loss]
                cells.append(f"{steps[0] * 1e3:.0f} ms, {tc / steps[0] * 100:.0f} % / {steps[1] * 1e3:.0f} ms, {tc / steps[1] * 100:.0f} %")
            print(f"| {w} | {big_n} | {' / '.join(comms)} ms | {loss[0] * 1e3:.0f} / {loss[1] * 1e3:.0f} ms | " + " | ".join(cells) + " |")
        print()
    p = MODELS["demo"][0]
    print("tc check, demo model, W = 2, all-reduce per step (model, latency left out):")
    for label, bits in (("1 Gbit/s", 1e9), ("100 Mbit/s", 1e8)):
        print(f"  {label}: {allreduce_s(p * 4, 1, 2, bits / 8, 0) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
