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
            return BatchNormTraining(conv.forward(x)).MoveToOuterDisposeScope();
        }
        if (weight is null) Fold();
        if (x.dtype == weight!.dtype) return F.conv2d(x, weight, bias, conv.stride, conv.padding);
        using var s = NewDisposeScope();
        return F.conv2d(x.to(weight.dtype), weight, bias, conv.stride, conv.padding).to(x.dtype).MoveToOuterDisposeScope();
    }

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
        // libtorch 2.10's bf16 CPU convolution returns wrong values (even NaN) when the output channel count
        // is not a multiple of 16 (measured here: 8, 24, 40 channels). Such convolutions stay in float32.
        var dtype = conv.weight!.dtype == ScalarType.BFloat16 && conv.weight.shape[0] % 16 != 0 ? ScalarType.Float32 : conv.weight.dtype;
        weight = w.to(dtype).contiguous().DetachFromDisposeScope();
        bias = b.to(dtype).DetachFromDisposeScope();
    }

    public void Invalidate()
    {
        weight?.Dispose(); bias?.Dispose();
        weight = bias = null;
    }

    public void Dispose() => Invalidate();
}
