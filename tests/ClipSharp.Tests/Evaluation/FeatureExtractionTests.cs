using ClipSharp.Data;
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

/// <summary>Evaluating tar shards streams the images instead of holding every image's bytes while encoding.</summary>
public class StreamingEvaluationTests
{
    /// <summary>Counts how often the images are enumerated and how many byte arrays one enumeration has handed out.</summary>
    sealed class CountingDataset(ILabeledImageDataset inner) : ILabeledImageDataset
    {
        public int Passes;
        public string Source => inner.Source;
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public SkipLog Skipped => inner.Skipped;
        public IEnumerable<LabeledImage> Images() { Passes++; return inner.Images(); }
    }

    [Fact]
    public void TarShardsGiveTheFolderResultStreamTwiceAndHitTheCacheWithOneRead()
    {
        using var tmp = new TestData.TempDir();
        TestData.ImageFolder(tmp["f"], perClass: 2);
        var members = new List<(string, byte[])>();
        var folder = new ImageFolderDataset(tmp["f"]);
        foreach (var x in folder.Images())
        {
            string key = $"{folder.ClassNames[x.Label]}-{Path.GetFileNameWithoutExtension(x.ImagePath)}";
            members.Add(($"{key}.png", File.ReadAllBytes(x.ImagePath!)));
            members.Add(($"{key}.cls", TestData.Utf8(x.Label.ToString(System.Globalization.CultureInfo.InvariantCulture))));
        }
        members.Add(("broken.png", [0x89, 0x50, 0x4E, 0x47, 1, 2]));
        members.Add(("broken.cls", TestData.Utf8("0")));
        members.Add(("nolabel.png", TestData.Png(1, 2, 3)));
        TestData.Tar(tmp["shard-0.tar"], members);
        File.WriteAllBytes(tmp["ckpt.bin"], [1]);

        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var tokenizer = ClipSharp.Text.ClipTokenizer.FromBpeFile(Golden.Path("bpe_simple_vocab_16e6.txt.gz"));
        var options = new EvaluatorOptions { CacheDirectory = tmp["cache"], CheckpointPath = tmp["ckpt.bin"], Extraction = new() { BatchSize = 4, DecodeThreads = 2 } };
        var evaluator = new Evaluator(model, tokenizer, options);

        var tar = new CountingDataset(new WebDatasetReader(tmp["shard-0.tar"], folder.ClassNames));
        var (tf, tl, ts) = evaluator.EncodeLabeled(tar);
        Assert.Equal(2, tar.Passes); // fingerprint pass, then the streaming encoding pass
        Assert.Equal(6, tf.Count);
        Assert.Equal(2, ts.Skipped.Count); // "nolabel" by the reader, "broken" by the decoder: each counted once
        Assert.Contains(ts.Skipped, s => s.Id.EndsWith(":nolabel", StringComparison.Ordinal));
        Assert.Contains(ts.Skipped, s => s.Id.EndsWith(":broken", StringComparison.Ordinal));

        var (ff, fl, _) = new Evaluator(model, tokenizer, options with { CacheDirectory = null }).EncodeLabeled(folder);
        Assert.Equal(fl, tl);
        using (var scope = NewDisposeScope()) TensorAssert.Relative(tf.ToTensor(), ff.ToTensor(), 1e-5, "tar vs folder features");

        var again = new CountingDataset(new WebDatasetReader(tmp["shard-0.tar"], folder.ClassNames));
        var (cf, cl, cs) = evaluator.EncodeLabeled(again);
        Assert.Equal("hit", cs.Cache);
        Assert.Equal(1, again.Passes);
        Assert.Equal(tl, cl);
        Assert.Equal(tf.Data, cf.Data);
    }
}
