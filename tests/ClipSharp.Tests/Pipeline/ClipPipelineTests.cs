using System.Globalization;
using ClipSharp.Hub;
using ClipSharp.Tests.Checkpoints;
using ClipSharp.Tests.Hub;
using ClipSharp.Tests.Modeling;
using Microsoft.Extensions.AI;
using SkiaSharp;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Pipeline;

/// <summary>
/// <see cref="ClipPipeline"/> on the golden vit_small model: probabilities as the reference computes them (softmax over the
/// golden logits) and as <c>clip similarity</c> prints them, embeddings equal to the reference's normalised ones for
/// every kind of image input, batched and streamed alike, and the Microsoft.Extensions.AI embedding generator.
/// </summary>
[Collection("console")]
public class ClipPipelineTests
{
    /// <summary>The first four golden captions (the fifth is the truncated long one).</summary>
    internal static readonly string[] Captions =
    [
        "a photo of a cat.",
        "a diagram of a neural network with two layers",
        "A dog playing fetch on the beach at sunset!",
        "two red apples and a green pear on a wooden table",
    ];

    static readonly string[] Images = ["landscape.jpg", "portrait.png", "tiny.png", "gray.png"];

    static string Checkpoint => Golden.Path("models", "vit_small.safetensors");

    /// <summary>softmax(logits_per_image[row, :4]) of the reference forward.</summary>
    internal static float[] ReferenceProbabilities(int row = 0)
    {
        var io = GoldenTensors.Load(Golden.Path("models", "vit_small.io.safetensors"));
        try
        {
            using var scope = NewDisposeScope();
            var logits = io["logits_per_image"][row].slice(0, 0, Captions.Length, 1);
            return logits.softmax(0).data<float>().ToArray();
        }
        finally { foreach (var t in io.Values) t.Dispose(); }
    }

    static float[][] ReferenceRows(string key)
    {
        var io = GoldenTensors.Load(Golden.Path("models", "vit_small.io.safetensors"));
        try
        {
            var t = io[key];
            int n = (int)t.shape[0], d = (int)t.shape[1];
            var flat = t.data<float>().ToArray();
            return Enumerable.Range(0, n).Select(i => flat.AsSpan(i * d, d).ToArray()).ToArray();
        }
        finally { foreach (var t in io.Values) t.Dispose(); }
    }

