using System.Runtime.InteropServices;
using ClipSharp.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Training.Distributed;

/// <summary>
/// Synchronised BatchNorm for the ResNet image tower in data-parallel training: in training mode every BatchNorm
/// normalises with the mean and variance of the whole global batch, not of this rank's share, so W ranks compute what
/// one process computes on the N pairs. The forward pass all-reduces each channel's Σx, Σx² and the element count
/// (in float64, so E[x²] − E[x]² loses nothing to cancellation); the running statistics are updated from those
/// global values (unbiased variance), identically on every rank. The backward pass all-reduces Σdy and Σdy·(x − μ)
/// per channel, the two sums through which every input reaches every other through μ and σ²; the gradients of γ and
/// β stay this rank's share, summed over ranks with all other gradients by <see cref="GradientReducer"/>.
/// Every rank runs the same BatchNorms in the same order, forward and backward, so the collectives pair up.
/// </summary>
internal static class SyncBatchNorm
{
    /// <summary>Makes <paramref name="tower"/>'s BatchNorms synchronise over <paramref name="comm"/> in training mode.</summary>
    public static void Enable(ModifiedResNet tower, Communicator comm)
    {
        ArgumentNullException.ThrowIfNull(tower);
        ArgumentNullException.ThrowIfNull(comm);
        tower.TrainingNorm = (bn, x) => Forward(comm, bn, x);
    }

    /// <summary>
    /// Training-mode BatchNorm of <paramref name="x"/> [n, C, H, W] with the statistics of every rank's
    /// <paramref name="x"/> together; updates <paramref name="bn"/>'s running statistics.
    /// </summary>
    public static Tensor Forward(Communicator comm, BatchNorm2d bn, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(comm);
        ArgumentNullException.ThrowIfNull(bn);
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4 || x.dtype != ScalarType.Float32) throw new ArgumentException($"expected float32 [n, C, H, W]; got {x.dtype} [{string.Join(", ", x.shape)}]");
        using var scope = NewDisposeScope();
        long c = x.shape[1];
        Tensor mean, variance;
        double count;
        using (torch.no_grad())
        {
            var xd = x.detach().to(ScalarType.Float64);
            var sums = torch.cat([xd.sum([0, 2, 3]), xd.mul(xd).sum([0, 2, 3])], 0).contiguous();
            var packed = new double[2 * c + 1];
            MemoryMarshal.Cast<byte, double>(Checkpoints.TensorBytes.Span(sums)).CopyTo(packed);
            packed[2 * c] = x.numel() / c;
            comm.AllReduceSum(packed);
            count = packed[2 * c];
            var s = torch.tensor(packed.AsSpan(0, (int)(2 * c)).ToArray(), ScalarType.Float64);
            using Scalar perElement = (1.0 / count).ToScalar();
            var m = s.narrow(0, 0, c).mul(perElement);
            var v = s.narrow(0, c, c).mul(perElement).sub(m.mul(m)).clamp_min(TorchScalars.IntZero);
            mean = m.to(ScalarType.Float32);
            variance = v.to(ScalarType.Float32);
            if (bn.track_running_stats && bn.running_mean is not null && bn.running_var is not null)
            {
                double factor = bn.momentum ?? 0;
                if (bn.num_batches_tracked is not null)
                {
                    bn.num_batches_tracked.add_(TorchScalars.IntOne, TorchScalars.IntOne);
                    if (bn.momentum is null) factor = 1.0 / bn.num_batches_tracked.item<long>();
                }
                using Scalar keep = (1 - factor).ToScalar(), take = factor.ToScalar(), unbiased = (count / Math.Max(1, count - 1)).ToScalar();
                bn.running_mean.mul_(keep).add_(mean, take);
                bn.running_var.mul_(keep).add_(variance.mul(unbiased), take);
            }
        }
        using Scalar eps = bn.eps.ToScalar();
        var invstd = variance.add(eps, TorchScalars.One).rsqrt();
        var weight = bn.weight!;
        var bias = bn.bias!;
        bool needsGrad = torch.is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias.requires_grad);
        Tensor y = needsGrad
            ? SyncBatchNormFunction.apply(x, new SyncBatchNormFunction.State(comm, mean, invstd, count, x.requires_grad, weight.requires_grad, bias.requires_grad), weight, bias)
            : Normalise(x, mean, invstd, weight, bias);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>(x − μ) · σ⁻¹ · γ + β per channel.</summary>
    internal static Tensor Normalise(Tensor x, Tensor mean, Tensor invstd, Tensor weight, Tensor bias)
    {
        using var scope = NewDisposeScope();
        var scale = invstd.mul(weight).view(1, -1, 1, 1);
        return x.sub(mean.view(1, -1, 1, 1)).mul(scale).add(bias.view(1, -1, 1, 1), TorchScalars.One).MoveToOuterDisposeScope();
    }
}

