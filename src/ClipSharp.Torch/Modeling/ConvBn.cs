using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ClipSharp.Modeling;

/// <summary>
/// A training-mode BatchNorm: normalises <paramref name="x"/> [N, C, H, W] with batch statistics and updates
/// <paramref name="bn"/>'s running statistics, as <c>bn.forward</c> does in training mode. Data-parallel training
/// supplies one whose statistics cover every process's share of the batch.
/// </summary>
internal delegate Tensor TrainingBatchNorm(BatchNorm2d bn, Tensor x);

/// <summary>
/// A convolution followed by BatchNorm. In training mode it runs both as they are. In eval mode it folds the
/// BatchNorm's running statistics into the convolution once (w·γ/√(σ²+ε), β − μ·γ/√(σ²+ε), computed in float32,
/// then stored in the convolution's dtype) and runs a single biased convolution. This saves a full pass over
/// every feature map and lets bf16 convolutions keep float32-accurate normalisation.
/// The fold is recomputed after any switch to training mode or any weight load.
/// </summary>
internal sealed class ConvBn(Conv2d conv, BatchNorm2d bn) : IDisposable
{
    private Tensor? weight, bias;

    /// <summary>Replaces the training-mode BatchNorm (null: statistics of this process's batch).</summary>
    public TrainingBatchNorm? Normalise { get; set; }

    public Tensor Forward(Tensor x, bool training)
    {
        if (training)
        {
            Invalidate();
            using var scope = NewDisposeScope();
            return BatchNormTraining(Convolve(x, conv.weight!, conv.bias)).MoveToOuterDisposeScope();
        }
        if (weight is null) Fold();
        if (x.dtype == weight!.dtype) return Convolve(x, weight, bias);
        using var s = NewDisposeScope();
        return Convolve(x.to(weight.dtype), weight, bias).to(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>This layer's convolution, through <see cref="Convolution"/> rather than libtorch's conv2d (see there why).</summary>
    private Tensor Convolve(Tensor x, Tensor w, Tensor? b) => Convolution.Conv2d(x, w, b, conv.stride[0], conv.padding is { } p ? p[0] : 0);

    /// <summary>
    /// What <c>bn.forward</c> computes in training mode, but TorchSharp's version bumps num_batches_tracked with implicit
    /// scalars; here the increment uses rooted ones (see <see cref="TorchScalars"/>).
    /// </summary>
    private Tensor BatchNormTraining(Tensor x)
    {
        if (Normalise is not null) return Normalise(bn, x);
        if (!bn.track_running_stats || bn.num_batches_tracked is null) return bn.forward(x);
        bn.num_batches_tracked.add_(TorchScalars.IntOne, TorchScalars.IntOne);
        double factor = bn.momentum ?? 1.0 / bn.num_batches_tracked.item<long>();
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training: true, factor, bn.eps);
    }

    private void Fold()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        using var eps = bn.eps.ToScalar();
        var scale = bn.weight!.to(ScalarType.Float32) / bn.running_var!.to(ScalarType.Float32).add(eps, TorchScalars.One).sqrt();
        var w = conv.weight!.to(ScalarType.Float32) * scale.view(-1, 1, 1, 1);
        var b = bn.bias!.to(ScalarType.Float32) - bn.running_mean!.to(ScalarType.Float32) * scale;
        weight = w.to(conv.weight!.dtype).contiguous().DetachFromDisposeScope();
        bias = b.to(conv.weight.dtype).DetachFromDisposeScope();
    }

    public void Invalidate()
    {
        weight?.Dispose(); bias?.Dispose();
        weight = bias = null;
    }

    public void Dispose() => Invalidate();
}
