#!/usr/bin/python3
"""Cross-checks ClipSharp at the image resolutions the reference CLIP accepts although they are not multiples of 32
(modified ResNet) or of the patch (ViT), against PyTorch.

The image towers are re-built here with torch.nn layers from the paper's description of CLIP's two towers:
- the modified ResNet: a stem of three 3x3 convolutions (the first with stride 2) and a 2x2 average pool, four stages
  of bottlenecks whose stride-2 blocks down-sample with a 2x2 average pool (before conv3 and on the shortcut), and an
  attention pool in which the spatial mean, with (resolution // 32)^2 + 1 learned positions, queries the grid;
- the Vision Transformer: a stride-p p x p patch convolution, a class token, (resolution // p)^2 + 1 learned positions,
  ln_pre, the transformer, ln_post on the class token and a projection.
The convolutions and pools floor as torch's do, which is what decides the grid at these resolutions. Each model gets
random weights (non-trivial norms and BatchNorm statistics), is saved with torch.save, and `./clip encode` runs on it
with its config; image and text embeddings must be within 1e-5 of PyTorch's, relative to PyTorch's largest. Configs at
which the reference's forward fails must be refused by `./clip encode` with one line naming image_resolution.
Installs Debian's python3-torch when missing. Usage: scripts/crosscheck-reference-limits.py [WORKDIR]
"""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian_torch

debian_torch.require()

import torch
import torch.nn as nn
import torch.nn.functional as F
from crosscheck_common import ROOT, Clip, QuickGELU, Stack, TOLERANCE, clip_encode, perturb, relative_error, token_ids

TEXT = {"context_length": 77, "vocab_size": 512, "transformer_width": 64, "transformer_heads": 1, "transformer_layers": 1}


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> [2x2 average pool when strided] -> 1x1 (4x wider), with a pooled 1x1 shortcut when shapes change."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = None
        if stride > 1 or inplanes != planes * 4:
            # Keys downsample.0 (conv) and downsample.1 (BN); the parameter-free pool in front is named "-1".
            self.downsample = nn.Sequential()
            self.downsample.add_module("-1", nn.AvgPool2d(stride))
            self.downsample.add_module("0", nn.Conv2d(inplanes, planes * 4, 1, bias=False))
            self.downsample.add_module("1", nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.pool(F.relu(self.bn2(self.conv2(y))))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class AttentionPool(nn.Module):
    def __init__(self, grid, width, heads, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) / width ** 0.5)
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(width, width) for _ in range(3))
        self.c_proj = nn.Linear(width, out)
        self.heads = heads

    def forward(self, x):  # [N, C, H, W]
        x = x.flatten(2).permute(2, 0, 1)                       # [HW, N, C]
        x = torch.cat([x.mean(0, keepdim=True), x]) + self.positional_embedding[:, None, :]
        out, _ = F.multi_head_attention_forward(
            x[:1], x, x, x.shape[-1], self.heads,
            in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias, training=False, need_weights=False,
            use_separate_proj_weight=True, q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight)
        return out[0]


