using System.Text.Json;
using ClipSharp.Modeling;
using ClipSharp.Search;
using ClipSharp.Tests.Evaluation;
using ClipSharp.Tests.Modeling;
using ClipSharp.Text;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Search;

/// <summary>Semantic image search: the index holds the model's normalised image embeddings, updates incrementally,
/// survives moving its folder, refuses other models and damaged files; the CLI runs index + search.</summary>
[Collection("console")]
public class ImageIndexTests
{
    static string Vocab => Golden.Path("bpe_simple_vocab_16e6.txt.gz");
    static ClipTokenizer Tokenizer => ClipTokenizer.FromBpeFile(Vocab);

    static Tensor Normalised(Tensor x) => nn.functional.normalize(x, p: 2, dim: 1);

    [Fact]
    public void IndexHoldsNormalisedEmbeddingsAndRanksByCosine()
    {
        using var tmp = new TestData.TempDir();
        var root = TestData.ImageFolder(tmp["photos"], perClass: 2, corrupt: true);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var files = ImageIndex.ListFiles([root]);
        Assert.Equal(7, files.Count); // 6 PNGs + the broken JPEG; notes.txt is not an image

        using var index = ImageIndex.Build(model, files, out var report);
        Assert.Equal((6, 0, 0), (report.Encoded, report.Reused, report.Removed));
        var bad = Assert.Single(report.Skipped);
        Assert.EndsWith("broken.jpg", bad.Id);
        Assert.Equal(6, index.Count);

        // Rows are the model's own image features, L2-normalised, for the readable files in listed order.
        var good = files.Where(f => !f.EndsWith("broken.jpg", StringComparison.Ordinal)).ToList();
        Assert.Equal(good, index.Files.Select(f => f.Path));
        using var scope = NewDisposeScope();
        var expected = Normalised(model.EncodeImages(good));
        TensorAssert.Absolute(index.Embeddings, expected, 1e-6, "index rows");

        // Query by example: each image finds itself first, with cosine 1.
        for (int i = 0; i < good.Count; i++)
        {
            using var q = index.EmbedImage(model, good[i]);
            var hits = index.Search(q, 3);
            Assert.Equal(good[i], hits[0].Path);
            Assert.InRange(hits[0].Score, 0.9999f, 1.0001f);
            Assert.True(hits[0].Score >= hits[1].Score && hits[1].Score >= hits[2].Score);
        }

        // A text query ranks exactly as the cosine similarities computed by hand.
        var tok = Tokenizer;
        using var text = index.EmbedText(model, tok, "green", "a photo of a {}.");
        var manual = Normalised(model.EncodeTexts(["a photo of a green."], tok))[0];
        TensorAssert.Absolute(text, manual, 1e-6, "text query");
        var scores = expected.mv(manual).data<float>().ToArray();
        var order = Enumerable.Range(0, good.Count).OrderByDescending(i => scores[i]).Select(i => good[i]).ToList();
        Assert.Equal(order, index.Search(text, good.Count).Select(h => h.Path));
    }

    [Fact]
    public void RebuildEmbedsOnlyNewAndChangedFilesAndTheIndexMovesWithItsFolder()
    {
        using var tmp = new TestData.TempDir();
        var root = TestData.ImageFolder(tmp["photos"], perClass: 2);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        string indexPath = Path.Combine(root, "photos.index.safetensors");
        using (var first = ImageIndex.Build(model, ImageIndex.ListFiles([root]), out _, modelPath: Golden.Path("models", "vit_small.safetensors")))
            first.Save(indexPath);

        // One image changed, one deleted, one added.
        File.WriteAllBytes(Path.Combine(root, "red", "img0.png"), TestData.Png(250, 250, 20, seed: 77));
        File.SetLastWriteTimeUtc(Path.Combine(root, "red", "img0.png"), DateTime.UtcNow.AddMinutes(1));
        File.Delete(Path.Combine(root, "blue", "img1.png"));
        File.WriteAllBytes(Path.Combine(root, "blue", "img9.png"), TestData.Png(10, 10, 250, seed: 78));
        var files = ImageIndex.ListFiles([root]);
        using var previous = ImageIndex.Load(indexPath);
        using var updated = ImageIndex.Build(model, files, out var report, previous);
        Assert.Equal((2, 4, 1), (report.Encoded, report.Reused, report.Removed));
        using var fresh = ImageIndex.Build(model, files, out _);
        Assert.Equal(fresh.Files, updated.Files);
        TensorAssert.Absolute(updated.Embeddings, fresh.Embeddings, 1e-6, "incremental vs fresh");
        updated.Save(indexPath);

        // Paths inside the index's folder are stored relative to it: move the folder, the index follows.
        string moved = tmp["moved"];
        Directory.Move(root, moved);
        using var reloaded = ImageIndex.Load(Path.Combine(moved, "photos.index.safetensors"));
        Assert.All(reloaded.Files, f => Assert.StartsWith(moved, f.Path));
        Assert.All(reloaded.Files, f => Assert.True(File.Exists(f.Path), f.Path));
        TensorAssert.Absolute(reloaded.Embeddings, updated.Embeddings, 0, "reloaded");
    }

