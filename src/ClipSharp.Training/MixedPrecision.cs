using ClipSharp.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Training;

/// <summary>Arithmetic used for the forward and backward passes of training.</summary>
public enum TrainPrecision
{
    /// <summary>Everything in float32.</summary>
    Fp32,
    /// <summary>bfloat16 matrix products and convolutions, float32 master weights, optimiser state, norms and loss.</summary>
    Bf16,
}

/// <summary>
/// bfloat16 mixed-precision training without autocast. The trained <see cref="ClipModel"/> keeps float32 master
/// weights (so the optimiser, its moments, checkpoints, validation and exports are unchanged); a second model of the
/// same architecture holds the compute copies: every linear layer, attention projection, the patch convolution and
/// the token embedding in bfloat16 (<see cref="ClipModel.UseBFloat16Weights"/>), everything else (LayerNorm, class
/// and positional embeddings, projections, logit_scale) in float32. Before each forward/backward the masters are
/// copied into the compute copies (rounded to bf16); afterwards the compute copies' gradients are cast to float32
/// and accumulated onto the masters' <c>.grad</c>. LayerNorm statistics are computed in float32
/// (<see cref="ClipLayerNorm"/>), libtorch's CPU scaled-dot-product attention accumulates its bf16 softmax in
/// float32, and features, logits and the loss are float32.
/// </summary>
internal sealed class MixedPrecision : IDisposable
{
    private readonly List<(string Name, Parameter Master, Parameter Compute)> pairs;

    /// <summary>Builds the bf16 compute copy of <paramref name="master"/>.</summary>
    /// <exception cref="NotSupportedException">A ResNet image tower, or a ViT whose width is not a multiple of 16.</exception>
    public MixedPrecision(ClipModel master)
    {
        ArgumentNullException.ThrowIfNull(master);
        var c = master.Config;
        if (!c.IsVit)
            throw new NotSupportedException("bf16 training is implemented for ViT image towers; train the ResNet in fp32");
        // libtorch 2.10's bf16 CPU convolution is wrong when the output channel count is not a multiple of 16.
        if (c.VisionWidth % 16 != 0)
            throw new NotSupportedException($"bf16 training needs a ViT width that is a multiple of 16 (got {c.VisionWidth}): libtorch's bf16 CPU convolution is wrong otherwise");
        Master = master;
        // Building a module draws initial values from the global generator; keep the run's random stream intact.
        using (var rng = torch.random.get_rng_state())
        {
            Compute = new ClipModel(c, initialize: false);
            torch.random.set_rng_state(rng);
        }
        Compute.UseBFloat16Weights();
        var computeParams = Compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        pairs = [];
        foreach (var (name, p) in master.named_parameters())
        {
            var q = computeParams[name];
            q.requires_grad_(p.requires_grad);
            pairs.Add((name, p, q));
        }
        Sync();
    }

    /// <summary>The float32 model the optimiser updates.</summary>
    public ClipModel Master { get; }

    /// <summary>The model that runs forward and backward (bf16 compute weights).</summary>
    public ClipModel Compute { get; }

    /// <summary>Names of the parameters whose compute copy is bfloat16.</summary>
    public IEnumerable<string> BFloat16Names => pairs.Where(p => p.Compute.dtype == ScalarType.BFloat16).Select(p => p.Name);

    /// <summary>Copies the master weights into the compute copies, and the master's train/eval mode and gradient checkpointing.</summary>
    public void Sync()
    {
        using (torch.no_grad())
            foreach (var (_, m, c) in pairs) c.copy_(m);
        Compute.train(Master.training);
        Compute.TextTransformer.BlockRunner = Master.TextTransformer.BlockRunner;
        if (Compute.Visual is VisionTransformer cv && Master.Visual is VisionTransformer mv)
            cv.Transformer.BlockRunner = mv.Transformer.BlockRunner;
    }

    /// <summary>Casts the compute copies' gradients to float32, adds them to the masters' gradients, and clears them.</summary>
    public void GradientsToMasters()
    {
        using var _ = torch.no_grad();
        using var scope = NewDisposeScope();
        foreach (var (_, m, c) in pairs)
        {
            var g = c.grad;
            if (g is null) continue;
            var g32 = g.to(ScalarType.Float32);
            var existing = m.grad;
            if (existing is null) m.grad = g32.detach();
            else existing.add_(g32, TorchScalars.One);
            c.grad = null;
        }
    }

    /// <inheritdoc />
    public void Dispose() => Compute.Dispose();
}