class ResNetTower(nn.Module):
    def __init__(self, layers, out, heads, resolution, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        inplanes = width
        for i, (blocks, stride) in enumerate(zip(layers, [1, 2, 2, 2])):
            planes = width << i
            stage = [Bottleneck(inplanes, planes, stride)] + [Bottleneck(planes * 4, planes, 1) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            inplanes = planes * 4
        self.attnpool = AttentionPool(resolution // 32, width * 32, heads, out)

    def forward(self, x):
        for conv, bn in [(self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)]:
            x = F.relu(bn(conv(x)))
        x = F.avg_pool2d(x, 2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


class VitTower(nn.Module):
    def __init__(self, resolution, patch, width, layers, heads, out):
        super().__init__()
        grid, s = resolution // patch, width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * s)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) * s)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Stack(width, layers, heads, 4 * width, QuickGELU)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, out) * s)

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)          # [N, grid², W]
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], 1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj


def build(cfg):
    """A CLIP from the reference constructor arguments; heads are derived as the reference derives them."""
    e = cfg["embed_dim"]
    if cfg["vision_patch_size"] is None:
        visual = ResNetTower(cfg["vision_layers"], e, cfg["vision_width"] * 32 // 64, cfg["image_resolution"], cfg["vision_width"])
    else:
        visual = VitTower(cfg["image_resolution"], cfg["vision_patch_size"], cfg["vision_width"], cfg["vision_layers"],
                          cfg["vision_width"] // 64, e)
    w = cfg["transformer_width"]
    return Clip(visual, e, cfg["context_length"], cfg["vocab_size"], w, cfg["transformer_heads"], cfg["transformer_layers"], 4 * w, QuickGELU)


def resnet(resolution):
    return {"embed_dim": 32, "image_resolution": resolution, "vision_layers": [2, 1, 1, 1], "vision_width": 16,
            "vision_patch_size": None, **TEXT}


def vit(resolution, patch):
    return {"embed_dim": 32, "image_resolution": resolution, "vision_layers": 2, "vision_width": 128,
            "vision_patch_size": patch, **TEXT}


# 48, 80: even, not multiples of 32; 72, 100: even, the stage maps reach odd sides; 101: odd input (the stem rounds up);
# 31: the smallest the reference runs (its single position row is broadcast over the mean token and the 1x1 grid).
MODELS = [(f"rn-{r}px", resnet(r)) for r in (48, 80, 72, 100, 101, 31)] + [
    ("vit-70px-patch16", vit(70, 16)), ("vit-50px-patch7", vit(50, 7)), ("vit-16px-patch16", vit(16, 16))]


# Where the reference itself fails, ClipSharp must refuse the config with one clear line instead.
# 30: the last stride-2 stage's average pool gets a 1x1 map; 63, 95: the grid is one wider than image_resolution // 32
# (the stem rounds up) so the positions do not add; 15 px with patch 16: the kernel is larger than the image.
REFUSED = [(f"rn-{r}px", resnet(r)) for r in (30, 63, 95)] + [("vit-15px-patch16", vit(15, 16))]


def check_refused(work, name, cfg):
    torch.manual_seed(0)
    model = build(cfg).eval()
    r = cfg["image_resolution"]
    try:
        with torch.no_grad():
            model.visual(torch.randn(1, 3, r, r))
        return f"{name}: PyTorch ran it (expected the reference to fail)"
    except RuntimeError as e:
        reference = str(e).splitlines()[0]
    path = os.path.join(work, name + ".pt")
    torch.save(model.state_dict(), path)
    config = os.path.join(work, name + ".json")
    with open(config, "w") as f:
        json.dump(cfg, f)
    p = subprocess.run([os.path.join(ROOT, "clip"), "encode", "--model", path, "--config", config,
                        "--texts", "a", "-o", os.path.join(work, "refused.safetensors")], capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    if p.returncode == 0 or len(lines) != 1 or "image_resolution" not in lines[0]:
        return f"{name}: ClipSharp did not refuse it with one line (exit {p.returncode}): {p.stderr.strip()}"
    print(f"{name}: PyTorch fails ({reference}); ClipSharp refuses: {lines[0]}", flush=True)
    return None


def sweep():
    """The reference's own limits over 1..160 px, against the rule ClipSharp's ClipConfig.Validate enforces (its tests
    check Validate against the same rule): a ResNet runs at 31 px and from 32 px unless r % 32 == 31; a ViT from one patch."""
    wrong = []
    for r in range(1, 161):
        for name, cfg, rule in [("ResNet", resnet(r), r == 31 or (r >= 32 and r % 32 != 31)), ("ViT patch 16", vit(r, 16), r >= 16)]:
            torch.manual_seed(0)
            tower = build(cfg | {"vision_width": 8 if name == "ResNet" else 64, "vision_layers": [1, 1, 1, 1] if name == "ResNet" else 1}).visual.eval()
            try:
                with torch.no_grad():
                    tower(torch.randn(1, 3, r, r))
                runs = True
            except RuntimeError:
                runs = False
            if runs != rule: wrong.append(f"{name} at {r} px: the reference {'runs' if runs else 'fails'}")
    print(f"sweep 1..160 px: the reference runs exactly where ClipSharp's rule accepts" if not wrong else "sweep: " + "; ".join(wrong), flush=True)
    return wrong


def main():
    work = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="limits-crosscheck-")
    os.makedirs(work, exist_ok=True)
    worst = 0.0
    for seed, (name, cfg) in enumerate(MODELS):
        torch.manual_seed(seed)
        model = build(cfg)
        perturb(model)
        model.eval()
        path = os.path.join(work, name + ".pt")
        torch.save(model.state_dict(), path)
        config = os.path.join(work, name + ".json")
        with open(config, "w") as f:
            json.dump(cfg, f)
        r = cfg["image_resolution"]
        pixels = torch.randn(3, 3, r, r)
        ids = token_ids(3, cfg["context_length"], cfg["vocab_size"])
        with torch.no_grad():
            img, txt = model.visual(pixels), model.encode_text(ids)
        ours = clip_encode(work, path, pixels, ids, ["--config", config])
        errs = {k: relative_error(ours[k], ref) for k, ref in [("image_embeds", img), ("text_embeds", txt)]}
        worst = max(worst, *errs.values())
        print(f"{name}: image {errs['image_embeds']:.2e}, text {errs['text_embeds']:.2e} "
              f"(max |ClipSharp - PyTorch| / max |PyTorch|)", flush=True)
    failures = [f for f in (check_refused(work, name, cfg) for name, cfg in REFUSED) if f] + sweep()
    for f in failures: print(f)
    ok = worst < TOLERANCE and not failures
    print(f"worst {worst:.2e}: {'OK' if ok else 'MISMATCH'} (tolerance {TOLERANCE:g})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
