using System.Collections.Concurrent;
using System.Diagnostics;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ClipSharp.Training.Distributed;

/// <summary>
/// Sums the gradients of the trained parameters over all ranks, in place, with <c>MPI_Allreduce</c> on buckets of at
/// most <see cref="BucketBytes"/>: small gradients are packed into one reused bucket, a gradient larger than half a
/// bucket is reduced in its own memory a bucket at a time, so a model of any size needs no second full copy of its
/// gradients. Parameters without a gradient are left out on every rank alike (all ranks run the same model with the
/// same frozen parts).
/// <para>With <see cref="Overlap"/>, a communication thread reduces the gradients while the backward pass is still
/// running: <see cref="WatchBlocks"/> marks the input of every transformer block with an autograd node whose backward
/// runs once the block's backward is done (libtorch runs a parameter's gradient accumulation as soon as it is ready,
/// before any other node), and hands the block's gradients to the thread, which packs them into the bucket in that
/// order and reduces each bucket as it fills. <see cref="SumGradients"/> then adds what no block reported (embeddings,
/// projections, the temperature) and waits for the thread. The order of the buckets is the order of the backward
/// pass, the same on every rank, and only that thread calls MPI until it is done.</para>
/// </summary>
internal sealed class GradientReducer : IDisposable
{
    /// <summary>Default bucket size: 25 MiB, as PyTorch's DistributedDataParallel.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    readonly Packer packer;
    readonly BlockingCollection<Work>? queue;
    readonly Thread? thread;
    readonly HashSet<nint> handedOver = [];
    bool armed;
    Exception? failure;
    long exposedTicks;

    /// <summary>Creates a reducer over <paramref name="comm"/> with buckets of <paramref name="bucketBytes"/> bytes.</summary>
    /// <param name="comm">The ranks.</param>
    /// <param name="bucketBytes">Largest all-reduce in bytes.</param>
    /// <param name="overlap">Reduce on a communication thread while the backward pass runs (see <see cref="WatchBlocks"/>).</param>
    public GradientReducer(Communicator comm, long bucketBytes = DefaultBucketBytes, bool overlap = false)
    {
        Communicator = comm ?? throw new ArgumentNullException(nameof(comm));
        if (bucketBytes < 4 || bucketBytes > (long)Array.MaxLength * 4) throw new ArgumentOutOfRangeException(nameof(bucketBytes), $"bucket of {bucketBytes} bytes");
        BucketBytes = bucketBytes / 4 * 4;
        packer = new Packer(comm, (int)(BucketBytes / 4));
        Overlap = overlap;
        if (overlap)
        {
            queue = [];
            thread = new Thread(Communicate) { IsBackground = true, Name = "gradient all-reduce" };
            thread.Start();
        }
    }

    /// <summary>The ranks the sums run over.</summary>
    public Communicator Communicator { get; }

    /// <summary>Largest all-reduce, in bytes.</summary>
    public long BucketBytes { get; }

    /// <summary>Whether buckets are reduced on a communication thread during the backward pass.</summary>
    public bool Overlap { get; }

    /// <summary>All-reduce calls made so far.</summary>
    public long Buckets => packer.Calls;

    /// <summary>Gradients handed to the communication thread by their blocks while the backward pass ran, so far.</summary>
    public long EarlyGradients { get; private set; }

    /// <summary>Gradient bytes summed so far (this rank's contribution).</summary>
    public long BytesReduced => packer.Bytes;

    /// <summary>Time spent inside the gradient all-reduces.</summary>
    public TimeSpan CommunicationTime => Stopwatch.GetElapsedTime(0, packer.Ticks);

    /// <summary>Time the training thread waited for gradient sums (all of it without overlap; what overlap did not hide with it).</summary>
    public TimeSpan ExposedTime => Stopwatch.GetElapsedTime(0, exposedTicks);

