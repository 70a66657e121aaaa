using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

#pragma warning disable IDE1006 // snake_case fields are the state_dict keys

/// <summary>
/// ResNet bottleneck with anti-aliased downsampling: conv1 1×1, conv2 3×3, AvgPool(stride) when stride &gt; 1,
/// conv3 1×1 (expansion 4); the shortcut is AvgPool(stride) → 1×1 conv → BN when the shape changes.
/// </summary>
internal sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly Sequential? downsample;
    private readonly int stride;
    private readonly ConvBn f1, f2, f3;
    private readonly ConvBn? fd;

    /// <summary>Creates the block.</summary>
    public Bottleneck(int inplanes, int planes, int stride) : base(nameof(Bottleneck))
    {
        this.stride = stride;
        conv1 = nn.Conv2d(inplanes, planes, 1, bias: false);
        bn1 = nn.BatchNorm2d(planes);
        conv2 = nn.Conv2d(planes, planes, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(planes);
        conv3 = nn.Conv2d(planes, planes * 4, 1, bias: false);
        bn3 = nn.BatchNorm2d(planes * 4);
        if (stride > 1 || inplanes != planes * 4)
        {
            // The reference names the pool "-1" so the conv and BN keep the indices 0 and 1.
            downsample = nn.Sequential(
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, planes * 4, 1, stride: 1, bias: false)),
                ("1", nn.BatchNorm2d(planes * 4)));
        }
        RegisterComponents();
        f1 = new ConvBn(conv1, bn1);
        f2 = new ConvBn(conv2, bn2);
        f3 = new ConvBn(conv3, bn3);
        if (downsample is not null)
        {
            var parts = downsample.children().ToList();
            fd = new ConvBn((Conv2d)parts[1], (BatchNorm2d)parts[2]);
        }
    }

    internal IEnumerable<ConvBn> ConvBns => fd is null ? [f1, f2, f3] : [f1, f2, f3, fd];

    internal void InvalidateFolds()
    {
        f1.Invalidate(); f2.Invalidate(); f3.Invalidate(); fd?.Invalidate();
    }

    /// <summary>The last BatchNorm of the residual branch.</summary>
    public BatchNorm2d Bn3 => bn3;

    /// <inheritdoc />
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        // In-place ReLUs and residual add: the convolution and BatchNorm backward passes need their inputs, not their
        // outputs, and ReLU's backward needs only its own output.
        var o = f1.Forward(x, training).relu_();
        o = f2.Forward(o, training).relu_();
        if (stride > 1) o = F.avg_pool2d(o, stride);
        o = f3.Forward(o, training);
        var identity = fd is null ? x : fd.Forward(stride > 1 ? F.avg_pool2d(x, stride) : x, training);
        return o.add_(identity, TorchScalars.One).relu_().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Attention pooling: flatten H×W, prepend the spatial mean, add positional embeddings, and let the mean
/// token alone attend over all tokens (separate q/k/v projections with biases, output projection c_proj).
/// </summary>
internal sealed class AttentionPool2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter positional_embedding;
    private readonly Linear k_proj, q_proj, v_proj, c_proj;
    private readonly long heads;

    /// <summary>Creates the pool for a spatial grid of side <paramref name="spatialDim"/>.</summary>
    public AttentionPool2d(int spatialDim, int embedDim, int heads, int outputDim) : base("attnpool")
    {
        this.heads = heads;
        using Scalar root = Math.Sqrt(embedDim).ToScalar();
        using var draw = torch.randn(spatialDim * spatialDim + 1, embedDim); // held: no dispose scope here (see VisionTransformer)
        positional_embedding = nn.Parameter(draw.div(root));
        k_proj = nn.Linear(embedDim, embedDim);
        q_proj = nn.Linear(embedDim, embedDim);
        v_proj = nn.Linear(embedDim, embedDim);
        c_proj = nn.Linear(embedDim, outputDim);
        RegisterComponents();
    }

    /// <summary>The four projections, for the reference initialisation.</summary>
    internal IEnumerable<Linear> Projections => [q_proj, k_proj, v_proj, c_proj];

    /// <summary>x: [N, C, H, W] → [N, output_dim].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0], c = x.shape[1];
        var tokens = x.flatten(2).permute(0, 2, 1);                      // [N, HW, C]
        tokens = torch.cat([tokens.mean([1], keepdim: true), tokens], 1); // [N, HW+1, C]
        tokens = tokens.add(positional_embedding.to(tokens.dtype), TorchScalars.One);
        long l = tokens.shape[1], hd = c / heads;
        var q = q_proj.forward(tokens.narrow(1, 0, 1)).view(n, 1, heads, hd).transpose(1, 2);
        var k = k_proj.forward(tokens).view(n, l, heads, hd).transpose(1, 2);
        var v = v_proj.forward(tokens).view(n, l, heads, hd).transpose(1, 2);
        var o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, c);
        return c_proj.forward(o).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// CLIP's modified ResNet: a three-convolution stem with an average pool instead of a max pool,
/// anti-aliased bottlenecks, and attention pooling instead of global average pooling.
/// </summary>
public sealed class ModifiedResNet : ImageTower
{
    private readonly Conv2d conv1, conv2, conv3;
    private readonly BatchNorm2d bn1, bn2, bn3;
    private readonly Sequential layer1, layer2, layer3, layer4;
    private readonly AttentionPool2d attnpool;
    private readonly int resolution;
    private readonly ConvBn s1, s2, s3;

