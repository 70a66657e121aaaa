using System.Threading.Channels;
using ClipSharp.Data;
using ClipSharp.Imaging;
using ClipSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Training.Data;

/// <summary>Settings of <see cref="TrainingDataLoader"/>.</summary>
internal sealed record LoaderOptions
{
    /// <summary>Pairs per batch.</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Image side in pixels.</summary>
    public int ImageSize { get; init; } = 224;

    /// <summary>Token context length.</summary>
    public int ContextLength { get; init; } = 77;

    /// <summary>Decoding threads (≤ 0: half the cores, at least 1).</summary>
    public int Workers { get; init; }

    /// <summary>Batches prepared ahead.</summary>
    public int Prefetch { get; init; } = 2;

    /// <summary>Augmentation.</summary>
    public AugmentSection Augment { get; init; } = new();

    /// <summary>Seed of order and augmentation.</summary>
    public int Seed { get; init; }

    /// <summary>Token ids ≥ this are mapped to id % this before use (null: none). Lets small-vocabulary test models read BPE ids.</summary>
    public int? VocabSize { get; init; }

    /// <summary>
    /// Data-parallel share: this loader draws only the plan positions p with p mod <see cref="WorldSize"/> = Rank, so
    /// W loaders with ranks 0 … W − 1 and batches of N/W together read exactly the single-process batches of N.
    /// </summary>
    public int Rank { get; init; }

    /// <summary>Number of data-parallel loaders sharing the plan (1: this loader reads every position).</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>Per-channel mean the augmented pixels are normalised with (the model's; CLIP's by default).</summary>
    public (float R, float G, float B) Mean { get; init; } = ClipImagePreprocessorOptions.ClipMean;

    /// <summary>Per-channel std the augmented pixels are normalised with (the model's; CLIP's by default).</summary>
    public (float R, float G, float B) Std { get; init; } = ClipImagePreprocessorOptions.ClipStd;
}

/// <summary>A batch decoded and augmented ahead of training (plain arrays; tensors are made on the training thread).</summary>
/// <param name="Pixels">N × 3 × S × S normalised floats.</param>
/// <param name="Ids">N × context token ids.</param>
/// <param name="Count">N.</param>
/// <param name="ImageSize">S.</param>
/// <param name="ContextLength">Context length.</param>
/// <param name="EndPosition">Plan position after this batch (the data position to save with the checkpoint that follows it).</param>
/// <param name="Skipped">Samples skipped while building it.</param>
/// <param name="SkipReasons">Why (sample id: problem).</param>
internal sealed record PreparedBatch(float[] Pixels, long[] Ids, int Count, int ImageSize, int ContextLength, long EndPosition, int Skipped, IReadOnlyList<string> SkipReasons)
{
    /// <summary>Creates the pixel [N,3,S,S] and id [N,L] tensors.</summary>
    public (Tensor Pixels, Tensor Ids) ToTensors() =>
        (torch.tensor(Pixels, [Count, 3, ImageSize, ImageSize]), torch.tensor(Ids, [Count, ContextLength]));
}

/// <summary>
/// Produces training batches in the <see cref="MixPlan"/> order on background threads: decoding, augmentation and
/// tokenisation of the next batches overlap the current training step (a bounded queue of
/// <see cref="LoaderOptions.Prefetch"/> batches). Images that fail to load are skipped, counted and replaced by the
/// next planned samples, so the batch content is still a pure function of the seed and the start position.
/// </summary>
internal sealed class TrainingDataLoader : IDisposable
{
    private readonly IReadOnlyList<PairSource> sources;
    private readonly ClipTokenizer tokenizer;
    private readonly LoaderOptions options;
    private readonly MixPlan plan;
    private readonly Augmentation augmentation;
    private readonly Channel<PreparedBatch> queue;
    private readonly CancellationTokenSource cts = new();
    private readonly Task producer;
    private long skippedTotal;

    /// <summary>Starts producing from plan position <paramref name="startPosition"/>.</summary>
    public TrainingDataLoader(IReadOnlyList<PairSource> sources, ClipTokenizer tokenizer, LoaderOptions options, long startPosition = 0)
    {
        this.sources = sources;
        this.tokenizer = tokenizer;
        this.options = options;
        plan = new MixPlan(sources, options.Seed);
        plan.SkipTo(startPosition);
        augmentation = new Augmentation(options.ImageSize, options.Augment, options.Mean, options.Std);
        queue = Channel.CreateBounded<PreparedBatch>(new BoundedChannelOptions(Math.Max(1, options.Prefetch)) { SingleReader = true, SingleWriter = true });
        producer = Task.Run(Produce);
    }

    /// <summary>Samples skipped so far because they could not be loaded.</summary>
    public long SkippedTotal => Interlocked.Read(ref skippedTotal);

