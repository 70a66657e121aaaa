using System.Buffers;
using System.Diagnostics;
using System.Threading.Channels;
using ClipSharp.Data;
using ClipSharp.Data.Readers;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Evaluation;

/// <summary>An image to encode: a file, or encoded bytes held in memory.</summary>
/// <param name="Id">Identifier used in reports and to join features with labels.</param>
/// <param name="Path">Image file, or null when <paramref name="Bytes"/> is set.</param>
/// <param name="Bytes">Encoded image, or null when <paramref name="Path"/> is set.</param>
public sealed record ImageInput(string Id, string? Path, byte[]? Bytes = null)
{
    /// <summary>From a labelled image.</summary>
    public static ImageInput From(LabeledImage x) => new(x.Id, x.ImagePath, x.ImageBytes);

    /// <summary>From an image–caption sample.</summary>
    public static ImageInput From(ImageTextSample x) => new(x.Id, x.ImagePath, x.ImageBytes);
}

/// <summary>Progress of a feature extraction.</summary>
/// <param name="Done">Images encoded so far.</param>
/// <param name="Skipped">Images that could not be decoded so far.</param>
/// <param name="Total">Total number of inputs when known.</param>
/// <param name="ImagesPerSecond">Average throughput since the start (encoded + skipped).</param>
/// <param name="Eta">Estimated time left when the total is known.</param>
public sealed record ExtractionProgress(int Done, int Skipped, int? Total, double ImagesPerSecond, TimeSpan? Eta);

/// <summary>Settings of <see cref="FeatureExtractor.Extract"/>.</summary>
public sealed record FeatureExtractionOptions
{
    /// <summary>Images per forward pass.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>Threads decoding and preprocessing one batch in parallel.</summary>
    public int DecodeThreads { get; init; } = Environment.ProcessorCount;

    /// <summary>Preprocessed batches that may wait for the model (the bounded queue between producer and consumer).</summary>
    public int QueueDepth { get; init; } = 2;

    /// <summary>Receives progress after every batch (called on the model's thread).</summary>
    public IProgress<ExtractionProgress>? Progress { get; init; }
}

/// <summary>Image features of a dataset: row i belongs to <see cref="Ids"/>[i].</summary>
public sealed class ImageFeatures
{
    /// <summary>Creates a feature set.</summary>
    public ImageFeatures(float[] data, int dim, IReadOnlyList<string> ids, IReadOnlyList<int> sourceIndex, IReadOnlyList<SkippedItem> skipped)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (ids.Count != sourceIndex.Count || (long)ids.Count * dim != data.Length)
            throw new ArgumentException($"feature data of {data.Length} floats does not match {ids.Count} ids × {dim}");
        Data = data; Dim = dim; Ids = ids; SourceIndex = sourceIndex; Skipped = skipped;
    }

    /// <summary>Row-major [Count, Dim] float32 features, as returned by the image tower (not normalised).</summary>
    public float[] Data { get; }

    /// <summary>Embedding dimension.</summary>
    public int Dim { get; }

    /// <summary>Number of encoded images.</summary>
    public int Count => Ids.Count;

    /// <summary>Identifier of each row.</summary>
    public IReadOnlyList<string> Ids { get; }

    /// <summary>Position of each row's image in the input sequence (skipped inputs leave gaps).</summary>
    public IReadOnlyList<int> SourceIndex { get; }

    /// <summary>Inputs that could not be decoded, with the reason.</summary>
    public IReadOnlyList<SkippedItem> Skipped { get; }

    /// <summary>Wall-clock seconds the extraction took (0 when loaded from the cache).</summary>
    public double Seconds { get; init; }

    /// <summary>A new [Count, Dim] float32 tensor of the features.</summary>
    public Tensor ToTensor() => torch.tensor(Data, [Count, Dim]);

    /// <summary>The rows at the given positions, as a new feature set.</summary>
    public ImageFeatures Select(IReadOnlyList<int> rows)
    {
        var data = new float[(long)rows.Count * Dim];
        for (int i = 0; i < rows.Count; i++) Array.Copy(Data, (long)rows[i] * Dim, data, (long)i * Dim, Dim);
        return new ImageFeatures(data, Dim, rows.Select(r => Ids[r]).ToList(), rows.Select(r => SourceIndex[r]).ToList(), []);
    }
}

/// <summary>
/// Batched image encoding with decoding and preprocessing in parallel with the model: a producer task decodes each
/// batch with <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/> and hands it to the model through a
/// bounded channel, so the next batches are being prepared while the current one runs through the image tower.
/// Images that fail to decode are skipped and listed, never fatal. Output rows keep the input order.
/// </summary>
public static class FeatureExtractor
{
    sealed record Batch(float[] Pixels, int Count, string[] Ids, int[] Source);

