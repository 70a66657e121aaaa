using System.Collections.Concurrent;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Benchmarks;

/// <summary>
/// Zero-shot classification throughput over 1000 classes (class embeddings precomputed, as an evaluation does once):
/// either from JPEG files on disk, decoded and preprocessed on a producer task in parallel with the model, or
/// model-only on already preprocessed tensors. The ratio of the two is the cost of the input pipeline.
/// </summary>
internal sealed class ZeroShotWorkload : IBenchmarkWorkload
{
    private readonly ClipModel model;
    private readonly Tensor classifier;
    private readonly GradMode grad;
    private readonly bool fromFiles;
    private readonly string[][] batches;
    private readonly Tensor[] preprocessed = [];
    private readonly ClipImagePreprocessor preprocessor;
    private readonly string? ownedDirectory;
    private readonly long[] predictions;

    public ZeroShotWorkload(ClipConfig config, int batch, bool bf16, BenchmarkOptions options, bool fromFiles)
    {
        this.fromFiles = fromFiles;
        grad = options.GradMode;
        model = BuiltInWorkloadProvider.BuildOneTower(config, image: true, bf16);
        using (torch.no_grad())
        {
            var c = torch.randn(1000, config.EmbedDim);
            classifier = (c / c.norm(1, keepdim: true)).t().contiguous();
            c.Dispose();
        }
        preprocessor = new ClipImagePreprocessor(config.ImageResolution);
        string dir = options.WorkDirectory ?? (ownedDirectory = Directory.CreateTempSubdirectory("clipsharp-bench-").FullName);
        var files = WriteJpegs(dir, options.ZeroShotImages);
        batches = files.Chunk(batch).ToArray();
        if (!fromFiles) preprocessed = batches.Select(preprocessor.ProcessBatch).ToArray();
        predictions = new long[files.Length];
        UnitsPerRun = files.Length;
        FlopPerRun = files.Length * FlopCounts.ImageTower(config);
    }

    public string Implementation => fromFiles
        ? $"JPEG files → ClipImagePreprocessor.ProcessBatch on a producer task (queue of 2 batches) ∥ EncodeImage + 1000-class logits, {grad}"
        : $"preprocessed tensors in memory → EncodeImage + 1000-class logits, {grad}";
    public double UnitsPerRun { get; }
    public string Unit => "img/s";
    public double FlopPerRun { get; }

    /// <summary>Writes <paramref name="count"/> synthetic photos (500×375, ImageNet's typical size) as quality-90 JPEGs.</summary>
    internal static string[] WriteJpegs(string dir, int count)
    {
        var rng = new Random(1234);
        var paths = new string[count];
        for (int i = 0; i < count; i++)
        {
            paths[i] = Path.Combine(dir, $"img{i:D4}.jpg");
            if (File.Exists(paths[i])) continue;
            using var bmp = new SKBitmap(500, 375);
            using (var canvas = new SKCanvas(bmp))
            {
                using var shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(500, 375),
                    [new SKColor((uint)rng.Next() | 0xFF000000), new SKColor((uint)rng.Next() | 0xFF000000)], SKShaderTileMode.Clamp);
                using var paint = new SKPaint { Shader = shader };
                canvas.DrawRect(0, 0, 500, 375, paint);
                using var dot = new SKPaint { IsAntialias = true };
                for (int k = 0; k < 40; k++)
                {
                    dot.Color = new SKColor((uint)rng.Next() | 0x80000000);
                    canvas.DrawCircle(rng.Next(500), rng.Next(375), rng.Next(5, 60), dot);
                }
            }
            using var image = SKImage.FromBitmap(bmp);
            using var data = image.Encode(SKEncodedImageFormat.Jpeg, 90);
            File.WriteAllBytes(paths[i], data.ToArray());
        }
        return paths;
    }

    public void Run()
    {
        if (!fromFiles)
        {
            int offset = 0;
            foreach (var t in preprocessed) offset = Classify(t, offset);
            return;
        }
        using var queue = new BlockingCollection<Tensor>(boundedCapacity: 2);
        var producer = Task.Run(() =>
        {
            try
            {
                foreach (var b in batches) queue.Add(preprocessor.ProcessBatch(b));
            }
            finally { queue.CompleteAdding(); }
        });
        int done = 0;
        foreach (var t in queue.GetConsumingEnumerable())
        {
            done = Classify(t, done);
            t.Dispose();
        }
        producer.GetAwaiter().GetResult();
    }

    private int Classify(Tensor pixels, int offset)
    {
        using var g = BuiltInWorkloadProvider.GradScope(grad);
        using var scope = NewDisposeScope();
        var f = model.EncodeImage(pixels);
        var pred = (f / f.norm(1, keepdim: true)).matmul(classifier).argmax(1);
        pred.data<long>().CopyTo(predictions, offset);
        return offset + (int)pixels.shape[0];
    }

    public void Dispose()
    {
        model.Dispose();
        classifier.Dispose();
        foreach (var t in preprocessed) t.Dispose();
        if (ownedDirectory is not null) Directory.Delete(ownedDirectory, recursive: true);
    }
}
