using System.Runtime.InteropServices;
using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Training.Distributed;

/// <summary>
/// Data-parallel CLIP over a <see cref="ProcessGroup"/>, exact with respect to the global batch.
/// <para>Each of the W ranks holds the same weights and n = N/W pairs of every global batch of N: rank r has the global
/// rows r, r + W, r + 2W, … (<see cref="Data.LoaderOptions.Rank"/>). After its forward pass each rank gathers everyone's
/// features (<see cref="GlobalRows"/>), puts its own, which carry autograd, in their places, and computes the loss of the
/// whole N × N similarity matrix, the same value on every rank. Its backward pass reaches only its own features, so
/// each rank holds the gradient contribution of its n pairs; summing the gradients over ranks
/// (<see cref="GradientReducer"/>) gives exactly the gradient of the single N-pair batch. The temperature (and
/// SigLIP's bias) enter the loss directly, so their gradient is already complete on every rank: only rank 0 keeps it
/// for the sum.</para>
/// </summary>
internal static class DataParallel
{
    /// <summary>
    /// The global [N, D] feature matrix in global row order, from every rank's local [n, D] float32 features:
    /// the other ranks' rows are gathered (no autograd); this rank's rows are <paramref name="local"/> itself, so
    /// gradients flow back into it.
    /// </summary>
    public static Tensor GlobalRows(ProcessGroup group, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(local);
        if (local.dtype != ScalarType.Float32 || local.dim() != 2)
            throw new ArgumentException($"features must be float32 [n, D]; got {local.dtype} [{string.Join(", ", local.shape)}]");
        using var scope = NewDisposeScope();
        long n = local.shape[0], d = local.shape[1];
        byte[] all;
        using (torch.no_grad())
        {
            var mine = local.detach().contiguous();
            all = group.AllGather(TensorBytes.Span(mine));
        }
        var gathered = torch.tensor(MemoryMarshal.Cast<byte, float>(all.AsSpan()).ToArray(), [group.WorldSize, n, d]);
        var parts = new Tensor[group.WorldSize];
        for (int r = 0; r < group.WorldSize; r++) parts[r] = r == group.Rank ? local : gathered[r];
        // [n, W, D] → row j·W + r is rank r's j-th pair.
        return torch.stack(parts, dim: 1).reshape(n * group.WorldSize, d).MoveToOuterDisposeScope();
    }

    /// <summary>This rank's rows [n, D] of a global [N, D] tensor laid out as <see cref="GlobalRows"/> lays it out.</summary>
    public static Tensor LocalRows(ProcessGroup group, Tensor global)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(global);
        long n = global.shape[0] / group.WorldSize;
        return global.view(n, group.WorldSize, global.shape[1]).select(1, group.Rank);
    }
}

/// <summary>
/// Sums the gradients of a fixed list of parameters over all ranks, in place, through one reused flat buffer
/// (one all-reduce per step). Parameters without a gradient on this step are left out on every rank alike, since all
/// ranks run the same model with the same frozen parts; a rank whose set differs fails the collective's size check.
/// </summary>
internal sealed class GradientReducer(ProcessGroup group)
{
    float[] buffer = [];

    /// <summary>The group the sums run over.</summary>
    public ProcessGroup Group { get; } = group ?? throw new ArgumentNullException(nameof(group));

    /// <summary>Replaces every present float32 gradient by its sum over ranks.</summary>
    public void SumGradients(IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var grads = new List<Tensor>();
        long total = 0;
        foreach (var p in parameters)
        {
            if (p.grad is not { } g) continue;
            if (g.dtype != ScalarType.Float32 || !g.is_contiguous())
                throw new InvalidOperationException($"gradient of dtype {g.dtype} (contiguous: {g.is_contiguous()}) cannot be reduced; expected contiguous float32");
            grads.Add(g);
            total += g.numel();
        }
        if (buffer.Length != total) buffer = new float[total];
        long at = 0;
        foreach (var g in grads)
        {
            var src = MemoryMarshal.Cast<byte, float>(TensorBytes.Span(g));
            src.CopyTo(buffer.AsSpan((int)at, src.Length));
            at += src.Length;
        }
        Group.AllReduceSum(buffer);
        at = 0;
        foreach (var g in grads)
        {
            var dst = MemoryMarshal.Cast<byte, float>(TensorBytes.Span(g));
            buffer.AsSpan((int)at, dst.Length).CopyTo(dst);
            at += dst.Length;
        }
    }
}