    /// <summary>Encodes all inputs.</summary>
    /// <param name="model">The model (put in eval mode by the caller).</param>
    /// <param name="preprocessor">Preprocessing whose size matches the model's input resolution.</param>
    /// <param name="inputs">Images, enumerated once on the producer thread.</param>
    /// <param name="total">Number of inputs if known (for progress and ETA).</param>
    /// <param name="options">Batching, threads, progress.</param>
    /// <param name="cancellationToken">Stops the extraction.</param>
    public static ImageFeatures Extract(ClipModel model, ClipImagePreprocessor preprocessor, IEnumerable<ImageInput> inputs,
        int? total = null, FeatureExtractionOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= new FeatureExtractionOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        if (preprocessor.Size != model.Visual.InputResolution)
            throw new ArgumentException($"preprocessing size {preprocessor.Size} does not match the model's input resolution {model.Visual.InputResolution}");

        int per = preprocessor.OutputLength, size = preprocessor.Size, batchSize = options.BatchSize;
        var skipped = new SkipLog();
        var channel = Channel.CreateBounded<Batch>(new BoundedChannelOptions(Math.Max(1, options.QueueDepth)) { SingleReader = true, SingleWriter = true });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pool = ArrayPool<float>.Shared;
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.DecodeThreads), CancellationToken = cts.Token };

        var producer = Task.Run(async () =>
        {
            try
            {
                int index = 0;
                var chunk = new List<(ImageInput Input, int Index)>(batchSize);
                foreach (var input in inputs)
                {
                    cts.Token.ThrowIfCancellationRequested();
                    chunk.Add((input, index++));
                    if (chunk.Count == batchSize) { await channel.Writer.WriteAsync(Prepare(chunk), cts.Token).ConfigureAwait(false); chunk.Clear(); }
                }
                if (chunk.Count > 0) await channel.Writer.WriteAsync(Prepare(chunk), cts.Token).ConfigureAwait(false);
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
        }, cts.Token);

        Batch Prepare(List<(ImageInput Input, int Index)> chunk)
        {
            var buffer = pool.Rent(chunk.Count * per);
            var ok = new bool[chunk.Count];
            Parallel.For(0, chunk.Count, parallel, i =>
            {
                var (input, _) = chunk[i];
                var dst = buffer.AsSpan(i * per, per);
                try
                {
                    if (input.Bytes is not null) preprocessor.Process(input.Bytes, input.Id).CopyTo(dst);
                    else if (input.Path is not null) preprocessor.ProcessInto(input.Path, dst);
                    else throw new ImageDecodeException(input.Id, "the sample has neither a path nor image bytes");
                    ok[i] = true;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ClipSharpException or ArgumentException or NotSupportedException)
                {
                    skipped.Add(input.Id, e is ImageDecodeException d ? d.Problem : e.Message);
                }
            });
            // Compact the decodable images to the front, keeping order.
            int n = 0;
            var ids = new List<string>(chunk.Count);
            var src = new List<int>(chunk.Count);
            for (int i = 0; i < chunk.Count; i++)
            {
                if (!ok[i]) continue;
                if (n != i) buffer.AsSpan(i * per, per).CopyTo(buffer.AsSpan(n * per, per));
                ids.Add(chunk[i].Input.Id);
                src.Add(chunk[i].Index);
                n++;
            }
            return new Batch(buffer, n, [.. ids], [.. src]);
        }

        var outData = new List<float[]>();
        var outIds = new List<string>();
        var outSrc = new List<int>();
        int dim = model.Config.EmbedDim;
        var sw = Stopwatch.StartNew();
        try
        {
            var reader = channel.Reader;
            while (reader.WaitToReadAsync(cts.Token).AsTask().GetAwaiter().GetResult())
            {
                while (reader.TryRead(out var batch))
                {
                    try
                    {
                        if (batch.Count > 0)
                        {
                            using var scope = NewDisposeScope();
                            using var noGrad = torch.no_grad();
                            var pixels = torch.tensor(batch.Pixels.AsSpan(0, batch.Count * per).ToArray(), [batch.Count, 3, size, size]);
                            var features = model.EncodeImage(pixels).contiguous();
                            outData.Add(features.data<float>().ToArray());
                            outIds.AddRange(batch.Ids);
                            outSrc.AddRange(batch.Source);
                        }
                    }
                    finally { pool.Return(batch.Pixels); }
                    if (options.Progress is not null)
                    {
                        int done = outIds.Count, bad = skipped.Count;
                        double rate = (done + bad) / Math.Max(sw.Elapsed.TotalSeconds, 1e-9);
                        TimeSpan? eta = total is int t && rate > 0 ? TimeSpan.FromSeconds(Math.Max(0, t - done - bad) / rate) : null;
                        options.Progress.Report(new ExtractionProgress(done, bad, total, rate, eta));
                    }
                }
            }
        }
        catch
        {
            cts.Cancel();
            try { producer.Wait(); } catch (AggregateException) { }
            throw;
        }
        producer.GetAwaiter().GetResult();

        var data = new float[(long)outIds.Count * dim];
        long offset = 0;
        foreach (var part in outData) { Array.Copy(part, 0, data, offset, part.Length); offset += part.Length; }
        var skippedList = skipped.Items.OrderBy(s => s.Id, StringComparer.Ordinal).ToList();
        return new ImageFeatures(data, dim, outIds, outSrc, skippedList) { Seconds = sw.Elapsed.TotalSeconds };
    }
}