    static void AssertRowsClose(float[][] expected, float[][] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].Length, actual[i].Length);
            double max = expected[i].Zip(actual[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.True(max <= tolerance, $"{what} row {i}: max |diff| {max:E2} > {tolerance:E0}");
        }
    }

    [Fact]
    public void ClassifyGivesTheReferenceProbabilitiesHighestFirstWithTheLabelShown()
    {
        using var clip = ClipPipeline.FromPretrained(Checkpoint);
        var scores = clip.Classify(Golden.Path("preprocess", "landscape.jpg"), Captions);

        var reference = ReferenceProbabilities();
        Assert.Equal(Captions.Length, scores.Count);
        for (int i = 1; i < scores.Count; i++) Assert.True(scores[i - 1].Probability >= scores[i].Probability, "not sorted highest first");
        foreach (var s in scores)
        {
            float expected = reference[Array.IndexOf(Captions, s.Label)];
            Assert.True(Math.Abs(s.Probability - expected) <= 1e-5, $"{s.Label}: {s.Probability} vs reference {expected}");
        }
        Assert.Equal(1.0, scores.Sum(s => (double)s.Probability), 5);
        Assert.StartsWith(scores[0].Label, scores[0].ToString(), StringComparison.Ordinal);
        Assert.Contains(scores[0].Probability.ToString("F4", CultureInfo.InvariantCulture), scores[0].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ClassifyAgreesWithClipSimilarity()
    {
        string image = Golden.Path("preprocess", "portrait.png");
        using var clip = ClipPipeline.FromPretrained(Checkpoint);
        var scores = clip.Classify(image, Captions);
        var (code, stdout, err) = CliRunner.Run(["similarity", "--model", Checkpoint, image, .. Captions]);
        Assert.True(code == 0, err);
        var printed = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(l => l.Trim()).ToList();
        Assert.Equal(scores.Select(s => $"{s.Label}  {s.Probability:F4}"), printed.Select(l => System.Text.RegularExpressions.Regex.Replace(l, "  +", "  ")));
    }

    [Fact]
    public void ImageEmbeddingsAreTheReferenceOnesForPathsBytesStreamsAndBitmaps()
    {
        var paths = Images.Select(f => Golden.Path("preprocess", f)).ToArray();
        var reference = ReferenceRows("image_embeds_normalized");
        using var clip = ClipPipeline.FromPretrained(Checkpoint);
        clip.BatchSize = 3; // two batches, the second short

        var fromPaths = clip.EmbedImages(paths);
        AssertRowsClose(reference, fromPaths, 1e-5, "paths");
        AssertRowsClose(fromPaths, clip.EmbedImages(paths.Select(File.ReadAllBytes)), 0, "bytes");
        var streams = paths.Select(p => (Stream)File.OpenRead(p)).ToList();
        try { AssertRowsClose(fromPaths, clip.EmbedImages(streams), 0, "streams"); }
        finally { streams.ForEach(s => s.Dispose()); }

        // A lossless RGB file decoded by SkiaSharp into a bitmap is the same picture.
        using var bitmap = SKBitmap.Decode(paths[1]);
        AssertRowsClose([fromPaths[1]], clip.EmbedImages([bitmap]), 1e-6, "bitmap");
        var byBitmap = clip.Classify(bitmap, Captions);
        var byPath = clip.Classify(paths[1], Captions);
        Assert.Equal(byPath.Select(s => s.Label), byBitmap.Select(s => s.Label));

        clip.BatchSize = 32;
        AssertRowsClose(fromPaths, clip.EmbedImages(paths), 1e-6, "one batch");
    }

    [Fact]
    public async Task TextEmbeddingsBatchedStreamedAndAsGeneratorAreTheReferenceOnes()
    {
        var reference = ReferenceRows("text_embeds_normalized").Take(Captions.Length).ToArray();
        using var clip = ClipPipeline.FromPretrained(Checkpoint);
        clip.BatchSize = 3;

        var texts = clip.EmbedTexts(Captions);
        AssertRowsClose(reference, texts, 1e-5, "texts");
        var streamed = new List<float[]>();
        await foreach (var e in clip.EmbedTextsAsync(Captions)) streamed.Add(e);
        AssertRowsClose(texts, [.. streamed], 0, "async texts");
        var images = new List<float[]>();
        await foreach (var e in clip.EmbedImagesAsync(Images.Select(f => Golden.Path("preprocess", f)))) images.Add(e);
        AssertRowsClose(ReferenceRows("image_embeds_normalized"), [.. images], 1e-5, "async images");

        IEmbeddingGenerator<string, Embedding<float>> generator = clip;
        var generated = await generator.GenerateAsync(Captions);
        AssertRowsClose(texts, generated.Select(g => g.Vector.ToArray()).ToArray(), 0, "generator");
        Assert.All(generated, g => Assert.Equal(Checkpoint, g.ModelId));
        var metadata = generator.GetService<EmbeddingGeneratorMetadata>();
        Assert.NotNull(metadata);
        Assert.Equal(64, metadata.DefaultModelDimensions);
        Assert.Equal("ClipSharp", metadata.ProviderName);
        await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(Captions, new EmbeddingGenerationOptions { Dimensions = 512 }));
    }

    [Fact]
    public async Task CancellationStopsBeforeTheNextBatchAndDisposedPipelinesRefuseWork()
    {
        using var cts = new CancellationTokenSource();
        var clip = ClipPipeline.FromPretrained(Checkpoint);
        clip.BatchSize = 1;
        var seen = new List<float[]>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var e in clip.EmbedTextsAsync(Captions, cts.Token))
            {
                seen.Add(e);
                cts.Cancel(); // after the first embedding arrives: the second batch must not run
            }
        });
        Assert.Single(seen);
        Assert.ThrowsAny<OperationCanceledException>(() => clip.EmbedImages([Golden.Path("preprocess", "tiny.png")], cts.Token));
        clip.Dispose();
        Assert.Throws<ObjectDisposedException>(() => clip.EmbedTexts(["a cat"]));
    }

    [Fact]
    public void BadNamesAndImagesGiveOneClearError()
    {
        var e = Assert.ThrowsAny<ClipSharpException>(() => ClipPipeline.FromPretrained("/nonexistent/model.safetensors"));
        Assert.Contains("/nonexistent/model.safetensors", e.Message, StringComparison.Ordinal);
        using var clip = ClipPipeline.FromPretrained(Checkpoint);
        var bad = Assert.ThrowsAny<ClipSharpException>(() => clip.Classify(new byte[] { 1, 2, 3 }, Captions));
        Assert.Contains("image bytes", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HubNamesLoadThroughTheResolverWithTheRepositorysTokenizer()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        var options = HubFixtures.Options(hub, tmp.Path);
        using var clip = ClipPipeline.FromPretrained(PretrainedResolver.HubPrefix + HubFixtures.OpenClipRepo, options: options);
        Assert.Equal(PretrainedResolver.HubPrefix + HubFixtures.OpenClipRepo, clip.Name);
        var scores = clip.Classify(Golden.Path("preprocess", "landscape.jpg"), Captions);
        var reference = ReferenceProbabilities();
        foreach (var s in scores) Assert.True(Math.Abs(s.Probability - reference[Array.IndexOf(Captions, s.Label)]) <= 1e-5, s.ToString());
    }
}
