using System.Diagnostics;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Evaluation;

/// <summary>Result of <see cref="ThroughputBenchmark.Run"/>.</summary>
/// <param name="Images">Images per measurement.</param>
/// <param name="BatchSize">Images per forward pass.</param>
/// <param name="ModelOnlyImagesPerSecond">Image tower on already preprocessed tensors.</param>
/// <param name="EndToEndImagesPerSecond">Files on disk → decode → preprocess → image tower, through <see cref="FeatureExtractor"/>.</param>
/// <param name="SerialImagesPerSecond">The same without overlap: decode a batch, then encode it, one after the other.</param>
public sealed record ThroughputResult(int Images, int BatchSize, double ModelOnlyImagesPerSecond, double EndToEndImagesPerSecond, double SerialImagesPerSecond)
{
    /// <summary>End-to-end / model-only (the target is ≥ 0.9).</summary>
    public double Ratio => EndToEndImagesPerSecond / ModelOnlyImagesPerSecond;
}

/// <summary>
/// Measures whether evaluation is bound by model compute: end-to-end feature extraction from JPEG files against the image
/// tower alone on preprocessed tensors, with the same model and batch size.
/// </summary>
public static class ThroughputBenchmark
{
    /// <summary>Writes <paramref name="count"/> photo-sized (500×375) JPEGs of smooth random colour fields into a directory.</summary>
    public static IReadOnlyList<string> WriteImages(string directory, int count, int seed = 0)
    {
        Directory.CreateDirectory(directory);
        var rng = new Random(seed);
        var paths = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            using var bmp = new SKBitmap(500, 375, SKColorType.Rgba8888, SKAlphaType.Opaque);
            byte r0 = (byte)rng.Next(256), g0 = (byte)rng.Next(256), b0 = (byte)rng.Next(256);
            var px = bmp.GetPixelSpan();
            for (int y = 0; y < bmp.Height; y++)
                for (int x = 0; x < bmp.Width; x++)
                {
                    int o = 4 * (y * bmp.Width + x);
                    px[o] = (byte)(r0 + x / 2); px[o + 1] = (byte)(g0 + y / 2); px[o + 2] = (byte)(b0 + (x ^ y)); px[o + 3] = 255;
                }
            using var data = bmp.Encode(SKEncodedImageFormat.Jpeg, 90);
            var p = Path.Combine(directory, $"bench{i:D5}.jpg");
            File.WriteAllBytes(p, data.ToArray());
            paths.Add(p);
        }
        return paths;
    }

    /// <summary>Runs the three measurements (after one warm-up batch) and reports images per second.</summary>
    public static ThroughputResult Run(ClipModel model, IReadOnlyList<string> imageFiles, int batchSize = 64, int decodeThreads = 0, TextWriter? log = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(imageFiles);
        model.eval();
        var pre = model.CreatePreprocessor();
        int threads = decodeThreads > 0 ? decodeThreads : Environment.ProcessorCount;
        int n = imageFiles.Count;

        using (var warm = pre.ProcessBatch(imageFiles.Take(Math.Min(batchSize, n)).ToList()))
        using (torch.no_grad())
            model.EncodeImage(warm).Dispose();

        // Model only: the same images, preprocessed beforehand.
        var batches = new List<Tensor>();
        for (int i = 0; i < n; i += batchSize) batches.Add(pre.ProcessBatch(imageFiles.Skip(i).Take(batchSize).ToList()));
        var sw = Stopwatch.StartNew();
        using (torch.no_grad())
            foreach (var b in batches) model.EncodeImage(b).Dispose();
        double modelOnly = n / sw.Elapsed.TotalSeconds;
        foreach (var b in batches) b.Dispose();
        log?.WriteLine($"model only:  {modelOnly,8:0.0} images/s");

        var inputs = imageFiles.Select(p => new ImageInput(p, p)).ToList();
        sw.Restart();
        var f = FeatureExtractor.Extract(model, pre, inputs, n, new FeatureExtractionOptions { BatchSize = batchSize, DecodeThreads = threads });
        double endToEnd = f.Count / sw.Elapsed.TotalSeconds;
        log?.WriteLine($"end to end:  {endToEnd,8:0.0} images/s  ({endToEnd / modelOnly:P0} of model only)");

        sw.Restart();
        using (torch.no_grad())
            for (int i = 0; i < n; i += batchSize)
            {
                using var b = pre.ProcessBatch(imageFiles.Skip(i).Take(batchSize).ToList());
                model.EncodeImage(b).Dispose();
            }
        double serial = n / sw.Elapsed.TotalSeconds;
        log?.WriteLine($"no overlap:  {serial,8:0.0} images/s");
        return new ThroughputResult(n, batchSize, modelOnly, endToEnd, serial);
    }
}
