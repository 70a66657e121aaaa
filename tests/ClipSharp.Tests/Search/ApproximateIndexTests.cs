using System.Text.Json;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Search;
using ClipSharp.Tests.Evaluation;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Search;

/// <summary>
/// The approximate index (USearch HNSW beside the exact index): it finds what exact search finds on clustered data,
/// scores exactly, writes its file atomically, memory-maps it, and refuses a file built from other embeddings.
/// </summary>
public class ApproximateIndexTests
{
    /// <summary>An image index over given embeddings (rows L2-normalised), written the way ImageIndex.Save writes one; the files need not exist.</summary>
    internal static ImageIndex SyntheticIndex(string path, Tensor embeddings)
    {
        var header = new JsonObject
        {
            ["version"] = 1,
            ["model_fingerprint"] = "synthetic",
            ["model"] = null,
            ["config"] = null,
            ["files"] = new JsonArray(Enumerable.Range(0, (int)embeddings.shape[0]).Select(i => (JsonNode)new JsonArray($"img{i:D5}.png", 1L, 1L)).ToArray()),
        };
        using (var sd = new StateDict())
        {
            sd.Add("embeddings", nn.functional.normalize(embeddings, p: 2, dim: 1).contiguous());
            SafeTensors.Save(path, sd, new Dictionary<string, string> { [ImageIndex.MetadataKey] = header.ToJsonString() });
        }
        return ImageIndex.Load(path);
    }

