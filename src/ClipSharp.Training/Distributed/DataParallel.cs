using ClipSharp.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Training.Distributed;

/// <summary>
/// Data-parallel CLIP over a <see cref="Communicator"/>, exact with respect to the global batch.
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
    public static Tensor GlobalRows(Communicator comm, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(comm);
        ArgumentNullException.ThrowIfNull(local);
        using var scope = NewDisposeScope();
        var gathered = Gather(comm, local);
        var parts = new Tensor[comm.WorldSize];
        for (int r = 0; r < comm.WorldSize; r++) parts[r] = r == comm.Rank ? local : gathered[r];
        // [n, W, D] → row j·W + r is rank r's j-th pair.
        return torch.stack(parts, dim: 1).reshape(local.shape[0] * comm.WorldSize, local.shape[1]).MoveToOuterDisposeScope();
    }

    /// <summary>Every rank's [n, D] float32 rows as one [W, n, D] tensor without autograd (<c>MPI_Allgather</c>).</summary>
    public static unsafe Tensor Gather(Communicator comm, Tensor local)
    {
        ArgumentNullException.ThrowIfNull(comm);
        ArgumentNullException.ThrowIfNull(local);
        if (local.dtype != ScalarType.Float32 || local.dim() != 2)
            throw new ArgumentException($"features must be float32 [n, D]; got {local.dtype} [{string.Join(", ", local.shape)}]");
        using var scope = NewDisposeScope();
        long n = local.shape[0], d = local.shape[1];
        var all = torch.empty([comm.WorldSize, n, d], ScalarType.Float32);
        using (torch.no_grad())
        {
            var mine = local.detach().contiguous();
            fixed (byte* src = TensorBytes.Span(mine))
            fixed (byte* dst = TensorBytes.Span(all))
                comm.AllGather((float*)src, checked((int)(n * d)), (float*)dst);
        }
        return all.MoveToOuterDisposeScope();
    }

    /// <summary>This rank's rows [n, D] of a global [N, D] tensor laid out as <see cref="GlobalRows"/> lays it out.</summary>
    public static Tensor LocalRows(Communicator comm, Tensor global)
    {
        ArgumentNullException.ThrowIfNull(comm);
        ArgumentNullException.ThrowIfNull(global);
        long n = global.shape[0] / comm.WorldSize;
        return global.view(n, comm.WorldSize, global.shape[1]).select(1, comm.Rank);
    }

    /// <summary>
    /// Sums a global [N, D] float32 tensor (laid out as <see cref="GlobalRows"/>) over ranks and returns this rank's
    /// [n, D] rows of the sum (<c>MPI_Reduce_scatter_block</c>): how the gradients every rank computed for every
    /// rank's features reach the ranks that own them.
    /// </summary>
    public static unsafe Tensor SumToLocalRows(Communicator comm, Tensor global)
    {
        ArgumentNullException.ThrowIfNull(comm);
        ArgumentNullException.ThrowIfNull(global);
        if (global.dtype != ScalarType.Float32 || global.dim() != 2)
            throw new ArgumentException($"expected float32 [N, D]; got {global.dtype} [{string.Join(", ", global.shape)}]");
        using var scope = NewDisposeScope();
        long w = comm.WorldSize, n = global.shape[0] / w, d = global.shape[1];
        // [N, D] → [W, n, D]: rank r's rows become block r, which MPI_Reduce_scatter_block hands to rank r.
        var blocks = global.detach().view(n, w, d).transpose(0, 1).contiguous();
        var mine = torch.empty([n, d], ScalarType.Float32);
        fixed (byte* src = TensorBytes.Span(blocks))
        fixed (byte* dst = TensorBytes.Span(mine))
            comm.ReduceScatter((float*)src, (float*)dst, checked((int)(n * d)));
        return mine.MoveToOuterDisposeScope();
    }
}