/// <summary>The autograd node of <see cref="SyncBatchNorm.Forward"/>: its backward pass sums over ranks what crosses them.</summary>
internal sealed class SyncBatchNormFunction : torch.autograd.SingleTensorFunction<SyncBatchNormFunction>
{
    /// <summary>The global statistics and what backward needs besides the saved input.</summary>
    internal sealed record State(Communicator Comm, Tensor Mean, Tensor Invstd, double Count, bool InputGrad, bool WeightGrad, bool BiasGrad);

    public override string Name => nameof(SyncBatchNormFunction);

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        var x = (Tensor)vars[0];
        var state = (State)vars[1];
        var weight = (Tensor)vars[2];
        var bias = (Tensor)vars[3];
        ctx.save_for_backward([x, weight, state.Mean, state.Invstd]);
        ctx.save_data("state", state);
        return SyncBatchNorm.Normalise(x, state.Mean, state.Invstd, weight, bias);
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor dy)
    {
        var state = (State)ctx.get_data("state");
        var saved = ctx.get_saved_variables();
        var result = new List<Tensor>(4);
        using (var scope = NewDisposeScope())
        using (torch.no_grad())
        {
            var (x, weight, mean, invstd) = (saved[0], saved[1], saved[2], saved[3]);
            long c = x.shape[1];
            var xmu = x.sub(mean.view(1, -1, 1, 1));
            var sumDy = dy.sum([0, 2, 3]);
            var sumDyXmu = dy.mul(xmu).sum([0, 2, 3]);
            Tensor? dx = null;
            if (state.InputGrad)
            {
                // Global Σdy and Σdy·(x − μ): every element of every rank's share moves μ and σ².
                var local = torch.cat([sumDy, sumDyXmu], 0).to(ScalarType.Float64).contiguous();
                var packed = new double[2 * c];
                MemoryMarshal.Cast<byte, double>(Checkpoints.TensorBytes.Span(local)).CopyTo(packed);
                state.Comm.AllReduceSum(packed);
                var global = torch.tensor(packed, ScalarType.Float64).to(ScalarType.Float32);
                using Scalar perElement = (1.0 / state.Count).ToScalar();
                var meanDy = global.narrow(0, 0, c).mul(perElement).view(1, -1, 1, 1);
                var meanDyXmu = global.narrow(0, c, c).mul(perElement);
                var inv = invstd.view(1, -1, 1, 1);
                // dx = γσ⁻¹ · (dy − mean(dy) − (x − μ)·σ⁻²·mean(dy·(x − μ)))
                var projection = xmu.mul(meanDyXmu.mul(invstd).mul(invstd).view(1, -1, 1, 1));
                dx = dy.sub(meanDy).sub(projection).mul(inv.mul(weight.view(1, -1, 1, 1)));
            }
            result.Add(dx!);
            result.Add(null!); // the State argument is not a tensor
            result.Add(state.WeightGrad ? sumDyXmu.mul(invstd) : null!);
            result.Add(state.BiasGrad ? sumDy : null!);
            foreach (var g in result) g?.MoveToOuterDisposeScope();
        }
        foreach (var s in saved) s.Dispose();
        return result;
    }
}
