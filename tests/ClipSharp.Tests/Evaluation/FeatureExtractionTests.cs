using ClipSharp.Data.Readers;
using ClipSharp.Evaluation;
using ClipSharp.Imaging;
using ClipSharp.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Evaluation;

public class FeatureExtractionTests
{
    [Fact]
    public void ParallelPipelineMatchesDirectEncodingAndSkipsCorruptImages()
    {
        using var tmp = new TestData.TempDir();
        TestData.ImageFolder(tmp["f"], perClass: 3, corrupt: true);
        var ds = new ImageFolderDataset(tmp["f"]);
        var inputs = ds.Images().Select(ImageInput.From).ToList();
        Assert.Equal(10, inputs.Count);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var pre = new ClipImagePreprocessor(model.Visual.InputResolution);
        var reports = new List<ExtractionProgress>();
        var progress = new SyncProgress<ExtractionProgress>(reports.Add);
        var f = FeatureExtractor.Extract(model, pre, inputs, inputs.Count, new FeatureExtractionOptions { BatchSize = 4, DecodeThreads = 2, Progress = progress });

        Assert.Equal(9, f.Count);
        var bad = Assert.Single(f.Skipped);
        Assert.EndsWith("broken.jpg", bad.Id);
        Assert.Equal(inputs.Where(i => !i.Id.EndsWith("broken.jpg")).Select(i => i.Id), f.Ids);
        Assert.Equal(3, reports.Count);
        Assert.Equal(9, reports[^1].Done);
        Assert.Equal(1, reports[^1].Skipped);

        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var paths = f.Ids.ToList();
        var direct = model.EncodeImage(pre.ProcessBatch(paths));
        TensorAssert.Relative(f.ToTensor(), direct, 1e-5, "features");
    }

    [Fact]
    public void CacheHitsThenDetectsAChangedDataset()
    {
        using var tmp = new TestData.TempDir();
        TestData.ImageFolder(tmp["f"], perClass: 1);
        File.WriteAllBytes(tmp["ckpt.bin"], [1, 2, 3]);
        var cache = new FeatureCache(tmp["cache"]);
        List<ImageInput> Inputs() => new ImageFolderDataset(tmp["f"]).Images().Select(ImageInput.From).ToList();
        int computed = 0;
        ImageFeatures Compute()
        {
            computed++;
            var ins = Inputs();
            var data = Enumerable.Range(0, ins.Count * 2).Select(i => (float)i).ToArray();
            return new ImageFeatures(data, 2, ins.Select(i => i.Id).ToList(), Enumerable.Range(0, ins.Count).ToList(), [new SkippedItem("x", "bad")]);
        }
        FeatureCacheKey Key() => new(tmp["ckpt.bin"], FeatureCache.FingerprintFile(tmp["ckpt.bin"]), tmp["f"], FeatureCache.FingerprintInputs(Inputs()), "size=64");

        var a = cache.GetOrCompute(Key(), Compute, out var o1);
        Assert.Equal(CacheOutcome.Computed, o1);
        var b = cache.GetOrCompute(Key(), Compute, out var o2);
        Assert.Equal(CacheOutcome.Hit, o2);
        Assert.Equal(1, computed);
        Assert.Equal(a.Data, b.Data);
        Assert.Equal(a.Ids, b.Ids);
        Assert.Equal("bad", Assert.Single(b.Skipped).Reason);

        File.WriteAllBytes(tmp["f/red/new.png"], TestData.Png(1, 2, 3));
        var c = cache.GetOrCompute(Key(), Compute, out var o3);
        Assert.Equal(CacheOutcome.Stale, o3);
        Assert.Contains("dataset changed", cache.LastStaleReason);
        Assert.Equal(4, c.Count);

        File.WriteAllBytes(tmp["ckpt.bin"], [1, 2, 3, 4]);
        cache.GetOrCompute(Key(), Compute, out var o4);
        Assert.Equal(CacheOutcome.Stale, o4);
        Assert.Contains("checkpoint changed", cache.LastStaleReason);
        Assert.Equal(3, computed);
    }
}

/// <summary>IProgress that calls back synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SyncProgress<T>(Action<T> action) : IProgress<T>
{
    public void Report(T value) => action(value);
}

public class ThroughputBenchmarkTests
{
    [Fact]
    public void BenchmarkReportsAllThreeRates()
    {
        using var tmp = new TestData.TempDir();
        var files = ThroughputBenchmark.WriteImages(tmp.Path, 6);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var log = new StringWriter();
        var r = ThroughputBenchmark.Run(model, files, batchSize: 4, decodeThreads: 2, log: log);
        Assert.Equal(6, r.Images);
        Assert.True(r.ModelOnlyImagesPerSecond > 0 && r.EndToEndImagesPerSecond > 0 && r.SerialImagesPerSecond > 0);
        Assert.Contains("end to end", log.ToString());
    }
}