    [Fact]
    public void AnotherModelOrADamagedFileIsRefused()
    {
        using var tmp = new TestData.TempDir();
        var root = TestData.ImageFolder(tmp["photos"], perClass: 1);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        using var index = ImageIndex.Build(model, ImageIndex.ListFiles([root]), out _);
        using var other = new ClipModel(model.Config);
        var e = Assert.Throws<InvalidOperationException>(() => index.EmbedText(other, Tokenizer, "red"));
        Assert.Contains("different model", e.Message);

        string path = tmp["x.index.safetensors"];
        index.Save(path);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var damaged = Assert.Throws<ClipSharpException>(() => ImageIndex.Load(path));
        Assert.Contains(path, damaged.Message);
        var notIndex = Assert.Throws<ClipSharpException>(() => ImageIndex.Load(Golden.Path("models", "vit_small.safetensors")));
        Assert.Contains("not a ClipSharp image index", notIndex.Message);
    }

    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    [Fact]
    public void CliIndexesAndSearchesAndRefusesADamagedIndexBeforeOverwritingIt()
    {
        using var tmp = new TestData.TempDir();
        var root = TestData.ImageFolder(tmp["photos"], perClass: 2, corrupt: true);
        string model = Golden.Path("models", "vit_small.safetensors"), index = tmp["photos.index.safetensors"];
        var (code, output, err) = Run("index", root, "-m", model, "-o", index, "-q");
        Assert.True(code == 0, err);
        Assert.Contains("6 images (6 embedded, 0 unchanged, 0 removed, 1 skipped)", output);
        Assert.Contains("broken.jpg", err);

        (code, output, err) = Run("search", "-i", index, "--vocab", Vocab, "--json", "-k", "2", "red", "--image", Path.Combine(root, "blue", "img1.png"));
        Assert.True(code == 0, err);
        var doc = JsonDocument.Parse(output).RootElement;
        Assert.Equal(2, doc.GetArrayLength());
        Assert.Equal("red", doc[0].GetProperty("query").GetString());
        Assert.Equal(2, doc[0].GetProperty("hits").GetArrayLength());
        Assert.EndsWith(Path.Combine("blue", "img1.png"), doc[1].GetProperty("hits")[0].GetProperty("path").GetString());

        (code, output, _) = Run("index", root, "-m", model, "-o", index, "-q");
        Assert.Contains("(0 embedded, 6 unchanged, 0 removed, 1 skipped)", output);

        // Built with an explicit --config (weights alone would read as another architecture): search reuses it.
        string bare = tmp["bare.safetensors"], withConfig = tmp["configured.index.safetensors"];
        File.Copy(model, bare);
        (code, _, err) = Run("index", root, "-m", bare, "--config", Golden.Path("models", "vit_small.config.json"), "-o", withConfig, "-q");
        Assert.True(code == 0, err);
        (code, _, err) = Run("search", "-i", withConfig, "--vocab", Vocab, "red");
        Assert.True(code == 0, err);
        (code, _, err) = Run("search", "-i", withConfig, "-m", bare, "--vocab", Vocab, "red");
        Assert.NotEqual(0, code); // the same weights under the inferred architecture are another model
        Assert.Contains("different model", err);

        File.WriteAllText(index, "garbage");
        (code, _, err) = Run("index", root, "-m", model, "-o", index, "-q");
        Assert.NotEqual(0, code);
        Assert.Contains(index, err);
        Assert.Equal("garbage", File.ReadAllText(index)); // refused before anything was overwritten
    }
}