    /// <summary>Waits for the next batch.</summary>
    public PreparedBatch Next(CancellationToken cancel = default)
    {
        try
        {
            return queue.Reader.ReadAsync(cancel).AsTask().GetAwaiter().GetResult();
        }
        catch (ChannelClosedException e) when (e.InnerException is not null)
        {
            throw new InvalidOperationException($"data loader failed: {e.InnerException.Message}", e.InnerException);
        }
    }

    private async Task Produce()
    {
        try
        {
            while (!cts.IsCancellationRequested)
            {
                var batch = Build(cts.Token);
                await queue.Writer.WriteAsync(batch, cts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) { }
        catch (Exception e)
        {
            queue.Writer.TryComplete(e);
            return;
        }
        queue.Writer.TryComplete();
    }

    private PreparedBatch Build(CancellationToken cancel)
    {
        int n = options.BatchSize, ctx = options.ContextLength, len = augmentation.OutputLength;
        var pixels = new float[n * len];
        var ids = new long[n * ctx];
        var reasons = new List<string>();
        int filled = 0, attempts = 0;
        int workers = options.Workers > 0 ? options.Workers : Math.Max(1, Environment.ProcessorCount / 2);
        while (filled < n)
        {
            cancel.ThrowIfCancellationRequested();
            int want = n - filled;
            var picks = new (int Source, int Index, long Position)[want];
            for (int i = 0; i < want; i++)
            {
                var pick = plan.Next();
                while (pick.Position % options.WorldSize != options.Rank) pick = plan.Next();
                picks[i] = pick;
            }
            var results = new (float[]? Pixels, int[]? Tokens, string? Error)[want];
            Parallel.For(0, want, new ParallelOptions { MaxDegreeOfParallelism = workers, CancellationToken = cancel },
                i => results[i] = Load(picks[i]));
            for (int i = 0; i < want; i++)
            {
                var r = results[i];
                if (r.Error is not null) { reasons.Add(r.Error); continue; }
                r.Pixels!.CopyTo(pixels.AsSpan(filled * len));
                for (int t = 0; t < ctx; t++) ids[filled * ctx + t] = r.Tokens![t];
                filled++;
            }
            attempts += want;
            if (filled == 0 && attempts >= 10 * n + 100)
                throw new ClipSharpException($"{attempts} samples in a row could not be loaded; last: {reasons[^1]}");
        }
        Interlocked.Add(ref skippedTotal, reasons.Count);
        return new PreparedBatch(pixels, ids, n, options.ImageSize, ctx, plan.Position, reasons.Count, reasons);
    }

    private (float[]?, int[]?, string?) Load((int Source, int Index, long Position) pick)
    {
        var source = sources[pick.Source];
        ImageTextSample sample = source.Samples[pick.Index];
        var rng = new Random((int)(MixPlan.Hash((ulong)(uint)options.Seed, 0xA11C, (ulong)pick.Position) & 0x7FFFFFFF));
        try
        {
            var image = source.ReadImage is not null && sample.ImageBytes is null && sample.ImagePath is null
                ? ImageDecoder.Decode(source.ReadImage(sample), sample.Id)
                : sample.ImageBytes is not null
                ? ImageDecoder.Decode(sample.ImageBytes, sample.Id)
                : ImageDecoder.Decode(sample.ImagePath ?? throw new ClipSharpException("sample has no image"));
            var px = new float[augmentation.OutputLength];
            augmentation.Apply(image, rng, px);
            if (sample.Captions.Count == 0) throw new ClipSharpException("sample has no caption");
            string caption = sample.Captions[sample.Captions.Count == 1 ? 0 : rng.Next(sample.Captions.Count)];
            var tokens = tokenizer.Tokenize(caption, options.ContextLength, truncate: true);
            if (options.VocabSize is int v) TokenRemap.Fold(tokens, v, tokenizer.StartOfTextId, tokenizer.EndOfTextId);
            return (px, tokens, null);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return (null, null, $"{sample.Id}: {e.Message}");
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        cts.Cancel();
        // Wait for the producer itself, not for a fixed time: it stops within the batch it is building, and a loaded
        // machine that took longer would otherwise see it touch the disposed token source.
        try { producer.Wait(); } catch (AggregateException) { }
        cts.Dispose();
    }
}

/// <summary>Maps CLIP BPE ids into a smaller vocabulary for tiny test models, keeping end-of-text the largest id.</summary>
internal static class TokenRemap
{
    /// <summary>In place: end-of-text → vocab−1, start-of-text → vocab−2, ids ≥ vocab−2 → 1 + id mod (vocab−3), padding stays 0.</summary>
    public static void Fold(int[] tokens, int vocab, int startOfText, int endOfText)
    {
        for (int i = 0; i < tokens.Length; i++)
        {
            int t = tokens[i];
            if (t == endOfText) tokens[i] = vocab - 1;
            else if (t == startOfText) tokens[i] = vocab - 2;
            else if (t >= vocab - 2) tokens[i] = 1 + t % (vocab - 3);
        }
    }
}