    /// <summary>
    /// Marks every transformer block of <paramref name="model"/> (both towers) so that, once <see cref="Arm"/> has been
    /// called, the block's gradients are handed to the communication thread as soon as its backward pass is done.
    /// Keeps any block runner already installed (gradient checkpointing).
    /// </summary>
    public void WatchBlocks(ClipModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!Overlap) throw new InvalidOperationException("blocks are watched only when reducing with overlap");
        var towers = new List<Modeling.Transformer> { model.TextTransformer };
        if (model.Visual is VisionTransformer vit) towers.Add(vit.Transformer);
        foreach (var t in towers)
        {
            var inner = t.BlockRunner;
            var states = new Dictionary<ResidualAttentionBlock, GradientReadyMarker.State>();
            t.BlockRunner = (block, x) =>
            {
                if (!states.TryGetValue(block, out var state))
                    states[block] = state = new GradientReadyMarker.State(this, block.parameters().ToArray());
                var marked = x.requires_grad ? GradientReadyMarker.apply(x, state) : x;
                return inner is null ? block.forward(marked) : inner(block, marked);
            };
        }
    }

    /// <summary>The next backward pass is the last of this step: its blocks' gradients are final when they are reported.</summary>
    public void Arm() => armed = Overlap;

    /// <summary>Called by a block's marker when the block's backward pass is done.</summary>
    internal unsafe void BlockDone(Parameter[] parameters)
    {
        if (!armed) return;
        var spans = new List<(nint, long)>();
        foreach (var p in parameters)
        {
            if (p.grad is not { } g) continue;
            var span = SpanOf(g);
            if (handedOver.Add(span.Pointer)) spans.Add(span);
        }
        EarlyGradients += spans.Count;
        if (spans.Count > 0) queue!.Add(new Work(spans, null));
    }

    /// <summary>Replaces every present float32 gradient by its sum over ranks (with overlap: the ones no block handed over yet, then waits).</summary>
    public void SumGradients(IEnumerable<Tensor> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        long start = Stopwatch.GetTimestamp();
        var spans = new List<(nint, long)>();
        foreach (var p in parameters)
            if (p.grad is { } g && SpanOf(g) is var span && !handedOver.Contains(span.Pointer)) spans.Add(span);
        try
        {
            if (!Overlap)
            {
                foreach (var (ptr, count) in spans) packer.Add(ptr, count);
                packer.Flush();
                return;
            }
            using var done = new ManualResetEventSlim();
            queue!.Add(new Work(spans, done));
            done.Wait();
            if (failure is { } e)
            {
                failure = null;
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
            }
        }
        finally
        {
            armed = false;
            handedOver.Clear();
            exposedTicks += Stopwatch.GetTimestamp() - start;
        }
    }

    static unsafe (nint Pointer, long Count) SpanOf(Tensor g)
    {
        if (g.dtype != ScalarType.Float32 || !g.is_contiguous())
            throw new InvalidOperationException($"gradient of dtype {g.dtype} (contiguous: {g.is_contiguous()}) cannot be reduced; expected contiguous float32");
        fixed (byte* p = TensorBytes.Span(g)) return ((nint)p, g.numel());
    }

    void Communicate()
    {
        foreach (var work in queue!.GetConsumingEnumerable())
        {
            try
            {
                if (failure is null)
                {
                    foreach (var (ptr, count) in work.Spans) packer.Add(ptr, count);
                    if (work.Done is not null) packer.Flush();
                }
            }
            catch (Exception e) { failure = e; }
            work.Done?.Set();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        queue?.CompleteAdding();
        thread?.Join();
        queue?.Dispose();
    }

    /// <summary>Gradients to reduce (pointer, float count); <c>Done</c> ends the step: flush, then signal.</summary>
    sealed record Work(List<(nint Pointer, long Count)> Spans, ManualResetEventSlim? Done);

    /// <summary>Packs gradients into the bucket and all-reduces it when full; reduces large gradients where they lie.</summary>
    sealed unsafe class Packer(Communicator comm, int capacity)
    {
        readonly float[] bucket = GC.AllocateUninitializedArray<float>(capacity, pinned: true);
        readonly List<(nint Pointer, long Count)> packed = [];
        int used;

        public long Calls, Bytes, Ticks;

        public void Add(nint pointer, long count)
        {
            if (count > capacity / 2)
            {
                for (long i = 0; i < count; i += capacity) Reduce((float*)pointer + i, Math.Min(capacity, count - i));
                return;
            }
            if (used + count > capacity) Flush();
            new ReadOnlySpan<float>((float*)pointer, (int)count).CopyTo(bucket.AsSpan(used));
            packed.Add((pointer, count));
            used += (int)count;
        }

        public void Flush()
        {
            if (used == 0) return;
            fixed (float* b = bucket) Reduce(b, used);
            int at = 0;
            foreach (var (pointer, count) in packed)
            {
                bucket.AsSpan(at, (int)count).CopyTo(new Span<float>((float*)pointer, (int)count));
                at += (int)count;
            }
            packed.Clear();
            used = 0;
        }

        void Reduce(float* values, long count)
        {
            long start = Stopwatch.GetTimestamp();
            comm.AllReduceSum(values, count);
            Ticks += Stopwatch.GetTimestamp() - start;
            Calls++;
            Bytes += count * 4;
        }
    }
}

/// <summary>The identity on a transformer block's input whose backward reports that the block's backward is done.</summary>
internal sealed class GradientReadyMarker : torch.autograd.SingleTensorFunction<GradientReadyMarker>
{
    /// <summary>Whom to tell, about which parameters.</summary>
    internal sealed record State(GradientReducer Reducer, Parameter[] Parameters);

    public override string Name => nameof(GradientReadyMarker);

    public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
    {
        ctx.save_data("state", vars[1]);
        return ((Tensor)vars[0]).alias();
    }

    public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var state = (State)ctx.get_data("state");
        state.Reducer.BlockDone(state.Parameters);
        return [gradOutput.alias(), null!];
    }
}