    /// <summary>Deterministic clustered data: <paramref name="clusters"/> random centres, points scattered around them.</summary>
    internal static Tensor Clustered(int n, int dim, int clusters, int seed, double spread = 0.35)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator((ulong)seed);
        var centres = nn.functional.normalize(randn(clusters, dim, generator: g), p: 2, dim: 1);
        var assign = randint(clusters, new long[] { n }, generator: g);
        var noise = randn(n, dim, generator: g).mul(tensor(spread / Math.Sqrt(dim)));
        return nn.functional.normalize(centres.index_select(0, assign).add(noise, TorchScalars.One), p: 2, dim: 1).contiguous().MoveToOuterDisposeScope();
    }

    static double Recall(IReadOnlyList<SearchHit> approximate, IReadOnlyList<SearchHit> exact) =>
        exact.Select(h => h.Path).Intersect(approximate.Select(h => h.Path)).Count() / (double)exact.Count;

    [Fact]
    public void FindsWhatExactSearchFindsOnClusteredDataWithExactScores()
    {
        using var tmp = new TestData.TempDir();
        // 4,100 points around 40 centres: 4,000 indexed, the other 100 (from the same clusters) are the queries.
        using var points = Clustered(4100, 64, 40, seed: 7);
        using var data = points.narrow(0, 0, 4000);
        using var index = SyntheticIndex(Path.Combine(tmp.Path, "c.index.safetensors"), data);
        using var ann = ApproximateIndex.Build(index, new AnnOptions { Connectivity = 16, ExpansionAdd = 128, ExpansionSearch = 128, Threads = 1 });
        Assert.Equal(4000, ann.Count);
        using var queries = points.narrow(0, 4000, 100);
        double sum = 0, worst = 1;
        for (int q = 0; q < 100; q++)
        {
            using var query = queries[q].clone();
            var exact = index.Search(query, 10);
            var approx = ann.Search(index, query, 10);
            Assert.Equal(10, approx.Count);
            // Scores are the exact cosines of the rows found, best first.
            var exactAll = index.Search(query, 4000).ToDictionary(h => h.Path, h => h.Score);
            foreach (var h in approx) Assert.Equal(exactAll[h.Path], h.Score, 1e-5f);
            Assert.True(approx.Zip(approx.Skip(1)).All(p => p.First.Score >= p.Second.Score));
            double r = Recall(approx, exact);
            sum += r;
            worst = Math.Min(worst, r);
        }
        Assert.True(sum / 100 >= 0.95, $"mean recall@10 {sum / 100:0.000}");
        Assert.True(worst >= 0.7, $"worst recall@10 {worst:0.0}");
    }

    [Fact]
    public void SavedFileOpensMemoryMappedAndAnswersAsTheBuiltOne()
    {
        using var tmp = new TestData.TempDir();
        using var data = Clustered(1500, 32, 20, seed: 3);
        string indexPath = Path.Combine(tmp.Path, "p.index.safetensors");
        using var index = SyntheticIndex(indexPath, data);
        string annPath = ApproximateIndex.PathFor(indexPath);
        Assert.Equal(Path.Combine(tmp.Path, "p.index.ann"), annPath);
        using var built = ApproximateIndex.Build(index, new AnnOptions { Connectivity = 12, ExpansionAdd = 48, ExpansionSearch = 40, Storage = AnnStorage.F32 });
        built.Save(annPath);
        Assert.Equal(new[] { "p.index.ann", "p.index.safetensors" }, Directory.GetFiles(tmp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using var opened = ApproximateIndex.OpenBeside(indexPath, index, out var note);
        Assert.Null(note);
        Assert.NotNull(opened);
        Assert.Equal((1500L, 32, AnnStorage.F32, 12, 40), (opened!.Count, opened.Dim, opened.Options.Storage, opened.Options.Connectivity, opened.ExpansionSearch));
        for (int q = 0; q < 20; q++)
        {
            using var query = data[q * 7].clone();
            Assert.Equal(built.Search(index, query, 5).Select(h => h.Path), opened.Search(index, query, 5).Select(h => h.Path));
            Assert.Equal(index.Files[q * 7].Path, opened.Search(index, query, 1)[0].Path);
        }
    }

    [Fact]
    public void AFileBuiltFromOtherEmbeddingsOrDamagedIsRefusedWithOneLine()
    {
        using var tmp = new TestData.TempDir();
        using var data = Clustered(600, 16, 10, seed: 5);
        string indexPath = Path.Combine(tmp.Path, "s.index.safetensors");
        string annPath = ApproximateIndex.PathFor(indexPath);
        using (var first = SyntheticIndex(indexPath, data))
        using (var ann = ApproximateIndex.Build(first, new AnnOptions { Connectivity = 8, ExpansionAdd = 32, ExpansionSearch = 32 }))
            ann.Save(annPath);

        // The exact index rebuilt with one row changed: same size, other embeddings.
        using var changed = data.clone();
        changed[0].copy_(data[1]);
        using var second = SyntheticIndex(indexPath, changed);
        var e = Assert.Throws<StaleApproximateIndexException>(() => ApproximateIndex.Open(annPath, second));
        Assert.Contains(annPath, e.Message);
        Assert.Contains("rebuild it with clip index --ann", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Null(ApproximateIndex.OpenBeside(indexPath, second, out var note));
        Assert.Contains("searching exactly", note);

        // Fewer rows.
        using var fewer = SyntheticIndex(Path.Combine(tmp.Path, "f.index.safetensors"), data.narrow(0, 0, 500));
        Assert.Contains("500 rows", Assert.Throws<StaleApproximateIndexException>(() => ApproximateIndex.Open(annPath, fewer)).Message);

        // Garbage, a truncated file and an empty one: refused the same way, never a native crash.
        var bytes = File.ReadAllBytes(annPath);
        foreach (var (name, content) in new[] { ("garbage", "not an index at all"u8.ToArray()), ("truncated", bytes[..(bytes.Length / 2)]), ("empty", Array.Empty<byte>()) })
        {
            string bad = Path.Combine(tmp.Path, name + ".ann");
            File.WriteAllBytes(bad, content);
            var ex = Assert.Throws<StaleApproximateIndexException>(() => ApproximateIndex.Open(bad, second));
            Assert.Contains(bad, ex.Message);
        }
        // A valid trailer over a damaged USearch part: refused by USearch's own checks.
        var damaged = (byte[])bytes.Clone();
        Array.Clear(damaged, 0, 64);
        string mangled = Path.Combine(tmp.Path, "mangled.ann");
        File.WriteAllBytes(mangled, damaged);
        using var original = SyntheticIndex(Path.Combine(tmp.Path, "o.index.safetensors"), data);
        Assert.Throws<StaleApproximateIndexException>(() => ApproximateIndex.Open(mangled, original));
    }

    [Fact]
    public void SavingOverAnOpenFileSwapsItAtomically()
    {
        using var tmp = new TestData.TempDir();
        using var data = Clustered(800, 16, 8, seed: 11);
        string indexPath = Path.Combine(tmp.Path, "a.index.safetensors");
        string annPath = ApproximateIndex.PathFor(indexPath);
        using var index = SyntheticIndex(indexPath, data);
        using (var ann = ApproximateIndex.Build(index, new AnnOptions { Connectivity = 8, ExpansionAdd = 32, ExpansionSearch = 32 }))
            ann.Save(annPath);
        using var open = ApproximateIndex.Open(annPath, index);
        using var query = data[3].clone();
        var before = open.Search(index, query, 5).Select(h => h.Path).ToList();

        // Rebuilt with other settings and renamed over the file that is mapped: the mapping keeps the old contents.
        using (var rebuilt = ApproximateIndex.Build(index, new AnnOptions { Connectivity = 16, ExpansionAdd = 64, ExpansionSearch = 64 }))
            rebuilt.Save(annPath);
        Assert.Equal(before, open.Search(index, query, 5).Select(h => h.Path));
        Assert.Equal(8, open.Options.Connectivity);
        using var reopened = ApproximateIndex.Open(annPath, index);
        Assert.Equal(16, reopened.Options.Connectivity);
        Assert.Equal(index.Files[3].Path, reopened.Search(index, query, 1)[0].Path);
        Assert.Equal(new[] { "a.index.ann", "a.index.safetensors" }, Directory.GetFiles(tmp.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