    /// <summary>Builds the tower.</summary>
    public ModifiedResNet(int[] layers, int outputDim, int heads, int inputResolution, int width) : base("visual")
    {
        resolution = inputResolution;
        conv1 = nn.Conv2d(3, width / 2, 3, stride: 2, padding: 1, bias: false);
        bn1 = nn.BatchNorm2d(width / 2);
        conv2 = nn.Conv2d(width / 2, width / 2, 3, padding: 1, bias: false);
        bn2 = nn.BatchNorm2d(width / 2);
        conv3 = nn.Conv2d(width / 2, width, 3, padding: 1, bias: false);
        bn3 = nn.BatchNorm2d(width);
        int inplanes = width;
        Sequential Stage(int planes, int blocks, int stride)
        {
            var mods = new List<(string, nn.Module<Tensor, Tensor>)> { ("0", new Bottleneck(inplanes, planes, stride)) };
            inplanes = planes * 4;
            for (int i = 1; i < blocks; i++) mods.Add((i.ToString(), new Bottleneck(inplanes, planes, 1)));
            return nn.Sequential(mods);
        }
        layer1 = Stage(width, layers[0], 1);
        layer2 = Stage(width * 2, layers[1], 2);
        layer3 = Stage(width * 4, layers[2], 2);
        layer4 = Stage(width * 8, layers[3], 2);
        // As the reference: (resolution // 32)² + 1 positions. The stem convolution rounds odd sides up and every 2×2
        // average pool (stem, anti-aliased bottlenecks, shortcuts) rounds down, so the grid reaching the pool is
        // ClipConfig.ResNetGrid(resolution), which equals resolution // 32 except when resolution % 32 == 31.
        attnpool = new AttentionPool2d(inputResolution / 32, width * 32, heads, outputDim);
        RegisterComponents();
        s1 = new ConvBn(conv1, bn1);
        s2 = new ConvBn(conv2, bn2);
        s3 = new ConvBn(conv3, bn3);
    }

    /// <inheritdoc />
    public override int InputResolution => resolution;

    /// <inheritdoc />
    public override void InvalidateCaches()
    {
        s1.Invalidate(); s2.Invalidate(); s3.Invalidate();
        foreach (var layer in new[] { layer1, layer2, layer3, layer4 })
            foreach (var block in layer.children()) ((Bottleneck)block).InvalidateFolds();
    }

    /// <summary>
    /// How every BatchNorm of the tower normalises in training mode (null, the default: over this process's batch,
    /// as <c>BatchNorm2d</c> does). Eval mode always uses the running statistics.
    /// </summary>
    internal TrainingBatchNorm? TrainingNorm
    {
        get => s1.Normalise;
        set
        {
            foreach (var c in new[] { s1, s2, s3 }.Concat(new[] { layer1, layer2, layer3, layer4 }.SelectMany(l => l.children()).SelectMany(b => ((Bottleneck)b).ConvBns)))
                c.Normalise = value;
        }
    }

    /// <summary>The BatchNorm that closes each bottleneck (bn3), zero-initialised by the reference.</summary>
    public IEnumerable<BatchNorm2d> ResidualBranchNorms =>
        new[] { layer1, layer2, layer3, layer4 }.SelectMany(l => l.children()).Select(b => ((Bottleneck)b).Bn3);

    /// <summary>The attention pool (its projections get a special initialisation).</summary>
    internal AttentionPool2d AttnPool => attnpool;

    /// <inheritdoc />
    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        // Each step releases the previous activation as soon as it is consumed (autograd keeps what it saved), and the
        // ReLUs work in place, as torchvision's do: at batch 32 the stem alone would otherwise hold ~400 MB to the end.
        var x = s1.Forward(pixels, training).relu_();
        x = Then(x, s2.Forward(x, training).relu_());
        x = Then(x, s3.Forward(x, training).relu_());
        x = Then(x, F.avg_pool2d(x, 2));
        Report("visual.stem.out", x);
        x = Then(x, RunStage(layer1, x, "visual.layer1.out"));
        x = Then(x, RunStage(layer2, x, "visual.layer2.out"));
        x = Then(x, RunStage(layer3, x, "visual.layer3.out"));
        x = Then(x, RunStage(layer4, x, "visual.layer4.out"));
        var pooled = attnpool.forward(x);
        Report("visual.attnpool.out", pooled);
        return pooled.MoveToOuterDisposeScope();
    }

    /// <summary>Disposes <paramref name="consumed"/> (unless a probe holds intermediates) and returns <paramref name="next"/>.</summary>
    private Tensor Then(Tensor consumed, Tensor next)
    {
        if (Probe is null && !ReferenceEquals(consumed, next)) consumed.Dispose();
        return next;
    }

    private Tensor RunStage(Sequential stage, Tensor x, string probeName)
    {
        var input = x;
        foreach (var block in stage.children())
        {
            Tensor next;
            using (NewDisposeScope()) next = ((nn.Module<Tensor, Tensor>)block).forward(x).MoveToOuterDisposeScope();
            if (!ReferenceEquals(x, input)) x.Dispose();
            x = next;
        }
        Report(probeName, x);
        return x;
    }
}
